package main

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// summary is what the report quotes of a set of durations.
type summary struct {
	N                int
	Min, Median, Max time.Duration
}

// summarize reads the order statistics of a copy of ds.
func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return summary{N: len(s), Min: s[0], Median: median(s), Max: s[len(s)-1]}
}

// median of sorted values: the middle one, or the mean of the two middle ones.
func median[T ~int64 | ~float64 | ~uint64](sorted []T) T {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// medianOf is the median of unsorted values (the input is not reordered).
func medianOf[T ~int64 | ~float64 | ~uint64](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return median(s)
}

// ratio is a/b formatted for the report ("n/a" when b is zero).
func ratio[T ~int64 | ~float64 | ~uint64](a, b T) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// spread formats min, median and max of ratios ("min 0.80, median 0.95, max 1.10").
func spread(ratios []float64) string {
	if len(ratios) == 0 {
		return "n/a"
	}
	s := slices.Clone(ratios)
	slices.Sort(s)
	return fmt.Sprintf("min %.2f, median %.2f, max %.2f", s[0], median(s), s[len(s)-1])
}

// mib formats a byte count: "512 B", "12.3 KiB", "4.56 MiB".
func mib(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	default:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	}
}

// fineRatio is a/b with three significant digits, for ratios far from 1
// ("0.00184"); "n/a" when b is zero.
func fineRatio(a, b int64) string {
	if b <= 0 {
		return "n/a"
	}
	return strconv.FormatFloat(float64(a)/float64(b), 'g', 3, 64)
}
