// Package daemon is hostd's transaction engine: one transaction at a time,
// each journalled step by step in the state database, recovered after a
// crash, cancellable until the bootloader swap, authorized by caller uid.
// It composes deploy (OSTree), bootloader, layering and containers and is
// exported on D-Bus through the dbus package.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hostctl/hostctl/containers"
	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/fleet"
)

// Config configures an Engine.
type Config struct {
	// Sysroot is the sysroot to manage: "/" on a booted host.
	Sysroot string
	// Logger receives the daemon's log; nil discards it.
	Logger *slog.Logger
	// PollInterval is how often the sysroot is checked for changes made by
	// other tools (ostree admin, rpm-ostree); 0 means one second.
	PollInterval time.Duration
	// Containers configures system containers.
	Containers ContainerConfig
	// PauseBefore makes every transaction stop before the step of that name
	// until it is cancelled or hostd dies: a debugging aid the crash tests
	// use to kill hostd at a known point. Empty in production.
	PauseBefore string
	// Faults are the fault points armed in a test build (hostd --fault,
	// build tag faultpoints); nil in production.
	Faults *Faults
	// ConfigPath is the settings file ReloadConfig rereads (hostd --config).
	ConfigPath string
	// Settings are the settings hostd started with (read from ConfigPath).
	Settings Settings
	// FleetHelper is the etcd fleet lock helper (fleet.HelperName); empty:
	// the one beside the hostd executable.
	FleetHelper string
}

// Engine runs transactions on one sysroot. It implements dbus.Engine.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	sr      *deploy.Sysroot
	journal *journal

	mu       sync.Mutex
	active   *txn
	status   dbus.Status
	deps     []deploy.Deployment // as of the last refresh
	watchers []func()
	seq      uint64
	lastMod  time.Time
	remotes  string // remotesStamp as of the last refresh
	settings Settings
	lastAuto *dbus.AutomaticCheck
	exiting  bool // QuiesceIfIdle: Begin refuses

	// rebootState is where the reboot loop is (reboot.go); rebootWake
	// makes it look again, rebootDone is closed when it ended.
	rebootState   dbus.RebootState
	rebootAsked   string    // the commit this hostd finalized and asked to reboot into
	rebootAskedAt time.Time // when
	rebootWake    chan struct{}
	rebootDone    chan struct{}

	// ctr runs the system containers (service manager, runtime features).
	ctr *containers.Manager
	// sweeping is closed when the cleanup after a transaction that runs
	// now ends (sweep.go); nil when none runs. Guarded by mu.
	sweeping chan struct{}

	stop     chan struct{}
	done     chan struct{}
	watching bool
}

// New opens the sysroot and the state database, recovers an interrupted
// transaction, and loads the status.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Settings.AutomaticUpdatePolicy == "" {
		cfg.Settings.AutomaticUpdatePolicy = PolicyNone
	}
	sr, err := deploy.Open(ctx, cfg.Sysroot)
	if err != nil {
		return nil, err
	}
	if exe, err := os.Executable(); err == nil { // pulls run in `hostd pull-helper`, killed on cancel
		sr.SetPullHelper(exe)
		if cfg.FleetHelper == "" {
			cfg.FleetHelper = filepath.Join(filepath.Dir(exe), fleet.HelperName)
		}
	}
	dbPath, err := stateDBPath(ctx, sr)
	if err != nil {
		sr.Close()
		return nil, err
	}
	j, err := openJournal(dbPath)
	if err != nil {
		sr.Close()
		return nil, err
	}
	e := &Engine{cfg: cfg, log: log, sr: sr, journal: j, settings: cfg.Settings, stop: make(chan struct{}), done: make(chan struct{}),
		rebootWake: make(chan struct{}, 1), rebootDone: make(chan struct{})}
	e.ctr = e.newContainers()
	if err := e.recover(ctx); err != nil {
		e.Close()
		return nil, err
	}
	e.recoverSweep(ctx)
	if err := e.refresh(ctx); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.reconcile(ctx); err != nil {
		log.Error("reconcile system containers", "err", err)
	}
	e.watching = true
	go e.watch()
	go e.rebootLoop()
	return e, nil
}

