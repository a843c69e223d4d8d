package bootloader

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func sign(i int) int {
	switch {
	case i < 0:
		return -1
	case i > 0:
		return 1
	}
	return 0
}

func TestStrverscmp(t *testing.T) {
	// The order glibc's strverscmp(3) manual gives.
	order := []string{"000", "00", "01", "010", "09", "0", "1", "9", "10"}
	for i := range order {
		for j := range order {
			if got, want := sign(strverscmp(order[i], order[j])), sign(i-j); got != want {
				t.Errorf("strverscmp(%q, %q) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"2", "10", -1}, {"10", "9", 1}, {"1.10", "1.9", 1}, {"a", "b", -1}, {"", "1", -1},
		{"5.0.0", "5.0.0", 0}, {"abc10", "abc9", 1}, {"1a", "1", 1},
	} {
		if got := sign(strverscmp(tt.a, tt.b)); got != tt.want {
			t.Errorf("strverscmp(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestStrverscmpAgainstGlibc compares with glibc's strverscmp through
// python3's ctypes, on random version-like strings.
func TestStrverscmpAgainstGlibc(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed: cannot call glibc's strverscmp")
	}
	r := rand.New(rand.NewSource(1))
	alphabet := "0019.a-"
	var pairs [][2]string
	for i := 0; i < 3000; i++ {
		var p [2]string
		for k := range p {
			n := r.Intn(7)
			b := make([]byte, n)
			for j := range b {
				b[j] = alphabet[r.Intn(len(alphabet))]
			}
			p[k] = string(b)
		}
		if r.Intn(3) == 0 {
			p[1] = p[0] + p[1][:len(p[1])/2]
		}
		pairs = append(pairs, p)
	}
	var in strings.Builder
	for _, p := range pairs {
		fmt.Fprintf(&in, "%s\t%s\n", p[0], p[1])
	}
	script := `
import ctypes, sys
libc = ctypes.CDLL("libc.so.6")
libc.strverscmp.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
for line in sys.stdin.read().split("\n")[:-1]:
    a, b = line.split("\t")
    r = libc.strverscmp(a.encode(), b.encode())
    print((r > 0) - (r < 0))
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("python3 ctypes glibc call failed: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(pairs) {
		t.Fatalf("got %d results for %d pairs", len(lines), len(pairs))
	}
	for i, p := range pairs {
		want, _ := strconv.Atoi(lines[i])
		if got := sign(strverscmp(p[0], p[1])); got != want {
			t.Errorf("strverscmp(%q, %q) = %d, glibc says %d", p[0], p[1], got, want)
		}
	}
}

func TestSortEntries(t *testing.T) {
	mk := func(name, version string) Entry { return Entry{Name: name, Version: version, Linux: "/k"} }
	entries := []Entry{
		mk("nover-b.conf", ""), mk("ostree-2-a.conf", "2"), mk("ostree-10-a.conf", "10"),
		mk("nover-a.conf", ""), mk("ostree-9-a.conf", "9"), mk("x.conf", "9"),
	}
	SortEntries(entries)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name)
	}
	want := "ostree-10-a.conf ostree-9-a.conf x.conf ostree-2-a.conf nover-a.conf nover-b.conf"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %v", got, want)
	}
}

// writeBoot makes a boot dir with loader -> loader.N and the given entries.
func writeBoot(t *testing.T, version int, entries map[string]string, files ...string) string {
	t.Helper()
	boot := t.TempDir()
	dir := filepath.Join(boot, fmt.Sprintf("loader.%d", version), "entries")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range entries {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		p := filepath.Join(boot, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(fmt.Sprintf("loader.%d", version), filepath.Join(boot, "loader")); err != nil {
		t.Fatal(err)
	}
	return boot
}

func TestReadAndVerifyHandMade(t *testing.T) {
	entries := map[string]string{
		"ostree-1-os.conf": "version 1\noptions ostree=/ostree/boot.1/os/c1/0\nlinux /ostree/os-c1/vmlinuz\ninitrd /ostree/os-c1/initramfs.img\n",
		"ostree-2-os.conf": "version 2\noptions ostree=/ostree/boot.1/os/c2/0\nlinux /boot/ostree/os-c2/vmlinuz\n",
		"README.txt":       "not an entry",
	}
	boot := writeBoot(t, 1, entries, "ostree/os-c1/vmlinuz", "ostree/os-c1/initramfs.img", "ostree/os-c2/vmlinuz")
	l, err := Read(boot)
	if err != nil {
		t.Fatal(err)
	}
	if l.Version != 1 || !l.Linked || len(l.Entries) != 2 {
		t.Fatalf("loader %+v", l)
	}
	if d, _ := l.Default(); d.Name != "ostree-2-os.conf" {
		t.Errorf("default %s", d.Name)
	}
	if r, _ := l.Rollback(); r.Name != "ostree-1-os.conf" {
		t.Errorf("rollback %s", r.Name)
	}
	if e, ok := l.Lookup("/ostree/boot.1/os/c1/0"); !ok || e.Name != "ostree-1-os.conf" {
		t.Errorf("Lookup: %v %s", ok, e.Name)
	}
	// /boot/ostree/... resolves with /boot stripped (separate partition, no boot/boot link).
	if err := Verify(boot); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyProblems(t *testing.T) {
	good := "version 1\noptions ostree=/ostree/boot.0/os/c/0\nlinux /k\ninitrd /i\n"
	tests := []struct {
		name    string
		setup   func(t *testing.T) string
		errText []string
	}{
		{"no loader", func(t *testing.T) string { return t.TempDir() }, []string{"no deployment has been written"}},
		{"loader not a symlink", func(t *testing.T) string {
			b := t.TempDir()
			os.MkdirAll(filepath.Join(b, "loader/entries"), 0o755)
			return b
		}, []string{"is not a symlink"}},
		{"loader points at loader.2", func(t *testing.T) string {
			b := writeBoot(t, 0, map[string]string{"ostree-1.conf": good}, "k", "i")
			os.Remove(filepath.Join(b, "loader"))
			os.Symlink("loader.2", filepath.Join(b, "loader"))
			return b
		}, []string{`points at "loader.2"`}},
		{"loader points at missing loader.1", func(t *testing.T) string {
			b := writeBoot(t, 0, map[string]string{"ostree-1.conf": good}, "k", "i")
			os.Remove(filepath.Join(b, "loader"))
			os.Symlink("loader.1", filepath.Join(b, "loader"))
			return b
		}, []string{"points at loader.1, which is missing"}},
		{"leftover loader.tmp", func(t *testing.T) string {
			b := writeBoot(t, 0, map[string]string{"ostree-1.conf": good}, "k", "i")
			os.Symlink("loader.1", filepath.Join(b, "loader.tmp"))
			return b
		}, []string{"loader.tmp is left over"}},
		{"no entries dir", func(t *testing.T) string {
			b := writeBoot(t, 0, nil)
			os.Remove(filepath.Join(b, "loader.0/entries"))
			return b
		}, []string{"entries directory"}},
		{"no entries", func(t *testing.T) string { return writeBoot(t, 0, nil) }, []string{"no boot entries"}},
		{"missing kernel and initrd", func(t *testing.T) string {
			return writeBoot(t, 0, map[string]string{"ostree-1.conf": good})
		}, []string{"entry ostree-1.conf: linux /k: missing", "entry ostree-1.conf: initrd /i: missing"}},
		{"kernel is a directory", func(t *testing.T) string {
			b := writeBoot(t, 0, map[string]string{"ostree-1.conf": good}, "i")
			os.Mkdir(filepath.Join(b, "k"), 0o755)
			return b
		}, []string{"linux /k", "not a regular file"}},
		{"stale boot version", func(t *testing.T) string {
			return writeBoot(t, 1, map[string]string{"ostree-1.conf": good}, "k", "i")
		}, []string{"ostree-1.conf", "boot version 0 but the entry is in loader.1"}},
		{"no ostree arg", func(t *testing.T) string {
			return writeBoot(t, 0, map[string]string{"ostree-1.conf": "linux /k\n"}, "k")
		}, []string{"no ostree= kernel argument"}},
		{"duplicate versions", func(t *testing.T) string {
			return writeBoot(t, 0, map[string]string{"ostree-1.conf": good, "ostree-2.conf": good}, "k", "i")
		}, []string{"both have version 1"}},
		{"unparsable entry", func(t *testing.T) string {
			return writeBoot(t, 0, map[string]string{"ostree-1.conf": "title x\n"})
		}, []string{"ostree-1.conf", "no linux key"}},
		{"escaping path stays in boot", func(t *testing.T) string {
			b := writeBoot(t, 0, map[string]string{"ostree-1.conf": "version 1\noptions ostree=/ostree/boot.0/os/c/0\nlinux /../../k\n"})
			return b
		}, []string{"linux /../../k: missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.setup(t)
			err := Verify(b)
			if err == nil {
				t.Fatal("Verify succeeded")
			}
			for _, s := range tt.errText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestReadNoLoader(t *testing.T) {
	l, err := Read(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if l.Linked || l.Version != 0 || len(l.Entries) != 0 {
		t.Errorf("%+v", l)
	}
	if _, ok := l.Default(); ok {
		t.Error("default in empty loader")
	}
}
