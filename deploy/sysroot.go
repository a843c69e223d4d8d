package deploy

// #include <stdlib.h>
// #include "helpers.h"
import "C"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	godbus "github.com/godbus/dbus/v5"
)

var (
	// ErrNotSysroot means the directory given is not an OSTree sysroot.
	ErrNotSysroot = errors.New("not an OSTree sysroot")
	// ErrNotFound means a ref, commit, remote or deployment does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotLocked means a change was attempted without holding the sysroot lock.
	ErrNotLocked = errors.New("sysroot lock not held")
	// ErrNoRollback means there is no deployment to roll back to.
	ErrNoRollback = errors.New("no rollback deployment")
)

// BaseCommitKey is the commit metadata key naming the base commit of a local
// commit that hostctl derived from it (a layered tree).
const BaseCommitKey = "hostctl.base-commit"

// Sysroot is an OSTree sysroot: a directory holding ostree/repo, ostree/deploy
// and boot. It is safe for concurrent use; calls into libostree are serialized.
type Sysroot struct {
	mu     sync.Mutex
	path   string
	sr     *C.OstreeSysroot
	repo   *C.OstreeRepo
	locked bool

	// pullHelper is the program Pull re-executes (PullHelperArg), "" to pull in process.
	pullHelper string
	// pullStall is how long a pull helper may go without progress before it is killed.
	pullStall time.Duration
}

// Open loads the sysroot at path. "/" opens the running host's sysroot, whose
// booted deployment is then known. Any other directory is an offline sysroot
// (an installer's target, an image build, a test), where no deployment is booted.
func Open(ctx context.Context, path string) (*Sysroot, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sysroot %s: %w", path, err)
	}
	for _, p := range []string{"ostree/repo/config", "ostree/deploy"} {
		if _, err := os.Stat(filepath.Join(abs, p)); err != nil {
			return nil, fmt.Errorf("open sysroot %s: %w (missing %s; create one with `ostree admin init-fs` or point --sysroot at an existing sysroot)", abs, ErrNotSysroot, p)
		}
	}
	cpath := C.CString(abs)
	defer cfree(cpath)
	file := C.g_file_new_for_path(cpath)
	defer C.g_object_unref(C.gpointer(file))

	s := &Sysroot{path: abs, sr: C.ostree_sysroot_new(file)}
	if abs == "/" {
		// On a booted host /sysroot is read-only; libostree remounts it
		// read-write in our private mount namespace (hostd runs with MountFlags=slave).
		C.ostree_sysroot_set_mount_namespace_in_use(s.sr)
	}
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.ostree_sysroot_load(s.sr, c.c, &gerr) == 0 {
		err := gerror(gerr)
		C.g_object_unref(C.gpointer(s.sr))
		return nil, fmt.Errorf("load sysroot %s: %w", abs, err)
	}
	if C.ostree_sysroot_get_repo(s.sr, &s.repo, c.c, &gerr) == 0 {
		err := gerror(gerr)
		C.g_object_unref(C.gpointer(s.sr))
		return nil, fmt.Errorf("open repo of sysroot %s: %w", abs, err)
	}
	return s, nil
}

// Path is the sysroot's directory.
func (s *Sysroot) Path() string { return s.path }

// RepoPath is the directory of the sysroot's OSTree repository.
func (s *Sysroot) RepoPath() string { return filepath.Join(s.path, "ostree", "repo") }

// Close releases the sysroot, unlocking it if it is locked.
func (s *Sysroot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sr == nil {
		return nil
	}
	if s.locked {
		C.ostree_sysroot_unlock(s.sr)
		s.locked = false
	}
	if s.repo != nil {
		C.g_object_unref(C.gpointer(s.repo))
		s.repo = nil
	}
	C.g_object_unref(C.gpointer(s.sr))
	s.sr = nil
	return nil
}

// TryLock takes the sysroot lock (ostree's, shared with `ostree admin` and
// rpm-ostree) without waiting. It reports false when another process holds it.
func (s *Sysroot) TryLock() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locked {
		return true, nil
	}
	var acquired C.gboolean
	var gerr *C.GError
	if C.ostree_sysroot_try_lock(s.sr, &acquired, &gerr) == 0 {
		return false, fmt.Errorf("lock sysroot %s: %w", s.path, gerror(gerr))
	}
	s.locked = acquired != 0
	return s.locked, nil
}

// Unlock releases the sysroot lock.
func (s *Sysroot) Unlock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locked {
		C.ostree_sysroot_unlock(s.sr)
		s.locked = false
	}
}

