package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// sandbox is what every benchmark shares: the test OS served on loopback, a
// private bus, a registry holding the benchmark image, and a work directory.
type sandbox struct {
	cfg     config
	os      *fixture.OS
	srv     *fixture.Server
	bus     *harness.Bus
	reg     *fixture.Registry
	img     *benchImage
	image   string // REGISTRY/ctrbench:1
	layout  string // the image's OCI layout, as built
	work    string
	removeW bool
	runc    []string // runc state directories of the sysroots, for the clean-up
}

// refspec is what every sandbox sysroot follows.
var refspec = fixture.OSName + ":" + fixture.StableRef

func newSandbox(ctx context.Context, cfg config) (_ *sandbox, err error) {
	o, err := fixture.BuildOS(ctx)
	if err != nil {
		return nil, fmt.Errorf("build the test OS: %w", err)
	}
	s := &sandbox{cfg: cfg, os: o}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if cfg.work == "" {
		if s.work, err = os.MkdirTemp("", "hostctl-ctrbench-"); err != nil {
			return nil, err
		}
		s.removeW = true
	} else {
		s.work = cfg.work
		if err := os.MkdirAll(s.work, 0o755); err != nil {
			return nil, err
		}
	}
	os.Chmod(s.work, 0o755)
	if s.srv, err = fixture.NewServer(o.RepoPath); err != nil {
		return nil, err
	}
	if s.bus, err = harness.StartBus(ctx, filepath.Join(s.work, "bus"), cfg.policies...); err != nil {
		return nil, err
	}
	regDir := filepath.Join(s.work, "registry")
	if err := os.MkdirAll(regDir, 0o755); err != nil {
		return nil, err
	}
	if s.reg, err = fixture.StartRegistry(ctx, regDir); err != nil {
		return nil, err
	}
	if s.img, err = buildImage(cfg.smallFiles, cfg.randomMiB); err != nil {
		return nil, err
	}
	s.layout = filepath.Join(s.work, "layout")
	if _, err := fixture.OCILayout(s.layout, "1", s.img.layers); err != nil {
		return nil, err
	}
	if s.image, err = s.reg.Push(ctx, s.layout, "1", "ctrbench"); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sandbox) close() {
	// Containers run by hostd in direct mode outlive it: remove them.
	for _, dir := range s.runc {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() {
				exec.Command("runc", "--root", dir, "delete", "--force", e.Name()).Run()
			}
		}
	}
	if s.reg != nil {
		s.reg.Stop()
	}
	if s.bus != nil {
		s.bus.Stop()
	}
	if s.srv != nil {
		s.srv.Close()
	}
	if s.removeW && s.work != "" {
		fixture.RemoveAll(s.work)
	}
}

// sysroot is a sandbox sysroot: version 1 of the test OS deployed, the
// registry trusted (policy.json accepts anything, registries.conf marks it
// insecure) in its deployment's /etc.
type sysroot struct {
	dir     string
	dep     string // the deployment's checkout
	ctrDir  string // the stateroot's var/lib/containers/hostctl
	runcDir string
}

func (s *sandbox) newSysroot(ctx context.Context, name string) (*sysroot, error) {
	dir := filepath.Join(s.work, name)
	if err := harness.NewSysroot(ctx, dir, fixture.OSName, s.srv.URL(), refspec, s.os.Commit("1")); err != nil {
		return nil, fmt.Errorf("make sysroot %s: %w", dir, err)
	}
	sr, err := deploy.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer sr.Close()
	deps, err := sr.Deployments(ctx)
	if err != nil || len(deps) == 0 {
		return nil, fmt.Errorf("list the deployments of %s: %v", dir, err)
	}
	d := deps[0]
	r := &sysroot{dir: dir, dep: d.Path,
		ctrDir:  filepath.Join(dir, "ostree", "deploy", d.OSName, "var", "lib", "containers", "hostctl"),
		runcDir: filepath.Join(dir, "run", "hostctl", "runc")}
	s.runc = append(s.runc, r.runcDir)
	etc := filepath.Join(d.Path, "etc", "containers")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(etc, "policy.json"), []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		return nil, err
	}
	reg := fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", s.reg.Addr)
	if err := os.WriteFile(filepath.Join(etc, "registries.conf"), []byte(reg), 0o644); err != nil {
		return nil, err
	}
	return r, nil
}

