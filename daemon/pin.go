package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
)

// A pin transaction pins or unpins one deployment (libostree's
// ostree_sysroot_deployment_set_pinned, as `ostree admin pin`): a pinned
// deployment survives every later deployment and `cleanup -r`. Pinning
// changes no boot entry and makes no generation; libostree records it in the
// deployment's origin ([libostree-transient] pinned=true), which new
// deployments do not inherit. The polkit action is org.hostctl.host.upgrade:
// pinning decides which deployments an upgrade keeps.

// validPin checks the deployment ID of a pin request before it reaches libostree.
func validPin(req dbus.Request) error {
	if req.Arg == "" {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "pin needs a deployment id (OSNAME-CHECKSUM.SERIAL, as the deployments list them)")
	}
	if len(req.Arg) > 256 || strings.ContainsAny(req.Arg, "/\x00 \t\n") {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "pin: %q is not a deployment id (OSNAME-CHECKSUM.SERIAL)", req.Arg)
	}
	return nil
}

// pin pins (or, with the option unpin, unpins) the deployment named by the
// transaction's argument.
func (e *Engine) pin(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	id := t.rec.Arg
	want := !opts.Bool("unpin")
	verb := "Pinning"
	if !want {
		verb = "Unpinning"
	}
	t.step("pin", fmt.Sprintf("%s %s", verb, id))
	d, changed, err := e.sr.SetPinned(ctx, id, want)
	switch {
	case errors.Is(err, deploy.ErrNotFound) && d.Checksum == "":
		return nil, errdefs.Wrap(errdefs.ErrNotFound, fmt.Errorf("%w: `hostctl status` lists the deployments", err))
	case errors.Is(err, deploy.ErrStaged):
		return nil, errdefs.Wrap(errdefs.ErrInvalidArgument, err)
	case err != nil:
		return nil, err
	}
	res := map[string]any{"deployment": d.ID(), "pinned": d.Pinned, "changed": changed}
	switch {
	case !changed && want:
		t.message(fmt.Sprintf("Deployment %s is already pinned. No change.", d.ID()))
	case !changed:
		t.message(fmt.Sprintf("Deployment %s is not pinned. No change.", d.ID()))
	case want:
		t.message(fmt.Sprintf("Deployment %s is now pinned.", d.ID()))
	default:
		t.message(fmt.Sprintf("Deployment %s is now unpinned.", d.ID()))
	}
	return res, nil
}
