package daemon

import (
	"context"
	"fmt"

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

// sweep does the owed sweep, if any. The caller holds e.sweepMu, so the
// next transaction waits for it (execute) instead of finding the sysroot
// locked. When the sysroot is locked by another tool it leaves the sweep
// owed, for the end of the next transaction or the next start.
func (e *Engine) sweep(ctx context.Context) error {
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
	if _, err := e.sr.Cleanup(ctx, deploy.CleanupOptions{}); err != nil {
		return fmt.Errorf("remove the replaced deployment and prune the repository after transaction %s (it stays owed; `hostctl cleanup` retries it): %w", id, err)
	}
	if err := e.journal.swept(id); err != nil {
		return fmt.Errorf("journal the cleanup after transaction %s: %w", id, err)
	}
	e.log.Info("removed the replaced deployment and pruned the repository", "txn", id)
	return nil
}

// sweepAfter runs the sweep t owes, after its Finished signal was sent.
// finish took e.sweepMu before it let another transaction begin; sweepAfter
// releases it.
func (e *Engine) sweepAfter(t *txn) {
	defer e.sweepMu.Unlock()
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
	if err := e.sweep(ctx); err != nil {
		e.log.Error("cleanup after the transaction", "txn", t.ID(), "err", err)
	}
}

// waitSweep waits until no sweep runs: a transaction calls it before it
// locks the sysroot.
func (e *Engine) waitSweep() {
	e.sweepMu.Lock()
	e.sweepMu.Unlock()
}

// recoverSweep does at start the sweep a crash (or a stop) left owed.
func (e *Engine) recoverSweep(ctx context.Context) {
	e.sweepMu.Lock()
	defer e.sweepMu.Unlock()
	if err := e.sweep(ctx); err != nil {
		e.log.Warn("cleanup owed by the last transaction", "err", err)
	}
}

// deferCleanup says whether the deploys leave the removal of the replaced
// deployment and the repository prune to the sweep after Finished. Off for
// now: with it on, a tool reading the repository right after a transaction
// (the tests' `ostree fsck`) raced with the prune and saw a commit
// vanish. The sweep still runs after every transaction; with the cleanup
// already done in the deploy it finds nothing to remove.
const deferCleanup = false
