package containers

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Systemd drives systemd over its D-Bus API (org.freedesktop.systemd1):
// daemon-reload, enable, start, stop and the unit's ActiveState; it never
// runs or parses systemctl.
type Systemd struct {
	conn    *sd.Conn
	runtime string
	root    string // runc --root the units use ("" = runc's default)
	settle  time.Duration
}

// NewSystemd connects to systemd. address "" means the system bus; a
// "unix:path=.../systemd/private" address is systemd's private socket (no
// bus daemon); any other address is a bus (e.g. the system bus socket of a
// container booted with systemd-nspawn).
func NewSystemd(ctx context.Context, address, runtime string) (*Systemd, error) {
	var conn *sd.Conn
	var err error
	if address == "" {
		conn, err = sd.NewSystemConnectionContext(ctx)
	} else {
		conn, err = sd.NewConnection(func() (*godbus.Conn, error) {
			c, err := godbus.Dial(address)
			if err != nil {
				return nil, err
			}
			if err := c.Auth(nil); err != nil {
				c.Close()
				return nil, err
			}
			if !strings.HasSuffix(address, "/systemd/private") {
				if err := c.Hello(); err != nil {
					c.Close()
					return nil, err
				}
			}
			return c, nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("connect to systemd (%s): %w: is systemd PID 1? choose the direct service manager otherwise", orDefault(address, "system bus"), err)
	}
	return &Systemd{conn: conn, runtime: runtime, settle: 1500 * time.Millisecond}, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func unitName(name string) string { return name + ".service" }

// Close implements ServiceManager.
func (s *Systemd) Close() error { s.conn.Close(); return nil }

// Reload implements ServiceManager.
func (s *Systemd) Reload(ctx context.Context) error {
	if err := s.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload: %w", err)
	}
	return nil
}

// Enable implements ServiceManager.
func (s *Systemd) Enable(ctx context.Context, name string) error {
	if _, _, err := s.conn.EnableUnitFilesContext(ctx, []string{unitName(name)}, false, true); err != nil {
		return fmt.Errorf("enable %s: %w", unitName(name), err)
	}
	return nil
}

// Disable implements ServiceManager.
func (s *Systemd) Disable(ctx context.Context, name string) error {
	if _, err := s.conn.DisableUnitFilesContext(ctx, []string{unitName(name)}, false); err != nil {
		return fmt.Errorf("disable %s: %w", unitName(name), err)
	}
	return nil
}

func (s *Systemd) job(ctx context.Context, what, name string, f func(context.Context, string, string, chan<- string) (int, error)) error {
	ch := make(chan string, 1)
	if _, err := f(ctx, unitName(name), "replace", ch); err != nil {
		return fmt.Errorf("%s %s: %w", what, unitName(name), err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("%s %s: the job ended %q", what, unitName(name), res)
		}
	}
	return nil
}

// Start implements ServiceManager.
func (s *Systemd) Start(ctx context.Context, name string) error {
	_ = s.conn.ResetFailedUnitContext(ctx, unitName(name))
	if err := s.job(ctx, "start", name, s.conn.StartUnitContext); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.settle):
	}
	st, err := s.activeState(ctx, name)
	if err != nil {
		return err
	}
	if st != "active" && st != "activating" && st != "reloading" {
		return fmt.Errorf("%s is %s right after it started: see journalctl -u %s", unitName(name), st, unitName(name))
	}
	return nil
}

// Stop implements ServiceManager.
func (s *Systemd) Stop(ctx context.Context, name string) error {
	return s.job(ctx, "stop", name, s.conn.StopUnitContext)
}

func (s *Systemd) activeState(ctx context.Context, name string) (string, error) {
	p, err := s.conn.GetUnitPropertyContext(ctx, unitName(name), "ActiveState")
	if err != nil {
		return "", fmt.Errorf("state of %s: %w", unitName(name), err)
	}
	v, _ := p.Value.Value().(string)
	return v, nil
}

// State implements ServiceManager.
func (s *Systemd) State(ctx context.Context, name string) (string, error) {
	st, err := s.activeState(ctx, name)
	if err != nil {
		return "", err
	}
	switch st {
	case "active", "activating", "reloading", "deactivating":
		return StateRunning, nil
	case "failed":
		return StateFailed, nil
	}
	return StateInactive, nil
}

// Exec implements ServiceManager: runc exec in runc's default state
// directory, where the units' runc keeps its containers.
func (s *Systemd) Exec(ctx context.Context, name string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	return runcExec(ctx, s.runtime, s.root, name, args, stdin, stdout, stderr)
}
