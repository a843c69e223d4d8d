package main

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hostctl/hostctl/layering/rpmmd"
	"github.com/hostctl/hostctl/layering/solv"
)

// TestGenerateRepo checks that a generated repository is one hostctl's
// metadata reader accepts (checksums, sizes) and that libsolv resolves the
// request to at least the closure the generator computed.
func TestGenerateRepo(t *testing.T) {
	dir := t.TempDir()
	g, err := generateRepo(dir, 3000, 7)
	if err != nil {
		t.Fatal(err)
	}
	if g.closure < 20 {
		t.Fatalf("request %s needs %d packages; the generator should make long chains", g.request, g.closure)
	}
	f, err := os.Open(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md, err := rpmmd.ParseRepoMD(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"primary", "filelists", "other"} {
		if _, ok := md.Find(kind); !ok {
			t.Errorf("repomd.xml has no %s", kind)
		}
	}
	p, _ := md.Find("primary")
	in, err := os.Open(filepath.Join(dir, p.Location))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	primary := filepath.Join(t.TempDir(), "primary.xml")
	out, err := os.Create(primary)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(out, zr)
	out.Close()
	if err != nil || n != g.primaryOpen || n != p.OpenSize {
		t.Fatalf("primary.xml: %d bytes (%v), repomd says %d", n, err, g.primaryOpen)
	}
	pool := solv.NewPool("x86_64")
	defer pool.Close()
	if _, err := pool.AddRepoMD("gen", primary, ""); err != nil {
		t.Fatal(err)
	}
	pkgs, err := pool.SolveInstall([]string{g.request})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < g.closure {
		t.Fatalf("libsolv installs %d packages for %s, fewer than its %d requires", len(pkgs), g.request, g.closure)
	}
}

func TestDnfInstallSize(t *testing.T) {
	out := "Transaction Summary\n================\nInstall  242 Packages\n\nOperation aborted.\n"
	if n, err := dnfInstallSize(out); err != nil || n != 242 {
		t.Fatalf("%d %v", n, err)
	}
	if n, err := dnfInstallSize("Install  1 Package\n"); err != nil || n != 1 {
		t.Fatalf("%d %v", n, err)
	}
	if _, err := dnfInstallSize("Operation aborted.\n"); err == nil {
		t.Fatal("no summary: want an error")
	}
}
