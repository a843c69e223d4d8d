package deploy

// #include <stdlib.h>
// #include "helpers.h"
import "C"

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Repo is an OSTree repository: the sysroot's (Sysroot.Repo), whose objects
// deployments hardlink to, or any other (OpenRepo). Calls are serialized
// with those of the sysroot it belongs to.
type Repo struct {
	mu    *sync.Mutex
	repo  *C.OstreeRepo
	path  string
	owned bool
}

// Repo returns the sysroot's repository. It stays valid until the sysroot is closed.
func (s *Sysroot) Repo() *Repo {
	return &Repo{mu: &s.mu, repo: s.repo, path: s.RepoPath()}
}

// OpenRepo opens the repository at path.
func OpenRepo(ctx context.Context, path string) (*Repo, error) {
	cpath := C.CString(path)
	defer cfree(cpath)
	file := C.g_file_new_for_path(cpath)
	defer C.g_object_unref(C.gpointer(file))
	r := C.ostree_repo_new(file)
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.ostree_repo_open(r, c.c, &gerr) == 0 {
		C.g_object_unref(C.gpointer(r))
		return nil, fmt.Errorf("open repo %s: %w", path, gerror(gerr))
	}
	return &Repo{mu: &sync.Mutex{}, repo: r, path: path, owned: true}, nil
}

// Close releases a repository opened with OpenRepo.
func (r *Repo) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.owned && r.repo != nil {
		C.g_object_unref(C.gpointer(r.repo))
		r.repo = nil
	}
}

// Path is the repository's directory.
func (r *Repo) Path() string { return r.path }

// CommitOptions describe a new commit.
type CommitOptions struct {
	// Ref is pointed at the new commit in the same transaction, when set.
	Ref string
	// Parent is the parent commit, or "".
	Parent string
	// Subject is the commit message.
	Subject string
	// Metadata is stored as string metadata (e.g. "version", BaseCommitKey).
	Metadata map[string]string
	// Timestamp is the commit time; zero means now.
	Timestamp time.Time
	// Devino, filled by the checkouts that built dir, lets the commit take
	// their hardlinked files as the objects they are instead of reading them.
	Devino *DevinoCache
}

// DevinoCache maps (device, inode) of hardlink-checked-out files to their
// objects, so committing a tree assembled from checkouts does not read and
// checksum every file again. Use one for one assembly: checkouts, then the
// commit, then Close.
type DevinoCache struct {
	c *C.OstreeRepoDevInoCache
}

// NewDevinoCache returns an empty cache.
func NewDevinoCache() *DevinoCache { return &DevinoCache{c: C.ostree_repo_devino_cache_new()} }

// Close frees the cache.
func (d *DevinoCache) Close() {
	if d != nil && d.c != nil {
		C.ostree_repo_devino_cache_unref(d.c)
		d.c = nil
	}
}

func (d *DevinoCache) ptr() *C.OstreeRepoDevInoCache {
	if d == nil {
		return nil
	}
	return d.c
}

// Commit writes the directory dir as a commit, keeping modes, owners and
// extended attributes. Files that are hardlinks to the repo's own objects
// (a hardlink checkout) are recognised without reading them again. Nothing
// becomes visible (no ref moves) unless the whole commit is written.
func (r *Repo) Commit(ctx context.Context, dir string, opts CommitOptions) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cdir := C.CString(dir)
	defer cfree(cdir)
	co := newCCommit(opts)
	defer co.free()
	c := newCancellable(ctx)
	defer c.free()
	var out *C.char
	var gerr *C.GError
	if C.hc_commit_dir(r.repo, cdir, co.parent, co.subject, co.keys, co.values, co.n, co.ts, co.ref, opts.Devino.ptr(), &out, c.c, &gerr) == 0 {
		return "", fmt.Errorf("commit %s: %w", dir, gerror(gerr))
	}
	return gstring(out), nil
}

// Overwrite says what a checkout does with files already in the destination.
type Overwrite int

// Overwrite modes (libostree's OstreeRepoCheckoutOverwriteMode).
const (
	// OverwriteNone fails on any existing file.
	OverwriteNone Overwrite = 0
	// OverwriteUnion replaces existing files.
	OverwriteUnion Overwrite = 1
	// OverwriteAddFiles only adds new files.
	OverwriteAddFiles Overwrite = 2
	// OverwriteUnionIdentical accepts an existing file only when it is identical.
	OverwriteUnionIdentical Overwrite = 3
)

