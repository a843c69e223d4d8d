package layering

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/cavaliergopher/rpm"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// RPM header tags of the file list.
const (
	tagFileModes     = 1030
	tagFileFlags     = 1037
	tagFileUserName  = 1039
	tagFileGroupName = 1040
	tagDirIndexes    = 1116
	tagBasenames     = 1117
	tagDirNames      = 1118
	tagFileCaps      = 5010
	tagFileSizes     = 1028
	tagFileLinkTos   = 1036
	tagFileDevices   = 1095
	tagFileInodes    = 1096
	tagLongFileSizes = 5008
)

const fileFlagGhost = 1 << 6

// Extracted describes what ExtractPayload wrote besides the payload itself.
type Extracted struct {
	// Entries is the number of payload entries handled.
	Entries int
	// Tmpfiles are the tmpfiles.d lines that stand for the payload's /var and
	// /run entries (and the /var/opt links of its /opt entries).
	Tmpfiles []string
	// TmpfilesConf is the tmpfiles.d file written into the destination
	// (usr/lib/tmpfiles.d/pkg-NAME.conf), empty when there were no lines.
	TmpfilesConf string
	// OptLinks are the top-level /opt entries moved under /usr/lib/opt, as
	// "/opt/X"; each has a tmpfiles line "L /var/opt/X - - - - /usr/lib/opt/X".
	OptLinks []string
}

// fileMeta is what the header says of one file.
type fileMeta struct {
	user, group string
	mode        uint32
	caps        string
}

// ExtractPayload extracts the payload of the RPM at pkgPath into dest, an
// existing directory that holds nothing else of value. The payload may be
// rpm's classic newc cpio or its stripped cpio (rpm 6, and rpm 4 packages
// with files of 4 GiB or more: see cpio.go); in both, as rpm does, each
// file's metadata comes from the header's file list. Payload paths are
// sanitised (no "..", nothing absolute, nothing through a symlink); modes,
// owners (header user and group names mapped through ids), symlinks,
// hardlink sets and file capabilities are kept; %ghost files are not
// created. As on an image-based host /usr is
// the only place for content: /var and /run entries become tmpfiles.d lines
// (regular files with content are kept under usr/share/factory and copied
// with "C"), and /opt entries move to usr/lib/opt.
func ExtractPayload(ctx context.Context, pkgPath, dest string, ids *IDs) (*Extracted, error) {
	f, err := os.Open(pkgPath)
	if err != nil {
		return nil, fmt.Errorf("extract payload: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	pkg, err := ReadPackage(br)
	if err != nil {
		return nil, fmt.Errorf("extract payload of %s: %w", pkgPath, err)
	}
	name := pkg.Name()
	if strings.ContainsAny(name, "/\x00") || name == "" || name == "." || name == ".." {
		return nil, fmt.Errorf("extract payload of %s: invalid package name %q", pkgPath, name)
	}
	files, err := readFileTable(&pkg.Header)
	if err != nil {
		return nil, fmt.Errorf("extract payload of package %s: %w", name, err)
	}
	if pf := pkg.PayloadFormat(); pf != "" && pf != "cpio" {
		return nil, fmt.Errorf("extract payload of package %s: unsupported payload format %q", name, pf)
	}
	payload, closePayload, err := payloadReader(pkg.PayloadCompression(), br)
	if err != nil {
		return nil, fmt.Errorf("extract payload of package %s: %w", name, err)
	}
	defer closePayload()
	x, err := newExtractor(dest, name, files, ids)
	if err != nil {
		return nil, err
	}
	defer x.dd.Close()
	if err := x.run(ctx, newCPIOReader(payload)); err != nil {
		return nil, fmt.Errorf("extract payload of package %s: %w", name, err)
	}
	return &x.out, nil
}

func payloadReader(compressor string, r io.Reader) (io.Reader, func(), error) {
	switch compressor {
	case "gzip":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip payload: %w", err)
		}
		return z, func() { z.Close() }, nil
	case "xz", "lzma":
		z, err := xz.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("xz payload: %w", err)
		}
		return z, func() {}, nil
	case "zstd":
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd payload: %w", err)
		}
		return z, z.Close, nil
	case "bzip2":
		return bzip2.NewReader(r), func() {}, nil
	case "", "identity":
		return r, func() {}, nil
	}
	return nil, nil, fmt.Errorf("unsupported payload compressor %q", compressor)
}

