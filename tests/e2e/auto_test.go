package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/dbus/rpmostree"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// writeConf writes a hostd.conf.
func writeConf(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHostdBadConfig: hostd refuses to start on a hostd.conf it cannot use,
// naming the file, the line and the key.
func TestHostdBadConfig(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "hostd.conf")
	writeConf(t, conf, "[Daemon]\nAutomaticUpdatePolicy=check\nIdleExitTimeout=soon\n")
	cmd := exec.Command(hostdBin, "--sysroot", t.TempDir(), "--config", conf)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), conf+":3: IdleExitTimeout:") {
		t.Fatalf("hostd on a bad config: %v\n%s", err, out)
	}
}

// TestAutomaticUpdates: ReloadConfig, AutomaticUpdateTrigger under none,
// check and stage (refused on the sysroot that is not booted), the
// properties and status lines, and the refusals for an unprivileged caller.
func TestAutomaticUpdates(t *testing.T) {
	e := newEnv(t)
	conf := filepath.Join(t.TempDir(), "hostd.conf")
	writeConf(t, conf, "[Daemon]\nAutomaticUpdatePolicy=none\n")
	e.hostd.Stop()
	e.startHostd("--config", conf, "--rpm-ostree-compat")

	if out := e.mustHostctl("status"); !strings.Contains(out, "AutomaticUpdates: disabled") {
		t.Fatalf("status under none:\n%s", out)
	}
	if out := e.mustHostctl("upgrade", "--trigger-automatic-update-policy"); !strings.Contains(out, "Automatic updates are disabled") {
		t.Fatalf("trigger under none:\n%s", out)
	}
	if st := e.status(); st.AutomaticUpdatePolicy != "none" || st.LastAutomaticCheck != nil {
		t.Fatalf("status --json under none: %+v", st)
	}

	// Unprivileged callers change nothing.
	for _, args := range [][]string{{"reload"}, {"upgrade", "--trigger-automatic-update-policy", "--check"}} {
		if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, args...); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrAccessDenied) {
			t.Fatalf("hostctl %v as uid 65534: exit %d, want AccessDenied\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
	}

	// A bad file: an error naming it, the settings in use stay.
	writeConf(t, conf, "[Daemon]\nAutomaticUpdatePolicy=weekly\n")
	if r := e.hostctl("reload"); r.Code != 1 || !strings.Contains(r.Stderr, conf+":2: AutomaticUpdatePolicy:") || !strings.Contains(r.Stderr, dbus.ErrInvalidArgument) {
		t.Fatalf("reload of a bad file: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if st := e.status(); st.AutomaticUpdatePolicy != "none" {
		t.Fatalf("a bad file changed the policy: %q", st.AutomaticUpdatePolicy)
	}
	writeConf(t, conf, "[Daemon]\nAutomaticUpdatePolicy=check\n")
	if out := e.mustHostctl("reload"); !strings.Contains(out, "AutomaticUpdatePolicy: check") {
		t.Fatalf("reload:\n%s", out)
	}

	// PropertiesChanged carries LastAutomaticCheck.
	conn, err := godbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// rpm-ostree's API follows the same settings.
	var policy godbus.Variant
	if err := conn.Object(rpmostree.BusName, rpmostree.SysrootPath).Call("org.freedesktop.DBus.Properties.Get", 0, rpmostree.SysrootInterface, "AutomaticUpdatePolicy").Store(&policy); err != nil || policy.Value() != "check" {
		t.Fatalf("rpm-ostree AutomaticUpdatePolicy after reload: %v %v", policy, err)
	}
	osPath := godbus.ObjectPath("/org/projectatomic/rpmostree1/" + strings.ReplaceAll(fixture.OSName, "-", "_"))
	var enabled bool
	var addr string
	if err := conn.Object(rpmostree.BusName, osPath).Call(rpmostree.OSInterface+".AutomaticUpdateTrigger", 0, map[string]godbus.Variant{"mode": godbus.MakeVariant("none")}).Store(&enabled, &addr); err != nil || enabled || addr != "" {
		t.Fatalf("rpm-ostree AutomaticUpdateTrigger mode none: %v %q %v", enabled, addr, err)
	}
	if err := conn.Object(rpmostree.BusName, osPath).Call(rpmostree.OSInterface+".AutomaticUpdateTrigger", 0, map[string]godbus.Variant{"mode": godbus.MakeVariant("daily")}).Store(&enabled, &addr); err == nil || !strings.Contains(err.Error(), "not a policy") {
		t.Fatalf("rpm-ostree AutomaticUpdateTrigger mode daily: %v", err)
	}
	if err := conn.AddMatchSignal(godbus.WithMatchObjectPath(dbus.HostPath), godbus.WithMatchInterface("org.freedesktop.DBus.Properties")); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *godbus.Signal, 64)
	conn.Signal(sigs)

	e.publish("2")
	before := e.status()
	out := e.mustHostctl("upgrade", "--trigger-automatic-update-policy")
	if !strings.Contains(out, "Automatic update: found 2") {
		t.Fatalf("trigger under check:\n%s", out)
	}
	st := e.status()
	if st.CachedUpdate == nil || st.CachedUpdate.Version != "2" || st.CachedUpdate.Checksum != e.os.Commit("2") {
		t.Fatalf("CachedUpdate after the automatic check: %+v", st.CachedUpdate)
	}
	if c := st.LastAutomaticCheck; c == nil || c.Mode != "check" || c.Result != "found 2" || c.Error != "" || c.Time == 0 {
		t.Fatalf("LastAutomaticCheck: %+v", st.LastAutomaticCheck)
	}
	if got := versions(st); !slices.Equal(got, versions(before)) || e.loaderTarget() == "" {
		t.Fatalf("a check deployed something: %v", got)
	}
	human := e.mustHostctl("status")
	if !strings.Contains(human, "AutomaticUpdates: check; last run 20") || !strings.Contains(human, ": found 2") || !strings.Contains(human, "AvailableUpdate: 2") {
		t.Fatalf("status after the check:\n%s", human)
	}
	seen := false
	deadline := time.After(time.Minute)
	for !seen {
		var sig *godbus.Signal
		select {
		case sig = <-sigs:
		case <-deadline:
			t.Fatal("no PropertiesChanged with LastAutomaticCheck \"found 2\" within a minute of the check")
		}
		if sig.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" || len(sig.Body) < 2 {
			continue
		}
		changed, _ := sig.Body[1].(map[string]godbus.Variant)
		if v, ok := changed["LastAutomaticCheck"]; ok {
			m, _ := v.Value().(map[string]godbus.Variant)
			seen = m["result"].Value() == "found 2"
		}
	}

	// stage on a sysroot that is not booted: refused plainly, the check recorded.
	r := e.hostctl("upgrade", "--trigger-automatic-update-policy", "--stage")
	if r.Code != 1 || !strings.Contains(r.Stderr, "staging needs a booted host") {
		t.Fatalf("automatic stage on an unbooted sysroot: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	st = e.status()
	if c := st.LastAutomaticCheck; c == nil || c.Mode != "stage" || !strings.Contains(c.Error, "staging needs a booted host") || c.Result != "found 2" {
		t.Fatalf("LastAutomaticCheck after the refused stage: %+v", st.LastAutomaticCheck)
	}
	if st.CachedUpdate == nil || st.CachedUpdate.Version != "2" || !slices.Equal(versions(st), []string{"1"}) {
		t.Fatalf("after the refused stage: %+v", st)
	}
	if out := e.mustHostctl("status"); !strings.Contains(out, "failed: ") {
		t.Fatalf("status after the refused stage:\n%s", out)
	}
	if r := e.hostctl("upgrade", "--trigger-automatic-update-policy", "--preview"); r.Code != 1 || !strings.Contains(r.Stderr, "takes only --check or --stage") {
		t.Fatalf("trigger with --preview: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	raw := e.mustHostctl("status", "--json")
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m["automatic-update-policy"] != "check" || m["last-automatic-check"] == nil {
		t.Fatalf("status --json keys: %v\n%s", err, raw)
	}
}

// TestAutomaticUnits: systemd-analyze verify accepts the shipped timer and
// service (the service's hostctl replaced by the one this test built,
// which is not installed here).
func TestAutomaticUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		harness.Skip(t, "systemd-analyze is not installed (apt-get install systemd)")
	}
	dir := t.TempDir()
	svc, err := os.ReadFile("../../packaging/hostctl-automatic.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svc), "ExecStart=/usr/bin/hostctl upgrade --trigger-automatic-update-policy") || !strings.Contains(string(svc), "Type=oneshot") {
		t.Fatalf("hostctl-automatic.service:\n%s", svc)
	}
	timer, err := os.ReadFile("../../packaging/hostctl-automatic.timer")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"OnBootSec=1h", "OnUnitInactiveSec=1d", "RandomizedDelaySec=", "Persistent=true"} {
		if !strings.Contains(string(timer), want) {
			t.Fatalf("hostctl-automatic.timer lacks %s", want)
		}
	}
	writeConf(t, filepath.Join(dir, "hostctl-automatic.service"), strings.ReplaceAll(string(svc), "/usr/bin/hostctl", hostctlBin))
	writeConf(t, filepath.Join(dir, "hostctl-automatic.timer"), string(timer))
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(dir, "hostctl-automatic.service"), filepath.Join(dir, "hostctl-automatic.timer")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestIdleExitActivation: with IdleExitTimeout=2 hostd exits (code 0) when
// idle, and D-Bus activation starts it again for the next hostctl call.
func TestIdleExitActivation(t *testing.T) {
	e := newEnv(t)
	e.hostd.Stop()
	e.hostd = nil
	work := t.TempDir()
	conf := filepath.Join(work, "hostd.conf")
	writeConf(t, conf, "[Daemon]\nIdleExitTimeout=2\n")
	act := e.activationBus(work)
	log := filepath.Join(work, "hostd.log")
	// The exit status goes to the log after hostd ends.
	script := fmt.Sprintf("DBUS_SYSTEM_BUS_ADDRESS=unix:path=%s %s --sysroot %s --service-manager direct --rpm-ostree-compat --config %s >>%s 2>&1 & echo $! >%s; wait $!; echo hostd-exit=$? >>%s",
		act.socket, hostdBin, e.sysroot, conf, log, act.pidFile, log)
	act.start(map[string]string{dbus.BusName: fmt.Sprintf("[D-BUS Service]\nName=%s\nExec=/bin/sh -c '%s'\nUser=root\n", dbus.BusName, script)})
	bus := e.bus

	logText := func() string { b, _ := os.ReadFile(log); return string(b) }
	conn, err := godbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	owned := func() bool {
		var has bool
		conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, dbus.BusName).Store(&has)
		return has
	}
	for round := 1; round <= 2; round++ {
		r := harness.Hostctl(e.ctx, hostctlBin, bus, 0, "status")
		if r.Code != 0 || !strings.Contains(r.Stdout, "Version: 1") {
			t.Fatalf("round %d: status through activation: exit %d\n%s%s\nlog:\n%s", round, r.Code, r.Stdout, r.Stderr, logText())
		}
		waitUntil(t, time.Minute, "hostd to exit when idle", func() bool {
			return !owned() && strings.Count(logText(), "hostd-exit=") == round
		})
		if got := strings.Count(logText(), "hostd-exit=0"); got != round || !strings.Contains(logText(), "exiting: idle") {
			t.Fatalf("round %d: hostd did not exit cleanly when idle:\n%s", round, logText())
		}
	}

	// An rpm-ostree client registered with RegisterClient keeps hostd
	// running (it may only be listening to signals); once it unregisters,
	// hostd exits when idle again.
	if r := harness.Hostctl(e.ctx, hostctlBin, bus, 0, "status"); r.Code != 0 {
		t.Fatalf("status through activation: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	sysroot := conn.Object(rpmostree.BusName, rpmostree.SysrootPath)
	if err := sysroot.Call(rpmostree.SysrootInterface+".RegisterClient", 0, map[string]godbus.Variant{}).Err; err != nil {
		t.Fatalf("RegisterClient: %v\nlog:\n%s", err, logText())
	}
	time.Sleep(3 * 2 * time.Second) // three idle timeouts
	if !owned() || strings.Count(logText(), "hostd-exit=") != 2 {
		t.Fatalf("hostd exited when idle with an rpm-ostree client registered:\n%s", logText())
	}
	if err := sysroot.Call(rpmostree.SysrootInterface+".UnregisterClient", 0, map[string]godbus.Variant{}).Err; err != nil {
		t.Fatalf("UnregisterClient: %v", err)
	}
	waitUntil(t, time.Minute, "hostd to exit when idle after UnregisterClient", func() bool {
		return !owned() && strings.Count(logText(), "hostd-exit=0") == 3
	})

	// A transaction that lasts longer than the idle timeout keeps hostd
	// running: the remote holds every request for three timeouts, then
	// answers, and the upgrade ends as it would have. Only then does hostd
	// exit when idle.
	e.publish("2")
	e.srv.SetStall(fixture.StallAll(fixture.StallNoAnswer))
	t.Cleanup(func() { e.srv.SetStall(nil) })
	done := make(chan harness.Result, 1)
	go func() { done <- harness.Hostctl(e.ctx, hostctlBin, bus, 0, "upgrade") }()
	waitUntil(t, time.Minute, "the upgrade to reach the stalled remote", func() bool {
		return strings.Contains(strings.Join(e.srv.Requests(), "\n"), "STALL")
	})
	time.Sleep(3 * 2 * time.Second) // three idle timeouts
	if !owned() || strings.Count(logText(), "hostd-exit=") != 3 {
		t.Fatalf("hostd exited while a transaction ran:\n%s", logText())
	}
	e.srv.SetStall(nil)
	var r harness.Result
	select {
	case r = <-done:
	case <-time.After(5 * time.Minute): // liveness bound
		t.Fatalf("the upgrade did not end after the remote answered:\n%s", logText())
	}
	if r.Code != 0 || !strings.Contains(r.Stdout+r.Stderr, "2") {
		t.Fatalf("upgrade across idle timeouts: exit %d\n%s%s\nlog:\n%s", r.Code, r.Stdout, r.Stderr, logText())
	}
	waitUntil(t, time.Minute, "hostd to exit when idle after the upgrade", func() bool {
		return !owned() && strings.Count(logText(), "hostd-exit=0") == 4
	})
	if st := harness.Hostctl(e.ctx, hostctlBin, bus, 0, "status"); st.Code != 0 || !strings.Contains(st.Stdout, "Version: 2") {
		t.Fatalf("status after the upgrade: exit %d\n%s%s", st.Code, st.Stdout, st.Stderr)
	}
}

// TestAutomaticStageBootedHost: on the booted test host, hostd.conf's
// AutomaticUpdatePolicy=stage and hostctl-automatic.service (as the timer
// starts it) stage the update; the next boot runs it.
func TestAutomaticStageBootedHost(t *testing.T) {
	e := newBootedEnv(t)
	e.publish("2")
	conf := "[Daemon]\nAutomaticUpdatePolicy=stage\n"
	if r := e.host.Run(e.ctx, 0, "sh", "-c", "mkdir -p /etc/hostctl && printf '"+strings.ReplaceAll(conf, "\n", `\n`)+"' >/etc/hostctl/hostd.conf"); r.Code != 0 {
		t.Fatalf("write hostd.conf in the machine: %+v", r)
	}
	if out := e.mustHostctl("reload"); !strings.Contains(out, "AutomaticUpdatePolicy: stage") {
		t.Fatalf("reload:\n%s", out)
	}
	if r := e.host.Run(e.ctx, 0, "systemctl", "start", "hostctl-automatic.service"); r.Code != 0 {
		t.Fatalf("systemctl start hostctl-automatic.service: %+v\n%s", r, e.host.Run(e.ctx, 0, "journalctl", "-u", "hostctl-automatic.service", "--no-pager").Stdout)
	}
	e.stagedDefault("2", false)
	st := e.status()
	if c := st.LastAutomaticCheck; c == nil || c.Mode != "stage" || c.Result != "staged 2" || c.Error != "" {
		t.Fatalf("LastAutomaticCheck: %+v", st.LastAutomaticCheck)
	}
	if out := e.mustHostctl("status"); !strings.Contains(out, "AutomaticUpdates: stage; last run ") || !strings.Contains(out, ": staged 2") {
		t.Fatalf("status:\n%s", out)
	}
	e.boot()
	e.expectBooted("2")

	// The shipped timer runs it: the same units, with a drop-in (in /run,
	// for this boot) that fires two seconds after the timer starts.
	e.publishCopy("3")
	dropIn := "mkdir -p /run/systemd/system/hostctl-automatic.timer.d && " +
		"printf '[Timer]\\nOnActiveSec=2s\\nRandomizedDelaySec=0\\n' >/run/systemd/system/hostctl-automatic.timer.d/soon.conf && " +
		"systemctl daemon-reload && systemctl restart hostctl-automatic.timer"
	if r := e.host.Run(e.ctx, 0, "sh", "-c", dropIn); r.Code != 0 {
		t.Fatalf("start the timer: %+v", r)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := e.status()
		if c := st.LastAutomaticCheck; c != nil && c.Result == "staged 3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timer did not run the automatic update: LastAutomaticCheck %+v\n%s", st.LastAutomaticCheck,
				e.host.Run(e.ctx, 0, "journalctl", "-u", "hostctl-automatic.timer", "-u", "hostctl-automatic.service", "--no-pager").Stdout)
		}
		time.Sleep(500 * time.Millisecond)
	}
	e.stagedDefault("3", false)
	if r := e.host.Run(e.ctx, 0, "systemctl", "show", "-p", "Result", "--value", "hostctl-automatic.service"); strings.TrimSpace(r.Stdout) != "success" {
		t.Fatalf("hostctl-automatic.service after the timer: %+v", r)
	}

	// Idle exit through the shipped units: hostd.service stops by itself,
	// and the next client's call starts it again by D-Bus activation
	// (org.hostctl.Host1.service names hostd.service).
	conf = "[Daemon]\nAutomaticUpdatePolicy=stage\nIdleExitTimeout=3\n"
	if r := e.host.Run(e.ctx, 0, "sh", "-c", "printf '"+strings.ReplaceAll(conf, "\n", `\n`)+"' >/etc/hostctl/hostd.conf"); r.Code != 0 {
		t.Fatalf("write hostd.conf in the machine: %+v", r)
	}
	e.mustHostctl("reload")
	active := func() string {
		return strings.TrimSpace(e.host.Run(e.ctx, 0, "systemctl", "is-active", "hostd.service").Stdout)
	}
	for deadline := time.Now().Add(time.Minute); active() != "inactive"; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("hostd.service is %s a minute after IdleExitTimeout=3\n%s", active(), e.host.Run(e.ctx, 0, "journalctl", "-u", "hostd.service", "--no-pager", "-n", "30").Stdout)
		}
	}
	if out := e.mustHostctl("status"); !strings.Contains(out, "Staged: yes") {
		t.Fatalf("status through D-Bus activation after the idle exit:\n%s", out)
	}
	if a := active(); a != "active" {
		t.Fatalf("after a call hostd.service is %s, want active (D-Bus activation)", a)
	}
}

