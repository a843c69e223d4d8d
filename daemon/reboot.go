package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hostctl/hostctl/containers"
	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/fleet"
)

// Reboots (hostd.conf's RebootStrategy): under a strategy other than off,
// the automatic policy stage writes its update staged with the
// finalization locked and records it here (the reboot record); the reboot
// loop then finalizes it and reboots, as `hostctl finalize --reboot` does,
// when the strategy lets it:
//
//   - immediate: at once;
//   - periodic: inside a maintenance window ([Periodic] Window=);
//   - fleet: while holding one of the N slots of its group in the fleet
//     lock ([Fleet]: etcd directly, or a FleetLock server). The slot is
//     taken before the finalization and kept across the reboot; once the
//     host is up again on the new deployment and healthy (systemd reports
//     the boot complete, every system container of the generation runs),
//     hostd gives it back.
//
// Every step is written to the record before it is taken, so a crash or a
// restart of hostd goes on from where it stopped: an update staged by hand
// (hostctl upgrade --stage) is never the loop's. hostd holds off its idle
// exit while a record exists, and must start at boot (systemctl enable
// hostd.service) to give the slot back.

var keyReboot = []byte("reboot")

// rebootRecord is the reboot loop's progress, kept in the state database.
type rebootRecord struct {
	// Checksum and Deployment are the staged update it reboots into.
	Checksum   string    `json:"checksum"`
	Deployment string    `json:"deployment"`
	Version    string    `json:"version,omitempty"`
	Staged     time.Time `json:"staged"`
	// Group is the fleet group a slot may be held in (written before the
	// slot is asked for), with the backend it was asked of.
	Group   string `json:"group,omitempty"`
	Backend string `json:"backend,omitempty"`
	// Lock is where that slot was asked for: a slot is given back to the
	// lock it was taken from, even after hostd.conf changed.
	Lock *lockPlace `json:"lock,omitempty"`
	// Rebooting says the finalization and the reboot were asked for.
	Rebooting bool `json:"rebooting,omitempty"`
	// AwaitHealth says this boot came from a fleet reboot whose health
	// was not yet confirmed when another update was staged: the slot is
	// still given back only once this boot is healthy.
	AwaitHealth bool `json:"await-health,omitempty"`
}

// lockPlace is the fleet lock a slot was taken from ([Fleet] without the
// credentials, which stay in hostd.conf).
type lockPlace struct {
	Endpoints []string `json:"endpoints,omitempty"`
	URL       string   `json:"url,omitempty"`
	Prefix    string   `json:"prefix,omitempty"`
	CAFile    string   `json:"ca-file,omitempty"`
	CertFile  string   `json:"cert-file,omitempty"`
	KeyFile   string   `json:"key-file,omitempty"`
}

func placeOf(f FleetSettings) *lockPlace {
	return &lockPlace{Endpoints: f.Endpoints, URL: f.URL, Prefix: f.Prefix, CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile}
}

// same tells whether f names the lock l is (nil: none).
func (l *lockPlace) same(f FleetSettings) bool {
	return l != nil && slices.Equal(l.Endpoints, f.Endpoints) && l.URL == f.URL && l.Prefix == f.Prefix
}

// at is s with its fleet lock moved to where the slot was taken.
func (l *lockPlace) at(s Settings) Settings {
	if l != nil {
		s.Fleet.Endpoints, s.Fleet.URL, s.Fleet.Prefix = l.Endpoints, l.URL, l.Prefix
		s.Fleet.CAFile, s.Fleet.CertFile, s.Fleet.KeyFile = l.CAFile, l.CertFile, l.KeyFile
	}
	return s
}

func (j *journal) putReboot(r *rebootRecord) error {
	return j.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCache)
		if err != nil {
			return err
		}
		if r == nil {
			return b.Delete(keyReboot)
		}
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return b.Put(keyReboot, data)
	})
}

func (j *journal) reboot() (*rebootRecord, error) {
	var r *rebootRecord
	err := j.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCache)
		if b == nil {
			return nil
		}
		data := b.Get(keyReboot)
		if data == nil {
			return nil
		}
		r = &rebootRecord{}
		return json.Unmarshal(data, r)
	})
	return r, err
}

// lockStaged tells the automatic policy stage to lock the finalization of
// what it stages: hostd finalizes it itself under every strategy but off.
func (s Settings) lockStaged() bool { return s.RebootStrategy != "" && s.RebootStrategy != RebootOff }

