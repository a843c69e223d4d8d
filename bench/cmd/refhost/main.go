// Command refhost is the reference service of hostctl's benchmarks: the
// smallest D-Bus service that answers the status call hostd answers. It
// copies org.hostctl.Host1's properties from the running hostd once, then
// serves the very same values from memory at the same object path under its
// own bus name, with nothing else running in the process. A status call to
// refhost costs what the bus and godbus cost for that reply; the difference
// to the same call on hostd is what hostd adds.
//
// It connects to the bus DBUS_SYSTEM_BUS_ADDRESS names, prints "ready" on
// stdout once it owns its name, and runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
)

// propertiesInterface is the standard D-Bus properties interface.
const propertiesInterface = "org.freedesktop.DBus.Properties"

func main() {
	name := flag.String("name", "org.hostctl.BenchRef1", "bus name to own")
	from := flag.String("copy-from", dbus.BusName, "bus name of the service whose org.hostctl.Host1 properties are copied")
	flag.Parse()
	if err := run(*name, *from); err != nil {
		fmt.Fprintln(os.Stderr, "refhost:", err)
		os.Exit(1)
	}
}

func run(name, from string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	conn, err := godbus.ConnectSystemBus()
	if err != nil {
		return fmt.Errorf("connect to the bus in DBUS_SYSTEM_BUS_ADDRESS: %w", err)
	}
	defer conn.Close()
	var values map[string]godbus.Variant
	call := conn.Object(from, dbus.HostPath).CallWithContext(ctx, propertiesInterface+".GetAll", 0, dbus.HostInterface)
	if err := call.Store(&values); err != nil {
		return fmt.Errorf("copy the properties of %s (is hostd running on this bus?): %w", from, err)
	}
	if err := conn.Export(properties{iface: dbus.HostInterface, values: values}, dbus.HostPath, propertiesInterface); err != nil {
		return fmt.Errorf("export %s: %w", dbus.HostPath, err)
	}
	reply, err := conn.RequestName(name, godbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("request bus name %s: %w", name, err)
	}
	if reply != godbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("bus name %s is owned by another process", name)
	}
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

// properties serves a fixed property set. Its values are never written after
// export, so concurrent calls may encode them at once.
type properties struct {
	iface  string
	values map[string]godbus.Variant
}

// GetAll returns every property of iface.
func (p properties) GetAll(iface string) (map[string]godbus.Variant, *godbus.Error) {
	if iface != p.iface {
		return nil, godbus.NewError("org.freedesktop.DBus.Error.UnknownInterface", []any{"no interface " + iface})
	}
	return p.values, nil
}

// Get returns one property.
func (p properties) Get(iface, name string) (godbus.Variant, *godbus.Error) {
	v, ok := p.values[name]
	if iface != p.iface || !ok {
		return godbus.Variant{}, godbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{"no property " + iface + "." + name})
	}
	return v, nil
}

// Set refuses: the properties are read-only, as hostd's are.
func (p properties) Set(iface, name string, _ godbus.Variant) *godbus.Error {
	return godbus.NewError("org.freedesktop.DBus.Error.PropertyReadOnly", []any{"property " + iface + "." + name + " is read-only"})
}
