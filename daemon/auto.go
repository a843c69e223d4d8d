package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
)

// Automatic updates (hostd.conf's AutomaticUpdatePolicy): an
// automatic-update transaction, begun by AutomaticUpdateTrigger with its
// option mode set to the policy, runs `upgrade --check` (check) or the
// check and then `upgrade --stage` (stage), and records how it ended as
// LastAutomaticCheck in the state database. ReloadConfig rereads the
// settings; hostd's main reads IdleExitTimeout from Settings.

var keyLastAutomatic = []byte("last-automatic-check")

// automaticOptions is the a{sv} spec of an automatic-update transaction.
var automaticOptions = dbus.OptionSpec{"mode": "s"}

// Settings are the settings in use (hostd.conf as last read).
func (e *Engine) Settings() Settings {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.settings
}

// ReloadConfig implements dbus.AutomaticEngine: only root (no polkit action
// covers it) rereads the config file; a file hostd cannot use is an error
// and the settings in use stay.
func (e *Engine) ReloadConfig(caller uint32, sender string) error {
	if err := e.authorizeBegin(dbus.Request{Kind: "reload-config", Caller: caller, Sender: sender}); err != nil {
		return err
	}
	s, err := LoadSettings(e.cfg.ConfigPath)
	if err != nil {
		e.log.Warn("reload config: keeping the settings in use", "path", e.cfg.ConfigPath, "err", err)
		return err
	}
	e.mu.Lock()
	e.settings = s
	e.mu.Unlock()
	e.log.Info("config reloaded", "path", e.cfg.ConfigPath, "policy", s.AutomaticUpdatePolicy, "idle-exit-timeout", s.IdleExitTimeout,
		"reboot-strategy", s.RebootStrategy)
	e.wakeReboot()
	e.notify()
	return nil
}

// AutomaticPolicy implements dbus.AutomaticEngine.
func (e *Engine) AutomaticPolicy(caller uint32, sender, mode string) (string, error) {
	if err := e.authorizeBegin(dbus.Request{Kind: dbus.AutomaticUpdateKind, Caller: caller, Sender: sender}); err != nil {
		return "", err
	}
	if mode == "" {
		return e.Settings().AutomaticUpdatePolicy, nil
	}
	switch m := strings.ToLower(mode); m {
	case PolicyNone, PolicyCheck, PolicyStage:
		return m, nil
	}
	return "", errdefs.Errorf(errdefs.ErrInvalidArgument, "automatic update: mode %q is not a policy: use none, check or stage", mode)
}

// validAutomatic checks the mode before the transaction is made.
func validAutomatic(req dbus.Request) error {
	switch m := req.Options.String("mode"); m {
	case PolicyCheck, PolicyStage:
		return nil
	default:
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "automatic update: mode %q: use check or stage (none does nothing and starts no transaction)", m)
	}
}

// automaticUpdate runs one automatic update (see above) and records it.
func (e *Engine) automaticUpdate(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	mode := opts.String("mode")
	res, err := e.runAutomatic(ctx, t, mode)
	rec := &dbus.AutomaticCheck{Time: uint64(time.Now().Unix()), Mode: mode}
	if res != nil {
		rec.Result, _ = res["automatic-result"].(string)
	}
	if err != nil {
		rec.Error = err.Error()
	}
	if werr := e.journal.putLastAutomatic(rec); werr != nil {
		e.log.Warn("record the automatic update", "err", werr)
	}
	return res, err
}

// runAutomatic checks, and for stage stages what the check found.
func (e *Engine) runAutomatic(ctx context.Context, t *txn, mode string) (map[string]any, error) {
	check := e.recordingChecks(e.upgrade)
	res, err := check(ctx, t, dbus.MakeOptions(map[string]any{"check": true}))
	if err != nil {
		return nil, err
	}
	avail, _ := res["update-available"].(bool)
	version, _ := res["version"].(string)
	if version == "" {
		version, _ = res["checksum"].(string)
	}
	if !avail {
		res["automatic-result"] = "no update"
		return res, nil
	}
	res["automatic-result"] = "found " + version
	if mode != PolicyStage {
		return res, nil
	}
	lock := e.Settings().lockStaged()
	staged, err := e.upgrade(ctx, t, dbus.MakeOptions(map[string]any{"stage": true, "lock-finalization": lock}))
	if err != nil {
		return res, err
	}
	staged["automatic-result"] = "staged " + version
	if lock {
		// The reboot strategy finalizes it (reboot.go).
		if err := e.recordStaged(ctx); err != nil {
			return staged, fmt.Errorf("staged %s, but hostd could not record it for its reboot strategy: %w; finalize it with `hostctl finalize --reboot`", version, err)
		}
	}
	return staged, nil
}

// putLastAutomatic records how the last automatic update ended.
func (j *journal) putLastAutomatic(c *dbus.AutomaticCheck) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return j.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCache)
		if err != nil {
			return err
		}
		return b.Put(keyLastAutomatic, data)
	})
}

// lastAutomatic reads how the last automatic update ended (nil: none ran).
func (j *journal) lastAutomatic() (*dbus.AutomaticCheck, error) {
	var c *dbus.AutomaticCheck
	err := j.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCache)
		if b == nil {
			return nil
		}
		data := b.Get(keyLastAutomatic)
		if data == nil {
			return nil
		}
		c = &dbus.AutomaticCheck{}
		return json.Unmarshal(data, c)
	})
	return c, err
}

// errExiting refuses a transaction while hostd exits for being idle (the
// client retries on its text).
var errExiting = errors.New(dbus.ExitingMessage)

// QuiesceIfIdle is how hostd's main stops when idle: when no transaction
// exists and no cleanup after one runs, it makes every later Begin fail
// with a retryable ErrBusy (the next hostd, started by D-Bus activation,
// serves it) and returns true; otherwise it returns false and changes
// nothing.
func (e *Engine) QuiesceIfIdle() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.active != nil || e.cleanupPendingLocked() {
		return false
	}
	e.exiting = true
	return true
}

// exitingErr is the refusal of a Begin during an idle exit.
func exitingErr() error {
	return errdefs.Wrap(errdefs.ErrBusy, fmt.Errorf("%w: try again in a moment (D-Bus activation starts it again)", errExiting))
}
