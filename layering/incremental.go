package layering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/deploy"
)

// Two ways to build a layered commit
//
// From the base commit (buildFromCommit), taken unless checkoutNeeded says
// otherwise. The new tree is a libostree mutable tree loaded lazily from
// the base commit; each package's cache commit is merged into it as a
// union-identical checkout would be (deploy.Txn.MergeCommit), so only the
// directories the packages touch are read and rewritten. rpm --justdb runs
// on a small scratch root holding only a copy of the base's rpmdb and its
// passwd and group files (for the packages' users), and those replace the
// base's. With no script to run, nothing is checked out but that rpmdb and
// no tree is walked. %post and %posttrans run in the usual sandbox with /
// an overlay (runScriptsOverlay): the scratch root, a checkout of each
// package (small) and Layerer.BaseTrees' tree of the base commit (a
// deployment of it) as read-only lower layers, a scratch upper layer; what
// the scripts wrote (the upper layer: files, directories, whiteouts) is
// then written into the tree. New packages are imported into the package
// cache in the same transaction, so a fallback leaves nothing behind.
//
// From a checkout (the rest of Build): the base checked out with hardlinks,
// the packages checked out over it, the scripts run over rofiles-fuse, the
// whole tree committed. It is the only correct one when base packages are
// removed or replaced (their files are deleted from the tree by the rpmdb's
// file lists), and it decides what the first way cannot do faithfully: a
// package that does not merge cleanly (a file over a different file, which
// it refuses as a conflict; a directory where the base has a symbolic
// link, which a checkout follows); scripts when no deployment of the base
// is on disk (e.g. the first layering after an upgrade that was not
// deployed) or overlayfs cannot be mounted. The first way then falls back
// to it.
//
// Both give the same tree (TestBuildPathsAgree and
// TestBuildPathsAgreeScripts check it file by file): the same objects for
// every file, the same directory metadata, the same rpmdb contents but for
// rpm's install times.

// checkoutNeeded says why plan must be assembled on a checkout of its base,
// or "" when it can be built from the base commit alone.
func checkoutNeeded(plan *Plan, runs []ScriptJob, baseTree string) string {
	switch {
	case len(runs) > 0 && baseTree == "":
		return fmt.Sprintf("%d %%post/%%posttrans script(s) to run and no deployment of the base to run them over", len(runs))
	case len(plan.Remove) > 0:
		return "base packages to remove"
	case len(plan.Replaced) > 0:
		return "base packages to replace"
	}
	return ""
}

// idPaths are the account files of a tree that AddSysUsers reads and writes.
var idPaths = []string{"usr/etc/passwd", "usr/lib/passwd", "usr/etc/group", "usr/lib/group"}

// buildFromCommit builds plan's layered commit from the base commit and the
// packages' cache commits without checking out the base (see the comment
// at the top of this file). A *deploy.MergeDivergesError means the packages
// must be assembled on a checkout instead; its scratch files are gone then
// and nothing was written to the repository.
func (l *Layerer) buildFromCommit(ctx context.Context, scratch string, plan *Plan, pkgs []*preparedPkg, users []SysUser, runs []ScriptJob, res *Result) (err error) {
	work := filepath.Join(scratch, "from-commit")
	if err := os.Mkdir(work, 0o755); err != nil {
		return fmt.Errorf("layer packages: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(work)
		}
	}()
	l.step("assemble", "Assembling "+strings.Join(res.Layered, " ")+" on the base commit's tree (no checkout)")
	root := filepath.Join(work, "root")
	base, err := l.smallRoot(ctx, plan.Base, root)
	if err != nil {
		return fmt.Errorf("layer packages: %w", err)
	}
	prev, err := PreviousIDs(l.AccountsRoot)
	if err != nil {
		return fmt.Errorf("layer packages: %w", err)
	}
	added, err := AddSysUsers(root, users, prev)
	if err != nil {
		return fmt.Errorf("layer packages: create the users and groups of the packages: %w", err)
	}
	res.Users = added
	if err := l.payloads(ctx, work, root, pkgs, false); err != nil {
		return err
	}

	txn, err := l.Repo.BeginTransaction(ctx)
	if err != nil {
		return fmt.Errorf("layer packages: %w", err)
	}
	defer txn.Abort()
	// The packages not in the cache yet are imported in the same
	// transaction: their cache refs move only with the layered commit, so
	// a package the checkout path then refuses leaves nothing behind.
	var imported []*preparedPkg
	defer func() {
		if err != nil {
			for _, p := range imported {
				p.commit = ""
			}
		}
	}()
	for _, p := range pkgs {
		if p.commit != "" {
			continue
		}
		c, err := txn.CommitDir(ctx, p.dir, packageCacheCommit(p))
		if err != nil {
			return fmt.Errorf("import package %s into the package cache: %w", p.file.NEVRA(), err)
		}
		p.commit = c
		imported = append(imported, p)
	}
	tree, err := l.Repo.MutableTreeFromCommit(ctx, plan.Base)
	if err != nil {
		return fmt.Errorf("layer packages: %w", err)
	}
	defer tree.Close()
	for _, p := range pkgs {
		// /var belongs to the stateroot: what a package adds there is
		// dropped, as the checkout path drops it.
		if err := txn.MergeCommit(ctx, tree, p.commit, deploy.MergeOptions{DropNew: []string{"var"}}); err != nil {
			return fmt.Errorf("layer package %s: %w", p.file.NEVRA(), err)
		}
	}
	var files []string
	for _, p := range pkgs {
		files = append(files, p.file.Path)
	}
	if err := registerPackages(ctx, root, files); err != nil {
		return err
	}
	if err := txn.ReplaceDir(ctx, tree, RPMDBPath, filepath.Join(root, RPMDBPath)); err != nil {
		return fmt.Errorf("layer packages: the new rpmdb: %w", err)
	}
	for _, rel := range idPaths {
		if err := replaceChanged(ctx, txn, tree, root, rel, base[rel]); err != nil {
			return fmt.Errorf("layer packages: the accounts of the packages: %w", err)
		}
	}
	if len(runs) > 0 {
		l.step("scripts", fmt.Sprintf("Running %d package script(s) in the sandbox over an overlay of the base's deployment", len(runs)))
		if err := l.runScriptsOverlay(ctx, txn, tree, work, root, l.BaseTrees[plan.Base], pkgs, runs); err != nil {
			return err
		}
		res.ScriptsRun = len(runs)
	}
	l.step("commit", "Committing the layered tree")
	c, err := txn.CommitTree(ctx, tree, layeredCommitOptions(plan, res))
	if err != nil {
		return fmt.Errorf("commit the layered tree: %w", err)
	}
	if err := txn.Commit(ctx); err != nil {
		return fmt.Errorf("commit the layered tree: %w", err)
	}
	res.Commit = c
	for _, p := range imported {
		res.Imported = append(res.Imported, p.file.NEVRA())
	}
	return nil
}

