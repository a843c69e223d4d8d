package layering

import (
	"bufio"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/layering/internal/testrpm"
	"github.com/hostctl/hostctl/layering/solv"
)

// TestScriptsRunInInstallOrder resolves two real packages whose scripts
// depend on each other's files (testdata/scriptorder.spec) with libsolv,
// and runs their scripts in the bubblewrap sandbox as Build does: zz-lib's
// %post before that of aa-app, which requires it, and %posttrans after every
// %post. Run in name order instead, the same scripts fail.
func TestScriptsRunInInstallOrder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox (rofiles-fuse, bwrap) needs root")
	}
	testrpm.Require(t, "rpm", "bwrap", "rofiles-fuse", "createrepo_c")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed")
	}
	rpms := testrpm.BuildFile(t, "testdata/scriptorder.spec", "")
	pkgs := resolveScriptOrder(t, rpms)

	jobs := scriptJobs(pkgs)
	var got []string
	for _, j := range jobs {
		got = append(got, j.Package+" "+j.Type)
	}
	if want := "zz-lib %post, aa-app %post, zz-lib %posttrans"; strings.Join(got, ", ") != want {
		t.Fatalf("scripts run as %q, want %q", strings.Join(got, ", "), want)
	}

	ctx := context.Background()
	tree := scriptTree(t)
	if err := runScripts(ctx, t.TempDir(), tree, jobs); err != nil {
		t.Fatalf("scripts in install order: %v", err)
	}
	for _, f := range []string{"usr/share/zz-lib/ready", "usr/share/aa-app/configured", "usr/share/zz-lib/posttrans-ran"} {
		if _, err := os.Stat(filepath.Join(tree, f)); err != nil {
			t.Errorf("after the scripts: %v", err)
		}
	}

	// The control: in name order aa-app's %post finds nothing to use.
	byName := []ScriptJob{jobs[1], jobs[0], jobs[2]}
	err := runScripts(ctx, t.TempDir(), scriptTree(t), byName)
	if err == nil || !strings.Contains(err.Error(), "package aa-app: %post script failed") || !strings.Contains(err.Error(), "zz-lib's %post has not run") {
		t.Fatalf("scripts in name order: error %v, want aa-app's %%post to fail", err)
	}
}

// resolveScriptOrder solves installing aa-app from a repository of rpms on
// an rpmdb with order-base and returns the packages as Build has them after
// fetch.
func resolveScriptOrder(t *testing.T, rpms []string) []*preparedPkg {
	t.Helper()
	repo, root := t.TempDir(), t.TempDir()
	var layered []string
	for _, r := range rpms {
		if !strings.Contains(filepath.Base(r), "order-base") {
			layered = append(layered, r)
			continue
		}
		out, err := exec.Command("rpm", "--root", root, "--dbpath", "/"+RPMDBPath, "--define", "_db_backend sqlite",
			"-i", "--justdb", "--nodeps", "--noscripts", r).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm -i --justdb order-base: %v\n%s", err, out)
		}
	}
	testrpm.CreateRepo(t, repo, "gz", layered...)
	gzs, _ := filepath.Glob(filepath.Join(repo, "repodata", "*-primary.xml.gz"))
	if len(gzs) != 1 {
		t.Fatalf("primary.xml.gz: %v", gzs)
	}
	primary := filepath.Join(t.TempDir(), "primary.xml")
	gunzip(t, gzs[0], primary)
	pool := solv.NewPool("x86_64")
	defer pool.Close()
	if _, err := pool.LoadInstalled(root); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.AddRepoMD("order", primary, ""); err != nil {
		t.Fatal(err)
	}
	sol, err := pool.SolveInstall([]string{"aa-app"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sol) != 2 || sol[0].Name != "aa-app" || sol[1].Name != "zz-lib" {
		t.Fatalf("solution %v, want aa-app and zz-lib (sorted by name)", sol)
	}
	var out []*preparedPkg
	for _, sp := range sol {
		path := filepath.Join(repo, filepath.Base(sp.Location))
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		pkg, err := ReadPackage(bufio.NewReader(fh))
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		scripts, err := ReadScripts(pkg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &preparedPkg{file: PackageFile{Package: sp, Path: path}, scripts: scripts, order: sp.Order})
	}
	return out
}

// scriptTree is a tree the scripts can run in: busybox as /bin/sh, /usr/etc,
// and the directories the two packages' payloads would have made.
func scriptTree(t *testing.T) string {
	t.Helper()
	tree := writeTree(t, map[string]string{
		"usr/bin/sh":               "->busybox",
		"bin":                      "->usr/bin",
		"usr/etc/passwd":           "root:x:0:0:root:/root:/bin/sh\n",
		"usr/share/zz-lib/version": "lib\n",
		"usr/share/aa-app/version": "app\n",
	})
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "usr/bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	return tree
}

func gunzip(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
}
