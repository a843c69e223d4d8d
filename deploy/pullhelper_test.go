package deploy

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/internal/testutil"
	"github.com/hostctl/hostctl/tests/fixture"
)

// TestMain makes the test binary its own pull helper, as hostd is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == PullHelperArg {
		os.Exit(RunPullHelper(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// helperSysroot is a sysroot whose remote "origin" is m's repo served by a
// fixture server (with its stall knob), pulling through the test binary.
func helperSysroot(t *testing.T, m *miniRemote) (*Sysroot, *fixture.Server) {
	t.Helper()
	ctx := context.Background()
	srv, err := fixture.NewServer(m.repo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	s, err := Init(ctx, testutil.TempSysrootDir(t), "mini")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddRemote(ctx, Remote{Name: "origin", URL: srv.URL()}, false, false); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s.SetPullHelper(exe)
	return s, srv
}

func TestPullHelper(t *testing.T) {
	ctx := context.Background()
	m := newMiniRemote(t, "1", "2")
	s, _ := helperSysroot(t, m)
	var calls int
	var last PullProgress
	csum, err := s.Pull(ctx, "origin:mini/stable", PullOptions{Progress: func(p PullProgress) { calls++; last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if csum != m.commits["2"] {
		t.Fatalf("pulled %s, want the tip %s", csum, m.commits["2"])
	}
	if got, err := s.Resolve("origin:mini/stable"); err != nil || got != csum {
		t.Fatalf("ref after the pull: %s %v", got, err)
	}
	if calls == 0 || last.Fetched == 0 {
		t.Fatalf("no progress from the helper (%d calls, last %+v)", calls, last)
	}
	if got, err := s.Pull(ctx, "origin:mini/stable", PullOptions{Commit: m.commits["1"], CommitOnly: true}); err != nil || got != m.commits["1"] {
		t.Fatalf("commit-only pull of v1: %s %v", got, err)
	}
	_, err = s.Pull(ctx, "origin:no/such/ref", PullOptions{})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("pull of a missing ref through the helper: %v, want ErrNotFound", err)
	}
	if _, err := s.Pull(ctx, "nosuchremote:mini/stable", PullOptions{}); err == nil {
		t.Fatal("pull from an unknown remote succeeded")
	}
}

// isFile tells an OSTree file object request (the bulk of a pull).
func isFile(path string) bool { return strings.HasSuffix(path, ".filez") }

func TestPullCancelStalledRemote(t *testing.T) {
	cases := []struct {
		name  string
		stall func(string) fixture.Stall
	}{
		{"no answer at all", fixture.StallAll(fixture.StallNoAnswer)},
		{"metadata, then file objects never answered", func(p string) fixture.Stall {
			if isFile(p) {
				return fixture.StallNoAnswer
			}
			return fixture.NoStall
		}},
		{"metadata, then file bodies stall half way", func(p string) fixture.Stall {
			if isFile(p) {
				return fixture.StallBody
			}
			return fixture.NoStall
		}},
	}
	m := newMiniRemote(t, "1")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, srv := helperSysroot(t, m)
			srv.SetStall(tc.stall)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := s.Pull(ctx, "origin:mini/stable", PullOptions{})
				done <- err
			}()
			time.Sleep(time.Second)
			// Reads answer while the pull waits on the network.
			readStart := time.Now()
			if _, err := s.Deployments(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Repo().Refs(context.Background(), ""); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(readStart); d > time.Second {
				t.Errorf("reads took %v while a pull ran", d)
			}
			select {
			case err := <-done:
				t.Fatalf("pull from a stalled remote returned before the cancel: %v", err)
			default:
			}
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled pull: %v, want context.Canceled", err)
				}
				t.Logf("pull returned %v after cancel: %v", time.Since(start).Round(time.Millisecond), err)
			case <-time.After(5 * time.Second):
				t.Fatal("pull still running 5 s after cancel")
			}
			if _, err := s.Resolve("origin:mini/stable"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a cancelled pull moved the ref: %v", err)
			}

			served := map[string]bool{}
			for _, r := range srv.Requests() {
				if f := strings.Fields(r); len(f) == 3 && f[2] == "200" && strings.Contains(f[1], "/objects/") {
					served[f[1]] = true
				}
			}
			srv.SetStall(nil)
			srv.ResetStats()
			csum, err := s.Pull(context.Background(), "origin:mini/stable", PullOptions{})
			if err != nil {
				t.Fatalf("pull after the cancel: %v", err)
			}
			if csum != m.commits["1"] {
				t.Fatalf("pulled %s, want %s", csum, m.commits["1"])
			}
			for _, r := range srv.Requests() {
				if f := strings.Fields(r); len(f) == 3 && served[f[1]] {
					t.Errorf("object %s fetched again after the cancelled pull had it", f[1])
				}
			}
			if tc.name != "no answer at all" && len(served) == 0 {
				t.Errorf("the cancelled pull fetched no object before the stall: the reuse check proves nothing")
			}
		})
	}
}

func TestPullStallTimeout(t *testing.T) {
	m := newMiniRemote(t, "1")
	s, srv := helperSysroot(t, m)
	s.SetPullStallTimeout(time.Second)
	srv.SetStall(fixture.StallAll(fixture.StallNoAnswer))
	start := time.Now()
	_, err := s.Pull(context.Background(), "origin:mini/stable", PullOptions{})
	if err == nil || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("pull from a remote that never answers: %v, want a stall error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stalled pull took %v to fail with a 1 s stall timeout", d)
	}
	t.Log(err)
}