// smallRoot writes at root what rpm --justdb and AddSysUsers need of the
// base commit: a copy of its rpmdb (never the repository's objects) and its
// account files, with their modes and owners. It returns the account files'
// contents, by path (missing ones are absent).
func (l *Layerer) smallRoot(ctx context.Context, commit, root string) (map[string][]byte, error) {
	db := filepath.Join(root, RPMDBPath)
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		return nil, err
	}
	if err := l.Repo.Checkout(ctx, commit, db, deploy.CheckoutOptions{Subpath: "/" + RPMDBPath}); err != nil {
		return nil, fmt.Errorf("check out the base's rpmdb: %w", err)
	}
	if err := breakHardlinks(db); err != nil {
		return nil, err
	}
	base := map[string][]byte{}
	for _, rel := range idPaths {
		data, meta, err := l.Repo.ReadCommitFile(ctx, commit, rel)
		if errors.Is(err, deploy.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return nil, err
		}
		if err := os.Lchown(p, int(meta.UID), int(meta.GID)); err != nil {
			return nil, err
		}
		if err := os.Chmod(p, fileMode(meta.Mode)); err != nil {
			return nil, err
		}
		base[rel] = data
	}
	return base, nil
}

func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// replaceChanged puts the file rel of root into tree when its content is
// not before (what the base has), as a commit of root would read it: owner,
// group, mode and extended attributes from disk.
func replaceChanged(ctx context.Context, txn *deploy.Txn, tree *deploy.MutableTree, root, rel string, before []byte) error {
	p := filepath.Join(root, rel)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if before != nil && bytes.Equal(data, before) {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return err
	}
	xattrs, err := readXattrs(p)
	if err != nil {
		return err
	}
	csum, err := txn.WriteFile(ctx, deploy.FileMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode & 0o7777, Xattrs: xattrs},
		int64(len(data)), bytes.NewReader(data))
	if err != nil {
		return err
	}
	dir := tree
	parts := strings.Split(rel, "/")
	for _, name := range parts[:len(parts)-1] {
		if dir, err = dir.Dir(name); err != nil {
			return err
		}
	}
	return dir.SetFile(parts[len(parts)-1], csum)
}

// readXattrs reads the extended attributes of path (not following a
// symbolic link), sorted by name.
func readXattrs(path string) ([]deploy.Xattr, error) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) > 0 {
			names = append(names, string(name))
		}
	}
	sort.Strings(names)
	var out []deploy.Xattr
	for _, name := range names {
		sz, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		val := make([]byte, sz)
		if sz > 0 {
			if sz, err = unix.Lgetxattr(path, name, val); err != nil {
				return nil, err
			}
		}
		out = append(out, deploy.Xattr{Name: name, Value: val[:sz]})
	}
	return out, nil
}
