//go:build !faultpoints

package main

import (
	"flag"

	"github.com/hostctl/hostctl/daemon"
)

// faultFlags registers no flag: fault points exist only in test builds
// (build tag faultpoints), and the production hostd has no --fault.
func faultFlags(*flag.FlagSet) func(*daemon.Config) error {
	return func(*daemon.Config) error { return nil }
}
