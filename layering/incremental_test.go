package layering

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/layering/internal/testrpm"
	"github.com/hostctl/hostctl/layering/solv"
	"github.com/hostctl/hostctl/tests/fixture"
)

// pathsFixture is a bare repository with the HostOS base commit and the
// RPMs of testdata/fromcommit.spec.
type pathsFixture struct {
	repo     *deploy.Repo
	repoPath string
	base     string
	rpms     map[string]string
	// baseTrees is what Layerer.BaseTrees gets.
	baseTrees map[string]string
}

func newPathsFixture(t *testing.T) *pathsFixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("layering keeps owners and rpm --root chroots: needs root")
	}
	testrpm.Require(t, "rpm", "rpmbuild", "ostree")
	ctx := context.Background()
	o, err := fixture.BuildOS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &pathsFixture{repoPath: filepath.Join(t.TempDir(), "repo"), base: o.Commit("1"), rpms: map[string]string{}}
	for _, args := range [][]string{
		{"init", "--mode=bare", "--repo=" + f.repoPath},
		{"pull-local", "--repo=" + f.repoPath, o.RepoPath, f.base},
	} {
		if out, err := exec.Command("ostree", args...).CombinedOutput(); err != nil {
			t.Fatalf("ostree %s: %v\n%s", args[0], err, out)
		}
	}
	if f.repo, err = deploy.OpenRepo(ctx, f.repoPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.repo.Close)
	for _, spec := range []string{"testdata/fromcommit.spec", "testdata/fromcommit-post.spec"} {
		for _, p := range testrpm.BuildFile(t, spec, "") {
			f.rpms[strings.TrimSuffix(filepath.Base(p), "-1.0-1.noarch.rpm")] = p
		}
	}
	return f
}

// withBaseTree gives the layering a checkout of the base as the deployment
// the scripts run over.
func (f *pathsFixture) withBaseTree(t *testing.T) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(f.repoPath), "deployment")
	if err := f.repo.Checkout(context.Background(), f.base, dir, deploy.CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	f.baseTrees = map[string]string{f.base: dir}
}

// plan layers the named local RPMs on the base.
func (f *pathsFixture) plan(t *testing.T, names ...string) *Plan {
	t.Helper()
	p := &Plan{Base: f.base, BaseVersion: "1", Requested: names, Active: names, Inactive: map[string][]string{}, local: map[string]string{}}
	for i, n := range names {
		data, err := os.ReadFile(f.rpms[n])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		hexsum := hex.EncodeToString(sum[:])
		p.local[hexsum] = f.rpms[n]
		p.Packages = append(p.Packages, solv.Package{Name: n, EVR: "1.0-1", Arch: "noarch", Repo: LocalRepo,
			ChecksumType: "sha256", Checksum: hexsum, Order: i})
	}
	return p
}

// build runs Build and returns the result and the stages it announced.
func (f *pathsFixture) build(t *testing.T, plan *Plan, forceCheckout bool) (*Result, []string, error) {
	t.Helper()
	var stages []string
	l := &Layerer{Repo: f.repo, CacheDir: t.TempDir(), TmpDir: filepath.Join(f.repoPath, "tmp"),
		Step:          func(stage, text string) { stages = append(stages, stage+": "+text) },
		BaseTrees:     f.baseTrees,
		forceCheckout: forceCheckout}
	start := time.Now()
	res, err := l.Build(context.Background(), plan)
	t.Logf("build (checkout forced: %v) in %s: %s", forceCheckout, time.Since(start).Round(time.Millisecond), strings.Join(stages, " | "))
	return res, stages, err
}

func tookCheckout(stages []string) bool {
	for _, s := range stages {
		if strings.HasPrefix(s, "checkout:") {
			return true
		}
	}
	return false
}

