package containers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hostctl/hostctl/internal/proc"
)

// Direct is the service manager for hosts whose PID 1 is not systemd (CI
// containers, the demo sandbox): hostd runs each container with
// `runc run --detach` itself, keeps its own runc state directory, and
// supervises it: a container that stops while it should run is marked
// failed and restarted (the default unit's Restart=on-failure), at most
// three times in a row. The containers outlive hostd; a new hostd adopts
// the running ones from runc's state. Units and tmpfiles.d files are still
// written, so the same host can later be driven by systemd; the directories
// tmpfiles.d would create (bind-mount sources) are created by Start.
type Direct struct {
	runtime string
	root    string // runc --root
	host    Host
	log     *slog.Logger
	settle  time.Duration

	startMu sync.Mutex // held by start
	mu      sync.Mutex
	want    map[string]bool // should be running
	failed  map[string]bool
	retries map[string]int
	// seen is runc's state of each container as last asked (by the
	// supervisor every second for those that should run), so that State,
	// the read path of ListContainers, answers without a runc call.
	seen map[string]observation
	stop chan struct{}
	done chan struct{}
}

// observation is one answer of runc state.
type observation struct {
	status string
	at     time.Time
}

// stateTTL is how old an observation State may answer from.
const stateTTL = 2 * time.Second

// stopTimeout is how long Stop waits after TERM before it kills.
const stopTimeout = 3 * time.Second

