package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/hostctl/hostctl/deploy"
)

// Imported is a layer written into a repository transaction by Import.
type Imported struct {
	// Tree is the layer's tree, every object of it written: commit it with
	// Txn.CommitTree, then Close it.
	Tree *deploy.MutableTree
	// Dropped, Symlinks and Dirs are as in Result.
	Dropped, Symlinks, Dirs []string
}

// Import decompresses r (see Decompress) and writes each entry of the layer
// straight into the open transaction txn as a repository object, with its
// numeric owner, mode (setuid, setgid and sticky bits included) and extended
// attributes (PAX SCHILY.xattr.*); directories go into the returned tree. No
// file is created outside the repository.
//
// The tree is the one Apply with KeepWhiteouts builds in an empty directory
// and a commit of that directory records: whiteouts (".wh.NAME",
// ".wh..wh..opq") are kept as empty files owned by hostd (mode 0644) for the
// checkout with OCI whiteout processing to apply; directories that only
// appear as parents of an entry are owned by hostd with mode 0755, and so is
// the root; a hard link is the object of the entry it names (an earlier entry
// of the same layer); device nodes and FIFOs are dropped. The same names are
// refused: a ".." component, a hard link out of the layer, an entry written
// through a symlink that leaves the root (absolute, or climbing above it).
// Symlinks of the same layer inside the root are followed, as the kernel
// would when the layer is unpacked.
//
// Decompression runs on its own goroutine, ahead of the writes. On success
// r has been read to its end (for the caller's digest check).
func Import(ctx context.Context, txn *deploy.Txn, r io.Reader) (*Imported, error) {
	ra := newReadAhead(r)
	im, err := importStream(ctx, txn, ra)
	if err != nil {
		ra.abort()
		return nil, err
	}
	if err := ra.finish(); err != nil {
		im.Tree.Close()
		return nil, err
	}
	return im, nil
}

func importStream(ctx context.Context, txn *deploy.Txn, ra *readAhead) (*Imported, error) {
	s := &streamer{txn: txn, uid: uint32(os.Geteuid()), gid: uint32(os.Getegid()),
		written: map[string]bool{}, touched: map[string]bool{}, dropped: map[string]bool{}, symlinks: map[string]bool{}}
	s.root = s.newDir()
	s.root.meta.Mode = 0o755
	tr := tar.NewReader(ra)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("import layer: %w", err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("import layer: read tar: %w", err)
		}
		if err := s.entry(ctx, tr, hdr); err != nil {
			return nil, err
		}
	}
	tree := deploy.NewMutableTree()
	if err := s.writeTree(ctx, s.root, tree); err != nil {
		tree.Close()
		return nil, err
	}
	im := &Imported{Tree: tree, Dropped: s.droppedList}
	for name := range s.symlinks {
		im.Symlinks = append(im.Symlinks, name)
	}
	dirs := map[string]bool{}
	for name := range s.touched {
		dirs[name] = true
	}
	for _, name := range s.dirEntries {
		dirs[name] = true
	}
	for name := range dirs {
		im.Dirs = append(im.Dirs, name)
	}
	sort.Strings(im.Symlinks)
	sort.Strings(im.Dirs)
	return im, nil
}

type nodeKind uint8

const (
	kindDir nodeKind = iota
	kindFile
	kindSymlink
)

// node is an entry of the layer's tree as it is being imported.
type node struct {
	kind     nodeKind
	children map[string]*node // kindDir
	meta     deploy.FileMeta  // kindDir: the directory's metadata
	csum     string           // kindFile, kindSymlink: the object
	target   string           // kindSymlink
}

type streamer struct {
	txn         *deploy.Txn
	uid, gid    uint32 // hostd's, for what hostd itself creates
	root        *node
	written     map[string]bool // entries this layer created, by tar name
	touched     map[string]bool // directories holding them
	dropped     map[string]bool
	droppedList []string
	symlinks    map[string]bool
	dirEntries  []string // names of directory entries
	whiteout    string   // the checksum of a kept whiteout, once written
}

func (s *streamer) newDir() *node {
	return &node{kind: kindDir, children: map[string]*node{}, meta: deploy.FileMeta{UID: s.uid, GID: s.gid, Mode: 0o755}}
}

