// Package report holds what every benchmark report shares: the progress
// lines for the person waiting and the line that says where figures come from.
package report

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Progress tells the person waiting what is going on, on stderr, so stdout
// stays the report.
func Progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// MachineLine describes where the figures come from.
func MachineLine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	cpus := 0
	if data, err := os.ReadFile("/sys/fs/cgroup/cpu.max"); err == nil {
		f := strings.Fields(string(data))
		if len(f) == 2 && f[0] != "max" {
			q, _ := strconv.Atoi(f[0])
			p, _ := strconv.Atoi(f[1])
			if p > 0 {
				cpus = q / p
			}
		}
	}
	line := fmt.Sprintf("Machine: %s, %d CPUs online", model, runtime.NumCPU())
	if cpus > 0 {
		line += fmt.Sprintf(" (cgroup quota %d)", cpus)
	}
	return line + ", " + time.Now().UTC().Format("2006-01-02 15:04 UTC") + "."
}
