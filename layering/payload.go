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
	"sort"
	"strings"

	"github.com/cavaliergopher/cpio"
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
// existing directory that holds nothing else of value. Payload paths are
// sanitised (no "..", nothing absolute, nothing through a symlink); modes,
// owners (header user and group names mapped through ids), symlinks,
// hardlinks and file capabilities are kept. As on an image-based host /usr is
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
	files, err := headerFiles(&pkg.Header)
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
	if err := x.run(ctx, cpio.NewReader(payload)); err != nil {
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

// headerFiles maps each file path of the header ("/usr/bin/foo") to its metadata.
func headerFiles(h *rpm.Header) (map[string]fileMeta, error) {
	base := h.GetTag(tagBasenames).StringSlice()
	dirs := h.GetTag(tagDirNames).StringSlice()
	dirIx := h.GetTag(tagDirIndexes).Int64Slice()
	users := h.GetTag(tagFileUserName).StringSlice()
	groups := h.GetTag(tagFileGroupName).StringSlice()
	modes := h.GetTag(tagFileModes).Int64Slice()
	flags := h.GetTag(tagFileFlags).Int64Slice()
	caps := h.GetTag(tagFileCaps).StringSlice()
	n := len(base)
	if len(dirIx) != n || len(users) != n || len(groups) != n || len(modes) != n ||
		(flags != nil && len(flags) != n) || (caps != nil && len(caps) != n) {
		return nil, errors.New("malformed file list in header (array lengths differ)")
	}
	files := make(map[string]fileMeta, n)
	for i := range base {
		if dirIx[i] < 0 || dirIx[i] >= int64(len(dirs)) {
			return nil, fmt.Errorf("malformed file list in header: dir index %d out of range", dirIx[i])
		}
		if flags != nil && flags[i]&fileFlagGhost != 0 {
			continue
		}
		m := fileMeta{user: users[i], group: groups[i], mode: uint32(modes[i])}
		if caps != nil {
			m.caps = caps[i]
		}
		files[dirs[dirIx[i]]+base[i]] = m
	}
	return files, nil
}

type extractor struct {
	dd    *destDir
	pkg   string
	files map[string]fileMeta
	ids   *IDs
	out   Extracted
	opt   map[string]bool
	// hardlink sets by cpio inode: the names seen and the one holding content
	links map[int64]*linkSet
}

type linkSet struct {
	pending []string // names waiting for the content
	written string   // name holding the content, once written
	seen    int
	total   int
}

func newExtractor(dest, pkg string, files map[string]fileMeta, ids *IDs) (*extractor, error) {
	if ids == nil {
		return nil, errors.New("extract payload: no user and group ids given")
	}
	dd, err := openDestDir(dest)
	if err != nil {
		return nil, err
	}
	return &extractor{dd: dd, pkg: pkg, files: files, ids: ids, opt: map[string]bool{}, links: map[int64]*linkSet{}}, nil
}

func (x *extractor) run(ctx context.Context, cr *cpio.Reader) error {
	for {
		if x.out.Entries%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		hdr, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read payload: %w", err)
		}
		x.out.Entries++
		if err := x.entry(hdr, cr); err != nil {
			return err
		}
	}
	// Hardlink sets whose members all came without content are empty files.
	inodes := make([]int64, 0, len(x.links))
	for ino := range x.links {
		inodes = append(inodes, ino)
	}
	sort.Slice(inodes, func(i, j int) bool { return inodes[i] < inodes[j] })
	for _, ino := range inodes {
		if set := x.links[ino]; set.written == "" && len(set.pending) > 0 {
			if err := x.materialize(set, set.pending[0], strings.NewReader(""), 0, x.headerMeta(set.pending[0])); err != nil {
				return err
			}
		}
	}
	return x.writeTmpfiles()
}

