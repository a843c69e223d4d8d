package layering

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cavaliergopher/cpio"
	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/layering/internal/testrpm"
)

func testIDs(t *testing.T) *IDs {
	t.Helper()
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	group := filepath.Join(dir, "group")
	os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/sh\npayloaduser:x:1234:2345::/:/sbin/nologin\n"), 0o644)
	os.WriteFile(group, []byte("root:x:0:\npayloadgroup:x:2345:\n"), 0o644)
	ids, err := LoadIDs([]string{passwd, filepath.Join(dir, "missing")}, []string{group})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("extraction keeps owners: needs root")
	}
}

func TestExtractPayload(t *testing.T) {
	requireRoot(t)
	for _, comp := range []string{testrpm.Gzip, testrpm.XZ, testrpm.Zstd} {
		t.Run(comp, func(t *testing.T) {
			rpms := testrpm.BuildFile(t, "testdata/payload.spec", comp)
			dest := t.TempDir()
			out, err := ExtractPayload(context.Background(), rpms[0], dest, testIDs(t))
			if err != nil {
				t.Fatal(err)
			}
			checkPayload(t, dest, out)
		})
	}
}

func checkPayload(t *testing.T, dest string, out *Extracted) {
	t.Helper()
	stat := func(rel string) *syscall.Stat_t {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(dest, rel))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t)
	}
	content := func(rel string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dest, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		rel      string
		mode     uint32 // type and permission bits
		uid, gid uint32
		content  string
	}{
		{"usr/bin/hello", unix.S_IFREG | 0o755, 0, 0, "hello\n"},
		{"usr/bin/setuidtool", unix.S_IFREG | 0o4755, 0, 0, "setuid\n"},
		{"usr/libexec/pinger", unix.S_IFREG | 0o755, 0, 0, "ping\n"},
		{"usr/share/payload", unix.S_IFDIR | 0o750, 0, 2345, ""},
		{"usr/share/payload/owned", unix.S_IFREG | 0o640, 1234, 2345, "owned\n"},
		{"usr/share/payload/with space", unix.S_IFREG | 0o644, 0, 0, "spaced\n"},
		{"usr/share/payload/a", unix.S_IFREG | 0o644, 0, 0, "shared content\n"},
		{"usr/share/factory/var/lib/payload/state", unix.S_IFREG | 0o600, 1234, 2345, "initial state\n"},
		{"usr/lib/opt/payload/bin/tool", unix.S_IFREG | 0o644, 0, 0, "tool\n"},
	} {
		st := stat(c.rel)
		if st.Mode != c.mode || st.Uid != c.uid || st.Gid != c.gid {
			t.Errorf("%s: mode %#o uid %d gid %d, want %#o %d %d", c.rel, st.Mode, st.Uid, st.Gid, c.mode, c.uid, c.gid)
		}
		if c.content != "" && content(c.rel) != c.content {
			t.Errorf("%s: content %q, want %q", c.rel, content(c.rel), c.content)
		}
	}
	if target, err := os.Readlink(filepath.Join(dest, "usr/bin/hello-link")); err != nil || target != "hello" {
		t.Errorf("symlink: %q %v", target, err)
	}
	a, b := stat("usr/share/payload/a"), stat("usr/share/payload/b")
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hardlink set: inodes %d %d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	capXattr := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(dest, "usr/libexec/pinger"), "security.capability", capXattr)
	if err != nil {
		t.Fatalf("capability xattr: %v", err)
	}
	want, _ := fileCapsXattr("cap_net_admin,cap_net_raw=ep")
	if !bytes.Equal(capXattr[:n], want) {
		t.Errorf("capability xattr %x, want %x", capXattr[:n], want)
	}
	if getcap, err := exec.LookPath("getcap"); err == nil {
		outb, err := exec.Command(getcap, filepath.Join(dest, "usr/libexec/pinger")).CombinedOutput()
		if err != nil || !strings.Contains(string(outb), "cap_net_admin,cap_net_raw=ep") {
			t.Errorf("getcap: %s %v", outb, err)
		}
	}
	for _, absent := range []string{"var", "run", "opt"} {
		if _, err := os.Lstat(filepath.Join(dest, absent)); !os.IsNotExist(err) {
			t.Errorf("/%s written into the tree: %v", absent, err)
		}
	}
	wantLines := []string{
		"L /var/opt/payload - - - - /usr/lib/opt/payload",
		"d /run/payload 0755 root root - -",
		"d /var/lib/payload 0700 payloaduser payloadgroup - -",
		"L /var/lib/payload/share - - - - ../../../usr/share/payload",
		"C /var/lib/payload/state - - - - /usr/share/factory/var/lib/payload/state",
		"f /var/log/payload.log 0640 payloaduser root - -",
	}
	if strings.Join(out.Tmpfiles, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("tmpfiles lines:\n%s\nwant:\n%s", strings.Join(out.Tmpfiles, "\n"), strings.Join(wantLines, "\n"))
	}
	if out.TmpfilesConf != "usr/lib/tmpfiles.d/pkg-payload.conf" || !strings.HasSuffix(content(out.TmpfilesConf), strings.Join(wantLines, "\n")+"\n") {
		t.Errorf("tmpfiles.d file %q:\n%s", out.TmpfilesConf, content(out.TmpfilesConf))
	}
	if len(out.OptLinks) != 1 || out.OptLinks[0] != "/opt/payload" {
		t.Errorf("opt links %v", out.OptLinks)
	}
}