// headerFiles maps each file path of the header ("/usr/bin/foo") to its
// metadata, leaving out %ghost files.
func headerFiles(h *rpm.Header) (map[string]fileMeta, error) {
	t, err := readFileTable(h)
	if err != nil {
		return nil, err
	}
	files := make(map[string]fileMeta, len(t.files))
	for _, f := range t.files {
		if !f.ghost {
			files[f.path] = fileMeta{user: f.user, group: f.group, mode: f.mode, caps: f.caps}
		}
	}
	return files, nil
}

// headerFile is what the header says of one file: rpm installs a file with
// this metadata whatever the payload's cpio fields say.
type headerFile struct {
	path        string // "/usr/bin/foo" (dir name + base name, as the header has it)
	user, group string
	mode        uint32 // type and permission bits
	size        int64  // content length; a symlink's target length
	link        string // symlink target
	caps        string
	ghost       bool
	// set is the hardlink set the file belongs to (header indexes in
	// order; the payload has the content in the last member's entry), nil
	// when it is in none.
	set []int
}

// fileTable is the header's file list in header order: stripped payload
// entries are indexes into it.
type fileTable struct {
	files  []headerFile
	byPath map[string]int
}

// readFileTable reads the header's file arrays. Hardlink sets are the
// regular, non-%ghost files sharing a device and inode number (rpm's
// rpmfilesBuildNLink).
func readFileTable(h *rpm.Header) (*fileTable, error) {
	base := h.GetTag(tagBasenames).StringSlice()
	dirs := h.GetTag(tagDirNames).StringSlice()
	dirIx := h.GetTag(tagDirIndexes).Int64Slice()
	users := h.GetTag(tagFileUserName).StringSlice()
	groups := h.GetTag(tagFileGroupName).StringSlice()
	modes := h.GetTag(tagFileModes).Int64Slice()
	flags := h.GetTag(tagFileFlags).Int64Slice()
	caps := h.GetTag(tagFileCaps).StringSlice()
	sizes := h.GetTag(tagLongFileSizes).Int64Slice()
	if sizes == nil {
		sizes = h.GetTag(tagFileSizes).Int64Slice()
	}
	links := h.GetTag(tagFileLinkTos).StringSlice()
	inodes := h.GetTag(tagFileInodes).Int64Slice()
	devices := h.GetTag(tagFileDevices).Int64Slice()
	n := len(base)
	if len(dirIx) != n || len(users) != n || len(groups) != n || len(modes) != n ||
		(flags != nil && len(flags) != n) || (caps != nil && len(caps) != n) ||
		(sizes != nil && len(sizes) != n) || (links != nil && len(links) != n) ||
		(inodes != nil && len(inodes) != n) || (devices != nil && len(devices) != n) {
		return nil, errors.New("malformed file list in header (array lengths differ)")
	}
	if n > 0 && (sizes == nil || links == nil) {
		return nil, errors.New("malformed file list in header (no file sizes or no symlink targets)")
	}
	t := &fileTable{files: make([]headerFile, n), byPath: make(map[string]int, n)}
	type fileID struct{ dev, ino int64 }
	sets := map[fileID][]int{}
	for i := range base {
		if dirIx[i] < 0 || dirIx[i] >= int64(len(dirs)) {
			return nil, fmt.Errorf("malformed file list in header: dir index %d out of range", dirIx[i])
		}
		f := headerFile{path: dirs[dirIx[i]] + base[i], user: users[i], group: groups[i], mode: uint32(modes[i]) & 0xffff,
			size: sizes[i], link: links[i]}
		if f.size < 0 {
			return nil, fmt.Errorf("malformed file list in header: %s has size %d", f.path, f.size)
		}
		f.ghost = flags != nil && flags[i]&fileFlagGhost != 0
		if caps != nil {
			f.caps = caps[i]
		}
		if _, dup := t.byPath[f.path]; dup {
			return nil, fmt.Errorf("malformed file list in header: %s is listed twice", f.path)
		}
		t.byPath[f.path] = i
		t.files[i] = f
		if f.mode&unix.S_IFMT == unix.S_IFREG && !f.ghost && inodes != nil && inodes[i] > 0 {
			var dev int64
			if devices != nil {
				dev = devices[i]
			}
			id := fileID{dev, inodes[i]}
			sets[id] = append(sets[id], i)
		}
	}
	for _, set := range sets {
		if len(set) > 1 {
			for _, i := range set {
				t.files[i].set = set
			}
		}
	}
	return t, nil
}

