package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// ent describes one tar entry for mkTar.
type ent struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
	xattrs           map[string]string
}

func mkTar(t testing.TB, ents ...ent) []byte {
	return buildTar(t, false, ents...)
}

// buildTar writes ents as a tar; lenient leaves out entries archive/tar
// cannot encode instead of failing.
func buildTar(t testing.TB, lenient bool, ents ...ent) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.link, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.xattrs != nil {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			if lenient {
				continue
			}
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// sandbox makes DIR/root (the target) and DIR/outside/secret, and returns
// both paths and a check that nothing outside root changed.
func sandbox(t *testing.T) (root, outside string, check func()) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	os.Mkdir(root, 0o755)
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600)
	return root, outside, func() {
		t.Helper()
		names, _ := os.ReadDir(base)
		if len(names) != 2 {
			t.Errorf("entries next to root: %v", names)
		}
		out, _ := os.ReadDir(outside)
		if len(out) != 1 {
			t.Errorf("outside has %v", out)
		}
		if b, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(b) != "secret" {
			t.Errorf("outside/secret changed: %q %v", b, err)
		}
		if fi, err := os.Lstat(filepath.Join(outside, "secret")); err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Nlink != 1 {
			t.Errorf("outside/secret metadata changed: %v %v", fi, err)
		}
	}
}

func apply(t *testing.T, root string, data []byte, opts Options) (*Result, error) {
	t.Helper()
	return Apply(context.Background(), root, bytes.NewReader(data), opts)
}

func TestHostileLayersRefused(t *testing.T) {
	cases := []struct {
		name string
		ents func(outside string) []ent
		want string
	}{
		{"dotdot file", func(string) []ent { return []ent{{name: "../outside/secret", body: "x"}} }, `".."`},
		{"dotdot inside path", func(string) []ent { return []ent{{name: "a/../../outside/x", body: "x"}} }, `".."`},
		{"absolute symlink parent", func(o string) []ent {
			return []ent{{name: "evil", typ: tar.TypeSymlink, link: o}, {name: "evil/secret", body: "pwned"}}
		}, "symlink that points outside"},
		{"relative symlink parent climbing out", func(string) []ent {
			return []ent{{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "d/up", typ: tar.TypeSymlink, link: "../../outside"}, {name: "d/up/new", body: "pwned"}}
		}, "symlink that points outside"},
		{"symlink parent for a directory", func(o string) []ent {
			return []ent{{name: "evil", typ: tar.TypeSymlink, link: o}, {name: "evil/sub/", typ: tar.TypeDir, mode: 0o755}}
		}, "symlink that points outside"},
		{"hardlink dotdot", func(string) []ent { return []ent{{name: "l", typ: tar.TypeLink, link: "../outside/secret"}} }, "outside the layer root"},
		{"hardlink through escaping symlink", func(o string) []ent {
			return []ent{{name: "evil", typ: tar.TypeSymlink, link: o}, {name: "l", typ: tar.TypeLink, link: "evil/secret"}}
		}, "symlink that points outside"},
		{"whiteout through escaping symlink", func(o string) []ent {
			return []ent{{name: "evil", typ: tar.TypeSymlink, link: o}, {name: "evil/.wh.secret", body: ""}}
		}, "symlink that points outside"},
		{"opaque through escaping symlink", func(o string) []ent {
			return []ent{{name: "evil", typ: tar.TypeSymlink, link: o}, {name: "evil/x/.wh..wh..opq", body: ""}}
		}, "symlink that points outside"},
		{"whiteout of dotdot", func(string) []ent { return []ent{{name: "a/.wh..."}} }, "bad whiteout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, outside, check := sandbox(t)
			_, err := apply(t, root, mkTar(t, tc.ents(outside)...), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply error = %v, want it to say %q", err, tc.want)
			}
			check()
		})
	}
}