// NewDirect returns a direct service manager keeping runc's state in
// stateDir and supervising every second.
func NewDirect(h Host, stateDir string, log *slog.Logger) (*Direct, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("direct service manager: %w", err)
	}
	d := &Direct{runtime: h.Runtime, root: stateDir, host: h, log: log, settle: 1500 * time.Millisecond,
		want: map[string]bool{}, failed: map[string]bool{}, retries: map[string]int{}, seen: map[string]observation{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go d.supervise()
	return d, nil
}

// RuncRoot is the runc state directory (runc --root) of the containers.
func (d *Direct) RuncRoot() string { return d.root }

// Close stops supervising; the containers keep running.
func (d *Direct) Close() error {
	select {
	case <-d.stop:
	default:
		close(d.stop)
		<-d.done
	}
	return nil
}

// Reload implements ServiceManager: there is nothing to read again.
func (d *Direct) Reload(ctx context.Context) error { return nil }

// Enable implements ServiceManager: containers that should run are
// started by hostd's reconcile at start.
func (d *Direct) Enable(ctx context.Context, name string) error { return nil }

// Disable implements ServiceManager: the container is being removed, so
// its runtime bundle (written by each start) goes too.
func (d *Direct) Disable(ctx context.Context, name string) error {
	if err := os.RemoveAll(d.bundleDir(name)); err != nil {
		return fmt.Errorf("disable container %s: %w", name, err)
	}
	return nil
}

type runcState struct {
	Status string `json:"status"`
	Pid    int    `json:"pid"`
}

// runc runs the runtime in its own process group, killed as a group when ctx is done.
func (d *Direct) runc(ctx context.Context, args ...string) *proc.Cmd {
	return proc.Command(ctx, d.runtime, append([]string{"--root", d.root}, args...)...)
}

func (d *Direct) state(ctx context.Context, name string) (string, error) {
	out, err := d.runc(ctx, "state", name).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && bytes.Contains(ee.Stderr, []byte("does not exist")) {
			d.mu.Lock()
			d.seen[name] = observation{at: time.Now()}
			d.mu.Unlock()
			return "", nil
		}
		if errors.As(err, &ee) {
			return "", fmt.Errorf("runc state %s: %s", name, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("runc state %s: %w", name, err)
	}
	var st runcState
	if err := json.Unmarshal(out, &st); err != nil {
		return "", fmt.Errorf("runc state %s: %w", name, err)
	}
	d.mu.Lock()
	d.seen[name] = observation{status: st.Status, at: time.Now()}
	d.mu.Unlock()
	return st.Status, nil
}

// forget drops the observation of name: it is about to change.
func (d *Direct) forget(name string) {
	d.mu.Lock()
	delete(d.seen, name)
	d.mu.Unlock()
}

// Start implements ServiceManager.
func (d *Direct) Start(ctx context.Context, name string) error {
	d.forget(name)
	defer d.forget(name)
	d.mu.Lock()
	d.want[name] = true
	d.retries[name] = 0
	d.mu.Unlock()
	return d.start(ctx, name)
}

// start runs one container, one start at a time: the supervisor's restart
// and a transaction's Start must never run `runc run` for the same
// container side by side ("container still running", a missing exec fifo).
func (d *Direct) start(ctx context.Context, name string) error {
	d.startMu.Lock()
	defer d.startMu.Unlock()
	st, err := d.state(ctx, name)
	if err != nil {
		return err
	}
	if st == "running" {
		d.setFailed(name, false)
		return nil
	}
	if st != "" {
		if out, err := d.runc(ctx, "delete", "--force", name).CombinedOutput(); err != nil {
			return fmt.Errorf("runc delete %s: %v: %s", name, err, bytes.TrimSpace(out))
		}
	} else if err := os.RemoveAll(filepath.Join(d.root, name)); err != nil {
		// runc does not know the container, but a runc killed while it
		// created it (hostd killed in that instant) leaves its state
		// directory, and `runc run` would refuse: "already exists".
		return fmt.Errorf("remove the leftover runc state of %s: %w", name, err)
	}
	if err := d.makeBindSources(d.host.LinkPath(name)); err != nil {
		return err
	}
	bundle, err := d.runtimeBundle(name)
	if err != nil {
		return err
	}
	logPath := filepath.Join(d.host.Dir, stateDirName, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := d.runc(ctx, "run", "--detach", "--pid-file", filepath.Join(d.root, name+".pid"), "--bundle", bundle, name)
	// The container inherits runc's stdio: give it files, never pipes, or
	// runc's caller would wait for the container to close them.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, logf, logf
	if err := cmd.Run(); err != nil {
		d.setFailed(name, true)
		return fmt.Errorf("start container %s: runc run: %v%s", name, err, lastLines(logPath, 3))
	}
	// A service that dies at once (a port taken, a bad argument) has not started.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d.settle):
	}
	if st, err := d.state(ctx, name); err != nil || st != "running" {
		d.setFailed(name, true)
		tail := lastLines(logPath, 5)
		return fmt.Errorf("container %s stopped right after it started (state %q)%s", name, st, tail)
	}
	d.setFailed(name, false)
	return nil
}

// runtimeBundle writes the bundle runc runs for container name: the active
// slot's config.json with an absolute root.path and relative bind sources made
// absolute against the slot (what runc would resolve them to), and, when the
// config names no cgroup, a cgroup of this runc root's own. runc without
// --systemd-cgroup puts a container whose config names no cgroup in
// "<own cgroup>/<container id>": two hosts (two sysroots, two test
// sandboxes) running a container of the same name would share that cgroup,
// and the `runc delete` of one removes it under the other starting ("failed
// to write PID: .../web/cgroup.procs: no such file or directory"). The
// rendered config.json stays as it is: under systemd the runtime takes
// --systemd-cgroup, where a cgroupsPath has another form.
func (d *Direct) runtimeBundle(name string) (string, error) {
	slot, err := filepath.EvalSymlinks(d.host.LinkPath(name))
	if err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	b, err := os.ReadFile(filepath.Join(slot, "config.json"))
	if err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	out, err := runtimeConfig(b, slot, d.cgroupParent()+"/"+name)
	if err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	dir := d.bundleDir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	tmp := filepath.Join(dir, "config.json.tmp")
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "config.json")); err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	return dir, nil
}

// bundleDir is where container name's runtime bundle is written.
func (d *Direct) bundleDir(name string) string {
	return filepath.Join(d.root+".bundles", name)
}

// cgroupParent is the cgroup, relative to hostd's own, under which this
// runc root's containers run: "hostctl-" and a short hash of the root.
func (d *Direct) cgroupParent() string {
	sum := sha256.Sum256([]byte(d.root))
	return "hostctl-" + hex.EncodeToString(sum[:6])
}

// runtimeConfig rewrites a rendered config.json for a bundle outside the
// slot directory slot: root.path and relative bind-mount sources become
// absolute, and linux.cgroupsPath is set to cgroup when the config has none.
// Everything else, fields this version does not know included, is kept.
func runtimeConfig(config []byte, slot, cgroup string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.UseNumber()
	var spec map[string]any
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	root, _ := spec["root"].(map[string]any)
	if root == nil {
		return nil, fmt.Errorf("config.json: no \"root\"")
	}
	if p, _ := root["path"].(string); !filepath.IsAbs(p) {
		root["path"] = filepath.Join(slot, p)
	}
	mounts, _ := spec["mounts"].([]any)
	for _, m := range mounts {
		m, _ := m.(map[string]any)
		src, _ := m["source"].(string)
		if src == "" || filepath.IsAbs(src) || !isBind(m) {
			continue
		}
		m["source"] = filepath.Join(slot, src)
	}
	linux, _ := spec["linux"].(map[string]any)
	if linux == nil {
		linux = map[string]any{}
		spec["linux"] = linux
	}
	if p, _ := linux["cgroupsPath"].(string); p == "" {
		linux["cgroupsPath"] = cgroup
	}
	return json.Marshal(spec)
}

