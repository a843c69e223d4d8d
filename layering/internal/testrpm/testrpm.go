// Package testrpm builds real RPMs with rpmbuild and rpm-md repositories with
// createrepo_c, for the tests of package layering and its sub-packages.
package testrpm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Payload compressions, as rpmbuild's _binary_payload macro names them.
const (
	Gzip = "w9.gzdio"
	XZ   = "w6.xzdio"
	Zstd = "w19.zstdio"
)

// Require skips the test when the tools are missing.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

// Build writes spec to a temporary topdir, runs rpmbuild -bb with the given
// payload compression ("" means zstd) and returns the paths of the built RPMs.
func Build(t testing.TB, spec, payload string) []string {
	t.Helper()
	Require(t, "rpmbuild")
	if payload == "" {
		payload = Zstd
	}
	top := t.TempDir()
	specPath := filepath.Join(top, "test.spec")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("rpmbuild", "-bb", "--quiet", "--nodeps",
		"--define", "_topdir "+top,
		"--define", "_binary_payload "+payload,
		"--define", "_build_id_links none",
		"--define", "__os_install_post %{nil}",
		specPath)
	cmd.Env = append(os.Environ(), "HOME="+top, "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	rpms, err := filepath.Glob(filepath.Join(top, "RPMS", "*", "*.rpm"))
	if err != nil || len(rpms) == 0 {
		t.Fatalf("rpmbuild made no RPM (%v)", err)
	}
	return rpms
}

// BuildFile is Build with the spec read from a file (e.g. testdata/foo.spec).
func BuildFile(t testing.TB, specFile, payload string) []string {
	t.Helper()
	spec, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	return Build(t, string(spec), payload)
}

// CreateRepo copies rpms into dir and runs createrepo_c on it with the given
// metadata compression ("gz", "xz", "zstd"; "" for createrepo_c's default).
// Debian's createrepo_c has no zstd: for "zstd" the primary it writes is
// recompressed with the zstd tool and repomd.xml updated to name it.
func CreateRepo(t testing.TB, dir, compress string, rpms ...string) {
	t.Helper()
	if compress == "zstd" {
		createRepo(t, dir, "gz", rpms...)
		recompressPrimaryZstd(t, dir)
		return
	}
	createRepo(t, dir, compress, rpms...)
}

func createRepo(t testing.TB, dir, compress string, rpms ...string) {
	t.Helper()
	Require(t, "createrepo_c")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, r := range rpms {
		data, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(r)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--quiet", "--no-database"}
	if compress != "" {
		args = append(args, "--general-compress-type="+compress)
	}
	args = append(args, dir)
	if out, err := exec.Command("createrepo_c", args...).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
}

// recompressPrimaryZstd replaces repodata's primary.xml.gz by a .zst and
// rewrites its checksum, size and location in repomd.xml.
func recompressPrimaryZstd(t testing.TB, dir string) {
	t.Helper()
	Require(t, "zstd", "gzip")
	gzs, _ := filepath.Glob(filepath.Join(dir, "repodata", "*-primary.xml.gz"))
	if len(gzs) != 1 {
		t.Fatalf("primary.xml.gz not found in %s", dir)
	}
	plain, err := exec.Command("gzip", "-dc", gzs[0]).Output()
	if err != nil {
		t.Fatalf("gzip -dc: %v", err)
	}
	cmd := exec.Command("zstd", "-q", "-c")
	cmd.Stdin = strings.NewReader(string(plain))
	zst, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}
	sum := sha256.Sum256(zst)
	hexsum := hex.EncodeToString(sum[:])
	name := "repodata/" + hexsum + "-primary.xml.zst"
	if err := os.WriteFile(filepath.Join(dir, name), zst, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(gzs[0])
	repomdPath := filepath.Join(dir, "repodata", "repomd.xml")
	repomd, err := os.ReadFile(repomdPath)
	if err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`(?s)<data type="primary">.*?</data>`)
	loc := entry.Find(repomd)
	if loc == nil {
		t.Fatal("repomd.xml has no primary entry")
	}
	e := string(loc)
	e = regexp.MustCompile(`<checksum type="sha256">[0-9a-f]+</checksum>`).ReplaceAllString(e, `<checksum type="sha256">`+hexsum+`</checksum>`)
	e = regexp.MustCompile(`<location href="[^"]+"/>`).ReplaceAllString(e, `<location href="`+name+`"/>`)
	e = regexp.MustCompile(`<size>\d+</size>`).ReplaceAllString(e, fmt.Sprintf("<size>%d</size>", len(zst)))
	repomd = entry.ReplaceAll(repomd, []byte(e))
	if err := os.WriteFile(repomdPath, repomd, 0o644); err != nil {
		t.Fatal(err)
	}
}
