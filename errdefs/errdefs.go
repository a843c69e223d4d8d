// Package errdefs is hostctl's vocabulary of errors, in the manner of
// containerd's errdefs: a small set of kinds (not found, busy, refused by
// policy, cancelled, no space...) that every package returns and that only
// the dbus package turns into org.hostctl.Host1.Error.* names.
//
// A kind is a sentinel error. Errorf and Wrap attach a kind to an error and
// keep its cause, so errors.Is and errors.As still see the whole chain.
// Kind tells the kind of any error: the outermost kind attached in its
// chain; else NoSpace when ENOSPC or EDQUOT is anywhere in it; else
// Cancelled when context.Canceled or context.DeadlineExceeded is; else
// Failed.
package errdefs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// kind is the type of the sentinels; its text is the kind's name.
type kind struct{ name string }

func (k *kind) Error() string { return k.name }

// The kinds. Failed is the default: an error with no other kind.
var (
	// ErrNotFound: what the caller named does not exist (a revision, a
	// package, an image, a container, a rollback deployment).
	ErrNotFound error = &kind{"not found"}
	// ErrBusy: another transaction (or another tool) holds the host.
	ErrBusy error = &kind{"busy"}
	// ErrInvalidArgument: the request itself is wrong (unknown or mistyped
	// option, malformed name, missing argument).
	ErrInvalidArgument error = &kind{"invalid argument"}
	// ErrUnauthorized: the caller may not do this.
	ErrUnauthorized error = &kind{"unauthorized"}
	// ErrCancelled: the work was cancelled (by a caller, a client that left,
	// or a deadline).
	ErrCancelled error = &kind{"cancelled"}
	// ErrNotCancellable: a cancel came after the point of no return.
	ErrNotCancellable error = &kind{"not cancellable"}
	// ErrNoTransaction: there is no transaction to act on.
	ErrNoTransaction error = &kind{"no transaction"}
	// ErrRefusedByPolicy: the input is well-formed but a policy refuses it
	// (an RPM with a %pre or other unsupported script, a payload path
	// escaping the tree).
	ErrRefusedByPolicy error = &kind{"refused by policy"}
	// ErrNoSpace: a filesystem ran out of space or quota.
	ErrNoSpace error = &kind{"no space"}
	// ErrUntrusted: a signature is missing or does not verify against the
	// keys trusted for its source (an OSTree commit from a remote with
	// gpg-verify, an RPM from a repo with gpgcheck).
	ErrUntrusted error = &kind{"untrusted"}
	// ErrFailed: anything else.
	ErrFailed error = &kind{"failed"}
)

// Kinds lists every kind, Failed last.
func Kinds() []error {
	return []error{ErrNotFound, ErrBusy, ErrInvalidArgument, ErrUnauthorized, ErrCancelled,
		ErrNotCancellable, ErrNoTransaction, ErrRefusedByPolicy, ErrNoSpace, ErrUntrusted, ErrFailed}
}

// IsKind tells whether err is one of the kinds themselves.
func IsKind(err error) bool {
	_, ok := err.(*kind)
	return ok
}

// withKind is an error of a kind: its text is the cause's.
type withKind struct {
	kind  error
	cause error
}

func (e *withKind) Error() string { return e.cause.Error() }

// Unwrap returns the kind and the cause, so errors.Is sees both.
func (e *withKind) Unwrap() []error { return []error{e.kind, e.cause} }

// Errorf formats an error of kind k (fmt.Errorf's verbs, %w included). A k
// that is not one of the kinds counts as ErrFailed.
func Errorf(k error, format string, args ...any) error {
	return &withKind{kind: orFailed(k), cause: fmt.Errorf(format, args...)}
}

// Wrap gives err the kind k, keeping err as the cause and its text as the
// message. Wrap of a nil err is nil.
func Wrap(k error, err error) error {
	if err == nil {
		return nil
	}
	return &withKind{kind: orFailed(k), cause: err}
}

func orFailed(k error) error {
	if IsKind(k) {
		return k
	}
	return ErrFailed
}

// Kind returns the kind of err (nil for a nil err): the outermost kind
// other than Failed attached in its chain; else ErrNoSpace when
// syscall.ENOSPC or EDQUOT is in the chain; else ErrCancelled when
// context.Canceled or context.DeadlineExceeded is; else ErrFailed.
func Kind(err error) error {
	if err == nil {
		return nil
	}
	if k := attached(err, 0); k != nil {
		return k
	}
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return ErrNoSpace
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ErrCancelled
	}
	return ErrFailed
}

// attached walks err's tree depth first, as errors.Is does, and returns the
// first kind other than Failed.
func attached(err error, depth int) error {
	if err == nil || depth > 100 {
		return nil
	}
	if k, ok := err.(*kind); ok {
		if k == ErrFailed {
			return nil
		}
		return k
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return attached(u.Unwrap(), depth+1)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if k := attached(e, depth+1); k != nil {
				return k
			}
		}
	}
	return nil
}

// IsNotFound tells whether Kind(err) is ErrNotFound.
func IsNotFound(err error) bool { return Kind(err) == ErrNotFound }

// IsBusy tells whether Kind(err) is ErrBusy.
func IsBusy(err error) bool { return Kind(err) == ErrBusy }

// IsInvalidArgument tells whether Kind(err) is ErrInvalidArgument.
func IsInvalidArgument(err error) bool { return Kind(err) == ErrInvalidArgument }

// IsUnauthorized tells whether Kind(err) is ErrUnauthorized.
func IsUnauthorized(err error) bool { return Kind(err) == ErrUnauthorized }

// IsCancelled tells whether Kind(err) is ErrCancelled.
func IsCancelled(err error) bool { return Kind(err) == ErrCancelled }

// IsNotCancellable tells whether Kind(err) is ErrNotCancellable.
func IsNotCancellable(err error) bool { return Kind(err) == ErrNotCancellable }

// IsNoTransaction tells whether Kind(err) is ErrNoTransaction.
func IsNoTransaction(err error) bool { return Kind(err) == ErrNoTransaction }

// IsRefusedByPolicy tells whether Kind(err) is ErrRefusedByPolicy.
func IsRefusedByPolicy(err error) bool { return Kind(err) == ErrRefusedByPolicy }

// IsNoSpace tells whether Kind(err) is ErrNoSpace.
func IsNoSpace(err error) bool { return Kind(err) == ErrNoSpace }

// IsUntrusted tells whether Kind(err) is ErrUntrusted.
func IsUntrusted(err error) bool { return Kind(err) == ErrUntrusted }

// IsFailed tells whether Kind(err) is ErrFailed: err is not nil and has no
// other kind.
func IsFailed(err error) bool { return Kind(err) == ErrFailed }
