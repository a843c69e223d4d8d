package containers

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	// jobTimeout bounds each job (start, stop, tmpfiles) and daemon-reload.
	jobTimeout time.Duration
}

// DefaultJobTimeout is how long hostd waits for a systemd job (a unit's
// start or stop, daemon-reload) before it gives up on it: systemd's own
// default start and stop timeouts are 90 s.
const DefaultJobTimeout = 90 * time.Second

// callTimeout bounds a plain query or unit-file call to systemd.
const callTimeout = 30 * time.Second

// SetJobTimeout changes how long a job may take (0: DefaultJobTimeout).
// Call it before the service manager is used.
func (s *Systemd) SetJobTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultJobTimeout
	}
	s.jobTimeout = d
}

// bounded derives a context that also ends after d.
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// waitJob waits for a job's result on ch, at most until ctx (which carries
// the job deadline of d) is done. A cancel of the parent context reads as
// cancelled; the deadline as systemd not finishing the job in time.
func waitJob(ctx context.Context, parent context.Context, d time.Duration, what, unit string, ch <-chan string) error {
	select {
	case <-ctx.Done():
		if err := parent.Err(); err != nil {
			return fmt.Errorf("%s %s: %w", what, unit, err)
		}
		return fmt.Errorf("%s %s: systemd did not finish the job within %v (%w): see journalctl -u %s", what, unit, d, ctx.Err(), unit)
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("%s %s: the job ended %q", what, unit, res)
		}
	}
	return nil
}

// NewSystemd connects to systemd. address "" means the system bus; a
// "unix:path=.../systemd/private" address is systemd's private socket (no
// bus daemon; only from systemd's own PID namespace: sd-bus drops a peer
// whose PID it cannot see); any other address is a bus (e.g. the system bus
// socket of a container booted with systemd-nspawn, reached through
// /proc/LEADER/root/run/dbus/system_bus_socket).
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
	return &Systemd{conn: conn, runtime: runtime, settle: 1500 * time.Millisecond, jobTimeout: DefaultJobTimeout}, nil
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
	ctx, cancel := bounded(ctx, s.jobTimeout)
	defer cancel()
	if err := s.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload: %w", err)
	}
	return nil
}

// Reboot asks systemd to reboot the host: a start job for reboot.target in
// the replace-irreversibly mode, as `systemctl reboot` queues it. It returns
// once systemd has queued the job; the host goes down after.
func (s *Systemd) Reboot(ctx context.Context) error {
	ctx, cancel := bounded(ctx, callTimeout)
	defer cancel()
	if _, err := s.conn.StartUnitContext(ctx, "reboot.target", "replace-irreversibly", nil); err != nil {
		return fmt.Errorf("start reboot.target: %w", err)
	}
	return nil
}

// Enable implements ServiceManager.
func (s *Systemd) Enable(ctx context.Context, name string) error {
	ctx, cancel := bounded(ctx, callTimeout)
	defer cancel()
	if _, _, err := s.conn.EnableUnitFilesContext(ctx, []string{unitName(name)}, false, true); err != nil {
		return fmt.Errorf("enable %s: %w", unitName(name), err)
	}
	return nil
}

// Disable implements ServiceManager.
func (s *Systemd) Disable(ctx context.Context, name string) error {
	ctx, cancel := bounded(ctx, callTimeout)
	defer cancel()
	if _, err := s.conn.DisableUnitFilesContext(ctx, []string{unitName(name)}, false); err != nil {
		return fmt.Errorf("disable %s: %w", unitName(name), err)
	}
	return nil
}

func (s *Systemd) job(ctx context.Context, what, name string, f func(context.Context, string, string, chan<- string) (int, error)) error {
	jctx, cancel := bounded(ctx, s.jobTimeout)
	defer cancel()
	ch := make(chan string, 1)
	if _, err := f(jctx, unitName(name), "replace", ch); err != nil {
		return fmt.Errorf("%s %s: %w", what, unitName(name), err)
	}
	return waitJob(jctx, ctx, s.jobTimeout, what, unitName(name), ch)
}

