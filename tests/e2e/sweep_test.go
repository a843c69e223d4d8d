package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// deployDirsOf lists the deployment checkouts of commit in the sysroot.
func deployDirsOf(t *testing.T, sysroot, commit string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(sysroot, "ostree", "deploy", fixture.OSName, "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), commit+".") && !strings.HasSuffix(en.Name(), ".origin") {
			out = append(out, en.Name())
		}
	}
	return out
}

// TestSweepAfterFinished: the removal of the replaced deployment runs after
// the transaction's Finished; hostd killed between the two leaves a host
// that boots, and its next start finishes the cleanup.
func TestSweepAfterFinished(t *testing.T) {
	e := newEnv(t)
	v1 := e.os.Commit("1")
	e.publish("2")
	e.mustHostctl("upgrade")
	e.hostd.Stop()
	e.hostd = nil

	// The upgrade to 3 replaces the deployment of 1; hostd dies right after
	// it sent Finished, before the cleanup.
	e.publish("3")
	e.startHostdBin(faultHostdBin(t), "--fault", "upgrade/sweep=kill")
	res := e.hostctl("upgrade")
	if res.Code != 0 {
		t.Fatalf("hostctl upgrade: exit %d\n%s\nhostd log:\n%s", res.Code, res.Stdout+res.Stderr, e.hostd.Log)
	}
	waitUntil(t, time.Minute, "hostd killed at the sweep fault point", func() bool { return strings.Contains(e.hostd.Log.String(), "fault point: killing hostd") })
	e.hostd.Stop()
	e.hostd = nil
	if bad := checkBoot(e.sysroot); len(bad) > 0 {
		t.Fatalf("after a crash between Finished and the cleanup the host does not boot cleanly: %v", bad)
	}
	if got := deployDirsOf(t, e.sysroot, v1); len(got) == 0 {
		t.Fatalf("the replaced deployment of version 1 is already gone: the cleanup ran before the fault point")
	}

	// The next start finishes the cleanup.
	e.startHostd()
	waitUntil(t, time.Minute, "the replaced deployment removed at start", func() bool { return len(deployDirsOf(t, e.sysroot, v1)) == 0 })
	if bad := checkBoot(e.sysroot); len(bad) > 0 {
		t.Fatalf("after the cleanup at start: %v", bad)
	}
	st := e.status()
	if vs := versions(st); len(vs) == 0 || vs[0] != "3" {
		t.Fatalf("deployments after the cleanup: %v, want 3 first", vs)
	}
}

// commitObject is the path of commit's object in the sysroot's repository.
func commitObject(sysroot, commit string) string {
	return filepath.Join(sysroot, "ostree", "repo", "objects", commit[:2], commit[2:]+".commit")
}

// TestSweepKilledDuringPrune: hostd killed inside the cleanup after
// Finished, once the replaced deployment is removed and before the
// repository prune, leaves a host that boots; the next start prunes what
// the removed deployment alone held.
func TestSweepKilledDuringPrune(t *testing.T) {
	e := newEnv(t)
	v1 := e.os.Commit("1")
	e.publish("2")
	e.mustHostctl("upgrade")
	e.hostd.Stop()
	e.hostd = nil

	e.publish("3")
	e.startHostdBin(faultHostdBin(t), "--fault", "upgrade/sweep-prune=kill")
	res := e.hostctl("upgrade")
	if res.Code != 0 {
		t.Fatalf("hostctl upgrade: exit %d\n%s\nhostd log:\n%s", res.Code, res.Stdout+res.Stderr, e.hostd.Log)
	}
	waitUntil(t, time.Minute, "hostd killed at the sweep-prune fault point", func() bool { return strings.Contains(e.hostd.Log.String(), "fault point: killing hostd") })
	e.hostd.Stop()
	e.hostd = nil
	if got := deployDirsOf(t, e.sysroot, v1); len(got) != 0 {
		t.Fatalf("the replaced deployment of version 1 is still there at the prune: %v", got)
	}
	if _, err := os.Stat(commitObject(e.sysroot, v1)); err != nil {
		t.Fatalf("the commit of version 1 is gone before the prune ran: %v", err)
	}
	if bad := checkBoot(e.sysroot); len(bad) > 0 {
		t.Fatalf("after a crash before the prune the host does not boot cleanly: %v", bad)
	}

	e.startHostd() // serves once the owed prune is done
	if _, err := os.Stat(commitObject(e.sysroot, v1)); !os.IsNotExist(err) {
		t.Fatalf("the commit of version 1 is still in the repository after the restart (%v): the owed prune did not run\nhostd log:\n%s", err, e.hostd.Log)
	}
	if !strings.Contains(e.hostd.Log.String(), "finishing the cleanup owed by the last transaction") {
		t.Errorf("hostd did not say it finished the owed cleanup:\n%s", e.hostd.Log)
	}
	if bad := checkBoot(e.sysroot); len(bad) > 0 {
		t.Fatalf("after the prune at start: %v", bad)
	}
	if st := e.status(); st.CleanupPending || len(versions(st)) != 2 || versions(st)[0] != "3" {
		t.Fatalf("status after the restart: cleanup pending %v, versions %v; want false, [3 2]", st.CleanupPending, versions(st))
	}
}

