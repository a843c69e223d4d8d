package containers

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// mkHostfs builds an exports/hostfs tree.
func mkHostfs(t *testing.T) string {
	t.Helper()
	hostfs := filepath.Join(t.TempDir(), "hostfs")
	files := map[string]string{
		"etc/web/web.conf":     "port=$PORT\n",
		"etc/web/static.conf":  "cost $5\n",
		"usr/local/bin/webctl": "#!/bin/sh\n",
		"etc/exists.conf":      "from image\n",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(hostfs, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(hostfs, p), []byte(c), 0o644)
	}
	os.Chmod(filepath.Join(hostfs, "usr/local/bin/webctl"), 0o755)
	os.MkdirAll(filepath.Join(hostfs, "var/lib/web-empty"), 0o750)
	os.Symlink("webctl", filepath.Join(hostfs, "usr/local/bin/wctl"))
	return hostfs
}

func TestInstallAndRemoveHostFiles(t *testing.T) {
	hostfs := mkHostfs(t)
	host := t.TempDir()
	os.MkdirAll(filepath.Join(host, "etc"), 0o755)
	os.MkdirAll(filepath.Join(host, "usr/local"), 0o755)
	os.WriteFile(filepath.Join(host, "etc/exists.conf"), []byte("the admin's\n"), 0o644)

	rename, err := RenderRenameFiles(map[string]string{"/etc/web": "/etc/$NAME", "/usr/local/bin/webctl": "/usr/local/bin/${NAME}ctl"},
		map[string]string{"NAME": "site"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := InstallHostFiles(hostfs, host, HostFilesOptions{Rename: rename,
		Templates: []string{"/etc/site/web.conf"}, Values: map[string]string{"PORT": "8080"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/etc/site":              DirChecksum,
		"/etc/site/web.conf":     sum("port=8080\n"),
		"/etc/site/static.conf":  sum("cost $5\n"), // not a template: copied verbatim
		"/usr/local/bin":         DirChecksum,
		"/usr/local/bin/sitectl": sum("#!/bin/sh\n"),
		"/usr/local/bin/wctl":    "symlink:webctl",
		"/var":                   DirChecksum,
		"/var/lib":               DirChecksum,
		"/var/lib/web-empty":     DirChecksum,
	}
	if len(res.Installed) != len(want) {
		t.Errorf("Installed = %v", res.Installed)
	}
	for p, s := range want {
		if res.Installed[p] != s {
			t.Errorf("Installed[%s] = %q, want %q", p, res.Installed[p], s)
		}
		if got, err := HostFileChecksum(host, p); err != nil || got != s {
			t.Errorf("on disk %s = %q, %v", p, got, err)
		}
	}
	if !slices.Equal(res.Skipped, []string{"/etc/exists.conf"}) {
		t.Errorf("Skipped = %v", res.Skipped)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "etc/exists.conf")); string(b) != "the admin's\n" {
		t.Errorf("existing file overwritten: %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(host, "usr/local/bin/sitectl")); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(host, "var/lib/web-empty")); fi.Mode().Perm() != 0o750 {
		t.Errorf("dir mode %v", fi.Mode())
	}

	// The admin edits one file and drops a file into a created directory.
	os.WriteFile(filepath.Join(host, "etc/site/static.conf"), []byte("edited\n"), 0o644)
	os.WriteFile(filepath.Join(host, "var/lib/web-empty/data"), []byte("x"), 0o644)
	kept, err := RemoveHostFiles(host, res.Installed)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/site", "/etc/site/static.conf", "/var", "/var/lib", "/var/lib/web-empty"}; !slices.Equal(kept, want) {
		t.Errorf("kept = %v, want %v", kept, want)
	}
	for _, gone := range []string{"etc/site/web.conf", "usr/local/bin/sitectl", "usr/local/bin/wctl", "usr/local/bin"} {
		if _, err := os.Lstat(filepath.Join(host, gone)); err == nil {
			t.Errorf("%s was not removed", gone)
		}
	}
	for _, stays := range []string{"etc/exists.conf", "usr/local", "etc/site/static.conf"} {
		if _, err := os.Lstat(filepath.Join(host, stays)); err != nil {
			t.Errorf("%s removed: %v", stays, err)
		}
	}
	// Removing again is fine.
	if _, err := RemoveHostFiles(host, res.Installed); err != nil {
		t.Fatal(err)
	}
}

func TestInstallHostFilesUndoesOnError(t *testing.T) {
	hostfs := mkHostfs(t)
	host := t.TempDir()
	// web.conf is a template with no PORT value: the install fails half way.
	_, err := InstallHostFiles(hostfs, host, HostFilesOptions{Templates: []string{"/etc/web/web.conf"}})
	if err == nil || !strings.Contains(err.Error(), "$PORT") {
		t.Fatalf("err = %v", err)
	}
	if names, _ := os.ReadDir(host); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
}

func TestInstallHostFilesStaysInRoot(t *testing.T) {
	hostfs := mkHostfs(t)
	base := t.TempDir()
	host, outside := filepath.Join(base, "host"), filepath.Join(base, "outside")
	os.MkdirAll(host, 0o755)
	os.MkdirAll(outside, 0o755)
	// The host root's /etc is an absolute symlink: it is not a directory of
	// the root, so hostfs/etc is skipped, and a rename through it is an error.
	os.Symlink(outside, filepath.Join(host, "etc"))
	res, err := InstallHostFiles(hostfs, host, HostFilesOptions{Values: map[string]string{"PORT": "1"}})
	if err != nil || !slices.Contains(res.Skipped, "/etc") {
		t.Fatalf("res = %+v, %v; want /etc skipped", res, err)
	}
	host2 := filepath.Join(base, "host2")
	os.MkdirAll(host2, 0o755)
	os.Symlink(outside, filepath.Join(host2, "lnk"))
	_, err = InstallHostFiles(hostfs, host2, HostFilesOptions{Rename: map[string]string{"/usr/local/bin/webctl": "/lnk/webctl"}})
	if err == nil {
		t.Fatal("wrote through an escaping symlink")
	}
	if names, _ := os.ReadDir(outside); len(names) != 0 {
		t.Fatalf("outside written: %v", names)
	}
	if names, _ := os.ReadDir(host2); len(names) != 1 {
		t.Fatalf("failed install left %v", names)
	}
	// A rename that climbs out is refused.
	if _, err := InstallHostFiles(hostfs, t.TempDir(), HostFilesOptions{Rename: map[string]string{"/etc": "/../x"}}); err == nil {
		t.Fatal("rename with .. accepted")
	}
}

func TestRenamePath(t *testing.T) {
	r := map[string]string{"/etc/docker-container": "/etc/docker2", "/etc/docker2/x": "/opt/x", "/usr/bin/a": "/usr/bin/b"}
	for in, want := range map[string]string{
		"/etc/docker-container/daemon.json": "/etc/docker2/daemon.json",
		"/etc/docker-container/x":           "/opt/x", // prefixes apply in turn, atomic's _do_rename_path
		"/usr/bin/a":                        "/usr/bin/b",
		"/usr/bin/ab":                       "/usr/bin/ab",
		"/etc":                              "/etc",
	} {
		if got := RenamePath(in, r); got != want {
			t.Errorf("RenamePath(%s) = %s, want %s", in, got, want)
		}
	}
}
