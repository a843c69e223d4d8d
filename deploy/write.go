package deploy

// #include <stdlib.h>
// #include "helpers.h"
import "C"

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"
)

// DeployOptions describe a new deployment.
type DeployOptions struct {
	// OSName is the stateroot; "" means the one of the merge deployment.
	OSName string
	// Revision is the commit to deploy.
	Revision string
	// Origin is recorded in the deployment's origin file.
	Origin *Origin
	// Kargs replaces the kernel arguments; nil keeps the merge deployment's.
	Kargs []string
	// BeforeSwap runs once the new deployment is written beside the old ones
	// and before the deployment list is swapped: up to then nothing the host
	// boots has changed. An error from it abandons the new deployment.
	BeforeSwap func() error
	// DeferCleanup leaves the removal of the replaced deployment and the
	// repository prune to the caller (Cleanup with no options), for a
	// caller that does it after the user stopped waiting. The swap itself
	// is complete without it: what is left is garbage, never a broken host.
	DeferCleanup bool
	// Stage writes the deployment staged (libostree's stage_tree): it
	// becomes the default, and enters the boot entries when the host shuts
	// down (ostree-finalize-staged.service). Needs a booted host
	// (ErrNotBooted otherwise); the bootloader entries do not change now.
	Stage bool
	// LockFinalization, with Stage, sets the finalization lock
	// (StagedLockFile): the shutdown leaves the staged deployment alone
	// until UnlockFinalization. Without it, a lock left by an earlier
	// staging is removed.
	LockFinalization bool
}

// Deploy checks out Revision as a new deployment with libostree's /etc merge
// from the merge deployment (the booted one, or the default one on a sysroot
// that is not booted), then makes it the default in one bootloader swap,
// keeping the booted (or previous default) deployment as the rollback entry
// and every pinned one. It returns the new default deployment.
func (s *Sysroot) Deploy(ctx context.Context, opts DeployOptions) (Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.locked {
		return Deployment{}, fmt.Errorf("deploy %s: %w", opts.Revision, ErrNotLocked)
	}
	if opts.Origin == nil {
		return Deployment{}, fmt.Errorf("deploy %s: no origin given", opts.Revision)
	}
	if err := s.reload(ctx); err != nil {
		return Deployment{}, err
	}
	osname := opts.OSName
	if osname == "" {
		osname = s.currentOSNameLocked()
		if osname == "" {
			return Deployment{}, fmt.Errorf("deploy %s: the sysroot has no deployment yet: name the stateroot (osname)", opts.Revision)
		}
	}
	cos := C.CString(osname)
	defer cfree(cos)
	merge := C.ostree_sysroot_get_merge_deployment(s.sr, cos)
	if merge != nil {
		defer C.g_object_unref(C.gpointer(merge))
	}
	crev := C.CString(opts.Revision)
	defer cfree(crev)
	origin := opts.Origin.Clone()
	origin.DeleteGroup(GroupTransient) // the old deployment's pin is not the new one's
	corigin := C.CString(string(origin.Marshal()))
	defer cfree(corigin)
	kargs := cstrv(opts.Kargs)
	defer freeStrv(kargs, len(opts.Kargs))
	if opts.Stage {
		return s.stageLocked(ctx, opts, cos, crev, corigin, merge, kargs)
	}

	c := newCancellable(ctx)
	defer c.free()
	var newDep *C.OstreeDeployment
	var gerr *C.GError
	if C.hc_deploy_tree(s.sr, cos, crev, corigin, merge, kargs, &newDep, c.c, &gerr) == 0 {
		return Deployment{}, fmt.Errorf("deploy %s: %w", opts.Revision, gerror(gerr))
	}
	defer C.g_object_unref(C.gpointer(newDep))

	if err := ctx.Err(); err != nil {
		s.cleanupLocked(context.WithoutCancel(ctx))
		return Deployment{}, fmt.Errorf("deploy %s: %w", opts.Revision, err)
	}
	if opts.BeforeSwap != nil {
		if err := opts.BeforeSwap(); err != nil {
			s.cleanupLocked(context.WithoutCancel(ctx))
			return Deployment{}, fmt.Errorf("deploy %s: %w", opts.Revision, err)
		}
	}

	list := []*C.OstreeDeployment{newDep}
	booted := C.ostree_sysroot_get_booted_deployment(s.sr)
	for _, d := range s.rawDeployments() {
		keep := C.ostree_deployment_is_pinned(d) != 0 ||
			C.GoString(C.ostree_deployment_get_osname(d)) != osname ||
			(booted != nil && deploymentEqual(d, booted)) ||
			(booted == nil && merge != nil && deploymentEqual(d, merge))
		if keep {
			list = append(list, d)
		}
	}
	// The swap is not cancellable: once begun it runs to its end.
	if err := s.writeLocked(list); err != nil {
		s.cleanupLocked(context.WithoutCancel(ctx))
		return Deployment{}, fmt.Errorf("deploy %s: %w", opts.Revision, err)
	}
	if !opts.DeferCleanup {
		s.cleanupLocked(context.WithoutCancel(ctx))
	}
	deps, err := s.deploymentsLocked()
	if err != nil {
		return Deployment{}, err
	}
	return deps[0], nil
}