// startHostd starts hostd on a sysroot, running containers under its own
// supervision (PID 1 is not systemd in the sandbox).
func (s *sandbox) startHostd(ctx context.Context, sr *sysroot) (*harness.Hostd, error) {
	return harness.StartHostd(ctx, filepath.Join(s.cfg.bin, "hostd"), sr.dir, s.bus, "--service-manager", "direct")
}

// hostctl runs hostctl as a whole process and times it.
func (s *sandbox) hostctl(ctx context.Context, args ...string) (time.Duration, string, error) {
	settle()
	return s.hostctlNoSettle(ctx, args...)
}

func (s *sandbox) hostctlNoSettle(ctx context.Context, args ...string) (time.Duration, string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.cfg.bin, "hostctl"), args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+s.bus.Address)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, string(out), fmt.Errorf("hostctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return d, string(out), nil
}

// timed runs a command as a whole process and times it.
func timed(ctx context.Context, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return d, nil
}

// settle flushes dirty pages before a timed run, so that one run does not
// pay for the write-back of what the previous one (or preparing it) left.
func settle() { unix.Sync() }

// hostdPID asks the bus which process serves org.hostctl.Host1.
func (s *sandbox) hostdPID() (int, error) {
	conn, err := godbus.Connect(s.bus.Address)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var pid uint32
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, dbus.BusName).Store(&pid); err != nil {
		return 0, fmt.Errorf("find hostd's process: %w", err)
	}
	return int(pid), nil
}

// stepWatch records when hostd announces each step of a transaction, from
// a connection of its own (the Progress signals are broadcast), so that
// hostctl runs as a user would run it.
type stepWatch struct {
	conn *godbus.Conn
	ch   chan *godbus.Signal
	mu   sync.Mutex
	seen map[string]time.Time // step -> first announcement
	end  time.Time            // Finished
	done chan struct{}
}

func (s *sandbox) watchSteps() (*stepWatch, error) {
	conn, err := godbus.Connect(s.bus.Address)
	if err != nil {
		return nil, err
	}
	if err := conn.AddMatchSignal(godbus.WithMatchInterface(dbus.TransactionInterface)); err != nil {
		conn.Close()
		return nil, err
	}
	w := &stepWatch{conn: conn, ch: make(chan *godbus.Signal, 1024), seen: map[string]time.Time{}, done: make(chan struct{})}
	conn.Signal(w.ch)
	go func() {
		defer close(w.done)
		for sig := range w.ch {
			now := time.Now()
			w.mu.Lock()
			switch sig.Name {
			case dbus.TransactionInterface + ".Progress":
				if len(sig.Body) > 0 {
					if stage, ok := sig.Body[0].(string); ok {
						if _, dup := w.seen[stage]; !dup {
							w.seen[stage] = now
						}
					}
				}
			case dbus.TransactionInterface + ".Finished":
				w.end = now
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// reset forgets what was seen, before the next transaction.
func (w *stepWatch) reset() {
	w.mu.Lock()
	w.seen = map[string]time.Time{}
	w.end = time.Time{}
	w.mu.Unlock()
}

// marks returns when each step was first announced and when the
// transaction finished, waiting up to a second for the Finished signal
// (hostctl may exit on it before this connection reads it).
func (w *stepWatch) marks() (map[string]time.Time, time.Time) {
	deadline := time.Now().Add(time.Second)
	for {
		w.mu.Lock()
		end := w.end
		seen := make(map[string]time.Time, len(w.seen))
		for k, v := range w.seen {
			seen[k] = v
		}
		w.mu.Unlock()
		if !end.IsZero() || time.Now().After(deadline) {
			return seen, end
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *stepWatch) close() {
	w.conn.RemoveSignal(w.ch)
	w.conn.Close()
	close(w.ch)
	<-w.done
}
