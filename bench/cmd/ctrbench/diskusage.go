package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// inode is a file's identity on its filesystem.
type inode struct{ dev, ino uint64 }

// inodeInfo is what a snapshot keeps of an inode.
type inodeInfo struct {
	mode   fs.FileMode // the type bits only
	size   int64       // apparent size
	blocks int64       // allocated bytes (st_blocks * 512)
}

// snapshot is every inode under a directory and how many names it has there.
type snapshot struct {
	inodes map[inode]inodeInfo
	names  int
}

// takeSnapshot walks dir (not following symlinks). A missing dir is an empty snapshot.
func takeSnapshot(dir string) (*snapshot, error) {
	s := &snapshot{inodes: map[inode]inodeInfo{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile (a temporary file)
		}
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat data", p)
		}
		s.names++
		s.inodes[inode{uint64(st.Dev), st.Ino}] = inodeInfo{mode: fi.Mode().Type(), size: fi.Size(), blocks: st.Blocks * 512}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", dir, err)
	}
	return s, nil
}

func emptySnapshot() *snapshot { return &snapshot{inodes: map[inode]inodeInfo{}} }

// growth is what appeared between two snapshots.
type growth struct {
	Files, Dirs, Other int   // new inodes by type (Other: symlinks and the rest)
	FileBytes          int64 // apparent size of the new regular files
	Allocated          int64 // blocks allocated to every new inode
	Grown              int64 // bytes existing regular files grew by
	Names              int   // new names (links to existing inodes included)
}

// NewInodes counts every new inode.
func (g growth) NewInodes() int { return g.Files + g.Dirs + g.Other }

// diff tells what after has that before did not.
func diff(before, after *snapshot) growth {
	var g growth
	for id, a := range after.inodes {
		b, existed := before.inodes[id]
		if existed && b.mode == a.mode {
			if a.mode.IsRegular() && a.size > b.size {
				g.Grown += a.size - b.size
			}
			continue
		}
		g.Allocated += a.blocks
		switch {
		case a.mode.IsRegular():
			g.Files++
			g.FileBytes += a.size
		case a.mode.IsDir():
			g.Dirs++
		default:
			g.Other++
		}
	}
	g.Names = after.names - before.names
	return g
}

// ioCounters are a process's I/O counters from /proc/PID/io.
type ioCounters struct {
	WriteBytes int64 // bytes the process caused to be written to storage
	WChar      int64 // bytes passed to write(2) and friends, sockets included
	ReadBytes  int64
}

// readIO reads /proc/PID/io.
func readIO(pid int) (ioCounters, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return ioCounters{}, fmt.Errorf("read the I/O counters of pid %d: %w", pid, err)
	}
	return parseIO(b)
}

// parseIO reads write_bytes, wchar and read_bytes of /proc/PID/io text
// ("wchar: 123" lines); write_bytes and wchar must be there.
func parseIO(b []byte) (ioCounters, error) {
	var c ioCounters
	var haveW, haveC bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		switch strings.TrimSpace(k) {
		case "write_bytes":
			c.WriteBytes, haveW = n, true
		case "wchar":
			c.WChar, haveC = n, true
		case "read_bytes":
			c.ReadBytes = n
		}
	}
	if !haveW || !haveC {
		return c, fmt.Errorf("no write_bytes or wchar in /proc/PID/io (a kernel without task I/O accounting?)")
	}
	return c, nil
}

func (c ioCounters) sub(o ioCounters) ioCounters {
	return ioCounters{WriteBytes: c.WriteBytes - o.WriteBytes, WChar: c.WChar - o.WChar, ReadBytes: c.ReadBytes - o.ReadBytes}
}
