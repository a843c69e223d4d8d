package daemon

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
)

// Transaction states.
const (
	statePending     = "pending"
	stateRunning     = "running"
	stateSucceeded   = "succeeded"
	stateFailed      = "failed"
	stateCancelled   = "cancelled"
	stateInterrupted = "interrupted"
)

// startTimeout is how long a transaction waits for a client's Start.
const startTimeout = time.Minute

// txn is one transaction: created pending by Begin, run by Start, recorded
// in the journal at each step.
type txn struct {
	e   *Engine
	rec *record

	mu       sync.Mutex
	subs     []func(dbus.Event)
	started  bool
	swapping bool
	cancel   context.CancelFunc
	timer    *time.Timer
	lastProg time.Time
	// done is closed when a started transaction's run has ended.
	done chan struct{}
	// files are the files the caller passed (local RPMs) and fileNames
	// their names as the caller gave them; closed when the run ends.
	files     []*os.File
	fileNames []string
}

// closeFiles closes the files the caller passed.
func (t *txn) closeFiles() {
	t.mu.Lock()
	files := t.files
	t.files = nil
	t.mu.Unlock()
	for _, f := range files {
		f.Close()
	}
}

// ID implements dbus.Transaction.
func (t *txn) ID() string { return t.rec.ID }

// Kind implements dbus.Transaction.
func (t *txn) Kind() string { return t.rec.Kind }

// State implements dbus.Transaction.
func (t *txn) State() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rec.State
}

// Subscribe implements dbus.Transaction.
func (t *txn) Subscribe(fn func(dbus.Event)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs = append(t.subs, fn)
}

// emit delivers an event to every subscriber, in order.
func (t *txn) emit(ev dbus.Event) {
	t.mu.Lock()
	subs := make([]func(dbus.Event), len(t.subs))
	copy(subs, t.subs)
	t.mu.Unlock()
	for _, fn := range subs {
		fn(ev)
	}
}

// Start implements dbus.Transaction.
func (t *txn) Start(caller uint32) error {
	t.mu.Lock()
	if caller != 0 && caller != t.rec.Caller {
		t.mu.Unlock()
		return errdefs.Errorf(errdefs.ErrUnauthorized, "transaction %s belongs to uid %d", t.rec.ID, t.rec.Caller)
	}
	if t.started || t.rec.State != statePending {
		t.mu.Unlock()
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "transaction %s is already %s", t.rec.ID, t.rec.State)
	}
	t.started = true
	if t.timer != nil {
		t.timer.Stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.mu.Unlock()
	go t.e.run(ctx, t)
	return nil
}

// Cancel implements dbus.Transaction.
func (t *txn) Cancel(caller uint32) error {
	if caller != 0 && caller != t.rec.Caller {
		return errdefs.Errorf(errdefs.ErrUnauthorized, "cancelling transaction %s needs root", t.rec.ID)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.swapping:
		return errdefs.Errorf(errdefs.ErrNotCancellable, "transaction %s (%s) is swapping the bootloader entries and cannot be cancelled now; it will finish in a moment", t.rec.ID, t.rec.Kind)
	case !t.started:
		t.rec.State = stateCancelled
		go t.e.drop(t)
		return nil
	case t.cancel != nil:
		t.cancel()
	}
	return nil
}

// setState records and announces a state change.
func (t *txn) setState(s string) {
	t.mu.Lock()
	t.rec.State = s
	t.mu.Unlock()
	t.emit(dbus.Event{State: s})
}

// step journals a step before doing it, so recovery knows how far it got.
func (t *txn) step(stage, text string) {
	t.e.cfg.Faults.at(t, stage)
	t.mu.Lock()
	t.rec.Steps = append(t.rec.Steps, stage)
	rec := *t.rec
	t.mu.Unlock()
	if err := t.e.journal.putActive(&rec); err != nil {
		t.e.log.Error("journal step", "txn", rec.ID, "step", stage, "err", err)
	}
	t.emit(dbus.Event{Progress: &dbus.Progress{Stage: stage, Text: text}})
	if text != "" {
		t.message(text)
	}
}

// beginSwap marks the point of no return: from here Cancel is refused.
func (t *txn) beginSwap() error {
	t.mu.Lock()
	t.swapping = true
	t.rec.Sweep = true
	t.mu.Unlock()
	t.step("swap", "Swapping bootloader entries")
	return t.e.cfg.Faults.injected(t, nil)
}

func (t *txn) message(text string) { t.emit(dbus.Event{Message: text}) }

// progress reports progress, at most ten times a second unless final.
func (t *txn) progress(p dbus.Progress, final bool) {
	t.mu.Lock()
	now := time.Now()
	if !final && now.Sub(t.lastProg) < 100*time.Millisecond {
		t.mu.Unlock()
		return
	}
	t.lastProg = now
	t.mu.Unlock()
	t.emit(dbus.Event{Progress: &p})
}

func (t *txn) String() string { return fmt.Sprintf("%s %s", t.rec.Kind, t.rec.ID) }

// addTemp journals a temporary path the transaction is about to create, so
// recovery removes it if hostd dies before the transaction ends.
func (t *txn) addTemp(path string) {
	t.mu.Lock()
	t.rec.Temp = append(t.rec.Temp, path)
	rec := *t.rec
	t.mu.Unlock()
	if err := t.e.journal.putActive(&rec); err != nil {
		t.e.log.Error("journal temp path", "txn", rec.ID, "path", path, "err", err)
	}
}