// stateDBPath is /var/lib/hostctl/state.db of the stateroot: the current
// deployment's, or the only stateroot of a sysroot with no deployment yet.
func stateDBPath(ctx context.Context, sr *deploy.Sysroot) (string, error) {
	deps, err := sr.Deployments(ctx)
	if err != nil {
		return "", err
	}
	osname := ""
	for _, d := range deps {
		if d.Booted {
			osname = d.OSName
		}
	}
	if osname == "" && len(deps) > 0 {
		osname = deps[0].OSName
	}
	if osname == "" {
		entries, err := os.ReadDir(filepath.Join(sr.Path(), "ostree", "deploy"))
		if err != nil || len(entries) == 0 {
			return "", fmt.Errorf("sysroot %s has no stateroot: create one with `ostree admin os-init`", sr.Path())
		}
		osname = entries[0].Name()
	}
	return filepath.Join(sr.Path(), "ostree", "deploy", osname, "var", "lib", "hostctl", "state.db"), nil
}

// Close stops the engine. A running transaction is cancelled and waited for.
func (e *Engine) Close() error {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	e.mu.Lock()
	t := e.active
	e.mu.Unlock()
	if t != nil {
		t.Cancel(0)
		t.mu.Lock()
		started := t.started
		t.mu.Unlock()
		if started {
			select {
			case <-t.done:
			case <-time.After(closeTimeout):
				// Never close the database under a running transaction:
				// leave it to the process exit; the journal recovers it.
				return fmt.Errorf("transaction %s did not stop within %s; the state database is left open", t, closeTimeout)
			}
		}
	}
	e.waitSweep(context.Background()) // e.stop cancels it: what is left stays owed
	if e.watching {
		<-e.done
		<-e.rebootDone
	}
	e.ctr.Close()
	err := e.journal.close()
	e.sr.Close()
	return err
}

// afterTimeout bounds the work after a transaction (status refresh, reconcile).
const afterTimeout = 2 * time.Minute

// closeTimeout is how long Close waits for a cancelled transaction to stop.
const closeTimeout = time.Minute

// Status implements dbus.Engine: it answers from memory.
func (e *Engine) Status() dbus.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.status
	st.AutomaticUpdatePolicy = e.settings.AutomaticUpdatePolicy
	st.LastAutomaticCheck = e.lastAuto
	if e.rebootState.Strategy != "" {
		r := e.rebootState
		st.Reboot = &r
	}
	if e.active != nil {
		st.Transaction = &dbus.TransactionRef{ID: e.active.ID(), Kind: e.active.Kind(), Path: dbus.TransactionPath(e.active.ID())}
	}
	st.CleanupPending = e.cleanupPendingLocked()
	return st
}

// Watch implements dbus.Engine.
func (e *Engine) Watch(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.watchers = append(e.watchers, fn)
}

func (e *Engine) notify() {
	e.mu.Lock()
	ws := append([]func(){}, e.watchers...)
	e.mu.Unlock()
	for _, fn := range ws {
		fn()
	}
}

// refresh reloads the deployments into the status.
func (e *Engine) refresh(ctx context.Context) error {
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return err
	}
	st := dbus.Status{Sysroot: e.sr.Path(), Deployments: make([]dbus.Deployment, 0, len(deps))}
	for _, d := range deps {
		st.Deployments = append(st.Deployments, e.withLayered(toAPI(d)))
	}
	e.markMissingRemotes(ctx, deps, &st)
	st.CachedUpdate = e.cachedUpdate(deps)
	last, lerr := e.journal.lastAutomatic()
	if lerr != nil {
		e.log.Warn("read the last automatic update", "err", lerr)
	}
	e.mu.Lock()
	e.lastAuto = last
	e.status = st
	e.deps = deps
	e.lastMod = deployMTime(e.sr)
	e.remotes = remotesStamp(e.sr)
	e.mu.Unlock()
	e.notify()
	return nil
}

// cachedDeployments are the deployments as the last refresh read them.
func (e *Engine) cachedDeployments() []deploy.Deployment {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.deps
}

// readTimeout bounds a read method's calls (systemd unit states).
const readTimeout = 10 * time.Second

