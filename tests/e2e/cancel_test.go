package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
)

// startHostctl starts hostctl (as root) in the background; wait returns its
// exit error and combined output.
func (e *env) startHostctl(args ...string) (wait func() (error, string)) {
	e.t.Helper()
	cmd := exec.Command(hostctlBin, args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.bus.Address)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	e.t.Cleanup(func() { cmd.Process.Kill() })
	return func() (error, string) {
		select {
		case err := <-done:
			return err, out.String()
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			return <-done, out.String() + "\n(hostctl killed after 30 s)"
		}
	}
}

// cancelAndWaitIdle runs `hostctl cancel` and checks hostd has no
// transaction within 15 s of it (the 2 s grace between SIGTERM and SIGKILL
// plus the cleanup, with room for a loaded CI machine; the stalls and
// hangs the tests cancel last minutes); it returns how long that took.
func (e *env) cancelAndWaitIdle() time.Duration {
	e.t.Helper()
	start := time.Now()
	if got := e.mustHostctl("cancel"); !strings.Contains(got, "Cancelled") {
		e.t.Fatalf("cancel: %s", got)
	}
	for {
		if e.status().Transaction == nil {
			return time.Since(start)
		}
		if time.Since(start) > 15*time.Second {
			e.t.Fatalf("hostd still runs the transaction 15 s after the cancel\nhostd log:\n%s", e.hostd.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processesMatching lists the processes whose command line contains s.
func processesMatching(s string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, en := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if cl := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cl, s) {
			out = append(out, en.Name()+": "+cl)
		}
	}
	return out
}

// TestCancelStalledUpgrade: the remote accepts connections and never
// answers; `hostctl cancel` 2 s into the upgrade leaves hostd idle within
// 15 s, the transaction is recorded as cancelled, and the next upgrade
// against the healthy remote succeeds.
func TestCancelStalledUpgrade(t *testing.T) {
	e := newEnv(t)
	e.publish("2")
	e.srv.SetStall(fixture.StallAll(fixture.StallNoAnswer))
	wait := e.startHostctl("upgrade")
	waitUntil(t, 20*time.Second, "the upgrade to start", func() bool { return e.status().Transaction != nil })
	time.Sleep(2 * time.Second)
	if e.status().Transaction == nil {
		t.Fatal("the upgrade ended on its own against a remote that never answers")
	}
	took := e.cancelAndWaitIdle()
	t.Logf("idle %v after the cancel", took.Round(time.Millisecond))
	if err, out := wait(); err == nil || !strings.Contains(out, dbus.ErrCancelled) {
		t.Fatalf("cancelled upgrade: %v\n%s", err, out)
	}
	if rec := e.lastHistory(); rec.State != "cancelled" || rec.Kind != "upgrade" {
		t.Fatalf("history records the upgrade as %s %s (%s), want cancelled", rec.Kind, rec.State, rec.Error)
	}
	if got := versions(e.status()); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("the cancelled upgrade changed the deployments: %v", got)
	}
	if left := processesMatching(hostdBin + " pull-helper"); len(left) > 0 {
		t.Errorf("pull helper left after the cancel: %v", left)
	}
	e.srv.SetStall(nil)
	e.mustHostctl("upgrade")
	if got := versions(e.status()); !slices.Equal(got, []string{"2", "1"}) {
		t.Fatalf("upgrade after the cancel: %v", got)
	}
}

// hangSpec is a package whose %post never ends (and ignores TERM).
const hangSpec = `Name:           hostctl-cancel-hang
Version:        1.0
Release:        1
Summary:        A %post that hangs
License:        MIT
BuildArch:      noarch

%description
Its %post sleeps for ten minutes, ignoring SIGTERM.

%install
mkdir -p %{buildroot}/usr/share/hostctl-cancel-hang

%post
trap '' TERM
busybox sleep 617
exit 0

%files
%dir /usr/share/hostctl-cancel-hang
`

// TestCancelHangingScript: pkg-add of a package whose %post hangs;
// `hostctl cancel` while it runs leaves hostd idle within 15 s, the
// transaction recorded as cancelled, no bwrap or script process left,
// nothing mounted under the sysroot, nothing changed, and the next pkg-add
// succeeds.
func TestCancelHangingScript(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	spec := filepath.Join(dir, "hostctl-cancel-hang.spec")
	if err := os.WriteFile(spec, []byte(hangSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	rpms, err := fixture.BuildRPMs(e.ctx, filepath.Join(dir, "out"), fixture.Spec{Path: spec})
	if err != nil {
		t.Fatal(err)
	}
	srv := e.serveRPMs(rpms, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	before := e.snapshot()

	wait := e.startHostctl("pkg-add", "hostctl-cancel-hang")
	const script = "busybox sleep 617"
	waitUntil(t, 90*time.Second, "the %post to run", func() bool { return len(processesMatching(script)) > 0 })
	took := e.cancelAndWaitIdle()
	t.Logf("idle %v after the cancel", took.Round(time.Millisecond))
	err, out := wait()
	if err == nil || !strings.Contains(out, dbus.ErrCancelled) {
		t.Fatalf("cancelled pkg-add: %v\n%s", err, out)
	}
	if strings.Contains(out, "script failed") {
		t.Errorf("the cancelled script is reported as failed:\n%s", out)
	}
	if rec := e.lastHistory(); rec.State != "cancelled" {
		t.Fatalf("history records the pkg-add as %s (%s), want cancelled", rec.State, rec.Error)
	}
	for _, p := range []string{script, "RPM_PACKAGE_NAME hostctl-cancel-hang"} {
		if left := processesMatching(p); len(left) > 0 {
			t.Errorf("processes left after the cancel: %v", left)
		}
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mounts), e.sysroot) {
		t.Errorf("mounts under the sysroot after the cancel:\n%s", grepLines(string(mounts), e.sysroot))
	}
	after := e.snapshot()
	// The package imported into the repo's package cache (a hostctl/pkg/
	// ref) stays for the next pkg-add to reuse, like a pull's objects;
	// nothing else may change.
	if !slices.Equal(after.deployments, before.deployments) || withoutPkgCache(after.refs) != withoutPkgCache(before.refs) {
		t.Errorf("the cancelled pkg-add changed the sysroot:\nbefore %+v\nafter  %+v", before, after)
	}
	if len(after.scratch) > len(before.scratch) {
		t.Errorf("the cancelled pkg-add left scratch directories: %v", after.scratch)
	}

	e.mustHostctl("pkg-add", "hello-layer")
	_, dep := e.defaultDeployment()
	if out, err := e.rpmQuery(dep, "hello-layer"); err != nil {
		t.Fatalf("hello-layer not in the new deployment's rpmdb after the cancelled pkg-add: %v %s", err, out)
	}
}

func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// withoutPkgCache drops the package cache's refs from a refs listing.
func withoutPkgCache(refs string) string {
	var out []string
	for _, r := range strings.Split(refs, "\n") {
		if !strings.HasPrefix(r, "hostctl/pkg/") {
			out = append(out, r)
		}
	}
	return strings.Join(out, "\n")
}
