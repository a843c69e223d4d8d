package deploy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/internal/testutil"
)

// miniRemote commits small bootable trees (a kernel, an initramfs, /usr/etc)
// to an archive repo with the ostree CLI and serves it over HTTP on loopback.
type miniRemote struct {
	repo    string
	url     string
	commits map[string]string // version -> checksum
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func newMiniRemote(t *testing.T, versions ...string) *miniRemote {
	t.Helper()
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Fatalf("ostree CLI not installed (make deps): %v", err)
	}
	dir := t.TempDir()
	m := &miniRemote{repo: filepath.Join(dir, "repo"), commits: map[string]string{}}
	run(t, "ostree", "init", "--repo="+m.repo, "--mode=archive")
	for _, v := range versions {
		tree := filepath.Join(dir, "tree-"+v)
		files := map[string]string{
			"usr/lib/modules/6.1.0/vmlinuz":       "kernel " + v,
			"usr/lib/modules/6.1.0/initramfs.img": "initramfs " + v,
			"usr/etc/os-release":                  "NAME=Mini\nID=mini\nPRETTY_NAME=\"Mini " + v + "\"\nVERSION_ID=" + v + "\n",
			"usr/bin/hello":                       "#!/bin/sh\necho " + v + "\n",
		}
		for p, c := range files {
			if err := os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		m.commits[v] = run(t, "ostree", "commit", "--repo="+m.repo, "-b", "mini/stable", "--tree=dir="+tree, "--add-metadata-string=version="+v, "-s", "v"+v)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(m.repo)))
	t.Cleanup(srv.Close)
	m.url = srv.URL
	return m
}

func newTestSysroot(t *testing.T, m *miniRemote) *Sysroot {
	t.Helper()
	ctx := context.Background()
	s, err := Init(ctx, testutil.TempSysrootDir(t), "mini")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddRemote(ctx, Remote{Name: "origin", URL: m.url}, false, false); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.TryLock(); err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	return s
}

func TestPullDeployRollbackCleanup(t *testing.T) {
	ctx := context.Background()
	m := newMiniRemote(t, "1", "2")
	s := newTestSysroot(t, m)

	var progressCalls int
	csum, err := s.Pull(ctx, "origin:mini/stable", PullOptions{Commit: m.commits["1"], Progress: func(PullProgress) { progressCalls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if csum != m.commits["1"] {
		t.Fatalf("pulled %s, want %s", csum, m.commits["1"])
	}
	d1, err := s.Deploy(ctx, DeployOptions{OSName: "mini", Revision: csum, Origin: NewOrigin("origin:mini/stable"), Kargs: []string{"quiet"}})
	if err != nil {
		t.Fatal(err)
	}
	if d1.Version != "1" || !d1.Default || d1.Refspec() != "origin:mini/stable" {
		t.Fatalf("first deployment: %+v", d1)
	}
	if _, err := os.Stat(filepath.Join(d1.Path, "usr/bin/hello")); err != nil {
		t.Fatalf("deployment checkout: %v", err)
	}

	csum2, err := s.Pull(ctx, "origin:mini/stable", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if csum2 != m.commits["2"] {
		t.Fatalf("pulled %s, want tip %s", csum2, m.commits["2"])
	}
	d2, err := s.Deploy(ctx, DeployOptions{Revision: csum2, Origin: d1.Origin})
	if err != nil {
		t.Fatal(err)
	}
	deps, _ := s.Deployments(ctx)
	if len(deps) != 2 || deps[0].Version != "2" || deps[1].Version != "1" {
		t.Fatalf("after upgrade: %+v", deps)
	}
	if !strings.Contains(d2.Kargs, "quiet") {
		t.Fatalf("kargs not inherited from the merge deployment: %q", d2.Kargs)
	}
	// /etc merge: the new deployment has its own /etc made from /usr/etc.
	if b, err := os.ReadFile(filepath.Join(d2.Path, "etc/os-release")); err != nil || !strings.Contains(string(b), "VERSION_ID=2") {
		t.Fatalf("etc of new deployment: %q %v", b, err)
	}
	status := run(t, "ostree", "admin", "status", "--sysroot="+s.Path())
	if !strings.Contains(status, "Version: 2") || strings.Index(status, csum2) > strings.Index(status, csum) {
		t.Fatalf("ostree admin status disagrees:\n%s", status)
	}

	st1, _ := os.Stat(deps[0].Path)
	rb, err := s.Rollback(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Version != "1" {
		t.Fatalf("rollback default is %s", rb.Version)
	}
	st2, _ := os.Stat(deps[0].Path)
	if !os.SameFile(st1, st2) {
		t.Fatal("rollback rewrote a deployment")
	}
	removed, err := s.Cleanup(ctx, CleanupOptions{Rollback: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Version != "2" {
		t.Fatalf("cleanup -r removed %+v", removed)
	}
	if _, err := os.Stat(deps[0].Path); !os.IsNotExist(err) {
		t.Fatalf("removed deployment dir still there: %v", err)
	}
	if _, err := s.Rollback(ctx); !errors.Is(err, ErrNoRollback) {
		t.Fatalf("rollback with one deployment: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	m := newMiniRemote(t, "1")
	s := newTestSysroot(t, m)
	if _, err := s.Pull(ctx, "origin:no/such/ref", PullOptions{}); err == nil {
		t.Fatal("pull of unknown ref succeeded")
	}
	if _, err := s.Pull(ctx, "nosuchremote:mini/stable", PullOptions{}); err == nil {
		t.Fatal("pull from unknown remote succeeded")
	}
	if _, err := s.Deploy(ctx, DeployOptions{OSName: "mini", Revision: strings.Repeat("a", 64), Origin: NewOrigin("origin:mini/stable")}); err == nil {
		t.Fatal("deploy of a missing commit succeeded")
	}
	if _, err := Open(ctx, t.TempDir()); !errors.Is(err, ErrNotSysroot) {
		t.Fatalf("open of a plain dir: %v", err)
	}
	deps, _ := s.Deployments(ctx)
	if len(deps) != 0 {
		t.Fatalf("bad input changed the sysroot: %+v", deps)
	}
}

func TestPullCancel(t *testing.T) {
	m := newMiniRemote(t, "1")
	s := newTestSysroot(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Pull(ctx, "origin:mini/stable", PullOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull: %v", err)
	}
}
