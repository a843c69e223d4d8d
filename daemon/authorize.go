package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/internal/polkit"
)

// Polkit action ids of the changes hostd makes, as
// packaging/org.hostctl.host.policy declares them.
const (
	actionUpgrade    = "org.hostctl.host.upgrade"
	actionRollback   = "org.hostctl.host.rollback"
	actionPackages   = "org.hostctl.host.packages"
	actionContainers = "org.hostctl.host.containers"
	actionKargs      = "org.hostctl.host.kargs"
	actionCleanup    = "org.hostctl.host.cleanup"
)

// polkitTimeout bounds one CheckAuthorization call (the D-Bus default).
const polkitTimeout = 25 * time.Second

// actionFor maps a transaction kind to the polkit action that allows it;
// false for a kind no action covers.
func actionFor(kind string) (string, bool) {
	switch {
	case kind == "upgrade", kind == "deploy", kind == "rebase", kind == "pin", kind == "finalize", kind == "remote-add", kind == "remote-delete", kind == "automatic-update":
		return actionUpgrade, true
	case kind == "rollback":
		return actionRollback, true
	case kind == "cleanup":
		return actionCleanup, true
	case kind == "pkg-change", kind == "refresh-md", kind == "reset":
		return actionPackages, true
	case kind == "kargs", strings.HasPrefix(kind, "kargs-"):
		return actionKargs, true
	case strings.HasPrefix(kind, "container-"), strings.HasPrefix(kind, "image-"):
		return actionContainers, true
	}
	return "", false
}

// authorizeBegin decides whether the caller of req may begin it: root
// always may (polkit itself always authorizes uid 0); anyone else when
// polkit, asked about the kind's action for the caller's bus name with user
// interaction off, says authorized. When polkit is not on the bus only
// root may, as before polkit. The refusal names the action.
func (e *Engine) authorizeBegin(req dbus.Request) error {
	if req.Caller == 0 {
		return nil
	}
	action, ok := actionFor(req.Kind)
	if !ok {
		return errdefs.Errorf(errdefs.ErrUnauthorized, "%s: no polkit action covers this kind of change, so only root (uid 0) may; you are uid %d", req.Kind, req.Caller)
	}
	ctx, cancel := context.WithTimeout(context.Background(), polkitTimeout)
	defer cancel()
	res, err := checkPolkit(ctx, req.Sender, action)
	if errors.Is(err, polkit.ErrUnavailable) {
		return errdefs.Errorf(errdefs.ErrUnauthorized, "not authorized for %s: %s changes the host and, with polkit not running, needs root (uid 0); you are uid %d: run it with sudo", action, req.Kind, req.Caller)
	}
	if err != nil {
		e.log.Warn("polkit did not answer", "action", action, "caller", req.Caller, "err", err)
		return errdefs.Errorf(errdefs.ErrUnauthorized, "not authorized for %s: polkit did not answer (%v); try again, or run it as root", action, err)
	}
	switch res {
	case polkit.Authorized:
		return nil
	case polkit.Challenge:
		return errdefs.Errorf(errdefs.ErrUnauthorized, "not authorized for %s: polkit wants an administrator to authenticate, which hostd cannot ask for; run it with sudo", action)
	default:
		return errdefs.Errorf(errdefs.ErrUnauthorized, "not authorized for %s (uid %d): ask an administrator, or run it with sudo", action, req.Caller)
	}
}

// checkPolkit asks polkit on the system bus (the bus hostd serves on, where
// sender's name is valid) over a connection of its own, closed after the call.
func checkPolkit(ctx context.Context, sender, action string) (polkit.Result, error) {
	conn, err := godbus.SystemBusPrivate(godbus.WithContext(ctx))
	if err != nil {
		return polkit.NotAuthorized, fmt.Errorf("connect to the system bus: %w", err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return polkit.NotAuthorized, fmt.Errorf("authenticate on the system bus: %w", err)
	}
	if err := conn.Hello(); err != nil {
		return polkit.NotAuthorized, fmt.Errorf("register on the system bus: %w", err)
	}
	return polkit.New(conn).Check(ctx, sender, action)
}
