package daemon

import (
	"context"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
)

// Staging: the options stage b and lock-finalization b of upgrade, deploy and
// rebase write the new generation as libostree's staged deployment (see
// deploy.DeployOptions.Stage). It is the default deployment from then on, so
// a later change starts from it (startOf), and ostree-finalize-staged.service
// adds it to the boot entries at shutdown unless the finalization is locked.

// stageOptions is the a{sv} spec of the staging options.
var stageOptions = dbus.OptionSpec{"stage": "b", "lock-finalization": "b"}

// withStageOptions adds the staging options to spec.
func withStageOptions(spec dbus.OptionSpec) dbus.OptionSpec {
	out := dbus.OptionSpec{}
	for k, v := range spec {
		out[k] = v
	}
	for k, v := range stageOptions {
		out[k] = v
	}
	return out
}

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