func deploymentEqual(a, b *C.OstreeDeployment) bool {
	return C.ostree_deployment_equal(C.gconstpointer(unsafe.Pointer(a)), C.gconstpointer(unsafe.Pointer(b))) != 0
}

// currentOSNameLocked is the stateroot of the booted deployment, else of the default one.
func (s *Sysroot) currentOSNameLocked() string {
	if d := s.currentLocked(); d != nil {
		return C.GoString(C.ostree_deployment_get_osname(d))
	}
	return ""
}

// currentLocked is the booted deployment, or on a sysroot that is not booted the default one.
func (s *Sysroot) currentLocked() *C.OstreeDeployment {
	if b := C.ostree_sysroot_get_booted_deployment(s.sr); b != nil {
		return b
	}
	if raw := s.rawDeployments(); len(raw) > 0 {
		return raw[0]
	}
	return nil
}

// writeLocked writes the deployment list: the bootloader swap. It is atomic:
// after a crash the host boots the old list or the new one.
func (s *Sysroot) writeLocked(list []*C.OstreeDeployment) error {
	// libostree takes a staged deployment only first in the list (kept
	// staged); anywhere else, or absent, it is unstaged.
	kept := list[:0:0]
	for i, d := range list {
		if i == 0 || C.ostree_deployment_is_staged(d) == 0 {
			kept = append(kept, d)
		}
	}
	list = kept
	var gerr *C.GError
	var p **C.OstreeDeployment
	if len(list) > 0 {
		p = &list[0]
	}
	// list lives in Go memory and holds C pointers only: allowed to pass.
	if C.hc_write_deployments(s.sr, p, C.int(len(list)), nil, &gerr) == 0 {
		return fmt.Errorf("write deployments: %w", gerror(gerr))
	}
	return s.reload(context.Background())
}

// cleanupLocked removes deployment directories and boot files no longer
// listed, and prunes repo objects nothing refers to. Best effort: a failure
// here leaves garbage, never a broken host, and the next cleanup retries.
func (s *Sysroot) cleanupLocked(ctx context.Context) error {
	return s.cleanupThenPruneLocked(ctx, nil)
}

// cleanupThenPruneLocked is cleanupLocked in its two halves, as
// ostree_sysroot_cleanup does them: the deployment directories and boot
// files first, then the repository prune; beforePrune (may be nil) runs in
// between.
func (s *Sysroot) cleanupThenPruneLocked(ctx context.Context, beforePrune func()) error {
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.ostree_sysroot_prepare_cleanup(s.sr, c.c, &gerr) == 0 {
		return fmt.Errorf("cleanup sysroot %s: %w", s.path, gerror(gerr))
	}
	if beforePrune != nil {
		beforePrune()
	}
	if C.hc_sysroot_prune(s.sr, c.c, &gerr) == 0 {
		return fmt.Errorf("prune the repository of sysroot %s: %w", s.path, gerror(gerr))
	}
	return nil
}

