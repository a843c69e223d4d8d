package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// ServiceManager is "systemd" (the default: systemd over D-Bus) or
	// "direct" (hostd runs runc itself and supervises the containers, for
	// hosts whose PID 1 is not systemd).
	ServiceManager string
	// SystemdAddress is the D-Bus address of systemd; "" is the system bus
	// (see NewSystemd).
	SystemdAddress string
	// Runtime is the OCI runtime; "" finds runc in $PATH.
	Runtime string
	// StateDir is the direct service manager's runc state directory
	// (runc --root).
	StateDir string
	// BeforeActivate, when set, is called before a slot is made the active
	// one, with the change's context: a hook for crash tests (hostd
	// --debug-pause-before activate). Nil in production.
	BeforeActivate func(ctx context.Context)
}

// Reporter receives what a live change does: the daemon's transaction
// journals the steps and temporary paths and shows the messages.
type Reporter interface {
	// Step announces a step before it is done.
	Step(stage, text string)
	// Message tells the user something.
	Message(text string)
	// Progress reports the progress of a pull.
	Progress(p PullProgress)
	// AddTemp is told of a temporary path before it is created; DropTemp
	// when it became part of the live state (and must not be removed).
	AddTemp(path string)
	DropTemp(path string)
}

// Manager runs the live half of system containers on a host: install,
// update, rollback and removal of a container, the automatic switch back
// after a failed start, reconciling the host with a generation's set,
// listing and exec. It connects the service manager and probes the
// runtime's features on first use. Recording the set in a generation is the
// caller's: each change returns the Entry to record and an Undo for when
// that fails.
type Manager struct {
	cfg  ManagerConfig
	repo *deploy.Repo
	log  *slog.Logger

	mu       sync.Mutex
	services ServiceManager
	features *RuntimeFeatures
}

// NewManager returns a manager of the containers whose images are in repo.
// Nothing is connected or probed until a method needs it.
func NewManager(cfg ManagerConfig, repo *deploy.Repo, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Runtime == "" {
		if p, err := exec.LookPath("runc"); err == nil {
			cfg.Runtime = p
		} else {
			cfg.Runtime = DefaultRuntime
		}
	}
	if cfg.ServiceManager == "" {
		cfg.ServiceManager = "systemd"
	}
	return &Manager{cfg: cfg, repo: repo, log: log}
}

// Close releases the service manager (the direct one stops supervising;
// the containers keep running).
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.services == nil {
		return nil
	}
	err := m.services.Close()
	m.services = nil
	return err
}

// ready completes h with the runtime and its features and makes its
// directory.
func (m *Manager) ready(ctx context.Context, h Host) (Host, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h.Runtime = m.cfg.Runtime
	if m.features == nil {
		f, err := ProbeRuntime(ctx, m.cfg.Runtime)
		if err != nil {
			return h, err
		}
		m.features = &f
	}
	h.RuntimeFeatures = *m.features
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return h, err
	}
	return h, nil
}

// svc returns the service manager, connecting on first use.
func (m *Manager) svc(ctx context.Context, h Host) (ServiceManager, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.services != nil {
		return m.services, nil
	}
	var err error
	switch m.cfg.ServiceManager {
	case "direct":
		m.services, err = NewDirect(h, m.cfg.StateDir, m.log)
	case "systemd":
		m.services, err = NewSystemd(ctx, m.cfg.SystemdAddress, m.cfg.Runtime)
	default:
		err = fmt.Errorf("unknown service manager %q: use systemd or direct", m.cfg.ServiceManager)
	}
	if err != nil {
		m.services = nil
		return nil, errdefs.Wrap(errdefs.ErrFailed, err)
	}
	return m.services, nil
}

// undoTimeout bounds the work that puts the live state back after a failed change.
const undoTimeout = 2 * time.Minute

// undoContext is the context for putting things back after a failure or a
// cancel: not the cancelled change's, but with a deadline.
func undoContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), undoTimeout)
}

func invalid(err error) error { return errdefs.Wrap(errdefs.ErrInvalidArgument, err) }