// contentSize is the length of file i's content in the payload.
func (t *fileTable) contentSize(i int) int64 {
	f := &t.files[i]
	switch f.mode & unix.S_IFMT {
	case unix.S_IFREG:
		if f.set != nil && f.set[len(f.set)-1] != i {
			return 0
		}
		return f.size
	case unix.S_IFLNK:
		return f.size
	}
	return 0
}

type extractor struct {
	dd    *destDir
	pkg   string
	table *fileTable
	ids   *IDs
	out   Extracted
	opt   map[string]bool
	// found marks the header files whose payload entry was handled
	found []bool
	// hardlink sets by their first member's index
	links map[int]*linkSet
}

type linkSet struct {
	pending []string // names waiting for the content
	written string   // name holding the content, once written
}

func newExtractor(dest, pkg string, table *fileTable, ids *IDs) (*extractor, error) {
	if ids == nil {
		return nil, errors.New("extract payload: no user and group ids given")
	}
	dd, err := openDestDir(dest)
	if err != nil {
		return nil, err
	}
	return &extractor{dd: dd, pkg: pkg, table: table, ids: ids, opt: map[string]bool{},
		found: make([]bool, len(table.files)), links: map[int]*linkSet{}}, nil
}

func (x *extractor) run(ctx context.Context, cr *cpioReader) error {
	for {
		if x.out.Entries%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		e, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read payload: %w", err)
		}
		x.out.Entries++
		if err := x.payloadEntry(e, cr); err != nil {
			return err
		}
	}
	// As rpm does, every file of the header but the %ghost ones must have
	// come in the payload (so every hardlink set got its content).
	for i, f := range x.table.files {
		if !f.ghost && !x.found[i] {
			return fmt.Errorf("%s is in the header's file list but not in the payload (truncated or corrupt package)", f.path)
		}
	}
	return x.writeTmpfiles()
}

// payloadEntry maps a payload entry to its header file and extracts it.
func (x *extractor) payloadEntry(e *cpioEntry, cr *cpioReader) error {
	var fx int
	var rel string
	if e.Stripped {
		if e.Index >= len(x.table.files) {
			return fmt.Errorf("payload entry %d: file index %d is beyond the header's %d files", x.out.Entries, e.Index, len(x.table.files))
		}
		fx = e.Index
		f := &x.table.files[fx]
		if f.ghost {
			return fmt.Errorf("payload entry %d: %s is a %%ghost file, which a stripped payload never holds", x.out.Entries, f.path)
		}
		var err error
		if rel, err = SanitizePath("." + f.path); err != nil {
			return err
		}
		if rel == "" {
			return fmt.Errorf("payload entry %d: header path %q is not a file", x.out.Entries, f.path)
		}
	} else {
		var err error
		if rel, err = SanitizePath(e.Name); err != nil {
			return err
		}
		if rel == "" {
			return nil
		}
		var ok bool
		if fx, ok = x.table.byPath["/"+rel]; !ok {
			return fmt.Errorf("payload entry %q is not in the header's file list", e.Name)
		}
		if x.table.files[fx].ghost {
			return nil // rpm < 4.11 sometimes put %ghost files in the payload: not installed
		}
	}
	f := &x.table.files[fx]
	if x.found[fx] {
		return fmt.Errorf("%s: twice in the payload", f.path)
	}
	x.found[fx] = true
	size := x.table.contentSize(fx)
	if e.Stripped {
		cr.SetSize(size)
	} else {
		if e.Mode&unix.S_IFMT != f.mode&unix.S_IFMT {
			return fmt.Errorf("%s: the payload has file type %#o, the header %#o", f.path, e.Mode&unix.S_IFMT, f.mode&unix.S_IFMT)
		}
		if e.Size != size {
			return fmt.Errorf("%s: the payload has %d bytes of content, the header says %d", f.path, e.Size, size)
		}
	}
	return x.entry(rel, fx, size, cr)
}

