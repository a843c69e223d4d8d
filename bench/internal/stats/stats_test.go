package stats

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	MS := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	tests := []struct {
		name                       string
		in                         []time.Duration
		min, Median, max, p50, p99 time.Duration
	}{
		{"one", MS(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		{"odd, unsorted", MS(5, 1, 3), time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond},
		{"even: Median is the mean of the middle two", MS(4, 1, 2, 3), time.Millisecond, 2500 * time.Microsecond, 4 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond},
		{"1..100: nearest rank", MS(hundred...), time.Millisecond, 50500 * time.Microsecond, 100 * time.Millisecond, 50 * time.Millisecond, 99 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append([]time.Duration(nil), tt.in...)
			s := Summarize(tt.in)
			if s.N != len(tt.in) || s.Min != tt.min || s.Median != tt.Median || s.Max != tt.max || s.P50 != tt.p50 || s.P99 != tt.p99 {
				t.Errorf("summarize = %+v; want min %v Median %v max %v p50 %v p99 %v", s, tt.min, tt.Median, tt.max, tt.p50, tt.p99)
			}
			for i := range before {
				if before[i] != tt.in[i] {
					t.Fatalf("summarize reordered its input")
				}
			}
		})
	}
	if s := Summarize(nil); s.N != 0 || s.P99 != 0 {
		t.Errorf("summarize(nil) = %+v; want zero", s)
	}
}

func TestPercentileOf2000(t *testing.T) {
	s := make([]time.Duration, 2000)
	for i := range s {
		s[i] = time.Duration(i + 1)
	}
	if got := Percentile(s, 99); got != 1980 {
		t.Errorf("p99 of 1..2000 = %d; want 1980", got)
	}
	if got := Percentile(s, 50); got != 1000 {
		t.Errorf("p50 of 1..2000 = %d; want 1000", got)
	}
}

func TestRatioAndFormat(t *testing.T) {
	if got := Ratio(3*time.Millisecond, 2*time.Millisecond); got != "1.50" {
		t.Errorf("ratio = %q; want 1.50", got)
	}
	if got := Ratio(time.Millisecond, 0); got != "n/a" {
		t.Errorf("ratio over zero = %q; want n/a", got)
	}
	for d, want := range map[time.Duration]string{
		250 * time.Microsecond:   "0.250",
		12345 * time.Microsecond: "12.3",
		1500 * time.Millisecond:  "1500",
	} {
		if got := MS(d); got != want {
			t.Errorf("ms(%v) = %q; want %q", d, got, want)
		}
	}
}