func toAPI(d deploy.Deployment) dbus.Deployment {
	out := dbus.Deployment{
		ID: d.ID(), OSName: d.OSName, Checksum: d.Checksum, Serial: int32(d.Serial),
		Version: d.Version, Timestamp: uint64(d.Timestamp.Unix()), Origin: d.Refspec(),
		BaseChecksum: d.BaseChecksum, Kargs: d.Kargs, Packages: []string{},
		Booted: d.Booted, Default: d.Default, Pinned: d.Pinned, Staged: d.Staged, Rollback: d.Rollback,
		FinalizationLocked: d.Staged && d.FinalizationLocked,
	}
	if d.Origin != nil {
		if p := d.Origin.Packages(); p != nil {
			out.Packages = p
		}
		out.RemovedBasePackages = removedOverrides(d.Origin)
		for _, r := range replacedOverrides(d.Origin) {
			out.ReplaceRequests = append(out.ReplaceRequests, r.NEVRA)
		}
		for _, name := range d.Origin.Keys(deploy.GroupContainers) {
			v, _ := d.Origin.Get(deploy.GroupContainers, name)
			if ce, err := containers.ParseEntry(v); err == nil {
				out.Containers = append(out.Containers, name+"="+ce.Image+"@"+ce.Digest)
			} else {
				out.Containers = append(out.Containers, name+"=(unreadable entry: "+v+")")
			}
		}
	}
	return out
}