// Pull fetches an image into the repo (see the function Pull), reporting
// its progress and what it fetched. A refusal by the signature policy is
// errdefs.ErrUnauthorized.
func (m *Manager) Pull(ctx context.Context, h Host, name string, r Reporter) (*PullResult, error) {
	r.Step("pull", "Pulling "+name)
	res, err := Pull(ctx, m.repo, name, PullOptions{HostRoot: h.Root, AddTemp: r.AddTemp, Progress: r.Progress})
	var pe *PolicyError
	if errors.As(err, &pe) {
		return nil, errdefs.Wrap(errdefs.ErrUnauthorized, err)
	}
	if err != nil {
		return nil, err
	}
	r.Message(fmt.Sprintf("Pulled %s (%s): %d layers fetched, %d already present, %d bytes received.",
		res.Image.Name, res.Image.Digest, res.LayersFetched, res.LayersPresent, res.Bytes))
	if len(res.Dropped) > 0 {
		r.Message(fmt.Sprintf("Left out %d device nodes and FIFOs (runc provides /dev).", len(res.Dropped)))
	}
	return res, nil
}

// image finds a pulled image, pulling it when it is not there.
func (m *Manager) image(ctx context.Context, h Host, name string, r Reporter) (*Image, error) {
	img, err := FindImage(m.repo, name)
	if err == nil {
		return img, nil
	}
	if !errors.Is(err, deploy.ErrNotFound) {
		return nil, err
	}
	if _, err := m.Pull(ctx, h, name, r); err != nil {
		return nil, err
	}
	return FindImage(m.repo, name)
}

// Change is a live change made by Install, Update or Rollback.
type Change struct {
	// Changed is false when there was nothing to do (Update of a
	// container already at the image and values asked for).
	Changed bool
	// Entry is what the new generation records for the container.
	Entry Entry
	// Slot is the slot now active.
	Slot int
	// Undo puts the live state back as it was before the change, for when
	// the new generation cannot be written. It runs with a context of its
	// own (with a deadline), not the failed change's, and returns the
	// error to report: cause, saying what was put back and what was not.
	// Nil when nothing changed.
	Undo func(cause error) error
}

// InstallRequest is a container to install.
type InstallRequest struct {
	// Name is the container's name (see DefaultName).
	Name string
	// Image is the image reference (or the digest of a pulled image);
	// pulled when it is not in the repo.
	Image string
	// Set are the NAME=VALUE template values given with --set.
	Set []string
	// Follow records that the container follows the image's tag.
	Follow bool
	// Recorded is what the generation the change starts from records for
	// Name: an install of a name it has is refused. Zero when none.
	Recorded Entry
}

// Install checks the image out into slot 0 of a new container, activates
// it, puts its host files in place and starts its service. When the
// service does not start, the container is removed again and the error
// says why; on every other error nothing is left either.
func (m *Manager) Install(ctx context.Context, h Host, req InstallRequest, r Reporter) (Change, error) {
	name := req.Name
	if err := ValidateName(name); err != nil {
		return Change{}, invalid(err)
	}
	set, err := ParseSetValues(req.Set)
	if err != nil {
		return Change{}, invalid(err)
	}
	if h, err = m.ready(ctx, h); err != nil {
		return Change{}, err
	}
	if n, err := h.ActiveSlot(name); err != nil || n >= 0 || req.Recorded != (Entry{}) {
		return Change{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "a container named %s is already installed: update it (hostctl container update %s) or pick another --name", name, name)
	}
	img, err := m.image(ctx, h, req.Image, r)
	if err != nil {
		return Change{}, err
	}
	r.Step("checkout", fmt.Sprintf("Checking out %s into %s", img.Name, h.SlotPath(name, 0)))
	slot, err := PrepareSlot(ctx, m.repo, h, PrepareOptions{
		Name: name, Image: img, ImageName: img.Name, Set: set, Slot: 0, AddTemp: r.AddTemp})
	if err != nil {
		return Change{}, invalid(err)
	}
	vd, err := h.SaveValues(set)
	if err != nil {
		return Change{}, err
	}
	entry := Entry{Image: img.Name, Digest: img.Digest, Values: vd, Follow: req.Follow}
	m.beforeActivate(ctx)
	r.Step("activate", "Activating "+name)
	if err := Activate(h, name, 0); err != nil {
		return Change{}, err
	}
	// From here the container is live: if hostd dies before the new
	// generation is written, the reconcile at its start removes it again
	// (the generation does not have it), so the slot is no longer a
	// temporary path.
	r.DropTemp(slot.Dir)
	remove := func() {
		uctx, cancel := undoContext()
		defer cancel()
		if _, err := m.Remove(uctx, h, name); err != nil {
			m.log.Warn("remove a container whose install failed", "container", name, "err", err)
		}
	}
	if err := m.applyAndStart(ctx, h, name, true, r); err != nil {
		r.Message("The service did not start; removing " + name + " again.")
		remove()
		return Change{}, err
	}
	return Change{Changed: true, Entry: entry, Slot: 0, Undo: func(cause error) error {
		r.Message("The new generation could not be written; removing " + name + " again.")
		remove()
		return cause
	}}, nil
}

