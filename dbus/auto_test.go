package dbus

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hostctl/hostctl/errdefs"
)

// TestRetryExiting: a call refused because hostd exits when idle is made
// again (the next hostd serves it); any other error is returned at once.
func TestRetryExiting(t *testing.T) {
	exiting := errdefs.Wrap(errdefs.ErrBusy, fmt.Errorf("%s: try again in a moment", ExitingMessage))
	other := errdefs.Errorf(errdefs.ErrBusy, "another transaction is running")
	for _, tc := range []struct {
		name  string
		errs  []error
		want  error
		calls int
	}{
		{name: "served", errs: []error{nil}, calls: 1},
		{name: "exiting then served", errs: []error{exiting, exiting, nil}, calls: 3},
		{name: "busy with a transaction", errs: []error{other, nil}, want: other, calls: 1},
	} {
		n := 0
		err := retryExiting(context.Background(), func() error { n++; return tc.errs[n-1] })
		if !errors.Is(err, tc.want) && err != tc.want || n != tc.calls {
			t.Errorf("%s: %v after %d calls; want %v after %d", tc.name, err, n, tc.want, tc.calls)
		}
	}
}
