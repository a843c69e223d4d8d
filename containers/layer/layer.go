// Package layer applies OCI image layers (tar streams) to a directory: the
// rootfs of a system container, or the tree of one layer to import.
//
// It follows the OCI image spec's changeset rules: ".wh.NAME" deletes NAME of
// the layers below, ".wh..wh..opq" empties its directory of what the layers
// below put there, and neither touches entries of the same layer. Every path
// is confined to the target directory with an os.Root: a ".." component is
// refused, an absolute name is taken relative to the target, and an entry
// that would be written through a symlink pointing outside the target (an
// absolute symlink, or a relative one climbing out) is refused. Symlinks
// themselves may point anywhere: inside the container they resolve against
// its own root.
//
// Device nodes and FIFOs are dropped, as the atomic CLI's OSTree import did
// (containers/image's ostree destination removes devices, pipes and sockets
// before committing: OSTree cannot store them, and runc provides /dev);
// Options.RefuseDevices turns them into an error instead.
package layer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Options tune Apply.
type Options struct {
	// RefuseDevices makes a character or block device or a FIFO an error
	// instead of an entry that is dropped.
	RefuseDevices bool
	// KeepWhiteouts writes ".wh.NAME" and ".wh..wh..opq" entries as empty
	// files instead of applying them: for a layer applied alone into an
	// empty directory to be committed on its own, whose whiteouts must act
	// when the layers are stacked (libostree's checkout with OCI whiteout
	// processing does that).
	KeepWhiteouts bool
}

// Result tells what Apply did not apply as written.
type Result struct {
	Dropped       []string // device nodes and FIFOs not created, and hard links to them
	XattrsSkipped []string // "path: name" of extended attributes the filesystem does not support
	// Symlinks lists the symbolic links the layer created, sorted.
	Symlinks []string
	// Dirs lists the directories the layer holds entries in or creates,
	// sorted: what a lower layer's symlink must not shadow when the layers
	// are stacked.
	Dirs []string
}

// CleanPath turns a tar entry name into a path relative to the target
// directory: leading slashes and "." components go, a ".." component or a
// NUL byte is an error. The empty result names the target itself.
func CleanPath(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("layer entry %q: NUL byte in name", name)
	}
	parts := strings.Split(name, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("layer entry %q: \"..\" would leave the root: the layer is refused", name)
		}
		out = append(out, p)
	}
	return strings.Join(out, "/"), nil
}

// Decompress returns the tar stream of a layer blob: gzip, zstd and bzip2 are
// recognised by their magic bytes, anything else is read as a plain tar.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open gzip layer: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open zstd layer: %w", err)
		}
		return zr.IOReadCloser(), nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return io.NopCloser(bzip2.NewReader(br)), nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X'}):
		return nil, fmt.Errorf("open layer: xz-compressed layers are not supported; recompress the image with gzip or zstd")
	}
	return io.NopCloser(br), nil
}

// Apply decompresses r (see Decompress) and applies the layer to the
// directory dir, which must exist. It keeps modes (with setuid, setgid and
// sticky bits), numeric owners, symlinks, hard links, modification times and
// extended attributes (PAX SCHILY.xattr.*). On error dir is left partly
// written: apply into a fresh directory and remove it on failure.
func Apply(ctx context.Context, dir string, r io.Reader, opts Options) (*Result, error) {
	tr, err := Decompress(r)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("apply layer: %w", err)
	}
	defer root.Close()
	a := &applier{root: root, opts: opts, res: &Result{},
		written: map[string]bool{}, touched: map[string]bool{}, dropped: map[string]bool{}, symlinks: map[string]bool{}}
	if err := a.run(ctx, tar.NewReader(tr)); err != nil {
		return nil, err
	}
	for name := range a.symlinks {
		a.res.Symlinks = append(a.res.Symlinks, name)
	}
	for name := range a.touched {
		a.res.Dirs = append(a.res.Dirs, name)
	}
	for _, d := range a.dirs {
		if !a.touched[d.name] {
			a.res.Dirs = append(a.res.Dirs, d.name)
		}
	}
	sort.Strings(a.res.Symlinks)
	sort.Strings(a.res.Dirs)
	a.res.Dirs = slices.Compact(a.res.Dirs)
	return a.res, nil
}