// activation is a private bus that starts services by D-Bus activation,
// as the system bus does (without systemd: the test's service files Exec
// hostd themselves, writing its pid to pidFile).
type activation struct {
	e        *env
	dir      string // the test's files
	socket   string // the bus's socket
	pidFile  string
	services string
}

// activationBus prepares an activation bus for e in work.
func (e *env) activationBus(work string) *activation {
	t := e.t
	t.Helper()
	busDir, err := os.MkdirTemp("", "hostctl-bus-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(busDir) })
	a := &activation{e: e, dir: work, socket: filepath.Join(busDir, "system_bus_socket"),
		pidFile: filepath.Join(work, "hostd.pid"), services: filepath.Join(work, "services")}
	if err := os.MkdirAll(a.services, 0o755); err != nil {
		t.Fatal(err)
	}
	return a
}

// start writes the service files (bus name -> file text) and replaces e's
// bus by a bus that activates them, with the packaged policy.
func (a *activation) start(services map[string]string) {
	t := a.e.t
	t.Helper()
	for name, text := range services {
		writeConf(t, filepath.Join(a.services, name+".service"), text)
	}
	servicedir := filepath.Join(a.dir, "servicedir.conf")
	writeConf(t, servicedir, fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><servicedir>%s</servicedir></busconfig>
`, a.services))
	a.e.bus.Stop()
	bus, err := harness.StartBus(a.e.ctx, filepath.Dir(a.socket), "../../packaging/org.hostctl.Host1.conf", servicedir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Stop)
	a.e.bus = bus
	t.Cleanup(func() { // the activated hostd, if the test failed with it running
		if b, err := os.ReadFile(a.pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
}
