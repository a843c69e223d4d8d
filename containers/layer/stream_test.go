package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/deploy"
)

// testRepo makes a bare repository (the sysroot's mode) and opens it.
func testRepo(t testing.TB) *deploy.Repo {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a bare repository keeps file owners: needs root")
	}
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Skip("needs the ostree CLI to make a repository (make deps)")
	}
	dir := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command("ostree", "init", "--repo="+dir, "--mode=bare").CombinedOutput(); err != nil {
		t.Fatalf("ostree init: %v\n%s", err, out)
	}
	repo, err := deploy.OpenRepo(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	return repo
}

// sameCommit is what both imports commit with: equal trees give equal commits.
var sameCommit = deploy.CommitOptions{Subject: "layer", Timestamp: time.Unix(1700000000, 0)}

// importCommit imports data with Import in a transaction of its own and
// commits it as sameCommit.
func importCommit(t testing.TB, repo *deploy.Repo, data []byte) (string, *Imported, error) {
	t.Helper()
	ctx := context.Background()
	txn, err := repo.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	im, err := Import(ctx, txn, bytes.NewReader(data))
	if err != nil {
		return "", nil, err
	}
	defer im.Tree.Close()
	commit, err := txn.CommitTree(ctx, im.Tree, sameCommit)
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return commit, im, nil
}

// applyCommit is the path Import replaces: Apply with KeepWhiteouts into a
// fresh directory, then a commit of it.
func applyCommit(t testing.TB, repo *deploy.Repo, data []byte) (string, *Result, error) {
	t.Helper()
	dir, err := os.MkdirTemp(filepath.Join(repo.Path(), "tmp"), "apply-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	res, err := Apply(context.Background(), dir, bytes.NewReader(data), Options{KeepWhiteouts: true})
	if err != nil {
		return "", nil, err
	}
	commit, err := repo.Commit(context.Background(), dir, sameCommit)
	if err != nil {
		return "", nil, err
	}
	return commit, res, nil
}

// stackedTree checks the commits out on top of each other as an install
// does (union, OCI whiteouts) and describes every entry of the result.
func stackedTree(t testing.TB, repo *deploy.Repo, commits []string) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "rootfs")
	for _, c := range commits {
		if err := repo.Checkout(context.Background(), c, dest, deploy.CheckoutOptions{Overwrite: deploy.OverwriteUnion, Whiteouts: true}); err != nil {
			t.Fatal(err)
		}
	}
	return describeTree(t, dest)
}

// describeTree lists each entry of dir with its type, mode, owner, extended
// attributes and content (or target).
func describeTree(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %d %x", len(b), sha256.Sum256(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			line += " " + listXattrs(p)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func listXattrs(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return "[]"
	}
	var out []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		v := make([]byte, 4096)
		m, _ := unix.Lgetxattr(p, name, v)
		out = append(out, fmt.Sprintf("%s=%q", name, v[:max(m, 0)]))
	}
	sort.Strings(out)
	return "[" + strings.Join(out, " ") + "]"
}

