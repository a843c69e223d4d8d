package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hostctl/hostctl/containers"
	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
)

// ContainerConfig configures system containers (Config.Containers).
type ContainerConfig struct {
	// ServiceManager is "systemd" (the default: systemd over D-Bus) or
	// "direct" (hostd runs runc itself and supervises the containers, for
	// hosts whose PID 1 is not systemd).
	ServiceManager string
	// SystemdAddress is the D-Bus address of systemd: "" for the system
	// bus, or another bus, e.g. the system bus of a container booted with
	// systemd-nspawn, unix:path=/proc/LEADER/root/run/dbus/system_bus_socket
	// (nspawn's /run is a tmpfs: it is not under the root directory). systemd's
	// private socket (unix:path=.../run/systemd/private) works only from
	// systemd's own PID namespace: sd-bus refuses a peer whose PID it
	// cannot see.
	SystemdAddress string
	// Runtime is the OCI runtime; "" finds runc in $PATH.
	Runtime string
}

// newContainers makes the engine's containers.Manager. The direct service
// manager keeps runc's state under the sysroot's /run.
func (e *Engine) newContainers() *containers.Manager {
	c := e.cfg.Containers
	state := "/run/hostctl/runc"
	if e.sr.Path() != "/" {
		state = filepath.Join(e.sr.Path(), "run", "hostctl", "runc")
	}
	return containers.NewManager(containers.ManagerConfig{
		ServiceManager: c.ServiceManager, SystemdAddress: c.SystemdAddress, Runtime: c.Runtime, StateDir: state,
		BeforeActivate: func(ctx context.Context) { e.pauseForTest(ctx, "activate") },
	}, e.sr.Repo(), e.log)
}

// host says where the containers of the current deployment live: the
// stateroot's /var/lib/containers/hostctl, and the current deployment's
// /etc and root.
func (e *Engine) host(ctx context.Context) (containers.Host, error) {
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return containers.Host{}, err
	}
	return e.hostOf(deps)
}

// hostOf is host for a list of deployments already read.
func (e *Engine) hostOf(deps []deploy.Deployment) (containers.Host, error) {
	cur, ok := current(deps)
	if !ok {
		return containers.Host{}, errdefs.Errorf(errdefs.ErrNotFound, "the sysroot %s has no deployment: deploy one first", e.sr.Path())
	}
	if e.sr.Path() == "/" {
		return containers.Host{Dir: "/var/lib/containers/hostctl", Etc: "/etc", Root: "/"}, nil
	}
	return containers.Host{
		Dir: filepath.Join(e.sr.Path(), "ostree", "deploy", cur.OSName, "var", "lib", "containers", "hostctl"),
		Etc: filepath.Join(cur.Path, "etc"), Root: cur.Path,
	}, nil
}

// reporter shows what the containers manager does as the transaction's
// steps, messages, progress and journalled temporary paths.
type reporter struct{ t *txn }

func (r reporter) Step(stage, text string) { r.t.step(stage, text) }
func (r reporter) Message(text string)     { r.t.message(text) }
func (r reporter) AddTemp(path string)     { r.t.addTemp(path) }
func (r reporter) DropTemp(path string)    { r.t.dropTemp(path) }
func (r reporter) Progress(p containers.PullProgress) {
	r.t.progress(dbus.Progress{Stage: "pull", Done: uint64(p.Layer), Total: uint64(p.Layers), Bytes: p.Bytes, Text: p.Text}, false)
}

// desiredContainers reads the [containers] group of a deployment's origin.
// An entry that does not parse is left out of the set and named in bad (with
// the error): callers keep such a container as it is, never act on it as if
// the generation did not have it.
func desiredContainers(d deploy.Deployment) (want map[string]containers.Entry, bad map[string]error) {
	want, bad = map[string]containers.Entry{}, map[string]error{}
	if d.Origin == nil {
		return want, bad
	}
	for _, name := range d.Origin.Keys(deploy.GroupContainers) {
		v, _ := d.Origin.Get(deploy.GroupContainers, name)
		ce, err := containers.ParseEntry(v)
		if err != nil {
			bad[name] = fmt.Errorf("deployment %s: %w", d.ID(), err)
			continue
		}
		want[name] = ce
	}
	return want, bad
}

