package layering

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// This file builds RPMs to the spec of rpm's two payload forms (lib/cpio.c,
// lib/rpmfi.c iterWriteArchiveNextFile, build/files.c): the header carries
// the file arrays, the payload is either newc cpio (FILESIZES in the header)
// or stripped cpio (LONGFILESIZES, as rpm 6 always and rpm 4 for files of
// 4 GiB or more write). Debian's rpmbuild 4.18 writes the stripped form only
// for a file of 4 GiB or more, too big for a test.

// fixtureFile is one file of a fixture package, in header order.
type fixtureFile struct {
	path        string
	mode        uint32
	user, group string
	body        string // content; the target of a symlink
	caps        string
	ghost       bool
	ino         uint32 // shared by a hardlink set; 0 gives the file its own
}

func reg(p string, perm uint32, body string) fixtureFile {
	return fixtureFile{path: p, mode: unix.S_IFREG | perm, user: "root", group: "root", body: body}
}

// fixtureFiles is a package with every kind of entry layering handles,
// sorted by path as rpm's header is.
func fixtureFiles() []fixtureFile {
	big := make([]byte, 300_001) // crosses the reader's buffer, not a multiple of 4
	for i := range big {
		big[i] = byte(i*7 + i/251)
	}
	hard := func(f fixtureFile, ino uint32) fixtureFile { f.ino = ino; return f }
	ghost := reg("/usr/share/fx/ghost", 0o644, "")
	ghost.ghost = true
	vghost := reg("/var/lib/fx/cache.db", 0o644, "")
	vghost.ghost = true
	ping := reg("/usr/libexec/fx-ping", 0o755, "ping\n")
	ping.caps = "cap_net_raw,cap_net_admin=ep"
	owned := reg("/usr/share/fx/owned", 0o640, "owned\n")
	owned.user, owned.group = "payloaduser", "payloadgroup"
	state := reg("/var/lib/fx/state", 0o600, "state\n")
	state.user, state.group = "payloaduser", "payloadgroup"
	return []fixtureFile{
		{path: "/opt/fx", mode: unix.S_IFDIR | 0o755, user: "root", group: "root"},
		reg("/opt/fx/tool", 0o755, "opt tool\n"),
		{path: "/run/fx", mode: unix.S_IFDIR | 0o755, user: "root", group: "root"},
		reg("/usr/bin/fx", 0o755, "fx binary\n"),
		{path: "/usr/bin/fx-link", mode: unix.S_IFLNK | 0o777, user: "root", group: "root", body: "fx"},
		reg("/usr/bin/fx-suid", 0o4755, "suid\n"),
		hard(reg("/usr/bin/fx-tool", 0o755, "tool\n"), 900),
		ping,
		{path: "/usr/share/fx", mode: unix.S_IFDIR | 0o750, user: "root", group: "payloadgroup"},
		hard(reg("/usr/share/fx/a", 0o644, "shared\n"), 901),
		hard(reg("/usr/share/fx/b", 0o644, "shared\n"), 901),
		reg("/usr/share/fx/big", 0o644, string(big)),
		hard(reg("/usr/share/fx/c", 0o644, "shared\n"), 901),
		{path: "/usr/share/fx/conf", mode: unix.S_IFLNK | 0o777, user: "root", group: "root", body: "/etc/fx.conf"},
		hard(reg("/usr/share/fx/e1", 0o600, ""), 902),
		hard(reg("/usr/share/fx/e2", 0o600, ""), 902),
		reg("/usr/share/fx/empty", 0o644, ""),
		ghost,
		owned,
		hard(reg("/usr/share/fx/tool", 0o755, "tool\n"), 900),
		{path: "/var/lib/fx", mode: unix.S_IFDIR | 0o700, user: "payloaduser", group: "payloadgroup"},
		vghost,
		state,
	}
}

// payloadWriter writes cpio entries, padding as rpm does (to 4 bytes from
// the start of the payload, before each header and after a newc name).
type payloadWriter struct{ bytes.Buffer }

func (w *payloadWriter) pad() {
	for w.Len()%4 != 0 {
		w.WriteByte(0)
	}
}