// layerSets are layers (each a list of entries) that the old and the new
// import must turn into the same commits.
var layerSets = []struct {
	name   string
	layers [][]ent
}{
	{"files and modes", [][]ent{{
		{name: "./", typ: tar.TypeDir, mode: 0o700},
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/sh", body: "#!sh", mode: 0o755},
		{name: "bin/su", body: "su", mode: 0o4755},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		{name: "srv/", typ: tar.TypeDir, mode: 0o2750, uid: 7, gid: 8},
		{name: "srv/data", body: "data", mode: 0o640, uid: 1000, gid: 1001},
		{name: "/etc/hostname", body: "box\n"},
		{name: "deep/er/still/file", body: "implicit parents"},
		{name: "empty", body: ""},
		{name: "dev/", typ: tar.TypeDir, mode: 0o755},
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o666},
		{name: "dev/nulllink", typ: tar.TypeLink, link: "dev/null"},
	}}},
	{"symlinks and hardlinks", [][]ent{{
		{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/bin/busybox", body: "busybox", mode: 0o755},
		{name: "usr/bin/ls", typ: tar.TypeLink, link: "usr/bin/busybox"},
		{name: "bin", typ: tar.TypeSymlink, link: "usr/bin", uid: 3, gid: 4},
		{name: "bin/cat", typ: tar.TypeLink, link: "/usr/bin/busybox"},
		{name: "bin/new", body: "written through a symlink of the same layer"},
		{name: "abs", typ: tar.TypeSymlink, link: "/etc/passwd"},
		{name: "abslink", typ: tar.TypeLink, link: "abs"},
		{name: "up", typ: tar.TypeSymlink, link: "../../.."},
		{name: "usr/lib/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/lib/self", typ: tar.TypeSymlink, link: "../lib"},
		{name: "usr/lib/self/self/x", body: "x"},
	}}},
	{"replacements in one layer", [][]ent{{
		{name: "a", body: "file first"},
		{name: "a/", typ: tar.TypeDir, mode: 0o750},
		{name: "a/x", body: "x"},
		{name: "b/", typ: tar.TypeDir, mode: 0o755},
		{name: "b/y", body: "y"},
		{name: "b", body: "now a file"},
		{name: "c", body: "one"},
		{name: "c", body: "two", mode: 0o600},
		{name: "d", typ: tar.TypeSymlink, link: "a"},
		{name: "d/", typ: tar.TypeDir, mode: 0o711},
		{name: "e/", typ: tar.TypeDir, mode: 0o700, uid: 5},
		{name: "e/", typ: tar.TypeDir, mode: 0o755, uid: 6},
	}}},
	{"xattrs", [][]ent{{
		{name: "cap", body: "ping", mode: 0o755, xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "user.b": "2", "user.a": "1"}},
		{name: "d/", typ: tar.TypeDir, mode: 0o755, xattrs: map[string]string{"user.dir": "yes"}},
		{name: "d/f", body: "f", xattrs: map[string]string{"user.empty": ""}},
	}}},
	{"whiteouts and opaque directories across layers", [][]ent{
		{
			{name: "etc/", typ: tar.TypeDir, mode: 0o755},
			{name: "etc/keep", body: "keep"},
			{name: "etc/gone", body: "gone"},
			{name: "opt/", typ: tar.TypeDir, mode: 0o755},
			{name: "opt/old/", typ: tar.TypeDir, mode: 0o755},
			{name: "opt/old/file", body: "old"},
			{name: "opt/top", body: "top"},
			{name: "var/lib/thing/", typ: tar.TypeDir, mode: 0o755},
			{name: "var/lib/thing/state", body: "s"},
		},
		{
			{name: "etc/.wh.gone"},
			{name: "opt/.wh..wh..opq"},
			{name: "opt/new", body: "new"},
			{name: "var/lib/.wh.thing"},
			{name: "var/lib/thing2", body: "new sibling"},
			{name: ".wh.nothing"},
			{name: "not/yet/.wh.there"},
		},
		{
			{name: "etc/gone", body: "back again"},
			{name: "opt/.wh.new"},
		},
	}},
}

// TestImportMatchesApply: for every layer set, the streaming import and the
// old unpack-then-commit path give the very same commits (so the same
// objects and dirtrees), the same symlink and directory lists, and the same
// tree once the layers are checked out on top of each other with whiteouts.
func TestImportMatchesApply(t *testing.T) {
	for _, set := range layerSets {
		t.Run(set.name, func(t *testing.T) {
			repo := testRepo(t)
			var olds, news []string
			for i, l := range set.layers {
				data := mkTar(t, l...)
				oldC, res, err := applyCommit(t, repo, data)
				if err != nil {
					t.Fatalf("layer %d: Apply: %v", i, err)
				}
				newC, im, err := importCommit(t, repo, data)
				if err != nil {
					t.Fatalf("layer %d: Import: %v", i, err)
				}
				if oldC != newC {
					t.Errorf("layer %d: Import committed %s, the unpacked tree %s\n%s", i, newC, oldC, ostreeDiff(repo, oldC, newC))
				}
				if fmt.Sprint(res.Symlinks, res.Dirs, res.Dropped) != fmt.Sprint(im.Symlinks, im.Dirs, im.Dropped) {
					t.Errorf("layer %d: lists differ:\nApply  %v %v %v\nImport %v %v %v", i, res.Symlinks, res.Dirs, res.Dropped, im.Symlinks, im.Dirs, im.Dropped)
				}
				olds, news = append(olds, oldC), append(news, newC)
			}
			if o, n := stackedTree(t, repo, olds), stackedTree(t, repo, news); o != n {
				t.Errorf("checked-out trees differ:\nold:\n%s\nnew:\n%s", o, n)
			}
		})
	}
}

