package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostctl/hostctl/bootloader"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

func TestUpgradeRollback(t *testing.T) {
	e := newEnv(t)
	st := e.status()
	if got := versions(st); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("initial versions %v", got)
	}
	human := e.mustHostctl("status")
	if !strings.Contains(human, "hostos:hostos/x86_64/stable") || !strings.Contains(human, "Version: 1") || !strings.Contains(human, st.Deployments[0].Checksum) {
		t.Fatalf("human status:\n%s", human)
	}

	if r := e.hostctl("upgrade", "--check"); r.Code != 77 || !strings.Contains(r.Stdout, "No updates available") {
		t.Fatalf("upgrade --check with nothing new: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	e.publish("2")
	if out := e.mustHostctl("upgrade", "--check"); !strings.Contains(out, "Version: 2") {
		t.Fatalf("upgrade --check:\n%s", out)
	}
	preview := e.mustHostctl("upgrade", "--preview")
	for _, want := range []string{"Version: 2", "Upgraded:", "hostos-kernel", "hostos-tools"} {
		if !strings.Contains(preview, want) {
			t.Fatalf("upgrade --preview lacks %q:\n%s", want, preview)
		}
	}
	if got := versions(e.status()); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("--check/--preview changed the deployments: %v", got)
	}

	loaderBefore := e.loaderTarget()
	out := e.mustHostctl("upgrade")
	if !strings.Contains(out, "Deployed") {
		t.Fatalf("upgrade output:\n%s", out)
	}
	st = e.status()
	if got := versions(st); !slices.Equal(got, []string{"2", "1"}) {
		t.Fatalf("after upgrade: %v", got)
	}
	if !st.Deployments[0].Default || st.Deployments[0].Checksum != e.os.Commit("2") {
		t.Fatalf("v2 is not the default: %+v", st.Deployments[0])
	}
	if after := e.loaderTarget(); after == loaderBefore {
		t.Fatalf("/boot/loader still points at %s", after)
	}
	ld, err := bootloader.Read(filepath.Join(e.sysroot, "boot"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ld.Entries) != 2 {
		t.Fatalf("BLS entries: %d, want 2", len(ld.Entries))
	}
	if err := bootloader.Verify(filepath.Join(e.sysroot, "boot")); err != nil {
		t.Fatal(err)
	}
	want := []string{st.Deployments[0].Checksum, st.Deployments[1].Checksum}
	if got := e.ostreeStatus(); !slices.Equal(got, want) {
		t.Fatalf("ostree admin status lists %v, hostctl %v", got, want)
	}
	if r := e.hostctl("upgrade"); r.Code != 0 || !strings.Contains(r.Stdout, "No upgrade available") {
		t.Fatalf("second upgrade: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Rollback swaps the order without rewriting either deployment.
	dirs := map[string]os.FileInfo{}
	for _, d := range st.Deployments {
		fi, err := os.Stat(deploymentPath(e.sysroot, d.OSName, d.Checksum, d.Serial))
		if err != nil {
			t.Fatal(err)
		}
		dirs[d.Checksum] = fi
	}
	e.mustHostctl("rollback")
	st = e.status()
	if got := versions(st); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("after rollback: %v", got)
	}
	for _, d := range st.Deployments {
		fi, err := os.Stat(deploymentPath(e.sysroot, d.OSName, d.Checksum, d.Serial))
		if err != nil || !os.SameFile(fi, dirs[d.Checksum]) {
			t.Fatalf("rollback rewrote deployment %s (%v)", d.ID, err)
		}
	}
	if got := e.ostreeStatus(); !slices.Equal(got, []string{e.os.Commit("1"), e.os.Commit("2")}) {
		t.Fatalf("ostree admin status after rollback: %v", got)
	}

	// deploy by version, rebase, cleanup.
	e.publish("3")
	e.mustHostctl("deploy", "2")
	if got := versions(e.status()); got[0] != "2" {
		t.Fatalf("deploy 2: %v", got)
	}
	e.mustHostctl("rebase", "hostos:"+fixture.TestingRef)
	st = e.status()
	if st.Deployments[0].Version != "10" || st.Deployments[0].Origin != "hostos:"+fixture.TestingRef {
		t.Fatalf("rebase: %+v", st.Deployments[0])
	}
	// A commit already in the repo deploys with the remote gone.
	e.srv.Stop()
	if out := e.mustHostctl("deploy", "revision="+e.os.Commit("2")); !strings.Contains(out, "already here") {
		t.Fatalf("deploy of a present commit:\n%s", out)
	}
	e.srv.Start()
	e.mustHostctl("cleanup", "-r")
	if got := versions(e.status()); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("cleanup -r left %v", got)
	}
	hist := e.mustHostctl("history")
	for _, kind := range []string{"upgrade", "rollback", "deploy", "rebase", "cleanup"} {
		if !strings.Contains(hist, kind) {
			t.Fatalf("history lacks %s:\n%s", kind, hist)
		}
	}
}

func deploymentPath(sysroot, osname, csum string, serial int32) string {
	return filepath.Join(sysroot, "ostree", "deploy", osname, "deploy", csum+"."+strconv.Itoa(int(serial)))
}

func TestBusyAndAccessDenied(t *testing.T) {
	e := newEnv(t)
	e.publish("2")
	// Reading is open to everyone.
	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "status"); r.Code != 0 || !strings.Contains(r.Stdout, "Version: 1") {
		t.Fatalf("status as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "upgrade")
	if r.Code != 1 || !strings.Contains(r.Stderr, "org.hostctl.Host1.Error.AccessDenied") {
		t.Fatalf("upgrade as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Two upgrades at once: a slow remote keeps the first one pulling.
	e.srv.SetRate(20 << 10)
	results := make([]harness.Result, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				waitUntil(t, 20*time.Second, "first transaction", func() bool { return e.status().Transaction != nil })
			}
			results[i] = e.hostctl("upgrade")
			if i == 1 {
				e.srv.SetRate(0)
			}
		}()
	}
	wg.Wait()
	if results[0].Code != 0 {
		t.Fatalf("first upgrade: exit %d\n%s%s", results[0].Code, results[0].Stdout, results[0].Stderr)
	}
	if results[1].Code != 1 || !strings.Contains(results[1].Stderr, "org.hostctl.Host1.Error.Busy") || !strings.Contains(results[1].Stderr, "upgrade") {
		t.Fatalf("second upgrade: exit %d\n%s%s", results[1].Code, results[1].Stdout, results[1].Stderr)
	}
	if got := versions(e.status()); !slices.Equal(got, []string{"2", "1"}) {
		t.Fatalf("after the upgrade: %v", got)
	}
}

// sysrootVersions reads the deployment list straight from the sysroot.
func sysrootVersions(t *testing.T, dir string) []string {
	t.Helper()
	sr, err := deploy.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	deps, err := sr.Deployments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var v []string
	for _, d := range deps {
		v = append(v, d.Version)
	}
	return v
}

// orphans lists deployment directories that no deployment owns.
func orphans(t *testing.T, dir string) []string {
	t.Helper()
	sr, err := deploy.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	deps, _ := sr.Deployments(context.Background())
	known := map[string]bool{}
	for _, d := range deps {
		known[d.Path] = true
	}
	all, _ := filepath.Glob(filepath.Join(dir, "ostree", "deploy", "*", "deploy", "*.[0-9]"))
	var out []string
	for _, p := range all {
		if !known[p] {
			out = append(out, p)
		}
	}
	return out
}

// killDuring starts `hostctl upgrade`, kills hostd with SIGKILL as soon as
// the client prints a line containing marker, and returns.
func killDuring(t *testing.T, e *env, marker string, wait func()) {
	t.Helper()
	cmd := exec.CommandContext(e.ctx, hostctlBin, "upgrade")
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.bus.Address)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	seen := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), marker) {
			if wait != nil {
				wait()
			}
			e.hostd.Kill()
			seen = true
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	cmd.Wait()
	if !seen {
		t.Fatalf("hostctl upgrade never printed %q\n%s", marker, e.hostd.Log)
	}
	e.hostd = nil
}

