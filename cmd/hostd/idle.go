package main

import (
	"context"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/daemon"
)

// idleClock tells when hostd last had something to do: a method call
// from the bus, or a transaction.
type idleClock struct {
	mu   sync.Mutex
	last time.Time
}

func newIdleClock() *idleClock { return &idleClock{last: time.Now()} }

// observe is the connection's incoming interceptor: every method call
// (property reads included) counts as activity.
func (c *idleClock) observe(m *godbus.Message) {
	if m.Type != godbus.TypeMethodCall {
		return
	}
	c.touch()
}

func (c *idleClock) touch() {
	c.mu.Lock()
	c.last = time.Now()
	c.mu.Unlock()
}

func (c *idleClock) since() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.last)
}

// idleTick is how often the clock is looked at.
const idleTick = 500 * time.Millisecond

// exit is closed once hostd has been idle for IdleExitTimeout (read from
// the engine's settings at every tick, so `hostctl reload` changes it) and
// the engine agreed to stop taking transactions (QuiesceIfIdle); a
// transaction in progress (or the cleanup after one) counts as activity, and so does held() being
// true (rpm-ostree clients registered and still on the bus). With
// IdleExitTimeout 0 it is never closed.
func (c *idleClock) exit(ctx context.Context, eng *daemon.Engine, held func() bool) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(idleTick)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if st := eng.Status(); st.Transaction != nil || st.CleanupPending {
				c.touch()
				continue
			}
			timeout := eng.Settings().IdleExitTimeout
			if timeout <= 0 || c.since() < timeout {
				continue
			}
			if held != nil && held() {
				c.touch()
				continue
			}
			if eng.QuiesceIfIdle() {
				close(done)
				return
			}
		}
	}()
	return done
}