// deployMTime is the mtime libostree bumps on ostree/deploy at every change.
func deployMTime(sr *deploy.Sysroot) time.Time {
	st, err := os.Stat(filepath.Join(sr.Path(), "ostree", "deploy"))
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// watch refreshes the status when another tool changed the sysroot.
func (e *Engine) watch() {
	defer close(e.done)
	tick := time.NewTicker(e.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		e.mu.Lock()
		busy, last, remotes := e.active != nil, e.lastMod, e.remotes
		e.mu.Unlock()
		if busy || deployMTime(e.sr).Equal(last) && remotesStamp(e.sr) == remotes {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.PollInterval*10+10*time.Second)
		if err := e.refresh(ctx); err != nil {
			e.log.Warn("refresh status", "err", err)
		}
		cancel()
	}
}

// History implements dbus.Engine.
func (e *Engine) History(limit int) ([]dbus.Record, error) {
	recs, err := e.journal.history(limit)
	if err != nil {
		return nil, errdefs.Wrap(errdefs.ErrFailed, fmt.Errorf("read history: %w", err))
	}
	out := make([]dbus.Record, 0, len(recs))
	for _, r := range recs {
		rec := dbus.Record{ID: r.ID, Kind: r.Kind, State: r.State, Error: r.Error, ErrorName: r.ErrorName,
			Started: uint64(r.Started.Unix()), Steps: r.Steps, Before: r.Before, After: r.After}
		if !r.Ended.IsZero() {
			rec.Ended = uint64(r.Ended.Unix())
		}
		out = append(out, rec)
	}
	return out, nil
}

// operation is one kind of transaction.
type operation struct {
	// options are the a{sv} keys the kind accepts and their D-Bus signatures.
	options dbus.OptionSpec
	// validate checks the request before the transaction is created (may be nil).
	validate func(req dbus.Request) error
	// run does the work; it holds the sysroot lock.
	run func(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error)
}

// operations maps each transaction kind to its operation.
func (e *Engine) operations() map[string]operation {
	return map[string]operation{
		"upgrade": {options: dbus.OptionSpec{"check": "b", "preview": "b", "download-only": "b", "allow-downgrade": "b"}.With(stageOptions, rebootOption), run: e.rebootingAfter(e.recordingChecks(e.upgrade))},
		"deploy": {options: stageOptions.With(rebootOption), validate: needArg("deploy needs a revision: a commit checksum or a version"),
			run: e.rebootingAfter(func(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
				return e.deployRevision(ctx, t, t.rec.Arg, opts)
			})},
		"rebase": {options: dbus.OptionSpec{"preview": "b", "revision": "s"}.With(stageOptions, rebootOption), validate: validRefspec, run: e.rebootingAfter(func(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
			return e.rebase(ctx, t, t.rec.Arg, opts)
		})},
		"rollback": {options: rebootOption, run: e.rebootingAfter(func(ctx context.Context, t *txn, _ dbus.Options) (map[string]any, error) { return e.rollback(ctx, t) })},
		"cleanup":  {options: dbus.OptionSpec{"pending": "b", "rollback": "b", "repomd": "b"}, run: e.cleanup},
		"kargs":    {options: dbus.OptionSpec{"edits": "as", "expect": "s"}.With(rebootOption), validate: validKargs, run: e.rebootingAfter(e.kargs)},
		"pin":      {options: dbus.OptionSpec{"unpin": "b"}, validate: validPin, run: e.pin},
		"finalize": {options: finalizeOptions, validate: validFinalize, run: e.finalize},
		"reset":    {options: dbus.OptionSpec{"overlays": "b", "overrides": "b", "kargs": "b"}.With(rebootOption), run: e.rebootingAfter(e.reset)},

		"automatic-update": {options: automaticOptions, validate: validAutomatic, run: e.automaticUpdate},

		"remote-add":    {options: dbus.OptionSpec{"url": "s", "gpg-verify": "b", "gpg-key": "ay", "replace": "b"}, validate: validRemoteAdd, run: e.remoteAdd},
		"remote-delete": {validate: validRemoteDelete, run: e.remoteDelete},

		"pkg-change": {options: dbus.OptionSpec{"add": "as", "remove": "as", "dry-run": "b", "idempotent": "b", "allow-inactive": "b",
			"override-remove": "as", "override-reset": "as", "override-reset-all": "b",
			"override-replace": "as", "override-replace-local": "as", "reboot": "b"}, validate: validPkgChange, run: e.rebootingAfter(e.pkgChange)},
		"refresh-md": {run: e.refreshMetadata},

		"image-pull":          {validate: needImage("image pull", false), run: e.imagePull},
		"image-delete":        {validate: needArg("image delete needs an image"), run: e.imageDelete},
		"image-prune":         {run: e.imagePrune},
		"container-install":   {options: dbus.OptionSpec{"name": "s", "set": "as", "follow": "b"}, validate: needImage("container install", true), run: e.containerInstall},
		"container-update":    {options: dbus.OptionSpec{"set": "as", "rebase": "s", "pull": "b"}, validate: needName("container update"), run: e.containerUpdate},
		"container-rollback":  {validate: needName("container rollback"), run: e.containerRollback},
		"container-uninstall": {validate: needName("container uninstall"), run: e.containerUninstall},
	}
}

func needArg(msg string) func(dbus.Request) error {
	return func(req dbus.Request) error {
		if req.Arg == "" {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s", msg)
		}
		return nil
	}
}

// needImage checks that the argument is an image reference (or, where a
// pulled image may be named by it, a digest) before anything is pulled.
func needImage(what string, digestOK bool) func(dbus.Request) error {
	return func(req dbus.Request) error {
		if req.Arg == "" {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s needs an image reference, e.g. registry.example.com/app:1", what)
		}
		if digestOK && containers.IsDigest(req.Arg) {
			return nil
		}
		if _, err := containers.ParseImageReference(req.Arg); err != nil {
			return errdefs.Wrap(errdefs.ErrInvalidArgument, fmt.Errorf("%s: invalid image reference %q: %w", what, req.Arg, err))
		}
		return nil
	}
}

// needName checks that the argument is a valid container name before it
// reaches a path.
func needName(what string) func(dbus.Request) error {
	return func(req dbus.Request) error {
		if req.Arg == "" {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s needs a container name", what)
		}
		if err := containers.ValidateName(req.Arg); err != nil {
			return errdefs.Wrap(errdefs.ErrInvalidArgument, fmt.Errorf("%s: %w", what, err))
		}
		return nil
	}
}

func validRefspec(req dbus.Request) error {
	if _, _, err := deploy.SplitRefspec(req.Arg); err != nil {
		return errdefs.Wrap(errdefs.ErrInvalidArgument, err)
	}
	return nil
}

// Begin implements dbus.Engine.
func (e *Engine) Begin(req dbus.Request) (dbus.Transaction, error) {
	if err := e.authorizeBegin(req); err != nil {
		return nil, err
	}
	op, ok := e.operations()[req.Kind]
	if !ok {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "unknown transaction kind %q", req.Kind)
	}
	if len(req.Files) > 0 && req.Kind != "pkg-change" {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "%s takes no files", req.Kind)
	}
	if err := req.Options.Check(op.options); err != nil {
		return nil, err
	}
	if op.validate != nil {
		if err := op.validate(req); err != nil {
			return nil, err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.exiting {
		return nil, exitingErr()
	}
	if e.active != nil {
		return nil, errdefs.Errorf(errdefs.ErrBusy, "another transaction is running: %s %s (started by uid %d); wait for it or cancel it with `hostctl cancel`", e.active.Kind(), e.active.ID(), e.active.rec.Caller)
	}
	e.seq++
	id := strconv.FormatInt(time.Now().UnixNano(), 16) + strconv.FormatUint(e.seq%16, 16)
	t := &txn{e: e, done: make(chan struct{}), rec: &record{ID: id, Kind: req.Kind, Arg: req.Arg, Options: req.Options.Map(), Caller: req.Caller, State: statePending, Started: time.Now().UTC()},
		files: req.Files, fileNames: req.Options.Strings("override-replace-local")}
	t.timer = time.AfterFunc(startTimeout, func() {
		t.mu.Lock()
		started := t.started
		t.mu.Unlock()
		if !started {
			e.log.Info("transaction never started; dropped", "txn", id)
			t.Cancel(0)
		}
	})
	e.active = t
	go e.notify()
	return t, nil
}

// authorize says who may change the host: root.
func authorize(uid uint32, kind string) error {
	if uid != 0 {
		return errdefs.Errorf(errdefs.ErrUnauthorized, "%s changes the host and needs root (uid 0); you are uid %d: run it with sudo", kind, uid)
	}
	return nil
}

// Cancel implements dbus.Engine.
func (e *Engine) Cancel(caller uint32) error {
	e.mu.Lock()
	t := e.active
	e.mu.Unlock()
	if t == nil {
		return errdefs.Errorf(errdefs.ErrNoTransaction, "no transaction is running")
	}
	return t.Cancel(caller)
}

// drop forgets a transaction that was never started.
func (e *Engine) drop(t *txn) {
	t.closeFiles()
	t.emit(dbus.Event{State: stateCancelled})
	t.emit(dbus.Event{Finished: &dbus.Result{Err: errdefs.Errorf(errdefs.ErrCancelled, "transaction %s cancelled before it started", t.ID())}})
	e.mu.Lock()
	if e.active == t {
		e.active = nil
	}
	e.mu.Unlock()
	e.notify()
}

// run does a started transaction's work and records how it ended.
func (e *Engine) run(ctx context.Context, t *txn) {
	defer close(t.done)
	defer t.closeFiles()
	t.setState(stateRunning)
	if deps, err := e.sr.Deployments(ctx); err == nil {
		t.mu.Lock()
		t.rec.Before = defaultID(deps)
		t.mu.Unlock()
	}
	if err := e.journal.putActive(t.rec); err != nil {
		e.finish(t, nil, errdefs.Errorf(errdefs.ErrFailed, "write journal: %v", err))
		return
	}
	e.log.Info("transaction started", "txn", t.ID(), "kind", t.Kind(), "arg", t.rec.Arg, "caller", t.rec.Caller)
	data, err := e.execute(ctx, t)
	e.finish(t, data, err)
}

func (e *Engine) execute(ctx context.Context, t *txn) (map[string]any, error) {
	e.mu.Lock()
	pending := e.cleanupPendingLocked()
	e.mu.Unlock()
	if pending {
		t.message("Waiting for the cleanup after the last transaction (removal of the replaced deployment, repository prune)")
	}
	if err := e.waitSweep(ctx); err != nil {
		return nil, errdefs.Wrap(errdefs.ErrCancelled, fmt.Errorf("while waiting for the cleanup after the last transaction: %w", err))
	}
	ok, err := e.sr.TryLock()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errdefs.Errorf(errdefs.ErrBusy, "the sysroot is locked by another process (ostree admin, rpm-ostree?): try again when it is done")
	}
	defer e.sr.Unlock()
	if err := e.sr.ReloadConfig(ctx); err != nil { // remotes other tools changed
		return nil, err
	}
	opts := dbus.Options(nil)
	if t.rec.Options != nil {
		opts = dbus.MakeOptions(t.rec.Options)
	}
	op, ok := e.operations()[t.Kind()]
	if !ok {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "unknown transaction kind %q", t.Kind())
	}
	return op.run(ctx, t, opts)
}