func TestKillDuringPullAndDeploy(t *testing.T) {
	e := newEnv(t)
	e.publish("2")

	// During the pull: the old set stays.
	e.srv.SetRate(20 << 10)
	sent := e.srv.BytesSent()
	killDuring(t, e, "Pulling", func() {
		waitUntil(t, 30*time.Second, "100 KB of the pull", func() bool { return e.srv.BytesSent() > sent+100<<10 })
	})
	time.Sleep(300 * time.Millisecond)
	if got := sysrootVersions(t, e.sysroot); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("after a kill during the pull: %v", got)
	}
	e.srv.SetRate(0)
	e.startHostd()
	hist := e.mustHostctl("history")
	if !strings.Contains(hist, "interrupted") || !strings.Contains(hist, "pull") {
		t.Fatalf("history after the kill:\n%s", hist)
	}

	// During the deploy: the old set or the new one, never a mix.
	killDuring(t, e, "Deploying", nil)
	got := sysrootVersions(t, e.sysroot)
	if !slices.Equal(got, []string{"1"}) && !slices.Equal(got, []string{"2", "1"}) {
		t.Fatalf("after a kill during the deploy: %v", got)
	}
	if err := bootloader.Verify(filepath.Join(e.sysroot, "boot")); err != nil {
		t.Fatalf("boot entries after a kill during the deploy: %v", err)
	}
	e.startHostd()
	if o := orphans(t, e.sysroot); len(o) > 0 {
		t.Fatalf("recovery left deployment dirs nothing owns: %v", o)
	}
	if got := versions(e.status()); !slices.Equal(got, []string{"1"}) {
		// The swap had completed before the kill: the upgrade is done.
		if !slices.Equal(got, []string{"2", "1"}) {
			t.Fatalf("status after recovery: %v", got)
		}
		return
	}
	e.mustHostctl("upgrade")
	if got := versions(e.status()); !slices.Equal(got, []string{"2", "1"}) {
		t.Fatalf("upgrade after recovery: %v", got)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	before := e.status()
	expectFail := func(name, want string, args ...string) {
		t.Helper()
		r := e.hostctl(args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Fatalf("%s: exit %d, want 1 and %q\nstdout:\n%s\nstderr:\n%s", name, r.Code, want, r.Stdout, r.Stderr)
		}
		if got := e.status(); !slices.Equal(versions(got), versions(before)) || got.Deployments[0].Checksum != before.Deployments[0].Checksum {
			t.Fatalf("%s changed the deployments: %v", name, versions(got))
		}
	}
	expectFail("unknown refspec", "hostos:no/such/ref", "rebase", "hostos:no/such/ref")
	expectFail("malformed refspec", "InvalidArgument", "rebase", "hostos:")
	expectFail("revision that does not exist", "NotFound", "deploy", "99")
	expectFail("commit that does not exist", "pull", "deploy", strings.Repeat("ab", 32))

	// A commit whose objects fail their checksum on the remote.
	if _, err := fixture.CorruptCommit(e.ctx, e.repo, e.os.Commit("2")); err != nil {
		t.Fatal(err)
	}
	e.publish("2")
	expectFail("corrupted commit", "upgrade", "upgrade")
	if !strings.Contains(e.mustHostctl("history", "-n", "1"), "failed") {
		t.Fatal("failed upgrade not in history")
	}

	// An unreachable remote.
	e.srv.Stop()
	expectFail("unreachable remote", "upgrade", "upgrade")

	// A sysroot that is not one.
	out, err := exec.Command(hostdBin, "--sysroot", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not an OSTree sysroot") {
		t.Fatalf("hostd on a plain directory: %v\n%s", err, out)
	}
}