// Start implements ServiceManager. The start job succeeding is not
// enough: a container whose process dies at once is restarted by
// Restart=on-failure and looks "activating" or even "active" between two
// attempts. So after the settle time the unit must be active or still
// activating for the first time, and not have been restarted.
func (s *Systemd) Start(ctx context.Context, name string) error {
	if err := s.createTmpfiles(ctx, name); err != nil {
		return err
	}
	_ = s.conn.ResetFailedUnitContext(ctx, unitName(name))
	if err := s.job(ctx, "start", name, s.conn.StartUnitContext); err != nil {
		return fmt.Errorf("%w: see journalctl -u %s", err, unitName(name))
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.settle):
	}
	st, err := s.unitState(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case st.restarts > 0:
		return fmt.Errorf("%s was restarted %d times right after it started (now %s/%s): see journalctl -u %s",
			unitName(name), st.restarts, st.active, st.sub, unitName(name))
	case st.sub == "auto-restart" || (st.active != "active" && st.active != "activating" && st.active != "reloading"):
		return fmt.Errorf("%s is %s/%s right after it started: see journalctl -u %s", unitName(name), st.active, st.sub, unitName(name))
	}
	return nil
}

// tmpfilesCommand is systemd-tmpfiles where systemd's root has it (/bin is
// /usr/bin on merged-/usr systems).
const tmpfilesCommand = "/usr/bin/systemd-tmpfiles"

// createTmpfiles has systemd run "systemd-tmpfiles --create" on the
// container's /etc/tmpfiles.d/NAME.conf before the service starts, as atomic
// does at install: it creates the bind-mount sources config.json names
// (DefaultTmpfiles) and whatever the image's tmpfiles.template asks for,
// which runc needs before it can start the container. systemd runs it as a
// transient oneshot service in its own root, so hostd need not share that
// root; the service is skipped when the container has no such file.
func (s *Systemd) createTmpfiles(ctx context.Context, name string) error {
	conf := "/etc/tmpfiles.d/" + name + ".conf"
	unit := "hostctl-tmpfiles-" + name + ".service"
	type condition struct {
		Type            string
		Trigger, Negate bool
		Param           string
	}
	props := []sd.Property{
		sd.PropDescription("hostctl: create the files of container " + name),
		sd.PropType("oneshot"),
		sd.PropExecStart([]string{tmpfilesCommand, "--create", conf}, true),
		{Name: "Conditions", Value: godbus.MakeVariant([]condition{{Type: "ConditionPathExists", Param: conf}})},
		{Name: "CollectMode", Value: godbus.MakeVariant("inactive-or-failed")},
	}
	jctx, cancel := bounded(ctx, s.jobTimeout)
	defer cancel()
	ch := make(chan string, 1)
	if _, err := s.conn.StartTransientUnitContext(jctx, unit, "replace", props, ch); err != nil {
		return fmt.Errorf("run systemd-tmpfiles --create %s: %w", conf, err)
	}
	return waitJob(jctx, ctx, s.jobTimeout, "systemd-tmpfiles --create "+conf+" in", unit, ch)
}

// Stop implements ServiceManager. A stop hostd asked for is not a failure
// of the service: when systemd had to SIGKILL it (its process ignored
// SIGTERM until TimeoutStopSec) the unit is left "failed"; that is reset,
// so the unit reads inactive and systemd forgets it once its file is gone.
//
// With --systemd-cgroup the runtime runs the container in a scope of its
// own (runc-NAME.scope), not in the service's cgroup: Stop also waits until
// that scope is gone (reset when it failed), so that the next start of a
// container of the same name can create it again (a start while the old
// scope is still loaded fails: "Unit runc-NAME.scope already exists").
func (s *Systemd) Stop(ctx context.Context, name string) error {
	scope := s.containerScope(ctx, name)
	if err := s.job(ctx, "stop", name, s.conn.StopUnitContext); err != nil {
		return err
	}
	if st, err := s.unitState(ctx, name); err == nil && st.active == "failed" {
		if err := s.conn.ResetFailedUnitContext(ctx, unitName(name)); err != nil {
			return fmt.Errorf("reset-failed %s after stopping it: %w", unitName(name), err)
		}
	}
	if scope != "" {
		return s.waitUnitGone(ctx, scope)
	}
	return nil
}