// TestCleanupPendingVisible: while the cleanup after a transaction runs
// (held here by hostd --debug-pause-before sweep), hostctl has already
// returned, CleanupPending is true (property, PropertiesChanged, `hostctl
// status`), and the next transaction waits for it and can be cancelled
// while it waits. A stop of hostd leaves the cleanup owed; the next start
// does it.
func TestCleanupPendingVisible(t *testing.T) {
	e := newEnv(t)
	v1 := e.os.Commit("1")
	e.publish("2")
	e.mustHostctl("upgrade")
	e.waitIdle()
	if st := e.status(); st.CleanupPending {
		t.Fatalf("CleanupPending after waitIdle: %+v", st)
	}
	e.hostd.Stop()

	e.startHostd("--debug-pause-before", "sweep")
	conn, err := godbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.AddMatchSignal(godbus.WithMatchObjectPath(dbus.HostPath), godbus.WithMatchInterface("org.freedesktop.DBus.Properties"), godbus.WithMatchMember("PropertiesChanged")); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *godbus.Signal, 256)
	conn.Signal(sigs)

	e.publish("3")
	start := time.Now()
	e.mustHostctl("upgrade") // returns at Finished, the cleanup held
	t.Logf("hostctl upgrade returned after %s with the cleanup still to run", time.Since(start).Round(time.Millisecond))
	st := e.status()
	if !st.CleanupPending || st.Transaction != nil {
		t.Fatalf("after the upgrade returned: cleanup pending %v, transaction %+v; want pending, no transaction", st.CleanupPending, st.Transaction)
	}
	if out := e.mustHostctl("status"); !strings.Contains(out, "State: busy") || !strings.Contains(out, "Cleanup: removing the deployment the last transaction replaced") {
		t.Fatalf("hostctl status while the cleanup runs:\n%s", out)
	}
	if len(deployDirsOf(t, e.sysroot, v1)) == 0 {
		t.Fatal("the replaced deployment of version 1 is gone although the cleanup is held")
	}
	sawTrue := false
	for drain := true; drain; {
		select {
		case sig := <-sigs:
			if len(sig.Body) >= 2 {
				changed, _ := sig.Body[1].(map[string]godbus.Variant)
				if v, ok := changed["CleanupPending"]; ok && v.Value() == true {
					sawTrue = true
				}
			}
		case <-time.After(2 * time.Second):
			drain = false
		}
	}
	if !sawTrue {
		t.Error("no PropertiesChanged with CleanupPending true")
	}

	// The next transaction starts, waits, and can be cancelled meanwhile.
	wait := e.startHostctl("kargs", "--append", "quiet")
	waitUntil(t, 30*time.Second, "the kargs transaction to begin", func() bool { return e.status().Transaction != nil })
	time.Sleep(time.Second)
	if st := e.status(); st.Transaction == nil || !st.CleanupPending {
		t.Fatalf("the kargs transaction did not wait for the cleanup: %+v", st)
	}
	e.cancelAndWaitIdle()
	if err, out := wait(); err == nil || !strings.Contains(out, "cleanup after the last transaction") {
		t.Fatalf("hostctl kargs while the cleanup was held: err %v, want cancelled while waiting for the cleanup:\n%s", err, out)
	}

	// Stopped before its cleanup ran: the next start does it.
	e.hostd.Stop()
	e.hostd = nil
	if len(deployDirsOf(t, e.sysroot, v1)) == 0 {
		t.Fatal("the replaced deployment of version 1 is gone although hostd stopped before the cleanup")
	}
	e.startHostd()
	if got := deployDirsOf(t, e.sysroot, v1); len(got) != 0 {
		t.Fatalf("the owed cleanup did not run at start: %v\nhostd log:\n%s", got, e.hostd.Log)
	}
	e.fsck()
	if st := e.status(); st.CleanupPending || len(st.Deployments) != 2 {
		t.Fatalf("after the restart: %+v", st)
	}

	// Without the pause, CleanupPending turns false with PropertiesChanged.
	for len(sigs) > 0 {
		<-sigs
	}
	conn2, err := godbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if err := conn2.AddMatchSignal(godbus.WithMatchObjectPath(dbus.HostPath), godbus.WithMatchInterface("org.freedesktop.DBus.Properties"), godbus.WithMatchMember("PropertiesChanged")); err != nil {
		t.Fatal(err)
	}
	sigs2 := make(chan *godbus.Signal, 256)
	conn2.Signal(sigs2)
	e.mustHostctl("kargs", "--append=quiet") // a new deployment of 3; the one of 2 is replaced
	var seen []bool
	deadline := time.After(time.Minute)
	for len(seen) < 2 || seen[len(seen)-1] {
		select {
		case sig := <-sigs2:
			if len(sig.Body) >= 2 {
				changed, _ := sig.Body[1].(map[string]godbus.Variant)
				if v, ok := changed["CleanupPending"]; ok {
					if b := v.Value().(bool); len(seen) == 0 || seen[len(seen)-1] != b {
						seen = append(seen, b)
					}
				}
			}
		case <-deadline:
			t.Fatalf("CleanupPending changes seen: %v; want true, then false", seen)
		}
	}
}

// startHostdBin starts the hostd at bin on the env's sysroot.
func (e *env) startHostdBin(bin string, flags ...string) {
	e.t.Helper()
	h, err := harness.StartHostd(e.ctx, bin, e.sysroot, e.bus, append([]string{"--service-manager", "direct"}, flags...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.hostd = h
}
