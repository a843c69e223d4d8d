package daemon

import (
	"context"
	"fmt"
	"strings"

	"github.com/hostctl/hostctl/bootloader"
	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
)

// A reset transaction takes the default deployment back to its plain base,
// as `rpm-ostree reset` does: it drops the layered packages (option
// overlays), the base package overrides (overrides: the origin's
// [overrides] group) and the extra kernel arguments (kargs: back to the
// arguments recorded in the origin's [kargs] base= before hostctl first
// changed them; without that record hostctl added none, and the installer's
// root=, console=... stay), in one new deployment. No option means all three. The tree,
// refspec, a pinned override-commit and the system containers stay: with
// packages dropped the new deployment is of the base commit. A reset that
// changes nothing makes no deployment ("No change.").

// groupOverrides is the origin group of base package overrides
// (rpm-ostree's override remove/replace).
const groupOverrides = "overrides"

// resetPlan is what a reset changes.
type resetPlan struct {
	overlays, overrides, kargs bool
}

// resetPlanOf reads the options; none set means all.
func resetPlanOf(opts dbus.Options) resetPlan {
	p := resetPlan{overlays: opts.Bool("overlays"), overrides: opts.Bool("overrides"), kargs: opts.Bool("kargs")}
	if !p.overlays && !p.overrides && !p.kargs {
		p = resetPlan{true, true, true}
	}
	return p
}

// resetOrigin is def's origin with what the plan drops removed.
func resetOrigin(def *deploy.Origin, p resetPlan) *deploy.Origin {
	o := deploy.NewOrigin("")
	if def != nil {
		o = def.Clone()
	}
	if p.overlays {
		refspec := o.Refspec()
		o.DeleteGroup(deploy.GroupPackages)
		if refspec != "" {
			o.SetRefspec(refspec) // rpm-ostree writes baserefspec while packages are layered
		}
	}
	if p.overrides {
		o.DeleteGroup(groupOverrides)
	}
	if p.kargs {
		o.DeleteGroup(deploy.GroupKargs)
	}
	return o
}

// resetKargs is the new deployment's kernel arguments: when the plan resets
// them and the origin records the arguments before hostctl changed them,
// those (libostree adds its ostree=); else the default deployment's.
func resetKargs(def deploy.Deployment, p resetPlan) []string {
	if base, ok := kargsBase(def); p.kargs && ok {
		if k := kargsOf(deploy.Deployment{Kargs: base}); k != nil {
			return k
		}
		return []string{} // none: not nil, which would keep the booted deployment's
	}
	return kargsOf(def)
}

// kargsBase is the recorded kernel arguments before hostctl's first change.
func kargsBase(def deploy.Deployment) (string, bool) {
	if def.Origin == nil {
		return "", false
	}
	return def.Origin.Get(deploy.GroupKargs, kargsBaseKey)
}

// reset takes the default deployment back to its base (see above).
func (e *Engine) reset(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	p := resetPlanOf(opts)
	st, err := e.changeStart(ctx)
	if err != nil {
		return nil, err
	}
	def := st.def
	origin := resetOrigin(def.Origin, p)
	kargs := resetKargs(def, p)
	var dropped []string
	if p.overlays && len(def.Origin.Packages()) > 0 {
		dropped = append(dropped, "layered packages "+strings.Join(def.Origin.Packages(), ", "))
	}
	if p.overrides && len(def.Origin.Keys(groupOverrides)) > 0 {
		dropped = append(dropped, "package overrides")
	}
	oldKargs := userKargs(def.Kargs)
	if base, ok := kargsBase(def); p.kargs && ok && bootloader.ParseKargs(userKargs(base)).String() != bootloader.ParseKargs(oldKargs).String() {
		dropped = append(dropped, fmt.Sprintf("kernel arguments %s (back to %s)", orNoKargs(oldKargs), orNoKargs(userKargs(base))))
	}
	res := map[string]any{"changed": false, "deployment": def.ID(), "dropped": []string{}}
	if len(dropped) == 0 {
		t.message("Nothing to reset: the default deployment " + def.ID() + " runs its plain base. No change.")
		return res, nil
	}
	commit := def.Checksum
	switch {
	case len(origin.Packages()) == 0 && !hasOverrides(origin):
		commit = baseOf(def)
	case p.overrides && len(def.Origin.Keys(groupOverrides)) > 0, p.overlays && len(def.Origin.Packages()) > 0:
		// What stays (packages or overrides) is layered again on the base.
		next := st
		next.def.Origin = origin
		if commit, err = e.relayer(ctx, t, next, baseOf(def)); err != nil {
			return nil, err
		}
	}
	t.step("deploy", fmt.Sprintf("Deploying %s without %s", short(commit), strings.Join(dropped, "; ")))
	d, err := e.sr.Deploy(ctx, deploy.DeployOptions{OSName: def.OSName, Revision: commit, Origin: origin,
		Kargs: kargs, BeforeSwap: t.beginSwap, DeferCleanup: true})
	if err != nil {
		return nil, err
	}
	t.step("verify", "Checking the boot entries")
	if err := e.verifyBoot(ctx, d); err != nil {
		return nil, errdefs.Errorf(errdefs.ErrFailed, "deployed %s but the boot entries are wrong: %v", d.ID(), err)
	}
	res["deployment"], res["changed"], res["checksum"] = d.ID(), true, d.Checksum
	res["dropped"] = dropped
	e.addDeployDiff(ctx, t, def, d, res)
	for _, what := range dropped {
		t.message("Removed " + what + ".")
	}
	t.message(fmt.Sprintf("Deployed %s. Reboot to use it.", d.ID()))
	return res, nil
}
