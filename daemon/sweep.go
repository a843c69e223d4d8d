package daemon

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hostctl/hostctl/deploy"
)

// The sweep is the work a deployment leaves once the bootloader swap is
// done: removing the deployment the swap replaced (its checkout, its boot
// files) and pruning the repository objects nothing refers to any more.
// It changes nothing the host boots, so the user need not wait for it:
// deploy.DeployOptions.DeferCleanup leaves it out of the swap, the
// transaction's end journals that it is owed (keySweep, in the same
// database transaction that moves the record into the history), and it runs
// after the Finished signal is sent. Until it has run, keySweep stays: a
// crash in between leaves a host that boots (only garbage is left), and the
// next start of hostd sweeps before it serves (recoverSweep).
//
// While it runs the engine is not idle: Host1.CleanupPending is true (set
// with the end of the transaction, before Finished, so a client that reads
// the properties at Finished sees it), `hostctl status` says so, the next
// transaction waits for it in execute (cancellably), and hostd does not
// exit for being idle. Tools that read the repository right after a
// transaction (the tests' `ostree fsck`) wait until it is false.

// keySweep in bucketJournal holds the id of the transaction whose sweep is
// still owed.
var keySweep = []byte("sweep")

// owesSweep journals that a sweep is owed for the transaction id.
func (j *journal) owesSweep(tx *bolt.Tx, id string) error {
	return tx.Bucket(bucketJournal).Put(keySweep, []byte(id))
}

// sweepOwed returns the id of the transaction whose sweep is owed, or "".
func (j *journal) sweepOwed() (string, error) {
	var id string
	err := j.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketJournal).Get(keySweep))
		return nil
	})
	return id, err
}

// swept records that the sweep owed for id was done.
func (j *journal) swept(id string) error {
	return j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJournal)
		if string(b.Get(keySweep)) != id {
			return nil // a later transaction owes its own
		}
		return b.Delete(keySweep)
	})
}

// sweep does the owed sweep, if any. The caller made e.sweeping, so the
// next transaction waits for it (execute) instead of finding the sysroot
// locked. When the sysroot is locked by another tool it leaves the sweep
// owed, for the end of the next transaction or the next start.
func (e *Engine) sweep(ctx context.Context, t *txn) error {
	id, err := e.journal.sweepOwed()
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	if id == "" {
		return nil
	}
	ok, err := e.sr.TryLock()
	if err != nil {
		return err
	}
	if !ok {
		e.log.Info("sysroot locked by another process: the cleanup after the last transaction waits for the next one", "txn", id)
		return nil
	}
	defer e.sr.Unlock()
	opts := deploy.CleanupOptions{}
	if t != nil {
		opts.BeforePrune = func() { e.cfg.Faults.sweepPrune(t) }
	}
	if _, err := e.sr.Cleanup(ctx, opts); err != nil {
		return fmt.Errorf("remove the replaced deployment and prune the repository after transaction %s (it stays owed: the next transaction, the next start of hostd or `hostctl cleanup` retries it): %w", id, err)
	}
	if err := e.journal.swept(id); err != nil {
		return fmt.Errorf("journal the cleanup after transaction %s: %w", id, err)
	}
	e.log.Info("removed the replaced deployment and pruned the repository", "txn", id)
	return nil
}

// beginSweepLocked marks the sweep t owes as running (CleanupPending), before
// the Finished signal is sent and before another transaction can begin.
// Callers hold e.mu.
func (e *Engine) beginSweepLocked() {
	e.sweeping = make(chan struct{})
}

// sweepAfter runs the sweep t owes, after its Finished signal was sent.
// finish called beginSweepLocked before it let another transaction begin;
// sweepAfter ends it and tells the subscribers (CleanupPending false).
func (e *Engine) sweepAfter(t *txn) {
	start := time.Now()
	defer func() {
		e.mu.Lock()
		close(e.sweeping)
		e.sweeping = nil
		e.mu.Unlock()
		e.log.Info("cleanup after the transaction done", "txn", t.ID(), "took", time.Since(start).Round(time.Millisecond))
		e.notify()
	}()
	e.cfg.Faults.sweep(t)
	ctx, cancel := context.WithTimeout(context.Background(), afterTimeout)
	defer cancel()
	go func() {
		select {
		case <-e.stop: // hostd stops: the sweep stays owed
			cancel()
		case <-ctx.Done():
		}
	}()
	e.pauseForTest(ctx, "sweep") // hostd --debug-pause-before sweep: until hostd stops
	if err := e.sweep(ctx, t); err != nil {
		e.log.Error("cleanup after the transaction", "txn", t.ID(), "err", err)
	}
}

// waitSweep waits until no sweep runs, or ctx is done: a transaction calls
// it before it locks the sysroot.
func (e *Engine) waitSweep(ctx context.Context) error {
	e.mu.Lock()
	ch := e.sweeping
	e.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cleanupPending says whether the cleanup after the last transaction runs
// (or is about to). Callers hold e.mu.
func (e *Engine) cleanupPendingLocked() bool { return e.sweeping != nil }

// recoverSweep does at start the sweep a crash (or a stop) left owed,
// before hostd serves.
func (e *Engine) recoverSweep(ctx context.Context) {
	id, err := e.journal.sweepOwed()
	if err == nil && id != "" {
		e.log.Warn("finishing the cleanup owed by the last transaction (hostd stopped before it was done)", "txn", id)
	}
	if err := e.sweep(ctx, nil); err != nil {
		e.log.Warn("cleanup owed by the last transaction", "err", err)
	}
}
