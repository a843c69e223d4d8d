package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
)

// TestClientGoneCancels: a hostctl killed with SIGKILL during a throttled
// upgrade leaves no busy hostd behind (its transaction is recorded
// cancelled and hostd is idle within 15 s); Ctrl-C makes hostctl cancel,
// print "Cancelled." and exit 130; with --detach the upgrade outlives its
// killed client and completes, which also shows the next upgrade after the
// cancels succeeds.
func TestClientGoneCancels(t *testing.T) {
	e := newEnv(t)
	e.publish("2")

	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGKILL", syscall.SIGKILL}, {"SIGINT", syscall.SIGINT}} {
		t.Run(tc.name, func(t *testing.T) {
			e.srv.SetRate(10 << 10)
			cmd, out := e.spawnHostctl("upgrade")
			e.waitRunning(t)
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			// libostree 2022.7 ends a cancelled pull once the requests in
			// flight end: lift the throttle so they do (TestCancel does the same).
			e.srv.SetRate(0)
			err := cmd.Wait()
			gone := time.Now()
			waitUntil(t, 15*time.Second, "hostd idle after its client left", func() bool { return e.status().Transaction == nil })
			t.Logf("hostd idle %v after hostctl exited", time.Since(gone).Round(time.Millisecond))
			if tc.sig == syscall.SIGINT {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(out.String(), "Cancelled.") {
					t.Fatalf("hostctl upgrade after SIGINT: %v, want exit 130 and \"Cancelled.\"\n%s", err, out.String())
				}
			}
			hist, herr := e.history()
			if herr != nil || len(hist) == 0 || hist[0].Kind != "upgrade" || hist[0].State != "cancelled" {
				t.Fatalf("history after the client left: %+v %v\nhostd log:\n%s", hist, herr, e.hostd.Log)
			}
			if got := versions(e.status()); !slices.Equal(got, []string{"1"}) {
				t.Fatalf("a cancelled upgrade changed the deployments: %v", got)
			}
		})
	}

	t.Run("detach", func(t *testing.T) {
		e.srv.SetRate(10 << 10)
		cmd, _ := e.spawnHostctl("upgrade", "--detach")
		e.waitRunning(t)
		cmd.Process.Kill()
		cmd.Wait()
		// It may finish at any time from now on (the cancelled pulls
		// before left most objects behind): what tells is how it ends,
		// succeeded and not cancelled like the attached ones above.
		e.srv.SetRate(0)
		waitUntil(t, 60*time.Second, "the detached upgrade to finish", func() bool { return e.status().Transaction == nil })
		hist, err := e.history()
		if err != nil || hist[0].Kind != "upgrade" || hist[0].State != "succeeded" {
			t.Fatalf("history after the detached upgrade: %+v %v\nhostd log:\n%s", hist, err, e.hostd.Log)
		}
		if got := versions(e.status()); !slices.Equal(got, []string{"2", "1"}) {
			t.Fatalf("after the detached upgrade: %v", got)
		}
	})
}

// spawnHostctl starts hostctl as root without waiting for it.
func (e *env) spawnHostctl(args ...string) (*exec.Cmd, *strings.Builder) {
	e.t.Helper()
	cmd := exec.CommandContext(context.Background(), hostctlBin, args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.bus.Address)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	return cmd, out
}

// waitRunning waits until the active transaction has been started and has
// been running for a moment.
func (e *env) waitRunning(t *testing.T) {
	t.Helper()
	conn, err := godbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitUntil(t, 20*time.Second, "the transaction to run", func() bool {
		st := e.status()
		if st.Transaction == nil {
			return false
		}
		v, err := conn.Object(dbus.BusName, st.Transaction.Path).GetProperty(dbus.TransactionInterface + ".State")
		return err == nil && v.Value() == "running"
	})
	time.Sleep(300 * time.Millisecond)
}
