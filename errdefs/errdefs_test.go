package errdefs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

func TestKind(t *testing.T) {
	enospc := &os.PathError{Op: "write", Path: "/sysroot/ostree/repo/objects/ab/cd.file", Err: syscall.ENOSPC}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"nil", nil, nil},
		{"plain error is Failed", errors.New("boom"), ErrFailed},
		{"Errorf", Errorf(ErrBusy, "another transaction is running: %s", "upgrade 1"), ErrBusy},
		{"Wrap", Wrap(ErrNotFound, errors.New("no such image")), ErrNotFound},
		{"kind through fmt %w", fmt.Errorf("upgrade: %w", Errorf(ErrUnauthorized, "needs root")), ErrUnauthorized},
		{"outermost kind wins", Wrap(ErrRefusedByPolicy, Errorf(ErrNotFound, "x")), ErrRefusedByPolicy},
		{"Failed is no kind: the inner one shows", Wrap(ErrFailed, Errorf(ErrNotFound, "x")), ErrNotFound},
		{"the sentinel itself", ErrNoTransaction, ErrNoTransaction},
		{"sentinel wrapped by fmt", fmt.Errorf("cancel: %w", ErrNotCancellable), ErrNotCancellable},
		{"context.Canceled", fmt.Errorf("pull: %w", context.Canceled), ErrCancelled},
		{"context.DeadlineExceeded", fmt.Errorf("pull: %w", context.DeadlineExceeded), ErrCancelled},
		{"ENOSPC in a PathError", fmt.Errorf("commit: %w", enospc), ErrNoSpace},
		{"EDQUOT", fmt.Errorf("write: %w", syscall.EDQUOT), ErrNoSpace},
		{"ENOSPC under Failed", Wrap(ErrFailed, fmt.Errorf("write: %w", enospc)), ErrNoSpace},
		{"ENOSPC and cancelled: no space", errors.Join(context.Canceled, enospc), ErrNoSpace},
		{"explicit kind beats ENOSPC", Errorf(ErrInvalidArgument, "bad: %w", enospc), ErrInvalidArgument},
		{"kind in a joined error", errors.Join(errors.New("a"), Errorf(ErrBusy, "b")), ErrBusy},
		{"Errorf with a foreign kind is Failed", Errorf(errors.New("not a kind"), "x"), ErrFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Kind(tc.err); got != tc.want {
				t.Fatalf("Kind(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestPredicates(t *testing.T) {
	preds := map[error]func(error) bool{
		ErrNotFound: IsNotFound, ErrBusy: IsBusy, ErrInvalidArgument: IsInvalidArgument,
		ErrUnauthorized: IsUnauthorized, ErrCancelled: IsCancelled, ErrNotCancellable: IsNotCancellable,
		ErrNoTransaction: IsNoTransaction, ErrRefusedByPolicy: IsRefusedByPolicy, ErrNoSpace: IsNoSpace, ErrUntrusted: IsUntrusted,
		ErrFailed: IsFailed,
	}
	if len(preds) != len(Kinds()) {
		t.Fatalf("%d predicates for %d kinds", len(preds), len(Kinds()))
	}
	for _, k := range Kinds() {
		err := Errorf(k, "something of kind %v", k)
		for other, is := range preds {
			if got := is(err); got != (other == k) {
				t.Errorf("predicate for %v on an error of kind %v: %v", other, k, got)
			}
		}
		if !errors.Is(err, k) {
			t.Errorf("errors.Is(Errorf(%v), %v) is false", k, k)
		}
	}
	if IsFailed(nil) || IsNotFound(nil) {
		t.Fatal("nil has no kind")
	}
}

func TestCauseKept(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "/etc/hostctl", Err: fs.ErrNotExist}
	err := Wrap(ErrNotFound, cause)
	if err.Error() != cause.Error() {
		t.Fatalf("message %q, want the cause's %q", err.Error(), cause.Error())
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != "/etc/hostctl" {
		t.Fatal("errors.As does not reach the cause")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("errors.Is does not reach the cause's cause")
	}
	if Wrap(ErrBusy, nil) != nil {
		t.Fatal("Wrap(kind, nil) must be nil")
	}
	f := Errorf(ErrBusy, "locked: %w", cause)
	if !errors.Is(f, fs.ErrNotExist) || f.Error() != "locked: "+cause.Error() {
		t.Fatalf("Errorf with %%w: %v", f)
	}
}