// listing is `ostree ls -R -X -C` of commit, with what rpm's install times
// change blanked: the content checksum and size of the rpmdb's files and
// the contents checksum of the directories above them (their metadata is
// kept).
func (f *pathsFixture) listing(t *testing.T, commit string) []string {
	t.Helper()
	out, err := exec.Command("ostree", "ls", "--repo="+f.repoPath, "-R", "-X", "-C", commit).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree ls: %v\n%s", err, out)
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// MODE UID GID SIZE CHECKSUM [DIRMETA] { XATTRS } PATH [-> TARGET]
		i := strings.Index(line, " { ")
		j := strings.LastIndex(line, " } ")
		if i < 0 || j < i {
			t.Fatalf("ostree ls line %q", line)
		}
		fields, rest := strings.Fields(line[:i]), line[i:]
		path := strings.SplitN(line[j+3:], " -> ", 2)[0]
		if len(fields) < 5 {
			t.Fatalf("ostree ls line %q", line)
		}
		if fields[0][0] == 'd' {
			if path == "/" || strings.HasPrefix("/"+RPMDBPath, path+"/") || path == "/"+RPMDBPath {
				fields[4] = "CONTENTS"
			}
		} else if strings.HasPrefix(path, "/"+RPMDBPath+"/") {
			fields[3], fields[4] = "SIZE", "CHECKSUM"
		}
		lines = append(lines, strings.Join(fields, " ")+rest)
	}
	return lines
}

var installTimeTags = regexp.MustCompile(`(?s)<rpmTag name="(Installtime|Installtid)">.*?</rpmTag>`)

// rpmdb is every header of commit's rpmdb as rpm -qa --xml prints it, but
// the install time and transaction id.
func (f *pathsFixture) rpmdb(t *testing.T, commit string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rpm")
	if err := f.repo.Checkout(context.Background(), commit, dir, deploy.CheckoutOptions{Subpath: "/" + RPMDBPath, Copy: true}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("rpm", "--dbpath", dir, "--define", "_db_backend sqlite", "-qa", "--xml").CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qa: %v\n%s", err, out)
	}
	return installTimeTags.ReplaceAllString(string(out), "")
}

func diffLines(t *testing.T, what string, a, b []string) {
	t.Helper()
	in := map[string]int{}
	for _, l := range a {
		in[l]++
	}
	for _, l := range b {
		in[l]--
	}
	var diff []string
	for l, n := range in {
		switch {
		case n > 0:
			diff = append(diff, "only from the commit: "+l)
		case n < 0:
			diff = append(diff, "only from the checkout: "+l)
		}
	}
	if len(diff) > 0 {
		t.Errorf("%s differ:\n%s", what, strings.Join(diff, "\n"))
	}
}

// TestBuildPathsAgree builds the same layering (no scripts) from the base
// commit and on a checkout of it, with the package cache cold and warm, and
// compares the trees file by file (objects, modes, owners, xattrs,
// directory metadata), the rpmdbs header by header (but for the install
// times) and the commit metadata.
func TestBuildPathsAgree(t *testing.T) {
	f := newPathsFixture(t)
	want := f.agree(t, f.plan(t, "fc-extra", "fc-main"))
	for _, p := range []string{"/usr/bin/fc-tool", "/usr/share/fc-shared/extra", "/usr/share/fc/private/key", "/usr/bin/fc-link -> fc-tool"} {
		if !strings.Contains(want, p) {
			t.Errorf("the layered tree lacks %s", p)
		}
	}
}

// TestBuildPathsAgreeScripts is TestBuildPathsAgree with %post and
// %posttrans scripts, run over an overlay of a deployment of the base on
// one side and on a checkout on the other.
func TestBuildPathsAgreeScripts(t *testing.T) {
	testrpm.Require(t, "bwrap", "rofiles-fuse")
	f := newPathsFixture(t)
	f.withBaseTree(t)
	want := f.agree(t, f.plan(t, "fcp-dep", "fcp-main"))
	for _, p := range []string{"/usr/share/fcp/post-ran", "/usr/share/fcp/posttrans-ran", "/usr/share/fcp/from-dep",
		"/usr/share/fcp/link -> keep", "/usr/lib/fcp-in-base-dir", "/usr/share/fcp/made", "/usr/share/fcp-new-top"} {
		if !strings.Contains(want, p) {
			t.Errorf("the layered tree lacks %s", p)
		}
	}
	for _, p := range []string{"/usr/share/fcp/remove-me", "/usr/share/fcp/made/deeper"} {
		if strings.Contains(want, p) {
			t.Errorf("the layered tree has %s, which the scripts removed", p)
		}
	}
}

