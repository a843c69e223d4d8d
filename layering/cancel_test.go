package layering

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/layering/internal/testrpm"
)

// processesWith lists the pids whose command line contains s.
func processesWith(t *testing.T, s string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// TestCancelledScript cancels a %post that hangs (one that dies on TERM,
// one that ignores it): runScripts returns within the kill grace period
// with an error that reads as cancelled, the script's processes are gone
// and the rofiles-fuse mount is unmounted.
func TestCancelledScript(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox (rofiles-fuse, bwrap) needs root")
	}
	testrpm.Require(t, "bwrap", "rofiles-fuse")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed")
	}
	cases := []struct{ name, body string }{
		{"dies on TERM", "echo x > /usr/share/started; exec busybox sleep 601"},
		{"ignores TERM", "trap '' TERM; echo x > /usr/share/started; busybox sleep 602; echo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tree, scratch := scriptTree(t), t.TempDir()
			marker := tc.body[strings.Index(tc.body, "sleep"):][:9]
			jobs := []ScriptJob{{Package: "hang", Script: Script{Type: "%post", Body: tc.body}, Arg: "1"}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- runScripts(ctx, scratch, tree, jobs) }()
			deadline := time.Now().Add(10 * time.Second)
			for !exists(filepath.Join(tree, "usr/share/started")) {
				if time.Now().After(deadline) {
					t.Fatal("the script never started")
				}
				select {
				case err := <-done:
					t.Fatalf("the script ended on its own: %v", err)
				case <-time.After(20 * time.Millisecond):
				}
			}
			start := time.Now()
			cancel()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("runScripts still running 5 s after cancel")
			}
			t.Logf("returned %v after cancel: %v", time.Since(start).Round(time.Millisecond), err)
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "%post script cancelled") || strings.Contains(err.Error(), "failed") {
				t.Fatalf("error %v, want a cancelled %%post wrapping context.Canceled", err)
			}
			// The sandbox's PID namespace goes down with bwrap; give the
			// kernel a moment to finish it.
			left := processesWith(t, marker)
			for i := 0; i < 50 && len(left) > 0; i++ {
				time.Sleep(20 * time.Millisecond)
				left = processesWith(t, marker)
			}
			if len(left) > 0 {
				t.Errorf("processes left after the cancel: %v", left)
			}
			mounts, _ := os.ReadFile("/proc/self/mountinfo")
			if strings.Contains(string(mounts), scratch) {
				t.Errorf("a mount under %s is left after the cancel", scratch)
			}
		})
	}
}