// Rollback makes the previous deployment the default, as `rpm-ostree rollback`
// does: when a deployment is pending over the booted one, the booted one
// becomes the default again; otherwise the rollback deployment moves ahead of
// the booted (or, not booted, the default) one. No deployment is rewritten:
// only the boot order changes, in one swap.
func (s *Sysroot) Rollback(ctx context.Context) (Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.locked {
		return Deployment{}, fmt.Errorf("rollback: %w", ErrNotLocked)
	}
	if err := s.reload(ctx); err != nil {
		return Deployment{}, err
	}
	raw := s.rawDeployments()
	if len(raw) == 0 {
		return Deployment{}, fmt.Errorf("rollback: %w: the sysroot has no deployment", ErrNoRollback)
	}
	before, err := s.deploymentsLocked()
	if err != nil {
		return Deployment{}, fmt.Errorf("rollback: %w", err)
	}
	target := RollbackIndex(before)
	if target < 0 {
		return Deployment{}, fmt.Errorf("rollback: %w: only one deployment of this OS exists", ErrNoRollback)
	}
	list := []*C.OstreeDeployment{raw[target]}
	for i, d := range raw {
		if i != target {
			list = append(list, d)
		}
	}
	if err := s.writeLocked(list); err != nil {
		return Deployment{}, fmt.Errorf("rollback: %w", err)
	}
	deps, err := s.deploymentsLocked()
	if err != nil {
		return Deployment{}, err
	}
	return deps[0], nil
}

// CleanupOptions say which deployments a cleanup removes.
type CleanupOptions struct {
	// Pending removes deployments queued above the booted one.
	Pending bool
	// Rollback removes the deployments below the booted (or default) one, except pinned ones.
	Rollback bool
	// BeforePrune, when not nil, runs once the deployment directories and
	// boot files nothing lists are removed, before the repository prune.
	BeforePrune func()
}

// Cleanup removes the deployments opts names, then the files and objects
// nothing refers to any more. It returns the deployments removed.
func (s *Sysroot) Cleanup(ctx context.Context, opts CleanupOptions) ([]Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.locked {
		return nil, fmt.Errorf("cleanup: %w", ErrNotLocked)
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	raw := s.rawDeployments()
	all, err := s.deploymentsLocked()
	if err != nil {
		return nil, err
	}
	cur := s.currentLocked()
	curIdx := 0
	for i, d := range raw {
		if cur != nil && deploymentEqual(d, cur) {
			curIdx = i
		}
	}
	var keep []*C.OstreeDeployment
	var removed []Deployment
	for i, d := range raw {
		drop := (opts.Pending && i < curIdx) ||
			(opts.Rollback && i > curIdx && C.ostree_deployment_is_pinned(d) == 0)
		if drop {
			removed = append(removed, all[i])
		} else {
			keep = append(keep, d)
		}
	}
	if len(removed) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cleanup: %w", err)
		}
		if err := s.writeLocked(keep); err != nil {
			return nil, fmt.Errorf("cleanup: %w", err)
		}
	}
	if err := s.cleanupThenPruneLocked(ctx, opts.BeforePrune); err != nil {
		return removed, err
	}
	return removed, nil
}

// Init makes dir an empty sysroot with one stateroot, as `ostree admin
// init-fs` and `ostree admin os-init` do, and opens it. Installers, image
// builders and tests start from it.
func Init(ctx context.Context, dir, osname string) (*Sysroot, error) {
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"boot", 0o755}, {"dev", 0o755}, {"home", 0o755}, {"proc", 0o755}, {"run", 0o755}, {"sys", 0o755}, {"root", 0o700}, {"tmp", 0o1777}} {
		p := filepath.Join(dir, d.name)
		if err := os.MkdirAll(p, d.mode); err != nil {
			return nil, fmt.Errorf("init sysroot %s: %w", dir, err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return nil, fmt.Errorf("init sysroot %s: %w", dir, err)
		}
	}
	cdir := C.CString(dir)
	defer cfree(cdir)
	file := C.g_file_new_for_path(cdir)
	defer C.g_object_unref(C.gpointer(file))
	sr := C.ostree_sysroot_new(file)
	defer C.g_object_unref(C.gpointer(sr))
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.ostree_sysroot_ensure_initialized(sr, c.c, &gerr) == 0 {
		return nil, fmt.Errorf("init sysroot %s: %w", dir, gerror(gerr))
	}
	if C.ostree_sysroot_load(sr, c.c, &gerr) == 0 {
		return nil, fmt.Errorf("init sysroot %s: %w", dir, gerror(gerr))
	}
	cos := C.CString(osname)
	defer cfree(cos)
	if _, err := os.Stat(filepath.Join(dir, "ostree", "deploy", osname)); os.IsNotExist(err) {
		if C.ostree_sysroot_init_osname(sr, cos, c.c, &gerr) == 0 {
			return nil, fmt.Errorf("init stateroot %s in %s: %w", osname, dir, gerror(gerr))
		}
	}
	return Open(ctx, dir)
}