// reload re-reads the sysroot when it changed on disk. Callers hold s.mu.
func (s *Sysroot) reload(ctx context.Context) error {
	c := newCancellable(ctx)
	defer c.free()
	var changed C.gboolean
	var gerr *C.GError
	if C.ostree_sysroot_load_if_changed(s.sr, &changed, c.c, &gerr) == 0 {
		return fmt.Errorf("reload sysroot %s: %w", s.path, gerror(gerr))
	}
	return nil
}

// Deployment is one deployment of the sysroot, as libostree records it, with
// the metadata of its commit.
type Deployment struct {
	// Index is the position in the boot order: 0 is the default.
	Index int
	// OSName is the stateroot the deployment belongs to.
	OSName string
	// Checksum is the deployed commit.
	Checksum string
	// Serial tells deployments of the same commit apart.
	Serial int
	// BootChecksum identifies the kernel and initramfs.
	BootChecksum string
	// Version is the commit's "version" metadata, if any.
	Version string
	// Timestamp is the commit's timestamp.
	Timestamp time.Time
	// BaseChecksum is the base commit when the deployed commit is a local one derived from it.
	BaseChecksum string
	// Origin is what the deployment follows.
	Origin *Origin
	// Kargs is the kernel command line of its boot entry.
	Kargs string
	// Booted, Default, Pinned and Staged describe its state.
	Booted, Default, Pinned, Staged bool
	// Rollback: it is the deployment Rollback makes the default (see
	// RollbackIndex); at most one deployment is.
	Rollback bool
	// FinalizationLocked, for a staged deployment, says that the
	// finalization lock (StagedLockFile) keeps it out of the boot entries
	// at shutdown.
	FinalizationLocked bool
	// Path is the deployment's checkout directory.
	Path string
}

// ID names the deployment the way rpm-ostree does: OSNAME-CHECKSUM.SERIAL.
func (d Deployment) ID() string { return fmt.Sprintf("%s-%s.%d", d.OSName, d.Checksum, d.Serial) }

// Refspec is the origin's refspec, or "" when the origin has none.
func (d Deployment) Refspec() string {
	if d.Origin == nil {
		return ""
	}
	return d.Origin.Refspec()
}

// Deployments lists the deployments, default first.
func (s *Sysroot) Deployments(ctx context.Context) ([]Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return s.deploymentsLocked()
}

func (s *Sysroot) deploymentsLocked() ([]Deployment, error) {
	raw := s.rawDeployments()
	booted := C.ostree_sysroot_get_booted_deployment(s.sr)
	out := make([]Deployment, 0, len(raw))
	for i, d := range raw {
		dep, err := s.describe(d)
		if err != nil {
			return nil, err
		}
		dep.Index = i
		dep.Default = i == 0
		dep.Booted = booted != nil && C.ostree_deployment_equal(C.gconstpointer(unsafe.Pointer(d)), C.gconstpointer(unsafe.Pointer(booted))) != 0
		out = append(out, dep)
	}
	if i := RollbackIndex(out); i >= 0 {
		out[i].Rollback = true
	}
	return out, nil
}

// RollbackIndex is the position of the deployment Rollback makes the
// default, or -1 when there is none, as `rpm-ostree rollback` picks it: the
// current deployment is the booted one (or, nothing booted, the default);
// when a deployment is pending above it, the current one itself; otherwise
// the first deployment after it of the same OS. deps are in boot order.
func RollbackIndex(deps []Deployment) int {
	if len(deps) == 0 {
		return -1
	}
	cur := 0
	for i, d := range deps {
		if d.Booted {
			cur = i
		}
	}
	if cur > 0 {
		return cur // a pending deployment sits above the booted one
	}
	for i := cur + 1; i < len(deps); i++ {
		if deps[i].OSName == deps[cur].OSName {
			return i
		}
	}
	return -1
}

// rawDeployments returns libostree's deployment objects, default first. They
// stay owned by the sysroot: valid until its next load.
func (s *Sysroot) rawDeployments() []*C.OstreeDeployment {
	arr := C.ostree_sysroot_get_deployments(s.sr)
	defer C.g_ptr_array_unref(arr)
	out := make([]*C.OstreeDeployment, 0, arr.len)
	for i := C.guint(0); i < arr.len; i++ {
		out = append(out, C.hc_deployment_at(arr, i))
	}
	return out
}

