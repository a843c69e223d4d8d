package daemon

import (
	"context"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
)

// The cached update: what the last `upgrade --check` (or --preview) found,
// kept in the state database so it survives a restart, and shown in Status
// (the CachedUpdate property, "AvailableUpdate:" in hostctl status) until
// the default deployment has it, follows another refspec, or a later check
// or upgrade replaces it.

var (
	bucketCache    = []byte("cache")
	keyCachedCheck = []byte("cached-update")
)

// recordingChecks wraps the upgrade operation: a check (check, preview,
// download-only) that finds an update records it; a check that finds none
// and an upgrade that deployed clear the record.
func (e *Engine) recordingChecks(run func(context.Context, *txn, dbus.Options) (map[string]any, error)) func(context.Context, *txn, dbus.Options) (map[string]any, error) {
	return func(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
		res, err := run(ctx, t, opts)
		if err != nil {
			return res, err
		}
		check := opts.Bool("check") || opts.Bool("preview") || opts.Bool("download-only")
		var u *dbus.CachedUpdate
		if avail, _ := res["update-available"].(bool); check && avail {
			u = &dbus.CachedUpdate{Checked: uint64(time.Now().Unix())}
			u.Checksum, _ = res["checksum"].(string)
			u.Version, _ = res["version"].(string)
			u.Timestamp, _ = res["timestamp"].(uint64)
			u.Base, _ = res["current-checksum"].(string)
			if up, ok := res["upgraded"].([]string); ok {
				u.HasDiff, u.Upgraded = true, up
				u.Downgraded, _ = res["downgraded"].([]string)
				u.Added, _ = res["added"].([]string)
				u.Removed, _ = res["removed"].([]string)
			}
			if deps, derr := e.sr.Deployments(ctx); derr == nil && len(deps) > 0 {
				u.Refspec = deps[0].Refspec()
			}
		}
		if werr := e.journal.putCachedUpdate(u); werr != nil {
			e.log.Warn("record the cached update", "err", werr)
		}
		return res, nil
	}
}

// cachedUpdate is the recorded update while it still applies to deps
// (nil when none does).
func (e *Engine) cachedUpdate(deps []deploy.Deployment) *dbus.CachedUpdate {
	u, err := e.journal.cachedUpdate()
	if err != nil {
		e.log.Warn("read the cached update", "err", err)
		return nil
	}
	if u == nil || len(deps) == 0 {
		return nil
	}
	def := deps[0]
	if def.Refspec() != u.Refspec || baseOf(def) == u.Checksum {
		return nil
	}
	return u
}

// putCachedUpdate records u (nil removes the record).
func (j *journal) putCachedUpdate(u *dbus.CachedUpdate) error {
	return j.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCache)
		if err != nil {
			return err
		}
		if u == nil {
			return b.Delete(keyCachedCheck)
		}
		data, err := json.Marshal(u)
		if err != nil {
			return err
		}
		return b.Put(keyCachedCheck, data)
	})
}

// cachedUpdate reads the recorded update (nil when there is none).
func (j *journal) cachedUpdate() (*dbus.CachedUpdate, error) {
	var u *dbus.CachedUpdate
	err := j.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCache)
		if b == nil {
			return nil
		}
		data := b.Get(keyCachedCheck)
		if data == nil {
			return nil
		}
		u = &dbus.CachedUpdate{}
		return json.Unmarshal(data, u)
	})
	return u, err
}