func (s *streamer) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	name, err := CleanPath(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		return nil // the root keeps hostd's metadata, as Apply's target does
	}

	parent, base := path.Dir(name), path.Base(name)
	if strings.HasPrefix(base, ".wh.") {
		if victim := strings.TrimPrefix(base, ".wh."); victim == "" || victim == "." || victim == ".." {
			return fmt.Errorf("layer entry %q: bad whiteout name", hdr.Name)
		}
		return s.wrap(name, s.keepWhiteout(ctx, parent, base, name))
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		s.drop(name)
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeDir, tar.TypeReg, tar.TypeRegA, tar.TypeSymlink, tar.TypeLink:
	default:
		return fmt.Errorf("layer entry %q: unsupported tar entry type %q", hdr.Name, hdr.Typeflag)
	}

	dir, err := s.resolveDir(parent, true)
	if err != nil {
		return s.wrap(name, err)
	}
	if old := dir.children[base]; old != nil && (hdr.Typeflag != tar.TypeDir || old.kind != kindDir) {
		delete(dir.children, base)
	}
	if hdr.Typeflag == tar.TypeLink {
		// Checked once the parent is made and the name cleared, as Apply does.
		target, err := CleanPath(hdr.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("layer entry %q: hard link to %q, outside the layer root: the layer is refused", hdr.Name, hdr.Linkname)
		}
		if s.dropped[target] {
			s.drop(name)
			return nil
		}
		if target == name {
			return fmt.Errorf("layer entry %q: hard link to itself", hdr.Name)
		}
	}
	meta := deploy.FileMeta{UID: uint32(hdr.Uid), GID: uint32(hdr.Gid), Mode: uint32(hdr.Mode) & 0o7777}
	switch hdr.Typeflag {
	case tar.TypeDir:
		d := dir.children[base]
		if d == nil {
			d = s.newDir()
			dir.children[base] = d
		}
		meta.Xattrs = xattrs(hdr)
		d.meta = meta
		s.dirEntries = append(s.dirEntries, name)
	case tar.TypeReg, tar.TypeRegA:
		meta.Xattrs = xattrs(hdr)
		csum, err := s.txn.WriteFile(ctx, meta, hdr.Size, tr)
		if err != nil {
			return s.wrap(name, err)
		}
		dir.children[base] = &node{kind: kindFile, csum: csum}
	case tar.TypeSymlink:
		csum, err := s.txn.WriteSymlink(ctx, deploy.FileMeta{UID: meta.UID, GID: meta.GID}, hdr.Linkname)
		if err != nil {
			return s.wrap(name, err)
		}
		dir.children[base] = &node{kind: kindSymlink, csum: csum, target: hdr.Linkname}
		s.symlinks[name] = true
	case tar.TypeLink:
		target, _ := CleanPath(hdr.Linkname)
		t, err := s.lookup(target)
		if err != nil {
			return s.wrap(name, fmt.Errorf("hard link to %q: %w", target, err))
		}
		if t.kind == kindDir {
			return s.wrap(name, fmt.Errorf("hard link to %q: it is a directory", target))
		}
		dir.children[base] = &node{kind: t.kind, csum: t.csum, target: t.target}
	}
	s.markWritten(name)
	return nil
}

func (s *streamer) drop(name string) {
	s.droppedList = append(s.droppedList, name)
	s.dropped[name] = true
}

// keepWhiteout records a whiteout as an empty file.
func (s *streamer) keepWhiteout(ctx context.Context, parent, base, name string) error {
	dir, err := s.resolveDir(parent, true)
	if err != nil {
		return err
	}
	if s.whiteout == "" {
		csum, err := s.txn.WriteFile(ctx, deploy.FileMeta{UID: s.uid, GID: s.gid, Mode: 0o644}, 0, strings.NewReader(""))
		if err != nil {
			return err
		}
		s.whiteout = csum
	}
	dir.children[base] = &node{kind: kindFile, csum: s.whiteout}
	s.markWritten(name)
	return nil
}

