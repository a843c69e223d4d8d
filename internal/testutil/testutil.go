// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TempSysrootDir returns a fresh directory for a sysroot that is removed at
// the end of the test, including libostree's immutable deployment roots.
func TempSysrootDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hostctl-sysroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveAll(dir) })
	return dir
}

// RemoveAll removes dir after clearing the immutable flag libostree sets on
// deployment directories (chattr +i).
func RemoveAll(dir string) error {
	deploys, _ := filepath.Glob(filepath.Join(dir, "ostree", "deploy", "*", "deploy", "*"))
	for _, d := range deploys {
		ClearImmutable(d)
	}
	return os.RemoveAll(dir)
}

// ClearImmutable clears the immutable attribute of path, ignoring errors
// (filesystems without attributes have nothing to clear).
func ClearImmutable(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsImmutableFL == 0 {
		return
	}
	unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFL))
}

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutableFL = 0x00000010
