package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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

// containerConfig is Config.Containers with its defaults filled in.
func (e *Engine) containerConfig() ContainerConfig {
	c := e.cfg.Containers
	if c.Runtime == "" {
		if p, err := exec.LookPath("runc"); err == nil {
			c.Runtime = p
		} else {
			c.Runtime = containers.DefaultRuntime
		}
	}
	if c.ServiceManager == "" {
		c.ServiceManager = "systemd"
	}
	return c
}

// containerRuntime is the per-engine state of system containers: the
// service manager (the direct one supervises, so it lives as long as the
// engine) and the runtime's features.
type containerRuntime struct {
	mu       sync.Mutex
	services containers.ServiceManager
	features *containers.RuntimeFeatures
}

func (e *Engine) ctrRuntime() *containerRuntime { return &e.ctr }

// host says where the containers of the current deployment live.
func (e *Engine) host(ctx context.Context) (containers.Host, deploy.Deployment, error) {
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return containers.Host{}, deploy.Deployment{}, err
	}
	cur, ok := current(deps)
	if !ok {
		return containers.Host{}, deploy.Deployment{}, errdefs.Errorf(errdefs.ErrNotFound, "the sysroot %s has no deployment: deploy one first", e.sr.Path())
	}
	cfg := e.containerConfig()
	h := containers.Host{Runtime: cfg.Runtime}
	if e.sr.Path() == "/" {
		h.Dir, h.Etc, h.Root = "/var/lib/containers/hostctl", "/etc", "/"
	} else {
		h.Dir = filepath.Join(e.sr.Path(), "ostree", "deploy", cur.OSName, "var", "lib", "containers", "hostctl")
		h.Etc, h.Root = filepath.Join(cur.Path, "etc"), cur.Path
	}
	rt := e.ctrRuntime()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.features == nil {
		f, err := containers.ProbeRuntime(ctx, cfg.Runtime)
		if err != nil {
			return h, cur, err
		}
		rt.features = &f
	}
	h.RuntimeFeatures = *rt.features
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return h, cur, err
	}
	return h, cur, nil
}

// services returns the service manager, connecting on first use.
func (e *Engine) services(ctx context.Context, h containers.Host) (containers.ServiceManager, error) {
	rt := e.ctrRuntime()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.services != nil {
		return rt.services, nil
	}
	cfg := e.containerConfig()
	var err error
	switch cfg.ServiceManager {
	case "direct":
		state := "/run/hostctl/runc"
		if e.sr.Path() != "/" {
			state = filepath.Join(e.sr.Path(), "run", "hostctl", "runc")
		}
		rt.services, err = containers.NewDirect(h, state, e.log)
	case "systemd":
		rt.services, err = containers.NewSystemd(ctx, cfg.SystemdAddress, cfg.Runtime)
	default:
		err = fmt.Errorf("unknown service manager %q: use systemd or direct", cfg.ServiceManager)
	}
	if err != nil {
		return nil, errdefs.Wrap(errdefs.ErrFailed, err)
	}
	return rt.services, nil
}

// containerEntry is one [containers] line of an origin:
// IMAGE@sha256:DIGEST;VALUES-DIGEST, with ";follow" when `hostctl upgrade`
// moves the container to the newest image of its tag.
type containerEntry struct {
	Image, Digest, Values string
	Follow                bool
}

// followFlag marks a container that follows its image's tag.
const followFlag = "follow"

func (c containerEntry) String() string {
	s := c.Image + "@" + c.Digest + ";" + c.Values
	if c.Follow {
		s += ";" + followFlag
	}
	return s
}

