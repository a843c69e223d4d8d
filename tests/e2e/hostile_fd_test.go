package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
)

// TestHostileFileDescriptors: calls that carry file descriptors where
// hostd takes none, or in shapes it does not take (an array of them, one
// in a variant), from root and from an unprivileged caller: each gets an
// error (or, for a message the bus library cannot decode, no reply) and
// hostd keeps serving, the same process. godbus v5.2.4 panicked in its
// read goroutine on the first "ah" with fds attached: see
// third_party/godbus-dbus/README.md.
func TestHostileFileDescriptors(t *testing.T) {
	e := newEnv(t)
	owner := e.hostdOwner()
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := godbus.UnixFD(f.Fd())
	conn, err := godbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	obj := conn.Object(dbus.BusName, dbus.HostPath)
	for _, c := range []struct {
		method string
		args   []any
	}{
		{dbus.HostInterface + ".History", []any{[]godbus.UnixFD{fd, fd}}},
		{dbus.HostInterface + ".History", []any{fd}},
		{dbus.HostInterface + ".History", []any{godbus.MakeVariant(fd)}},
		{dbus.HostInterface + ".PkgChange", []any{[]godbus.UnixFD{fd}, []string{}, map[string]godbus.Variant{}}},
		{dbus.HostInterface + ".OverrideReplace", []any{[]string{}, []godbus.UnixFD{fd}, map[string]godbus.Variant{}}},
		{"org.freedesktop.DBus.Properties.GetAll", []any{[]godbus.UnixFD{fd}}},
	} {
		// A message the bus library cannot decode is dropped: no reply
		// comes, so the call is bounded.
		ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
		call := obj.CallWithContext(ctx, c.method, 0, c.args...)
		cancel()
		if call.Err == nil {
			t.Errorf("%s with file descriptors %v: no error", c.method, c.args)
		}
		if got := e.hostdOwner(); got != owner {
			t.Fatalf("%s with file descriptors: hostd is gone (owner %q, was %q)\nhostd log:\n%s", c.method, got, owner, e.hostd.Log)
		}
	}
	e.mustHostctl("status")
}
