//go:build !faultpoints

package daemon

import "errors"

// Faults is the fault-point registry of test builds (build tag
// faultpoints). Production builds compile this empty version: no fault can
// be armed, and every hook is a no-op the compiler inlines away.
type Faults struct{}

// ParseFaults refuses every fault spec: fault points exist only in test
// builds.
func ParseFaults(spec string) (*Faults, error) {
	if spec == "" {
		return nil, nil
	}
	return nil, errors.New("fault points are compiled only into test builds: build hostd with -tags faultpoints")
}

// String describes the armed faults.
func (f *Faults) String() string { return "" }

// at is the hook before the step point of t.
func (f *Faults) at(*txn, string) {}

// injected returns err unchanged: nothing is ever injected.
func (f *Faults) injected(_ *txn, err error) error { return err }

// sweep is the hook after the Finished signal, before the cleanup it owes.
func (f *Faults) sweep(*txn) {}

// sweepPrune is the hook inside that cleanup, before the repository prune.
func (f *Faults) sweepPrune(*txn) {}

// finish is the hook before a transaction's end is journalled.
func (f *Faults) finish(_ *txn, err error) error { return err }