func TestAbsoluteNamesAreRelative(t *testing.T) {
	root, _, check := sandbox(t)
	_, err := apply(t, root, mkTar(t,
		ent{name: "/etc/hostname", body: "box\n"},
		ent{name: "./usr/bin/sh", typ: tar.TypeSymlink, link: "/usr/bin/busybox"},
		ent{name: "/", typ: tar.TypeDir, mode: 0o777},
	), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(b) != "box\n" {
		t.Fatalf("etc/hostname = %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(root, "usr/bin/sh")); l != "/usr/bin/busybox" {
		t.Fatalf("usr/bin/sh -> %q; absolute symlink targets are kept", l)
	}
	if fi, _ := os.Stat(root); fi.Mode().Perm() != 0o755 {
		t.Fatalf("the root entry changed the target's mode to %v", fi.Mode())
	}
	check()
}

func TestDeviceNodes(t *testing.T) {
	devs := []ent{
		{name: "dev/null", typ: tar.TypeChar},
		{name: "dev/sda", typ: tar.TypeBlock},
		{name: "run/fifo", typ: tar.TypeFifo},
		{name: "run/fifo2", typ: tar.TypeLink, link: "run/fifo"},
		{name: "ok", body: "fine"},
	}
	root, _, _ := sandbox(t)
	res, err := apply(t, root, mkTar(t, devs...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dev/null", "dev/sda", "run/fifo", "run/fifo2"}
	if !slices.Equal(res.Dropped, want) {
		t.Fatalf("Dropped = %v, want %v", res.Dropped, want)
	}
	for _, p := range want {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "ok")); err != nil {
		t.Fatal(err)
	}

	root2, _, _ := sandbox(t)
	if _, err := apply(t, root2, mkTar(t, devs...), Options{RefuseDevices: true}); err == nil || !strings.Contains(err.Error(), "device nodes") {
		t.Fatalf("RefuseDevices: err = %v", err)
	}
}

func TestWhiteoutsAndOpaque(t *testing.T) {
	root, _, check := sandbox(t)
	lower := mkTar(t,
		ent{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "etc/a", body: "a"},
		ent{name: "etc/b", body: "b"},
		ent{name: "opt/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "opt/old", body: "old"},
		ent{name: "opt/sub/deep", body: "deep"},
		ent{name: "var/keep", body: "keep"},
		ent{name: "link", typ: tar.TypeSymlink, link: "etc"},
	)
	upper := mkTar(t,
		ent{name: "etc/.wh.a"},
		ent{name: "opt/new", body: "new"},       // before the opaque marker: same layer, kept
		ent{name: "opt/sub/mine", body: "mine"}, // implicit directory of this layer, kept
		ent{name: "opt/.wh..wh..opq"},
		ent{name: "var/new", body: "n"},
		ent{name: "var/.wh.new"}, // same layer: not whited out
		ent{name: ".wh.link"},
		ent{name: "etc/.wh.nothere"},
	)
	for _, l := range [][]byte{lower, upper} {
		if _, err := apply(t, root, l, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[string]string{"etc/a": "", "etc/b": "b", "opt/old": "", "opt/new": "new",
		"opt/sub/deep": "", "opt/sub/mine": "mine", "var/keep": "keep", "var/new": "n", "link": ""} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if want == "" {
			if _, lerr := os.Lstat(filepath.Join(root, p)); !errors.Is(lerr, fs.ErrNotExist) {
				t.Errorf("%s should be gone: %v", p, lerr)
			}
			continue
		}
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	for _, p := range []string{"etc/.wh.a", "opt/.wh..wh..opq", "var/.wh.new"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("whiteout marker %s was written", p)
		}
	}
	check()
}

func TestReplaceAcrossLayers(t *testing.T) {
	root, _, _ := sandbox(t)
	for _, l := range [][]byte{
		mkTar(t, ent{name: "x/", typ: tar.TypeDir, mode: 0o755}, ent{name: "x/f", body: "f"},
			ent{name: "y", typ: tar.TypeSymlink, link: "x"}, ent{name: "z", body: "file"}),
		mkTar(t, ent{name: "x", body: "now a file"}, ent{name: "y/", typ: tar.TypeDir, mode: 0o750},
			ent{name: "z", typ: tar.TypeSymlink, link: "/nowhere"}),
	} {
		if _, err := apply(t, root, l, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "x")); string(b) != "now a file" {
		t.Errorf("x = %q", b)
	}
	if fi, _ := os.Lstat(filepath.Join(root, "y")); fi == nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("y = %v, want a 0750 directory", fi)
	}
	if l, _ := os.Readlink(filepath.Join(root, "z")); l != "/nowhere" {
		t.Errorf("z -> %q", l)
	}
}

func TestMetadataKept(t *testing.T) {
	root, _, _ := sandbox(t)
	res, err := apply(t, root, mkTar(t,
		ent{name: "bin/", typ: tar.TypeDir, mode: 0o711, uid: 5, gid: 6},
		ent{name: "bin/su", body: "#!", mode: 0o4755, uid: 0, gid: 0},
		ent{name: "bin/tool", body: "tool", mode: 0o2750, uid: 1000, gid: 1001,
			xattrs: map[string]string{"user.origin": "layer", "security.capability": "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
		ent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		ent{name: "bin/hard", typ: tar.TypeLink, link: "bin/tool"},
		ent{name: "bin/ln", typ: tar.TypeSymlink, link: "tool", uid: 7, gid: 8},
	), Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := func(p string) *syscall.Stat_t {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t)
	}
	if s := st("bin"); s.Mode&0o7777 != 0o711 || s.Uid != 5 || s.Gid != 6 {
		t.Errorf("bin: mode %o uid %d gid %d", s.Mode&0o7777, s.Uid, s.Gid)
	}
	if s := st("bin/su"); s.Mode&0o7777 != 0o4755 {
		t.Errorf("bin/su mode %o", s.Mode&0o7777)
	}
	if s := st("bin/tool"); s.Mode&0o7777 != 0o2750 || s.Uid != 1000 || s.Gid != 1001 || s.Nlink != 2 {
		t.Errorf("bin/tool: mode %o uid %d gid %d nlink %d", s.Mode&0o7777, s.Uid, s.Gid, s.Nlink)
	}
	if st("bin/hard").Ino != st("bin/tool").Ino {
		t.Error("bin/hard is not a hard link of bin/tool")
	}
	if s := st("tmp"); s.Mode&0o7777 != 0o1777 {
		t.Errorf("tmp mode %o", s.Mode&0o7777)
	}
	if s := st("bin/ln"); s.Uid != 7 || s.Gid != 8 {
		t.Errorf("symlink owner %d:%d", s.Uid, s.Gid)
	}
	if fi, _ := os.Stat(filepath.Join(root, "bin/su")); !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("bin/su mtime %v", fi.ModTime())
	}
	if fi, _ := os.Stat(filepath.Join(root, "bin")); !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("bin mtime %v (directory times are set after its children)", fi.ModTime())
	}
	for _, x := range []string{"user.origin", "security.capability"} {
		if slices.Contains(res.XattrsSkipped, "bin/tool: "+x) {
			t.Logf("filesystem does not support %s", x)
			continue
		}
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(root, "bin/tool"), x, buf)
		if err != nil {
			t.Errorf("xattr %s: %v", x, err)
		} else if x == "user.origin" && string(buf[:n]) != "layer" {
			t.Errorf("xattr %s = %q", x, buf[:n])
		}
	}
}

func TestCompressedLayers(t *testing.T) {
	plain := mkTar(t, ent{name: "hello", body: "world"})
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(plain)
	zw.Close()
	for name, data := range map[string][]byte{"plain": plain, "gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		root, _, _ := sandbox(t)
		if _, err := apply(t, root, data, Options{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "hello")); string(b) != "world" {
			t.Errorf("%s: hello = %q", name, b)
		}
	}
	root, _, _ := sandbox(t)
	if _, err := apply(t, root, []byte("\xfd7zXZ\x00rest"), Options{}); err == nil || !strings.Contains(err.Error(), "xz") {
		t.Errorf("xz: %v", err)
	}
	if _, err := apply(t, root, []byte("not a tar at all, not at all, not at all"), Options{}); err == nil {
		t.Error("garbage accepted")
	}
}

func TestApplyCancelled(t *testing.T) {
	root, _, _ := sandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Apply(ctx, root, bytes.NewReader(mkTar(t, ent{name: "a", body: "a"})), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"a/b": "a/b", "/etc/passwd": "etc/passwd", "./a//b/./c/": "a/b/c", "/": "", ".": "", "": "",
		"..a/b..": "..a/b..", ".wh..wh..opq": ".wh..wh..opq",
	} {
		if got, err := CleanPath(in); err != nil || got != want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"..", "../a", "a/../b", "/../etc", "a/..", "a\x00b"} {
		if got, err := CleanPath(in); err == nil {
			t.Errorf("CleanPath(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzLayerPath(f *testing.F) {
	for _, s := range []string{"a/b", "/etc/passwd", "../x", "a/../../b", "./.", "//a//", ".wh..wh..opq", "a/.wh.b", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := CleanPath(name)
		hasDotDot := slices.Contains(strings.Split(name, "/"), "..")
		if err != nil {
			if !hasDotDot && !strings.Contains(name, "\x00") {
				t.Fatalf("CleanPath(%q) refused: %v", name, err)
			}
			return
		}
		if hasDotDot {
			t.Fatalf("CleanPath(%q) = %q accepted a .. component", name, got)
		}
		if got == "" {
			return
		}
		if !filepath.IsLocal(got) || path.Clean(got) != got || strings.HasPrefix(got, "/") {
			t.Fatalf("CleanPath(%q) = %q is not a clean local path", name, got)
		}
	})
}

// FuzzApply builds a tar from a line-based description (TYPE NAME [TARGET],
// TYPE one of f d l h c p; @OUT in a target is the absolute outside
// directory) and checks that applying it never touches anything outside the
// target directory.
func FuzzApply(f *testing.F) {
	for _, s := range []string{
		"f a\nd b\nl c b\nf c/x",
		"l evil @OUT\nf evil/secret",
		"l up ../outside\nf up/secret\nh h up/secret",
		"d x\nf x/.wh..wh..opq\nf .wh.x",
		"h l ../outside/secret",
		"l a b\nl b a\nf a/x",
		"c dev/null\nh d dev/null\np fifo",
		"l s .\nf s/s/s/x\nl t s/../../outside\nf t/y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, desc string) {
		root, outside, check := sandbox(t)
		var ents []ent
		for i, line := range strings.Split(desc, "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 || i > 40 || strings.ContainsRune(line, 0) {
				continue
			}
			e := ent{name: fields[1], body: line, mode: 0o755}
			target := ""
			if len(fields) > 2 {
				target = strings.ReplaceAll(fields[2], "@OUT", outside)
			}
			switch fields[0] {
			case "f":
			case "d":
				e.typ = tar.TypeDir
			case "l":
				e.typ, e.link = tar.TypeSymlink, target
			case "h":
				e.typ, e.link = tar.TypeLink, target
			case "c":
				e.typ = tar.TypeChar
			case "p":
				e.typ = tar.TypeFifo
			default:
				continue
			}
			ents = append(ents, e)
		}
		apply(t, root, buildTar(t, true, ents...), Options{})
		check()
	})
}