// recordStaged records the staged deployment the automatic policy just
// wrote as the reboot loop's to finalize, and wakes the loop.
func (e *Engine) recordStaged(ctx context.Context) error {
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if d.Staged {
			prev, _ := e.journal.reboot()
			r := &rebootRecord{Checksum: d.Checksum, Deployment: d.ID(), Version: d.Version, Staged: time.Now().UTC()}
			if prev != nil && prev.Group != "" {
				// A slot may still be held from before: keep knowing of it,
				// and whether this boot still has to prove healthy.
				r.Group, r.Backend, r.Lock = prev.Group, prev.Backend, prev.Lock
				r.AwaitHealth = prev.AwaitHealth || (prev.Rebooting && e.bootedInto(prev.Checksum))
			}
			if err := e.journal.putReboot(r); err != nil {
				return err
			}
			e.wakeReboot()
			return nil
		}
	}
	return errors.New("the update was staged, but libostree lists no staged deployment")
}

// wakeReboot makes the reboot loop look again now.
func (e *Engine) wakeReboot() {
	select {
	case e.rebootWake <- struct{}{}:
	default:
	}
}

// RebootPending tells whether the reboot loop has work left: an update to
// reboot into or a fleet slot to give back. hostd does not exit for being
// idle meanwhile.
func (e *Engine) RebootPending() bool {
	r, err := e.journal.reboot()
	return err == nil && r != nil
}

