package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// sdEnv is a ctrEnv whose containers run under a real systemd: a Debian 12
// root booted by systemd-nspawn (the "machine"), and hostd on the host
// driving the machine's systemd over the machine's system bus (see Machine.BusAddress).
//
// On a real host hostd and systemd share one root: hostd writes
// /etc/systemd/system/NAME.service and the slots under
// /var/lib/containers/hostctl, and the unit's paths (WorkingDirectory=, the
// runc bundle, RUNTIME) are the paths systemd sees. Here hostd manages a
// sysroot that is not booted, so it writes the unit into the current
// deployment's /etc and renders the slot paths as the host sees them. The
// machine is given the same view by bind mounts:
//
//   - the deployment's etc/systemd/system and etc/tmpfiles.d are the
//     machine's /etc/systemd/system and /etc/tmpfiles.d: on an OSTree host
//     the deployment's /etc is the host's /etc, and these are the parts of it
//     systemd reads (enabling writes its .wants links there too);
//   - the sysroot is bound at its own path, so DESTDIR (the slot) resolves
//     inside the machine as it does for hostd; the stateroot's
//     var/lib/containers/hostctl is also the machine's
//     /var/lib/containers/hostctl, where a booted host has it;
//   - the host's runc (the runtime hostd probed and names in ExecStart=) is
//     bound read-only at its own path.
//
// The machine's own root, its /run (runc state, PIDFILE) and its network
// (--private-network: the services answer on the machine's loopback,
// reached with nsenter --net) are its own.
type sdEnv struct {
	*ctrEnv
	m       *fixture.Machine
	root    string // the debootstrapped root
	binds   []fixture.Bind
	unitDir string // the deployment's etc/systemd/system
}