func (x *extractor) entry(hdr *cpio.Header, r io.Reader) error {
	rel, err := SanitizePath(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		return nil
	}
	meta, ok := x.files["/"+rel]
	if !ok {
		return fmt.Errorf("payload entry %q is not in the header's file list", hdr.Name)
	}
	uid, ok := x.ids.User(meta.user)
	if !ok {
		return fmt.Errorf("%s: owner %q is not a user of the target tree's passwd", "/"+rel, meta.user)
	}
	gid, ok := x.ids.Group(meta.group)
	if !ok {
		return fmt.Errorf("%s: group %q is not a group of the target tree's group file", "/"+rel, meta.group)
	}
	typ := uint32(hdr.Mode) & unix.S_IFMT
	perm := uint32(hdr.Mode) & 0o7777
	own := owner{uid: int(uid), gid: int(gid), user: meta.user, group: meta.group}

	top, _, _ := strings.Cut(rel, "/")
	switch top {
	case "var", "run":
		return x.volatile(rel, typ, perm, own, hdr, r)
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
	return x.write(rel, typ, perm, own, meta.caps, hdr, r)
}

type owner struct {
	uid, gid    int
	user, group string
}

// volatile turns a /var or /run entry into tmpfiles.d lines.
func (x *extractor) volatile(rel string, typ, perm uint32, own owner, hdr *cpio.Header, r io.Reader) error {
	if rel == "var" || rel == "run" {
		return nil // the tree owns them
	}
	p := tmpfilesPath("/" + rel)
	switch typ {
	case unix.S_IFDIR:
		x.out.Tmpfiles = append(x.out.Tmpfiles, fmt.Sprintf("d %s %04o %s %s - -", p, perm, own.user, own.group))
	case unix.S_IFLNK:
		x.out.Tmpfiles = append(x.out.Tmpfiles, fmt.Sprintf("L %s - - - - %s", p, tmpfilesPath(hdr.Linkname)))
	case unix.S_IFREG:
		if hdr.Size == 0 && hdr.Links <= 1 {
			x.out.Tmpfiles = append(x.out.Tmpfiles, fmt.Sprintf("f %s %04o %s %s - -", p, perm, own.user, own.group))
			return nil
		}
		// Content is kept in the factory and copied on boot when missing.
		if err := x.write("usr/share/factory/"+rel, typ, perm, own, "", hdr, r); err != nil {
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

func (x *extractor) write(rel string, typ, perm uint32, own owner, caps string, hdr *cpio.Header, r io.Reader) error {
	switch typ {
	case unix.S_IFDIR:
		return x.mkdir(rel, perm, own)
	case unix.S_IFLNK:
		return x.symlink(rel, hdr.Linkname, own)
	case unix.S_IFREG:
		var capData []byte
		if caps != "" {
			var err error
			if capData, err = fileCapsXattr(caps); err != nil {
				return fmt.Errorf("/%s: %w", rel, err)
			}
		}
		if hdr.Links > 1 {
			return x.hardlink(rel, perm, own, capData, hdr, r)
		}
		return x.file(rel, perm, own, capData, hdr.Size, r)
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

// hardlink handles one member of an rpm hardlink set: the members share a
// cpio inode number and only one of them (the last, in rpm's payloads) has
// the content.
func (x *extractor) hardlink(rel string, perm uint32, own owner, capData []byte, hdr *cpio.Header, r io.Reader) error {
	set := x.links[hdr.Inode]
	if set == nil {
		set = &linkSet{total: hdr.Links}
		x.links[hdr.Inode] = set
	}
	set.seen++
	if set.written != "" {
		if hdr.Size != 0 {
			return fmt.Errorf("/%s: second content for a hardlink set", rel)
		}
		return x.link(set.written, rel)
	}
	if hdr.Size == 0 && set.seen < set.total {
		// Not the content yet: reserve the name so a duplicate is caught.
		if t, err := x.dd.lstat(rel); err != nil || t != 0 {
			return fmt.Errorf("/%s: already exists in the payload", rel)
		}
		set.pending = append(set.pending, rel)
		return nil
	}
	return x.materialize(set, rel, r, hdr.Size, withMeta{perm, own, capData})
}

// withMeta is the metadata a hardlink set's file is created with.
type withMeta struct {
	perm    uint32
	own     owner
	capData []byte
}

// headerMeta is the metadata the header gives rel (a hardlink set member
// whose entry has been handled already, so its names resolve).
func (x *extractor) headerMeta(rel string) withMeta {
	orig := "/" + rel
	if strings.HasPrefix(rel, "usr/lib/opt/") {
		orig = "/" + strings.TrimPrefix(rel, "usr/lib/")
	} else if strings.HasPrefix(rel, "usr/share/factory/") {
		orig = "/" + strings.TrimPrefix(rel, "usr/share/factory/")
	}
	fm := x.files[orig]
	uid, _ := x.ids.User(fm.user)
	gid, _ := x.ids.Group(fm.group)
	capData, _ := fileCapsXattr(fm.caps)
	return withMeta{perm: fm.mode & 0o7777, own: owner{uid: int(uid), gid: int(gid)}, capData: capData}
}

// materialize creates the file of a hardlink set at rel with its content
// and links the names that came before it.
func (x *extractor) materialize(set *linkSet, rel string, r io.Reader, size int64, m withMeta) error {
	if err := x.file(rel, m.perm, m.own, m.capData, size, r); err != nil {
		return err
	}
	set.written = rel
	for _, p := range set.pending {
		if p == rel {
			continue
		}
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
