// Package harness runs hostd and hostctl for real in tests and the demo: a
// private dbus-daemon (configured like a system bus), hostd on a sandbox
// sysroot, and hostctl as a separate process, as a user would run it.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hostctl/hostctl/deploy"
)

// Bus is a private dbus-daemon.
type Bus struct {
	// Address is the bus address for DBUS_SYSTEM_BUS_ADDRESS.
	Address string
	cmd     *exec.Cmd
	dir     string
}

// busConfig is a system-bus-like configuration: anyone may connect, signals
// and replies flow, and the policy files given (hostd's own, as installed on
// a host) decide who owns and calls org.hostctl.Host1.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="org.freedesktop.DBus"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
%s</busconfig>
`

// StartBus starts a dbus-daemon whose socket lives in dir (which must be
// reachable by every user that will connect), with the policy files given.
func StartBus(ctx context.Context, dir string, policies ...string) (*Bus, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "system_bus_socket")
	conf := filepath.Join(dir, "bus.conf")
	var includes strings.Builder
	for _, p := range policies {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&includes, "  <include>%s</include>\n", abs)
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, sock, includes.String())), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile")
	cmd.Stderr = &dropLines{w: os.Stderr, drop: "Failed to set fd limit"}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dbus-daemon (apt-get install dbus-daemon): %w", err)
	}
	b := &Bus{Address: "unix:path=" + sock, cmd: cmd, dir: dir}
	// The socket file exists from bind(2) on, before dbus-daemon listens:
	// wait until a connection is accepted.
	if err := waitFor(20*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		b.Stop()
		return nil, fmt.Errorf("dbus-daemon did not create %s", sock)
	}
	return b, nil
}

// Stop stops the bus.
func (b *Bus) Stop() {
	if b.cmd.Process != nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
	}
}

// Hostd is a running hostd.
type Hostd struct {
	cmd  *exec.Cmd
	Log  *bytes.Buffer
	done chan struct{}
	err  error
}

// StartHostd starts bin/hostd on sysroot, on bus, with extra flags, and
// waits until it owns its name.
func StartHostd(ctx context.Context, hostdBin, sysroot string, bus *Bus, flags ...string) (*Hostd, error) {
	cmd := exec.CommandContext(ctx, hostdBin, append([]string{"--sysroot", sysroot}, flags...)...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address)
	h := &Hostd{cmd: cmd, Log: &bytes.Buffer{}, done: make(chan struct{})}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start hostd: %w", err)
	}
	pw.Close()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			h.Log.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "msg=serving") {
				once = true
				close(ready)
			}
		}
	}()
	go func() { h.err = cmd.Wait(); close(h.done) }()
	select {
	case <-ready:
		return h, nil
	case <-h.done:
		return nil, fmt.Errorf("hostd exited at start: %v\n%s", h.err, h.Log)
	case <-time.After(60 * time.Second):
		h.Kill()
		return nil, fmt.Errorf("hostd did not start in 60s\n%s", h.Log)
	}
}

// Stop sends SIGTERM and waits.
func (h *Hostd) Stop() error {
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		h.Kill()
	}
	return nil
}

// Kill sends SIGKILL and waits: a crash.
func (h *Hostd) Kill() {
	h.cmd.Process.Kill()
	<-h.done
}

// Result is what one hostctl run printed.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Hostctl runs bin/hostctl with args against bus. With uid non-zero it runs as that user.
func Hostctl(ctx context.Context, hostctlBin string, bus *Bus, uid uint32, args ...string) Result {
	cmd := exec.CommandContext(ctx, hostctlBin, args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address)
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// NewSysroot makes an offline sysroot at dir with stateroot osname and the
// remote configured, and deploys commit of refspec as its first deployment,
// using the project's own libostree calls.
func NewSysroot(ctx context.Context, dir, osname, remoteURL, refspec, commit string) error {
	sr, err := deploy.Init(ctx, dir, osname)
	if err != nil {
		return err
	}
	defer sr.Close()
	remote, _, err := deploy.SplitRefspec(refspec)
	if err != nil {
		return err
	}
	if err := sr.AddRemote(ctx, deploy.Remote{Name: remote, URL: remoteURL}, false, true); err != nil {
		return err
	}
	if ok, err := sr.TryLock(); err != nil || !ok {
		return fmt.Errorf("lock new sysroot %s: %v", dir, err)
	}
	defer sr.Unlock()
	csum, err := sr.Pull(ctx, refspec, deploy.PullOptions{Commit: commit})
	if err != nil {
		return err
	}
	_, err = sr.Deploy(ctx, deploy.DeployOptions{OSName: osname, Revision: csum, Origin: deploy.NewOrigin(refspec)})
	return err
}

func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("timeout")
}

// dropLines copies whole lines to w, leaving out those containing drop:
// dbus-daemon, run as root with a system bus config, warns at every start
// that it could not raise its fd limit, which buries the tests' output.
type dropLines struct {
	w    *os.File
	drop string
	buf  []byte
}

// Write buffers p and writes every complete line that is kept.
func (d *dropLines) Write(p []byte) (int, error) {
	d.buf = append(d.buf, p...)
	for {
		i := bytes.IndexByte(d.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := d.buf[:i+1]
		if !bytes.Contains(line, []byte(d.drop)) {
			d.w.Write(line)
		}
		d.buf = d.buf[i+1:]
	}
}