func (s *streamer) markWritten(name string) {
	s.written[name] = true
	for d := path.Dir(name); d != "." && !s.touched[d]; d = path.Dir(d) {
		s.touched[d] = true
	}
}

// errEscape is a path that leaves the root through a symlink.
var errEscape = errors.New("path escapes from parent")

// maxSymlinks bounds the symlinks followed for one path, as the kernel's 40.
const maxSymlinks = 40

// resolveDir returns the directory at p (a clean relative path, "." for the
// root), following this layer's symlinks as the kernel would; with create,
// missing directories are made with hostd's metadata (Apply's MkdirAll).
func (s *streamer) resolveDir(p string, create bool) (*node, error) {
	stack := []*node{s.root}
	follows := 0
	if p == "." || p == "" {
		return s.root, nil
	}
	if err := s.walk(&stack, strings.Split(p, "/"), create, &follows); err != nil {
		return nil, err
	}
	return stack[len(stack)-1], nil
}

// walk resolves the components parts from the directory on top of stack,
// pushing each directory reached; ".." pops. A symlink is replaced by its
// target's components.
func (s *streamer) walk(stack *[]*node, parts []string, create bool, follows *int) error {
	for _, c := range parts {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(*stack) == 1 {
				return errEscape
			}
			*stack = (*stack)[:len(*stack)-1]
			continue
		}
		cur := (*stack)[len(*stack)-1]
		child := cur.children[c]
		switch {
		case child == nil:
			if !create {
				return notExist(c)
			}
			child = s.newDir()
			cur.children[c] = child
			*stack = append(*stack, child)
		case child.kind == kindDir:
			*stack = append(*stack, child)
		case child.kind == kindSymlink:
			*follows++
			if *follows > maxSymlinks {
				return fmt.Errorf("%s: too many levels of symbolic links", c)
			}
			if strings.HasPrefix(child.target, "/") {
				return errEscape
			}
			// A symlink that does not resolve to a directory is not
			// made one: Apply's MkdirAll fails there too.
			if err := s.walk(stack, strings.Split(child.target, "/"), false, follows); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a directory", c)
		}
	}
	return nil
}

func notExist(name string) error {
	return fmt.Errorf("%s: %w", name, os.ErrNotExist)
}

// lookup returns the entry at p without following a final symlink.
func (s *streamer) lookup(p string) (*node, error) {
	dir, err := s.resolveDir(path.Dir(p), false)
	if err != nil {
		return nil, err
	}
	n := dir.children[path.Base(p)]
	if n == nil {
		return nil, notExist(p)
	}
	return n, nil
}

// wrap explains an error of entry name, as Apply does.
func (s *streamer) wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errEscape) {
		return fmt.Errorf("layer entry %q goes through a symlink that points outside the root: the layer is refused: %w", name, err)
	}
	return fmt.Errorf("layer entry %q: %w", name, err)
}

// writeTree writes n's directory metadata and fills m from n.
func (s *streamer) writeTree(ctx context.Context, n *node, m *deploy.MutableTree) error {
	csum, err := s.txn.WriteDirMeta(ctx, n.meta)
	if err != nil {
		return err
	}
	m.SetMetadata(csum)
	for name, c := range n.children {
		if !utf8.ValidString(name) {
			// libostree refuses it when a tree is committed (as the
			// commit of an unpacked layer did); say what it is.
			return fmt.Errorf("layer entry %q: the name is not valid UTF-8, which OSTree cannot store: the layer is refused", name)
		}
		if c.kind != kindDir {
			if err := m.SetFile(name, c.csum); err != nil {
				return err
			}
			continue
		}
		sub, err := m.Dir(name)
		if err != nil {
			return err
		}
		if err := s.writeTree(ctx, c, sub); err != nil {
			return err
		}
	}
	return nil
}

// xattrs are the entry's extended attributes, sorted by name. An attribute
// with an empty value is left out: the commit of an unpacked tree never
// recorded one (libostree reads it back as absent), and the trees must agree.
func xattrs(hdr *tar.Header) []deploy.Xattr {
	var out []deploy.Xattr
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && v != "" {
			out = append(out, deploy.Xattr{Name: name, Value: []byte(v)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
