// Package proc runs child processes that a cancel can stop: each child is
// the leader of its own process group, and when its context is done the
// whole group gets SIGTERM, then SIGKILL after a grace period. Waiting for
// it is bounded even when a grandchild keeps the child's pipes open, and a
// child stopped that way reports the context's error (context.Canceled or
// context.DeadlineExceeded) so callers read it as cancelled, not failed.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultGrace is how long a process group has between SIGTERM and SIGKILL.
const DefaultGrace = 2 * time.Second

// pipeSlack is how long, after the SIGKILL, Wait still waits for the
// child's pipes to reach EOF before it closes them.
const pipeSlack = 500 * time.Millisecond

// Cmd is an exec.Cmd run in its own process group and stopped as a group
// when its context is done. Set Grace (and the usual exec.Cmd fields)
// before Start.
type Cmd struct {
	*exec.Cmd
	// Grace is the time between SIGTERM and SIGKILL to the group; 0 means DefaultGrace.
	Grace time.Duration

	ctx      context.Context
	mu       sync.Mutex
	pgid     int
	signaled time.Time // when SIGTERM was sent, zero if never
}

// Command returns a Cmd for name with args, tied to ctx (which must not be nil).
func Command(ctx context.Context, name string, args ...string) *Cmd {
	c := &Cmd{Cmd: exec.CommandContext(ctx, name, args...), ctx: ctx}
	c.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cmd.Cancel = c.terminate
	c.Cmd.WaitDelay = DefaultGrace + pipeSlack
	return c
}

func (c *Cmd) grace() time.Duration {
	if c.Grace > 0 {
		return c.Grace
	}
	return DefaultGrace
}

// prepare applies Grace and keeps Setpgid even when the caller replaced SysProcAttr.
func (c *Cmd) prepare() {
	if c.Cmd.SysProcAttr == nil {
		c.Cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.Cmd.SysProcAttr.Setpgid = true
	c.Cmd.SysProcAttr.Pgid = 0
	c.Cmd.WaitDelay = c.grace() + pipeSlack
}

// terminate is the exec.Cmd Cancel hook: SIGTERM to the whole group, and
// SIGKILL to it when the grace period is over.
func (c *Cmd) terminate() error {
	c.mu.Lock()
	pgid := c.Cmd.Process.Pid
	c.pgid = pgid
	c.signaled = time.Now()
	c.mu.Unlock()
	err := syscall.Kill(-pgid, syscall.SIGTERM)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	go func() {
		// The leader may ignore TERM and hold its pipes: kill the group at
		// the end of the grace period; exec's WaitDelay then closes the pipes.
		time.Sleep(c.grace())
		if groupAlive(pgid) {
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}()
	return err
}

// groupAlive tells whether a process of group pgid still runs (a zombie
// waiting to be reaped by its new parent does not count).
func groupAlive(pgid int) bool {
	if syscall.Kill(-pgid, 0) != nil {
		return false
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// PID (COMM) STATE PPID PGRP ...
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[0] != "X" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// reapGroup, after the leader has exited on a cancel, gives the rest of its
// group what is left of the grace period and then kills it, so nothing the
// child started outlives the cancel.
func (c *Cmd) reapGroup() {
	c.mu.Lock()
	pgid, since := c.pgid, c.signaled
	c.mu.Unlock()
	if pgid == 0 {
		return
	}
	deadline := since.Add(c.grace())
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !groupAlive(pgid) {
		return
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	// SIGKILL is delivered asynchronously: wait (briefly) until it took effect.
	for i := 0; i < 50 && groupAlive(pgid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// wrap turns the error of a child stopped by its context into one that
// wraps the context's error.
func (c *Cmd) wrap(err error) error {
	c.mu.Lock()
	cancelled := !c.signaled.IsZero()
	c.mu.Unlock()
	if cancelled {
		c.reapGroup()
	}
	if ctxErr := c.ctx.Err(); ctxErr != nil && (cancelled || err != nil) {
		name := filepath.Base(c.Cmd.Path)
		if err != nil && !errors.Is(err, ctxErr) {
			return fmt.Errorf("%s stopped: %w (%v)", name, ctxErr, err)
		}
		return fmt.Errorf("%s stopped: %w", name, ctxErr)
	}
	return err
}

// Start starts the child in a new process group.
func (c *Cmd) Start() error {
	c.prepare()
	return c.wrap(c.Cmd.Start())
}

// Wait waits for the child. When the context ended it, the rest of its
// group is killed too, and the error wraps the context's error. It returns
// within about the grace period after the context is done, even when a
// grandchild holds the child's stdout or stderr open.
func (c *Cmd) Wait() error {
	return c.wrap(c.Cmd.Wait())
}

// Run starts the child and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Output runs the child and returns its standard output (as exec.Cmd.Output,
// including the ExitError's Stderr when Stderr is unset).
func (c *Cmd) Output() ([]byte, error) {
	c.prepare()
	out, err := c.Cmd.Output()
	return out, c.wrap(err)
}

// CombinedOutput runs the child and returns its standard output and error together.
func (c *Cmd) CombinedOutput() ([]byte, error) {
	c.prepare()
	out, err := c.Cmd.CombinedOutput()
	return out, c.wrap(err)
}