// rebootLoop runs the reboot strategy until the engine stops.
func (e *Engine) rebootLoop() {
	defer close(e.rebootDone)
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-e.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		st, wait := e.rebootStep(ctx)
		cancel()
		e.setRebootState(st)
		timer := time.NewTimer(wait)
		select {
		case <-e.stop:
			timer.Stop()
			return
		case <-e.rebootWake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// idleWait is how long the loop sleeps with nothing to do; a staged
// update or a reload wakes it sooner.
const idleWait = time.Hour

// healthRetry bounds how often the health of a new boot is looked at.
const healthRetry = 5 * time.Second

func (e *Engine) setRebootState(st dbus.RebootState) {
	e.mu.Lock()
	old := e.rebootState
	e.rebootState = st
	e.mu.Unlock()
	if !rebootStateEqual(old, st) {
		e.log.Info("reboot strategy", "strategy", st.Strategy, "state", st.State, "message", st.Message)
		e.notify()
	}
}

func rebootStateEqual(a, b dbus.RebootState) bool {
	return a.Strategy == b.Strategy && a.State == b.State && a.Message == b.Message && a.Pending == b.Pending &&
		a.WindowStart == b.WindowStart && a.SlotHeld == b.SlotHeld && strings.Join(a.Holders, ",") == strings.Join(b.Holders, ",")
}

// rebootStep does the next step of the strategy and says what hostd waits
// for and how long before the next look.
func (e *Engine) rebootStep(ctx context.Context) (dbus.RebootState, time.Duration) {
	s := e.Settings()
	st := dbus.RebootState{Strategy: s.RebootStrategy, State: "idle"}
	if s.Periodic != nil {
		st.Windows = s.Periodic.String()
	}
	retry := s.Fleet.RetryInterval
	if retry <= 0 {
		retry = defaultRetryInterval
	}
	fail := func(format string, a ...any) (dbus.RebootState, time.Duration) {
		st.State, st.Message = "error", fmt.Sprintf(format, a...)
		return st, retry
	}
	var idErr error
	if s.RebootStrategy == RebootFleet {
		st.Group = s.Fleet.Group
		st.Slots = uint32(s.Fleet.Slots)
		st.HostID, idErr = e.hostID(ctx)
	}
	rec, err := e.journal.reboot()
	if err != nil {
		return fail("read the reboot record: %v", err)
	}
	if rec == nil {
		if s.RebootStrategy == RebootPeriodic && s.Periodic != nil {
			// Nothing waits, but status names the next window all the same;
			// look again when it opens or closes.
			now := time.Now()
			start, end := s.Periodic.Next(now)
			st.WindowStart, st.WindowEnd = unixOrZero(start), unixOrZero(end)
			edge := start
			if !now.Before(start) {
				edge = end
			}
			if !edge.IsZero() {
				return st, max(time.Second, min(time.Until(edge)+time.Second, idleWait))
			}
		}
		return st, idleWait
	}
	st.Pending = rec.Checksum
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return fail("read the deployments: %v", err)
	}
	var staged *deploy.Deployment
	for i := range deps {
		if deps[i].Staged && deps[i].Checksum == rec.Checksum {
			staged = &deps[i]
		}
	}
	if staged == nil {
		// Rebooted (the staged deployment is gone: finalized at shutdown),
		// or it was dropped by a later change: give back what is held.
		return e.afterReboot(ctx, s, rec, st, retry)
	}
	if rec.Group != "" && s.RebootStrategy != RebootFleet && !rec.Rebooting && !rec.AwaitHealth {
		// No longer a fleet host: a slot maybe held is not needed.
		if _, err := e.releaseSlot(ctx, s, rec, st.HostID); err != nil {
			return fail("give back the slot in group %s (RebootStrategy is no longer fleet): %v", rec.Group, err)
		}
		rec.Group, rec.Backend, rec.Lock = "", "", nil
		if err := e.journal.putReboot(rec); err != nil {
			return fail("write the reboot record: %v", err)
		}
	}
	if rec.Rebooting && e.rebootAskedFor(rec.Checksum) {
		// Finalized and the reboot asked for by this hostd: the host is
		// going down; asking again would finalize and reboot twice.
		st.State, st.Message, st.SlotHeld = "rebooting", "rebooting into "+nameOf(rec), rec.Group != ""
		return st, retry
	}
	switch s.RebootStrategy {
	case RebootImmediate:
	case RebootPeriodic:
		now := time.Now()
		start, end := s.Periodic.Next(now)
		st.WindowStart, st.WindowEnd = unixOrZero(start), unixOrZero(end)
		if !s.Periodic.Contains(now) {
			st.State = "waiting-window"
			st.Message = fmt.Sprintf("staged %s waits for the maintenance window at %s (until %s)", nameOf(rec),
				start.In(s.Periodic.Location).Format(time.RFC3339), end.In(s.Periodic.Location).Format("15:04 MST"))
			return st, min(time.Until(start)+time.Second, idleWait)
		}
	case RebootFleet:
		if idErr != nil {
			// No id, no slot: the fleet lock cannot tell this host from another.
			return fail("staged %s waits: this host has no fleet id: %v", nameOf(rec), idErr)
		}
		if rec.Group != "" && rec.Lock == nil {
			rec.Lock = placeOf(s.Fleet) // recorded by a hostd that did not note where
		}
		if moved := rec.Group != s.Fleet.Group || rec.Backend != s.Fleet.Backend || !rec.Lock.same(s.Fleet); moved {
			if rec.Group != "" {
				// Moved to another group, backend or lock with a slot maybe held: give it back first.
				if _, err := e.releaseSlot(ctx, s, rec, st.HostID); err != nil {
					return fail("give back the slot in group %s: %v", rec.Group, err)
				}
			}
			rec.Group, rec.Backend, rec.Lock = s.Fleet.Group, s.Fleet.Backend, placeOf(s.Fleet)
			if err := e.journal.putReboot(rec); err != nil {
				return fail("write the reboot record: %v", err)
			}
		}
		fs, err := e.acquireSlot(ctx, s, st.HostID)
		st.Holders, st.Slots = fs.Holders, uint32(fs.Slots)
		var taken *fleet.SlotsTakenError
		var refused *fleet.RefusedError
		switch {
		case errors.As(err, &taken):
			st.State = "waiting-slot"
			st.Message = fmt.Sprintf("waiting for a fleet slot in group %s: %d of %d taken by %s", fs.Group, len(fs.Holders), fs.Slots, strings.Join(fs.Holders, ", "))
			return st, retry
		case errors.As(err, &refused):
			st.State = "waiting-slot"
			st.Message = fmt.Sprintf("waiting for a fleet slot in group %s: the FleetLock server said %s", s.Fleet.Group, refused.Error())
			return st, retry
		case err != nil:
			st.State = "waiting-slot"
			st.Message = fmt.Sprintf("waiting for a fleet slot in group %s: the fleet lock cannot be reached: %v", s.Fleet.Group, err)
			return st, retry
		}
		st.SlotHeld = true
	default:
		st.State = "waiting"
		st.Message = fmt.Sprintf("staged %s: the reboot strategy is %s: run `hostctl finalize --reboot` to boot it", nameOf(rec), s.RebootStrategy)
		return st, idleWait
	}
	// Finalize and reboot, as `hostctl finalize --reboot CHECKSUM`.
	rec.Rebooting = true
	if err := e.journal.putReboot(rec); err != nil {
		return fail("write the reboot record: %v", err)
	}
	e.askedReboot(rec.Checksum)
	if err := e.runInternal(ctx, "finalize", rec.Checksum, map[string]any{"reboot": true}); err != nil {
		e.askedReboot("")
		rec.Rebooting = false
		if werr := e.journal.putReboot(rec); werr != nil {
			e.log.Warn("write the reboot record", "err", werr)
		}
		if errdefs.IsBusy(err) {
			st.State, st.Message = "waiting", "another transaction is running: finalizing after it"
			return st, healthRetry
		}
		return fail("finalize and reboot into %s: %v", nameOf(rec), err)
	}
	st.State, st.Message = "rebooting", "rebooting into "+nameOf(rec)
	return st, retry
}

// afterReboot gives back the slot a reboot held once the host is healthy
// and drops the record. A host that came up on another deployment than the
// one it rebooted for (its finalization failed at shutdown, or it was
// rolled back) gives the slot back too once healthy, and says so: it holds
// no slot while it runs what it ran before.
func (e *Engine) afterReboot(ctx context.Context, s Settings, rec *rebootRecord, st dbus.RebootState, retry time.Duration) (dbus.RebootState, time.Duration) {
	missed := ""
	if rec.Rebooting {
		if e.rebootAskedFor(rec.Checksum) {
			// This hostd asked for the reboot and the staged deployment is
			// gone (replaced by hand meanwhile): the host is going down.
			st.State, st.Message, st.SlotHeld = "rebooting", "rebooting into "+nameOf(rec), rec.Group != ""
			return st, retry
		}
		if booted := e.bootedChecksum(); booted != "" && booted != rec.Checksum {
			missed = fmt.Sprintf("rebooted for %s, but this boot runs %.12s (did its finalization fail? `journalctl -b -1 -u ostree-finalize-staged`); the next automatic update stages it again", nameOf(rec), booted)
		}
	}
	if rec.Group != "" {
		if rec.Rebooting || rec.AwaitHealth {
			if ok, why := e.healthy(ctx); !ok {
				st.State, st.SlotHeld = "waiting-healthy", true
				st.Message = fmt.Sprintf("holding the fleet slot in group %s until this boot is healthy: %s", rec.Group, why)
				if missed != "" {
					st.Message += "; " + missed
				}
				return st, min(retry, healthRetry)
			}
		}
		id := st.HostID
		if id == "" {
			id, _ = e.hostID(ctx)
		}
		if _, err := e.releaseSlot(ctx, s, rec, id); err != nil {
			st.State, st.SlotHeld = "waiting-healthy", true
			st.Message = fmt.Sprintf("healthy, but giving back the fleet slot in group %s failed: %v; retrying", rec.Group, err)
			return st, retry
		}
		e.log.Info("fleet slot given back", "group", rec.Group, "host-id", id, "rebooted", rec.Rebooting)
	}
	if err := e.journal.putReboot(nil); err != nil {
		st.State, st.Message = "error", fmt.Sprintf("drop the reboot record: %v", err)
		return st, retry
	}
	st.Pending, st.SlotHeld = "", false
	if missed != "" {
		e.log.Warn("reboot", "message", missed)
		st.State, st.Message = "error", missed
		return st, idleWait
	}
	return st, 0
}

// bootedChecksum is the commit of the booted deployment ("" on a sysroot
// that is not booted).
func (e *Engine) bootedChecksum() string {
	for _, d := range e.cachedDeployments() {
		if d.Booted {
			return d.Checksum
		}
	}
	return ""
}

// bootedInto tells whether the host booted the commit checksum.
func (e *Engine) bootedInto(checksum string) bool {
	b := e.bootedChecksum()
	return b != "" && b == checksum
}

// askedReboot notes that this hostd finalized checksum and asked for the
// reboot ("": the ask failed).
func (e *Engine) askedReboot(checksum string) {
	e.mu.Lock()
	e.rebootAsked, e.rebootAskedAt = checksum, time.Now()
	e.mu.Unlock()
}

// rebootReask is how long after asking for a reboot that did not come
// hostd finalizes and asks again (systemd dropped the job, say).
const rebootReask = 10 * time.Minute

// rebootAskedFor tells whether this hostd asked for a reboot into checksum
// less than rebootReask ago.
func (e *Engine) rebootAskedFor(checksum string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rebootAsked != "" && e.rebootAsked == checksum && time.Since(e.rebootAskedAt) < rebootReask
}

func nameOf(r *rebootRecord) string {
	if r.Version != "" {
		return "version " + r.Version
	}
	return r.Deployment
}

func unixOrZero(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.Unix())
}

