package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSnapshotDiff(t *testing.T) {
	dir := t.TempDir()
	write := func(p, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("repo/obj1", "0123456789")
	write("repo/obj2", "abc")
	write("grows", "12")
	before, err := takeSnapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A checkout: hardlinks to the objects in a new directory, a new file,
	// a symlink, and a file that grows.
	if err := os.MkdirAll(filepath.Join(dir, "slot", "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"obj1", "obj2"} {
		if err := os.Link(filepath.Join(dir, "repo", o), filepath.Join(dir, "slot", "rootfs", o)); err != nil {
			t.Fatal(err)
		}
	}
	write("slot/config.json", "{\"x\":1}")
	if err := os.Symlink("slot", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	write("grows", "12345")
	after, err := takeSnapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := diff(before, after)
	want := growth{Files: 1, Dirs: 2, Other: 1, FileBytes: 7, Grown: 3, Names: 6}
	g.Allocated = 0
	if g != want {
		t.Errorf("diff = %+v; want %+v", g, want)
	}
	if g.NewInodes() != 4 {
		t.Errorf("NewInodes = %d; want 4", g.NewInodes())
	}

	// Against the repo alone, a peer's checkout directory holds no new file.
	repo, err := takeSnapshot(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	var got []growth
	if err := addPeer(&got, filepath.Join(dir, "slot"), repo); err != nil {
		t.Fatal(err)
	}
	if g := got[0]; g.Files != 1 || g.FileBytes != 7 || g.Dirs != 2 || g.Names != 5 {
		t.Errorf("addPeer = %+v; want 1 new file of 7 bytes, 2 dirs, 5 names", g)
	}
	if s, err := takeSnapshot(filepath.Join(dir, "missing")); err != nil || len(s.inodes) != 0 {
		t.Errorf("snapshot of a missing dir = %v, %v; want empty", s, err)
	}
}

const procIO = `rchar: 5339072
wchar: 12236390
syscr: 1529
syscw: 4467
read_bytes: 4096
write_bytes: 31289344
cancelled_write_bytes: 6045696
`

func TestParseIO(t *testing.T) {
	c, err := parseIO([]byte(procIO))
	if err != nil {
		t.Fatal(err)
	}
	if c != (ioCounters{WriteBytes: 31289344, WChar: 12236390, ReadBytes: 4096}) {
		t.Errorf("parseIO = %+v", c)
	}
	if d := c.sub(ioCounters{WriteBytes: 1289344, WChar: 236390, ReadBytes: 96}); d != (ioCounters{WriteBytes: 30000000, WChar: 12000000, ReadBytes: 4000}) {
		t.Errorf("sub = %+v", d)
	}
	for _, bad := range []string{"", "rchar: 1\n", "write_bytes: x\nwchar: 1\n"} {
		if _, err := parseIO([]byte(bad)); err == nil || !strings.Contains(err.Error(), "write_bytes") {
			t.Errorf("parseIO(%q) = %v; want an error naming write_bytes", bad, err)
		}
	}
	self, err := readIO(os.Getpid())
	if err != nil {
		t.Skipf("no /proc/self/io here: %v", err)
	}
	if self.WChar < 0 {
		t.Errorf("readIO(self) = %+v", self)
	}
}

func FuzzParseIO(f *testing.F) {
	f.Add([]byte(procIO))
	f.Add([]byte("write_bytes: -1\nwchar: 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseIO(b)
		if err != nil {
			return
		}
		// What parsed comes back the same from its canonical text.
		again, err := parseIO([]byte(fmt.Sprintf("write_bytes: %d\nwchar: %d\nread_bytes: %d\n", c.WriteBytes, c.WChar, c.ReadBytes)))
		if err != nil || again != c {
			t.Fatalf("parseIO round trip: %+v, %v; want %+v", again, err, c)
		}
	})
}
