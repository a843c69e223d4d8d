package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// replaceRPMs builds hostos-tools 1.5 (served from a repository, with
// hello-lib 1.0, a package the base does not have) and 1.7 (given as a
// local file, from a directory every user may read), and returns the
// repository's server and the local RPM.
func (e *env) replaceRPMs() (*fixture.Server, string) {
	e.t.Helper()
	repo := filepath.Join(e.t.TempDir(), "replace-repo")
	spec := func(v string) fixture.Spec {
		return fixture.Spec{Path: fixture.SpecPath("replace/hostos-tools.spec"), Defines: map[string]string{"tools_version": v}}
	}
	if _, err := fixture.BuildRPMRepo(e.ctx, repo, spec("1.5"),
		fixture.Spec{Path: fixture.SpecPath("layer/hello-lib.spec"), Defines: map[string]string{"hello_lib_version": "1.0"}}); err != nil {
		e.t.Fatal(err)
	}
	srv, err := fixture.NewServer(repo)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { srv.Stop() })
	local, err := os.MkdirTemp("", "hostctl-replace-local-")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { os.RemoveAll(local) })
	if err := os.Chmod(local, 0o755); err != nil {
		e.t.Fatal(err)
	}
	rpms, err := fixture.BuildRPMs(e.ctx, local, spec("1.7"))
	if err != nil || len(rpms) != 1 {
		e.t.Fatalf("build the local RPM: %v %v", rpms, err)
	}
	if err := os.Chmod(rpms[0], 0o644); err != nil {
		e.t.Fatal(err)
	}
	return srv, rpms[0]
}

// checkReplaced fails unless the deployment's hostos-tools is the
// replacement build version: rpm says so (on a copy of its rpmdb), its files
// are the new build's, the old build's files it no longer ships are gone,
// its %post ran, and status lists the replacement of old.
func (e *env) checkReplaced(what string, d dbus.Deployment, dep, old, version string) {
	e.t.Helper()
	nevra := "hostos-tools-" + version + "-1.noarch"
	if q, err := e.rpmQuery(dep, "hostos-tools"); err != nil || strings.TrimSpace(q) != nevra {
		e.t.Errorf("%s: rpm -q hostos-tools: %v %q, want %s", what, err, q, nevra)
	}
	if got := readFile(e.t, filepath.Join(dep, "usr/lib/hostos/hello.sh")); got != "HOSTOS_TOOLS_VERSION="+version+"\n" {
		e.t.Errorf("%s: hello.sh %q, want the replacement's", what, got)
	}
	if got := readFile(e.t, filepath.Join(dep, "usr/lib/hostos/replaced.txt")); got != "replacement "+version+"\n" {
		e.t.Errorf("%s: replaced.txt %q", what, got)
	}
	if got := readFile(e.t, filepath.Join(dep, "usr/lib/hostos/post-ran")); got != version+"\n" {
		e.t.Errorf("%s: the replacement's %%post: %q", what, got)
	}
	for _, f := range []string{"usr/lib/hostos/data.bin", "usr/share/doc/hostos-tools"} {
		if _, err := os.Lstat(filepath.Join(dep, f)); err == nil {
			e.t.Errorf("%s: %s of the replaced build is still in the deployment", what, f)
		}
	}
	want := []string{old + " -> " + nevra}
	if !slices.Equal(d.ReplacedBasePackages, want) {
		e.t.Errorf("%s: status replaced-base-packages %v, want %v", what, d.ReplacedBasePackages, want)
	}
	if out, err := e.rpmQuery(dep, "hostos-filesystem", "hostos-kernel"); err != nil {
		e.t.Errorf("%s: the rest of the base is gone: %v\n%s", what, err, out)
	}
}

