package e2e

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
)

// TestIntrospectionAndSignals checks the live API against the checked-in
// contract and that clients hear about changes without polling.
func TestIntrospectionAndSignals(t *testing.T) {
	e := newEnv(t)
	conn, err := godbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var xml string
	if err := conn.Object(dbus.BusName, dbus.HostPath).Call("org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xml); err != nil {
		t.Fatal(err)
	}
	if xml != dbus.HostXML {
		t.Fatal("introspection differs from dbus/org.hostctl.Host1.xml")
	}

	if err := conn.AddMatchSignal(godbus.WithMatchObjectPath(dbus.HostPath), godbus.WithMatchInterface("org.freedesktop.DBus.Properties")); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *godbus.Signal, 64)
	conn.Signal(ch)
	e.publish("2")
	e.mustHostctl("upgrade")
	deadline := time.After(10 * time.Second)
	for {
		select {
		case sig := <-ch:
			if sig.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" {
				continue
			}
			changed, _ := sig.Body[1].(map[string]godbus.Variant)
			if v, ok := changed["DefaultDeployment"]; ok && strings.Contains(v.Value().(string), e.os.Commit("2")) {
				return
			}
		case <-deadline:
			t.Fatal("no PropertiesChanged naming the new default deployment")
		}
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	if r := e.hostctl("cancel"); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrNoTransaction) {
		t.Fatalf("cancel with nothing running: exit %d %s", r.Code, r.Stderr)
	}
	e.publish("2")
	e.srv.SetRate(10 << 10)
	cmd := exec.CommandContext(context.Background(), hostctlBin, "upgrade")
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.bus.Address)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the upgrade to start", func() bool { return e.status().Transaction != nil })
	time.Sleep(500 * time.Millisecond)
	if r := harness65534Cancel(e); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrAccessDenied) {
		t.Fatalf("cancel by nobody: exit %d %s", r.Code, r.Stderr)
	}
	if got := e.mustHostctl("cancel"); !strings.Contains(got, "Cancelled") {
		t.Fatalf("cancel: %s", got)
	}
	// libostree 2022.7 stops a cancelled pull once the requests in flight
	// end; lift the throttle so they do.
	e.srv.SetRate(0)
	err := cmd.Wait()
	if err == nil || !strings.Contains(out.String(), dbus.ErrCancelled) {
		t.Fatalf("cancelled upgrade: %v\n%s", err, out.String())
	}
	e.srv.SetRate(0)
	if got := versions(e.status()); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("cancelled upgrade changed the deployments: %v", got)
	}
	if hist := e.mustHostctl("history", "-n", "1"); !strings.Contains(hist, "cancelled") {
		t.Fatalf("history: %s", hist)
	}
	e.mustHostctl("upgrade")
	if got := versions(e.status()); !slices.Equal(got, []string{"2", "1"}) {
		t.Fatalf("upgrade after the cancel: %v", got)
	}
}