// finish records the end in the history, refreshes the status and tells the subscribers.
func (e *Engine) finish(t *txn, data map[string]any, err error) {
	err = classify(t.Kind(), e.cfg.Faults.finish(t, err))
	state := stateSucceeded
	switch {
	case err == nil:
	case errdefs.IsCancelled(err):
		state = stateCancelled
	default:
		state = stateFailed
	}
	if err != nil {
		// What a failed or cancelled transaction still lists as temporary
		// never became part of the host: remove it now, not at the next crash.
		t.mu.Lock()
		temp := slices.Clone(t.rec.Temp)
		t.mu.Unlock()
		e.removeTemp(temp)
	}
	// The work after the transaction has a deadline: nothing it waits for
	// may keep the engine busy for long.
	ctx, cancel := context.WithTimeout(context.Background(), afterTimeout)
	defer cancel()
	after := ""
	if deps, derr := e.sr.Deployments(ctx); derr == nil {
		after = defaultID(deps)
	}
	t.mu.Lock()
	t.rec.State = state
	t.rec.Ended = time.Now().UTC()
	t.rec.After = after
	if err != nil {
		t.rec.Error = err.Error()
		t.rec.ErrorName = dbus.ErrorName(err)
	}
	rec := *t.rec
	t.mu.Unlock()
	if after != "" && after != rec.Before {
		// A new default generation: its containers run from now on.
		e.setLiveGeneration(after)
	}
	if jerr := e.journal.finish(&rec); jerr != nil {
		e.log.Error("journal finish", "txn", rec.ID, "err", jerr)
	}
	if rerr := e.refresh(ctx); rerr != nil {
		e.log.Error("refresh status", "err", rerr)
	}
	if rerr := e.reconcile(ctx); rerr != nil {
		e.log.Error("reconcile system containers", "err", rerr)
	}
	// A sweep is owed by this transaction's swap, or left owed by an
	// earlier one (the sysroot was locked by another tool then).
	owed := rec.Sweep
	if !owed {
		id, serr := e.journal.sweepOwed()
		owed = serr == nil && id != ""
	}
	e.mu.Lock()
	e.active = nil
	if owed {
		e.beginSweepLocked() // before another transaction can begin, and before Finished: CleanupPending
	}
	e.mu.Unlock()
	e.log.Info("transaction finished", "txn", rec.ID, "kind", rec.Kind, "state", state, "err", err)
	// The properties say idle (or CleanupPending) before Finished reaches
	// the client: one that reads them at Finished sees where the engine is.
	e.notify()
	t.emit(dbus.Event{State: state})
	t.emit(dbus.Event{Finished: &dbus.Result{Err: err, Data: data}})
	if owed {
		e.sweepAfter(t) // off the user's wait
	}
}