func (w *payloadWriter) stripped(fx uint32) {
	w.pad()
	fmt.Fprintf(w, "07070X%08x", fx)
	w.pad()
}

func (w *payloadWriter) newc(name string, ino, mode, nlink uint32, size int) {
	w.pad()
	fmt.Fprintf(w, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 1700000000, size, 0, 0, 0, 0, len(name)+1, 0)
	w.WriteString(name)
	w.WriteByte(0)
	w.pad()
}

func (w *payloadWriter) trailer() {
	w.newc(cpioTrailer, 0, 0, 1, 0)
	w.pad()
}

// fixtureSets gives each hardlinked file its set (header indexes in order).
func fixtureSets(files []fixtureFile) map[int][]int {
	byIno := map[uint32][]int{}
	for i, f := range files {
		if f.ino != 0 && !f.ghost && f.mode&unix.S_IFMT == unix.S_IFREG {
			byIno[f.ino] = append(byIno[f.ino], i)
		}
	}
	sets := map[int][]int{}
	for _, s := range byIno {
		if len(s) > 1 {
			for _, i := range s {
				sets[i] = s
			}
		}
	}
	return sets
}

// encodePayload writes the payload the way rpm's archive writer orders it:
// files outside hardlink sets in header order, then each set (by its first
// member) with all its members' entries in a row and the content after the
// last one's; %ghost files never.
func encodePayload(files []fixtureFile, stripped bool) []byte {
	sets := fixtureSets(files)
	var w payloadWriter
	emit := func(i int) {
		f := files[i]
		size := len(f.body)
		if f.mode&unix.S_IFMT == unix.S_IFDIR {
			size = 0
		}
		nlink := uint32(1)
		if s := sets[i]; s != nil {
			nlink = uint32(len(s))
			if s[len(s)-1] != i {
				size = 0
			}
		}
		if stripped {
			w.stripped(uint32(i))
		} else {
			w.newc("."+f.path, fixtureIno(files, i), f.mode, nlink, size)
		}
		w.WriteString(f.body[:size])
	}
	for i, f := range files {
		if !f.ghost && sets[i] == nil {
			emit(i)
		}
	}
	for i := range files {
		if s := sets[i]; s != nil && s[0] == i {
			for _, m := range s {
				emit(m)
			}
		}
	}
	w.trailer()
	return w.Bytes()
}

func fixtureIno(files []fixtureFile, i int) uint32 {
	if files[i].ino != 0 {
		return files[i].ino
	}
	return uint32(i + 1)
}

// hdrTag is one header entry: val is a string, []string, []uint16,
// []uint32 or []uint64.
type hdrTag struct {
	tag uint32
	val any
}

// encodeHeader writes an rpm header structure (magic, index, store).
func encodeHeader(tags []hdrTag) []byte {
	var index, store bytes.Buffer
	align := func(n int) {
		for store.Len()%n != 0 {
			store.WriteByte(0)
		}
	}
	for _, t := range tags {
		var typ, count uint32
		var off int
		switch v := t.val.(type) {
		case string:
			typ, count, off = 6, 1, store.Len()
			store.WriteString(v + "\x00")
		case []string:
			typ, count, off = 8, uint32(len(v)), store.Len()
			for _, s := range v {
				store.WriteString(s + "\x00")
			}
		case []uint16:
			align(2)
			typ, count, off = 3, uint32(len(v)), store.Len()
			binary.Write(&store, binary.BigEndian, v)
		case []uint32:
			align(4)
			typ, count, off = 4, uint32(len(v)), store.Len()
			binary.Write(&store, binary.BigEndian, v)
		case []uint64:
			align(8)
			typ, count, off = 5, uint32(len(v)), store.Len()
			binary.Write(&store, binary.BigEndian, v)
		default:
			panic(fmt.Sprintf("tag %d: type %T", t.tag, t.val))
		}
		binary.Write(&index, binary.BigEndian, [4]uint32{t.tag, typ, uint32(off), count})
	}
	var out bytes.Buffer
	out.Write([]byte{0x8e, 0xad, 0xe8, 1, 0, 0, 0, 0})
	binary.Write(&out, binary.BigEndian, [2]uint32{uint32(len(tags)), uint32(store.Len())})
	out.Write(index.Bytes())
	out.Write(store.Bytes())
	return out.Bytes()
}

