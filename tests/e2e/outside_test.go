package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
)

// TestOutsideChanges is issue 15 item 9's last part: what other tools change
// while hostd runs is seen without a restart. Deployments pinned or removed
// by `ostree admin` show in the next status, with PropertiesChanged for
// Deployments sent to the bus; a .repo file written into /etc/yum.repos.d
// serves the next pkg-add.
func TestOutsideChanges(t *testing.T) {
	e := newEnv(t)
	e.publish("2")
	e.mustHostctl("upgrade")
	if got := len(e.status().Deployments); got != 2 {
		t.Fatalf("after upgrade: %d deployments, want 2", got)
	}

	conn, err := godbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	match := []godbus.MatchOption{godbus.WithMatchObjectPath(dbus.HostPath), godbus.WithMatchInterface("org.freedesktop.DBus.Properties"), godbus.WithMatchMember("PropertiesChanged")}
	if err := conn.AddMatchSignalContext(e.ctx, match...); err != nil {
		t.Fatal(err)
	}
	signals := make(chan *godbus.Signal, 64)
	conn.Signal(signals)
	// awaitDeployments waits for a PropertiesChanged carrying Deployments
	// that satisfies ok.
	awaitDeployments := func(what string, ok func([]dbus.Deployment) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case sig := <-signals:
				var iface string
				var changed map[string]godbus.Variant
				var invalidated []string
				if godbus.Store(sig.Body, &iface, &changed, &invalidated) != nil {
					continue
				}
				v, has := changed["Deployments"]
				if !has {
					continue
				}
				var raw []map[string]godbus.Variant
				if err := v.Store(&raw); err != nil {
					t.Fatalf("Deployments in PropertiesChanged: %v", err)
				}
				deps := dbus.DeploymentsFromBus(raw)
				if ok(deps) {
					return
				}
			case <-deadline:
				t.Fatalf("%s: no PropertiesChanged with the new Deployments in 30 s; status now: %+v", what, e.status().Deployments)
			}
		}
	}
	ostreeAdmin := func(args ...string) {
		t.Helper()
		args = append([]string{"admin"}, append(args, "--sysroot="+e.sysroot)...)
		if out, err := exec.Command("ostree", args...).CombinedOutput(); err != nil {
			t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	ostreeAdmin("pin", "1")
	awaitDeployments("ostree admin pin 1", func(d []dbus.Deployment) bool { return len(d) == 2 && d[1].Pinned })
	if st := e.status(); !st.Deployments[1].Pinned || st.Deployments[0].Pinned {
		t.Fatalf("status after ostree admin pin 1: %+v", st.Deployments)
	}
	if out := e.mustHostctl("status"); !strings.Contains(out, "Pinned: yes") {
		t.Fatalf("hostctl status after ostree admin pin 1:\n%s", out)
	}
	ostreeAdmin("pin", "--unpin", "1")
	awaitDeployments("ostree admin pin --unpin 1", func(d []dbus.Deployment) bool { return len(d) == 2 && !d[1].Pinned })

	ostreeAdmin("undeploy", "1")
	awaitDeployments("ostree admin undeploy 1", func(d []dbus.Deployment) bool { return len(d) == 1 && d[0].Version == "2" })
	if st := e.status(); len(st.Deployments) != 1 || st.Deployments[0].Version != "2" {
		t.Fatalf("status after ostree admin undeploy 1: %+v", st.Deployments)
	}
	// hostd works on from there: a rollback has nothing to go back to.
	if r := e.hostctl("rollback"); r.Code == 0 {
		t.Fatalf("rollback after the rollback deployment was undeployed: exit 0\n%s", r.Stdout)
	}

	// A repository added to /etc/yum.repos.d after hostd started serves the next pkg-add.
	srv := e.serveRPMs(nil, nil, nil)
	if r := e.hostctl("pkg-add", "hello-layer"); r.Code == 0 {
		t.Fatalf("pkg-add with no repository configured: exit 0\n%s", r.Stdout)
	}
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	e.mustHostctl("pkg-add", "hello-layer")
	if d := e.status().Deployments[0]; len(d.Packages) != 1 || d.Packages[0] != "hello-layer" {
		t.Fatalf("after pkg-add from the new .repo file the default layers %v", d.Packages)
	}
}
