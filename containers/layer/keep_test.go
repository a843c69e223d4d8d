package layer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestKeepWhiteouts: a layer applied alone for import keeps its whiteouts
// as empty files and reports its symlinks and directories.
func TestKeepWhiteouts(t *testing.T) {
	dir := t.TempDir()
	tarball := mkTar(t,
		ent{name: "etc/", typ: '5', mode: 0o755},
		ent{name: "etc/.wh.passwd"},
		ent{name: "var/.wh..wh..opq"},
		ent{name: "var/new", body: "x"},
		ent{name: "lib", typ: '2', link: "usr/lib"},
	)
	res, err := Apply(context.Background(), dir, bytes.NewReader(tarball), Options{KeepWhiteouts: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"etc/.wh.passwd", "var/.wh..wh..opq", "var/new"} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if !slices.Equal(res.Symlinks, []string{"lib"}) {
		t.Fatalf("symlinks %v", res.Symlinks)
	}
	if !slices.Equal(res.Dirs, []string{"etc", "var"}) {
		t.Fatalf("dirs %v", res.Dirs)
	}
	if _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(mkTar(t, ent{name: "a/.wh.."})), Options{KeepWhiteouts: true}); err == nil {
		t.Fatal("a bad whiteout name was kept")
	}
}
