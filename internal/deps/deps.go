//go:build tools

// Package deps pins the modules the project depends on before every package uses them.
package deps

import (
	_ "github.com/cavaliergopher/cpio"
	_ "github.com/cavaliergopher/rpm"
	_ "github.com/coreos/go-systemd/v22/dbus"
	_ "github.com/glebarez/go-sqlite"
	_ "github.com/godbus/dbus/v5"
	_ "github.com/knqyf263/go-rpmdb/pkg"
	_ "github.com/ostreedev/ostree-go/pkg/otbuiltin"
	_ "github.com/spf13/cobra"
	_ "github.com/vbauerster/mpb/v8"
	_ "go.etcd.io/bbolt"
	_ "go.podman.io/image/v5/copy"
)
