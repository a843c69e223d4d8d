package layering

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := cutPrefix(content, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

func TestCheckConflicts(t *testing.T) {
	base := map[string]string{"usr/lib/os-release": "NAME=base\n", "usr/bin/sh": "->busybox", "usr/bin/busybox": "bb"}
	for _, tc := range []struct {
		name string
		pkgs []map[string]string
		want string // conflicting path, "" for none
		with string
	}{
		{"new files", []map[string]string{{"usr/share/a/x": "1"}}, "", ""},
		{"identical file", []map[string]string{{"usr/lib/os-release": "NAME=base\n"}}, "", ""},
		{"identical symlink", []map[string]string{{"usr/bin/sh": "->busybox"}}, "", ""},
		{"different content", []map[string]string{{"usr/lib/os-release": "NAME=other\n"}}, "usr/lib/os-release", "the base"},
		{"different symlink", []map[string]string{{"usr/bin/sh": "->bash"}}, "usr/bin/sh", "the base"},
		{"file over symlink", []map[string]string{{"usr/bin/sh": "#!"}}, "usr/bin/sh", "the base"},
		{"between packages", []map[string]string{{"usr/share/x": "1"}, {"usr/share/x": "2"}}, "usr/share/x", "package p0"},
		{"same in two packages", []map[string]string{{"usr/share/x": "1"}, {"usr/share/x": "1"}}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := writeTree(t, base)
			var pkgs []pkgTree
			for i, files := range tc.pkgs {
				pkgs = append(pkgs, pkgTree{name: "p" + string(rune('0'+i)), dir: writeTree(t, files)})
			}
			err := checkConflicts(b, pkgs)
			var ce *ConflictError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && !errors.As(err, &ce):
				t.Fatalf("want a conflict on %s, got %v", tc.want, err)
			case tc.want != "" && (ce.Path != tc.want || ce.With != tc.with):
				t.Fatalf("conflict %+v, want path %s with %s", ce, tc.want, tc.with)
			}
		})
	}
}

func TestBreakHardlinks(t *testing.T) {
	dir := t.TempDir()
	obj := filepath.Join(dir, "object")
	if err := os.WriteFile(obj, []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "tree", RPMDBPath)
	if err := os.MkdirAll(db, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(obj, filepath.Join(db, "rpmdb.sqlite")); err != nil {
		t.Fatal(err)
	}
	if err := breakHardlinks(db); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db, "rpmdb.sqlite"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(obj); string(got) != "shared" {
		t.Fatalf("writing the copy changed the shared object: %q", got)
	}
}
