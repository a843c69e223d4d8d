package main

import (
	"github.com/hostctl/hostctl/bench/internal/stats"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	msd := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name             string
		in               []time.Duration
		min, median, max time.Duration
	}{
		{"one", msd(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		{"odd, unsorted", msd(5, 1, 3), time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond},
		{"even: the mean of the middle two", msd(4, 1, 2, 3), time.Millisecond, 2500 * time.Microsecond, 4 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append([]time.Duration(nil), tt.in...)
			s := summarize(tt.in)
			if s.N != len(tt.in) || s.Min != tt.min || s.Median != tt.median || s.Max != tt.max {
				t.Errorf("summarize = %+v; want min %v median %v max %v", s, tt.min, tt.median, tt.max)
			}
			for i := range before {
				if before[i] != tt.in[i] {
					t.Fatalf("summarize reordered its input")
				}
			}
		})
	}
	if s := summarize(nil); s.N != 0 || s.Median != 0 {
		t.Errorf("summarize(nil) = %+v; want zero", s)
	}
}

func TestMedianOf(t *testing.T) {
	in := []int64{9, 1, 5, 3}
	if got := medianOf(in); got != 4 {
		t.Errorf("medianOf(9,1,5,3) = %d; want 4", got)
	}
	if in[0] != 9 || in[3] != 3 {
		t.Errorf("medianOf reordered its input: %v", in)
	}
	if got := medianOf([]float64{0.5, 2, 1}); got != 1 {
		t.Errorf("medianOf(0.5,2,1) = %v; want 1", got)
	}
	if got := medianOf[uint64](nil); got != 0 {
		t.Errorf("medianOf(nil) = %v; want 0", got)
	}
}

func TestFormats(t *testing.T) {
	if got := ratio(int64(3*time.Millisecond), int64(2*time.Millisecond)); got != "1.50" {
		t.Errorf("ratio = %q; want 1.50", got)
	}
	if got := ratio[int64](1, 0); got != "n/a" {
		t.Errorf("ratio over zero = %q; want n/a", got)
	}
	for _, tt := range []struct {
		a, b int64
		want string
	}{{10866, 6047211, "0.0018"}, {3, 2, "1.5"}, {1, 0, "n/a"}, {0, 5, "0"}} {
		if got := fineRatio(tt.a, tt.b); got != tt.want {
			t.Errorf("fineRatio(%d, %d) = %q; want %q", tt.a, tt.b, got, tt.want)
		}
	}
	if got := spread([]float64{1.2, 0.8, 1.0}); got != "min 0.80, median 1.00, max 1.20" {
		t.Errorf("spread = %q", got)
	}
	if got := spread(nil); got != "n/a" {
		t.Errorf("spread(nil) = %q", got)
	}
	for d, want := range map[time.Duration]string{
		250 * time.Microsecond:   "0.250",
		12345 * time.Microsecond: "12.3",
		1500 * time.Millisecond:  "1500",
	} {
		if got := stats.MS(d); got != want {
			t.Errorf("stats.MS(%v) = %q; want %q", d, got, want)
		}
	}
	for n, want := range map[int64]string{512: "512 B", 1536: "1.5 KiB", 3 << 20: "3.00 MiB", 3514000: "3.35 MiB"} {
		if got := mib(n); got != want {
			t.Errorf("mib(%d) = %q; want %q", n, got, want)
		}
	}
}
