package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// sandbox is what every benchmark shares: the test OS, its repository served
// on loopback, a private bus, and a work directory for sysroots.
type sandbox struct {
	os      *fixture.OS
	srv     *fixture.Server
	bus     *harness.Bus
	work    string
	removeW bool
}

// refspec is what every sandbox sysroot follows.
var refspec = fixture.OSName + ":" + fixture.StableRef

// newSandbox builds (or finds cached) the test OS, serves its repository and
// starts a private bus that loads the policy files.
func newSandbox(ctx context.Context, work string, policies []string) (*sandbox, error) {
	o, err := fixture.BuildOS(ctx)
	if err != nil {
		return nil, fmt.Errorf("build the test OS: %w", err)
	}
	s := &sandbox{os: o}
	if work == "" {
		if s.work, err = os.MkdirTemp("", "hostctl-bench-"); err != nil {
			return nil, err
		}
		s.removeW = true
	} else {
		s.work = work
		if err := os.MkdirAll(work, 0o755); err != nil {
			return nil, err
		}
	}
	os.Chmod(s.work, 0o755)
	// The cached repository is served as it is: pulls only read it.
	if s.srv, err = fixture.NewServer(o.RepoPath); err != nil {
		s.close()
		return nil, err
	}
	if s.bus, err = harness.StartBus(ctx, filepath.Join(s.work, "bus"), policies...); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *sandbox) close() {
	if s.bus != nil {
		s.bus.Stop()
	}
	if s.srv != nil {
		s.srv.Close()
	}
	if s.removeW {
		fixture.RemoveAll(s.work)
	}
}

// newSysroot makes a sysroot with version 1 deployed from the served remote
// and version 2's commit pulled into its repo (not deployed): the state the
// deploy benchmark starts from.
func (s *sandbox) newSysroot(ctx context.Context, name string) (string, error) {
	dir := filepath.Join(s.work, name)
	if err := harness.NewSysroot(ctx, dir, fixture.OSName, s.srv.URL(), refspec, s.os.Commit("1")); err != nil {
		return "", fmt.Errorf("make sysroot %s: %w", dir, err)
	}
	sr, err := deploy.Open(ctx, dir)
	if err != nil {
		return "", err
	}
	defer sr.Close()
	if ok, err := sr.TryLock(); err != nil || !ok {
		return "", fmt.Errorf("lock sysroot %s: %v", dir, err)
	}
	defer sr.Unlock()
	if _, err := sr.Pull(ctx, refspec, deploy.PullOptions{Commit: s.os.Commit("2")}); err != nil {
		return "", fmt.Errorf("pre-pull version 2 into %s: %w", dir, err)
	}
	return dir, nil
}

// defaultCommit is the commit of a sysroot's default deployment, and how
// many deployments it has.
func defaultCommit(ctx context.Context, sysroot string) (string, int, error) {
	sr, err := deploy.Open(ctx, sysroot)
	if err != nil {
		return "", 0, err
	}
	defer sr.Close()
	deps, err := sr.Deployments(ctx)
	if err != nil || len(deps) == 0 {
		return "", 0, fmt.Errorf("list the deployments of %s: %v", sysroot, err)
	}
	return deps[0].Checksum, len(deps), nil
}

// connect opens a new connection to the sandbox bus, as a client process would.
func (s *sandbox) connect() (*godbus.Conn, error) {
	conn, err := godbus.Connect(s.bus.Address)
	if err != nil {
		return nil, fmt.Errorf("connect to the sandbox bus %s: %w", s.bus.Address, err)
	}
	return conn, nil
}

// env is the environment of a process that should use the sandbox bus as its system bus.
func (s *sandbox) env() []string {
	return append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+s.bus.Address)
}

// pidOf asks the bus which process owns name (for org.freedesktop.DBus: the bus daemon).
func pidOf(conn *godbus.Conn, name string) (int, error) {
	var pid uint32
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, name).Store(&pid); err != nil {
		return 0, fmt.Errorf("find the process of %s: %w", name, err)
	}
	return int(pid), nil
}

// process is a helper service the benchmark started (refhost).
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startReady starts bin with args on the sandbox bus and waits for it to print "ready".
func (s *sandbox) startReady(ctx context.Context, bin string, args ...string) (*process, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = s.env()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "ready" {
				close(ready)
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready", bin)
	case <-time.After(10 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s was not ready in 10s", bin)
	}
}

func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}
