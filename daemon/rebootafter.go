package daemon

import (
	"context"
	"fmt"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
)

// The option reboot b of the changes that write a new default deployment
// (upgrade, deploy, rebase, rollback, pkg-change, kargs, reset) asks hostd to
// reboot the host once the change is written, as rpm-ostree's option of the
// same name does: through systemd, the way `hostctl finalize --reboot` does
// (Engine.reboot). A transaction that changed nothing (no update, a preview,
// a check, a dry run) does not reboot. A sysroot that is not the booted
// host's (hostd -sysroot DIR) is not rebooted into by rebooting this
// machine: there the change is written and the transaction fails with what
// was done and why the reboot part was refused.

// rebootOption is the a{sv} spec of the reboot option.
var rebootOption = dbus.OptionSpec{"reboot": "b"}

// rebootingAfter runs run and, with the option reboot, reboots the host
// after a change (see above).
func (e *Engine) rebootingAfter(run func(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error)) func(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	return func(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
		if !opts.Bool("reboot") {
			return run(ctx, t, opts)
		}
		if opts.Bool("lock-finalization") {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "%s: reboot and lock-finalization contradict each other: a locked staged deployment is dropped at the reboot; leave one out", t.Kind())
		}
		res, err := run(ctx, t, opts)
		if err != nil {
			return res, err
		}
		if changed, _ := res["changed"].(bool); !changed {
			t.message("Nothing changed: not rebooting.")
			return res, nil
		}
		what := t.Kind()
		if d, _ := res["deployment"].(string); d != "" {
			what = d
		}
		booted, err := e.sr.IsBooted(ctx)
		if err != nil {
			return res, fmt.Errorf("%s: written, but hostd cannot tell whether the sysroot is booted, so it does not reboot: %w; reboot the host yourself (systemctl reboot)", what, err)
		}
		if !booted {
			return res, errdefs.Errorf(errdefs.ErrInvalidArgument, "%s is written, but the reboot was refused: the sysroot %s is not the booted host's (no deployment of it is booted), so rebooting this machine would not start it; boot the sysroot's machine yourself", what, e.sr.Path())
		}
		t.step("reboot", "Rebooting")
		if err := e.reboot(ctx); err != nil {
			return res, fmt.Errorf("%s: written, but the reboot failed: %w; reboot the host yourself (systemctl reboot)", what, err)
		}
		res["reboot"] = true
		t.message("Rebooting into it.")
		return res, nil
	}
}
