package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hostctl/hostctl/containers"
	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
)

// Staging: the options stage b and lock-finalization b of upgrade, deploy and
// rebase write the new generation as libostree's staged deployment (see
// deploy.DeployOptions.Stage). It is the default deployment from then on, so
// a later change starts from it (startOf), and ostree-finalize-staged.service
// adds it to the boot entries at shutdown unless the finalization is locked.

// stageOptions is the a{sv} spec of the staging options.
var stageOptions = dbus.OptionSpec{"stage": "b", "lock-finalization": "b"}

// staging reads the staging options and refuses them, before anything is
// pulled or written, where they cannot apply.
func (e *Engine) staging(ctx context.Context, opts dbus.Options) (stage, lock bool, err error) {
	stage, lock = opts.Bool("stage"), opts.Bool("lock-finalization")
	if lock && !stage {
		return false, false, errdefs.Errorf(errdefs.ErrInvalidArgument, "lock-finalization needs stage: only a staged deployment waits for finalization (hostctl upgrade --stage --lock-finalization)")
	}
	if !stage {
		return false, false, nil
	}
	booted, err := e.sr.IsBooted(ctx)
	if err != nil {
		return false, false, err
	}
	if !booted {
		return false, false, errdefs.Errorf(errdefs.ErrInvalidArgument, "staging needs a booted host: the sysroot %s has no booted deployment, and only a running host finalizes a staged deployment at its shutdown; deploy without --stage (the new deployment is the default at once)", e.sr.Path())
	}
	return true, lock, nil
}

// A finalize transaction lets the staged deployment boot, as `rpm-ostree
// finalize-deployment` does: it removes libostree's finalization lock, so that
// ostree-finalize-staged.service writes the deployment into the boot entries
// when the host shuts down, and with the option reboot it asks systemd to
// reboot now (the finalization then happens on the way down). The argument,
// when not empty, is the commit the caller expects to be staged: a different
// one staged since is refused, so a finalize meant for one update never boots
// another. The polkit action is org.hostctl.host.upgrade.

// finalizeOptions is the a{sv} spec of FinalizeDeployment.
var finalizeOptions = dbus.OptionSpec{"reboot": "b"}

// validFinalize checks the expected checksum, when given, before anything is read.
func validFinalize(req dbus.Request) error {
	if req.Arg == "" {
		return nil
	}
	if len(req.Arg) > 64 || strings.Trim(req.Arg, "0123456789abcdef") != "" {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "finalize: %q is not a commit checksum (hex digits, as `hostctl status` prints Commit)", req.Arg)
	}
	return nil
}

// finalize unlocks the staged deployment's finalization (see above).
func (e *Engine) finalize(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	t.step("finalize", "Unlocking the finalization of the staged deployment")
	var staged deploy.Deployment
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		if d.Staged {
			staged = d
		}
	}
	booted, err := e.sr.IsBooted(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case !booted:
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "finalize: the sysroot %s has no booted deployment, so nothing is staged: only a running host stages deployments", e.sr.Path())
	case staged.Checksum == "":
		return nil, errdefs.Errorf(errdefs.ErrNotFound, "finalize: no staged deployment: `hostctl upgrade --stage --lock-finalization` stages one that waits for finalize")
	case t.rec.Arg != "" && !strings.HasPrefix(staged.Checksum, t.rec.Arg):
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "finalize: the staged deployment is %s (commit %s), not commit %s: check `hostctl status` and finalize the one staged now", staged.ID(), staged.Checksum, t.rec.Arg)
	}
	d, wasLocked, err := e.sr.UnlockFinalization(ctx)
	switch {
	case errors.Is(err, deploy.ErrNotStaged):
		return nil, errdefs.Wrap(errdefs.ErrNotFound, fmt.Errorf("%w: it was finalized or dropped meanwhile", err))
	case err != nil:
		return nil, err
	}
	if d.Checksum != staged.Checksum {
		// Another transaction cannot have staged in between (this one holds the
		// engine), but libostree is the judge: say what happened.
		e.log.Warn("the staged deployment changed while finalizing", "was", staged.ID(), "now", d.ID())
	}
	reboot := opts.Bool("reboot")
	res := map[string]any{"deployment": d.ID(), "checksum": d.Checksum, "was-locked": wasLocked, "reboot": reboot}
	switch {
	case wasLocked:
		t.message(fmt.Sprintf("Finalization of %s (version %s) unlocked: it enters the boot entries at shutdown.", d.ID(), d.Version))
	default:
		t.message(fmt.Sprintf("%s (version %s) was not locked: it enters the boot entries at shutdown. No change.", d.ID(), d.Version))
	}
	if !reboot {
		t.message("Reboot to use it.")
		return res, nil
	}
	t.step("reboot", "Rebooting")
	if err := e.reboot(ctx); err != nil {
		return res, fmt.Errorf("finalize %s: unlocked, but the reboot failed: %w; reboot the host yourself (systemctl reboot)", d.ID(), err)
	}
	t.message("Rebooting into it.")
	return res, nil
}

// rebootTimeout bounds the reboot request: systemd answers with a job at once.
const rebootTimeout = 30 * time.Second

// reboot asks systemd to reboot the host (reboot.target, as `systemctl
// reboot` does), over the systemd bus hostd's containers use.
func (e *Engine) reboot(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, rebootTimeout)
	defer cancel()
	s, err := containers.NewSystemd(ctx, e.cfg.Containers.SystemdAddress, "")
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Reboot(ctx)
}