func ostreeDiff(repo *deploy.Repo, a, b string) string {
	out, _ := exec.Command("ostree", "diff", "--repo="+repo.Path(), a, b).CombinedOutput()
	return string(out)
}

// TestImportStackedTree checks what a user sees in the rootfs of the
// whiteout layer set: whited-out files and directories gone, opaque
// directories emptied of the lower layers' entries only.
func TestImportStackedTree(t *testing.T) {
	repo := testRepo(t)
	var commits []string
	for _, l := range layerSets[4].layers {
		c, _, err := importCommit(t, repo, mkTar(t, l...))
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, c)
	}
	dest := filepath.Join(t.TempDir(), "rootfs")
	for _, c := range commits {
		if err := repo.Checkout(context.Background(), c, dest, deploy.CheckoutOptions{Overwrite: deploy.OverwriteUnion, Whiteouts: true}); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[string]string{"etc/keep": "keep", "etc/gone": "back again", "var/lib/thing2": "new sibling", "opt/top": "", "opt/old": "", "var/lib/thing": "", "opt/new": ""} {
		b, err := os.ReadFile(filepath.Join(dest, p))
		if want == "" {
			if !os.IsNotExist(err) {
				t.Errorf("%s: want it gone, got %q %v", p, b, err)
			}
			continue
		}
		if string(b) != want {
			t.Errorf("%s = %q %v, want %q", p, b, err, want)
		}
	}
}

// TestImportRefusesEscapes: the hostile layers Apply refuses, Import refuses
// with the same words, and nothing is committed or written outside.
func TestImportRefusesEscapes(t *testing.T) {
	repo := testRepo(t)
	outside := t.TempDir()
	cases := []struct {
		name string
		ents []ent
		want string
	}{
		{"dotdot file", []ent{{name: "../outside/secret", body: "x"}}, `".."`},
		{"dotdot inside path", []ent{{name: "a/../../outside/x", body: "x"}}, `".."`},
		{"absolute symlink parent", []ent{{name: "evil", typ: tar.TypeSymlink, link: outside}, {name: "evil/secret", body: "pwned"}}, "symlink that points outside"},
		{"relative symlink parent climbing out", []ent{{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "d/up", typ: tar.TypeSymlink, link: "../../outside"}, {name: "d/up/new", body: "pwned"}}, "symlink that points outside"},
		{"chained symlinks climbing out", []ent{{name: "a/b/", typ: tar.TypeDir}, {name: "a/b/c", typ: tar.TypeSymlink, link: "../.."}, {name: "a/b/d", typ: tar.TypeSymlink, link: "c/.."}, {name: "a/b/d/x", body: "pwned"}}, "symlink that points outside"},
		{"symlink parent for a directory", []ent{{name: "evil", typ: tar.TypeSymlink, link: outside}, {name: "evil/sub/", typ: tar.TypeDir, mode: 0o755}}, "symlink that points outside"},
		{"hardlink dotdot", []ent{{name: "l", typ: tar.TypeLink, link: "../outside/secret"}}, "outside the layer root"},
		{"hardlink to the root", []ent{{name: "l", typ: tar.TypeLink, link: "/"}}, "outside the layer root"},
		{"hardlink through escaping symlink", []ent{{name: "evil", typ: tar.TypeSymlink, link: outside}, {name: "l", typ: tar.TypeLink, link: "evil/secret"}}, "symlink that points outside"},
		{"hardlink to a missing entry", []ent{{name: "l", typ: tar.TypeLink, link: "nothing"}}, "hard link to"},
		{"hardlink to a directory", []ent{{name: "d/", typ: tar.TypeDir}, {name: "l", typ: tar.TypeLink, link: "d"}}, "hard link to"},
		{"whiteout through escaping symlink", []ent{{name: "evil", typ: tar.TypeSymlink, link: outside}, {name: "evil/.wh.secret", body: ""}}, "symlink that points outside"},
		{"opaque through escaping symlink", []ent{{name: "evil", typ: tar.TypeSymlink, link: outside}, {name: "evil/x/.wh..wh..opq", body: ""}}, "symlink that points outside"},
		{"whiteout of dotdot", []ent{{name: "a/.wh..."}}, "bad whiteout"},
		{"symlink loop", []ent{{name: "a", typ: tar.TypeSymlink, link: "b"}, {name: "b", typ: tar.TypeSymlink, link: "a"}, {name: "a/x", body: "x"}}, "layer entry"},
		{"file as a parent", []ent{{name: "f", body: "f"}, {name: "f/x", body: "x"}}, "not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := mkTar(t, tc.ents...)
			_, _, err := importCommit(t, repo, data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import error = %v, want it to say %q", err, tc.want)
			}
			if _, _, aerr := applyCommit(t, repo, data); aerr == nil {
				t.Errorf("Apply accepted what Import refused (%v)", err)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("written outside: %v", ents)
			}
		})
	}
	refs, err := repo.Refs(context.Background(), "")
	if err != nil || len(refs) != 0 {
		t.Fatalf("refs after refused imports: %v %v", refs, err)
	}
}

