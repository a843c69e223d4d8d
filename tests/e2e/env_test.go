package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/internal/testutil"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// Paths of the binaries TestMain builds.
var hostdBin, hostctlBin string

const buildTags = "containers_image_openpgp containers_image_storage_stub containers_image_docker_daemon_stub"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hostctl-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // hostctl also runs as an unprivileged user
	hostdBin, hostctlBin = filepath.Join(dir, "hostd"), filepath.Join(dir, "hostctl")
	// hostd-etcd beside hostd, where hostd looks for its etcd fleet lock helper.
	for bin, pkg := range map[string]string{hostdBin: "../../cmd/hostd", hostctlBin: "../../cmd/hostctl",
		filepath.Join(dir, "hostd-etcd"): "../../cmd/hostd-etcd"} {
		out, err := exec.Command("go", "build", "-tags", buildTags, "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a sandbox host: the HostOS remote served on loopback (a copy whose
// stable ref the test moves to "publish" versions), a sysroot with version 1
// deployed, a private bus and hostd on it.
type env struct {
	t       *testing.T
	ctx     context.Context
	os      *fixture.OS
	repo    string
	srv     *fixture.Server
	sysroot string
	bus     *harness.Bus
	hostd   *harness.Hostd
}

const remote = "hostos"

var refspec = remote + ":" + fixture.StableRef

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	o, err := fixture.BuildOS(ctx)
	if err != nil {
		t.Fatalf("build the test OS: %v", err)
	}
	e := &env{t: t, ctx: ctx, os: o}
	work := t.TempDir()
	e.repo = filepath.Join(work, "remote")
	if err := o.CopyRepo(e.repo); err != nil {
		t.Fatal(err)
	}
	e.publish("1")
	e.srv, err = fixture.NewServer(e.repo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.srv.Stop() })
	e.sysroot = testutil.TempSysrootDir(t)
	if err := harness.NewSysroot(ctx, e.sysroot, fixture.OSName, e.srv.URL(), refspec, o.Commit("1")); err != nil {
		t.Fatalf("make sysroot: %v", err)
	}
	// The bus socket must be reachable by the unprivileged users the tests run hostctl as.
	busDir, err := os.MkdirTemp("", "hostctl-bus-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(busDir) })
	e.bus, err = harness.StartBus(ctx, busDir, "../../packaging/org.hostctl.Host1.conf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.bus.Stop)
	e.startHostd()
	t.Cleanup(func() {
		if e.hostd != nil {
			e.hostd.Stop()
		}
	})
	return e
}

func (e *env) startHostd(flags ...string) {
	e.t.Helper()
	// PID 1 is not systemd here: system containers run under hostd's own supervision.
	h, err := harness.StartHostd(e.ctx, hostdBin, e.sysroot, e.bus, append([]string{"--service-manager", "direct"}, flags...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.hostd = h
}

// publish moves the remote's stable ref to version, as a release would.
func (e *env) publish(version string) {
	e.t.Helper()
	c := e.os.Commit(version)
	if c == "" {
		e.t.Fatalf("no version %s in the fixture", version)
	}
	if err := fixture.SetRef(e.ctx, e.repo, fixture.StableRef, c); err != nil {
		e.t.Fatal(err)
	}
}

// hostctl runs hostctl as root.
func (e *env) hostctl(args ...string) harness.Result {
	return harness.Hostctl(e.ctx, hostctlBin, e.bus, 0, args...)
}

// mustHostctl runs hostctl as root and fails the test unless it exits 0.
func (e *env) mustHostctl(args ...string) string {
	e.t.Helper()
	r := e.hostctl(args...)
	if r.Code != 0 {
		e.t.Fatalf("hostctl %s: exit %d\nstdout:\n%s\nstderr:\n%s\nhostd log:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr, e.hostd.Log)
	}
	return r.Stdout
}

// status is `hostctl status --json`.
func (e *env) status() dbus.Status {
	e.t.Helper()
	var st dbus.Status
	out := e.mustHostctl("status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// versions lists the deployments' versions, default first.
func versions(st dbus.Status) []string {
	var v []string
	for _, d := range st.Deployments {
		v = append(v, d.Version)
	}
	return v
}

// loaderTarget is where /boot/loader points.
func (e *env) loaderTarget() string {
	target, err := os.Readlink(filepath.Join(e.sysroot, "boot", "loader"))
	if err != nil {
		e.t.Fatalf("read /boot/loader: %v", err)
	}
	return target
}

// waitIdle waits (a minute at most) until hostd runs no transaction and no
// cleanup after one: hostctl returns at Finished, and the removal of the
// replaced deployment and the repository prune run after it. Call it
// before reading the repository or the deployment directories.
func (e *env) waitIdle() {
	e.t.Helper()
	if e.hostd == nil {
		return // stopped: nothing runs
	}
	ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
	defer cancel()
	if err := harness.WaitIdle(ctx, e.bus); err != nil {
		e.t.Fatalf("%v\nhostd log:\n%s", err, e.hostd.Log)
	}
}

// ostreeStatus lists the checksums `ostree admin status` shows, in order,
// once hostd is idle.
func (e *env) ostreeStatus() []string {
	e.t.Helper()
	e.waitIdle()
	out, err := exec.Command("ostree", "admin", "status", "--sysroot="+e.sysroot).CombinedOutput()
	if err != nil {
		e.t.Fatalf("ostree admin status: %v\n%s", err, out)
	}
	var sums []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(strings.TrimLeft(line, "* "))
		if len(f) >= 2 && strings.HasPrefix(line, "  ") || len(f) >= 2 && strings.HasPrefix(line, "* ") {
			if id := f[1]; len(id) > 64 {
				sums = append(sums, id[:64])
			}
		}
	}
	return sums
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// harness65534Cancel runs `hostctl cancel` as the unprivileged user nobody.
func harness65534Cancel(e *env) harness.Result {
	return harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "cancel")
}
