package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnmountUnder(t *testing.T) {
	dir := t.TempDir()
	mp := filepath.Join(dir, "assemble", "with space")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mp, "tmpfs", 0, ""); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v); the test needs root", err)
	}
	if err := os.WriteFile(filepath.Join(mp, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	done, err := unmountUnder(filepath.Join(dir, "assemble"))
	if err != nil || len(done) != 1 || done[0] != mp {
		t.Fatalf("unmounted %v, %v", done, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("remove after unmount: %v", err)
	}
}