func newSdEnv(t *testing.T) *sdEnv {
	t.Helper()
	for _, bin := range []string{"systemd-nspawn", "nsenter", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: %v (apt-get install -y systemd-container util-linux curl)", bin, err)
		}
	}
	start := time.Now()
	root, err := fixture.SystemdRoot(t.Context())
	var de *fixture.DebootstrapError
	if errors.As(err, &de) {
		t.Skipf("no systemd root to boot: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd root %s ready in %v", root, time.Since(start).Round(time.Millisecond))

	// hostd runs outside this machine on a sysroot that is not booted and
	// writes the units into the default deployment's /etc, which this test
	// binds into the machine at boot; since every container change makes a
	// new generation (a new deployment with its own /etc), the machine no
	// longer sees the units of the next change. The same behaviour is
	// proven with hostd inside systemd on the booted test host.
	t.Skip("superseded: container changes make new deployments, whose /etc this machine cannot follow; see the booted test host")
	c := newCtrEnv(t)
	c.hostd.Stop() // newEnv starts it in direct mode
	s := &sdEnv{ctrEnv: c, root: root, unitDir: filepath.Join(c.depDir(), "etc", "systemd", "system")}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	runc, _ = filepath.EvalSymlinks(runc)
	tmpfilesDir := filepath.Join(c.depDir(), "etc", "tmpfiles.d")
	for _, d := range []string{s.unitDir, tmpfilesDir, c.ctrDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.binds = []fixture.Bind{
		{Host: s.unitDir, Guest: "/etc/systemd/system"},
		{Host: tmpfilesDir, Guest: "/etc/tmpfiles.d"},
		{Host: c.sysroot},
		{Host: c.ctrDir, Guest: "/var/lib/containers/hostctl"},
		{Host: runc, ReadOnly: true},
	}
	s.boot()
	t.Cleanup(func() {
		if s.m == nil {
			return
		}
		if err := s.m.Poweroff(30 * time.Second); err != nil {
			t.Errorf("%v\n%s", err, s.m.Log())
		}
	})
	s.startSystemdHostd()
	return s
}

// boot boots the machine (again).
func (s *sdEnv) boot() {
	s.t.Helper()
	start := time.Now()
	m, err := fixture.BootMachine(s.ctx, s.root, s.binds...)
	if err != nil {
		s.t.Fatalf("boot systemd in %s: %v", s.root, err)
	}
	s.m = m
	s.t.Logf("machine booted in %v (leader PID %d)", time.Since(start).Round(time.Millisecond), m.Leader)
}

func (s *sdEnv) startSystemdHostd() {
	s.t.Helper()
	h, err := harness.StartHostd(s.ctx, hostdBin, s.sysroot, s.bus,
		"--service-manager", "systemd", "--systemd-address", s.m.BusAddress())
	if err != nil {
		s.t.Fatal(err)
	}
	s.hostd = h
}

// unitState is what the machine's systemd says of a unit, over D-Bus.
type unitState struct {
	Load, Active, Sub, UnitFileState, Fragment, Type string
	MainPID, NRestarts                               uint32
}

func (s *sdEnv) unit(name string) unitState {
	s.t.Helper()
	conn, err := s.m.Systemd(s.ctx)
	if err != nil {
		s.t.Fatalf("connect to the machine's systemd: %v", err)
	}
	defer conn.Close()
	props, err := conn.GetUnitPropertiesContext(s.ctx, name+".service")
	if err != nil {
		s.t.Fatalf("properties of %s.service: %v", name, err)
	}
	str := func(m map[string]any, k string) string { v, _ := m[k].(string); return v }
	u := unitState{Load: str(props, "LoadState"), Active: str(props, "ActiveState"), Sub: str(props, "SubState"),
		UnitFileState: str(props, "UnitFileState"), Fragment: str(props, "FragmentPath")}
	if u.Load == "loaded" {
		svc, err := conn.GetUnitTypePropertiesContext(s.ctx, name+".service", "Service")
		if err != nil {
			s.t.Fatalf("service properties of %s.service: %v", name, err)
		}
		u.Type = str(svc, "Type")
		u.MainPID, _ = svc["MainPID"].(uint32)
		u.NRestarts, _ = svc["NRestarts"].(uint32)
	}
	return u
}

// answer fetches http://127.0.0.1:port/ inside the machine's network
// namespace ("" if nothing answers).
func (s *sdEnv) answer(port int) string {
	out, err := s.m.Command(s.ctx, []string{"--net"}, "curl", "-s", "--max-time", "2",
		fmt.Sprintf("http://127.0.0.1:%d/", port)).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func (s *sdEnv) waitAnswer(port int, want string) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	got := ""
	for time.Now().Before(deadline) {
		if got = s.answer(port); strings.Contains(got, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("port %d in the machine answers %q, want %q\n%s", port, got, want, s.diag())
}

// inMachine runs a command in the machine's mount and PID namespaces.
func (s *sdEnv) inMachine(args ...string) string {
	s.t.Helper()
	out, err := s.m.Command(s.ctx, []string{"--mount", "--pid"}, args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("%v in the machine: %v\n%s", args, err, out)
	}
	return string(out)
}

// diag is the machine's journal and hostd's log, for failure messages.
func (s *sdEnv) diag() string {
	return "machine journal:\n" + s.m.Journal(s.ctx, "") + "\nhostd log:\n" + s.hostd.Log.String()
}

// running checks that systemd runs name as a live forking service whose
// main process is the container's httpd, and returns its main PID (in the
// machine's PID namespace).
func (s *sdEnv) running(name string) uint32 {
	s.t.Helper()
	u := s.unit(name)
	if u.Load != "loaded" || u.Active != "active" || u.Sub != "running" || u.Type != "forking" || u.MainPID == 0 {
		s.t.Fatalf("%s.service: %+v\n%s", name, u, s.diag())
	}
	if u.Fragment != "/etc/systemd/system/"+name+".service" || u.UnitFileState != "enabled" {
		s.t.Fatalf("%s.service: fragment %q, unit file state %q", name, u.Fragment, u.UnitFileState)
	}
	cmdline := s.inMachine("cat", fmt.Sprintf("/proc/%d/cmdline", u.MainPID))
	if !strings.Contains(cmdline, "httpd") {
		s.t.Fatalf("%s.service's main PID %d is %q, not the container's httpd", name, u.MainPID, cmdline)
	}
	if l := s.list()[name]; l.State != "running" {
		s.t.Fatalf("container list: %+v, want running", l)
	}
	return u.MainPID
}

// TestSystemdContainers runs the container lifecycle under a real systemd:
// hostd writes the unit, enables and starts it over systemd's D-Bus API,
// reads its state back, and the service really answers.
func TestSystemdContainers(t *testing.T) {
	s := newSdEnv(t)
	dir := s.layout("1", fixture.HelloExports(fixture.HelloConfigTemplate(true)))
	image, err := s.reg.Push(s.ctx, dir, "1", "hello")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t) // any port: the machine has a network namespace of its own

	// Install: the default unit (no service.template) runs runc detached
	// under Type=forking, and systemd keeps it running.
	start := time.Now()
	s.mustHostctl("container", "install", "--name", "web1", "--set", fmt.Sprintf("PORT=%d", port), image)
	t.Logf("install under systemd: %v", time.Since(start).Round(time.Millisecond))
	s.waitAnswer(port, "hello from web1")
	unit, err := os.ReadFile(filepath.Join(s.unitDir, "web1.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=forking", " run -d --pid-file /run/container-web1.pid 'web1'", "PIDFile=/run/container-web1.pid", "ExecStopPost="} {
		if !strings.Contains(string(unit), want) {
			t.Fatalf("unit has no %q:\n%s", want, unit)
		}
	}
	if _, err := os.Lstat(filepath.Join(s.unitDir, "multi-user.target.wants", "web1.service")); err != nil {
		t.Fatalf("web1 is not enabled: %v", err)
	}
	pid := s.running("web1")
	time.Sleep(5 * time.Second) // well past hostd's check after the start
	if again := s.running("web1"); again != pid {
		t.Fatalf("web1's main PID changed from %d to %d: it was restarted", pid, again)
	}
	if u := s.unit("web1"); u.NRestarts != 0 {
		t.Fatalf("web1 restarted %d times", u.NRestarts)
	}
	s.waitAnswer(port, "hello from web1")

	// Update and rollback restart it through systemd with the other slot.
	start = time.Now()
	s.mustHostctl("container", "update", "--set", "GREETING=bonjour", "web1")
	t.Logf("update under systemd: %v", time.Since(start).Round(time.Millisecond))
	s.waitAnswer(port, "bonjour from web1")
	if p := s.running("web1"); p == pid {
		t.Fatalf("web1 has the same main PID %d after update", p)
	}
	if got := s.slotTarget("web1"); got != "web1.1" {
		t.Fatalf("after update web1 -> %q", got)
	}
	s.mustHostctl("container", "rollback", "web1")
	s.waitAnswer(port, "hello from web1")
	s.running("web1")
	if got := s.slotTarget("web1"); got != "web1.0" {
		t.Fatalf("after rollback web1 -> %q", got)
	}

	// Reboot the machine: systemd starts the enabled unit at boot by itself,
	// and a new hostd (it restarts with the host) finds it running.
	pid = s.running("web1")
	s.hostd.Stop()
	start = time.Now()
	if err := s.m.Poweroff(60 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, s.m.Log())
	}
	t.Logf("machine powered off in %v (web1 stopped with it)", time.Since(start).Round(time.Millisecond))
	s.boot()
	s.startSystemdHostd()
	s.waitAnswer(port, "hello from web1")
	s.running("web1")

	// An update whose service dies at once is rolled back by hostd.
	r := s.hostctl("container", "update", "--set", "PORT=notaport", "web1")
	if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "rolled back") {
		t.Fatalf("failing update: exit %d\n%s%s\n%s", r.Code, r.Stdout, r.Stderr, s.diag())
	}
	s.waitAnswer(port, "hello from web1")
	s.running("web1")

	// A container with a bind mount whose source does not exist: the
	// tmpfiles.d line hostd generates for it must be applied (by systemd,
	// before the start) or runc cannot start it.
	dir2 := s.layout("state", fixture.HelloExports(stateConfigTemplate(t)))
	port2 := freePort(t)
	s.mustHostctl("container", "install", "--name", "web2", "--set", fmt.Sprintf("PORT=%d", port2), "oci:"+dir2+":state")
	s.waitAnswer(port2, "hello from web2")
	s.running("web2")
	if b, err := os.ReadFile(filepath.Join(s.depDir(), "etc", "tmpfiles.d", "web2.conf")); err != nil || !strings.Contains(string(b), "/var/lib/web2") {
		t.Fatalf("tmpfiles.d of web2: %v %q", err, b)
	}
	if got := s.inMachine("cat", "/var/lib/web2/greeting"); got != "hello from web2\n" {
		t.Fatalf("/var/lib/web2/greeting in the machine: %q", got)
	}
	s.mustHostctl("container", "uninstall", "web2")
	s.assertGone("web2")

	// Uninstall: systemd no longer knows the unit, nothing runs or answers.
	s.mustHostctl("container", "uninstall", "web1")
	s.assertGone("web1")
	if u := s.unit("web1"); u.Load != "not-found" || u.Active != "inactive" {
		t.Fatalf("after uninstall web1.service is %+v, want not-found and inactive", u)
	}
	if a := s.answer(port); a != "" {
		t.Fatalf("port %d still answers %q after uninstall", port, a)
	}
	if out := s.inMachine("runc", "list", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("runc still has containers after uninstall: %q", out)
	}
	if _, err := os.Lstat(filepath.Join(s.unitDir, "multi-user.target.wants", "web1.service")); err == nil {
		t.Fatalf("the enablement link of web1 is left behind")
	}
	if l := s.list(); len(l) != 0 {
		t.Fatalf("list after uninstall: %+v", l)
	}
	t.Logf("journal of web1.service:\n%s", s.m.Journal(s.ctx, "web1.service"))
}

// mustHostctl runs hostctl as root and fails the test, with the machine's
// journal, unless it exits 0.
func (s *sdEnv) mustHostctl(args ...string) string {
	s.t.Helper()
	r := s.hostctl(args...)
	if r.Code != 0 {
		s.t.Fatalf("hostctl %s: exit %d\nstdout:\n%s\nstderr:\n%s\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr, s.diag())
	}
	return r.Stdout
}

// stateConfigTemplate is the hello image's config with $STATE_DIRECTORY/$NAME
// bind-mounted on /data, where the process also writes its greeting.
func stateConfigTemplate(t *testing.T) string {
	var spec map[string]any
	if err := json.Unmarshal([]byte(fixture.HelloConfigTemplate(true)), &spec); err != nil {
		t.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	args := proc["args"].([]any)
	args[3] = "echo \"$GREETING from $NAME\" > /data/greeting && " + args[3].(string)
	spec["mounts"] = append(spec["mounts"].([]any), map[string]any{
		"destination": "/data", "type": "bind", "source": "$STATE_DIRECTORY/$NAME", "options": []string{"rbind", "rw"}})
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
