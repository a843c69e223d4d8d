package containers

import (
	"context"
	"io"
)

// Service states as `hostctl container list` shows them.
const (
	StateRunning  = "running"
	StateFailed   = "failed"
	StateInactive = "inactive"
)

// ServiceManager runs the containers' services: systemd (Systemd) on a host
// whose PID 1 is systemd, or hostd itself (Direct) where it is not.
type ServiceManager interface {
	// Reload makes the manager read the units again (daemon-reload).
	Reload(ctx context.Context) error
	// Enable and Disable make the service start at boot, or not.
	Enable(ctx context.Context, name string) error
	Disable(ctx context.Context, name string) error
	// Start starts the service and waits until it runs; an error says it
	// did not start (or stopped at once) and why.
	Start(ctx context.Context, name string) error
	// Stop stops the service and waits until it is gone.
	Stop(ctx context.Context, name string) error
	// State is StateRunning, StateFailed or StateInactive.
	State(ctx context.Context, name string) (string, error)
	// Exec runs args in the running container with the given stdio and
	// returns the exit status.
	Exec(ctx context.Context, name string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	// Close releases the manager (the direct one stops supervising; the
	// containers keep running).
	Close() error
}