type dirTime struct {
	name  string
	mtime time.Time
}

type applier struct {
	root     *os.Root
	opts     Options
	res      *Result
	written  map[string]bool // entries this layer created
	touched  map[string]bool // directories holding entries this layer created
	dropped  map[string]bool // device nodes not created
	symlinks map[string]bool // symlinks this layer created
	dirs     []dirTime       // directory times, set at the end
}

func (a *applier) run(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("apply layer: %w", err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("apply layer: read tar: %w", err)
		}
		if err := a.entry(tr, hdr); err != nil {
			return err
		}
	}
	// Children change their directory's mtime: set the times last, deepest
	// first, and only on what is still a directory.
	sort.SliceStable(a.dirs, func(i, j int) bool { return a.dirs[i].name > a.dirs[j].name })
	for _, d := range a.dirs {
		if fi, err := a.root.Lstat(d.name); err == nil && fi.IsDir() {
			if err := a.root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
				return fmt.Errorf("layer entry %q: set times: %w", d.name, err)
			}
		}
	}
	return nil
}

func (a *applier) entry(tr *tar.Reader, hdr *tar.Header) error {
	name, err := CleanPath(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		return nil // the root itself keeps the target directory's metadata
	}
	parent, base := path.Dir(name), path.Base(name)
	if a.opts.KeepWhiteouts && strings.HasPrefix(base, ".wh.") {
		if victim := strings.TrimPrefix(base, ".wh."); victim == "" || victim == "." || victim == ".." {
			return fmt.Errorf("layer entry %q: bad whiteout name", hdr.Name)
		}
		return a.wrap(name, a.keepWhiteout(name, parent))
	}
	if base == ".wh..wh..opq" {
		return a.wrap(name, a.opaque(parent))
	}
	if strings.HasPrefix(base, ".wh.") {
		victim := strings.TrimPrefix(base, ".wh.")
		if victim == "" || victim == "." || victim == ".." {
			return fmt.Errorf("layer entry %q: bad whiteout name", hdr.Name)
		}
		return a.wrap(name, a.whiteout(path.Join(parent, victim)))
	}

	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if a.opts.RefuseDevices {
			return fmt.Errorf("layer entry %q: device nodes and FIFOs are not allowed in system container images", hdr.Name)
		}
		a.res.Dropped = append(a.res.Dropped, name)
		a.dropped[name] = true
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeDir, tar.TypeReg, tar.TypeRegA, tar.TypeSymlink, tar.TypeLink:
	default:
		return fmt.Errorf("layer entry %q: unsupported tar entry type %q", hdr.Name, hdr.Typeflag)
	}

	if parent != "." {
		if err := a.root.MkdirAll(parent, 0o755); err != nil {
			return a.wrap(name, err)
		}
	}
	isDir := hdr.Typeflag == tar.TypeDir
	if err := a.clear(name, isDir); err != nil {
		return a.wrap(name, err)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := a.root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return a.wrap(name, err)
		}
		f, err := a.root.Open(name)
		if err != nil {
			return a.wrap(name, err)
		}
		err = a.metadata(f, name, hdr, false)
		f.Close()
		if err != nil {
			return a.wrap(name, err)
		}
		a.dirs = append(a.dirs, dirTime{name, hdr.ModTime})
	case tar.TypeReg, tar.TypeRegA:
		f, err := a.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return a.wrap(name, err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return a.wrap(name, err)
		}
		err = a.metadata(f, name, hdr, true)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return a.wrap(name, err)
		}
	case tar.TypeSymlink:
		if err := a.root.Symlink(hdr.Linkname, name); err != nil {
			return a.wrap(name, err)
		}
		if err := a.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return a.wrap(name, err)
		}
		a.symlinks[name] = true
	case tar.TypeLink:
		target, err := CleanPath(hdr.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("layer entry %q: hard link to %q, outside the layer root: the layer is refused", hdr.Name, hdr.Linkname)
		}
		if a.dropped[target] {
			a.res.Dropped = append(a.res.Dropped, name)
			a.dropped[name] = true
			return nil
		}
		if target == name {
			return fmt.Errorf("layer entry %q: hard link to itself", hdr.Name)
		}
		if err := a.root.Link(target, name); err != nil {
			return a.wrap(name, fmt.Errorf("hard link to %q: %w", target, err))
		}
	}
	a.markWritten(name)
	return nil
}