// TestImportBigFile streams a file larger than any buffer in the way (and
// compressed, as a registry serves it) and checks its content once checked out.
func TestImportBigFile(t *testing.T) {
	repo := testRepo(t)
	const size = 40<<20 + 12345
	big := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < size; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < size; j++ {
			big[i+j] = byte(v >> (8 * j))
		}
	}
	data := mkTar(t, ent{name: "big", body: string(big), mode: 0o600, uid: 12}, ent{name: "after", body: "after"})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	commit, _, err := importCommit(t, repo, gz.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "rootfs")
	if err := repo.Checkout(context.Background(), commit, dest, deploy.CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dest, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, _ := io.Copy(h, f)
	if n != size || !bytes.Equal(h.Sum(nil), sha(big)) {
		t.Fatalf("big file: %d bytes, want %d, content equal: %v", n, size, bytes.Equal(h.Sum(nil), sha(big)))
	}
	fi, _ := f.Stat()
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 12 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("big file: uid %d mode %v", st.Uid, fi.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "after")); string(b) != "after" {
		t.Fatalf("the entry after the big file: %q", b)
	}
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestImportReadsToTheEnd: after the tar's end, the rest of the blob (here
// zero padding behind the archive) is still read, for the caller's digest.
func TestImportReadsToTheEnd(t *testing.T) {
	repo := testRepo(t)
	data := append(mkTar(t, ent{name: "a", body: "a"}), make([]byte, 1<<20)...)
	r := &countReader{r: bytes.NewReader(data)}
	txn, err := repo.BeginTransaction(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	im, err := Import(context.Background(), txn, r)
	if err != nil {
		t.Fatal(err)
	}
	im.Tree.Close()
	if r.n != len(data) {
		t.Fatalf("read %d of %d bytes", r.n, len(data))
	}
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestImportCancelled: a cancelled context stops the import with its error.
func TestImportCancelled(t *testing.T) {
	repo := testRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	txn, err := repo.BeginTransaction(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	if _, err := Import(ctx, txn, bytes.NewReader(mkTar(t, ent{name: "a", body: "a"}))); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("Import with a cancelled context: %v", err)
	}
}

// FuzzImport builds a tar from FuzzApply's line-based description and
// imports it both ways: the old path (Apply, then a commit of the directory)
// and Import must agree: both refuse it, or both commit the same tree.
// Nothing may be written outside.
func FuzzImport(f *testing.F) {
	for _, s := range []string{
		"f a\nd b\nl c b\nf c/x",
		"l evil @OUT\nf evil/secret",
		"l up ../outside\nf up/secret\nh h up/secret",
		"d x\nf x/.wh..wh..opq\nf .wh.x",
		"h l ../outside/secret",
		"l a b\nl b a\nf a/x",
		"c dev/null\nh d dev/null\np fifo",
		"l s .\nf s/s/s/x\nl t s/../../outside\nf t/y",
		"d a/b\nl a/b/c ..\nf a/b/c/d\nh e a/b/c/d\nf e/f",
		"f a\nd a\nf a/b\nl a/c b\nh d a/c\nf d",
	} {
		f.Add(s)
	}
	repo := testRepo(f)
	outside := f.TempDir()
	f.Fuzz(func(t *testing.T, desc string) {
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
		data := buildTar(t, true, ents...)
		newC, _, nerr := importCommit(t, repo, data)
		oldC, _, oerr := applyCommit(t, repo, data)
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Fatalf("written outside: %v", ents)
		}
		if (nerr == nil) != (oerr == nil) {
			t.Fatalf("Import: %v; Apply: %v", nerr, oerr)
		}
		if nerr == nil && newC != oldC {
			t.Fatalf("Import committed %s, Apply and commit %s\n%s", newC, oldC, ostreeDiff(repo, oldC, newC))
		}
	})
}
