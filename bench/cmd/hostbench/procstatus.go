package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// memory is a process's memory as /proc/PID/status reports it, in KiB.
type memory struct {
	// RSS is VmRSS: resident now.
	RSS uint64
	// HWM is VmHWM: the most ever resident.
	HWM uint64
	// Anon is RssAnon: resident anonymous memory (heap, stacks), the part a
	// daemon's own allocations make.
	Anon uint64
	// File is RssFile: resident pages of mapped files (the executable and
	// shared libraries), shared with every process that maps them.
	File uint64
	// Exe is the part of File that is the process's own executable.
	Exe uint64
}

// readMemory reads /proc/PID/status.
func readMemory(pid int) (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("read the memory of pid %d: %w (has it exited?)", pid, err)
	}
	m, err := parseStatus(data)
	if err != nil {
		return memory{}, fmt.Errorf("read the memory of pid %d: %w", pid, err)
	}
	if m.Exe, err = readExeRSS(pid); err != nil {
		return memory{}, err
	}
	return m, nil
}

// parseStatus reads VmRSS, VmHWM, RssAnon and RssFile from the text of
// /proc/PID/status ("VmRSS:\t   12345 kB" lines). VmRSS and VmHWM must be
// there (they are for every user process); RssAnon and RssFile are optional.
func parseStatus(data []byte) (memory, error) {
	var m memory
	var haveRSS, haveHWM bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch key {
		case "VmRSS":
			dst, haveRSS = &m.RSS, true
		case "VmHWM":
			dst, haveHWM = &m.HWM, true
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		kb, err := parseKB(val)
		if err != nil {
			return memory{}, fmt.Errorf("field %s: %w", key, err)
		}
		*dst = kb
	}
	if err := sc.Err(); err != nil {
		return memory{}, err
	}
	if !haveRSS || !haveHWM {
		return memory{}, fmt.Errorf("no VmRSS/VmHWM lines (a kernel thread, or not a /proc/PID/status file)")
	}
	return m, nil
}

// parseKB reads "   12345 kB".
func parseKB(val string) (uint64, error) {
	f := strings.Fields(val)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("value %q is not \"N kB\"", strings.TrimSpace(val))
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q: %w", strings.TrimSpace(val), err)
	}
	return n, nil
}

// mib formats KiB as MiB.
func mib(kb uint64) string { return fmt.Sprintf("%.1f", float64(kb)/1024) }

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture hostctl runs on).
const userHZ = 100

// readCPU is the CPU time (user + system) pid has used so far, over all its
// threads, from /proc/PID/stat. Its resolution is 1/userHZ seconds.
func readCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read the CPU time of pid %d: %w (has it exited?)", pid, err)
	}
	ticks, err := parseStatCPU(data)
	if err != nil {
		return 0, fmt.Errorf("read the CPU time of pid %d: %w", pid, err)
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// parseStatCPU returns utime + stime, in ticks, from the text of
// /proc/PID/stat: "PID (COMM) STATE PPID ..." where COMM may hold spaces and
// parentheses, so the fields are counted from the last ')'. utime and stime
// are fields 14 and 15 of the line.
func parseStatCPU(data []byte) (uint64, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("no \"(comm)\" in %q", truncate(data))
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state): utime (14) is f[11], stime (15) is f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after comm, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime %q: %w", f[11], err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime %q: %w", f[12], err)
	}
	return utime + stime, nil
}

func truncate(data []byte) []byte {
	if len(data) > 64 {
		return data[:64]
	}
	return data
}

// readExeRSS is how much of pid's own executable file is resident in its
// address space (KiB): the Go binary's code and read-only data, as opposed to
// the shared libraries it maps.
func readExeRSS(pid int) (uint64, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0, fmt.Errorf("find the executable of pid %d: %w", pid, err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, fmt.Errorf("read the mappings of pid %d: %w", pid, err)
	}
	kb, err := parseSmapsRSS(data, exe)
	if err != nil {
		return 0, fmt.Errorf("read the mappings of pid %d: %w", pid, err)
	}
	return kb, nil
}

// parseSmapsRSS sums the "Rss:" of every mapping of path in the text of
// /proc/PID/smaps, where a mapping's header line is
// "START-END PERMS OFFSET DEV INODE [PATH]" and its fields follow, one per line.
func parseSmapsRSS(data []byte, path string) (uint64, error) {
	var total uint64
	inPath := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			// A header: the path is everything after the inode (it may hold spaces).
			inPath = false
			if len(f) >= 6 {
				inPath = strings.Join(f[5:], " ") == path
			}
			continue
		}
		if !inPath {
			continue
		}
		if val, ok := strings.CutPrefix(line, "Rss:"); ok {
			kb, err := parseKB(val)
			if err != nil {
				return 0, fmt.Errorf("Rss of %s: %w", path, err)
			}
			total += kb
		}
	}
	return total, sc.Err()
}