// wrap explains an error of entry name; os.Root reports a path leaving the
// target as "path escapes from parent".
func (a *applier) wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "escapes from parent") {
		return fmt.Errorf("layer entry %q goes through a symlink that points outside the root: the layer is refused: %w", name, err)
	}
	return fmt.Errorf("layer entry %q: %w", name, err)
}

// clear removes what a lower layer has at name, keeping a directory when the
// new entry is a directory too.
func (a *applier) clear(name string, isDir bool) error {
	fi, err := a.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if isDir && fi.IsDir() {
		return nil
	}
	return a.root.RemoveAll(name)
}

// keepWhiteout records a whiteout as an empty file (KeepWhiteouts).
func (a *applier) keepWhiteout(name, parent string) error {
	if parent != "." {
		if err := a.root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	if err := a.clear(name, false); err != nil {
		return err
	}
	f, err := a.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	a.markWritten(name)
	return nil
}

func (a *applier) markWritten(name string) {
	a.written[name] = true
	for d := path.Dir(name); d != "." && !a.touched[d]; d = path.Dir(d) {
		a.touched[d] = true
	}
}

func (a *applier) ours(name string) bool { return a.written[name] || a.touched[name] }

// whiteout deletes name of the lower layers.
func (a *applier) whiteout(name string) error {
	if a.ours(name) {
		return nil // only lower layers are whited out
	}
	return a.root.RemoveAll(name)
}

// opaque empties dir of what lower layers put there.
func (a *applier) opaque(dir string) error {
	if dir == "." {
		dir = ""
	}
	name := dir
	if name == "" {
		name = "."
	}
	fi, err := a.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return nil
	}
	f, err := a.root.Open(name)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		child := path.Join(dir, n)
		if !a.ours(child) {
			if err := a.root.RemoveAll(child); err != nil {
				return err
			}
			continue
		}
		if a.touched[child] {
			if err := a.opaque(child); err != nil {
				return err
			}
		}
	}
	return nil
}

// metadata sets owner, mode, xattrs and (for files) times through the open f.
func (a *applier) metadata(f *os.File, name string, hdr *tar.Header, times bool) error {
	if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	mode := fs.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	fd := int(f.Fd())
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attr := strings.TrimPrefix(k, "SCHILY.xattr.")
		err := unix.Fsetxattr(fd, attr, []byte(hdr.PAXRecords[k]), 0)
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			a.res.XattrsSkipped = append(a.res.XattrsSkipped, name+": "+attr)
			continue
		}
		if err != nil {
			return fmt.Errorf("set xattr %s: %w", attr, err)
		}
	}
	if times {
		mt := unix.NsecToTimeval(hdr.ModTime.UnixNano())
		at := mt
		if !hdr.AccessTime.IsZero() {
			at = unix.NsecToTimeval(hdr.AccessTime.UnixNano())
		}
		if err := unix.Futimes(fd, []unix.Timeval{at, mt}); err != nil {
			return fmt.Errorf("set times: %w", err)
		}
	}
	return nil
}
