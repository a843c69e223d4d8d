package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// rpmQA lists the packages of an rpmdb directory (a copy: rpm may write
// beside it) by `rpm -qa`: NAME.ARCH -> [EPOCH:]VERSION-RELEASE.
func rpmQA(t *testing.T, dbDir string) map[string]string {
	t.Helper()
	root := t.TempDir()
	db := filepath.Join(root, "usr", "lib", "sysimage")
	if err := os.MkdirAll(db, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", dbDir, filepath.Join(db, "rpm")).CombinedOutput(); err != nil {
		t.Fatalf("copy rpmdb: %v\n%s", err, out)
	}
	out, err := exec.Command("rpm", "--root", root, "--dbpath", fixture.RPMDBPath, "-qa",
		"--qf", `%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE} %{ARCH}\n`).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qa: %v\n%s", err, out)
	}
	pkgs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("rpm -qa line %q", line)
		}
		pkgs[f[0]+"."+f[2]] = strings.TrimPrefix(f[1], "(none):")
	}
	return pkgs
}

// rpmQAOf lists the packages of a deployment.
func (e *env) rpmQAOf(d dbus.Deployment) map[string]string {
	return rpmQA(e.t, filepath.Join(deploymentPath(e.sysroot, d.OSName, d.Checksum, d.Serial), fixture.RPMDBPath))
}

// rpmQAOfCommit lists the packages of a commit of the sysroot's repository.
func (e *env) rpmQAOfCommit(csum string) map[string]string {
	e.t.Helper()
	dir := filepath.Join(e.t.TempDir(), "rpm")
	out, err := exec.Command("ostree", "checkout", "--repo="+filepath.Join(e.sysroot, "ostree", "repo"), "--user-mode",
		"--subpath="+fixture.RPMDBPath, csum, dir).CombinedOutput()
	if err != nil {
		e.t.Fatalf("ostree checkout of the rpmdb of %s: %v\n%s", csum, err, out)
	}
	return rpmQA(e.t, dir)
}

// checkDiffAgainstRPM fails unless diff says what rpm -qa of both sides says:
// the same packages added, removed, and changed (with the new EVR).
func checkDiffAgainstRPM(t *testing.T, d dbus.PackageDiff, from, to map[string]string) {
	t.Helper()
	var added, removed, changed []string
	for k, evr := range to {
		if old, ok := from[k]; !ok {
			added = append(added, k+" "+evr)
		} else if old != evr {
			changed = append(changed, k+" "+old+" -> "+evr)
		}
	}
	for k, evr := range from {
		if _, ok := to[k]; !ok {
			removed = append(removed, k+" "+evr)
		}
	}
	var gotAdded, gotRemoved, gotChanged []string
	for _, p := range d.Added {
		gotAdded = append(gotAdded, p.Name+"."+p.Arch+" "+p.EVR)
	}
	for _, p := range d.Removed {
		gotRemoved = append(gotRemoved, p.Name+"."+p.Arch+" "+p.EVR)
	}
	for _, c := range append(slices.Clone(d.Upgraded), d.Downgraded...) {
		gotChanged = append(gotChanged, c.Name+"."+c.Arch+" "+c.From+" -> "+c.To)
	}
	for _, l := range [][]string{added, removed, changed, gotAdded, gotRemoved, gotChanged} {
		sort.Strings(l)
	}
	if !slices.Equal(added, gotAdded) || !slices.Equal(removed, gotRemoved) || !slices.Equal(changed, gotChanged) {
		t.Fatalf("diff %s -> %s disagrees with rpm -qa:\nrpm:  added %q removed %q changed %q\ndiff: added %q removed %q changed %q",
			d.From, d.To, added, removed, changed, gotAdded, gotRemoved, gotChanged)
	}
}

// diffJSON is `hostctl diff --json ARGS`.
func (e *env) diffJSON(args ...string) dbus.PackageDiff {
	e.t.Helper()
	out := e.mustHostctl(append([]string{"diff", "--json"}, args...)...)
	var d dbus.PackageDiff
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		e.t.Fatalf("diff --json: %v\n%s", err, out)
	}
	return d
}