// CheckoutOptions tune a checkout.
type CheckoutOptions struct {
	// Subpath checks out only this path of the commit.
	Subpath string
	// Overwrite decides what happens with files already in the destination.
	Overwrite Overwrite
	// Whiteouts processes OCI whiteouts (.wh.NAME) while checking out.
	Whiteouts bool
	// Copy copies file contents instead of hardlinking the repo's objects:
	// for trees that will be written to in place.
	Copy bool
	// Devino records the hardlinked files for a later Commit of the tree.
	Devino *DevinoCache
}

// Checkout writes commit to dest. By default files are hardlinks to the
// repo's objects: such a tree must never be written to in place (replace
// files instead), or every deployment sharing the object changes too.
func (r *Repo) Checkout(ctx context.Context, commit, dest string, opts CheckoutOptions) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ccommit, cdest, csub := C.CString(commit), C.CString(dest), cstr(opts.Subpath, true)
	defer cfree(ccommit)
	defer cfree(cdest)
	defer cfree(csub)
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.hc_checkout(r.repo, ccommit, cdest, csub, C.int(opts.Overwrite), cbool(opts.Whiteouts), cbool(opts.Copy), opts.Devino.ptr(), c.c, &gerr) == 0 {
		return fmt.Errorf("check out %s to %s: %w", commit, dest, gerror(gerr))
	}
	return nil
}

// Refs lists the local refs that start with prefix, with their commits.
func (r *Repo) Refs(ctx context.Context, prefix string) (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cprefix := cstr(prefix, true)
	defer cfree(cprefix)
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	arr := C.hc_list_refs(r.repo, cprefix, c.c, &gerr)
	if arr == nil {
		return nil, fmt.Errorf("list refs %s: %w", prefix, gerror(gerr))
	}
	defer C.g_strfreev(arr)
	out := map[string]string{}
	for _, s := range strv(arr) {
		ref, commit, _ := strings.Cut(s, "\t")
		out[ref] = commit
	}
	return out, nil
}

// Resolve returns the commit ref names, or ErrNotFound.
func (r *Repo) Resolve(ref string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return resolveRev(r.repo, ref)
}

// SetRef points ref at commit at once; commit "" deletes the ref.
func (r *Repo) SetRef(ctx context.Context, ref, commit string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cref, ccommit := C.CString(ref), cstr(commit, true)
	defer cfree(cref)
	defer cfree(ccommit)
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.ostree_repo_set_ref_immediate(r.repo, nil, cref, ccommit, c.c, &gerr) == 0 {
		return fmt.Errorf("set ref %s: %w", ref, gerror(gerr))
	}
	return nil
}

// CommitMetadata returns a commit's subject and its string metadata.
func (r *Repo) CommitMetadata(commit string) (subject string, meta map[string]string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ccommit := C.CString(commit)
	defer cfree(ccommit)
	var csubject *C.char
	var gerr *C.GError
	arr := C.hc_commit_metadata(r.repo, ccommit, &csubject, &gerr)
	if arr == nil {
		return "", nil, fmt.Errorf("read commit %s: %w", commit, gerror(gerr))
	}
	defer C.g_strfreev(arr)
	meta = map[string]string{}
	for _, s := range strv(arr) {
		k, v, _ := strings.Cut(s, "\t")
		meta[k] = v
	}
	return gstring(csubject), meta, nil
}

// HasCommit tells whether the commit object is in the repo.
func (r *Repo) HasCommit(commit string) bool {
	_, _, err := r.CommitMetadata(commit)
	return err == nil
}

// strv copies a NULL-terminated char** into Go strings.
func strv(arr **C.char) []string {
	var out []string
	for p := arr; *p != nil; p = (**C.char)(unsafe.Add(unsafe.Pointer(p), unsafe.Sizeof(*p))) {
		out = append(out, C.GoString(*p))
	}
	return out
}

// HasCompleteCommit tells whether the commit and every object it refers to
// are in the repo (not only its metadata, as after a --check or a partial pull).
func (r *Repo) HasCompleteCommit(commit string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ccommit := C.CString(commit)
	defer cfree(ccommit)
	var state C.OstreeRepoCommitState
	var gerr *C.GError
	if C.ostree_repo_load_commit(r.repo, ccommit, nil, &state, &gerr) == 0 {
		C.g_error_free(gerr)
		return false
	}
	return state&C.OSTREE_REPO_COMMIT_STATE_PARTIAL == 0
}
