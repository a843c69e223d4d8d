package daemon

import (
	"context"

	"github.com/hostctl/hostctl/dbus"
)

// errNoContainers is returned until system containers are wired in.
func errNoContainers() error {
	return dbus.Errorf(dbus.ErrFailed, "system containers are not available in this build yet")
}

// reconcile brings the system containers in line with the booted (or default) generation.
func (e *Engine) reconcile(ctx context.Context) error { return nil }

func (e *Engine) imagePull(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	return nil, errNoContainers()
}

func (e *Engine) imageDelete(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	return nil, errNoContainers()
}

func (e *Engine) imagePrune(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	return nil, errNoContainers()
}

func (e *Engine) containerInstall(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	return nil, errNoContainers()
}

func (e *Engine) containerUpdate(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	return nil, errNoContainers()
}

func (e *Engine) containerRollback(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	return nil, errNoContainers()
}

func (e *Engine) containerUninstall(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	return nil, errNoContainers()
}

// Images lists the pulled images (read-only; open to every caller).
func (e *Engine) Images() ([]map[string]any, error) { return nil, errNoContainers() }

// Containers lists the installed system containers (read-only; open to every caller).
func (e *Engine) Containers() ([]map[string]any, error) { return nil, errNoContainers() }