// entry extracts header file fx at rel, with size bytes of content from r.
func (x *extractor) entry(rel string, fx int, size int64, r io.Reader) error {
	meta := &x.table.files[fx]
	uid, ok := x.ids.User(meta.user)
	if !ok {
		return fmt.Errorf("%s: owner %q is not a user of the target tree's passwd", "/"+rel, meta.user)
	}
	gid, ok := x.ids.Group(meta.group)
	if !ok {
		return fmt.Errorf("%s: group %q is not a group of the target tree's group file", "/"+rel, meta.group)
	}
	typ := meta.mode & unix.S_IFMT
	perm := meta.mode & 0o7777
	own := owner{uid: int(uid), gid: int(gid), user: meta.user, group: meta.group}
	c := content{fx: fx, size: size, r: r}
	if typ == unix.S_IFLNK {
		target := make([]byte, size)
		if _, err := io.ReadFull(r, target); err != nil {
			return fmt.Errorf("/%s: read symlink target: %w", rel, noTruncEOF(err))
		}
		if string(target) != meta.link {
			return fmt.Errorf("/%s: the payload has symlink target %q, the header %q", rel, target, meta.link)
		}
		c.size, c.r = 0, strings.NewReader("")
	}

	top, _, _ := strings.Cut(rel, "/")
	switch top {
	case "var", "run":
		return x.volatile(rel, typ, perm, own, c)
	case "opt":
		if rel == "opt" {
			return nil // the tree owns /opt
		}
		name := strings.SplitN(rel, "/", 3)[1]
		if !x.opt[name] {
			x.opt[name] = true
			x.out.OptLinks = append(x.out.OptLinks, "/opt/"+name)
			x.out.Tmpfiles = append(x.out.Tmpfiles, fmt.Sprintf("L %s - - - - %s", tmpfilesPath("/var/opt/"+name), tmpfilesPath("/usr/lib/opt/"+name)))
		}
		rel = "usr/lib/" + rel
	}
	return x.write(rel, typ, perm, own, meta.caps, c)
}

// content is a payload entry's header file index and its content.
type content struct {
	fx   int
	size int64
	r    io.Reader
}

type owner struct {
	uid, gid    int
	user, group string
}

// volatile turns a /var or /run entry into tmpfiles.d lines.
func (x *extractor) volatile(rel string, typ, perm uint32, own owner, c content) error {
	if rel == "var" || rel == "run" {
		return nil // the tree owns them
	}
	p := tmpfilesPath("/" + rel)
	switch typ {
	case unix.S_IFDIR:
		x.out.Tmpfiles = append(x.out.Tmpfiles, fmt.Sprintf("d %s %04o %s %s - -", p, perm, own.user, own.group))
	case unix.S_IFLNK:
		x.out.Tmpfiles = append(x.out.Tmpfiles, fmt.Sprintf("L %s - - - - %s", p, tmpfilesPath(x.table.files[c.fx].link)))
	case unix.S_IFREG:
		if c.size == 0 && x.table.files[c.fx].set == nil {
			x.out.Tmpfiles = append(x.out.Tmpfiles, fmt.Sprintf("f %s %04o %s %s - -", p, perm, own.user, own.group))
			return nil
		}
		// Content is kept in the factory and copied on boot when missing.
		if err := x.write("usr/share/factory/"+rel, typ, perm, own, "", c); err != nil {
			return err
		}
		x.out.Tmpfiles = append(x.out.Tmpfiles, fmt.Sprintf("C %s - - - - %s", p, tmpfilesPath("/usr/share/factory/"+rel)))
	default:
		return fmt.Errorf("/%s: unsupported file type %#o", rel, typ)
	}
	return nil
}

// tmpfilesPath escapes a path for a tmpfiles.d line (C-style \xNN escapes
// for whitespace, backslashes, quotes and control bytes).
func tmpfilesPath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c == '\\' || c == '"' || c == '\'' || c == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func (x *extractor) write(rel string, typ, perm uint32, own owner, caps string, c content) error {
	switch typ {
	case unix.S_IFDIR:
		return x.mkdir(rel, perm, own)
	case unix.S_IFLNK:
		return x.symlink(rel, x.table.files[c.fx].link, own)
	case unix.S_IFREG:
		var capData []byte
		if caps != "" {
			var err error
			if capData, err = fileCapsXattr(caps); err != nil {
				return fmt.Errorf("/%s: %w", rel, err)
			}
		}
		if x.table.files[c.fx].set != nil {
			return x.hardlink(rel, perm, own, capData, c)
		}
		return x.file(rel, perm, own, capData, c.size, c.r)
	}
	return fmt.Errorf("/%s: unsupported file type %#o (devices, fifos and sockets cannot be layered)", rel, typ)
}

func (x *extractor) mkdir(rel string, perm uint32, own owner) error {
	pfd, base, err := x.dd.parent(rel)
	if err != nil {
		return fmt.Errorf("/%s: %w", rel, err)
	}
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("/%s: create directory: %w", rel, err)
	}
	fd, err := openDirNoFollow(pfd, base)
	if err != nil {
		return fmt.Errorf("/%s: payload has a non-directory here: %w", rel, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, own.uid, own.gid); err != nil {
		return fmt.Errorf("/%s: chown: %w", rel, err)
	}
	if err := unix.Fchmod(fd, perm); err != nil {
		return fmt.Errorf("/%s: chmod: %w", rel, err)
	}
	return nil
}

