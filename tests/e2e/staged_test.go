package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// TestStageNeedsBootedHost is issue 15 item 7 on a sysroot that is not
// booted: upgrade, deploy and rebase with --stage are refused with a plain
// reason before anything is pulled, and nothing changes.
func TestStageNeedsBootedHost(t *testing.T) {
	e := newEnv(t)
	e.publish("2")
	deps, loader, entries := e.ostreeStatus(), e.loaderTarget(), e.bootEntries()
	for _, args := range [][]string{
		{"upgrade", "--stage"},
		{"upgrade", "--stage", "--lock-finalization"},
		{"deploy", "--stage", "version=2"},
		{"rebase", "--stage", refspec},
	} {
		r := e.hostctl(args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "staging needs a booted host") {
			t.Fatalf("hostctl %s on a sysroot that is not booted: exit %d, want the refusal \"staging needs a booted host\"\nstdout:\n%s\nstderr:\n%s",
				strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		}
		e.unchanged("hostctl "+strings.Join(args, " "), deps, loader, entries)
	}
	if r := e.hostctl("upgrade", "--lock-finalization"); r.Code == 0 || !strings.Contains(r.Stderr, "lock-finalization needs stage") {
		t.Fatalf("upgrade --lock-finalization without --stage: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	e.unchanged("upgrade --lock-finalization", deps, loader, entries)
	// Nothing is staged, and nothing can be here.
	for _, args := range [][]string{{"finalize"}, {"finalize", "--reboot"}} {
		if r := e.hostctl(args...); r.Code == 0 || !strings.Contains(r.Stderr, "no booted deployment") {
			t.Fatalf("hostctl %s on a sysroot that is not booted: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		}
	}
	if r := e.hostctl("finalize", "not-a-checksum"); r.Code == 0 || !strings.Contains(r.Stderr, "is not a commit checksum") {
		t.Fatalf("finalize not-a-checksum: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := e.hostctl("finalize", "--now"); r.Code == 0 || !strings.Contains(r.Stderr, "unknown flag: --now") {
		t.Fatalf("finalize --now: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "finalize"); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrAccessDenied) {
		t.Fatalf("finalize as uid 65534: exit %d, want %s\n%s%s", r.Code, dbus.ErrAccessDenied, r.Stdout, r.Stderr)
	}
	e.unchanged("finalize", deps, loader, entries)
	// Without --stage the same upgrade deploys.
	e.mustHostctl("upgrade")
	if st := e.status(); st.Deployments[0].Version != "2" || st.Deployments[0].Staged {
		t.Fatalf("upgrade after the refusals: default %+v, want version 2, not staged", st.Deployments[0])
	}
}

// TestStagedBootedHost is issue 15 item 7 on the booted test host:
// a staged deployment enters the boot entries at shutdown
// (ostree-finalize-staged.service in the machine); one staged with
// --lock-finalization is dropped by a reboot until `hostctl finalize`
// unlocks it; `hostctl finalize --reboot` reboots into it.
func TestStagedBootedHost(t *testing.T) {
	e := newBootedEnv(t)
	e.publish("2")

	// Staged: the boot entries do not change until the shutdown.
	before, err := fixture.DefaultBootEntry(e.sysroot)
	if err != nil {
		t.Fatal(err)
	}
	out := e.mustHostctl("upgrade", "--stage")
	if !strings.Contains(out, "Staged ") {
		t.Fatalf("upgrade --stage printed no \"Staged\" line:\n%s", out)
	}
	def := e.stagedDefault("2", false)
	if after, err := fixture.DefaultBootEntry(e.sysroot); err != nil || after.File != before.File || after.Ostree() != before.Ostree() {
		t.Fatalf("the default boot entry changed at staging (%v): before %s %s, after %s %s", err, before.File, before.Ostree(), after.File, after.Ostree())
	}
	if out := e.mustHostctl("status"); !strings.Contains(out, "Staged: yes: it enters the boot entries at shutdown") {
		t.Fatalf("status does not show the staged deployment %s as staged:\n%s", def.ID, out)
	}
	e.boot()
	e.expectBooted("2")

	// Locked: a reboot drops it.
	e.mustHostctl("deploy", "--stage", "--lock-finalization", "version=1")
	e.stagedDefault("1", true)
	if out := e.mustHostctl("status"); !strings.Contains(out, "finalization locked") {
		t.Fatalf("status does not say the finalization is locked:\n%s", out)
	}
	if r := e.host.Run(e.ctx, 0, "test", "-e", "/run/ostree/staged-deployment-locked"); r.Code != 0 {
		t.Fatalf("/run/ostree/staged-deployment-locked is missing in the machine after --lock-finalization")
	}
	e.boot()
	e.expectBooted("2")
	for _, d := range e.status().Deployments {
		if d.Staged {
			t.Fatalf("after the reboot a deployment is still staged: %+v", d)
		}
	}

	// Locked, then finalized: the reboot boots it.
	e.mustHostctl("deploy", "--stage", "--lock-finalization", "version=1")
	staged := e.stagedDefault("1", true)
	if r := e.hostctl(0, "finalize", "0000beef"); r.Code == 0 || !strings.Contains(r.Stderr, "not commit 0000beef") {
		t.Fatalf("finalize with another commit's checksum: exit %d, want a refusal naming it\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := e.hostctl(fixture.BootedUID, "finalize"); r.Code == 0 || !strings.Contains(r.Stderr, "not authorized for org.hostctl.host.upgrade") {
		t.Fatalf("finalize as %s: exit %d, want polkit's refusal\n%s%s", fixture.BootedUser, r.Code, r.Stdout, r.Stderr)
	}
	e.stagedDefault("1", true)
	out = e.mustHostctl("finalize", staged.Checksum)
	if !strings.Contains(out, "unlocked") {
		t.Fatalf("finalize printed:\n%s", out)
	}
	e.stagedDefault("1", false)
	e.boot()
	e.expectBooted("1")

	// finalize --reboot: the host reboots by itself into the staged deployment.
	e.mustHostctl("deploy", "--stage", "--lock-finalization", "version=2")
	e.stagedDefault("2", true)
	r := e.hostctl(0, "finalize", "--reboot")
	t.Logf("finalize --reboot: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	if r.Code != 0 {
		t.Fatalf("finalize --reboot: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if err := e.host.AwaitReboot(e.ctx, 2*time.Minute); err != nil {
		t.Fatalf("after finalize --reboot: %v", err)
	}
	e.expectBooted("2")

	// rebase --stage: another ref, staged; the next boot follows it.
	if out, err := exec.CommandContext(e.ctx, "ostree", "--repo="+e.repo, "commit", "--branch="+fixture.TestingRef,
		"--tree=ref="+e.os.Commits["2"], "--add-metadata-string=version=10", "--subject=HostOS 10").CombinedOutput(); err != nil {
		t.Fatalf("commit the testing ref: %v\n%s", err, out)
	}
	if err := fixture.RegenerateSummary(e.repo); err != nil {
		t.Fatal(err)
	}
	e.mustHostctl("rebase", "--stage", remote+":"+fixture.TestingRef)
	if d := e.stagedDefault("10", false); !strings.HasSuffix(d.Origin, fixture.TestingRef) {
		t.Fatalf("rebase --stage: the staged deployment follows %q, want %s", d.Origin, fixture.TestingRef)
	}
	e.boot()
	// Version 10 is version 2's tree under another ref and version.
	if booted, _ := bootedAndDefault(t, e.status()); booted.Version != "10" || !strings.HasSuffix(booted.Origin, fixture.TestingRef) {
		t.Fatalf("after the boot: booted %+v, want version 10 following %s", booted, fixture.TestingRef)
	}
}

// stagedDefault checks that the default deployment is version, staged, with
// its finalization locked or not, and returns it.
func (e *bootedEnv) stagedDefault(version string, locked bool) dbus.Deployment {
	e.t.Helper()
	st := e.status()
	booted, def := bootedAndDefault(e.t, st)
	if def.Version != version || !def.Staged || def.FinalizationLocked != locked || def.ID == booted.ID {
		e.t.Fatalf("default deployment %+v; want version %s staged, finalization locked %v, not the booted one", def, version, locked)
	}
	return def
}