// containerChange is where a container change starts: the host, the
// deployments (the new generation is made from the default one) and the
// default generation's containers.
type containerChange struct {
	h    containers.Host
	st   changeStart
	want map[string]containers.Entry
}

// containerChangeStart reads where a container change starts. A default
// generation whose [containers] group does not parse is refused: nothing is
// changed on top of a state hostd cannot read.
func (e *Engine) containerChangeStart(ctx context.Context) (containerChange, error) {
	h, err := e.host(ctx)
	if err != nil {
		return containerChange{}, err
	}
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return containerChange{}, err
	}
	st, err := startOf(deps, e.sr.Path())
	if err != nil {
		return containerChange{}, err
	}
	want, bad := desiredContainers(st.def)
	if len(bad) > 0 {
		var errs []error
		for _, err := range bad {
			errs = append(errs, err)
		}
		return containerChange{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "the default generation's [containers] cannot be read, so no container change is made on top of it: %v; fix or remove the entry in its origin file, or roll back", errors.Join(errs...))
	}
	return containerChange{h: h, st: st, want: want}, nil
}

// commitContainers makes the new generation: a deployment of the default
// one's tree whose [containers] records entry for name (removes it when entry
// is nil).
func (e *Engine) commitContainers(ctx context.Context, t *txn, c containerChange, name string, entry *containers.Entry) (deploy.Deployment, error) {
	return e.writeGeneration(ctx, t, c.st, func(o *deploy.Origin) {
		if entry == nil {
			o.Delete(deploy.GroupContainers, name)
		} else {
			o.Set(deploy.GroupContainers, name, entry.String())
		}
	})
}

// dropTemp forgets a journalled temporary path once it has become part of
// the committed state, so that recovery does not remove it.
func (t *txn) dropTemp(path string) {
	t.mu.Lock()
	kept := t.rec.Temp[:0]
	for _, p := range t.rec.Temp {
		if p != path {
			kept = append(kept, p)
		}
	}
	t.rec.Temp = kept
	rec := *t.rec
	t.mu.Unlock()
	if err := t.e.journal.putActive(&rec); err != nil {
		t.e.log.Error("journal temp path", "txn", rec.ID, "path", path, "err", err)
	}
}

// pauseForTest stops the transaction before step when Config.PauseBefore
// names it (hostd --debug-pause-before), until the transaction is cancelled
// or hostd killed: the crash tests kill hostd at a known point with it.
func (e *Engine) pauseForTest(ctx context.Context, step string) {
	if e.cfg.PauseBefore != step {
		return
	}
	e.log.Warn("paused for a test", "before", step)
	<-ctx.Done()
}

func invalid(err error) error { return errdefs.Wrap(errdefs.ErrInvalidArgument, err) }

func (e *Engine) imagePull(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	h, err := e.host(ctx)
	if err != nil {
		return nil, err
	}
	res, err := e.ctr.Pull(ctx, h, t.rec.Arg, reporter{t})
	if err != nil {
		return nil, err
	}
	return map[string]any{"image": res.Image.Name, "digest": res.Image.Digest,
		"layers-fetched": int64(res.LayersFetched), "layers-present": int64(res.LayersPresent),
		"bytes": int64(res.Bytes), "changed": res.LayersFetched > 0}, nil
}

func (e *Engine) imageDelete(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	t.step("delete", "Deleting image "+t.rec.Arg)
	img, err := containers.DeleteImage(ctx, e.sr.Repo(), t.rec.Arg)
	if err != nil {
		return nil, errdefs.Wrap(errdefs.ErrNotFound, err)
	}
	t.message(fmt.Sprintf("Deleted %s (%s); its layers go at the next `hostctl image prune`.", img.Name, img.Digest))
	return map[string]any{"image": img.Name, "digest": img.Digest, "changed": true}, nil
}