// classify gives every error its kind (the dbus package names it on the
// bus) and says which transaction failed.
func classify(kind string, err error) error {
	if err == nil {
		return nil
	}
	k := errdefs.Kind(err)
	if k == errdefs.ErrFailed && (errors.Is(err, deploy.ErrNotFound) || errors.Is(err, deploy.ErrNoRollback)) {
		k = errdefs.ErrNotFound
	}
	return errdefs.Wrap(k, fmt.Errorf("%s: %w", kind, err))
}

// recover finishes what a crash interrupted: it removes the unfinished
// transaction's leftovers (deployments written but never swapped in,
// temporary checkouts, partial pulls' loose objects) and records it as
// interrupted in the history.
func (e *Engine) recover(ctx context.Context) error {
	r, err := e.journal.active()
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	if r == nil {
		return nil
	}
	last := "start"
	if len(r.Steps) > 0 {
		last = r.Steps[len(r.Steps)-1]
	}
	e.log.Warn("recovering interrupted transaction", "txn", r.ID, "kind", r.Kind, "step", last)
	e.removeTemp(r.Temp)
	if ok, err := e.sr.TryLock(); err == nil && ok {
		if _, err := e.sr.Cleanup(ctx, deploy.CleanupOptions{}); err != nil {
			e.log.Warn("cleanup after interrupted transaction", "err", err)
		}
		e.sr.Unlock()
	}
	r.State = stateInterrupted
	r.Ended = time.Now().UTC()
	r.Error = fmt.Sprintf("hostd stopped during step %q; the sysroot was cleaned up and is unchanged unless the bootloader swap had completed", last)
	return e.journal.finish(r)
}

// removeTemp removes a transaction's temporary paths, detaching any mount
// (rofiles-fuse) still under them first.
func (e *Engine) removeTemp(paths []string) {
	for _, p := range paths {
		if mps, err := unmountUnder(p); err != nil || len(mps) > 0 {
			e.log.Warn("detached mounts left under a temporary path", "path", p, "mounts", mps, "err", err)
		}
		if err := os.RemoveAll(p); err != nil {
			e.log.Warn("remove temporary path", "path", p, "err", err)
		}
	}
}

// current is the booted deployment, or the default one when none is booted.
func current(deps []deploy.Deployment) (deploy.Deployment, bool) {
	for _, d := range deps {
		if d.Booted {
			return d, true
		}
	}
	if len(deps) > 0 {
		return deps[0], true
	}
	return deploy.Deployment{}, false
}

// Active is the transaction in flight (pending or running), nil when idle.
// The rpm-ostree API serves one begun through org.hostctl.Host1 on a
// socket of its own, so that its ActiveTransactionPath names it.
func (e *Engine) Active() dbus.Transaction {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.active == nil {
		return nil
	}
	return e.active
}
