//go:build faultpoints

package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/hostctl/hostctl/daemon"
)

// faultFlags registers --fault, which exists only in test builds (build
// tag faultpoints), and returns what puts the parsed faults into the
// daemon's configuration once the flags are parsed.
func faultFlags(fs *flag.FlagSet) func(*daemon.Config) error {
	var specs []string
	fs.Func("fault", "testing: arm a fault point, KIND/STEP=kill|error (KIND or STEP may be *; repeat or separate with commas); "+
		"kill SIGKILLs hostd right before the step, error fails the transaction there. STEP is a step name as hostctl history lists it, after-swap or finish",
		func(s string) error { specs = append(specs, s); return nil })
	return func(cfg *daemon.Config) error {
		f, err := daemon.ParseFaults(strings.Join(specs, ","))
		if err != nil {
			return fmt.Errorf("--fault: %w", err)
		}
		cfg.Faults = f
		if s := f.String(); s != "" && cfg.Logger != nil {
			cfg.Logger.Warn("fault points armed (test build)", "faults", s)
		}
		return nil
	}
}
