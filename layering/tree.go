package layering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hostctl/hostctl/internal/proc"
)

// RPMDBPath is where a tree keeps its rpmdb (the sqlite backend).
const RPMDBPath = "usr/lib/sysimage/rpm"

// ConflictError is a file a layered package would install over a different
// file of the base or of another layered package.
type ConflictError struct {
	Package string
	Path    string
	// With is "the base" or "package NAME".
	With string
}

// Error names the package, the path and what it conflicts with.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("file conflict: package %s installs /%s, which %s already has with different content; layer a package that does not ship it, or remove the other one",
		e.Package, e.Path, e.With)
}

// pkgTree is the payload of one package as a directory tree.
type pkgTree struct {
	name string
	dir  string
}

// checkConflicts refuses any non-directory entry of a package that exists in
// base (or in an earlier package) with different type, owner, mode or
// content. Identical files are fine, as rpm allows shared files.
func checkConflicts(base string, pkgs []pkgTree) error {
	claimed := map[string]pkgTree{}
	for _, p := range pkgs {
		err := filepath.WalkDir(p.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(p.dir, path)
			if err != nil || rel == "." {
				return err
			}
			if other, ok := claimed[rel]; ok {
				same, err := sameEntry(path, filepath.Join(other.dir, rel))
				if err != nil {
					return err
				}
				if !same {
					return &ConflictError{Package: p.name, Path: rel, With: "package " + other.name}
				}
				return nil
			}
			bp := filepath.Join(base, rel)
			if _, err := os.Lstat(bp); errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				if !d.IsDir() {
					claimed[rel] = p
				}
				return nil
			} else if err != nil {
				return err
			}
			same, err := sameEntry(path, bp)
			if err != nil {
				return err
			}
			if !same {
				return &ConflictError{Package: p.name, Path: rel, With: "the base"}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sameEntry tells whether two paths hold the same thing: two directories,
// or the same file type, owner and mode with the same content or target.
func sameEntry(a, b string) (bool, error) {
	sa, err := os.Lstat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Lstat(b)
	if err != nil {
		return false, err
	}
	if sa.Mode().Type() != sb.Mode().Type() {
		return false, nil
	}
	if sa.IsDir() {
		return true, nil
	}
	if os.SameFile(sa, sb) {
		return true, nil
	}
	ta, tb := sa.Sys().(*syscall.Stat_t), sb.Sys().(*syscall.Stat_t)
	if sa.Mode() != sb.Mode() || ta.Uid != tb.Uid || ta.Gid != tb.Gid {
		return false, nil
	}
	switch {
	case sa.Mode()&fs.ModeSymlink != 0:
		la, err1 := os.Readlink(a)
		lb, err2 := os.Readlink(b)
		return err1 == nil && err2 == nil && la == lb, nil
	case sa.Mode().IsRegular():
		if sa.Size() != sb.Size() {
			return false, nil
		}
		return sameContent(a, b)
	}
	return false, nil
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// breakHardlinks replaces the directory dir of tree (and what is in it) by
// a copy, so writing to its files never writes to the repository's objects
// the hardlink checkout shares.
func breakHardlinks(dir string) error {
	tmp := dir + ".hostctl-copy"
	if err := copyTree(dir, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("copy %s: %w", dir, err)
	}
	old := dir + ".hostctl-old"
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// copyTree copies src to dst (which must not exist) with modes and owners;
// files are copied, never linked.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
			return os.Lchown(target, int(st.Uid), int(st.Gid))
		case info.Mode().IsRegular():
			if err := copyRegular(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected file type %s", path, info.Mode().Type())
		}
		if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		return os.Chmod(target, info.Mode().Perm()|info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	})
}

func copyRegular(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// registerPackages adds the packages to the tree's rpmdb, as rpm would have
// installed them, without touching their files or running anything:
// `rpm --root TREE --dbpath /usr/lib/sysimage/rpm --justdb --nodeps
// --noscripts --notriggers -i`. The rpmdb directory is a copy by then.
func registerPackages(ctx context.Context, tree string, rpms []string) error {
	if len(rpms) == 0 {
		return nil
	}
	args := []string{"--root", tree, "--dbpath", "/" + RPMDBPath, "--define", "_db_backend sqlite",
		"--justdb", "--nodeps", "--noscripts", "--notriggers", "--ignorearch", "-i"}
	args = append(args, rpms...)
	cmd := proc.Command(ctx, "rpm", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("record the layered packages in the rpmdb of the new tree: rpm: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
