package deploy

// #include <stdlib.h>
// #include "helpers.h"
import "C"

import (
	"context"
	"fmt"
)

// SetOrigin rewrites the origin file of an existing deployment in place
// (libostree's ostree_sysroot_write_origin_file: a new file renamed over the
// old one), without writing a new deployment. hostctl uses it for changes
// that only touch the [containers] group: they apply live and need no new
// boot entry. The deployment is named by OSName, Checksum and Serial.
func (s *Sysroot) SetOrigin(ctx context.Context, d Deployment, origin *Origin) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.locked {
		return fmt.Errorf("write origin of %s: %w", d.ID(), ErrNotLocked)
	}
	if origin == nil {
		return fmt.Errorf("write origin of %s: no origin given", d.ID())
	}
	if err := s.reload(ctx); err != nil {
		return err
	}
	for _, raw := range s.rawDeployments() {
		if C.GoString(C.ostree_deployment_get_osname(raw)) != d.OSName ||
			C.GoString(C.ostree_deployment_get_csum(raw)) != d.Checksum ||
			int(C.ostree_deployment_get_deployserial(raw)) != d.Serial {
			continue
		}
		text := C.CString(string(origin.Marshal()))
		defer cfree(text)
		c := newCancellable(ctx)
		defer c.free()
		var gerr *C.GError
		if C.hc_set_origin(s.sr, raw, text, c.c, &gerr) == 0 {
			return fmt.Errorf("write origin of %s: %w", d.ID(), gerror(gerr))
		}
		// libostree caches the origin in the deployment object: load again.
		var changed C.gboolean
		if C.ostree_sysroot_load_if_changed(s.sr, &changed, c.c, &gerr) == 0 {
			return fmt.Errorf("reload sysroot %s: %w", s.path, gerror(gerr))
		}
		return nil
	}
	return fmt.Errorf("write origin of %s: %w", d.ID(), ErrNotFound)
}
