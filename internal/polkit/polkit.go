// Package polkit is a small client of polkit's authority
// (org.freedesktop.PolicyKit1.Authority.CheckAuthorization): it asks whether
// the process behind a unique bus name may perform an action, without ever
// asking the user to authenticate (hostd has no agent to talk to).
package polkit

import (
	"context"
	"errors"
	"fmt"

	godbus "github.com/godbus/dbus/v5"
)

// Names of polkit's authority on the system bus.
const (
	// BusName is polkitd's well-known bus name.
	BusName = "org.freedesktop.PolicyKit1"
	// AuthorityPath is the object path of the authority.
	AuthorityPath = godbus.ObjectPath("/org/freedesktop/PolicyKit1/Authority")
	// AuthorityInterface is the interface CheckAuthorization belongs to.
	AuthorityInterface = "org.freedesktop.PolicyKit1.Authority"
)

// Result is polkit's answer for one action and subject.
type Result int

const (
	// NotAuthorized means the subject may not perform the action.
	NotAuthorized Result = iota
	// Challenge means the subject could be authorized after authenticating
	// (polkit's is_challenge): without an agent this is still a refusal.
	Challenge
	// Authorized means the subject may perform the action.
	Authorized
)

// String names the result as polkit's documentation does.
func (r Result) String() string {
	switch r {
	case Authorized:
		return "authorized"
	case Challenge:
		return "challenge"
	default:
		return "not authorized"
	}
}

// ErrUnavailable says polkit is not on the bus (no polkitd and nothing that
// activates it). Callers that must work without polkit test for it with
// errors.Is and fall back to their own rule.
var ErrUnavailable = errors.New("polkit is not available on the bus")

// Authority asks polkit on one bus connection. It does not own the
// connection.
type Authority struct {
	conn *godbus.Conn
}

// New returns an Authority that calls polkit over conn, which must be the
// bus the subjects' unique names belong to (the system bus).
func New(conn *godbus.Conn) *Authority {
	return &Authority{conn: conn}
}

// subject is polkit's (sa{sv}) subject.
type subject struct {
	Kind    string
	Details map[string]godbus.Variant
}

// authResult is polkit's (bba{ss}) authorization result.
type authResult struct {
	IsAuthorized bool
	IsChallenge  bool
	Details      map[string]string
}

// checkNoFlags leaves CheckAuthorization's AllowUserInteraction flag (0x1)
// off: hostd has no authentication agent to offer.
const checkNoFlags uint32 = 0

// Check asks polkit whether the peer with the unique bus name sender
// (subject kind system-bus-name) may perform action, with user interaction
// off. The error is ErrUnavailable (wrapped) when polkit is not on the
// bus, or says why polkit did not answer; ctx bounds the call.
func (a *Authority) Check(ctx context.Context, sender, action string) (Result, error) {
	if sender == "" {
		return NotAuthorized, fmt.Errorf("ask polkit about %s: the caller's bus name is unknown", action)
	}
	subj := subject{Kind: "system-bus-name", Details: map[string]godbus.Variant{"name": godbus.MakeVariant(sender)}}
	var res authResult
	call := a.conn.Object(BusName, AuthorityPath).CallWithContext(ctx, AuthorityInterface+".CheckAuthorization", 0,
		subj, action, map[string]string{}, checkNoFlags, "")
	if call.Err != nil {
		if name := errorName(call.Err); unavailable(name) {
			return NotAuthorized, fmt.Errorf("ask polkit about %s: %w (%s)", action, ErrUnavailable, name)
		}
		return NotAuthorized, fmt.Errorf("ask polkit about %s for %s: %w", action, sender, call.Err)
	}
	if err := call.Store(&res); err != nil {
		return NotAuthorized, fmt.Errorf("ask polkit about %s: unexpected reply: %w", action, err)
	}
	switch {
	case res.IsAuthorized:
		return Authorized, nil
	case res.IsChallenge:
		return Challenge, nil
	default:
		return NotAuthorized, nil
	}
}

// errorName is the D-Bus error name of a failed call, or "".
func errorName(err error) string {
	var de godbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	var dp *godbus.Error
	if errors.As(err, &dp) {
		return dp.Name
	}
	return ""
}

// unavailable reports whether a bus error means nobody provides polkit:
// the name has no owner and cannot be activated. A failed activation
// (Spawn.*) is not "absent": polkit is installed and broken, and the
// caller must not fall back to a weaker rule.
func unavailable(name string) bool {
	switch name {
	case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
		return true
	}
	return false
}
