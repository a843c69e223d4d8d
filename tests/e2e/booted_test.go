package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/internal/testutil"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// bootedEnv is the booted test host: the booted test OS (Debian 12 with
// systemd, dbus, polkitd and hostd as `make install` installs it) served
// on 127.0.0.1, deployed into a fresh sysroot and booted from its default
// BLS entry. hostd runs inside the machine, started by D-Bus activation;
// hostctl runs inside it too, as root or as the unprivileged test user.
type bootedEnv struct {
	t       *testing.T
	ctx     context.Context
	os      *fixture.BootedOS
	repo    string
	sysroot string
	host    *fixture.BootedHost
}

func newBootedEnv(t *testing.T) *bootedEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a test host")
	}
	if os.Geteuid() != 0 {
		harness.Skip(t, "booting a sysroot with systemd-nspawn needs root")
	}
	for _, bin := range []string{"systemd-nspawn", "nsenter", "make"} {
		if _, err := exec.LookPath(bin); err != nil {
			harness.Skip(t, "%s is not installed: %v (apt-get install -y systemd-container util-linux make)", bin, err)
		}
	}
	ctx := t.Context()
	start := time.Now()
	install := t.TempDir()
	if out, err := exec.CommandContext(ctx, "make", "-C", "../..", "install", "DESTDIR="+install).CombinedOutput(); err != nil {
		t.Fatalf("make install DESTDIR=%s: %v\n%s", install, err, out)
	}
	b, err := fixture.BuildBootedOS(ctx, install)
	var de *fixture.DebootstrapError
	if errors.As(err, &de) {
		harness.Skip(t, "no Debian root for the booted test OS (no mirror?): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("booted test OS ready in %v (%s)", time.Since(start).Round(time.Millisecond), b.Dir)
	e := &bootedEnv{t: t, ctx: ctx, os: b}
	e.repo = filepath.Join(t.TempDir(), "remote")
	if err := fixture.CopyRepo(b.RepoPath, e.repo); err != nil {
		t.Fatal(err)
	}
	e.publish("1")
	srv, err := fixture.NewServer(e.repo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	e.sysroot = testutil.TempSysrootDir(t)
	start = time.Now()
	if err := harness.NewSysroot(ctx, e.sysroot, fixture.OSName, srv.URL(), refspec, b.Commits["1"]); err != nil {
		t.Fatalf("deploy version 1 into a fresh sysroot: %v", err)
	}
	t.Logf("version 1 deployed in %v", time.Since(start).Round(time.Millisecond))
	e.boot()
	return e
}

func (e *bootedEnv) publish(version string) {
	e.t.Helper()
	if err := fixture.SetRef(e.ctx, e.repo, fixture.StableRef, e.os.Commits[version]); err != nil {
		e.t.Fatal(err)
	}
}

func (e *bootedEnv) boot() {
	e.t.Helper()
	start := time.Now()
	var err error
	if e.host == nil {
		e.host, err = fixture.BootSysroot(e.ctx, e.sysroot)
		if err == nil {
			e.t.Cleanup(func() {
				if err := e.host.Close(); err != nil {
					e.t.Errorf("power off the booted host: %v", err)
				}
			})
		}
	} else {
		err = e.host.Reboot(e.ctx)
	}
	if err != nil {
		e.t.Fatalf("boot %s: %v", e.sysroot, err)
	}
	e.t.Logf("boot %d: entry %s (%s), deployment %s, up in %v", e.host.Boots, filepath.Base(e.host.Entry.File),
		e.host.Entry.Title, filepath.Base(e.host.Deployment), time.Since(start).Round(time.Millisecond))
}

// hostctl runs hostctl inside the machine as uid.
func (e *bootedEnv) hostctl(uid int, args ...string) fixture.RunResult {
	return e.host.Run(e.ctx, uid, append([]string{"/usr/bin/hostctl"}, args...)...)
}

// mustHostctl runs hostctl as root in the machine and fails unless it exits 0.
func (e *bootedEnv) mustHostctl(args ...string) string {
	e.t.Helper()
	r := e.hostctl(0, args...)
	if r.Code != 0 {
		e.t.Fatalf("hostctl %s: exit %d\nstdout:\n%s\nstderr:\n%s\nhostd's journal:\n%s", strings.Join(args, " "),
			r.Code, r.Stdout, r.Stderr, e.host.Machine.Journal(e.ctx, "hostd.service"))
	}
	return r.Stdout
}

func (e *bootedEnv) status() dbus.Status {
	e.t.Helper()
	var st dbus.Status
	out := e.mustHostctl("status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// bootedAndDefault are the booted and the default deployment of st.
func bootedAndDefault(t *testing.T, st dbus.Status) (booted, def dbus.Deployment) {
	t.Helper()
	for _, d := range st.Deployments {
		if d.Booted {
			booted = d
		}
		if d.Default {
			def = d
		}
	}
	if booted.ID == "" {
		t.Fatalf("no deployment is booted: %+v", st.Deployments)
	}
	return booted, def
}

// expectBooted checks that version is booted, as hostd reports it and as
// the machine runs it (the version's hostos-tools and kernel).
func (e *bootedEnv) expectBooted(version string) {
	e.t.Helper()
	booted, _ := bootedAndDefault(e.t, e.status())
	if booted.Version != version {
		e.t.Fatalf("booted version %q, want %q", booted.Version, version)
	}
	r := e.host.Run(e.ctx, 0, "/usr/bin/hostos-hello")
	if want := "hostos-hello " + version; strings.TrimSpace(r.Stdout) != want {
		e.t.Fatalf("hostos-hello in the machine printed %q (exit %d, %s), want %q", r.Stdout, r.Code, r.Stderr, want)
	}
	if kver := e.os.Kernels[version]; !strings.Contains(e.host.Entry.Linux, kver) {
		e.t.Fatalf("the boot entry's kernel %s is not version %s's %s", e.host.Entry.Linux, version, kver)
	}
}

// TestBootedHost boots the test OS the way a machine does and drives it as
// its users would: activation, polkit, upgrade, reboot, rollback.
func TestBootedHost(t *testing.T) {
	e := newBootedEnv(t)

	if st, err := e.host.UnitActiveState(e.ctx, "hostd.service"); err != nil || st != "inactive" {
		t.Fatalf("hostd.service before the first hostctl call: %q, %v; want inactive (started by D-Bus activation)", st, err)
	}
	out := e.mustHostctl("status")
	if st, err := e.host.UnitActiveState(e.ctx, "hostd.service"); err != nil || st != "active" {
		t.Fatalf("hostd.service after hostctl status: %q, %v; want active", st, err)
	}
	if !strings.Contains(out, "● "+refspec) || strings.Contains(out, "not booted") {
		t.Fatalf("hostctl status does not mark the booted deployment with ●:\n%s", out)
	}
	e.expectBooted("1")

	// The unprivileged user reads status, and polkit refuses them every change.
	if r := e.hostctl(fixture.BootedUID, "status"); r.Code != 0 || !strings.Contains(r.Stdout, "● ") {
		t.Fatalf("hostctl status as %s: exit %d\n%s%s", fixture.BootedUser, r.Code, r.Stdout, r.Stderr)
	}
	for _, tc := range []struct {
		args   []string
		action string
	}{
		{[]string{"upgrade"}, "org.hostctl.host.upgrade"},
		{[]string{"pkg-add", "hello-layer"}, "org.hostctl.host.packages"},
		{[]string{"rollback"}, "org.hostctl.host.rollback"},
		{[]string{"cleanup"}, "org.hostctl.host.cleanup"},
		{[]string{"kargs", "--append=quiet"}, "org.hostctl.host.kargs"},
		{[]string{"pin", "0"}, "org.hostctl.host.upgrade"},
		{[]string{"reset"}, "org.hostctl.host.packages"},
		{[]string{"remote", "add", "evil", "http://127.0.0.1:1/"}, "org.hostctl.host.upgrade"},
		{[]string{"upgrade", "--trigger-automatic-update-policy"}, "org.hostctl.host.upgrade"},
	} {
		r := e.hostctl(fixture.BootedUID, tc.args...)
		// polkit's own refusal, not hostd's rule for a bus without polkit.
		if r.Code == 0 || !strings.Contains(r.Stderr, "not authorized for "+tc.action) || strings.Contains(r.Stderr, "polkit not running") {
			t.Fatalf("hostctl %s as %s: exit %d, want a refusal naming %s\nstdout:\n%s\nstderr:\n%s",
				strings.Join(tc.args, " "), fixture.BootedUser, r.Code, tc.action, r.Stdout, r.Stderr)
		}
	}
	if got := len(e.status().Deployments); got != 1 {
		t.Fatalf("after the refused changes there are %d deployments, want 1", got)
	}

	// Root upgrades: v1 stays booted, v2 waits for the reboot.
	e.publish("2")
	e.mustHostctl("upgrade")
	booted, def := bootedAndDefault(t, e.status())
	if booted.Version != "1" || def.Version != "2" {
		t.Fatalf("after upgrade: booted %q, default %q; want booted 1, pending 2", booted.Version, def.Version)
	}
	e.boot()
	e.expectBooted("2")

	e.mustHostctl("rollback")
	if _, def := bootedAndDefault(t, e.status()); def.Version != "1" {
		t.Fatalf("after rollback the default is version %q, want 1", def.Version)
	}
	e.boot()
	e.expectBooted("1")
}

// TestBootedPendingChanges is issue 13 item 2 on the booted host: a change
// made while another waits for the reboot builds on the pending one.
func TestBootedPendingChanges(t *testing.T) {
	e := newBootedEnv(t)
	e.mustHostctl("pkg-add", "hello-layer")
	e.mustHostctl("pkg-add", "hello-etc")
	booted, def := bootedAndDefault(t, e.status())
	if len(booted.Packages) != 0 {
		t.Fatalf("the booted deployment changed before the reboot: packages %v", booted.Packages)
	}
	e.boot()
	booted, _ = bootedAndDefault(t, e.status())
	var missing []string
	for _, p := range []string{"hello-layer", "hello-etc"} {
		if !slices.Contains(booted.Packages, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("after `pkg-add hello-layer; pkg-add hello-etc; reboot` the booted deployment layers %v, missing %v "+
			"(the pending deployment before the reboot had %v): the second change started from the booted "+
			"deployment's origin instead of the default (pending) one and dropped the first (issue 13 item 2)",
			booted.Packages, missing, def.Packages)
	}
	r := e.host.Run(e.ctx, 0, "rpm", "--dbpath", fixture.RPMDBPath, "-q", "hello-layer", "hello-lib", "hello-etc")
	if r.Code != 0 {
		t.Fatalf("rpm -q in the booted host: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := e.host.Run(e.ctx, 0, "/usr/bin/hello-layer"); !strings.Contains(r.Stdout, "hello-layer 1.0 with hello-lib") {
		t.Fatalf("hello-layer in the booted host: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
