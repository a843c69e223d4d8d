package bootloader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Verify checks, after every write to /boot, that the bootloader will find
// a complete configuration in bootDir:
//
//   - loader is a symlink to loader.0 or loader.1, and that directory exists;
//   - no loader.tmp is left behind (libostree renames loader.tmp over
//     loader to swap; a leftover means the swap did not happen);
//   - loader.N/entries exists, holds at least one entry, and every *.conf
//     in it parses;
//   - no two entries have the same version (the default would be a toss-up);
//   - every entry's linux, each initrd and its devicetree is a regular file;
//   - every entry's ostree= argument, if any, is well formed and names
//     boot.N for the same N as loader.N; an ostree-*.conf entry must have one.
//
// Paths in entries are relative to the root of the boot partition, so they
// are looked up under bootDir. When /boot is a directory of the root file
// system and libostree's sysroot.bootprefix is on, entries say
// /boot/ostree/...: libostree's boot/boot -> . symlink resolves those, and
// without it Verify also tries the path with /boot removed.
//
// Every problem is reported, joined; each names the entry file and the
// path that is missing.
func Verify(bootDir string) error {
	link := filepath.Join(bootDir, "loader")
	fi, err := os.Lstat(link)
	if err != nil {
		return fmt.Errorf("verify %s: %w: no deployment has been written to this boot directory", bootDir, err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("verify %s: %s is not a symlink; libostree keeps it a symlink to loader.0 or loader.1", bootDir, link)
	}
	version, _, err := loaderVersion(bootDir)
	if err != nil {
		return fmt.Errorf("verify %s: %w", bootDir, err)
	}
	loaderDir := filepath.Join(bootDir, fmt.Sprintf("loader.%d", version))
	if fi, err := os.Stat(loaderDir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return fmt.Errorf("verify %s: %s points at loader.%d, which is missing: %w; the bootloader has no configuration", bootDir, link, version, err)
	}
	var problems []error
	if _, err := os.Lstat(filepath.Join(bootDir, "loader.tmp")); err == nil {
		problems = append(problems, fmt.Errorf("%s is left over: the bootloader swap to it did not complete (loader still points at loader.%d)", filepath.Join(bootDir, "loader.tmp"), version))
	}
	entriesDir := filepath.Join(loaderDir, "entries")
	if fi, err := os.Stat(entriesDir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return fmt.Errorf("verify %s: entries directory %s: %w", bootDir, entriesDir, err)
	}
	entries, err := readEntries(entriesDir)
	if err != nil {
		return fmt.Errorf("verify %s: %w", bootDir, err)
	}
	if len(entries) == 0 {
		problems = append(problems, fmt.Errorf("%s has no boot entries: nothing to boot", entriesDir))
	}
	versions := map[string]string{}
	for _, e := range entries {
		if e.Version != "" {
			if other, dup := versions[e.Version]; dup {
				problems = append(problems, fmt.Errorf("entries %s and %s both have version %s: the bootloader's default is undefined", other, e.Name, e.Version))
			}
			versions[e.Version] = e.Name
		}
		problems = append(problems, verifyEntry(bootDir, version, e)...)
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("verify %s (loader.%d): %w", bootDir, version, err)
	}
	return nil
}

// verifyEntry checks the files one entry names and its ostree= argument.
func verifyEntry(bootDir string, version int, e Entry) []error {
	var problems []error
	check := func(key, p string) {
		if err := checkBootFile(bootDir, p); err != nil {
			problems = append(problems, fmt.Errorf("entry %s: %s %s: %w", e.Name, key, p, err))
		}
	}
	check("linux", e.Linux)
	for _, p := range e.Initrd {
		check("initrd", p)
	}
	if e.Devicetree != "" {
		check("devicetree", e.Devicetree)
	}
	arg := e.OstreeArg()
	switch {
	case arg == "" && strings.HasPrefix(e.Name, "ostree-"):
		problems = append(problems, fmt.Errorf("entry %s: no ostree= kernel argument: the initramfs would not find the deployment", e.Name))
	case arg != "":
		bl, err := ParseBootLink(arg)
		if err != nil {
			problems = append(problems, fmt.Errorf("entry %s: %w", e.Name, err))
		} else if bl.BootVersion != version {
			problems = append(problems, fmt.Errorf("entry %s: ostree=%s is for boot version %d but the entry is in loader.%d: a stale entry", e.Name, arg, bl.BootVersion, version))
		}
	}
	return problems
}

// checkBootFile checks that the entry path p names a regular file in the
// boot partition rooted at bootDir.
func checkBootFile(bootDir, p string) error {
	rel := filepath.Clean("/" + p) // the partition root is the top: ".." stops there
	candidates := []string{filepath.Join(bootDir, rel)}
	if strings.HasPrefix(rel, "/boot/") {
		candidates = append(candidates, filepath.Join(bootDir, strings.TrimPrefix(rel, "/boot")))
	}
	var firstErr error
	for _, c := range candidates {
		fi, err := os.Stat(c)
		if err == nil {
			if fi.Mode().IsRegular() {
				return nil
			}
			err = fmt.Errorf("%s is not a regular file", c)
		} else if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("missing (looked for %s)", c)
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}