// TestRebasePreview: `rebase --preview` fetches the other ref's commit and
// package database and prints what a rebase would change; nothing is
// deployed and the host still follows its ref.
func TestRebasePreview(t *testing.T) {
	e := newEnv(t)
	deps, loader, entries := e.ostreeStatus(), e.loaderTarget(), e.bootEntries()
	out := e.mustHostctl("rebase", "--preview", "hostos:"+fixture.TestingRef)
	v10 := e.os.Commit("10")
	if !strings.Contains(out, "AvailableUpdate:") || !strings.Contains(out, v10) || !strings.Contains(out, "Version: 10") {
		t.Fatalf("rebase --preview printed no AvailableUpdate of commit %s version 10:\n%s", v10, out)
	}
	changes := rpmQAChanges(e.rpmQAOfCommit(e.os.Commit("1")), e.rpmQAOfCommit(v10))
	if len(changes) == 0 {
		t.Fatal("the fixture's versions 1 and 10 have the same packages: nothing to preview")
	}
	for _, name := range changes {
		if n := name[:strings.LastIndex(name, ".")]; !strings.Contains(out, n) {
			t.Errorf("rebase --preview does not name the changed package %s:\n%s", n, out)
		}
	}
	e.unchanged("rebase --preview", deps, loader, entries)
	if st := e.status(); st.Deployments[0].Origin != refspec {
		t.Fatalf("after rebase --preview the default follows %s, want %s", st.Deployments[0].Origin, refspec)
	}
}
