package dbus

import (
	"errors"
	"fmt"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/errdefs"
)

// Error names that cross the bus: one per errdefs kind.
const (
	ErrorPrefix = "org.hostctl.Host1.Error."
	// ErrBusy is errdefs.ErrBusy.
	ErrBusy = ErrorPrefix + "Busy"
	// ErrAccessDenied is errdefs.ErrUnauthorized.
	ErrAccessDenied = ErrorPrefix + "AccessDenied"
	// ErrInvalidArgument is errdefs.ErrInvalidArgument.
	ErrInvalidArgument = ErrorPrefix + "InvalidArgument"
	// ErrNotFound is errdefs.ErrNotFound.
	ErrNotFound = ErrorPrefix + "NotFound"
	// ErrCancelled is errdefs.ErrCancelled.
	ErrCancelled = ErrorPrefix + "Cancelled"
	// ErrNotCancellable is errdefs.ErrNotCancellable.
	ErrNotCancellable = ErrorPrefix + "NotCancellable"
	// ErrNoTransaction is errdefs.ErrNoTransaction.
	ErrNoTransaction = ErrorPrefix + "NoTransaction"
	// ErrUnsupportedScript is errdefs.ErrRefusedByPolicy (its first use was
	// a refused %pre; the name stays for the clients that know it).
	ErrUnsupportedScript = ErrorPrefix + "UnsupportedScript"
	// ErrNoSpace is errdefs.ErrNoSpace.
	ErrNoSpace = ErrorPrefix + "NoSpace"
	// ErrSignatureInvalid is errdefs.ErrUntrusted: an unsigned or wrongly
	// signed commit or package.
	ErrSignatureInvalid = ErrorPrefix + "SignatureInvalid"
	// ErrFailed is errdefs.ErrFailed: any other error.
	ErrFailed = ErrorPrefix + "Failed"
)

// errorNames maps each errdefs kind to its bus name, both ways.
var errorNames = []struct {
	kind error
	name string
}{
	{errdefs.ErrNotFound, ErrNotFound},
	{errdefs.ErrBusy, ErrBusy},
	{errdefs.ErrInvalidArgument, ErrInvalidArgument},
	{errdefs.ErrUnauthorized, ErrAccessDenied},
	{errdefs.ErrCancelled, ErrCancelled},
	{errdefs.ErrNotCancellable, ErrNotCancellable},
	{errdefs.ErrNoTransaction, ErrNoTransaction},
	{errdefs.ErrRefusedByPolicy, ErrUnsupportedScript},
	{errdefs.ErrNoSpace, ErrNoSpace},
	{errdefs.ErrUntrusted, ErrSignatureInvalid},
	{errdefs.ErrFailed, ErrFailed},
}

// NameOfKind is the bus name of an errdefs kind (ErrFailed for anything else).
func NameOfKind(kind error) string {
	for _, e := range errorNames {
		if e.kind == kind {
			return e.name
		}
	}
	return ErrFailed
}

// KindOfName is the errdefs kind of a bus error name (errdefs.ErrFailed for
// a name it does not know).
func KindOfName(name string) error {
	for _, e := range errorNames {
		if e.name == name {
			return e.kind
		}
	}
	return errdefs.ErrFailed
}

// Error is an error with a D-Bus error name: what a client gets back from a
// call or a transaction's Finished signal, and what NewError and Errorf
// make. Its kind is the name's (errdefs.IsBusy holds for an ErrBusy), so
// errors.Is and the errdefs predicates work on both sides of the bus.
type Error struct {
	// Name is one of the Err* names (or one this client does not know).
	Name string
	// Err is the cause; its text is the message that crosses the bus.
	Err error
}

// NewError wraps err under a D-Bus error name; it is errdefs.Wrap with the
// name's kind.
func NewError(name string, err error) *Error { return &Error{Name: name, Err: err} }

// Errorf formats an error under a D-Bus error name; it is errdefs.Errorf
// with the name's kind.
func Errorf(name, format string, args ...any) *Error {
	return &Error{Name: name, Err: fmt.Errorf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Name
	}
	return e.Err.Error()
}

// Unwrap returns the kind of the name and the cause.
func (e *Error) Unwrap() []error { return []error{KindOfName(e.Name), e.Err} }

// ErrorName returns the D-Bus name of err: the name of its errdefs kind; for
// an error of no other kind than Failed, the name of an *Error in its chain
// that this package does not know (a newer hostd's), else ErrFailed.
func ErrorName(err error) string {
	if err == nil {
		return ""
	}
	if k := errdefs.Kind(err); k != errdefs.ErrFailed {
		return NameOfKind(k)
	}
	var e *Error
	if errors.As(err, &e) && strings.HasPrefix(e.Name, ErrorPrefix) {
		return e.Name
	}
	return ErrFailed
}

// IsError tells whether err carries the D-Bus error name.
func IsError(err error, name string) bool {
	if err == nil {
		return false
	}
	var de godbus.Error
	if errors.As(err, &de) {
		return de.Name == name
	}
	var dp *godbus.Error
	if errors.As(err, &dp) {
		return dp.Name == name
	}
	return ErrorName(err) == name
}

// toBus turns an error into the reply that crosses the bus.
func toBus(err error) *godbus.Error {
	if err == nil {
		return nil
	}
	return godbus.NewError(ErrorName(err), []any{err.Error()})
}

// fromBus turns a call's error back into an *Error with its name.
func fromBus(err error) error {
	if err == nil {
		return nil
	}
	var de godbus.Error
	if errors.As(err, &de) && strings.HasPrefix(de.Name, ErrorPrefix) {
		return &Error{Name: de.Name, Err: errors.New(busErrorText(de))}
	}
	var dp *godbus.Error
	if errors.As(err, &dp) && strings.HasPrefix(dp.Name, ErrorPrefix) {
		return &Error{Name: dp.Name, Err: errors.New(busErrorText(*dp))}
	}
	return err
}

func busErrorText(e godbus.Error) string {
	if len(e.Body) > 0 {
		if s, ok := e.Body[0].(string); ok {
			return s
		}
	}
	return e.Name
}