// TestOverrideReplace: `override replace` replaces a base package by a
// build from the enabled repositories or by a local RPM file, records it in
// the origin's [overrides], shows it in status (text and JSON), keeps it
// across an upgrade, refuses a package the base does not have and an
// unprivileged caller with nothing changed, and `override reset` undoes it.
func TestOverrideReplace(t *testing.T) {
	e := newEnv(t)
	srv, localRPM := e.replaceRPMs()
	e.setRepoFile("replace", fixture.YumRepoFile("replace", srv.URL()))
	cache := filepath.Join(e.sysroot, "ostree", "deploy", fixture.OSName, "var", "cache", "hostctl", "packages")

	// Refusals: a package the base lacks, and one no repository has.
	before := e.snapshot()
	r := e.hostctl("override", "replace", "hello-lib")
	if r.Code == 0 || !strings.Contains(r.Stderr, `"hello-lib"`) || !strings.Contains(r.Stderr, "base has no package") ||
		!strings.Contains(r.Stderr, dbus.ErrInvalidArgument) {
		t.Fatalf("override replace hello-lib (not in the base): exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := e.hostctl("override", "replace", "no-such-package"); r.Code == 0 || !strings.Contains(r.Stderr, "no-such-package") {
		t.Errorf("override replace no-such-package: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if after := e.snapshot(); !slices.Equal(after.deployments, before.deployments) || after.refs != before.refs || len(after.scratch) > 0 {
		t.Fatalf("a refused replacement changed the sysroot:\nbefore %+v\nafter  %+v", before, after)
	}

	// An unprivileged caller is refused before hostd reads anything.
	cacheBefore := listDir(t, cache)
	for _, arg := range []string{"hostos-tools", localRPM} {
		if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "override", "replace", arg); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrAccessDenied) {
			t.Errorf("override replace %s as uid 65534: exit %d, want AccessDenied\n%s%s", arg, r.Code, r.Stdout, r.Stderr)
		}
	}
	if after := e.snapshot(); !slices.Equal(after.deployments, before.deployments) || !slices.Equal(listDir(t, cache), cacheBefore) {
		t.Fatalf("a refused caller changed the sysroot or the package cache")
	}

	// From the repository: the best build there.
	out := e.mustHostctl("override", "replace", "hostos-tools")
	d, dep := e.defaultDeployment()
	e.checkReplaced("override replace from a repo", d, dep, "hostos-tools-1-1.noarch", "1.5")
	if o := e.originOf(d); !strings.Contains(o, "[overrides]") || !strings.Contains(o, "replace=hostos-tools-1.5-1.noarch;") {
		t.Errorf("origin after override replace:\n%s\n%s", o, out)
	}
	human := e.mustHostctl("status")
	if !strings.Contains(strings.SplitN(human, "\n\n", 2)[0], "ReplacedBasePackages: hostos-tools-1-1.noarch -> hostos-tools-1.5-1.noarch") {
		t.Errorf("status after override replace:\n%s", human)
	}
	if js := e.mustHostctl("status", "--json"); !strings.Contains(js, `"replaced-base-packages": [`) ||
		!strings.Contains(js, `"hostos-tools-1-1.noarch -\u003e hostos-tools-1.5-1.noarch"`) {
		t.Errorf("status --json lacks the replacement:\n%s", js)
	}

	// An upgrade replaces it again, on the new base (a downgrade there).
	e.publish("2")
	e.mustHostctl("upgrade")
	d, dep = e.defaultDeployment()
	if d.Version != "2" {
		t.Fatalf("upgrade: version %q", d.Version)
	}
	e.checkReplaced("upgrade", d, dep, "hostos-tools-2-1.noarch", "1.5")
	if v := e.rpmQAOf(d)["hostos-filesystem.noarch"]; v != "2-1" {
		t.Errorf("upgrade: hostos-filesystem %q, want the new base's 2-1", v)
	}

	// A local RPM supersedes the repository's build.
	out = e.mustHostctl("override", "replace", localRPM)
	d, dep = e.defaultDeployment()
	e.checkReplaced("override replace of a local RPM", d, dep, "hostos-tools-2-1.noarch", "1.7")
	o := e.originOf(d)
	if !strings.Contains(o, ":hostos-tools-1.7-1.noarch;") || !strings.Contains(o, "replace-local=") || strings.Contains(o, "replace=hostos-tools-1.5") {
		t.Errorf("origin after override replace of a local RPM:\n%s\n%s", o, out)
	}
	if len(listDir(t, cache)) <= len(cacheBefore) {
		t.Errorf("the local RPM is not in the package cache: %v", listDir(t, cache))
	}

	// override reset brings the base's build back.
	e.mustHostctl("override", "reset", "hostos-tools")
	d, dep = e.defaultDeployment()
	if q, err := e.rpmQuery(dep, "hostos-tools"); err != nil || strings.TrimSpace(q) != "hostos-tools-2-1.noarch" {
		t.Errorf("override reset: rpm -q hostos-tools: %v %q", err, q)
	}
	if _, err := os.Stat(filepath.Join(dep, "usr/lib/hostos/data.bin")); err != nil {
		t.Errorf("override reset: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dep, "usr/lib/hostos/replaced.txt")); err == nil {
		t.Errorf("override reset: the replacement's file is still there")
	}
	if len(d.ReplacedBasePackages) != 0 || d.BaseChecksum != "" {
		t.Errorf("override reset: replaced %v base %q, want the plain base", d.ReplacedBasePackages, d.BaseChecksum)
	}
	if o := e.originOf(d); strings.Contains(o, "overrides") {
		t.Errorf("origin after override reset:\n%s", o)
	}
	if r := e.hostctl("override", "reset", "hostos-tools"); r.Code == 0 || !strings.Contains(r.Stderr, "no override") {
		t.Errorf("override reset again: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// reset --all drops a replacement too.
	e.mustHostctl("override", "replace", "hostos-tools")
	e.mustHostctl("override", "reset", "--all")
	d, _ = e.defaultDeployment()
	if len(d.ReplacedBasePackages) != 0 || len(d.ReplaceRequests) != 0 || d.BaseChecksum != "" {
		t.Errorf("override reset --all: %+v", d)
	}
	e.fsck()
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		out = append(out, en.Name())
	}
	return out
}
