//go:build faultpoints

package daemon

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/errdefs"
)

// Fault actions.
const (
	faultKill  = "kill"
	faultError = "error"
)

// Fault points beside the journalled steps.
const (
	// pointAfterSwap is right after the bootloader swap returned, before
	// anything else the transaction does.
	pointAfterSwap = "after-swap"
	// pointFinish is right before the transaction's end is journalled.
	pointFinish = "finish"
	// pointSweep is after the Finished signal was sent, before the cleanup
	// the swap left (removal of the replaced deployment, repository prune).
	pointSweep = "sweep"
	// pointSweepPrune is inside that cleanup: the replaced deployment is
	// removed, the repository prune has not begun.
	pointSweepPrune = "sweep-prune"
)

// fault is one armed fault: KIND/STEP=ACTION.
type fault struct {
	kind, point, action string
}

func (f fault) String() string { return f.kind + "/" + f.point + "=" + f.action }

// Faults is the fault-point registry of a test build (build tag
// faultpoints): the faults armed at hostd's start (hostd --fault), checked
// before every journalled step of every transaction, right after the
// bootloader swap and before the end is journalled. A "kill" fault SIGKILLs
// hostd there (a crash at that instant); an "error" fault makes the
// transaction fail there with an injected error. One Faults belongs to one
// Engine (Config.Faults).
type Faults struct {
	faults []fault

	mu   sync.Mutex
	errs map[string]error // transaction id -> the error injected into it
}

// ParseFaults parses a comma-separated list of KIND/STEP=ACTION: KIND a
// transaction kind (upgrade, pkg-change, container-install...) or "*",
// STEP a step name as the history lists it, "after-swap", "finish", "sweep",
// "sweep-prune" or "*",
// ACTION "kill" or "error". An empty spec arms nothing.
func ParseFaults(spec string) (*Faults, error) {
	f := &Faults{errs: map[string]error{}}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		where, action, ok := strings.Cut(item, "=")
		kind, point, ok2 := strings.Cut(where, "/")
		if !ok || !ok2 || kind == "" || point == "" {
			return nil, fmt.Errorf("fault %q: want KIND/STEP=kill|error (KIND or STEP may be *)", item)
		}
		if action != faultKill && action != faultError {
			return nil, fmt.Errorf("fault %q: unknown action %q: use kill or error", item, action)
		}
		f.faults = append(f.faults, fault{kind: kind, point: point, action: action})
	}
	return f, nil
}

// String describes the armed faults.
func (f *Faults) String() string {
	if f == nil {
		return ""
	}
	s := make([]string, len(f.faults))
	for i, x := range f.faults {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

// match is the first fault armed for kind at point.
func (f *Faults) match(kind, point string) (fault, bool) {
	for _, x := range f.faults {
		if (x.kind == "*" || x.kind == kind) && (x.point == "*" || x.point == point) {
			return x, true
		}
	}
	return fault{}, false
}

// at is the hook before point of t: before a step is journalled and done,
// and, when the step before was the swap, at after-swap first.
func (f *Faults) at(t *txn, point string) {
	if f == nil || len(f.faults) == 0 {
		return
	}
	t.mu.Lock()
	last := ""
	if n := len(t.rec.Steps); n > 0 {
		last = t.rec.Steps[n-1]
	}
	t.mu.Unlock()
	if last == "swap" && point != "swap" && point != pointAfterSwap {
		f.fire(t, pointAfterSwap)
	}
	f.fire(t, point)
}

func (f *Faults) fire(t *txn, point string) {
	x, ok := f.match(t.Kind(), point)
	if !ok {
		return
	}
	switch x.action {
	case faultKill:
		t.e.log.Warn("fault point: killing hostd", "txn", t.ID(), "kind", t.Kind(), "point", point, "fault", x.String())
		os.Stderr.Sync()
		unix.Kill(os.Getpid(), unix.SIGKILL)
		select {} // the signal is on its way
	case faultError:
		f.mu.Lock()
		if _, done := f.errs[t.ID()]; done {
			f.mu.Unlock()
			return
		}
		err := errdefs.Errorf(errdefs.ErrFailed, "fault injected at %s/%s (hostd --fault %s)", t.Kind(), point, x)
		f.errs[t.ID()] = err
		f.mu.Unlock()
		t.e.log.Warn("fault point: failing the transaction", "txn", t.ID(), "kind", t.Kind(), "point", point, "fault", x.String())
		t.mu.Lock()
		cancel := t.cancel
		t.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}
}

// injected returns the error injected into t, or err when none was.
func (f *Faults) injected(t *txn, err error) error {
	if f == nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if ie, ok := f.errs[t.ID()]; ok {
		return ie
	}
	return err
}

// sweep is the hook after t's Finished signal, before the cleanup it owes.
func (f *Faults) sweep(t *txn) {
	if f == nil {
		return
	}
	f.fire(t, pointSweep)
}

// sweepPrune is the hook inside the cleanup t owes, between the removal
// of the replaced deployment and the repository prune.
func (f *Faults) sweepPrune(t *txn) {
	if f == nil {
		return
	}
	f.fire(t, pointSweepPrune)
}

// finish is the hook before t's end is journalled: it fires the finish
// point (and after-swap when the swap was the last step), and returns the
// error the transaction ends with: the injected one when there was one.
func (f *Faults) finish(t *txn, err error) error {
	if f == nil {
		return err
	}
	f.at(t, pointFinish)
	err = f.injected(t, err)
	f.mu.Lock()
	delete(f.errs, t.ID())
	f.mu.Unlock()
	return err
}
