// Command demo runs hostctl's main job on a sandbox host under _demo/: it
// builds the test OS from real RPMs (cached), serves its OSTree repo on
// 127.0.0.1 with version 2 published, makes a sysroot with version 1
// deployed, starts a private dbus-daemon and hostd on that sysroot, then runs
// hostctl status, upgrade, status, rollback, status and prints their output.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hostctl/hostctl/internal/testutil"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

func main() {
	dir := flag.String("dir", "_demo", "sandbox directory (recreated)")
	bin := flag.String("bin", "bin", "directory of hostd and hostctl")
	flag.Parse()
	if err := run(context.Background(), *dir, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, bin string) error {
	dir, _ = filepath.Abs(dir)
	bin, _ = filepath.Abs(bin)
	testutil.RemoveAll(filepath.Join(dir, "sysroot"))
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	step("Building the test OS (versions 1, 2, 3 from RPMs; cached after the first run)")
	o, err := fixture.BuildOS(ctx)
	if err != nil {
		return err
	}
	remote := filepath.Join(dir, "remote")
	if err := o.CopyRepo(remote); err != nil {
		return err
	}
	if err := fixture.SetRef(ctx, remote, fixture.StableRef, o.Commit("2")); err != nil {
		return err
	}
	srv, err := fixture.NewServer(remote)
	if err != nil {
		return err
	}
	defer srv.Stop()
	fmt.Printf("remote %s serves %s with version 2 published\n", srv.URL(), fixture.StableRef)

	sysroot := filepath.Join(dir, "sysroot")
	refspec := "hostos:" + fixture.StableRef
	if err := harness.NewSysroot(ctx, sysroot, fixture.OSName, srv.URL(), refspec, o.Commit("1")); err != nil {
		return err
	}
	fmt.Printf("sysroot %s has version 1 deployed\n", sysroot)
	bus, err := harness.StartBus(ctx, filepath.Join(dir, "bus"), "packaging/org.hostctl.Host1.conf")
	if err != nil {
		return err
	}
	defer bus.Stop()
	hostd, err := harness.StartHostd(ctx, filepath.Join(bin, "hostd"), sysroot, bus)
	if err != nil {
		return err
	}
	defer hostd.Stop()
	fmt.Printf("hostd serves org.hostctl.Host1 on %s\n", bus.Address)

	for _, args := range [][]string{{"status"}, {"upgrade"}, {"status"}, {"rollback"}, {"status"}} {
		step("hostctl " + strings.Join(args, " "))
		r := harness.Hostctl(ctx, filepath.Join(bin, "hostctl"), bus, 0, args...)
		fmt.Print(r.Stdout)
		fmt.Fprint(os.Stderr, r.Stderr)
		if r.Code != 0 {
			return fmt.Errorf("hostctl %s exited %d", strings.Join(args, " "), r.Code)
		}
	}
	return nil
}

func step(s string) { fmt.Printf("\n\033[1m$ %s\033[0m\n", s) }
