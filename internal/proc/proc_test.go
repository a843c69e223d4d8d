package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// alive tells whether pid is a live process (a zombie counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(file); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never written", file)
	return 0
}

func TestCancelStopsTheGroup(t *testing.T) {
	const grace = 400 * time.Millisecond
	cases := []struct {
		name   string
		script string // $1 is a file to write the pid to watch into, once it ignores TERM (a pid written before the trap let a cancel kill it early)
		output bool   // read stdout through a pipe (CombinedOutput)
		// minimum and maximum time from cancel to return
		min, max time.Duration
	}{
		{name: "child that dies on TERM", script: `echo $$ > "$1"; exec sleep 100`,
			min: 0, max: grace},
		{name: "child that ignores TERM", script: `trap "" TERM; echo $$ > "$1"; sleep 100`,
			min: grace, max: grace + time.Second},
		{name: "grandchild that ignores TERM holds stdout", output: true,
			script: `sh -c 'trap "" TERM; echo $$ > "$1"; exec sleep 100' sh "$1" & wait`,
			min:    grace, max: grace + time.Second},
		{name: "grandchild that ignores TERM, no pipes", script: `sh -c 'trap "" TERM; echo $$ > "$1"; exec sleep 100' sh "$1" </dev/null >/dev/null 2>&1 & wait`,
			min: grace, max: grace + time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := Command(ctx, "sh", "-c", tc.script, "sh", pidFile)
			cmd.Grace = grace
			done := make(chan error, 1)
			go func() {
				if tc.output {
					_, err := cmd.CombinedOutput()
					done <- err
					return
				}
				done <- cmd.Run()
			}()
			pid := readPid(t, pidFile)
			start := time.Now()
			cancel()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Wait did not return 10 s after cancel")
			}
			took := time.Since(start)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v does not wrap context.Canceled", err)
			}
			if took < tc.min || took > tc.max {
				t.Errorf("returned %v after cancel, want between %v and %v", took, tc.min, tc.max)
			}
			if alive(pid) {
				t.Errorf("process %d still runs after the cancel", pid)
			}
		})
	}
}

func TestNotCancelled(t *testing.T) {
	cases := []struct {
		name     string
		script   string
		wantCode int
		wantOut  string
	}{
		{name: "success", script: "echo hi", wantCode: 0, wantOut: "hi\n"},
		{name: "failure keeps ExitError", script: "echo oops >&2; exit 3", wantCode: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Command(context.Background(), "sh", "-c", tc.script).Output()
			if string(out) != tc.wantOut {
				t.Errorf("output %q, want %q", out, tc.wantOut)
			}
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.wantCode {
				t.Fatalf("error %v, want exit code %d", err, tc.wantCode)
			}
			if !strings.Contains(string(ee.Stderr), "oops") {
				t.Errorf("ExitError.Stderr %q lost the child's stderr", ee.Stderr)
			}
			if errors.Is(err, context.Canceled) {
				t.Error("a plain failure reads as cancelled")
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := Command(ctx, "sleep", "100").Run()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v does not wrap context.DeadlineExceeded", err)
	}
}

func TestOwnProcessGroup(t *testing.T) {
	out, err := Command(context.Background(), "sh", "-c", "ps -o pgid= -p $$").Output()
	if err != nil {
		t.Skipf("ps not available: %v", err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	if pgid == syscallGetpgrp() {
		t.Fatalf("child runs in the parent's process group %d", pgid)
	}
}
