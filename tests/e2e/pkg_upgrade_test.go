package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/tests/fixture"
)

// pkgUpgradeRepo serves the layering RPMs without hello-lib 1.1 (so
// hello-layer layers hello-lib 1.0), points the default deployment's repos at
// it, and returns the served directory and the held-back hello-lib 1.1 RPM.
func (e *env) pkgUpgradeRepo() (dir, lib11 string) {
	e.t.Helper()
	held := filepath.Join(e.t.TempDir(), "held")
	if err := os.MkdirAll(held, 0o755); err != nil {
		e.t.Fatal(err)
	}
	srv := e.serveRPMs(nil, func(d string) {
		m, _ := filepath.Glob(filepath.Join(d, "hello-lib-1.1-*.rpm"))
		if len(m) != 1 {
			e.t.Fatalf("hello-lib 1.1 RPMs in the fixture: %v", m)
		}
		lib11 = filepath.Join(held, filepath.Base(m[0]))
		if err := os.Rename(m[0], lib11); err != nil {
			e.t.Fatal(err)
		}
	}, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	return srv.Dir(), lib11
}

// publishRPM copies an RPM into the served repository dir under name and
// runs createrepo_c again, as a repository's owner publishes a package.
func (e *env) publishRPM(dir, rpm, name string) {
	e.t.Helper()
	data, err := os.ReadFile(rpm)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := fixture.CreateRepo(e.ctx, dir); err != nil {
		e.t.Fatal(err)
	}
}

// mustQuery is `rpm -q` on a deployment's rpmdb, failing the test on error.
func (e *env) mustQuery(dep string, args ...string) string {
	e.t.Helper()
	out, err := e.rpmQuery(dep, args...)
	if err != nil {
		e.t.Fatalf("rpm -q %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// checkNoUpgrade asserts that `upgrade --check` exits 77 and `upgrade`
// changes nothing.
func (e *env) checkNoUpgrade(when string) {
	e.t.Helper()
	before := e.ostreeStatus()
	if r := e.hostctl("upgrade", "--check"); r.Code != 77 || !strings.Contains(r.Stdout, "No updates available.") {
		e.t.Fatalf("%s: upgrade --check: exit %d, want 77\n%s%s", when, r.Code, r.Stdout, r.Stderr)
	}
	if out := e.mustHostctl("upgrade"); !strings.Contains(out, "No upgrade available.") {
		e.t.Fatalf("%s: upgrade:\n%s", when, out)
	}
	if after := e.ostreeStatus(); !slices.Equal(after, before) {
		e.t.Fatalf("%s: upgrade with nothing new changed the deployments: %v -> %v", when, before, after)
	}
}

// TestPkgUpgradeLayeredOnly: with the base unchanged, a newer layered package
// in the repo, and then the same NEVRA rebuilt, are each an upgrade that
// --check and --preview report and `upgrade` deploys as one new generation
// on the same base; with nothing new, --check exits 77.
func TestPkgUpgradeLayeredOnly(t *testing.T) {
	e := newEnv(t)
	dir, lib11 := e.pkgUpgradeRepo()
	e.mustHostctl("pkg-add", "hello-layer")
	_, dep := e.defaultDeployment()
	if q := e.mustQuery(dep, "hello-lib"); q != "hello-lib-1.0-1.noarch" {
		t.Fatalf("layered hello-lib: %s", q)
	}
	e.checkNoUpgrade("before hello-lib 1.1 is published")

	e.publishRPM(dir, lib11, filepath.Base(lib11))
	before := e.ostreeStatus()
	for _, flag := range []string{"--check", "--preview"} {
		r := e.hostctl("upgrade", flag)
		if r.Code != 0 || !strings.Contains(r.Stdout, "Upgraded: hello-lib 1.0-1 -> 1.1-1") {
			t.Fatalf("upgrade %s with hello-lib 1.1 published: exit %d\n%s%s", flag, r.Code, r.Stdout, r.Stderr)
		}
		if strings.Contains(r.Stdout, "hello-layer 1.0-1 ->") {
			t.Errorf("upgrade %s reports hello-layer, which did not change:\n%s", flag, r.Stdout)
		}
	}
	if after := e.ostreeStatus(); !slices.Equal(after, before) {
		t.Fatalf("upgrade --check/--preview changed the deployments: %v -> %v", before, after)
	}

	out := e.mustHostctl("upgrade")
	after := e.ostreeStatus()
	if len(after) != 2 || slices.Contains(before, after[0]) || after[1] != before[0] {
		t.Fatalf("upgrade: want one new deployment before %v, got %v\n%s", before, after, out)
	}
	d, dep := e.defaultDeployment()
	if d.BaseChecksum != e.os.Commit("1") || d.Version != "1" || !slices.Equal(d.Packages, []string{"hello-layer"}) {
		t.Fatalf("after the layered-only upgrade: base %s version %s packages %v, want base %s (version 1) with hello-layer\n%s",
			d.BaseChecksum, d.Version, d.Packages, e.os.Commit("1"), out)
	}
	if q := e.mustQuery(dep, "hello-lib", "hello-layer"); q != "hello-lib-1.1-1.noarch\nhello-layer-1.0-1.noarch" {
		t.Fatalf("rpm -q in the new deployment:\n%s", q)
	}
	if lib := readFile(t, filepath.Join(dep, "usr", "lib", "hello", "libhello.sh")); !strings.Contains(lib, "HELLO_LIB_VERSION=1.1") {
		t.Fatalf("the new deployment's libhello.sh: %q", lib)
	}
	e.checkNoUpgrade("after the upgrade to hello-lib 1.1")

	// The repository's owner rebuilds hello-lib 1.1: same NEVRA, new file.
	rebuilt, err := fixture.BuildRPMs(e.ctx, t.TempDir(), fixture.Spec{Path: fixture.SpecPath("layer/hello-lib.spec"),
		Defines: map[string]string{"hello_lib_version": "1.1", "_buildhost": "hostctl-rebuilt"}})
	if err != nil || len(rebuilt) != 1 {
		t.Fatalf("rebuild hello-lib 1.1: %v %v", rebuilt, err)
	}
	if err := os.Remove(filepath.Join(dir, filepath.Base(lib11))); err != nil {
		t.Fatal(err)
	}
	e.publishRPM(dir, rebuilt[0], "rebuilt-"+filepath.Base(lib11))
	if r := e.hostctl("upgrade", "--check"); r.Code != 0 || !strings.Contains(r.Stdout, "Rebuilt: hello-lib-1.1-1.noarch") {
		t.Fatalf("upgrade --check with hello-lib 1.1 rebuilt: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	before = e.ostreeStatus()
	out = e.mustHostctl("upgrade")
	after = e.ostreeStatus()
	if len(after) != 2 || slices.Contains(before, after[0]) || after[1] != before[0] {
		t.Fatalf("upgrade to the rebuilt package: want one new deployment before %v, got %v\n%s", before, after, out)
	}
	_, dep = e.defaultDeployment()
	if q := e.mustQuery(dep, "--qf", "%{NEVRA} %{BUILDHOST}\n", "hello-lib"); q != "hello-lib-1.1-1.noarch hostctl-rebuilt" {
		t.Fatalf("hello-lib in the deployment after the rebuild: %q\n%s", q, out)
	}
	e.checkNoUpgrade("after the upgrade to the rebuilt hello-lib")
	e.fsck()
}

// TestPkgUpgradeBaseAndPackages: a base update and a layered package update
// published together make exactly one new deployment, with both.
func TestPkgUpgradeBaseAndPackages(t *testing.T) {
	e := newEnv(t)
	dir, lib11 := e.pkgUpgradeRepo()
	e.mustHostctl("pkg-add", "hello-layer")
	e.publishRPM(dir, lib11, filepath.Base(lib11))
	e.publish("2")
	for _, flag := range []string{"--check", "--preview"} {
		if r := e.hostctl("upgrade", flag); r.Code != 0 || !strings.Contains(r.Stdout, "Version: 2 (") {
			t.Fatalf("upgrade %s: exit %d\n%s%s", flag, r.Code, r.Stdout, r.Stderr)
		}
	}
	if r := e.hostctl("upgrade", "--preview"); !strings.Contains(r.Stdout, "Upgraded: hello-lib 1.0-1 -> 1.1-1") {
		t.Errorf("upgrade --preview does not name the layered package change:\n%s", r.Stdout)
	}
	before := e.ostreeStatus()
	recsBefore := e.historyLen()
	out := e.mustHostctl("upgrade")
	after := e.ostreeStatus()
	if len(after) != 2 || slices.Contains(before, after[0]) || after[1] != before[0] {
		t.Fatalf("upgrade: want exactly one new deployment before %v, got %v\n%s", before, after, out)
	}
	if n := e.historyLen(); n != recsBefore+1 {
		t.Errorf("upgrade recorded %d transactions, want 1", n-recsBefore)
	}
	d, dep := e.defaultDeployment()
	if d.BaseChecksum != e.os.Commit("2") || d.Version != "2" {
		t.Fatalf("after upgrade: base %s version %s, want %s (2)\n%s", d.BaseChecksum, d.Version, e.os.Commit("2"), out)
	}
	if q := e.mustQuery(dep, "hello-lib", "hostos-filesystem"); !strings.HasPrefix(q, "hello-lib-1.1-1.noarch\nhostos-filesystem-2-1.") {
		t.Fatalf("rpm -q after upgrade:\n%s", q)
	}
	e.checkNoUpgrade("after the upgrade")
}

// historyLen counts the recorded transactions.
func (e *env) historyLen() int {
	e.t.Helper()
	recs, err := e.history()
	if err != nil {
		e.t.Fatal(err)
	}
	return len(recs)
}
