package layering

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/deploy"
)

// errNoOverlay is an overlay mount that failed: the scripts then run on a
// checkout.
var errNoOverlay = errors.New("overlayfs is not available for the scripts' tree")

// overlayXattrPrefix names the extended attributes overlayfs keeps on its
// upper layer for itself (origin, impure, opaque...): never part of a tree.
const overlayXattrPrefix = "trusted.overlay."

// runScriptsOverlay runs scripts with / an overlay of, from the top: root
// (the new rpmdb and account files), a checkout of every package (hardlinks
// to the package cache, small) and baseTree (a tree on disk that is the base
// commit: a deployment of it), with a scratch upper layer, and then writes
// what the scripts changed (the upper layer) into tree. The lower layers
// are never written: overlayfs copies a file up before it changes.
func (l *Layerer) runScriptsOverlay(ctx context.Context, txn *deploy.Txn, tree *deploy.MutableTree, work, root, baseTree string, pkgs []*preparedPkg, runs []ScriptJob) error {
	lowers := []string{root}
	for i, p := range pkgs {
		dir := filepath.Join(work, fmt.Sprintf("lower-%d", i))
		if err := l.Repo.Checkout(ctx, p.commit, dir, deploy.CheckoutOptions{}); err != nil {
			return fmt.Errorf("check out package %s for its scripts: %w", p.file.NEVRA(), err)
		}
		lowers = append(lowers, dir)
	}
	lowers = append(lowers, baseTree)
	upper, wdir, mnt := filepath.Join(work, "upper"), filepath.Join(work, "overlay-work"), filepath.Join(work, "merged")
	for _, d := range []string{upper, wdir, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("run package scripts: %w", err)
		}
	}
	for _, d := range lowers {
		if strings.ContainsAny(d, ":,\\") {
			return fmt.Errorf("%w: the path %s cannot be a lower layer", errNoOverlay, d)
		}
	}
	// No redirects, no metadata-only copy-up, no index: the upper layer is
	// then plain files, directories and whiteouts.
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,metacopy=off,index=off",
		strings.Join(lowers, ":"), upper, wdir)
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_NODEV|unix.MS_NOSUID, opts); err != nil {
		return fmt.Errorf("%w: mount: %v", errNoOverlay, err)
	}
	err := runScriptsAt(ctx, work, mnt, runs)
	unmount(mnt)
	if err != nil {
		return err
	}
	return applyUpper(ctx, txn, tree, upper, "", lowers)
}

// applyUpper writes the overlay upper layer dir (at rel of the tree) into
// m: new and changed files and directories, whiteouts as removals. A
// directory that was only copied up (same owner and mode as in the lower
// layer it came from) keeps its metadata in m.
func applyUpper(ctx context.Context, txn *deploy.Txn, m *deploy.MutableTree, dir, rel string, lowers []string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		childRel := filepath.Join(rel, name)
		if rel == "" && name == "etc" {
			// The mountpoint of usr/etc, as in runScripts.
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			return err
		}
		kind, err := m.Lookup(name)
		if err != nil {
			return err
		}
		if rel == "var" && kind == deploy.NoEntry {
			// /var belongs to the stateroot, as in Build.
			continue
		}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFCHR:
			if st.Rdev != 0 {
				return fmt.Errorf("a package script made the device /%s: not supported in a tree", childRel)
			}
			if err := m.Remove(name); err != nil { // a whiteout
				return err
			}
		case syscall.S_IFDIR:
			opaque := xattrValue(path, overlayXattrPrefix+"opaque") == "y"
			if kind == deploy.FileEntry || (opaque && kind == deploy.DirEntry) {
				if err := m.Remove(name); err != nil {
					return err
				}
				kind = deploy.NoEntry
			}
			sub, err := m.Dir(name)
			if err != nil {
				return err
			}
			if kind == deploy.NoEntry || dirChanged(&st, childRel, lowers) {
				csum, err := writeDirMeta(ctx, txn, path, &st)
				if err != nil {
					return err
				}
				sub.SetMetadata(csum)
			}
			subLowers := lowers
			if opaque {
				subLowers = nil
			}
			if err := applyUpper(ctx, txn, sub, path, childRel, subLowers); err != nil {
				return err
			}
		case syscall.S_IFREG, syscall.S_IFLNK:
			if kind == deploy.DirEntry {
				if err := m.Remove(name); err != nil {
					return err
				}
			}
			csum, err := writeFileFromDisk(ctx, txn, path, &st)
			if err != nil {
				return err
			}
			if err := m.SetFile(name, csum); err != nil {
				return err
			}
		default:
			return fmt.Errorf("a package script made /%s, a %s: not supported in a tree", childRel, os.FileMode(st.Mode).Type())
		}
	}
	return nil
}

// dirChanged tells whether the copied-up directory st differs in owner or
// mode from the topmost lower layer's directory at rel (a script changed
// it), or no lower layer has it.
func dirChanged(st *syscall.Stat_t, rel string, lowers []string) bool {
	for _, l := range lowers {
		var lst syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(l, rel), &lst); err != nil {
			continue
		}
		return lst.Mode != st.Mode || lst.Uid != st.Uid || lst.Gid != st.Gid
	}
	return true
}

func xattrValue(path, name string) string {
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// treeXattrs are the extended attributes of path in the upper layer but
// overlayfs's own.
func treeXattrs(path string) ([]deploy.Xattr, error) {
	all, err := readXattrs(path)
	if err != nil {
		return nil, err
	}
	var out []deploy.Xattr
	for _, x := range all {
		if !strings.HasPrefix(x.Name, overlayXattrPrefix) {
			out = append(out, x)
		}
	}
	return out, nil
}

func writeDirMeta(ctx context.Context, txn *deploy.Txn, path string, st *syscall.Stat_t) (string, error) {
	xattrs, err := treeXattrs(path)
	if err != nil {
		return "", err
	}
	return txn.WriteDirMeta(ctx, deploy.FileMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode & 0o7777, Xattrs: xattrs})
}

func writeFileFromDisk(ctx context.Context, txn *deploy.Txn, path string, st *syscall.Stat_t) (string, error) {
	xattrs, err := treeXattrs(path)
	if err != nil {
		return "", err
	}
	meta := deploy.FileMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode & 0o7777, Xattrs: xattrs}
	if st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		target, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		return txn.WriteSymlink(ctx, meta, target)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return txn.WriteFile(ctx, meta, st.Size, f)
}