// containerScope is the scope unit the running container of name is in,
// as its service's main process's cgroup names it ("" when it is in the
// service's own cgroup or does not run).
func (s *Systemd) containerScope(ctx context.Context, name string) string {
	cctx, cancel := bounded(ctx, callTimeout)
	defer cancel()
	props, err := s.conn.GetUnitTypePropertiesContext(cctx, unitName(name), "Service")
	if err != nil {
		return ""
	}
	pid, _ := props["MainPID"].(uint32)
	if pid == 0 {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	return scopeOf(string(b))
}

// scopeOf reads a /proc/PID/cgroup: the scope unit named by the last element
// of systemd's hierarchy, name=systemd on cgroup v1 or the unified "0::"
// line (the one a systemd in a container uses: there name=systemd may be
// the container manager's "/payload"), or "" when neither is a scope.
func scopeOf(procCgroup string) string {
	var v1, unified string
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		switch {
		case len(parts) != 3:
		case parts[1] == "name=systemd":
			v1 = parts[2]
		case parts[0] == "0" && parts[1] == "":
			unified = parts[2]
		}
	}
	for _, p := range []string{v1, unified} {
		if base := filepath.Base(p); strings.HasSuffix(base, ".scope") && base != ".scope" {
			return base
		}
	}
	return ""
}

// waitUnitGone waits, at most scopeGoneTimeout, until systemd no longer has
// unit loaded (a transient unit is collected once inactive; a failed one is
// reset first). An inactive unit still loaded counts as there: systemd
// refuses to create a transient unit of that name until it is collected.
// When the time is up it returns nil all the same: the start that follows
// says what is wrong, as it would have without the wait.
func (s *Systemd) waitUnitGone(ctx context.Context, unit string) error {
	deadline := time.Now().Add(scopeGoneTimeout)
	for time.Now().Before(deadline) {
		cctx, cancel := bounded(ctx, callTimeout)
		props, err := s.conn.GetUnitPropertiesContext(cctx, unit)
		cancel()
		if err != nil {
			return fmt.Errorf("state of %s after the stop: %w", unit, err)
		}
		if load, _ := props["LoadState"].(string); load != "loaded" {
			return nil
		}
		if st, _ := props["ActiveState"].(string); st == "failed" {
			if err := s.conn.ResetFailedUnitContext(ctx, unit); err != nil {
				return fmt.Errorf("reset-failed %s after the stop: %w", unit, err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// scopeGoneTimeout bounds how long Stop waits for the container's scope.
const scopeGoneTimeout = 10 * time.Second

// unitStatus is what State and Start read of a unit.
// SystemState is systemd's state of the whole system, as `systemctl
// is-system-running` prints it: initializing, starting, running, degraded,
// maintenance, stopping...
func (s *Systemd) SystemState(ctx context.Context) (string, error) {
	ctx, cancel := bounded(ctx, callTimeout)
	defer cancel()
	p, err := s.conn.SystemStateContext(ctx)
	if err != nil {
		return "", fmt.Errorf("systemd's system state: %w", err)
	}
	state, _ := p.Value.Value().(string)
	return state, nil
}

type unitStatus struct {
	active, sub string
	restarts    uint32 // NRestarts: automatic restarts since the last start job
}

func (s *Systemd) unitState(ctx context.Context, name string) (unitStatus, error) {
	ctx, cancel := bounded(ctx, callTimeout)
	defer cancel()
	props, err := s.conn.GetUnitPropertiesContext(ctx, unitName(name))
	if err != nil {
		return unitStatus{}, fmt.Errorf("state of %s: %w", unitName(name), err)
	}
	var st unitStatus
	st.active, _ = props["ActiveState"].(string)
	st.sub, _ = props["SubState"].(string)
	if load, _ := props["LoadState"].(string); load == "loaded" {
		if p, err := s.conn.GetServicePropertyContext(ctx, unitName(name), "NRestarts"); err == nil {
			st.restarts, _ = p.Value.Value().(uint32)
		}
	}
	return st, nil
}

// State implements ServiceManager: a unit systemd keeps restarting
// (auto-restart) is failed, not running.
func (s *Systemd) State(ctx context.Context, name string) (string, error) {
	st, err := s.unitState(ctx, name)
	if err != nil {
		return "", err
	}
	switch {
	case st.active == "failed" || st.sub == "auto-restart":
		return StateFailed, nil
	case st.active == "active" || st.active == "activating" || st.active == "reloading" || st.active == "deactivating":
		return StateRunning, nil
	}
	return StateInactive, nil
}

// Exec implements ServiceManager: runc exec in runc's default state
// directory, where the units' runc keeps its containers.
func (s *Systemd) Exec(ctx context.Context, name string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	return runcExec(ctx, s.runtime, s.root, name, args, stdin, stdout, stderr)
}
