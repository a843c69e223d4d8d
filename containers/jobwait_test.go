package containers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWaitJob(t *testing.T) {
	cases := []struct {
		name     string
		result   string // sent on the job channel, "" for nothing
		cancel   bool   // cancel the parent context
		want     string // substring of the error, "" for success
		canceled bool
	}{
		{name: "done", result: "done"},
		{name: "failed job", result: "failed", want: `the job ended "failed"`},
		{name: "cancelled wait", cancel: true, want: "context canceled", canceled: true},
		{name: "job never finishes", want: "did not finish the job within"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancel := context.WithCancel(context.Background())
			defer cancel()
			const d = 200 * time.Millisecond
			jctx, jcancel := bounded(parent, d)
			defer jcancel()
			ch := make(chan string, 1)
			if tc.result != "" {
				ch <- tc.result
			}
			if tc.cancel {
				cancel()
			}
			start := time.Now()
			err := waitJob(jctx, parent, d, "start", "x.service", ch)
			if time.Since(start) > d+time.Second {
				t.Fatalf("waited %v with a %v deadline", time.Since(start), d)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if errors.Is(err, context.Canceled) != tc.canceled {
				t.Fatalf("error %v: reads as cancelled %v, want %v", err, !tc.canceled, tc.canceled)
			}
		})
	}
}