// payloadForm is how a fixture package carries its payload.
type payloadForm struct {
	name       string
	stripped   bool // LONGFILESIZES in the header, stripped cpio payload
	v6         bool // RPMFORMAT 6 in the header, lead major 4
	compressor string
}

// encodeRPM writes a whole RPM file of files in form.
func encodeRPM(t testing.TB, name string, files []fixtureFile, form payloadForm) []byte {
	t.Helper()
	var dirs, bases, users, groups, links, caps []string
	var modes []uint16
	var flags, dirIx, sizes32, inodes, devices, mtimes []uint32
	var sizes64 []uint64
	dirAt := map[string]int{}
	for i, f := range files {
		d, b := path.Split(f.path)
		if _, ok := dirAt[d]; !ok {
			dirAt[d] = len(dirs)
			dirs = append(dirs, d)
		}
		dirIx = append(dirIx, uint32(dirAt[d]))
		bases = append(bases, b)
		users, groups = append(users, f.user), append(groups, f.group)
		modes = append(modes, uint16(f.mode))
		var fl uint32
		if f.ghost {
			fl |= fileFlagGhost
		}
		flags = append(flags, fl)
		size := len(f.body)
		if f.mode&unix.S_IFMT == unix.S_IFDIR {
			size = 0
		}
		sizes32, sizes64 = append(sizes32, uint32(size)), append(sizes64, uint64(size))
		link := ""
		if f.mode&unix.S_IFMT == unix.S_IFLNK {
			link = f.body
		}
		links, caps = append(links, link), append(caps, f.caps)
		inodes, devices, mtimes = append(inodes, fixtureIno(files, i)), append(devices, 1), append(mtimes, 1700000000)
	}
	comp := form.compressor
	if comp == "" {
		comp = "identity"
	}
	tags := []hdrTag{
		{1000, name}, {1001, "1.0"}, {1002, "1"}, {1022, "noarch"},
		{1030, modes}, {1034, mtimes}, {1036, links}, {1037, flags}, {1039, users}, {1040, groups},
		{1095, devices}, {1096, inodes}, {1116, dirIx}, {1117, bases}, {1118, dirs},
		{1124, "cpio"}, {1125, comp}, {5010, caps},
	}
	if form.stripped {
		tags = append(tags, hdrTag{tagLongFileSizes, sizes64})
	} else {
		tags = append(tags, hdrTag{tagFileSizes, sizes32})
	}
	if form.v6 {
		tags = append(tags, hdrTag{5114, []uint32{6}})
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].tag < tags[j].tag })
	var out bytes.Buffer
	lead := make([]byte, leadSize)
	copy(lead, []byte{0xed, 0xab, 0xee, 0xdb, 3, 0})
	if form.v6 {
		lead[4] = 4
	}
	copy(lead[10:], name+"-1.0-1")
	lead[79] = 5 // signature type: header-style
	out.Write(lead)
	out.Write(encodeHeader(nil)) // an empty signature header (no padding needed)
	out.Write(encodeHeader(tags))
	payload := encodePayload(files, form.stripped)
	switch comp {
	case "identity":
		out.Write(payload)
	case "zstd":
		z, err := zstd.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		z.Write(payload)
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("compressor %q", comp)
	}
	return out.Bytes()
}