// agree builds plan from the commit (cold), on a checkout, and from the
// commit again (warm), checks which path each took and that they give the
// same tree, and returns the checkout path's listing.
func (f *pathsFixture) agree(t *testing.T, plan *Plan) string {
	t.Helper()
	cold, coldStages, err := f.build(t, plan, false)
	if err != nil {
		t.Fatal(err)
	}
	if tookCheckout(coldStages) {
		t.Fatalf("assembled on a checkout: %q", coldStages)
	}
	if len(cold.Imported) != len(plan.Packages) {
		t.Errorf("cold build imported %q, want every package", cold.Imported)
	}
	ref, refStages, err := f.build(t, plan, true)
	if err != nil {
		t.Fatal(err)
	}
	if !tookCheckout(refStages) {
		t.Fatalf("the forced checkout path did not check out: %q", refStages)
	}
	warm, warmStages, err := f.build(t, plan, false)
	if err != nil {
		t.Fatal(err)
	}
	if tookCheckout(warmStages) || len(warm.Imported) != 0 {
		t.Fatalf("warm build: stages %q, imported %q", warmStages, warm.Imported)
	}

	want := f.listing(t, ref.Commit)
	wantDB := f.rpmdb(t, ref.Commit)
	_, wantMeta, err := f.repo.CommitMetadata(ref.Commit)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		res  *Result
	}{{"cold", cold}, {"warm", warm}} {
		got := f.listing(t, c.res.Commit)
		diffLines(t, c.name+" trees", got, want)
		if db := f.rpmdb(t, c.res.Commit); db != wantDB {
			t.Errorf("%s: the rpmdbs differ:\n%s\n---\n%s", c.name, db, wantDB)
		}
		_, meta, err := f.repo.CommitMetadata(c.res.Commit)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range wantMeta {
			if meta[k] != v {
				t.Errorf("%s: commit metadata %s = %q, the checkout path's %q", c.name, k, meta[k], v)
			}
		}
		if strings.Join(c.res.Users, ",") != strings.Join(ref.Users, ",") || strings.Join(c.res.Layered, ",") != strings.Join(ref.Layered, ",") ||
			c.res.ScriptsRun != ref.ScriptsRun {
			t.Errorf("%s: users %q layered %q scripts %d, the checkout path's %q %q %d", c.name, c.res.Users, c.res.Layered, c.res.ScriptsRun,
				ref.Users, ref.Layered, ref.ScriptsRun)
		}
	}
	for _, p := range plan.Packages {
		if !strings.Contains(wantDB, p.Name) {
			t.Errorf("the rpmdb lacks %s", p.Name)
		}
	}
	return strings.Join(want, "\n")
}

// TestBuildFromCommitFallsBack checks that a package that does not merge
// cleanly with the base (a file conflict) is decided by the checkout path:
// the same refusal as there, and nothing left in the repository.
func TestBuildFromCommitFallsBack(t *testing.T) {
	f := newPathsFixture(t)
	_, stages, err := f.build(t, f.plan(t, "fc-conflict"), false)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Path != "usr/lib/os-release" || ce.With != "the base" {
		t.Fatalf("layering fc-conflict: %v, want a conflict on usr/lib/os-release with the base", err)
	}
	if !tookCheckout(stages) {
		t.Errorf("the conflict was not decided on a checkout: %q", stages)
	}
	// A refusal writes nothing: not even the package cache commit.
	refs, err := f.repo.Refs(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for r := range refs {
		if strings.Contains(r, "fc-conflict") {
			t.Errorf("the refused package left the ref %s", r)
		}
	}
}