func TestExtractPayloadUnknownOwner(t *testing.T) {
	requireRoot(t)
	rpms := testrpm.BuildFile(t, "testdata/payload.spec", "")
	ids, err := LoadIDs(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ExtractPayload(context.Background(), rpms[0], t.TempDir(), ids)
	if err == nil || !strings.Contains(err.Error(), `extract payload of package payload: /usr/share/payload: group "payloadgroup" is not a group of the target tree's group file`) {
		t.Fatalf("error = %v", err)
	}
}

// testEntry is one entry of an archive written by cavaliergopher/cpio's
// newc writer.
type testEntry struct {
	name, link string
	mode       int64
	body       string
}

func writeCPIO(t *testing.T, entries []testEntry) *cpioReader {
	t.Helper()
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	for i, e := range entries {
		hdr := &cpio.Header{Name: e.name, Mode: cpio.FileMode(e.mode), Size: int64(len(e.body)), Links: 1, Inode: int64(i + 1)}
		body := e.body
		if e.mode&unix.S_IFMT == unix.S_IFLNK {
			body = e.link
			hdr.Size = int64(len(body))
			hdr.Linkname = e.link
		}
		if err := w.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return newCPIOReader(&buf)
}

// tableOf is a header file table listing entries (the first entry of a
// path gives its metadata), owned by root.
func tableOf(entries []testEntry) *fileTable {
	t := &fileTable{byPath: map[string]int{}}
	for _, e := range entries {
		p := "/" + strings.TrimPrefix(strings.TrimPrefix(e.name, "."), "/")
		if _, dup := t.byPath[p]; dup || strings.Contains(e.name, "unlisted") {
			continue
		}
		f := headerFile{path: p, user: "root", group: "root", mode: uint32(e.mode), size: int64(len(e.body)), link: e.link}
		if e.mode&unix.S_IFMT == unix.S_IFLNK {
			f.size = int64(len(e.link))
		}
		t.byPath[p] = len(t.files)
		t.files = append(t.files, f)
	}
	return t
}

func TestExtractRefusesEscapes(t *testing.T) {
	requireRoot(t)
	outside := t.TempDir()
	reg := int64(unix.S_IFREG | 0o644)
	tests := []struct {
		name    string
		entries []testEntry
		err     string
	}{
		{"dotdot", []testEntry{{name: "./usr/../../etc/passwd", mode: reg, body: "x"}}, `payload path "./usr/../../etc/passwd" leaves the tree`},
		{"absolute", []testEntry{{name: "/etc/passwd", mode: reg, body: "x"}}, `payload path "/etc/passwd" is absolute`},
		{"absolute after ./", []testEntry{{name: ".//etc/passwd", mode: reg, body: "x"}}, `payload path ".//etc/passwd" is absolute`},
		{"through symlink", []testEntry{
			{name: "./usr/lib/evil", mode: unix.S_IFLNK | 0o777, link: outside},
			{name: "./usr/lib/evil/passwd", mode: reg, body: "x"},
		}, "/usr/lib/evil/passwd: path passes through symlink usr/lib/evil"},
		{"through relative symlink", []testEntry{
			{name: "./usr/up", mode: unix.S_IFLNK | 0o777, link: "../../../../../../../.." + outside},
			{name: "./usr/up/x/y", mode: reg, body: "x"},
		}, "path passes through symlink usr/up"},
		{"file over symlink", []testEntry{
			{name: "./usr/f", mode: unix.S_IFLNK | 0o777, link: outside + "/f"},
			{name: "./usr/f", mode: reg, body: "x"},
		}, "/usr/f: twice in the payload"},
		{"dir over symlink", []testEntry{
			{name: "./usr/d", mode: unix.S_IFLNK | 0o777, link: outside},
			{name: "./usr/d", mode: unix.S_IFDIR | 0o755},
		}, "/usr/d: twice in the payload"},
		{"device", []testEntry{{name: "./usr/dev", mode: unix.S_IFCHR | 0o644}}, "unsupported file type"},
		{"not in header", []testEntry{{name: "./usr/unlisted", mode: reg, body: "x"}}, `payload entry "./usr/unlisted" is not in the header's file list`},
		{"truncated", []testEntry{{name: "./usr/f", mode: reg, body: ""}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := t.TempDir()
			x, err := newExtractor(dest, "evil", tableOf(tt.entries), testIDs(t))
			if err != nil {
				t.Fatal(err)
			}
			defer x.dd.Close()
			err = x.run(context.Background(), writeCPIO(t, tt.entries))
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error = %v, want containing %q", err, tt.err)
			}
			if left, _ := os.ReadDir(outside); len(left) != 0 {
				t.Fatalf("wrote outside the destination: %v", left)
			}
		})
	}
}

func TestSanitizePath(t *testing.T) {
	for in, want := range map[string]string{
		"./usr/bin/foo": "usr/bin/foo",
		"usr/bin/foo":   "usr/bin/foo",
		"./":            "",
		".":             "",
		"./a..b/..c":    "a..b/..c",
	} {
		got, err := SanitizePath(in)
		if err != nil || got != want {
			t.Errorf("SanitizePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"../etc":        "leaves the tree",
		"./usr/../..":   "leaves the tree",
		"./usr/..":      "leaves the tree",
		"/etc/passwd":   "is absolute",
		".//etc":        "is absolute",
		"./usr//bin":    "not canonical",
		"./usr/./bin":   "not canonical",
		"./usr/bin/":    "not canonical",
		"./usr/\x00bin": "NUL byte",
		"././usr":       "not canonical",
	} {
		if _, err := SanitizePath(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SanitizePath(%q) error = %v, want %q", in, err, want)
		}
	}
}

func FuzzSanitizePath(f *testing.F) {
	for _, s := range []string{"./usr/bin/foo", "../x", "./a/../b", "/abs", ".//abs", "./a//b", "./", "a/./b", "./..", "...", "./.../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		rel, err := SanitizePath(name)
		if err != nil || rel == "" {
			return
		}
		if !filepath.IsLocal(rel) || filepath.Clean(rel) != rel || strings.HasPrefix(rel, "/") {
			t.Fatalf("SanitizePath(%q) = %q: not a clean local path", name, rel)
		}
		for _, c := range strings.Split(rel, "/") {
			if c == ".." || c == "." || c == "" {
				t.Fatalf("SanitizePath(%q) = %q has component %q", name, rel, c)
			}
		}
	})
}

func TestFileCapsXattr(t *testing.T) {
	tests := []struct {
		in   string
		want string // hex
		err  string
	}{
		{"cap_net_raw=ep", "0100000200200000000000000000000000000000", ""},
		{"cap_net_raw+p", "0000000200200000000000000000000000000000", ""},
		{"cap_chown,cap_kill=eip", "0100000221000000210000000000000000000000", ""},
		{"cap_bpf=p", "0000000200000000000000008000000000000000", ""},
		{"cap_net_raw=ep cap_net_raw-e", "0000000200200000000000000000000000000000", ""},
		{"", "", ""},
		{"cap_bogus=ep", "", `unknown capability "cap_bogus"`},
		{"cap_chown", "", "has no =, + or -"},
		{"cap_chown=x", "", "unknown flag"},
	}
	for _, tt := range tests {
		got, err := fileCapsXattr(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || hexString(got) != tt.want {
			t.Errorf("%q: %s %v, want %s", tt.in, hexString(got), err, tt.want)
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, len(b)*2)
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestExtractHardlinkSets extracts newc hardlink sets written by another
// cpio writer (cavaliergopher/cpio), members named by the header's inodes.
func TestExtractHardlinkSets(t *testing.T) {
	requireRoot(t)
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	table := &fileTable{byPath: map[string]int{}}
	sets := map[int64][]int{}
	for i, e := range []struct {
		name  string
		ino   int64
		links int
		body  string
	}{
		{"./usr/empty1", 7, 2, ""},
		{"./usr/empty2", 7, 2, ""}, // a set of empty files: no member has content
		{"./usr/full1", 8, 3, ""},
		{"./usr/full2", 8, 3, ""},
		{"./usr/full3", 8, 3, "data"},
	} {
		if err := w.WriteHeader(&cpio.Header{Name: e.name, Mode: unix.S_IFREG | 0o640, Size: int64(len(e.body)), Links: e.links, Inode: e.ino}); err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
		p := strings.TrimPrefix(e.name, ".")
		table.byPath[p] = i
		table.files = append(table.files, headerFile{path: p, user: "payloaduser", group: "payloadgroup", mode: unix.S_IFREG | 0o640, size: 4})
		sets[e.ino] = append(sets[e.ino], i)
	}
	w.Close()
	for _, s := range sets {
		for _, i := range s {
			table.files[i].set = s
		}
	}
	table.files[0].size, table.files[1].size = 0, 0
	dest := t.TempDir()
	x, err := newExtractor(dest, "links", table, testIDs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer x.dd.Close()
	if err := x.run(context.Background(), newCPIOReader(&buf)); err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]string{{"empty1", "empty2"}, {"full1", "full2", "full3"}} {
		var ino uint64
		for _, n := range set {
			fi, err := os.Stat(filepath.Join(dest, "usr", n))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if ino != 0 && st.Ino != ino || int(st.Nlink) != len(set) || st.Uid != 1234 || st.Gid != 2345 || st.Mode&0o7777 != 0o640 {
				t.Fatalf("%s: ino %d nlink %d uid %d gid %d mode %#o", n, st.Ino, st.Nlink, st.Uid, st.Gid, st.Mode)
			}
			ino = st.Ino
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "usr/full1")); string(b) != "data" {
		t.Fatalf("full1 = %q", b)
	}
}

// FuzzExtractPayload feeds arbitrary bytes to ExtractPayload as an RPM file:
// it must not panic, and whatever it accepts it writes inside dest only. Its
// seeds are real RPMs checked in under testdata/fuzz/FuzzExtractPayload (see
// TestWriteFuzzSeeds): nothing is built in the fuzz workers. Minimization is
// bounded (boundMinimize).
func FuzzExtractPayload(f *testing.F) {
	// Each input writes a tree (about a millisecond): minimizing the inputs
	// that find new coverage must stay short for fuzzing to go on.
	boundMinimize(f, "200ms")
	f.Add([]byte("\xed\xab\xee\xdb"))
	f.Fuzz(func(t *testing.T, data []byte) {
		top := t.TempDir()
		pkg := filepath.Join(top, "p.rpm")
		if err := os.WriteFile(pkg, data, 0o644); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(top, "dest")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		ids, _ := LoadIDs(nil, nil)
		ExtractPayload(context.Background(), pkg, dest, ids)
		entries, _ := os.ReadDir(top)
		for _, e := range entries {
			if e.Name() != "p.rpm" && e.Name() != "dest" {
				t.Fatalf("ExtractPayload wrote %s outside dest", e.Name())
			}
		}
	})
}
