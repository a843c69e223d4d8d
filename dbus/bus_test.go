package dbus

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/errdefs"
)

// privateBus starts a dbus-daemon of its own for the test and returns its
// address; the test is skipped, saying why, when dbus-daemon is missing.
func privateBus(tb testing.TB) string {
	tb.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		tb.Skip("dbus-daemon is not installed (apt-get install dbus-daemon): the server tests need a real bus")
	}
	dir := tb.TempDir()
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`, sock)), 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start dbus-daemon: %v", err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The socket file exists from bind(2) on, before dbus-daemon listens:
	// wait until a connection is accepted.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return "unix:path=" + sock
		}
	}
	tb.Fatal("dbus-daemon did not listen on its socket in 20 s")
	return ""
}

func dial(tb testing.TB, addr string) *godbus.Conn {
	tb.Helper()
	conn, err := godbus.Connect(addr)
	if err != nil {
		tb.Fatalf("connect to the test bus: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// recEngine is a small Engine that records what the server asks of it. It
// checks options as the daemon does, against specs, and refuses callers
// other than root.
type recEngine struct {
	specs map[string]OptionSpec

	mu     sync.Mutex
	begins []Request
	txns   []*recTxn
}

func (e *recEngine) Status() Status { return Status{Sysroot: "/", Deployments: []Deployment{}} }

func (e *recEngine) History(limit int) ([]Record, error) { return []Record{}, nil }

func (e *recEngine) Begin(req Request) (Transaction, error) {
	e.mu.Lock()
	e.begins = append(e.begins, req)
	e.mu.Unlock()
	if req.Caller != 0 {
		return nil, errdefs.Errorf(errdefs.ErrUnauthorized, "%s needs root", req.Kind)
	}
	if err := req.Options.Check(e.specs[req.Kind]); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := &recTxn{id: fmt.Sprintf("t%d", len(e.txns)), kind: req.Kind, cancelled: make(chan uint32, 1)}
	e.txns = append(e.txns, t)
	return t, nil
}

func (e *recEngine) Cancel(caller uint32) error {
	return errdefs.Errorf(errdefs.ErrNoTransaction, "no transaction is running")
}

func (e *recEngine) Watch(fn func()) {}

func (e *recEngine) Images() ([]map[string]any, error) { return nil, nil }

func (e *recEngine) Containers() ([]map[string]any, error) { return nil, nil }

func (e *recEngine) Diff(from, to string) (PackageDiff, error) { return recDiff(from, to) }

func (e *recEngine) ContainerExec(caller uint32, name string, args []string, stdin, stdout, stderr *os.File) (int32, error) {
	return -1, errdefs.Errorf(errdefs.ErrNotFound, "no container %q", name)
}

func (e *recEngine) requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.begins...)
}

func (e *recEngine) last() *recTxn {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.txns) == 0 {
		return nil
	}
	return e.txns[len(e.txns)-1]
}

// recTxn runs until it is cancelled.
type recTxn struct {
	id, kind  string
	cancelled chan uint32

	mu       sync.Mutex
	subs     []func(Event)
	started  bool
	finished bool
}

func (t *recTxn) ID() string   { return t.id }
func (t *recTxn) Kind() string { return t.kind }
func (t *recTxn) State() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.finished:
		return "cancelled"
	case t.started:
		return "running"
	}
	return "pending"
}

func (t *recTxn) Start(caller uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "already started")
	}
	t.started = true
	return nil
}

func (t *recTxn) Cancel(caller uint32) error {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return nil
	}
	t.finished = true
	subs := append([]func(Event){}, t.subs...)
	t.mu.Unlock()
	t.cancelled <- caller
	for _, fn := range subs {
		fn(Event{Finished: &Result{Err: errdefs.Errorf(errdefs.ErrCancelled, "transaction %s cancelled", t.id)}})
	}
	return nil
}

func (t *recTxn) Subscribe(fn func(Event)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs = append(t.subs, fn)
}

// testSpecs are options as the daemon's operations table gives them.
var testSpecs = map[string]OptionSpec{
	"upgrade":           {"check": "b", "preview": "b", "download-only": "b", "allow-downgrade": "b"},
	"cleanup":           {"pending": "b", "rollback": "b", "repomd": "b"},
	"pkg-change":        {"add": "as", "remove": "as", "dry-run": "b", "idempotent": "b"},
	"container-install": {"name": "s", "set": "as"},
	"container-update":  {"set": "as", "rebase": "s", "pull": "b"},
	"reset":             {"overlays": "b", "overrides": "b", "kargs": "b"},
}

// serve runs a Server with a recording engine on a private bus and returns
// it with the bus address.
func serve(tb testing.TB) (*Server, *recEngine, string) {
	tb.Helper()
	addr := privateBus(tb)
	eng := &recEngine{specs: testSpecs}
	s, err := Serve(dial(tb, addr), eng)
	if err != nil {
		tb.Fatal(err)
	}
	return s, eng, addr
}

// busErrorName is the D-Bus name of a call's error ("" for none).
func busErrorName(err error) string {
	var de godbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	var dp *godbus.Error
	if errors.As(err, &dp) {
		return dp.Name
	}
	if err != nil {
		return "not a D-Bus error: " + err.Error()
	}
	return ""
}

// dupFD duplicates a descriptor (close-on-exec).
func dupFD(fd godbus.UnixFD) (godbus.UnixFD, error) {
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	return godbus.UnixFD(d), err
}
