package deploy

// #include <stdlib.h>
// #include "helpers.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Staged deployments: libostree writes the deployment's tree beside the others
// and records it in /run/ostree/staged-deployment; ostree-finalize-staged.service
// (ExecStop=ostree admin finalize-staged) adds it to the boot entries when the
// host shuts down, merging /etc at that moment. While the file
// StagedLockFile exists, that service leaves the staged deployment alone (it
// is then dropped with /run at the shutdown). Staging needs a booted host:
// /run belongs to the booted system.

// StagedLockFile is libostree's finalization lock: while it exists,
// `ostree admin finalize-staged` does not finalize the staged deployment.
// libostree reads it at this absolute path, whatever the sysroot.
const StagedLockFile = "/run/ostree/staged-deployment-locked"

// ErrNotBooted means the operation needs a booted host and the sysroot has
// no booted deployment (an offline sysroot: hostd --sysroot DIR).
var ErrNotBooted = errors.New("no booted deployment")

// ErrNotStaged means there is no staged deployment to act on.
var ErrNotStaged = errors.New("no staged deployment")

// IsBooted reports whether the sysroot has a booted deployment.
func (s *Sysroot) IsBooted(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(ctx); err != nil {
		return false, err
	}
	return C.ostree_sysroot_get_booted_deployment(s.sr) != nil, nil
}

// FinalizationLocked reports whether the finalization lock is set.
func FinalizationLocked() bool {
	_, err := os.Stat(StagedLockFile)
	return err == nil
}

// setFinalizationLock creates (lock) or removes the finalization lock.
func setFinalizationLock(lock bool) error {
	if !lock {
		if err := os.Remove(StagedLockFile); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove the finalization lock %s: %w", StagedLockFile, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(StagedLockFile), 0o755); err != nil {
		return fmt.Errorf("create the finalization lock %s: %w", StagedLockFile, err)
	}
	// An empty file: its existence is the lock, so a plain create is atomic enough.
	f, err := os.OpenFile(StagedLockFile, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("create the finalization lock %s: %w", StagedLockFile, err)
	}
	return f.Close()
}

// UnlockFinalization removes the finalization lock of the staged deployment,
// so that ostree-finalize-staged.service finalizes it at the next shutdown.
// It returns the staged deployment and whether it was locked.
func (s *Sysroot) UnlockFinalization(ctx context.Context) (Deployment, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.locked {
		return Deployment{}, false, fmt.Errorf("finalize: %w", ErrNotLocked)
	}
	if err := s.reload(ctx); err != nil {
		return Deployment{}, false, err
	}
	if C.ostree_sysroot_get_booted_deployment(s.sr) == nil {
		return Deployment{}, false, fmt.Errorf("finalize: %w in %s", ErrNotBooted, s.path)
	}
	deps, err := s.deploymentsLocked()
	if err != nil {
		return Deployment{}, false, err
	}
	for _, d := range deps {
		if d.Staged {
			was := FinalizationLocked()
			if err := setFinalizationLock(false); err != nil {
				return d, was, err
			}
			d.FinalizationLocked = false
			return d, was, nil
		}
	}
	return Deployment{}, false, fmt.Errorf("finalize: %w", ErrNotStaged)
}

// stageLocked stages the new deployment (see Deploy with Stage set).
func (s *Sysroot) stageLocked(ctx context.Context, opts DeployOptions, cos, crev, corigin *C.char, merge *C.OstreeDeployment, kargs **C.char) (Deployment, error) {
	if C.ostree_sysroot_get_booted_deployment(s.sr) == nil {
		return Deployment{}, fmt.Errorf("stage %s: %w in %s", opts.Revision, ErrNotBooted, s.path)
	}
	if opts.BeforeSwap != nil {
		// Staging checks out the tree and records it in one libostree call:
		// the record is the commit point, so the swap begins here.
		if err := opts.BeforeSwap(); err != nil {
			return Deployment{}, fmt.Errorf("stage %s: %w", opts.Revision, err)
		}
	}
	wasLocked := FinalizationLocked()
	if opts.LockFinalization {
		// Before the record exists: a shutdown in between must not finalize it.
		if err := setFinalizationLock(true); err != nil {
			return Deployment{}, err
		}
	}
	c := newCancellable(ctx)
	defer c.free()
	var newDep *C.OstreeDeployment
	var gerr *C.GError
	if C.hc_stage_tree(s.sr, cos, crev, corigin, merge, kargs, &newDep, c.c, &gerr) == 0 {
		err := gerror(gerr)
		if opts.LockFinalization && !wasLocked {
			setFinalizationLock(false)
		}
		s.cleanupLocked(context.WithoutCancel(ctx))
		return Deployment{}, fmt.Errorf("stage %s: %w", opts.Revision, err)
	}
	C.g_object_unref(C.gpointer(newDep))
	if !opts.LockFinalization {
		if err := setFinalizationLock(false); err != nil {
			return Deployment{}, err
		}
	}
	if err := s.reload(context.WithoutCancel(ctx)); err != nil {
		return Deployment{}, err
	}
	deps, err := s.deploymentsLocked()
	if err != nil {
		return Deployment{}, err
	}
	if len(deps) == 0 || !deps[0].Staged {
		return Deployment{}, fmt.Errorf("stage %s: libostree reported success but lists no staged deployment", opts.Revision)
	}
	return deps[0], nil
}