func (e *Engine) imagePrune(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	t.step("prune", "Pruning images")
	keep := map[string]bool{}
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		want, bad := desiredContainers(d)
		if len(bad) > 0 {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "deployment %s has [containers] entries that cannot be read, so no image is pruned: fix its origin file first", d.ID())
		}
		for _, c := range want {
			keep[c.Digest] = true
		}
	}
	if h, err := e.host(ctx); err == nil {
		inUse, err := e.ctr.SlotImages(h)
		if err != nil {
			return nil, fmt.Errorf("read the containers' slots, so no image is pruned: %w", err)
		}
		for _, d := range inUse {
			keep[d] = true
		}
	}
	removed, err := containers.PruneImages(ctx, e.sr.Repo(), keep)
	if err != nil {
		return nil, err
	}
	if _, err := e.sr.Cleanup(ctx, deploy.CleanupOptions{}); err != nil {
		return nil, err
	}
	t.message(fmt.Sprintf("Removed %d refs; unreferenced objects were pruned.", len(removed)))
	return map[string]any{"removed": removed, "changed": len(removed) > 0}, nil
}

// The container transactions: the containers.Manager makes the change
// live, then the new generation records it; when that fails the live
// change is undone.

func (e *Engine) containerInstall(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	c, err := e.containerChangeStart(ctx)
	if err != nil {
		return nil, err
	}
	name := opts.String("name")
	if name == "" {
		name = containers.DefaultName(t.rec.Arg)
	}
	ch, err := e.ctr.Install(ctx, c.h, containers.InstallRequest{Name: name, Image: t.rec.Arg,
		Set: opts.Strings("set"), Follow: opts.Bool("follow"), Recorded: c.want[name]}, reporter{t})
	if err != nil {
		return nil, err
	}
	d, err := e.commitContainers(ctx, t, c, name, &ch.Entry)
	if err != nil {
		return nil, ch.Undo(err)
	}
	t.message(fmt.Sprintf("Installed %s from %s (%s) in generation %s.", name, ch.Entry.Image, ch.Entry.Digest, d.ID()))
	return map[string]any{"name": name, "image": ch.Entry.Image, "digest": ch.Entry.Digest, "slot": int64(ch.Slot), "deployment": d.ID(), "changed": true}, nil
}