// healthy tells whether this boot is complete and healthy: systemd says
// the system is running (its boot finished and no unit failed), and every
// system container of the generation runs.
func (e *Engine) healthy(ctx context.Context) (bool, string) {
	if e.cfg.Containers.ServiceManager == "" || e.cfg.Containers.ServiceManager == "systemd" {
		ctx, cancel := context.WithTimeout(ctx, readTimeout)
		defer cancel()
		sd, err := containers.NewSystemd(ctx, e.cfg.Containers.SystemdAddress, "")
		if err != nil {
			return false, err.Error()
		}
		state, err := sd.SystemState(ctx)
		sd.Close()
		if err != nil {
			return false, err.Error()
		}
		if state != "running" {
			return false, fmt.Sprintf("systemd says the system is %s (`systemctl is-system-running`; `systemctl --failed` lists failed units)", state)
		}
	}
	// The generation's system containers ([containers] of the booted
	// deployment's origin, the default one's offline) must run.
	var gen *deploy.Deployment
	for _, d := range e.cachedDeployments() {
		if d.Booted || (gen == nil && d.Default) {
			d := d
			gen = &d
		}
	}
	if gen == nil {
		return true, ""
	}
	want, bad := desiredContainers(*gen)
	for name, err := range bad {
		return false, fmt.Sprintf("system container %s of the generation: %v", name, err)
	}
	if len(want) == 0 {
		return true, ""
	}
	list, err := e.Containers()
	if err != nil {
		return false, fmt.Sprintf("list the system containers: %v", err)
	}
	state := map[string]any{}
	for _, c := range list {
		if n, ok := c["name"].(string); ok {
			state[n] = c["state"]
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		switch st, ok := state[name]; {
		case !ok:
			return false, fmt.Sprintf("system container %s of the generation is not installed", name)
		case st != containers.StateRunning:
			return false, fmt.Sprintf("system container %s is %v", name, st)
		}
	}
	return true, ""
}

// hostID is this host's fleet id, from the booted deployment's
// /etc/machine-id (the default one's on a sysroot that is not booted).
func (e *Engine) hostID(ctx context.Context) (string, error) {
	deps := e.cachedDeployments()
	path := ""
	for _, d := range deps {
		if d.Booted {
			path = fleet.MachineIDPath
			if e.sr.Path() != "/" {
				path = filepath.Join(d.Path, "etc", "machine-id")
			}
		}
	}
	if path == "" {
		for _, d := range deps {
			if d.Default {
				path = filepath.Join(d.Path, "etc", "machine-id")
			}
		}
	}
	if path == "" {
		return "", errdefs.Errorf(errdefs.ErrNotFound, "no deployment to read the machine id of")
	}
	return fleet.ReadHostID(path)
}

// fleetLocker makes the client of the fleet lock of s (backend: etcd, run
// in the helper executable, or fleetlock).
func (e *Engine) fleetLocker(s Settings, backend string) fleet.Locker {
	f := s.Fleet
	if backend == BackendFleetLock {
		c, err := fleet.NewFleetLockClient(fleet.FleetLockConfig{URL: f.URL, CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile})
		if err != nil {
			return brokenLocker{err}
		}
		return c
	}
	return e.etcdHelper(s)
}

// etcdHelper is the etcd fleet lock of s, run in the helper executable.
func (e *Engine) etcdHelper(s Settings) *fleet.EtcdHelper {
	f := s.Fleet
	return &fleet.EtcdHelper{Path: e.cfg.FleetHelper, Config: fleet.EtcdConfig{Endpoints: f.Endpoints, Prefix: f.Prefix,
		Slots: f.Slots, CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile, Username: f.Username, Password: f.Password}}
}

// brokenLocker is a fleet lock whose client could not be made: every
// operation fails with why.
type brokenLocker struct{ err error }

// Acquire implements fleet.Locker: it fails.
func (b brokenLocker) Acquire(context.Context, string, string) (fleet.Status, error) {
	return fleet.Status{}, b.err
}

// Release implements fleet.Locker: it fails.
func (b brokenLocker) Release(context.Context, string, string) (bool, error) { return false, b.err }

// acquireSlot asks the fleet lock of s for a slot of its group for id.
func (e *Engine) acquireSlot(ctx context.Context, s Settings, id string) (fleet.Status, error) {
	fs, err := e.fleetLocker(s, s.Fleet.Backend).Acquire(ctx, s.Fleet.Group, id)
	var taken *fleet.SlotsTakenError
	if errors.As(err, &taken) {
		fs = taken.Status
	}
	if fs.Group == "" {
		fs.Group = s.Fleet.Group
	}
	return fs, err
}

// releaseSlot gives back the slot rec records to the lock it was taken
// from (rec.Lock, else the configured one).
func (e *Engine) releaseSlot(ctx context.Context, s Settings, rec *rebootRecord, id string) (bool, error) {
	if id == "" {
		return false, errdefs.Errorf(errdefs.ErrNotFound, "no host id: cannot tell the fleet lock whose slot to free")
	}
	backend := rec.Backend
	if backend == "" {
		backend = s.Fleet.Backend
	}
	return e.fleetLocker(rec.Lock.at(s), backend).Release(ctx, rec.Group, id)
}

// runInternal runs a transaction hostd begins itself, as root, and waits
// for its end.
func (e *Engine) runInternal(ctx context.Context, kind, arg string, opts map[string]any) error {
	tr, err := e.Begin(dbus.Request{Kind: kind, Arg: arg, Options: dbus.MakeOptions(opts)})
	if err != nil {
		return err
	}
	t := tr.(*txn)
	var res error
	t.Subscribe(func(ev dbus.Event) {
		if ev.Finished != nil {
			res = ev.Finished.Err
		}
	})
	if err := t.Start(0); err != nil {
		return err
	}
	select {
	case <-t.done:
	case <-ctx.Done():
		t.Cancel(0)
		<-t.done
	}
	return res
}

// FleetStatus implements dbus.FleetEngine.
func (e *Engine) FleetStatus(ctx context.Context) (dbus.FleetGroup, error) {
	s := e.Settings()
	g := dbus.FleetGroup{Backend: s.Fleet.Backend, Group: s.Fleet.Group}
	if s.RebootStrategy != RebootFleet {
		return g, errdefs.Errorf(errdefs.ErrNotFound, "no fleet: RebootStrategy is %s in %s (set RebootStrategy=fleet and a [Fleet] section, then `hostctl reload`)", s.RebootStrategy, e.cfg.ConfigPath)
	}
	id, err := e.hostID(ctx)
	if err != nil {
		return g, err
	}
	g.HostID = id
	if s.Fleet.Backend == BackendFleetLock {
		// The protocol tells no holders: say what this host knows.
		r, _ := e.journal.reboot()
		e.mu.Lock()
		held := e.rebootState.SlotHeld
		e.mu.Unlock()
		g.Held = held && r != nil && r.Group == s.Fleet.Group && r.Backend == BackendFleetLock
		return g, nil
	}
	fs, err := e.etcdHelper(s).Holders(ctx, s.Fleet.Group, id)
	if err != nil {
		return g, err
	}
	g.Slots, g.Holders, g.Held = uint32(fs.Slots), fs.Holders, fs.Held
	return g, nil
}

// FleetRelease implements dbus.FleetEngine: root only (no polkit action
// covers it).
func (e *Engine) FleetRelease(ctx context.Context, caller uint32, sender, id string) (bool, error) {
	if err := e.authorizeBegin(dbus.Request{Kind: "fleet-release", Caller: caller, Sender: sender}); err != nil {
		return false, err
	}
	s := e.Settings()
	if s.RebootStrategy != RebootFleet {
		return false, errdefs.Errorf(errdefs.ErrNotFound, "no fleet: RebootStrategy is %s in %s", s.RebootStrategy, e.cfg.ConfigPath)
	}
	own, _ := e.hostID(ctx)
	if id == "" {
		id = own
	}
	released, err := e.fleetLocker(s, s.Fleet.Backend).Release(ctx, s.Fleet.Group, id)
	if err != nil {
		return false, err
	}
	e.log.Info("fleet slot released by an operator", "group", s.Fleet.Group, "host-id", id, "caller", caller, "held", released)
	e.wakeReboot()
	return released, nil
}