func TestDiff(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	base := e.status().Deployments[0]

	// One deployment: nothing to compare with but itself.
	if out := e.mustHostctl("diff"); !strings.Contains(out, "No package changes.") {
		t.Fatalf("diff with one deployment:\n%s", out)
	}

	// After pkg-add: the previous default against the new one.
	e.mustHostctl("pkg-add", "hello-layer")
	st := e.status()
	layered := st.Deployments[0]
	out := e.mustHostctl("diff")
	if !strings.Contains(out, "Added:\n  hello-layer-1.0-1.noarch\n  hello-lib-1.1-1.noarch\n") || strings.Contains(out, "Removed:") || strings.Contains(out, "Upgraded:") {
		t.Fatalf("diff after pkg-add:\n%s", out)
	}
	d := e.diffJSON()
	if d.From != base.ID || d.To != layered.ID || d.FromChecksum != base.Checksum || d.ToChecksum != layered.Checksum {
		t.Fatalf("diff --json sides: %+v", d)
	}
	checkDiffAgainstRPM(t, d, e.rpmQAOf(st.Deployments[1]), e.rpmQAOf(layered))
	if len(d.Added) != 2 {
		t.Fatalf("diff --json added %+v, want hello-layer and hello-lib", d.Added)
	}
	// The other way round, by index and by id: the same packages removed.
	rev := e.diffJSON("0", base.ID)
	if len(rev.Removed) != 2 || rev.Removed[0].Name != "hello-layer" || rev.Removed[1].Name != "hello-lib" || len(rev.Added) != 0 {
		t.Fatalf("diff 0 BASE: %+v", rev)
	}
	// FROM alone: against the default deployment.
	if one := e.diffJSON("1"); one.From != base.ID || one.To != layered.ID || len(one.Added) != 2 || len(one.Removed) != 0 {
		t.Fatalf("diff 1 (against the default): %+v", one)
	}
	// Reading is open to everyone.
	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "diff", "1", "0"); r.Code != 0 || !strings.Contains(r.Stdout, "hello-layer-1.0-1.noarch") {
		t.Fatalf("diff as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// Bad arguments are refused, naming them.
	for _, tc := range []struct {
		arg, name string
	}{{"7", dbus.ErrNotFound}, {"os-" + strings.Repeat("ab", 32) + ".0", dbus.ErrNotFound}, {strings.Repeat("ab", 32), dbus.ErrNotFound}, {"nosuchdeployment", dbus.ErrInvalidArgument}} {
		r := e.hostctl("diff", tc.arg)
		if r.Code != 1 || !strings.Contains(r.Stderr, tc.name) {
			t.Fatalf("diff %s: exit %d, want %s\n%s%s", tc.arg, r.Code, tc.name, r.Stdout, r.Stderr)
		}
	}
	if r := e.hostctl("diff", "0", "1", "2"); r.Code == 0 {
		t.Fatalf("diff with three arguments: exit 0\n%s", r.Stdout)
	}

	// An upgrade prints what it changed, and diff agrees with rpm.
	e.publish("2")
	out = e.mustHostctl("upgrade")
	for _, want := range []string{"Upgraded:\n", "hostos-kernel ", "hostos-tools "} {
		if !strings.Contains(out, want) {
			t.Fatalf("upgrade output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Added:") || strings.Contains(out, "Removed:") {
		t.Fatalf("upgrade with the same layered packages printed added or removed packages:\n%s", out)
	}
	st = e.status()
	d = e.diffJSON()
	if d.From != layered.ID || d.To != st.Deployments[0].ID || len(d.Upgraded) == 0 {
		t.Fatalf("diff after upgrade: %+v", d)
	}
	checkDiffAgainstRPM(t, d, e.rpmQAOf(layered), e.rpmQAOf(st.Deployments[0]))
	if human := e.mustHostctl("diff"); !strings.Contains(human, "Upgraded:\n  hostos-") {
		t.Fatalf("diff after upgrade:\n%s", human)
	}
	// A commit that no deployment has (the plain base of version 1) is read from the repository.
	v1 := e.os.Commit("1")
	d = e.diffJSON(v1, "0")
	if d.FromChecksum != v1 || len(d.Added) != 2 || len(d.Upgraded) == 0 {
		t.Fatalf("diff BASE-COMMIT 0: %+v", d)
	}
	checkDiffAgainstRPM(t, d, e.rpmQAOfCommit(v1), e.rpmQAOf(st.Deployments[0]))
	// Diff wrote nothing beside the repository's objects.
	entries, _ := os.ReadDir(filepath.Join(e.sysroot, "ostree", "repo", "tmp"))
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), "hostctl-diff-") {
			t.Fatalf("diff left %s in the repository's tmp", en.Name())
		}
	}
	e.fsck()
}