// UpdateRequest is a change of a container's image or values.
type UpdateRequest struct {
	// Name is the container.
	Name string
	// Set are NAME=VALUE values replacing those of the active slot.
	Set []string
	// Rebase, when set, is the image to move to instead of the one the
	// container runs (the newest of its tag is pulled when it is not in
	// the repo).
	Rebase string
	// Pull pulls the image (the container's own, or Rebase) first, so
	// that a tag moves the container to its newest image; without it the
	// image last pulled is used. A tag that has not moved fetches nothing.
	Pull bool
	// Recorded is what the generation the change starts from records for
	// Name (zero when none): the update is a no-op only when it already
	// records the image and values asked for, and the new entry keeps
	// its Follow.
	Recorded Entry
}

// Update checks the new image or values out into the inactive slot and
// switches to it (stop, activate, host files, start when it ran). When the
// switch fails, the previous slot is put back live and the error says so.
func (m *Manager) Update(ctx context.Context, h Host, req UpdateRequest, r Reporter) (Change, error) {
	name := req.Name
	h, err := m.ready(ctx, h)
	if err != nil {
		return Change{}, err
	}
	old, err := h.Active(name)
	if err != nil {
		return Change{}, err
	}
	set, err := SetValues(old.Dir)
	if err != nil {
		return Change{}, err
	}
	newSet, err := ParseSetValues(req.Set)
	if err != nil {
		return Change{}, invalid(err)
	}
	for k, v := range newSet {
		set[k] = v
	}
	imageName := old.Info.Image
	if req.Rebase != "" {
		imageName = req.Rebase
	}
	if req.Pull {
		if _, err := m.Pull(ctx, h, imageName, r); err != nil {
			return Change{}, err
		}
	}
	img, err := m.image(ctx, h, imageName, r)
	if err != nil {
		return Change{}, err
	}
	oldEntry, err := slotEntry(old)
	if err != nil {
		return Change{}, err
	}
	vd := ValuesDigest(set)
	if w := req.Recorded; img.Digest == old.Info.Digest && vd == oldEntry.Values && w.Digest == oldEntry.Digest && w.Values == oldEntry.Values {
		r.Message(name + " is up to date: same image and values.")
		oldEntry.Follow = w.Follow
		return Change{Entry: oldEntry, Slot: old.N}, nil
	}
	n := 1 - old.N
	r.Step("checkout", fmt.Sprintf("Checking out %s into %s", img.Name, h.SlotPath(name, n)))
	slot, err := PrepareSlot(ctx, m.repo, h, PrepareOptions{
		Name: name, Image: img, ImageName: img.Name, Set: set, Slot: n, AddTemp: r.AddTemp})
	if err != nil {
		return Change{}, invalid(err)
	}
	if _, err := h.SaveValues(set); err != nil {
		return Change{}, err
	}
	wasRunning := m.running(ctx, h, name)
	undo := func(cause error) error {
		r.Message(fmt.Sprintf("Update of %s failed (%v); rolling back to slot %d.", name, cause, old.N))
		if rerr := m.switchBack(h, name, old.N, wasRunning, r); rerr != nil {
			return fmt.Errorf("update %s failed: %w; and rolling back failed too: %v", name, cause, rerr)
		}
		return fmt.Errorf("update %s failed and was rolled back to the previous version (slot %d): %w", name, old.N, cause)
	}
	err = m.switchSlot(ctx, h, name, n, wasRunning, r)
	r.DropTemp(slot.Dir)
	if err != nil {
		return Change{}, undo(err)
	}
	entry := Entry{Image: img.Name, Digest: img.Digest, Values: vd, Follow: req.Recorded.Follow}
	return Change{Changed: true, Entry: entry, Slot: n, Undo: undo}, nil
}

