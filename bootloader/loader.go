package bootloader

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Loader is what the bootloader sees in a boot directory: the loader.N that
// /boot/loader points at and its entries, in boot order.
type Loader struct {
	// BootDir is the directory Read was given (SYSROOT/boot, or the mount
	// point of a separate /boot partition).
	BootDir string
	// Version is N of the loader.N directory /boot/loader points at.
	Version int
	// Linked is false when there is no /boot/loader symlink at all (a
	// sysroot with no deployment yet); Version is then 0, as in libostree.
	Linked bool
	// Entries are the *.conf files of loader.N/entries, default first.
	Entries []Entry
}

// Read reads the loader of bootDir: it follows the /boot/loader symlink
// (libostree swaps it between loader.0 and loader.1), parses every *.conf
// regular file of loader.N/entries and sorts them as libostree does
// (_ostree_sysroot_read_boot_loader_configs and compare_boot_loader_configs
// in ostree-sysroot.c): by version, highest first, compared with
// strverscmp; entries without a version last; equal versions by file name.
// libostree gives the default deployment the highest version (and names
// its file ostree-N-OSNAME.conf, or ostree-N.conf since 2024.5, with the
// same N), so Entries[0] is the default and Entries[1] the rollback.
//
// A missing /boot/loader gives an empty loader with Version 0, and a
// missing loader.N/entries no entries, like libostree (Verify refuses
// both); a /boot/loader that is not a symlink to loader.0 or loader.1, or
// an entry that does not parse, is an error.
func Read(bootDir string) (*Loader, error) {
	l := &Loader{BootDir: bootDir}
	version, linked, err := loaderVersion(bootDir)
	if err != nil {
		return nil, err
	}
	l.Version, l.Linked = version, linked
	dir := filepath.Join(bootDir, fmt.Sprintf("loader.%d", version), "entries")
	l.Entries, err = readEntries(dir)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// loaderVersion reads the /boot/loader symlink as libostree's
// read_current_bootversion does.
func loaderVersion(bootDir string) (version int, linked bool, err error) {
	link := filepath.Join(bootDir, "loader")
	fi, err := os.Lstat(link)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read boot loader: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return 0, false, fmt.Errorf("read boot loader: %s is not a symlink (libostree keeps it a symlink to loader.0 or loader.1)", link)
	}
	target, err := os.Readlink(link)
	if err != nil {
		return 0, false, fmt.Errorf("read boot loader: %w", err)
	}
	switch target {
	case "loader.0":
		return 0, true, nil
	case "loader.1":
		return 1, true, nil
	}
	return 0, false, fmt.Errorf("read boot loader: %s points at %q; it must point at loader.0 or loader.1", link, target)
}

// readEntries parses the *.conf regular files of dir; a missing dir has no
// entries.
func readEntries(dir string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read boot entries: %w", err)
	}
	var entries []Entry
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".conf") {
			continue
		}
		p := filepath.Join(dir, de.Name())
		data, regular, err := readSmallFile(p)
		if err != nil {
			return nil, fmt.Errorf("read boot entry %s: %w", p, err)
		}
		if !regular {
			continue
		}
		e, err := ParseEntry(de.Name(), data)
		if err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, dir)
		}
		entries = append(entries, e)
	}
	SortEntries(entries)
	return entries, nil
}

// readSmallFile reads p (following symlinks, as libostree's fstatat does)
// if it is a regular file, refusing more than MaxEntrySize bytes.
func readSmallFile(p string) (data []byte, regular bool, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, nil
	}
	data, err = io.ReadAll(io.LimitReader(f, MaxEntrySize+1))
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// SortEntries sorts entries in boot order, default first, the way Read does.
func SortEntries(entries []Entry) {
	sort.SliceStable(entries, func(i, j int) bool { return entryLess(entries[i], entries[j]) })
}

func entryLess(a, b Entry) bool {
	switch {
	case a.Version != "" && b.Version != "":
		if c := strverscmp(a.Version, b.Version); c != 0 {
			return c > 0
		}
	case a.Version != "":
		return true
	case b.Version != "":
		return false
	}
	return a.Name < b.Name
}

// Default returns the entry the bootloader boots by default.
func (l *Loader) Default() (Entry, bool) { return l.entry(0) }

// Rollback returns the entry after the default: the previous generation.
func (l *Loader) Rollback() (Entry, bool) { return l.entry(1) }

func (l *Loader) entry(i int) (Entry, bool) {
	if l == nil || i >= len(l.Entries) {
		return Entry{}, false
	}
	return l.Entries[i], true
}

// Lookup returns the entry whose ostree= argument is bootLink, e.g.
// "/ostree/boot.1/fedora/BOOTCSUM/0".
func (l *Loader) Lookup(bootLink string) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	for _, e := range l.Entries {
		if e.OstreeArg() == bootLink {
			return e, true
		}
	}
	return Entry{}, false
}