// describeTree lists what a user sees of the tree at dest, one line a
// path: type and mode, owner, link count and the first name of its
// hardlink set, content or symlink target, file capabilities.
func describeTree(t *testing.T, dest string) []string {
	t.Helper()
	var lines []string
	first := map[uint64]string{}
	err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dest {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if _, ok := first[st.Ino]; !ok {
				first[st.Ino] = rel
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			body := fmt.Sprintf("%q", b)
			if len(b) > 64 {
				body = fmt.Sprintf("sha256:%x", sha256.Sum256(b))
			}
			line += fmt.Sprintf(" nlink=%d set=%s %s", st.Nlink, first[st.Ino], body)
			buf := make([]byte, 64)
			if n, err := unix.Lgetxattr(p, "security.capability", buf); err == nil {
				line += fmt.Sprintf(" caps=%x", buf[:n])
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestExtractPayloadForms extracts the same package written in each
// payload form and checks that each gives the tree the header describes,
// the same in every form.
func TestExtractPayloadForms(t *testing.T) {
	requireRoot(t)
	files := fixtureFiles()
	big := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(files[11].body)))
	pingCaps, _ := fileCapsXattr("cap_net_raw,cap_net_admin=ep")
	want := []string{
		"usr 40755 0:0",
		"usr/bin 40755 0:0",
		"usr/bin/fx 100755 0:0 nlink=1 set=usr/bin/fx \"fx binary\\n\"",
		"usr/bin/fx-link 120777 0:0 -> fx",
		"usr/bin/fx-suid 104755 0:0 nlink=1 set=usr/bin/fx-suid \"suid\\n\"",
		"usr/bin/fx-tool 100755 0:0 nlink=2 set=usr/bin/fx-tool \"tool\\n\"",
		"usr/lib 40755 0:0",
		"usr/lib/opt 40755 0:0",
		"usr/lib/opt/fx 40755 0:0",
		"usr/lib/opt/fx/tool 100755 0:0 nlink=1 set=usr/lib/opt/fx/tool \"opt tool\\n\"",
		"usr/lib/tmpfiles.d 40755 0:0",
		"usr/lib/tmpfiles.d/pkg-fx.conf 100644 0:0 nlink=1 set=usr/lib/tmpfiles.d/pkg-fx.conf sha256:%",
		"usr/libexec 40755 0:0",
		fmt.Sprintf("usr/libexec/fx-ping 100755 0:0 nlink=1 set=usr/libexec/fx-ping \"ping\\n\" caps=%x", pingCaps),
		"usr/share 40755 0:0",
		"usr/share/factory 40755 0:0",
		"usr/share/factory/var 40755 0:0",
		"usr/share/factory/var/lib 40755 0:0",
		"usr/share/factory/var/lib/fx 40755 0:0",
		"usr/share/factory/var/lib/fx/state 100600 1234:2345 nlink=1 set=usr/share/factory/var/lib/fx/state \"state\\n\"",
		"usr/share/fx 40750 0:2345",
		"usr/share/fx/a 100644 0:0 nlink=3 set=usr/share/fx/a \"shared\\n\"",
		"usr/share/fx/b 100644 0:0 nlink=3 set=usr/share/fx/a \"shared\\n\"",
		"usr/share/fx/big 100644 0:0 nlink=1 set=usr/share/fx/big " + big,
		"usr/share/fx/c 100644 0:0 nlink=3 set=usr/share/fx/a \"shared\\n\"",
		"usr/share/fx/conf 120777 0:0 -> /etc/fx.conf",
		"usr/share/fx/e1 100600 0:0 nlink=2 set=usr/share/fx/e1 \"\"",
		"usr/share/fx/e2 100600 0:0 nlink=2 set=usr/share/fx/e1 \"\"",
		"usr/share/fx/empty 100644 0:0 nlink=1 set=usr/share/fx/empty \"\"",
		"usr/share/fx/owned 100640 1234:2345 nlink=1 set=usr/share/fx/owned \"owned\\n\"",
		"usr/share/fx/tool 100755 0:0 nlink=2 set=usr/bin/fx-tool \"tool\\n\"",
	}
	wantTmpfiles := []string{
		"L /var/opt/fx - - - - /usr/lib/opt/fx",
		"d /run/fx 0755 root root - -",
		"d /var/lib/fx 0700 payloaduser payloadgroup - -",
		"C /var/lib/fx/state - - - - /usr/share/factory/var/lib/fx/state",
	}
	var trees [][]string
	for _, form := range []payloadForm{
		{name: "newc"},
		{name: "newc zstd", compressor: "zstd"},
		{name: "stripped (rpm 4 large files)", stripped: true},
		{name: "stripped rpm v6 zstd", stripped: true, v6: true, compressor: "zstd"},
	} {
		t.Run(form.name, func(t *testing.T) {
			pkg := filepath.Join(t.TempDir(), "fx.rpm")
			if err := os.WriteFile(pkg, encodeRPM(t, "fx", files, form), 0o644); err != nil {
				t.Fatal(err)
			}
			dest := t.TempDir()
			out, err := ExtractPayload(context.Background(), pkg, dest, testIDs(t))
			if err != nil {
				t.Fatal(err)
			}
			got := describeTree(t, dest)
			if len(got) != len(want) {
				t.Errorf("tree has %d entries, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
			}
			for i := range want {
				w, g := want[i], ""
				if i < len(got) {
					g = got[i]
				}
				if ok := g == w || strings.HasSuffix(w, "%") && strings.HasPrefix(g, strings.TrimSuffix(w, "%")); !ok {
					t.Errorf("entry %d:\n got %s\nwant %s", i, g, w)
				}
			}
			if strings.Join(out.Tmpfiles, "\n") != strings.Join(wantTmpfiles, "\n") {
				t.Errorf("tmpfiles lines:\n%s\nwant:\n%s", strings.Join(out.Tmpfiles, "\n"), strings.Join(wantTmpfiles, "\n"))
			}
			if out.Entries != 21 { // 23 files, 2 of them %ghost
				t.Errorf("%d payload entries handled, want 21", out.Entries)
			}
			trees = append(trees, got)
		})
	}
	for i := 1; i < len(trees); i++ {
		if strings.Join(trees[i], "\n") != strings.Join(trees[0], "\n") {
			t.Errorf("form %d extracts a different tree than newc:\n%s\nvs\n%s", i, strings.Join(trees[i], "\n"), strings.Join(trees[0], "\n"))
		}
	}
}

// fixtureTable reads the file table of files as ExtractPayload does, from
// an encoded header.
func fixtureTable(t testing.TB, files []fixtureFile) *fileTable {
	t.Helper()
	pkg, err := ReadPackage(bytes.NewReader(encodeRPM(t, "fx", files, payloadForm{stripped: true})))
	if err != nil {
		t.Fatal(err)
	}
	table, err := readFileTable(&pkg.Header)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// TestExtractPayloadRefusals checks that payloads which disagree with
// their header, or are cut short or malformed, are refused with a reason.
func TestExtractPayloadRefusals(t *testing.T) {
	requireRoot(t)
	small := []fixtureFile{
		reg("/usr/bin/fx", 0o755, "fx binary\n"),
		{path: "/usr/bin/fx-link", mode: unix.S_IFLNK | 0o777, user: "root", group: "root", body: "fx"},
		{path: "/usr/share/fx", mode: unix.S_IFDIR | 0o755, user: "root", group: "root"},
		{path: "/usr/share/fx/ghost", mode: unix.S_IFREG | 0o644, user: "root", group: "root", ghost: true},
	}
	escape := []fixtureFile{reg("/usr/../../etc/passwd", 0o644, "x")}
	type build func(w *payloadWriter)
	tests := []struct {
		name  string
		files []fixtureFile
		build build
		err   string
	}{
		{"index beyond the header", small, func(w *payloadWriter) { w.stripped(4); w.trailer() },
			"payload entry 1: file index 4 is beyond the header's 4 files"},
		{"ghost in a stripped payload", small, func(w *payloadWriter) { w.stripped(3); w.trailer() },
			"/usr/share/fx/ghost is a %ghost file"},
		{"twice", small, func(w *payloadWriter) {
			w.stripped(2)
			w.stripped(2)
			w.trailer()
		}, "/usr/share/fx: twice in the payload"},
		{"a file missing", small, func(w *payloadWriter) {
			w.stripped(0)
			w.WriteString("fx binary\n")
			w.stripped(2)
			w.trailer()
		}, "/usr/bin/fx-link is in the header's file list but not in the payload"},
		{"content cut short", small, func(w *payloadWriter) { w.stripped(0); w.WriteString("fx bin") },
			"/usr/bin/fx: write: cpio: payload truncated"},
		{"no trailer", small, func(w *payloadWriter) { w.stripped(2) }, "read payload: cpio: payload truncated"},
		{"stripped index not hex", small, func(w *payloadWriter) { w.WriteString("07070X-0000001") },
			`cpio: invalid stripped entry header at offset 0 (file index "-0000001")`},
		{"odc magic", small, func(w *payloadWriter) { w.WriteString("070707000000000000000000") },
			`invalid entry header at offset 0 (magic "070707"`},
		{"symlink target differs", small, func(w *payloadWriter) { w.stripped(1); w.WriteString("sh"); w.trailer() },
			`/usr/bin/fx-link: the payload has symlink target "sh", the header "fx"`},
		{"newc size differs", small, func(w *payloadWriter) {
			w.newc("./usr/bin/fx", 1, unix.S_IFREG|0o755, 1, 11)
			w.WriteString("fx binary\n!")
		}, "/usr/bin/fx: the payload has 11 bytes of content, the header says 10"},
		{"newc type differs", small, func(w *payloadWriter) { w.newc("./usr/share/fx", 1, unix.S_IFREG|0o755, 1, 0) },
			"/usr/share/fx: the payload has file type 0100000, the header 040000"},
		{"newc name too long", small, func(w *payloadWriter) { w.newc(strings.Repeat("a", 5000), 1, unix.S_IFREG, 1, 0) },
			"invalid newc entry header at offset 0 (name size 5001)"},
		{"header path escapes", escape, func(w *payloadWriter) { w.stripped(0); w.WriteString("x"); w.trailer() },
			`payload path "./usr/../../etc/passwd" leaves the tree`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			dest := filepath.Join(top, "dest")
			os.Mkdir(dest, 0o755)
			x, err := newExtractor(dest, "fx", fixtureTable(t, tt.files), testIDs(t))
			if err != nil {
				t.Fatal(err)
			}
			defer x.dd.Close()
			var w payloadWriter
			tt.build(&w)
			err = x.run(context.Background(), newCPIOReader(bytes.NewReader(w.Bytes())))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error = %v, want containing %q", err, tt.err)
			}
			if left, _ := os.ReadDir(top); len(left) != 1 {
				t.Fatalf("wrote outside the destination: %v", left)
			}
		})
	}
}

// FuzzStrippedPayload feeds arbitrary payload bytes, with the fixture
// package's header, to the payload reader and extractor: they must not
// panic nor write outside dest, and a payload they accept must have given
// every non-%ghost file of the header its place with the header's type.
func FuzzStrippedPayload(f *testing.F) {
	boundMinimize(f, "200ms")
	files := fixtureFiles()
	files[11].body = "big file, made small for the fuzzer\n"
	stripped := encodePayload(files, true)
	f.Add(stripped)
	f.Add(encodePayload(files, false))
	f.Add(stripped[:len(stripped)/2])
	table := fixtureTable(f, files)
	f.Fuzz(func(t *testing.T, data []byte) {
		if os.Geteuid() != 0 {
			t.Skip("extraction keeps owners: needs root")
		}
		top := t.TempDir()
		dest := filepath.Join(top, "dest")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		x, err := newExtractor(dest, "fx", table, testIDs(t))
		if err != nil {
			t.Fatal(err)
		}
		err = x.run(context.Background(), newCPIOReader(bytes.NewReader(data)))
		x.dd.Close()
		if entries, _ := os.ReadDir(top); len(entries) != 1 {
			t.Fatalf("extraction wrote outside dest: %v", entries)
		}
		if err != nil {
			return
		}
		for _, hf := range table.files {
			if hf.ghost || !strings.HasPrefix(hf.path, "/usr/") {
				continue
			}
			fi, err := os.Lstat(filepath.Join(dest, hf.path))
			if err != nil {
				t.Fatalf("accepted payload but %s: %v", hf.path, err)
			}
			if uint32(fi.Sys().(*syscall.Stat_t).Mode)&unix.S_IFMT != hf.mode&unix.S_IFMT {
				t.Fatalf("%s has mode %v, the header says %#o", hf.path, fi.Mode(), hf.mode)
			}
		}
	})
}