// RollbackRequest is a container to put back to its other slot.
type RollbackRequest struct {
	// Name is the container.
	Name string
	// Recorded is what the generation the change starts from records for
	// Name (zero when none): the new entry keeps its Follow.
	Recorded Entry
}

// Rollback switches a container to its other slot, the version it ran
// before. When the switch fails, the current slot is put back live.
func (m *Manager) Rollback(ctx context.Context, h Host, req RollbackRequest, r Reporter) (Change, error) {
	name := req.Name
	h, err := m.ready(ctx, h)
	if err != nil {
		return Change{}, err
	}
	cur, err := h.Active(name)
	if err != nil {
		return Change{}, err
	}
	other, err := ReadSlot(h, name, 1-cur.N)
	if err != nil {
		return Change{}, err
	}
	if other == nil {
		return Change{}, errdefs.Errorf(errdefs.ErrNotFound, "container %s has no previous version to roll back to", name)
	}
	entry, err := slotEntry(other)
	if err != nil {
		return Change{}, err
	}
	entry.Follow = req.Recorded.Follow
	wasRunning := m.running(ctx, h, name)
	undo := func(cause error) error {
		if rerr := m.switchBack(h, name, cur.N, wasRunning, r); rerr != nil {
			return fmt.Errorf("roll back %s failed: %w; and restoring slot %d failed too: %v", name, cause, cur.N, rerr)
		}
		return fmt.Errorf("roll back %s failed; slot %d is still live: %w", name, cur.N, cause)
	}
	if err := m.switchSlot(ctx, h, name, other.N, wasRunning, r); err != nil {
		return Change{}, undo(err)
	}
	return Change{Changed: true, Entry: entry, Slot: other.N, Undo: undo}, nil
}

// Remove stops a container and removes it entirely: its slots, link, unit
// and host files. It returns the host files kept because they were changed
// on the host.
func (m *Manager) Remove(ctx context.Context, h Host, name string) (kept []string, err error) {
	if h, err = m.ready(ctx, h); err != nil {
		return nil, err
	}
	if svc, err := m.svc(ctx, h); err == nil {
		svc.Stop(ctx, name)
		svc.Disable(ctx, name)
		defer svc.Reload(ctx)
	}
	return RemoveContainer(h, name)
}

// Active reads the active slot of container name: errdefs.ErrNotFound when
// no such container is installed.
func (h Host) Active(name string) (*Slot, error) {
	n, err := h.ActiveSlot(name)
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, errdefs.Errorf(errdefs.ErrNotFound, "no container named %s is installed: `hostctl container list` shows them", name)
	}
	s, err := ReadSlot(h, name, n)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("container %s: its active slot %d is empty: uninstall and install it again", name, n)
	}
	return s, nil
}

// slotEntry is what a generation records of a slot (without Follow).
func slotEntry(s *Slot) (Entry, error) {
	set, err := SetValues(s.Dir)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Image: s.Info.Image, Digest: s.Info.Digest, Values: ValuesDigest(set)}, nil
}

func (m *Manager) beforeActivate(ctx context.Context) {
	if m.cfg.BeforeActivate != nil {
		m.cfg.BeforeActivate(ctx)
	}
}

// applyAndStart puts the active slot's files on the host and (re)starts the service.
func (m *Manager) applyAndStart(ctx context.Context, h Host, name string, start bool, r Reporter) error {
	r.Step("host-files", "Writing the unit, tmpfiles and host files of "+name)
	kept, err := ApplyHostFiles(h, name)
	if err != nil {
		return err
	}
	for _, k := range kept {
		r.Message("Left " + k + " alone: it existed or was changed on the host.")
	}
	svc, err := m.svc(ctx, h)
	if err != nil {
		return err
	}
	if err := svc.Reload(ctx); err != nil {
		return err
	}
	s, err := h.Active(name)
	if err != nil {
		return err
	}
	if !s.Info.HasContainerService || !start {
		return nil
	}
	if err := svc.Enable(ctx, name); err != nil {
		return err
	}
	r.Step("start", "Starting "+name)
	return svc.Start(ctx, name)
}

