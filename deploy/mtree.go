package deploy

// #include <stdlib.h>
// #include "content.h"
// #include "helpers.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"unsafe"
)

// MutableTreeFromCommit returns the tree of commit as a MutableTree that
// libostree loads lazily: only the directories later looked into or changed
// are read from their dirtree objects, so changing a few paths of a large
// tree costs what those paths cost. Close it when done.
func (r *Repo) MutableTreeFromCommit(ctx context.Context, commit string) (*MutableTree, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ccommit := C.CString(commit)
	defer cfree(ccommit)
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	t := C.hc_mtree_from_commit(r.repo, ccommit, c.c, &gerr)
	if t == nil {
		return nil, fmt.Errorf("load the tree of commit %s: %w", commit, gerror(gerr))
	}
	return &MutableTree{t: t, owned: true}, nil
}

// MergeOptions tune Txn.MergeCommit.
type MergeOptions struct {
	// DropNew are directories (relative paths, e.g. "var") under which only
	// the entries the tree already has are merged; new ones are left out.
	DropNew []string
}

// ErrMergeDiverges is what a MergeCommit that would not give the tree a
// union checkout gives wraps (see MergeDivergesError).
var ErrMergeDiverges = errors.New("the merge would differ from a union checkout")

// MergeDivergesError is a path where merging a commit into a tree would not
// give what a union-identical checkout of the commit over a checkout of
// the tree gives: a file over a different file, a directory over a file or
// a symbolic link (which a checkout follows), a file over a directory. The
// tree is partly merged then and must be dropped.
type MergeDivergesError struct {
	Commit, Path string
}

// Error names the commit and the path.
func (e *MergeDivergesError) Error() string {
	return fmt.Sprintf("merge commit %s: /%s differs from what the tree has there: build the tree from a checkout instead", short12(e.Commit), e.Path)
}

// Unwrap makes errors.Is(err, ErrMergeDiverges) true.
func (e *MergeDivergesError) Unwrap() error { return ErrMergeDiverges }

func short12(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// MergeCommit merges the tree of commit into m as
// `ostree checkout --union-identical` of commit over a checkout of m would:
// a directory m has keeps its metadata, a new one takes commit's, a new file
// is added, a file m has with the same object stays. Where the result would
// differ it stops with a *MergeDivergesError. It reads only the directories
// both trees have, and writes nothing.
func (t *Txn) MergeCommit(ctx context.Context, m *MutableTree, commit string, opts MergeOptions) error {
	if !t.open {
		return errors.New("merge a commit: the transaction is finished")
	}
	ccommit := C.CString(commit)
	defer cfree(ccommit)
	cdrop := cstrv(append([]string{}, opts.DropNew...))
	defer freeStrv(cdrop, len(opts.DropNew))
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	c := newCancellable(ctx)
	defer c.free()
	var path *C.char
	var gerr *C.GError
	switch C.hc_mtree_merge_commit(t.r.repo, m.t, ccommit, cdrop, &path, c.c, &gerr) {
	case 1:
		return nil
	case 2:
		return &MergeDivergesError{Commit: commit, Path: gstring(path)}
	default:
		return fmt.Errorf("merge commit %s into the tree: %w", commit, gerror(gerr))
	}
}

// CommitDir writes the directory dir and a commit of it in the
// transaction, as Repo.Commit does in a transaction of its own; opts.Ref
// moves only when the transaction commits.
func (t *Txn) CommitDir(ctx context.Context, dir string, opts CommitOptions) (string, error) {
	if !t.open {
		return "", errors.New("commit a directory: the transaction is finished")
	}
	cdir := C.CString(dir)
	defer cfree(cdir)
	co := newCCommit(opts)
	defer co.free()
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	c := newCancellable(ctx)
	defer c.free()
	var out *C.char
	var gerr *C.GError
	if C.hc_commit_dir_in_txn(t.r.repo, cdir, co.parent, co.subject, co.keys, co.values, co.n, co.ts, co.ref, opts.Devino.ptr(), &out, c.c, &gerr) == 0 {
		return "", fmt.Errorf("commit %s: %w", dir, gerror(gerr))
	}
	return gstring(out), nil
}

// ReplaceDir makes the directory path (relative; its parents must be
// directories of m) of m the directory dir on disk, read as Repo.Commit
// reads a tree (modes, owners, extended attributes), its objects written in
// the transaction.
func (t *Txn) ReplaceDir(ctx context.Context, m *MutableTree, path, dir string) error {
	if !t.open {
		return errors.New("replace a directory of a tree: the transaction is finished")
	}
	cpath, cdir := C.CString(path), C.CString(dir)
	defer cfree(cpath)
	defer cfree(cdir)
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.hc_mtree_replace_dir(t.r.repo, m.t, cpath, cdir, c.c, &gerr) == 0 {
		return fmt.Errorf("put %s at /%s of the tree: %w", dir, path, gerror(gerr))
	}
	return nil
}

// ReadCommitFile reads the regular file path (relative) of commit, with its
// owner, group and mode (permission bits with setuid, setgid and sticky). A
// missing file is an error that wraps ErrNotFound.
func (r *Repo) ReadCommitFile(ctx context.Context, commit, path string) ([]byte, FileMeta, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ccommit, cpath := C.CString(commit), C.CString(path)
	defer cfree(ccommit)
	defer cfree(cpath)
	c := newCancellable(ctx)
	defer c.free()
	var data *C.char
	var n C.gsize
	var uid, gid, mode C.guint32
	var gerr *C.GError
	if C.hc_read_commit_file(r.repo, ccommit, cpath, &data, &n, &uid, &gid, &mode, c.c, &gerr) == 0 {
		return nil, FileMeta{}, fmt.Errorf("read /%s of commit %s: %w", path, short12(commit), gerror(gerr))
	}
	defer C.g_free(C.gpointer(data))
	return C.GoBytes(unsafe.Pointer(data), C.int(n)), FileMeta{UID: uint32(uid), GID: uint32(gid), Mode: uint32(mode) & 0o7777}, nil
}

// EntryKind is what a name is in a MutableTree.
type EntryKind int

// Entry kinds.
const (
	// NoEntry: the name is not there.
	NoEntry EntryKind = iota
	// FileEntry: a file or a symbolic link.
	FileEntry
	// DirEntry: a directory.
	DirEntry
)

// Lookup says what name is in m.
func (m *MutableTree) Lookup(name string) (EntryKind, error) {
	cname := C.CString(name)
	defer cfree(cname)
	var gerr *C.GError
	switch k := C.hc_mtree_lookup_kind(m.t, cname, &gerr); k {
	case 0, 1, 2:
		return EntryKind(k), nil
	default:
		return NoEntry, fmt.Errorf("tree entry %q: %w", name, gerror(gerr))
	}
}

// Remove takes name (a file or a whole directory) out of m; a missing name
// is not an error.
func (m *MutableTree) Remove(name string) error {
	cname := C.CString(name)
	defer cfree(cname)
	var gerr *C.GError
	if C.ostree_mutable_tree_remove(m.t, cname, C.TRUE, &gerr) == 0 {
		return fmt.Errorf("remove tree entry %q: %w", name, gerror(gerr))
	}
	return nil
}
