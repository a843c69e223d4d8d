package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hostctl/hostctl/internal/proc"
)

// PullHelperArg is the first argument that makes a program the pull helper
// (see RunPullHelper): hostd re-executes itself with it.
const PullHelperArg = "pull-helper"

// DefaultPullStallTimeout is how long a pull in a helper may go without any
// progress (no object, no byte, no status change) before it is stopped as
// stalled.
const DefaultPullStallTimeout = 2 * time.Minute

// SetPullHelper makes Pull run libostree's pull in a child process: the
// program at path run as `path pull-helper`, which must call RunPullHelper
// (hostd does, at the top of main). "" pulls in this process again. The
// child is killed as a process group when the pull's context is done, so a
// cancel stops a pull within the kill grace period even when the remote
// holds a request open.
func (s *Sysroot) SetPullHelper(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pullHelper = path
}

// SetPullStallTimeout sets how long a pull in a helper may make no progress
// before it fails as stalled; 0 restores DefaultPullStallTimeout.
func (s *Sysroot) SetPullStallTimeout(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pullStall = d
}

// pullRequest is what the parent sends the helper (one JSON line on stdin).
type pullRequest struct {
	Sysroot    string   `json:"sysroot"`
	Repo       string   `json:"repo"`
	Remote     string   `json:"remote"`
	Ref        string   `json:"ref"`
	Commit     string   `json:"commit,omitempty"`
	CommitOnly bool     `json:"commit_only,omitempty"`
	Depth      int      `json:"depth,omitempty"`
	Subdirs    []string `json:"subdirs,omitempty"`
}

// Error kinds carried from the helper, so errors.Is still works in the parent.
const (
	kindNotFound  = "not-found"
	kindCancelled = "cancelled"
	kindNoSpace   = "no-space"
	kindOther     = "error"
)

// pullMessage is one JSON line the helper writes on stdout: progress while
// it runs, then exactly one of Commit (success) or Error.
type pullMessage struct {
	Progress *PullProgress `json:"progress,omitempty"`
	Commit   string        `json:"commit,omitempty"`
	Error    string        `json:"error,omitempty"`
	Kind     string        `json:"kind,omitempty"`
}

// RunPullHelper is the pull helper's main: it reads one pull request from
// in, pulls, and writes progress and the result to out as JSON lines. When
// in reaches end of file (the parent went away) the pull is cancelled and
// the helper exits. It returns the process exit code.
func RunPullHelper(in io.Reader, out io.Writer) int {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil {
		fmt.Fprintf(os.Stderr, "hostd %s: read the request: %v\n", PullHelperArg, err)
		return 2
	}
	var req pullRequest
	if err := json.Unmarshal(line, &req); err != nil {
		fmt.Fprintf(os.Stderr, "hostd %s: bad request: %v\n", PullHelperArg, err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// The parent keeps our stdin open for the length of the pull.
		io.Copy(io.Discard, br)
		cancel()
		// libostree may not return while a request is in flight: leave anyway.
		time.Sleep(2 * time.Second)
		os.Exit(3)
	}()
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(m pullMessage) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(m)
	}
	csum, err := pullInProcess(ctx, req, func(p PullProgress) { send(pullMessage{Progress: &p}) })
	if err != nil {
		kind := kindOther
		switch {
		case errors.Is(err, context.Canceled):
			kind = kindCancelled
		case errors.Is(err, ErrNotFound):
			kind = kindNotFound
		case errors.Is(err, syscall.ENOSPC):
			kind = kindNoSpace
		}
		send(pullMessage{Error: err.Error(), Kind: kind})
		return 1
	}
	send(pullMessage{Commit: csum})
	return 0
}

// errStalled marks a helper stopped because the remote sent nothing.
var errStalled = errors.New("stalled")

// pullInHelper runs req in `helper pull-helper`, feeding its progress to
// progress, and kills it when ctx is done or nothing moves for stall.
func pullInHelper(ctx context.Context, helper string, stall time.Duration, req pullRequest, progress func(PullProgress)) (string, error) {
	if stall <= 0 {
		stall = DefaultPullStallTimeout
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	hctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	cmd := proc.Command(hctx, helper, PullHelperArg)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", fmt.Errorf("start the pull helper: %w", err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("start the pull helper: %w", err)
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start the pull helper %s: %w", helper, err)
	}
	b, _ := json.Marshal(req)
	if _, err := stdin.Write(append(b, '\n')); err != nil {
		stop(nil)
		cmd.Wait()
		return "", fmt.Errorf("send the request to the pull helper: %w%s", err, stderr.tail())
	}

	// Should a process the helper started keep its stdout open after the
	// kill, stop reading anyway once the kill's grace period is over.
	unblock := context.AfterFunc(hctx, func() {
		time.AfterFunc(proc.DefaultGrace+time.Second, func() { stdout.Close() })
	})
	defer unblock()
	watchdog := time.AfterFunc(stall, func() { stop(errStalled) })
	defer watchdog.Stop()
	var res *pullMessage
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		watchdog.Reset(stall)
		var m pullMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		if m.Progress != nil {
			if progress != nil {
				progress(*m.Progress)
			}
			continue
		}
		res = &m
	}
	watchdog.Stop()
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return "", fmt.Errorf("stopped: %w", ctx.Err())
	case errors.Is(context.Cause(hctx), errStalled):
		return "", fmt.Errorf("the remote %s sent nothing for %v: stopped as stalled; check the network and the remote's URL (`ostree remote show-url %s`), then retry", req.Remote, stall, req.Remote)
	case res == nil:
		return "", fmt.Errorf("the pull helper %s ended without a result: %v%s", helper, werr, stderr.tail())
	case res.Error != "":
		switch res.Kind {
		case kindNotFound:
			return "", fmt.Errorf("%s: %w", strings.TrimSuffix(res.Error, ": "+ErrNotFound.Error()), ErrNotFound)
		case kindCancelled:
			return "", fmt.Errorf("%s: %w", strings.TrimSuffix(res.Error, ": "+context.Canceled.Error()), context.Canceled)
		case kindNoSpace:
			return "", fmt.Errorf("%s: %w", strings.TrimSuffix(res.Error, ": "+syscall.ENOSPC.Error()), syscall.ENOSPC)
		}
		return "", errors.New(res.Error)
	case res.Commit == "":
		return "", fmt.Errorf("the pull helper %s returned no commit", helper)
	}
	return res.Commit, nil
}

// tailBuffer keeps the last 4 KiB written to it (a child's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

// tail is ": LAST LINES" of what was written, or "".
func (t *tailBuffer) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(bytes.TrimSpace(t.buf))
	if s == "" {
		return ""
	}
	return ": " + s
}