func (m *Manager) running(ctx context.Context, h Host, name string) bool {
	svc, err := m.svc(ctx, h)
	if err != nil {
		return false
	}
	st, err := svc.State(ctx, name)
	return err == nil && st != StateInactive
}

// switchSlot stops the service, points NAME at slot n, puts the host files
// in place and starts the service again when it ran.
func (m *Manager) switchSlot(ctx context.Context, h Host, name string, n int, start bool, r Reporter) error {
	if svc, err := m.svc(ctx, h); err == nil {
		r.Step("stop", "Stopping "+name)
		if err := svc.Stop(ctx, name); err != nil {
			return err
		}
	}
	m.beforeActivate(ctx)
	r.Step("activate", fmt.Sprintf("Activating slot %d of %s", n, name))
	if err := Activate(h, name, n); err != nil {
		return err
	}
	return m.applyAndStart(ctx, h, name, start, r)
}

// switchBack puts slot n of name live again after a failed or cancelled
// change, with a context of its own.
func (m *Manager) switchBack(h Host, name string, n int, start bool, r Reporter) error {
	uctx, cancel := undoContext()
	defer cancel()
	return m.switchSlot(uctx, h, name, n, start, r)
}

// Reconcile brings the containers of h in line with a generation's set
// want: each container it names runs the recorded image with the recorded
// values (the matching slot is activated, or rendered again from the repo),
// and the containers it does not name are removed, except those in keep
// (whose entry could not be read: they are left as they are, never acted
// on as if the generation did not have them).
func (m *Manager) Reconcile(ctx context.Context, h Host, want map[string]Entry, keep map[string]bool) error {
	installed, err := h.Installed()
	if err != nil {
		return err
	}
	if len(want) == 0 && len(installed) == 0 {
		return nil
	}
	if h, err = m.ready(ctx, h); err != nil {
		return err
	}
	var errs []error
	for _, name := range installed {
		if _, ok := want[name]; !ok && !keep[name] {
			m.log.Info("reconcile: removing a container the generation does not have", "container", name)
			if _, err := m.Remove(ctx, h, name); err != nil {
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
		if err := m.reconcileOne(ctx, h, name, want[name]); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) reconcileOne(ctx context.Context, h Host, name string, w Entry) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	svc, err := m.svc(ctx, h)
	if err != nil {
		return err
	}
	n, err := h.ActiveSlot(name)
	if err != nil {
		return err
	}
	var slots [2]*Slot
	for i := 0; i < 2; i++ {
		slots[i], _ = ReadSlot(h, name, i)
	}
	if n >= 0 && slots[n].Matches(w.Digest, w.Values) {
		if !h.HostUpToDate(name) {
			if _, err := ApplyHostFiles(h, name); err != nil {
				return err
			}
			svc.Reload(ctx)
		}
		if m.cfg.ServiceManager == "direct" && slots[n].Info.HasContainerService {
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
		img, err := FindImage(m.repo, w.Image+"@"+w.Digest)
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
		if _, err := PrepareSlot(ctx, m.repo, h, PrepareOptions{
			Name: name, Image: img, ImageName: w.Image, Set: set, Slot: target}); err != nil {
			return err
		}
	}
	m.log.Info("reconcile: activating the generation's version", "container", name, "slot", target, "digest", w.Digest)
	svc.Stop(ctx, name)
	if err := Activate(h, name, target); err != nil {
		return err
	}
	if _, err := ApplyHostFiles(h, name); err != nil {
		return err
	}
	if err := svc.Reload(ctx); err != nil {
		return err
	}
	s, err := h.Active(name)
	if err != nil || !s.Info.HasContainerService {
		return err
	}
	svc.Enable(ctx, name)
	return svc.Start(ctx, name)
}

// Container is an installed container as `hostctl container list` shows it.
type Container struct {
	Name, Image, Digest string
	// Slot is the active slot.
	Slot int
	// State is StateRunning, StateFailed or StateInactive.
	State string
	// Values are the --set values.
	Values map[string]string
}

// List lists the installed containers of h, sorted by name.
func (m *Manager) List(ctx context.Context, h Host) ([]Container, error) {
	h, err := m.ready(ctx, h)
	if err != nil {
		return nil, err
	}
	names, err := h.Installed()
	if err != nil {
		return nil, errdefs.Wrap(errdefs.ErrFailed, err)
	}
	out := make([]Container, 0, len(names))
	for _, name := range names {
		s, err := h.Active(name)
		if err != nil {
			continue
		}
		state := StateInactive
		if svc, err := m.svc(ctx, h); err == nil && s.Info.HasContainerService {
			if st, err := svc.State(ctx, name); err == nil {
				state = st
			}
		}
		set, _ := SetValues(s.Dir)
		if set == nil {
			set = map[string]string{}
		}
		out = append(out, Container{Name: name, Image: s.Info.Image, Digest: s.Info.Digest, Slot: s.N, State: state, Values: set})
	}
	return out, nil
}

// SlotImages lists the digests of the images the slots of h's containers
// were made from: an image prune keeps them.
func (m *Manager) SlotImages(h Host) ([]string, error) {
	names, err := h.Installed()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		for i := 0; i < 2; i++ {
			if s, err := ReadSlot(h, n, i); err == nil && s != nil {
				out = append(out, s.Info.Digest)
			}
		}
	}
	return out, nil
}

// Exec runs args in the running container name with the given stdio and
// returns its exit status. A container that is not running is
// errdefs.ErrInvalidArgument.
func (m *Manager) Exec(ctx context.Context, h Host, name string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if err := ValidateName(name); err != nil {
		return -1, invalid(err)
	}
	h, err := m.ready(ctx, h)
	if err != nil {
		return -1, err
	}
	if _, err := h.Active(name); err != nil {
		return -1, err
	}
	svc, err := m.svc(ctx, h)
	if err != nil {
		return -1, err
	}
	if st, err := svc.State(ctx, name); err != nil || st != StateRunning {
		return -1, errdefs.Errorf(errdefs.ErrInvalidArgument, "container %s is not running (state %s): start it first", name, st)
	}
	code, err := svc.Exec(ctx, name, args, stdin, stdout, stderr)
	if err != nil {
		return -1, errdefs.Wrap(errdefs.ErrFailed, err)
	}
	return code, nil
}

// SyncEtc makes next, the /etc (and root) of the generation that boots next
// when it is not the one that runs, hold the container files of want as the
// live /etc holds them: the unit, its enablement links, the tmpfiles.d file
// and the host files of each container's active slot; and drops the unit,
// links and tmpfiles.d file of each container in gone. A live change writes
// the live (booted) /etc, and libostree copies /etc into a new deployment
// only when it is written, so without this the next boot would start the
// containers as some earlier change left them in that deployment's /etc.
func (m *Manager) SyncEtc(live, next Host, want map[string]Entry, gone []string) error {
	if live.Etc == next.Etc {
		return nil
	}
	next.Dir = live.Dir // the slots are in /var, shared by every deployment
	var errs []error
	for _, name := range sortedEntryNames(want) {
		if n, err := live.ActiveSlot(name); err != nil || n < 0 {
			continue // reconcile reported it
		}
		if _, err := ApplyHostFiles(next, name); err != nil {
			errs = append(errs, fmt.Errorf("container %s: files for the next boot in %s: %w", name, next.Etc, err))
			continue
		}
		links, _ := filepath.Glob(filepath.Join(live.Etc, "systemd", "system", "*.wants", unitName(name)))
		for _, l := range links {
			rel, _ := filepath.Rel(live.Etc, l)
			dest := filepath.Join(next.Etc, rel)
			target, err := os.Readlink(l)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if cur, err := os.Readlink(dest); err == nil && cur == target {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
				errs = append(errs, err)
				continue
			}
			os.Remove(dest)
			if err := os.Symlink(target, dest); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, name := range gone {
		if _, ok := want[name]; ok || ValidateName(name) != nil {
			continue
		}
		links, _ := filepath.Glob(filepath.Join(next.Etc, "systemd", "system", "*.wants", unitName(name)))
		for _, p := range append(links, next.UnitPath(name), next.TmpfilesPath(name)) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func sortedEntryNames(m map[string]Entry) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