func (x *extractor) symlink(rel, target string, own owner) error {
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("/%s: invalid symlink target %q", rel, target)
	}
	pfd, base, err := x.dd.parent(rel)
	if err != nil {
		return fmt.Errorf("/%s: %w", rel, err)
	}
	if err := unix.Symlinkat(target, pfd, base); err != nil {
		return fmt.Errorf("/%s: create symlink: %w", rel, err)
	}
	if err := unix.Fchownat(pfd, base, own.uid, own.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("/%s: chown: %w", rel, err)
	}
	return nil
}

// file creates rel (which must not exist) with size bytes from r.
func (x *extractor) file(rel string, perm uint32, own owner, capData []byte, size int64, r io.Reader) error {
	pfd, base, err := x.dd.parent(rel)
	if err != nil {
		return fmt.Errorf("/%s: %w", rel, err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("/%s: create file: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	n, err := io.Copy(f, io.LimitReader(r, size))
	if err != nil {
		return fmt.Errorf("/%s: write: %w", rel, err)
	}
	if n != size {
		return fmt.Errorf("/%s: payload truncated (%d of %d bytes)", rel, n, size)
	}
	if err := unix.Fchown(fd, own.uid, own.gid); err != nil {
		return fmt.Errorf("/%s: chown: %w", rel, err)
	}
	// chmod after chown: chown clears setuid and setgid bits.
	if err := unix.Fchmod(fd, perm); err != nil {
		return fmt.Errorf("/%s: chmod: %w", rel, err)
	}
	if capData != nil {
		if err := unix.Fsetxattr(fd, "security.capability", capData, 0); err != nil {
			return fmt.Errorf("/%s: set file capabilities: %w", rel, err)
		}
	}
	return f.Close()
}

// hardlink handles one member of an rpm hardlink set. In both payload
// forms the entries of a set's members come one after the other and only the
// last member's entry (the member last in header order) has the content
// (rpm's iterWriteArchiveNextFile); the file is created then, with that
// member's metadata, and the names seen before are linked to it.
func (x *extractor) hardlink(rel string, perm uint32, own owner, capData []byte, c content) error {
	members := x.table.files[c.fx].set
	set := x.links[members[0]]
	if set == nil {
		set = &linkSet{}
		x.links[members[0]] = set
	}
	if set.written != "" {
		return x.link(set.written, rel)
	}
	if c.fx != members[len(members)-1] {
		// Not the content yet: reserve the name so a duplicate is caught.
		if t, err := x.dd.lstat(rel); err != nil || t != 0 {
			return fmt.Errorf("/%s: already exists in the payload", rel)
		}
		set.pending = append(set.pending, rel)
		return nil
	}
	if err := x.file(rel, perm, own, capData, c.size, c.r); err != nil {
		return err
	}
	set.written = rel
	for _, p := range set.pending {
		if err := x.link(rel, p); err != nil {
			return err
		}
	}
	set.pending = nil
	return nil
}

func (x *extractor) link(oldRel, newRel string) error {
	ofd, obase, err := x.dd.parent(oldRel)
	if err != nil {
		return fmt.Errorf("/%s: %w", newRel, err)
	}
	nfd, nbase, err := x.dd.parent(newRel)
	if err != nil {
		return fmt.Errorf("/%s: %w", newRel, err)
	}
	if err := unix.Linkat(ofd, obase, nfd, nbase, 0); err != nil {
		return fmt.Errorf("/%s: hardlink to /%s: %w", newRel, oldRel, err)
	}
	return nil
}

// writeTmpfiles writes the collected lines to usr/lib/tmpfiles.d/pkg-NAME.conf.
func (x *extractor) writeTmpfiles() error {
	if len(x.out.Tmpfiles) == 0 {
		return nil
	}
	rel := path.Join("usr/lib/tmpfiles.d", "pkg-"+x.pkg+".conf")
	text := "# Generated by hostctl from the /var, /run and /opt entries of package " + x.pkg + "\n" +
		strings.Join(x.out.Tmpfiles, "\n") + "\n"
	if err := x.file(rel, 0o644, owner{}, nil, int64(len(text)), strings.NewReader(text)); err != nil {
		return fmt.Errorf("write tmpfiles.d: %w", err)
	}
	x.out.TmpfilesConf = rel
	return nil
}
