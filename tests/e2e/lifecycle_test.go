package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/bootloader"
	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// bootEntries reads the BLS entries /boot/loader points at, default first.
func (e *env) bootEntries() []bootloader.Entry {
	e.t.Helper()
	ld, err := bootloader.Read(filepath.Join(e.sysroot, "boot"))
	if err != nil {
		e.t.Fatalf("read the boot entries: %v", err)
	}
	if err := bootloader.Verify(filepath.Join(e.sysroot, "boot")); err != nil {
		e.t.Fatalf("boot entries: %v", err)
	}
	return ld.Entries
}

// userArgs is an entry's options without libostree's ostree=.
func userArgs(en bootloader.Entry) []string {
	var out []string
	for _, a := range en.Kargs().Args() {
		if a.Key != "ostree" {
			out = append(out, a.String())
		}
	}
	return out
}

// originOf reads a deployment's origin file.
func (e *env) originOf(d dbus.Deployment) string {
	e.t.Helper()
	return readFile(e.t, deploymentPath(e.sysroot, d.OSName, d.Checksum, d.Serial)+".origin")
}

// unchanged fails unless the deployments, the loader and the entries are as before.
func (e *env) unchanged(what string, deps []string, loader string, entries []bootloader.Entry) {
	e.t.Helper()
	if got := e.ostreeStatus(); !slices.Equal(got, deps) {
		e.t.Fatalf("%s changed the deployments: %v -> %v", what, deps, got)
	}
	if got := e.loaderTarget(); got != loader {
		e.t.Fatalf("%s swapped /boot/loader: %s -> %s", what, loader, got)
	}
	got := e.bootEntries()
	if len(got) != len(entries) {
		e.t.Fatalf("%s changed the boot entries: %d -> %d", what, len(entries), len(got))
	}
	for i := range got {
		if got[i].Options != entries[i].Options {
			e.t.Fatalf("%s changed entry %d: %q -> %q", what, i, entries[i].Options, got[i].Options)
		}
	}
}

