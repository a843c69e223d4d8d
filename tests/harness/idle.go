package harness

import (
	"context"
	"fmt"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
)

// WaitIdle waits until the hostd on bus runs no transaction and no cleanup
// after one (org.hostctl.Host1 ActiveTransaction empty, CleanupPending
// false), or until ctx is done. hostctl returns at a transaction's
// Finished, before the cleanup after it (the removal of the replaced
// deployment, the repository prune): a test that reads the repository or
// the deployment directories right after a command (ostree fsck, ostree
// admin status, object counts) calls WaitIdle first.
func WaitIdle(ctx context.Context, bus *Bus) error {
	conn, err := godbus.Dial(bus.Address, godbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("wait for hostd to be idle: connect to %s: %w", bus.Address, err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return fmt.Errorf("wait for hostd to be idle: authenticate on %s: %w", bus.Address, err)
	}
	if err := conn.Hello(); err != nil {
		return fmt.Errorf("wait for hostd to be idle: hello on %s: %w", bus.Address, err)
	}
	obj := conn.Object(dbus.BusName, dbus.HostPath)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var props map[string]godbus.Variant
		if err := obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, dbus.HostInterface).Store(&props); err != nil {
			return fmt.Errorf("wait for hostd to be idle: read its properties: %w", err)
		}
		pending, ok := props["CleanupPending"].Value().(bool)
		if !ok {
			return fmt.Errorf("wait for hostd to be idle: org.hostctl.Host1 has no CleanupPending property (an older hostd?)")
		}
		var active struct {
			ID, Kind string
			Path     godbus.ObjectPath
		}
		if err := props["ActiveTransaction"].Store(&active); err != nil {
			return fmt.Errorf("wait for hostd to be idle: read ActiveTransaction: %w", err)
		}
		if !pending && active.ID == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for hostd to be idle (transaction %q, cleanup pending %v): %w", active.ID, pending, ctx.Err())
		case <-tick.C:
		}
	}
}