func (e *Engine) containerUpdate(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	name := t.rec.Arg
	c, err := e.containerChangeStart(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := e.ctr.Update(ctx, c.h, containers.UpdateRequest{Name: name, Set: opts.Strings("set"),
		Rebase: opts.String("rebase"), Pull: opts.Bool("pull"), Recorded: c.want[name]}, reporter{t})
	if err != nil {
		return nil, err
	}
	if !ch.Changed {
		return map[string]any{"name": name, "changed": false}, nil
	}
	d, err := e.commitContainers(ctx, t, c, name, &ch.Entry)
	if err != nil {
		return nil, ch.Undo(err)
	}
	t.message(fmt.Sprintf("Updated %s to %s (%s), slot %d, in generation %s.", name, ch.Entry.Image, ch.Entry.Digest, ch.Slot, d.ID()))
	return map[string]any{"name": name, "image": ch.Entry.Image, "digest": ch.Entry.Digest, "slot": int64(ch.Slot), "deployment": d.ID(), "changed": true}, nil
}

func (e *Engine) containerRollback(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	name := t.rec.Arg
	c, err := e.containerChangeStart(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := e.ctr.Rollback(ctx, c.h, containers.RollbackRequest{Name: name, Recorded: c.want[name]}, reporter{t})
	if err != nil {
		return nil, err
	}
	d, err := e.commitContainers(ctx, t, c, name, &ch.Entry)
	if err != nil {
		return nil, ch.Undo(err)
	}
	t.message(fmt.Sprintf("Rolled %s back to slot %d (%s) in generation %s.", name, ch.Slot, ch.Entry.Digest, d.ID()))
	return map[string]any{"name": name, "digest": ch.Entry.Digest, "slot": int64(ch.Slot), "deployment": d.ID(), "changed": true}, nil
}

func (e *Engine) containerUninstall(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	name := t.rec.Arg
	if err := containers.ValidateName(name); err != nil {
		return nil, invalid(err)
	}
	c, err := e.containerChangeStart(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.h.Active(name); err != nil {
		return nil, err
	}
	// The generation first: once it is written the container is gone from
	// what boots, and a crash before it is removed live is finished by the
	// reconcile at hostd's start.
	d, err := e.commitContainers(ctx, t, c, name, nil)
	if err != nil {
		return nil, err
	}
	// The new generation's /etc is the one to take the host files out of.
	h, err := e.host(ctx)
	if err != nil {
		return nil, err
	}
	t.step("uninstall", "Stopping and removing "+name)
	kept, err := e.ctr.Remove(ctx, h, name)
	if err != nil {
		return nil, err
	}
	for _, k := range kept {
		t.message("Kept " + k + ": it was changed on the host.")
	}
	t.message("Uninstalled " + name + " (generation " + d.ID() + ").")
	return map[string]any{"name": name, "deployment": d.ID(), "changed": true}, nil
}

// reconcile brings the system containers in line with the booted (or, on a
// sysroot that is not booted, the default) generation: each container its
// origin names runs the recorded image with the recorded values, and
// containers it does not name are removed; one whose entry cannot be read
// is kept as it is. Run at start and after every transaction, so an OS
// rollback rolls the containers back too.
func (e *Engine) reconcile(ctx context.Context) error {
	h, err := e.host(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return err
	}
	gen, ok := e.liveGeneration(deps)
	if !ok {
		return nil
	}
	want, bad := desiredContainers(gen)
	keep := map[string]bool{}
	for name, err := range bad {
		e.log.Error("reconcile: keeping a container whose [containers] entry cannot be read", "container", name, "err", err)
		keep[name] = true
	}
	err = e.ctr.Reconcile(ctx, h, want, keep)
	if gen.Booted || e.sr.Path() != "/" {
		return err
	}
	// On a booted host the live /etc is the booted deployment's; the
	// generation that runs (and boots next) has an /etc of its own.
	var gone []string
	for _, d := range deps {
		w, _ := desiredContainers(d)
		for name := range w {
			if _, ok := want[name]; !ok && !keep[name] {
				gone = append(gone, name)
			}
		}
	}
	next := containers.Host{Etc: filepath.Join(gen.Path, "etc"), Root: gen.Path}
	return errors.Join(err, e.ctr.SyncEtc(h, next, want, gone))
}

// Images lists the pulled images (read-only; open to every caller).
func (e *Engine) Images() ([]map[string]any, error) {
	imgs, err := containers.ListImages(context.Background(), e.sr.Repo())
	if err != nil {
		return nil, errdefs.Wrap(errdefs.ErrFailed, err)
	}
	out := make([]map[string]any, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, map[string]any{"name": img.Name, "digest": img.Digest, "commit": img.Commit,
			"layers": int64(len(img.Layers)), "created": img.Config.Created.String()})
	}
	return out, nil
}

// Containers lists the installed system containers (read-only; open to every caller).
func (e *Engine) Containers() ([]map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	// The deployments as last read, not the sysroot: a read never waits
	// for a transaction that holds it.
	h, err := e.hostOf(e.cachedDeployments())
	if err != nil {
		return nil, err
	}
	list, err := e.ctr.List(ctx, h)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(list))
	for _, c := range list {
		out = append(out, map[string]any{"name": c.Name, "image": c.Image, "digest": c.Digest,
			"slot": strconv.Itoa(c.Slot), "state": c.State, "values": c.Values})
	}
	return out, nil
}

// ContainerExec implements dbus.Engine: runc exec in the running
// container, as root only.
func (e *Engine) ContainerExec(caller uint32, name string, args []string, stdin, stdout, stderr *os.File) (int32, error) {
	if err := authorize(caller, "container exec"); err != nil {
		return -1, err
	}
	if err := containers.ValidateName(name); err != nil {
		return -1, invalid(err)
	}
	ctx := context.Background()
	h, err := e.host(ctx)
	if err != nil {
		return -1, err
	}
	code, err := e.ctr.Exec(ctx, h, name, args, stdin, stdout, stderr)
	return int32(code), err
}