func (s *Sysroot) describe(d *C.OstreeDeployment) (Deployment, error) {
	dep := Deployment{
		OSName:       C.GoString(C.ostree_deployment_get_osname(d)),
		Checksum:     C.GoString(C.ostree_deployment_get_csum(d)),
		Serial:       int(C.ostree_deployment_get_deployserial(d)),
		BootChecksum: C.GoString(C.ostree_deployment_get_bootcsum(d)),
		Pinned:       C.ostree_deployment_is_pinned(d) != 0,
		Staged:       C.ostree_deployment_is_staged(d) != 0,
		Kargs:        gstring(C.hc_deployment_options(d)),
		Path:         filepath.Join(s.path, gstring(C.ostree_sysroot_get_deployment_dirpath(s.sr, d))),
	}
	if text := gstring(C.hc_deployment_origin(d)); text != "" {
		o, err := ParseOrigin([]byte(text))
		if err != nil {
			return dep, fmt.Errorf("deployment %s: %w", dep.ID(), err)
		}
		dep.Origin = o
	}
	info, err := s.commitInfoLocked(dep.Checksum)
	if err != nil {
		return dep, fmt.Errorf("deployment %s: %w", dep.ID(), err)
	}
	dep.Version, dep.Timestamp, dep.BaseChecksum = info.Version, info.Timestamp, info.Base
	dep.FinalizationLocked = dep.Staged && FinalizationLocked()
	return dep, nil
}

// CommitInfo is the metadata of a commit that hostctl shows and compares.
type CommitInfo struct {
	Checksum  string
	Version   string
	Timestamp time.Time
	Parent    string
	// Base is the base commit of a local derived commit (BaseCommitKey), or "".
	Base string
}

// CommitInfo reads a commit's metadata from the sysroot's repo.
func (s *Sysroot) CommitInfo(checksum string) (CommitInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitInfoLocked(checksum)
}

// CommitMetadata reads a commit's metadata (its a{sv}) as D-Bus values:
// libostree's GVariants, encoded by GDBus and decoded by godbus.
func (s *Sysroot) CommitMetadata(checksum string) (map[string]godbus.Variant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ccsum := C.CString(checksum)
	defer cfree(ccsum)
	var blob *C.guchar
	var size C.gsize
	var gerr *C.GError
	if C.hc_commit_meta_blob(s.repo, ccsum, &blob, &size, &gerr) == 0 {
		return nil, fmt.Errorf("read the metadata of commit %s: %w", checksum, gerror(gerr))
	}
	data := C.GoBytes(unsafe.Pointer(blob), C.int(size))
	C.g_free(C.gpointer(blob))
	msg, err := godbus.DecodeMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode the metadata of commit %s: %w", checksum, err)
	}
	var meta map[string]godbus.Variant
	if err := godbus.Store(msg.Body, &meta); err != nil {
		return nil, fmt.Errorf("decode the metadata of commit %s: %w", checksum, err)
	}
	return meta, nil
}

func (s *Sysroot) commitInfoLocked(checksum string) (CommitInfo, error) {
	ccsum := C.CString(checksum)
	defer cfree(ccsum)
	ckey := C.CString(BaseCommitKey)
	defer cfree(ckey)
	var version, parent, base *C.char
	var ts C.guint64
	var gerr *C.GError
	if C.hc_commit_info(s.repo, ccsum, &version, &ts, &parent, ckey, &base, &gerr) == 0 {
		return CommitInfo{}, fmt.Errorf("load commit %s: %w", checksum, gerror(gerr))
	}
	return CommitInfo{
		Checksum:  checksum,
		Version:   gstring(version),
		Timestamp: time.Unix(int64(ts), 0).UTC(),
		Parent:    gstring(parent),
		Base:      gstring(base),
	}, nil
}

// Resolve returns the commit a ref (or REMOTE:REF, or a checksum) names in the
// sysroot's repo. A ref that does not exist gives ErrNotFound.
func (s *Sysroot) Resolve(ref string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resolveLocked(ref)
}

func (s *Sysroot) resolveLocked(ref string) (string, error) { return resolveRev(s.repo, ref) }

// resolveRev resolves a ref, REMOTE:REF or checksum in repo; the caller holds its lock.
func resolveRev(repo *C.OstreeRepo, ref string) (string, error) {
	cref := C.CString(ref)
	defer cfree(cref)
	var out *C.char
	var gerr *C.GError
	if C.ostree_repo_resolve_rev(repo, cref, 1, &out, &gerr) == 0 {
		return "", fmt.Errorf("resolve %s: %w", ref, gerror(gerr))
	}
	if out == nil {
		return "", fmt.Errorf("resolve %s: %w", ref, ErrNotFound)
	}
	return gstring(out), nil
}

// BootVersion is the loader version libostree last wrote: /boot/loader must
// point at loader.BootVersion.
func (s *Sysroot) BootVersion(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(ctx); err != nil {
		return 0, err
	}
	return int(C.ostree_sysroot_get_bootversion(s.sr)), nil
}