var (
	imageDigestRe  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	valuesDigestRe = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func parseContainerEntry(s string) (containerEntry, error) {
	bad := func(why string) (containerEntry, error) {
		return containerEntry{}, fmt.Errorf("origin [containers] entry %q: %s; want IMAGE@sha256:DIGEST;VALUES-DIGEST[;follow]", s, why)
	}
	fields := strings.Split(s, ";")
	if len(fields) < 2 || len(fields) > 3 {
		return bad("wrong number of fields")
	}
	ref := fields[0]
	i := strings.LastIndex(ref, "@")
	if i <= 0 || !imageDigestRe.MatchString(ref[i+1:]) {
		return bad("no image digest")
	}
	if !valuesDigestRe.MatchString(fields[1]) {
		return bad("no values digest")
	}
	e := containerEntry{Image: ref[:i], Digest: ref[i+1:], Values: fields[1]}
	if len(fields) == 3 {
		if fields[2] != followFlag {
			return bad("unknown flag " + strconv.Quote(fields[2]))
		}
		e.Follow = true
	}
	return e, nil
}

// desiredContainers reads the [containers] group of a deployment's origin.
// An entry that does not parse is left out of the set and named in bad (with
// the error): callers keep such a container as it is, never act on it as if
// the generation did not have it.
func desiredContainers(d deploy.Deployment) (want map[string]containerEntry, bad map[string]error) {
	want, bad = map[string]containerEntry{}, map[string]error{}
	if d.Origin == nil {
		return want, bad
	}
	for _, name := range d.Origin.Keys(deploy.GroupContainers) {
		v, _ := d.Origin.Get(deploy.GroupContainers, name)
		ce, err := parseContainerEntry(v)
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
	want map[string]containerEntry
}

// containerChangeStart reads where a container change starts. A default
// generation whose [containers] group does not parse is refused: nothing is
// changed on top of a state hostd cannot read.
func (e *Engine) containerChangeStart(ctx context.Context) (containerChange, error) {
	h, _, err := e.host(ctx)
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
func (e *Engine) commitContainers(ctx context.Context, t *txn, c containerChange, name string, entry *containerEntry) (deploy.Deployment, error) {
	return e.writeGeneration(ctx, t, c.st, func(o *deploy.Origin) {
		if entry == nil {
			o.Delete(deploy.GroupContainers, name)
		} else {
			o.Set(deploy.GroupContainers, name, entry.String())
		}
	})
}

// undoTimeout bounds the work that puts the live state back after a failed change.
const undoTimeout = 2 * time.Minute

// undoContext is the context for putting things back after a failure or a
// cancel: not the cancelled transaction's, but with a deadline.
func undoContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), undoTimeout)
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
	h, _, err := e.host(ctx)
	if err != nil {
		return nil, err
	}
	return e.pull(ctx, t, h, t.rec.Arg)
}