// hasSeq reports whether want appears in args in order, one after the other.
func hasSeq(args, want []string) bool {
	for i := 0; i+len(want) <= len(args); i++ {
		if slices.Equal(args[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

func TestKargs(t *testing.T) {
	e := newEnv(t)
	base := e.status().Deployments[0]
	entries := e.bootEntries()
	orig := userArgs(entries[0])

	// Reading: the default entry's arguments without ostree=, for everyone.
	if got := strings.TrimSpace(e.mustHostctl("kargs")); got != strings.Join(orig, " ") {
		t.Fatalf("hostctl kargs printed %q; the entry has %q", got, orig)
	}
	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "kargs"); r.Code != 0 || strings.TrimSpace(r.Stdout) != strings.Join(orig, " ") {
		t.Fatalf("kargs as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Several edits in one call, in order: a new deployment of the same commit.
	out := e.mustHostctl("kargs", "--append=hostctl.a=1", "--append=console=tty0", "--append=console=ttyS0",
		"--append=hostctl.gone", "--delete=hostctl.gone", "--append-if-missing=hostctl.a=2")
	if !strings.Contains(out, "Deployed") {
		t.Fatalf("kargs output:\n%s", out)
	}
	st := e.status()
	if len(st.Deployments) != 2 || st.Deployments[0].Checksum != base.Checksum || st.Deployments[1].ID != base.ID {
		t.Fatalf("after kargs: %+v", st.Deployments)
	}
	// The origin is the same but for the record of the arguments before
	// hostctl's first change (what `hostctl reset --kargs` goes back to).
	if got, want := e.originOf(st.Deployments[0]), strings.TrimRight(e.originOf(st.Deployments[1]), "\n")+"\n\n[kargs]\nbase="+strings.Join(orig, " ")+"\n"; got != want {
		t.Fatalf("kargs changed the origin:\n%s\n--- want\n%s", got, want)
	}
	entries = e.bootEntries()
	want := append(slices.Clone(orig), "hostctl.a=1", "console=tty0", "console=ttyS0")
	if got := userArgs(entries[0]); !slices.Equal(got, want) {
		t.Fatalf("default entry options %q, want %q", got, want)
	}
	if got := userArgs(entries[1]); !slices.Equal(got, orig) {
		t.Fatalf("the rollback entry changed: %q", got)
	}
	if got := e.ostreeStatus(); !slices.Equal(got, []string{base.Checksum, base.Checksum}) {
		t.Fatalf("ostree admin status: %v", got)
	}
	if h := e.lastHistory(); h.Kind != "kargs" || h.State != "succeeded" || h.Before != base.ID || h.After != st.Deployments[0].ID {
		t.Fatalf("history: %+v", h)
	}

	// Refusals change nothing: an ambiguous key is named; an unknown option; nobody.
	deps, loader := e.ostreeStatus(), e.loaderTarget()
	for _, args := range [][]string{
		{"kargs", "--append=hostctl.b=1", "--delete=console"},
		{"kargs", "--replace=console=ttyS9"},
	} {
		r := e.hostctl(args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, `"console"`) || !strings.Contains(r.Stderr, dbus.ErrInvalidArgument) {
			t.Fatalf("%v: exit %d, want a refusal naming console\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
		e.unchanged(strings.Join(args, " "), deps, loader, entries)
	}
	if r := e.hostctl("kargs", "--frobnicate=1"); r.Code == 0 || !strings.Contains(r.Stderr, "frobnicate") {
		t.Fatalf("unknown option: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := e.hostctl("kargs", "--delete=ostree"); r.Code != 1 || !strings.Contains(r.Stderr, "libostree") {
		t.Fatalf("deleting ostree=: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "kargs", "--append=x=1"); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrAccessDenied) {
		t.Fatalf("kargs as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	e.unchanged("the refusals", deps, loader, entries)

	// Nothing to change: "No change." and no deployment.
	for _, args := range [][]string{
		{"kargs", "--delete-if-present=hostctl.nosuch"},
		{"kargs", "--append-if-missing=hostctl.a=5"},
		{"kargs", "--append=hostctl.t=1", "--delete=hostctl.t=1"},
	} {
		if out := e.mustHostctl(args...); !strings.Contains(out, "No change.") {
			t.Fatalf("%v:\n%s", args, out)
		}
		e.unchanged(strings.Join(args, " "), deps, loader, entries)
	}

	// --replace KEY=OLD=NEW and KEY=VALUE, --editor.
	e.mustHostctl("kargs", "--replace=console=ttyS0=ttyS1", "--replace=hostctl.a=7")
	want = append(slices.Clone(orig), "hostctl.a=7", "console=tty0", "console=ttyS1")
	if got := userArgs(e.bootEntries()[0]); !slices.Equal(got, want) {
		t.Fatalf("after --replace: %q, want %q", got, want)
	}
	script := filepath.Join(t.TempDir(), "ed")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsed -i 's/^hostctl.a=7$/hostctl.ed=1/' \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The harness sets no EDITOR: run hostctl with one.
	cmd := exec.CommandContext(e.ctx, hostctlBin, "kargs", "--editor")
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.bus.Address, "EDITOR="+script)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Deployed") {
		t.Fatalf("kargs --editor: %v\n%s", err, out)
	}
	want = append(slices.Clone(orig), "hostctl.ed=1", "console=tty0", "console=ttyS1")
	if got := userArgs(e.bootEntries()[0]); !slices.Equal(got, want) {
		t.Fatalf("after --editor: %q, want %q", got, want)
	}

	// They carry over to an upgrade, a deploy and a rebase.
	e.publish("2")
	e.mustHostctl("upgrade")
	if d := e.status().Deployments[0]; d.Version != "2" || !hasSeq(userArgs(e.bootEntries()[0]), want[len(orig):]) {
		t.Fatalf("upgrade dropped the kernel arguments: %s %q", d.Version, userArgs(e.bootEntries()[0]))
	}
	e.mustHostctl("deploy", "1")
	if d := e.status().Deployments[0]; d.Version != "1" || !hasSeq(userArgs(e.bootEntries()[0]), want[len(orig):]) {
		t.Fatalf("deploy dropped the kernel arguments: %s %q", d.Version, userArgs(e.bootEntries()[0]))
	}
	e.mustHostctl("rebase", "hostos:"+fixture.TestingRef)
	if d := e.status().Deployments[0]; d.Origin != "hostos:"+fixture.TestingRef || !hasSeq(userArgs(e.bootEntries()[0]), want[len(orig):]) {
		t.Fatalf("rebase dropped the kernel arguments: %s %q", d.Origin, userArgs(e.bootEntries()[0]))
	}
}

// TestKargsWithPackagesOffline: kernel arguments carry over a package
// layering, and a kargs change on a layered deployment contacts no
// repository: it works with the OS remote and the rpm-md repository gone.
func TestKargsWithPackagesOffline(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	orig := userArgs(e.bootEntries()[0])

	e.mustHostctl("kargs", "--append=hostctl.k=1")
	e.mustHostctl("pkg-add", "hello-layer")
	layered := e.status().Deployments[0]
	if !slices.Equal(layered.Packages, []string{"hello-layer"}) || !hasSeq(userArgs(e.bootEntries()[0]), []string{"hostctl.k=1"}) {
		t.Fatalf("pkg-add dropped the kernel arguments: %+v %q", layered, userArgs(e.bootEntries()[0]))
	}

	srv.Stop()
	e.srv.Stop()
	srv.ResetStats()
	out := e.mustHostctl("kargs", "--replace=hostctl.k=2", "--append=hostctl.off")
	if !strings.Contains(out, "Deployed") {
		t.Fatalf("offline kargs:\n%s", out)
	}
	st := e.status()
	d := st.Deployments[0]
	if d.Checksum != layered.Checksum || !slices.Equal(d.Packages, []string{"hello-layer"}) || d.BaseChecksum != layered.BaseChecksum {
		t.Fatalf("kargs on a layered deployment changed its tree: %+v -> %+v", layered, d)
	}
	if e.originOf(d) != e.originOf(layered) {
		t.Fatalf("kargs changed the origin:\n%s\n---\n%s", e.originOf(d), e.originOf(layered))
	}
	if got, want := userArgs(e.bootEntries()[0]), append(slices.Clone(orig), "hostctl.k=2", "hostctl.off"); !slices.Equal(got, want) {
		t.Fatalf("options %q, want %q", got, want)
	}
	if reqs := srv.Requests(); len(reqs) != 0 {
		t.Fatalf("kargs contacted the package repository: %v", reqs)
	}
	if _, err := os.Stat(filepath.Join(deploymentPath(e.sysroot, d.OSName, d.Checksum, d.Serial), "usr/bin/hello-layer")); err != nil {
		t.Fatalf("the layered package is gone: %v", err)
	}
}

func TestPin(t *testing.T) {
	e := newEnv(t)
	e.publish("2")
	e.mustHostctl("upgrade")
	if got := versions(e.status()); !slices.Equal(got, []string{"2", "1"}) {
		t.Fatalf("after upgrade: %v", got)
	}
	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "pin", "1"); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrAccessDenied) {
		t.Fatalf("pin as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if out := e.mustHostctl("pin", "1"); !strings.Contains(out, "now pinned") {
		t.Fatalf("pin 1:\n%s", out)
	}
	st := e.status()
	if st.Deployments[0].Pinned || !st.Deployments[1].Pinned {
		t.Fatalf("pinned flags after pin 1: %+v", st.Deployments)
	}
	if human := e.mustHostctl("status"); strings.Count(human, "Pinned: yes") != 1 {
		t.Fatalf("status:\n%s", human)
	}
	e.waitIdle()
	if out, err := exec.Command("ostree", "admin", "status", "--sysroot="+e.sysroot).CombinedOutput(); err != nil || !strings.Contains(string(out), "Pinned: yes") {
		t.Fatalf("ostree admin status does not show the pin: %v\n%s", err, out)
	}
	if out := e.mustHostctl("pin", "1"); !strings.Contains(out, "No change") {
		t.Fatalf("pinning again:\n%s", out)
	}
	if r := e.hostctl("pin", "7"); r.Code != 1 || !strings.Contains(r.Stderr, "no deployment at index 7") {
		t.Fatalf("pin 7: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := e.hostctl("pin", "--frobnicate", "1"); r.Code == 0 || !strings.Contains(r.Stderr, "frobnicate") {
		t.Fatalf("unknown option: exit %d\n%s", r.Code, r.Stderr)
	}

	// An upgrade keeps the pinned v1 beside the previous default v2.
	e.publish("3")
	e.mustHostctl("upgrade")
	st = e.status()
	if got := versions(st); !slices.Equal(got, []string{"3", "2", "1"}) {
		t.Fatalf("after the second upgrade: %v", got)
	}
	if st.Deployments[0].Pinned || st.Deployments[1].Pinned || !st.Deployments[2].Pinned {
		t.Fatalf("pinned flags: %+v", st.Deployments)
	}
	if n := len(e.bootEntries()); n != 3 {
		t.Fatalf("%d boot entries, want 3", n)
	}
	// cleanup -r removes the rollback deployment, not the pinned one.
	e.mustHostctl("cleanup", "-r")
	st = e.status()
	if got := versions(st); !slices.Equal(got, []string{"3", "1"}) || !st.Deployments[1].Pinned {
		t.Fatalf("after cleanup -r: %v %+v", got, st.Deployments)
	}
	if got := e.ostreeStatus(); !slices.Equal(got, []string{e.os.Commit("3"), e.os.Commit("1")}) {
		t.Fatalf("ostree admin status after cleanup -r: %v", got)
	}

	// A pin is the deployment's, not its origin's: a new generation made
	// from a pinned default is not pinned.
	e.mustHostctl("pin", "0")
	e.mustHostctl("kargs", "--append=hostctl.p=1")
	st = e.status()
	if got := versions(st); !slices.Equal(got, []string{"3", "3", "1"}) || st.Deployments[0].Pinned || !st.Deployments[1].Pinned || !st.Deployments[2].Pinned {
		t.Fatalf("after kargs on a pinned default: %+v", st.Deployments)
	}
	if strings.Contains(e.originOf(st.Deployments[0]), "pinned") {
		t.Fatalf("the new deployment's origin carries the pin:\n%s", e.originOf(st.Deployments[0]))
	}

	// Unpinned, cleanup -r removes it.
	if out := e.mustHostctl("unpin", "2"); !strings.Contains(out, "now unpinned") {
		t.Fatalf("unpin 2:\n%s", out)
	}
	if out := e.mustHostctl("pin", "--unpin", "1"); !strings.Contains(out, "now unpinned") {
		t.Fatalf("pin --unpin 1:\n%s", out)
	}
	st = e.status()
	for _, d := range st.Deployments {
		if d.Pinned {
			t.Fatalf("still pinned: %+v", d)
		}
	}
	e.mustHostctl("cleanup", "-r")
	if got := len(e.status().Deployments); got != 1 {
		t.Fatalf("%d deployments after unpinning and cleanup -r, want 1", got)
	}
	if h := e.lastHistory(); h.Kind != "cleanup" {
		t.Fatalf("history: %+v", h)
	}
}

// TestNoChangeNoDeployment: deploying what the default already runs and an
// upgrade with nothing new say "No change." and write nothing.
func TestNoChangeNoDeployment(t *testing.T) {
	e := newEnv(t)
	deps, loader, entries := e.ostreeStatus(), e.loaderTarget(), e.bootEntries()
	for _, args := range [][]string{
		{"deploy", "revision=" + e.os.Commit("1")},
		{"deploy", "1"},
		{"upgrade"},
	} {
		if out := e.mustHostctl(args...); !strings.Contains(out, "No change.") {
			t.Fatalf("%v:\n%s", args, out)
		}
		e.unchanged(strings.Join(args, " "), deps, loader, entries)
	}
	// And after an upgrade, the same for the new commit.
	e.publish("2")
	e.mustHostctl("upgrade")
	deps, loader, entries = e.ostreeStatus(), e.loaderTarget(), e.bootEntries()
	for _, args := range [][]string{{"upgrade"}, {"deploy", "2"}} {
		if out := e.mustHostctl(args...); !strings.Contains(out, "No change.") {
			t.Fatalf("%v:\n%s", args, out)
		}
		e.unchanged(strings.Join(args, " "), deps, loader, entries)
	}
}

// TestKargsCarryOverContainerChange: a container install is a new
// generation of the same tree; it keeps the kernel arguments a kargs change
// set, and a kargs change keeps the generation's containers.
func TestKargsCarryOverContainerChange(t *testing.T) {
	c := newCtrEnv(t)
	c.mustHostctl("kargs", "--append=hostctl.c=1")
	dir := c.layout("1", fixture.HelloExports(fixture.HelloConfigTemplate(true)))
	port := freePort(t)
	c.mustHostctl("container", "install", "--name", "karg", "--set", fmt.Sprintf("PORT=%d", port), "oci:"+dir+":1")
	c.waitAnswer(port, "hello from karg")
	d := c.status().Deployments[0]
	if len(d.Containers) != 1 || !hasSeq(userArgs(c.bootEntries()[0]), []string{"hostctl.c=1"}) {
		t.Fatalf("container install dropped the kernel arguments: %+v %q", d, userArgs(c.bootEntries()[0]))
	}
	c.mustHostctl("kargs", "--delete=hostctl.c")
	d2 := c.status().Deployments[0]
	if d2.ID == d.ID || !slices.Equal(d2.Containers, d.Containers) || len(userArgs(c.bootEntries()[0])) != 0 {
		t.Fatalf("kargs on a generation with a container: %+v -> %+v, options %q", d, d2, userArgs(c.bootEntries()[0]))
	}
	c.waitAnswer(port, "hello from karg")
}
