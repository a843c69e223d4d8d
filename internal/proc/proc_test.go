package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

// TestCancelStopsTheGroup: a cancel sends TERM to the child's whole group,
// and KILL to what is left of it after the grace period. Judged by what each
// process saw and how it ended, in that order, not by the clock: a process
// that ignores TERM records the TERM (its trap) and then dies of KILL; one
// that does not dies of TERM; Wait returns even when a grandchild held the
// child's stdout.
func TestCancelStopsTheGroup(t *testing.T) {
	// The TERM handlers wait in "sleep & wait", which a trapped signal
	// interrupts ("sleep" alone would defer the trap until it ends).
	const ignoreTerm = `trap 'echo term >> "$2"' TERM; echo $$ > "$1"; while :; do sleep 100 & wait; done`
	cases := []struct {
		name   string
		script string // $1: a file for the pid to watch, written once TERM is trapped; $2: the trap's log
		output bool   // read stdout through a pipe (CombinedOutput)
		// what the watched process saw and died of
		sawTerm        bool
		diedOf         syscall.Signal // the signal the child died of, when watchedIsChild
		watchedIsChild bool
	}{
		{name: "child that dies on TERM", script: `echo $$ > "$1"; exec sleep 100`, diedOf: syscall.SIGTERM, watchedIsChild: true},
		{name: "child that ignores TERM", script: ignoreTerm, sawTerm: true, diedOf: syscall.SIGKILL, watchedIsChild: true},
		{name: "grandchild that ignores TERM holds stdout", output: true, sawTerm: true,
			script: `sh -c '` + strings.ReplaceAll(ignoreTerm, `'`, `'"'"'`) + `' sh "$1" "$2" & wait`},
		{name: "grandchild that ignores TERM, no pipes", sawTerm: true,
			script: `sh -c '` + strings.ReplaceAll(ignoreTerm, `'`, `'"'"'`) + `' sh "$1" "$2" </dev/null >/dev/null 2>&1 & wait`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile, trapLog := filepath.Join(dir, "pid"), filepath.Join(dir, "trap")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := Command(ctx, "sh", "-c", tc.script, "sh", pidFile, trapLog)
			// Long enough for a loaded machine to run the TERM trap; the
			// test waits for it only where the process ignores TERM.
			cmd.Grace = 2 * time.Second
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
			cancel()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second): // liveness bound
				t.Fatal("Wait did not return 30 s after cancel")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v does not wrap context.Canceled", err)
			}
			if alive(pid) {
				t.Errorf("process %d still runs after the cancel", pid)
			}
			log, _ := os.ReadFile(trapLog)
			if got := strings.Contains(string(log), "term"); got != tc.sawTerm {
				t.Errorf("the process saw TERM: %v, want %v (trap log %q)", got, tc.sawTerm, log)
			}
			if tc.watchedIsChild {
				ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
				if !ok || !ws.Signaled() || ws.Signal() != tc.diedOf {
					t.Errorf("the child ended %v, want killed by %v", cmd.ProcessState, tc.diedOf)
				}
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