func TestReset(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	base := e.status().Deployments[0]

	// Nothing to reset on the plain base: no deployment.
	deps, loader, entries := e.ostreeStatus(), e.loaderTarget(), e.bootEntries()
	if out := e.mustHostctl("reset"); !strings.Contains(out, "No change.") {
		t.Fatalf("reset of the plain base:\n%s", out)
	}
	e.unchanged("reset of the plain base", deps, loader, entries)

	e.mustHostctl("pkg-add", "hello-layer")
	e.mustHostctl("kargs", "--append=hostctl.r=1", "--append=quiet")
	layered := e.status().Deployments[0]

	// Refusals change nothing: an unprivileged caller, an unknown option.
	deps, loader, entries = e.ostreeStatus(), e.loaderTarget(), e.bootEntries()
	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "reset"); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrAccessDenied) {
		t.Fatalf("reset as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "reset", "--kargs"); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrAccessDenied) {
		t.Fatalf("reset --kargs as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := e.hostctl("reset", "--frobnicate"); r.Code == 0 || !strings.Contains(r.Stderr, "frobnicate") {
		t.Fatalf("reset --frobnicate: exit %d\n%s", r.Code, r.Stderr)
	}
	e.unchanged("refused resets", deps, loader, entries)

	// --kargs alone: the same tree and origin (but the [kargs] record of
	// the arguments before hostctl's first change), and those arguments:
	// the fixture sysroot was deployed with none but ostree=.
	if o := e.originOf(layered); !strings.Contains(o, "[kargs]\nbase=\n") {
		t.Fatalf("the first kargs change did not record the arguments before it:\n%s", o)
	}
	e.mustHostctl("reset", "--kargs")
	d := e.status().Deployments[0]
	withoutKargs := strings.Replace(e.originOf(layered), "\n[kargs]\nbase=\n", "", 1)
	if d.Checksum != layered.Checksum || !slices.Equal(d.Packages, []string{"hello-layer"}) || strings.TrimSpace(e.originOf(d)) != strings.TrimSpace(withoutKargs) {
		t.Fatalf("reset --kargs changed the tree or origin: %+v\n%s", d, e.originOf(d))
	}
	if got := userArgs(e.bootEntries()[0]); len(got) != 0 {
		t.Fatalf("reset --kargs left kernel arguments %q", got)
	}
	if !strings.Contains(e.bootEntries()[0].Options, "ostree=") {
		t.Fatalf("the entry lost libostree's ostree=: %q", e.bootEntries()[0].Options)
	}
	// --overrides alone: there are none.
	deps, loader, entries = e.ostreeStatus(), e.loaderTarget(), e.bootEntries()
	if out := e.mustHostctl("reset", "--overrides"); !strings.Contains(out, "No change.") {
		t.Fatalf("reset --overrides without overrides:\n%s", out)
	}
	e.unchanged("reset --overrides", deps, loader, entries)
	// Arguments added and taken away again: back where they were, so
	// --kargs has nothing to drop.
	e.mustHostctl("kargs", "--append=hostctl.r=3")
	e.mustHostctl("kargs", "--delete=hostctl.r=3")
	deps, loader, entries = e.ostreeStatus(), e.loaderTarget(), e.bootEntries()
	if out := e.mustHostctl("reset", "--kargs"); !strings.Contains(out, "No change.") {
		t.Fatalf("reset --kargs with the arguments as they were before hostctl's changes:\n%s", out)
	}
	e.unchanged("reset --kargs of arguments as they were", deps, loader, entries)

	// --overlays alone: the base commit, no [packages], the kernel arguments kept.
	e.mustHostctl("kargs", "--append=hostctl.r=2")
	out := e.mustHostctl("reset", "--overlays")
	if !strings.Contains(out, "Removed:\n  hello-layer-1.0-1.noarch\n  hello-lib-1.1-1.noarch\n") {
		t.Fatalf("reset --overlays output:\n%s", out)
	}
	d = e.status().Deployments[0]
	origin := e.originOf(d)
	if d.Checksum != base.Checksum || len(d.Packages) != 0 || strings.Contains(origin, "[packages]") || !strings.Contains(origin, "refspec="+refspec) {
		t.Fatalf("after reset --overlays: %+v\n%s", d, origin)
	}
	if got := userArgs(e.bootEntries()[0]); !slices.Equal(got, []string{"hostctl.r=2"}) {
		t.Fatalf("reset --overlays changed the kernel arguments: %q", got)
	}
	if _, err := os.Stat(filepath.Join(deploymentPath(e.sysroot, d.OSName, d.Checksum, d.Serial), "usr/bin/hello-layer")); err == nil {
		t.Fatal("hello-layer is still in the reset deployment")
	}
	if h := e.lastHistory(); h.Kind != "reset" || h.State != "succeeded" || h.After != d.ID {
		t.Fatalf("history: %+v", h)
	}
	deps, loader, entries = e.ostreeStatus(), e.loaderTarget(), e.bootEntries()
	if out := e.mustHostctl("reset", "--overlays"); !strings.Contains(out, "No change.") {
		t.Fatalf("second reset --overlays:\n%s", out)
	}
	e.unchanged("second reset --overlays", deps, loader, entries)

	// No option: all at once, in one new deployment.
	e.mustHostctl("pkg-add", "hello-layer")
	before := len(e.ostreeStatus())
	e.mustHostctl("reset")
	st := e.status()
	d = st.Deployments[0]
	origin = e.originOf(d)
	if d.Checksum != base.Checksum || strings.Contains(origin, "[packages]") || !strings.Contains(origin, "refspec="+refspec) {
		t.Fatalf("after reset: %+v\n%s", d, origin)
	}
	if got := userArgs(e.bootEntries()[0]); len(got) != 0 {
		t.Fatalf("reset left kernel arguments %q", got)
	}
	if got := e.ostreeStatus(); len(got) != before || got[0] != base.Checksum {
		t.Fatalf("reset made more than one deployment, or not of the base: %v", got)
	}
	// The diff of the reset agrees with rpm.
	checkDiffAgainstRPM(t, e.diffJSON(), e.rpmQAOf(st.Deployments[1]), e.rpmQAOf(d))
}
