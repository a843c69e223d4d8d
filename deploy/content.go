package deploy

// #include <stdlib.h>
// #include "content.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/cgo"
	"strings"
	"unsafe"
)

// Txn is an open repository transaction: objects and commits written
// through it are staged, and the refs set with SetRef move, only when Commit
// succeeds (one sync for everything written). Abort drops it all. Only one
// transaction can be open on a repository at a time, and nothing else may
// commit to the repository (Commit, a pull) while it is open.
type Txn struct {
	r       *Repo
	open    bool
	dirmeta map[string]string // directory metadata objects written, by their key
}

// FileMeta is what a repository object records of a file besides its content.
type FileMeta struct {
	UID, GID uint32
	// Mode is the permission bits with the setuid, setgid and sticky bits
	// (07777); the file type is implied by the call.
	Mode uint32
	// Xattrs are the extended attributes, stored in this order.
	Xattrs []Xattr
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// BeginTransaction opens a transaction on the repository (libostree's
// prepare_transaction). Finish it with Commit or Abort.
func (r *Repo) BeginTransaction(ctx context.Context) (*Txn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.ostree_repo_prepare_transaction(r.repo, nil, c.c, &gerr) == 0 {
		return nil, fmt.Errorf("begin a transaction on repo %s: %w", r.path, gerror(gerr))
	}
	return &Txn{r: r, open: true, dirmeta: map[string]string{}}, nil
}

// Commit makes everything written in the transaction durable (one syncfs)
// and moves its refs.
func (t *Txn) Commit(ctx context.Context) error {
	if !t.open {
		return errors.New("commit a transaction: it is already finished")
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.ostree_repo_commit_transaction(t.r.repo, nil, c.c, &gerr) == 0 {
		err := gerror(gerr)
		C.ostree_repo_abort_transaction(t.r.repo, nil, nil)
		t.open = false
		return fmt.Errorf("commit the transaction on repo %s: %w", t.r.path, err)
	}
	t.open = false
	return nil
}

// Abort drops the transaction if it is still open: no ref moves, and the
// staged objects are left for libostree to remove. It is safe to call after
// Commit (it does nothing then), so it can be deferred.
func (t *Txn) Abort() {
	if !t.open {
		return
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	C.ostree_repo_abort_transaction(t.r.repo, nil, nil)
	t.open = false
}

// contentReader is the Go side of a content stream libostree reads.
type contentReader struct {
	r   io.Reader
	err error
}

//export hcGoRead
func hcGoRead(handle C.uintptr_t, buf unsafe.Pointer, count C.size_t) C.long {
	cr := cgo.Handle(handle).Value().(*contentReader)
	if count == 0 {
		return 0
	}
	p := unsafe.Slice((*byte)(buf), int(count))
	for {
		n, err := cr.r.Read(p)
		if n > 0 {
			return C.long(n)
		}
		if err == io.EOF {
			return 0
		}
		if err != nil {
			cr.err = err
			return -1
		}
	}
}

// WriteFile writes a regular file object of size bytes read from content
// and returns its checksum. An object that is already in the repository is
// not stored twice.
func (t *Txn) WriteFile(ctx context.Context, meta FileMeta, size int64, content io.Reader) (string, error) {
	cr := &contentReader{r: io.LimitReader(content, size)}
	h := cgo.NewHandle(cr)
	defer h.Delete()
	csum, err := t.writeFile(ctx, meta, nil, size, C.uintptr_t(h))
	if cr.err != nil {
		return "", fmt.Errorf("write a file object: %w", cr.err)
	}
	return csum, err
}

// WriteSymlink writes a symbolic link object to target and returns its checksum.
func (t *Txn) WriteSymlink(ctx context.Context, meta FileMeta, target string) (string, error) {
	ctarget := C.CString(target)
	defer cfree(ctarget)
	return t.writeFile(ctx, meta, ctarget, 0, 0)
}

func (t *Txn) writeFile(ctx context.Context, meta FileMeta, target *C.char, size int64, handle C.uintptr_t) (string, error) {
	if !t.open {
		return "", errors.New("write a file object: the transaction is finished")
	}
	x := newXattrs(meta.Xattrs)
	defer x.free()
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	c := newCancellable(ctx)
	defer c.free()
	var out *C.char
	var gerr *C.GError
	if C.hc_write_file(t.r.repo, C.guint32(meta.UID), C.guint32(meta.GID), C.guint32(meta.Mode), target, x.v, C.guint64(size), handle, &out, c.c, &gerr) == 0 {
		return "", fmt.Errorf("write a file object: %w", gerror(gerr))
	}
	return gstring(out), nil
}

// WriteDirMeta writes (once per transaction for the same metadata) the
// directory metadata object of meta and returns its checksum.
func (t *Txn) WriteDirMeta(ctx context.Context, meta FileMeta) (string, error) {
	var key strings.Builder
	fmt.Fprintf(&key, "%d:%d:%o", meta.UID, meta.GID, meta.Mode)
	for _, x := range meta.Xattrs {
		fmt.Fprintf(&key, "\x00%s=%x", x.Name, x.Value)
	}
	if csum, ok := t.dirmeta[key.String()]; ok {
		return csum, nil
	}
	if !t.open {
		return "", errors.New("write a directory metadata object: the transaction is finished")
	}
	x := newXattrs(meta.Xattrs)
	defer x.free()
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	c := newCancellable(ctx)
	defer c.free()
	var out *C.char
	var gerr *C.GError
	if C.hc_write_dirmeta(t.r.repo, C.guint32(meta.UID), C.guint32(meta.GID), C.guint32(meta.Mode), x.v, &out, c.c, &gerr) == 0 {
		return "", fmt.Errorf("write a directory metadata object: %w", gerror(gerr))
	}
	csum := gstring(out)
	t.dirmeta[key.String()] = csum
	return csum, nil
}

// CommitTree writes the tree m (its directories must all have metadata,
// SetMetadata) and a commit of it, and sets opts.Ref to the commit when the
// transaction commits. opts.Devino is not used.
func (t *Txn) CommitTree(ctx context.Context, m *MutableTree, opts CommitOptions) (string, error) {
	if !t.open {
		return "", errors.New("commit a tree: the transaction is finished")
	}
	co := newCCommit(opts)
	defer co.free()
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	c := newCancellable(ctx)
	defer c.free()
	var out *C.char
	var gerr *C.GError
	if C.hc_commit_mtree(t.r.repo, m.t, co.parent, co.subject, co.keys, co.values, co.n, co.ts, co.ref, &out, c.c, &gerr) == 0 {
		return "", fmt.Errorf("commit %q: %w", opts.Subject, gerror(gerr))
	}
	return gstring(out), nil
}

// SetRef points ref at commit (or deletes it, commit "") when the
// transaction commits.
func (t *Txn) SetRef(ref, commit string) {
	cref, ccommit := C.CString(ref), cstr(commit, true)
	defer cfree(cref)
	defer cfree(ccommit)
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	C.ostree_repo_transaction_set_ref(t.r.repo, nil, cref, ccommit)
}

// MutableTree is a directory tree being assembled in memory from objects of
// the repository (libostree's OstreeMutableTree), to be written by
// Txn.CommitTree. The root is freed with Close; its subdirectories (Dir)
// live as long as the root.
type MutableTree struct {
	t     *C.OstreeMutableTree
	owned bool
}

// NewMutableTree returns an empty tree.
func NewMutableTree() *MutableTree {
	return &MutableTree{t: C.ostree_mutable_tree_new(), owned: true}
}

// Close frees a tree made by NewMutableTree.
func (m *MutableTree) Close() {
	if m.owned && m.t != nil {
		C.g_object_unref(C.gpointer(m.t))
		m.t = nil
	}
}

// Dir returns the subdirectory name, made if missing.
func (m *MutableTree) Dir(name string) (*MutableTree, error) {
	cname := C.CString(name)
	defer cfree(cname)
	var gerr *C.GError
	sub := C.hc_mtree_ensure_dir(m.t, cname, &gerr)
	if sub == nil {
		return nil, fmt.Errorf("tree directory %q: %w", name, gerror(gerr))
	}
	return &MutableTree{t: sub}, nil
}

// SetMetadata sets the directory's metadata object (WriteDirMeta).
func (m *MutableTree) SetMetadata(checksum string) {
	c := C.CString(checksum)
	defer cfree(c)
	C.ostree_mutable_tree_set_metadata_checksum(m.t, c)
}

// SetFile makes name the file (or symlink) object checksum.
func (m *MutableTree) SetFile(name, checksum string) error {
	cname, ccsum := C.CString(name), C.CString(checksum)
	defer cfree(cname)
	defer cfree(ccsum)
	var gerr *C.GError
	if C.ostree_mutable_tree_replace_file(m.t, cname, ccsum, &gerr) == 0 {
		return fmt.Errorf("tree file %q: %w", name, gerror(gerr))
	}
	return nil
}

// cxattrs is a GVariant of extended attributes for one call.
type cxattrs struct{ v *C.GVariant }

func newXattrs(xs []Xattr) cxattrs {
	if len(xs) == 0 {
		return cxattrs{}
	}
	names := make([]string, len(xs))
	for i, x := range xs {
		names[i] = x.Name
	}
	cnames := cstrv(names)
	defer freeStrv(cnames, len(names))
	vals := (**C.char)(C.malloc(C.size_t(len(xs)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(vals))
	lens := (*C.size_t)(C.malloc(C.size_t(len(xs)) * C.size_t(unsafe.Sizeof(C.size_t(0)))))
	defer C.free(unsafe.Pointer(lens))
	va, la := unsafe.Slice(vals, len(xs)), unsafe.Slice(lens, len(xs))
	for i, x := range xs {
		va[i] = (*C.char)(C.CBytes(x.Value))
		la[i] = C.size_t(len(x.Value))
	}
	defer func() {
		for i := range xs {
			C.free(unsafe.Pointer(va[i]))
		}
	}()
	return cxattrs{v: C.hc_xattrs_new(cnames, vals, lens, C.int(len(xs)))}
}

func (x cxattrs) free() {
	if x.v != nil {
		C.g_variant_unref(x.v)
	}
}