// isBind reports whether a mount of a decoded config.json is a bind mount,
// as BindSources decides.
func isBind(m map[string]any) bool {
	if t, _ := m["type"].(string); strings.Contains(t, "bind") {
		return true
	}
	opts, _ := m["options"].([]any)
	for _, o := range opts {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// makeBindSources creates the missing bind-mount sources of the bundle's
// config.json, as systemd-tmpfiles would from the container's tmpfiles.d file.
func (d *Direct) makeBindSources(bundle string) error {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	spec, err := CheckConfig(b)
	if err != nil {
		return err
	}
	for _, src := range MissingBindSources(spec, d.host.Root) {
		if err := os.MkdirAll(filepath.Join(d.host.Root, src), 0o700); err != nil {
			return fmt.Errorf("create %s: %w", src, err)
		}
	}
	return nil
}

func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return ": " + strings.Join(lines, " | ")
}

func (d *Direct) setFailed(name string, f bool) {
	d.mu.Lock()
	d.failed[name] = f
	d.mu.Unlock()
}

// Stop implements ServiceManager.
func (d *Direct) Stop(ctx context.Context, name string) error {
	d.forget(name)
	defer d.forget(name)
	d.mu.Lock()
	delete(d.want, name)
	delete(d.failed, name)
	d.mu.Unlock()
	st, err := d.state(ctx, name)
	if err != nil || st == "" {
		return err
	}
	if st == "running" {
		// A service running as the container's PID 1 without a TERM
		// handler ignores TERM: it gets KILL (runc delete --force) after
		// stopTimeout.
		d.runc(ctx, "kill", name, "TERM").Run()
		deadline := time.Now().Add(stopTimeout)
	wait:
		for time.Now().Before(deadline) {
			if st, _ := d.state(ctx, name); st != "running" {
				break
			}
			select {
			case <-ctx.Done():
				break wait
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if out, err := d.runc(ctx, "delete", "--force", name).CombinedOutput(); err != nil {
		if st, _ := d.state(ctx, name); st != "" {
			return fmt.Errorf("stop container %s: runc delete: %v: %s", name, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// State implements ServiceManager.
func (d *Direct) State(ctx context.Context, name string) (string, error) {
	d.mu.Lock()
	o, ok := d.seen[name]
	d.mu.Unlock()
	st := o.status
	if !ok || time.Since(o.at) > stateTTL {
		var err error
		if st, err = d.state(ctx, name); err != nil {
			return "", err
		}
	}
	if st == "running" {
		return StateRunning, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failed[name] || (st != "" && d.want[name]) {
		return StateFailed, nil
	}
	return StateInactive, nil
}

// Exec implements ServiceManager.
func (d *Direct) Exec(ctx context.Context, name string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	return runcExec(ctx, d.runtime, d.root, name, args, stdin, stdout, stderr)
}

func runcExec(ctx context.Context, runtime, root, name string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		return -1, fmt.Errorf("exec in %s: no command given", name)
	}
	full := []string{}
	if root != "" {
		full = append(full, "--root", root)
	}
	full = append(full, "exec")
	full = append(full, name)
	full = append(full, args...)
	cmd := proc.Command(ctx, runtime, full...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", name, err)
	}
	return 0, nil
}

// supervise restarts containers that stopped while they should run.
func (d *Direct) supervise() {
	defer close(d.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
		}
		d.mu.Lock()
		var names []string
		for n := range d.want {
			if d.retries[n] < 3 {
				names = append(names, n)
			}
		}
		d.mu.Unlock()
		for _, n := range names {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			st, err := d.state(ctx, n)
			if err == nil && st != "running" {
				d.mu.Lock()
				still := d.want[n]
				if still {
					d.retries[n]++
					d.failed[n] = true
				}
				d.mu.Unlock()
				if still {
					d.log.Warn("container stopped; restarting", "container", n, "attempt", d.retries[n])
					if err := d.start(ctx, n); err != nil {
						d.log.Error("restart container", "container", n, "err", err)
					}
				}
			}
			cancel()
		}
	}
}
