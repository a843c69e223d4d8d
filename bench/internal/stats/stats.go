// Package stats holds the order statistics and formatting the benchmarks share.
package stats

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Summary is what the report quotes of a set of durations.
type Summary struct {
	N                int
	Min, Median, Max time.Duration
	P50, P99         time.Duration
	Total            time.Duration
}

// Summarize sorts a copy of ds and reads its order statistics. Percentiles
// use the nearest-rank method: p99 of 100 samples is the 99th smallest.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var total time.Duration
	for _, d := range s {
		total += d
	}
	return Summary{
		N:      len(s),
		Min:    s[0],
		Median: Median(s),
		Max:    s[len(s)-1],
		P50:    Percentile(s, 50),
		P99:    Percentile(s, 99),
		Total:  total,
	}
}

// Median of sorted durations: the middle one, or the mean of the two middle ones.
func Median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Percentile of sorted durations by nearest rank: the smallest value with at
// least p percent of the samples at or below it.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := max(1, min(int(math.Ceil(float64(n)*p/100)), n))
	return sorted[rank-1]
}

// Ratio is a/b formatted for the report ("n/a" when b is zero).
func Ratio(a, b time.Duration) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// MS formats a duration in milliseconds with enough digits for sub-millisecond figures.
func MS(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 1:
		return fmt.Sprintf("%.3f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
