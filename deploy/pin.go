package deploy

// #include <stdlib.h>
// #include "helpers.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
)

// GroupTransient is libostree's origin group for the state of one
// deployment (pinned=true), which a new deployment made from its origin
// must not inherit: Deploy drops it.
const GroupTransient = "libostree-transient"

// ErrStaged means the operation cannot apply to a staged deployment.
var ErrStaged = errors.New("deployment is staged")

// SetPinned pins (or unpins) the deployment with the given ID
// (OSNAME-CHECKSUM.SERIAL), with libostree's
// ostree_sysroot_deployment_set_pinned: a pinned deployment is kept by every
// later deployment and by cleanup, as `ostree admin pin` does. libostree
// records the pin in the deployment's origin, in the [libostree-transient]
// group, which no new deployment inherits. It returns the deployment as it
// is now, and changed false when it already was in that state.
func (s *Sysroot) SetPinned(ctx context.Context, id string, pinned bool) (d Deployment, changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.locked {
		return Deployment{}, false, fmt.Errorf("pin %s: %w", id, ErrNotLocked)
	}
	if err := s.reload(ctx); err != nil {
		return Deployment{}, false, err
	}
	all, err := s.deploymentsLocked()
	if err != nil {
		return Deployment{}, false, err
	}
	raw := s.rawDeployments()
	for i, dep := range all {
		if dep.ID() != id {
			continue
		}
		if dep.Pinned == pinned {
			return dep, false, nil
		}
		if dep.Staged {
			return dep, false, fmt.Errorf("pin %s: %w: libostree cannot pin a staged deployment; finalize it (reboot) first", id, ErrStaged)
		}
		var gerr *C.GError
		flag := C.gboolean(0)
		if pinned {
			flag = 1
		}
		if C.ostree_sysroot_deployment_set_pinned(s.sr, raw[i], flag, &gerr) == 0 {
			return dep, false, fmt.Errorf("pin %s: %w", id, gerror(gerr))
		}
		// The pin lives in the origin libostree caches in the deployment
		// object: load the sysroot again to see it.
		c := newCancellable(ctx)
		defer c.free()
		if C.ostree_sysroot_load(s.sr, c.c, &gerr) == 0 {
			return dep, true, fmt.Errorf("reload sysroot %s: %w", s.path, gerror(gerr))
		}
		after, err := s.deploymentsLocked()
		if err != nil {
			return dep, true, err
		}
		for _, a := range after {
			if a.ID() == id {
				return a, true, nil
			}
		}
		return dep, true, fmt.Errorf("pin %s: the deployment is gone after pinning: %w", id, ErrNotFound)
	}
	return Deployment{}, false, fmt.Errorf("pin %s: no such deployment: %w", id, ErrNotFound)
}
