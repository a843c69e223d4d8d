package deploy

import (
	"context"
	"testing"
)

// TestCancellableFreeWaitsForCallback races a context's cancel against the
// free of the GCancellable tied to it, many times over: whenever the cancel
// callback had started, free must return only after it finished, so
// g_cancellable_cancel never runs on an object already unreffed.
func TestCancellableFreeWaitsForCallback(t *testing.T) {
	const n = 20000
	raced := 0
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		c := newCancellable(ctx)
		ready := make(chan struct{})
		go func() { close(ready); cancel() }()
		<-ready
		c.free()
		if c.started.Load() {
			raced++
			select {
			case <-c.fired:
			default:
				t.Fatalf("iteration %d: free returned while the cancel callback was still running", i)
			}
		}
		cancel()
	}
	t.Logf("%d of %d frees raced a running cancel callback", raced, n)
}
