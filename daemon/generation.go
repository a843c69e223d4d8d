package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hostctl/hostctl/bootloader"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
)

// A generation is one deployment: its commit, its kernel arguments and its
// origin (refspec, layered packages, system containers). Every change makes
// a new one.
//
// Which deployment a change starts from: the origin, the tree and the kernel
// arguments come from the default deployment (the pending one when an update
// waits for a reboot), so that a change made before rebooting keeps the
// changes made before it; /etc and the stateroot come from the booted one
// (libostree's merge deployment), as rpm-ostree does. On a sysroot that is not
// booted both are the default deployment.

// changeStart is where a change starts.
type changeStart struct {
	// def is the default deployment of the stateroot: origin, tree, kargs.
	def deploy.Deployment
	// merge is the booted deployment (else def): /etc, the stateroot's /var.
	merge deploy.Deployment
	// kargs, when not nil, are the new generation's kernel arguments
	// instead of def's (a kargs change).
	kargs []string
	// stage and lockFinalization write the new generation staged (stage.go).
	stage, lockFinalization bool
}

// startOf finds the deployments a change starts from.
func startOf(deps []deploy.Deployment, sysroot string) (changeStart, error) {
	merge, ok := current(deps)
	if !ok {
		return changeStart{}, errdefs.Errorf(errdefs.ErrNotFound, "the sysroot %s has no deployment: deploy one first", sysroot)
	}
	def := merge
	for _, d := range deps {
		if d.OSName == merge.OSName {
			def = d // deps are in boot order: the first of the stateroot is its default
			break
		}
	}
	return changeStart{def: def, merge: merge}, nil
}

// changeStart reads the deployments and finds where a change starts; the
// default deployment must follow a refspec.
func (e *Engine) changeStart(ctx context.Context) (changeStart, error) {
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return changeStart{}, err
	}
	s, err := startOf(deps, e.sr.Path())
	if err != nil {
		return s, err
	}
	if s.def.Origin == nil || s.def.Refspec() == "" {
		return s, errdefs.Errorf(errdefs.ErrInvalidArgument, "deployment %s has no origin refspec: rebase it to one (hostctl rebase REMOTE:REF)", s.def.ID())
	}
	return s, nil
}

// kargsOf is the kernel command line of a deployment as a list, for a new
// deployment that keeps it (libostree replaces the ostree= argument itself).
// Without this, libostree would take the merge (booted) deployment's
// arguments and drop those of a pending one.
func kargsOf(d deploy.Deployment) []string {
	if strings.TrimSpace(d.Kargs) == "" {
		return nil
	}
	args := bootloader.ParseKargs(d.Kargs).Args()
	out := make([]string, 0, len(args))
	for _, a := range args {
		out = append(out, a.String())
	}
	return out
}

// defaultID is the ID of the default deployment, or "" when there is none.
func defaultID(deps []deploy.Deployment) string {
	if len(deps) == 0 {
		return ""
	}
	return deps[0].ID()
}

// Which generation's containers run. Every container change is applied live
// and recorded in a new default deployment, so the containers that run are
// those of the default generation: after a container change, after
// `hostctl rollback` (at once, as the issue asks), after an upgrade (which
// carries the set over). One exception: at the first start of hostd in a boot
// of a booted host, the booted generation's containers run, because the
// booted deployment differs from the default one only when the machine was
// booted into another entry (picked in the boot menu, or a fallback after a
// failed boot); that choice holds until a transaction changes the default
// deployment. The choice is kept in /run (cleared by every boot).

// liveSourceFile is where the choice is kept, under the run directory.
const liveSourceFile = "containers-generation"

// runDir is hostd's directory in /run of the host it manages.
func (e *Engine) runDir() string {
	if e.sr.Path() == "/" {
		return "/run/hostctl"
	}
	return filepath.Join(e.sr.Path(), "run", "hostctl")
}

// liveGeneration is the deployment whose containers run (see above).
func (e *Engine) liveGeneration(deps []deploy.Deployment) (deploy.Deployment, bool) {
	recorded, err := os.ReadFile(filepath.Join(e.runDir(), liveSourceFile))
	d, record, ok := chooseLive(deps, strings.TrimSpace(string(recorded)), err == nil)
	if record != "" {
		e.setLiveGeneration(record)
	}
	return d, ok
}

// chooseLive picks the deployment whose containers run from the deployments
// and the choice recorded in this boot (recorded, when haveRecord). It says
// what to record when this is the first choice of the boot.
func chooseLive(deps []deploy.Deployment, recorded string, haveRecord bool) (live deploy.Deployment, record string, ok bool) {
	s, err := startOf(deps, "")
	if err != nil {
		return deploy.Deployment{}, "", false
	}
	if !s.merge.Booted {
		return s.def, "", true // not booted: no boot menu, the default is what runs
	}
	if !haveRecord {
		return s.merge, s.merge.ID(), true // the first start in this boot: the booted generation
	}
	for _, d := range deps {
		if d.ID() == recorded {
			return d, "", true
		}
	}
	return s.def, "", true
}

// setLiveGeneration records the deployment whose containers run.
func (e *Engine) setLiveGeneration(id string) {
	dir := e.runDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.log.Warn("record the live generation", "err", err)
		return
	}
	tmp := filepath.Join(dir, liveSourceFile+".tmp")
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err == nil {
		err = os.Rename(tmp, filepath.Join(dir, liveSourceFile))
		if err != nil {
			e.log.Warn("record the live generation", "err", err)
		}
	}
}

// writeGeneration makes a new deployment of the default one's tree and kernel
// arguments with a changed origin: a change that needs no new tree (system
// containers) is a generation too. The swap commits it.
func (e *Engine) writeGeneration(ctx context.Context, t *txn, s changeStart, edit func(*deploy.Origin)) (deploy.Deployment, error) {
	origin := deploy.NewOrigin("")
	if s.def.Origin != nil {
		origin = s.def.Origin.Clone()
	}
	edit(origin)
	kargs := kargsOf(s.def)
	if s.kargs != nil {
		kargs = s.kargs
	}
	t.step("deploy", fmt.Sprintf("Writing the new generation (deployment of %s)", short(s.def.Checksum)))
	d, err := e.sr.Deploy(ctx, deploy.DeployOptions{OSName: s.def.OSName, Revision: s.def.Checksum, Origin: origin,
		Kargs: kargs, BeforeSwap: t.beginSwap, Stage: s.stage, LockFinalization: s.lockFinalization,
		DeferCleanup: true})
	if err != nil {
		return deploy.Deployment{}, err
	}
	t.step("verify", "Checking the boot entries")
	if err := e.verifyStaged(ctx, d); err != nil {
		return d, errdefs.Errorf(errdefs.ErrFailed, "wrote %s but the boot entries are wrong: %v", d.ID(), err)
	}
	return d, nil
}

func short(csum string) string {
	if len(csum) > 12 {
		return csum[:12]
	}
	return csum
}
