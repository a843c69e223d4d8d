package polkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// polkitd is Debian's polkit daemon (package polkitd).
const polkitd = "/usr/lib/polkit-1/polkitd"

// helperEnv makes the test binary a bus peer instead of running tests: it
// connects to the bus named by the variable, prints its unique name and
// stays connected until its stdin closes. The tests run it as another user.
const helperEnv = "HOSTCTL_POLKIT_TEST_PEER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(peer(addr))
	}
	os.Exit(m.Run())
}

func peer(addr string) int {
	conn, err := dial(context.Background(), addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(conn.Names()[0])
	io.Copy(io.Discard, os.Stdin)
	conn.Close()
	return 0
}

func dial(ctx context.Context, addr string) (*godbus.Conn, error) {
	conn, err := godbus.Dial(addr, godbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// busConfig is a bus like the system bus for this test: anyone connects,
// anyone owns and calls anything (polkitd decides, not the bus).
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_type="*"/>
  </policy>
</busconfig>
`

// testActions are actions only this test uses, beside the shipped policy:
// one any process may do, one that needs an administrator.
const testActions = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE policyconfig PUBLIC "-//freedesktop//DTD PolicyKit Policy Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/PolicyKit/1/policyconfig.dtd">
<policyconfig>
  <action id="org.hostctl.test.anyone">
    <description>test</description><message>test</message>
    <defaults><allow_any>yes</allow_any><allow_inactive>yes</allow_inactive><allow_active>yes</allow_active></defaults>
  </action>
  <action id="org.hostctl.test.admin">
    <description>test</description><message>test</message>
    <defaults><allow_any>auth_admin</allow_any><allow_inactive>auth_admin</allow_inactive><allow_active>auth_admin</allow_active></defaults>
  </action>
</policyconfig>
`

// publicDir is a directory every user (polkitd's own, the peer's) can read.
func publicDir(t *testing.T, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// startBus starts a private dbus-daemon and returns its address.
func startBus(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skipf("no dbus-daemon (apt-get install -y dbus-daemon): %v", err)
	}
	dir := publicDir(t, "hostctl-polkit-bus-")
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, sock)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The socket file exists from bind(2) on, before dbus-daemon listens.
	waitFor(t, 20*time.Second, "the bus socket", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "unix:path=" + sock
}

// startPolkitd runs Debian's polkitd on the bus at addr, in a mount
// namespace of its own where /usr/share/polkit-1/actions holds the shipped
// policy and testActions (polkitd reads actions from that fixed path only).
func startPolkitd(t *testing.T, addr string, conn *godbus.Conn) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("polkitd and a second bus user need root")
	}
	if _, err := os.Stat(polkitd); err != nil {
		t.Skipf("polkitd is not installed (apt-get install -y polkitd): %v", err)
	}
	actions := publicDir(t, "hostctl-polkit-actions-")
	policy, err := os.ReadFile("../../packaging/org.hostctl.host.policy")
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"org.hostctl.host.policy": string(policy), "org.hostctl.test.policy": testActions} {
		if err := os.WriteFile(filepath.Join(actions, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /usr/share/polkit-1/actions && exec "$2" --no-debug`, "sh", actions, polkitd)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+addr)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	waitFor(t, 20*time.Second, "polkitd to own "+BusName, func() bool {
		select {
		case <-done:
			t.Fatalf("polkitd exited:\n%s", log.String())
		default:
		}
		var has bool
		conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, BusName).Store(&has)
		return has
	})
}

// startPeer runs the test binary as a bus peer of uid and returns its
// unique name; the peer leaves the bus when the test ends.
func startPeer(t *testing.T, addr string, uid uint32) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a directory only root can enter.
	bin := filepath.Join(publicDir(t, "hostctl-polkit-peer-"), "peer")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), helperEnv+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the peer as uid %d printed no bus name: %v", uid, err)
	}
	return strings.TrimSpace(line)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCheckWithPolkitd asks Debian's real polkitd, with the shipped policy
// installed, about callers of uid 0 and of an unprivileged uid with no
// session (how a service or a cron job calls hostd).
func TestCheckWithPolkitd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dbus-daemon and polkitd")
	}
	ctx := t.Context()
	addr := startBus(t)
	conn, err := dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	startPolkitd(t, addr, conn)
	root := startPeer(t, addr, 0)
	nobody := startPeer(t, addr, 65534)
	a := New(conn)
	for _, tc := range []struct {
		name, sender, action string
		want                 Result
	}{
		{"root may upgrade", root, "org.hostctl.host.upgrade", Authorized},
		{"root may change packages", root, "org.hostctl.host.packages", Authorized},
		{"nobody may not upgrade", nobody, "org.hostctl.host.upgrade", NotAuthorized},
		{"nobody may not change packages", nobody, "org.hostctl.host.packages", NotAuthorized},
		{"nobody may not clean up", nobody, "org.hostctl.host.cleanup", NotAuthorized},
		{"nobody may do what anyone may", nobody, "org.hostctl.test.anyone", Authorized},
		{"nobody could after admin authentication", nobody, "org.hostctl.test.admin", Challenge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			got, err := a.Check(cctx, tc.sender, tc.action)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Check(%s, %s) = %v, want %v", tc.sender, tc.action, got, tc.want)
			}
		})
	}
	t.Run("unknown action", func(t *testing.T) {
		if _, err := a.Check(ctx, nobody, "org.hostctl.host.no-such-action"); err == nil || errors.Is(err, ErrUnavailable) {
			t.Fatalf("an unregistered action: got %v, want polkit's refusal of the action", err)
		}
	})
	t.Run("no sender", func(t *testing.T) {
		if _, err := a.Check(ctx, "", "org.hostctl.host.upgrade"); err == nil || errors.Is(err, ErrUnavailable) {
			t.Fatalf("no sender: got %v, want an error that is not ErrUnavailable", err)
		}
	})
}

// TestCheckWithoutPolkit is a bus where nobody provides polkit: the error
// is ErrUnavailable, so hostd can fall back to its uid 0 rule.
func TestCheckWithoutPolkit(t *testing.T) {
	ctx := t.Context()
	addr := startBus(t)
	conn, err := dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := New(conn).Check(ctx, conn.Names()[0], "org.hostctl.host.upgrade")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Check without polkitd: %v, %v; want ErrUnavailable", got, err)
	}
	if got != NotAuthorized {
		t.Fatalf("Check without polkitd = %v, want not authorized", got)
	}
}

func TestResultString(t *testing.T) {
	for r, want := range map[Result]string{Authorized: "authorized", Challenge: "challenge", NotAuthorized: "not authorized"} {
		if r.String() != want {
			t.Errorf("%d.String() = %q, want %q", r, r.String(), want)
		}
	}
}