func (e *Engine) pull(ctx context.Context, t *txn, h containers.Host, name string) (map[string]any, error) {
	t.step("pull", "Pulling "+name)
	res, err := containers.Pull(ctx, e.sr.Repo(), name, containers.PullOptions{
		HostRoot: h.Root, AddTemp: t.addTemp,
		Progress: func(p containers.PullProgress) {
			t.progress(dbus.Progress{Stage: "pull", Done: uint64(p.Layer), Total: uint64(p.Layers), Bytes: p.Bytes, Text: p.Text}, false)
		},
	})
	var pe *containers.PolicyError
	if errors.As(err, &pe) {
		return nil, errdefs.Wrap(errdefs.ErrUnauthorized, err)
	}
	if err != nil {
		return nil, err
	}
	t.message(fmt.Sprintf("Pulled %s (%s): %d layers fetched, %d already present, %d bytes received.",
		res.Image.Name, res.Image.Digest, res.LayersFetched, res.LayersPresent, res.Bytes))
	if len(res.Dropped) > 0 {
		t.message(fmt.Sprintf("Left out %d device nodes and FIFOs (runc provides /dev).", len(res.Dropped)))
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
	if h, _, err := e.host(ctx); err == nil {
		names, _ := h.Installed()
		for _, n := range names {
			for i := 0; i < 2; i++ {
				if s, err := containers.ReadSlot(h, n, i); err == nil && s != nil {
					keep[s.Info.Digest] = true
				}
			}
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

// defaultName is the container name of an image: its last path component without tag or digest.
func defaultName(image string) string {
	n := image
	if i := strings.LastIndex(n, "@"); i > 0 {
		n = n[:i]
	}
	n = n[strings.LastIndex(n, "/")+1:]
	if i := strings.LastIndex(n, ":"); i > 0 {
		n = n[:i]
	}
	return n
}

// image finds a pulled image, pulling it when it is not there.
func (e *Engine) image(ctx context.Context, t *txn, h containers.Host, name string) (*containers.Image, error) {
	img, err := containers.FindImage(e.sr.Repo(), name)
	if err == nil {
		return img, nil
	}
	if !errors.Is(err, deploy.ErrNotFound) {
		return nil, err
	}
	if _, err := e.pull(ctx, t, h, name); err != nil {
		return nil, err
	}
	return containers.FindImage(e.sr.Repo(), name)
}

func (e *Engine) containerInstall(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	c, err := e.containerChangeStart(ctx)
	if err != nil {
		return nil, err
	}
	h := c.h
	name := opts.String("name")
	if name == "" {
		name = defaultName(t.rec.Arg)
	}
	if err := containers.ValidateName(name); err != nil {
		return nil, invalid(err)
	}
	set, err := containers.ParseSetValues(opts.Strings("set"))
	if err != nil {
		return nil, invalid(err)
	}
	if n, err := h.ActiveSlot(name); err != nil || n >= 0 || c.want[name] != (containerEntry{}) {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "a container named %s is already installed: update it (hostctl container update %s) or pick another --name", name, name)
	}
	img, err := e.image(ctx, t, h, t.rec.Arg)
	if err != nil {
		return nil, err
	}
	t.step("checkout", fmt.Sprintf("Checking out %s into %s", img.Name, h.SlotPath(name, 0)))
	slot, err := containers.PrepareSlot(ctx, e.sr.Repo(), h, containers.PrepareOptions{
		Name: name, Image: img, ImageName: img.Name, Set: set, Slot: 0, AddTemp: t.addTemp})
	if err != nil {
		return nil, invalid(err)
	}
	vd, err := h.SaveValues(set)
	if err != nil {
		return nil, err
	}
	entry := containerEntry{Image: img.Name, Digest: img.Digest, Values: vd, Follow: opts.Bool("follow")}
	e.pauseForTest(ctx, "activate")
	t.step("activate", "Activating "+name)
	if err := containers.Activate(h, name, 0); err != nil {
		return nil, err
	}
	// From here the container is live: if hostd dies before the new
	// generation is written, the reconcile at its start removes it again
	// (the default generation does not have it), so the slot is no longer a
	// temporary path.
	t.dropTemp(slot.Dir)
	undo := func() {
		uctx, cancel := undoContext()
		defer cancel()
		if _, err := e.removeContainer(uctx, h, name); err != nil {
			e.log.Warn("remove a container whose install failed", "container", name, "err", err)
		}
	}
	if err := e.applyAndStart(ctx, t, h, name, true); err != nil {
		t.message("The service did not start; removing " + name + " again.")
		undo()
		return nil, err
	}
	d, err := e.commitContainers(ctx, t, c, name, &entry)
	if err != nil {
		t.message("The new generation could not be written; removing " + name + " again.")
		undo()
		return nil, err
	}
	t.message(fmt.Sprintf("Installed %s from %s (%s) in generation %s.", name, img.Name, img.Digest, d.ID()))
	return map[string]any{"name": name, "image": img.Name, "digest": img.Digest, "slot": int64(0), "deployment": d.ID(), "changed": true}, nil
}

// applyAndStart puts the active slot's files on the host and (re)starts the service.
func (e *Engine) applyAndStart(ctx context.Context, t *txn, h containers.Host, name string, start bool) error {
	t.step("host-files", "Writing the unit, tmpfiles and host files of "+name)
	kept, err := containers.ApplyHostFiles(h, name)
	if err != nil {
		return err
	}
	for _, k := range kept {
		t.message("Left " + k + " alone: it existed or was changed on the host.")
	}
	svc, err := e.services(ctx, h)
	if err != nil {
		return err
	}
	if err := svc.Reload(ctx); err != nil {
		return err
	}
	s, err := activeSlot(h, name)
	if err != nil {
		return err
	}
	if !s.Info.HasContainerService || !start {
		return nil
	}
	if err := svc.Enable(ctx, name); err != nil {
		return err
	}
	t.step("start", "Starting "+name)
	return svc.Start(ctx, name)
}

func activeSlot(h containers.Host, name string) (*containers.Slot, error) {
	n, err := h.ActiveSlot(name)
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, errdefs.Errorf(errdefs.ErrNotFound, "no container named %s is installed: `hostctl container list` shows them", name)
	}
	s, err := containers.ReadSlot(h, name, n)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("container %s: its active slot %d is empty: uninstall and install it again", name, n)
	}
	return s, nil
}

// removeContainer stops and removes a container entirely.
func (e *Engine) removeContainer(ctx context.Context, h containers.Host, name string) ([]string, error) {
	if svc, err := e.services(ctx, h); err == nil {
		svc.Stop(ctx, name)
		svc.Disable(ctx, name)
		defer svc.Reload(ctx)
	}
	return containers.RemoveContainer(h, name)
}

func (e *Engine) running(ctx context.Context, h containers.Host, name string) bool {
	svc, err := e.services(ctx, h)
	if err != nil {
		return false
	}
	st, err := svc.State(ctx, name)
	return err == nil && st != containers.StateInactive
}

// switchSlot stops the service, points NAME at slot n, puts the host files
// in place and starts the service again when it ran: the live half of a
// change; the new generation records it.
func (e *Engine) switchSlot(ctx context.Context, t *txn, h containers.Host, name string, n int, start bool) error {
	if svc, err := e.services(ctx, h); err == nil {
		t.step("stop", "Stopping "+name)
		if err := svc.Stop(ctx, name); err != nil {
			return err
		}
	}
	e.pauseForTest(ctx, "activate")
	t.step("activate", fmt.Sprintf("Activating slot %d of %s", n, name))
	if err := containers.Activate(h, name, n); err != nil {
		return err
	}
	return e.applyAndStart(ctx, t, h, name, start)
}

func slotEntry(h containers.Host, s *containers.Slot) (containerEntry, error) {
	set, err := containers.SetValues(s.Dir)
	if err != nil {
		return containerEntry{}, err
	}
	return containerEntry{Image: s.Info.Image, Digest: s.Info.Digest, Values: containers.ValuesDigest(set)}, nil
}

func (e *Engine) containerUpdate(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	name := t.rec.Arg
	c, err := e.containerChangeStart(ctx)
	if err != nil {
		return nil, err
	}
	h := c.h
	old, err := activeSlot(h, name)
	if err != nil {
		return nil, err
	}
	set, err := containers.SetValues(old.Dir)
	if err != nil {
		return nil, err
	}
	newSet, err := containers.ParseSetValues(opts.Strings("set"))
	if err != nil {
		return nil, invalid(err)
	}
	for k, v := range newSet {
		set[k] = v
	}
	imageName := old.Info.Image
	if r := opts.String("rebase"); r != "" {
		imageName = r
	}
	img, err := e.image(ctx, t, h, imageName)
	if err != nil {
		return nil, err
	}
	oldEntry, err := slotEntry(h, old)
	if err != nil {
		return nil, err
	}
	vd := containers.ValuesDigest(set)
	if w := c.want[name]; img.Digest == old.Info.Digest && vd == oldEntry.Values && w.Digest == oldEntry.Digest && w.Values == oldEntry.Values {
		t.message(name + " is up to date: same image and values.")
		return map[string]any{"name": name, "changed": false}, nil
	}
	n := 1 - old.N
	t.step("checkout", fmt.Sprintf("Checking out %s into %s", img.Name, h.SlotPath(name, n)))
	slot, err := containers.PrepareSlot(ctx, e.sr.Repo(), h, containers.PrepareOptions{
		Name: name, Image: img, ImageName: img.Name, Set: set, Slot: n, AddTemp: t.addTemp})
	if err != nil {
		return nil, invalid(err)
	}
	if _, err := h.SaveValues(set); err != nil {
		return nil, err
	}
	wasRunning := e.running(ctx, h, name)
	entry := containerEntry{Image: img.Name, Digest: img.Digest, Values: vd, Follow: c.want[name].Follow}
	err = e.switchSlot(ctx, t, h, name, n, wasRunning)
	t.dropTemp(slot.Dir)
	if err == nil {
		var d deploy.Deployment
		if d, err = e.commitContainers(ctx, t, c, name, &entry); err == nil {
			t.message(fmt.Sprintf("Updated %s to %s (%s), slot %d, in generation %s.", name, img.Name, img.Digest, n, d.ID()))
			return map[string]any{"name": name, "image": img.Name, "digest": img.Digest, "slot": int64(n), "deployment": d.ID(), "changed": true}, nil
		}
	}
	t.message(fmt.Sprintf("Update of %s failed (%v); rolling back to slot %d.", name, err, old.N))
	if rerr := e.switchBack(t, h, name, old.N, wasRunning); rerr != nil {
		return nil, fmt.Errorf("update %s failed: %w; and rolling back failed too: %v", name, err, rerr)
	}
	return nil, fmt.Errorf("update %s failed and was rolled back to the previous version (slot %d): %w", name, old.N, err)
}

// switchBack puts slot n of name live again after a failed or cancelled
// change, with a context of its own.
func (e *Engine) switchBack(t *txn, h containers.Host, name string, n int, start bool) error {
	uctx, cancel := undoContext()
	defer cancel()
	return e.switchSlot(uctx, t, h, name, n, start)
}

func (e *Engine) containerRollback(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	name := t.rec.Arg
	c, err := e.containerChangeStart(ctx)
	if err != nil {
		return nil, err
	}
	h := c.h
	cur, err := activeSlot(h, name)
	if err != nil {
		return nil, err
	}
	other, err := containers.ReadSlot(h, name, 1-cur.N)
	if err != nil {
		return nil, err
	}
	if other == nil {
		return nil, errdefs.Errorf(errdefs.ErrNotFound, "container %s has no previous version to roll back to", name)
	}
	entry, err := slotEntry(h, other)
	if err != nil {
		return nil, err
	}
	entry.Follow = c.want[name].Follow
	wasRunning := e.running(ctx, h, name)
	err = e.switchSlot(ctx, t, h, name, other.N, wasRunning)
	if err == nil {
		var d deploy.Deployment
		if d, err = e.commitContainers(ctx, t, c, name, &entry); err == nil {
			t.message(fmt.Sprintf("Rolled %s back to slot %d (%s) in generation %s.", name, other.N, other.Info.Digest, d.ID()))
			return map[string]any{"name": name, "digest": other.Info.Digest, "slot": int64(other.N), "deployment": d.ID(), "changed": true}, nil
		}
	}
	if rerr := e.switchBack(t, h, name, cur.N, wasRunning); rerr != nil {
		return nil, fmt.Errorf("roll back %s failed: %w; and restoring slot %d failed too: %v", name, err, cur.N, rerr)
	}
	return nil, fmt.Errorf("roll back %s failed; slot %d is still live: %w", name, cur.N, err)
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
	h := c.h
	if _, err := activeSlot(h, name); err != nil {
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
	if h, _, err = e.host(ctx); err != nil {
		return nil, err
	}
	t.step("uninstall", "Stopping and removing "+name)
	kept, err := e.removeContainer(ctx, h, name)
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
// origin names runs the recorded image with the recorded values (the
// matching slot is activated, or rendered again from the repo), and
// containers it does not name are removed. Run at start and after every
// transaction, so an OS rollback rolls the containers back too.
func (e *Engine) reconcile(ctx context.Context) error {
	h, _, err := e.host(ctx)
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
	for name, err := range bad {
		e.log.Error("reconcile: keeping a container whose [containers] entry cannot be read", "container", name, "err", err)
	}
	installed, err := h.Installed()
	if err != nil {
		return err
	}
	if len(want) == 0 && len(installed) == 0 {
		return nil
	}
	direct := e.containerConfig().ServiceManager == "direct"
	var errs []error
	for _, name := range installed {
		if _, ok := want[name]; !ok && bad[name] == nil {
			e.log.Info("reconcile: removing a container the generation does not have", "container", name)
			if _, err := e.removeContainer(ctx, h, name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := e.reconcileOne(ctx, h, name, want[name], direct); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) reconcileOne(ctx context.Context, h containers.Host, name string, w containerEntry, direct bool) error {
	svc, err := e.services(ctx, h)
	if err != nil {
		return err
	}
	n, err := h.ActiveSlot(name)
	if err != nil {
		return err
	}
	var slots [2]*containers.Slot
	for i := 0; i < 2; i++ {
		slots[i], _ = containers.ReadSlot(h, name, i)
	}
	if n >= 0 && slots[n].Matches(w.Digest, w.Values) {
		if !h.HostUpToDate(name) {
			if _, err := containers.ApplyHostFiles(h, name); err != nil {
				return err
			}
			svc.Reload(ctx)
		}
		if direct && slots[n].Info.HasContainerService {
			return svc.Start(ctx, name) // adopts a running container
		}
		return nil
	}
	target := -1
	for i := 0; i < 2; i++ {
		if slots[i].Matches(w.Digest, w.Values) {
			target = i
		}
	}
	if target < 0 {
		// Render the generation's container again into the inactive slot.
		img, err := containers.FindImage(e.sr.Repo(), w.Image+"@"+w.Digest)
		if err != nil {
			return err
		}
		set, err := h.LoadValues(w.Values)
		if err != nil {
			return err
		}
		target = 0
		if n == 0 {
			target = 1
		}
		if _, err := containers.PrepareSlot(ctx, e.sr.Repo(), h, containers.PrepareOptions{
			Name: name, Image: img, ImageName: w.Image, Set: set, Slot: target}); err != nil {
			return err
		}
	}
	e.log.Info("reconcile: activating the generation's version", "container", name, "slot", target, "digest", w.Digest)
	svc.Stop(ctx, name)
	if err := containers.Activate(h, name, target); err != nil {
		return err
	}
	if _, err := containers.ApplyHostFiles(h, name); err != nil {
		return err
	}
	if err := svc.Reload(ctx); err != nil {
		return err
	}
	s, err := activeSlot(h, name)
	if err != nil || !s.Info.HasContainerService {
		return err
	}
	svc.Enable(ctx, name)
	return svc.Start(ctx, name)
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
	ctx := context.Background()
	h, _, err := e.host(ctx)
	if err != nil {
		return nil, err
	}
	names, err := h.Installed()
	if err != nil {
		return nil, errdefs.Wrap(errdefs.ErrFailed, err)
	}
	out := make([]map[string]any, 0, len(names))
	for _, name := range names {
		s, err := activeSlot(h, name)
		if err != nil {
			continue
		}
		state := containers.StateInactive
		if svc, err := e.services(ctx, h); err == nil && s.Info.HasContainerService {
			if st, err := svc.State(ctx, name); err == nil {
				state = st
			}
		}
		set, _ := containers.SetValues(s.Dir)
		if set == nil {
			set = map[string]string{}
		}
		out = append(out, map[string]any{"name": name, "image": s.Info.Image, "digest": s.Info.Digest,
			"slot": strconv.Itoa(s.N), "state": state, "values": set})
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
	h, _, err := e.host(ctx)
	if err != nil {
		return -1, err
	}
	if _, err := activeSlot(h, name); err != nil {
		return -1, err
	}
	svc, err := e.services(ctx, h)
	if err != nil {
		return -1, err
	}
	if st, err := svc.State(ctx, name); err != nil || st != containers.StateRunning {
		return -1, errdefs.Errorf(errdefs.ErrInvalidArgument, "container %s is not running (state %s): start it first", name, st)
	}
	code, err := svc.Exec(ctx, name, args, stdin, stdout, stderr)
	if err != nil {
		return -1, errdefs.Wrap(errdefs.ErrFailed, err)
	}
	return int32(code), nil
}
