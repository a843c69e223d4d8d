package daemon

/*
#cgo pkg-config: ostree-1 gio-2.0
#include <stdlib.h>
#include <string.h>
#include <ostree.h>

// hc_boot_files looks in commit rev of the repo at repo_path for the kernel
// and initramfs libostree deploys first: usr/lib/modules/KVER/vmlinuz and
// usr/lib/modules/KVER/initramfs.img. It returns 1 with their sizes and
// content object checksums (the initramfs ones empty when there is none),
// 0 when the commit has no kernel there, -1 with error set on failure.
static int hc_boot_files(const char *repo_path, const char *rev, guint64 *ksize, guint64 *isize,
                         char **kcsum, char **icsum, GError **error) {
	g_autoptr(GFile) rf = g_file_new_for_path(repo_path);
	g_autoptr(OstreeRepo) repo = ostree_repo_new(rf);
	if (!ostree_repo_open(repo, NULL, error))
		return -1;
	g_autoptr(GFile) root = NULL;
	if (!ostree_repo_read_commit(repo, rev, &root, NULL, NULL, error))
		return -1;
	g_autoptr(GFile) mods = g_file_resolve_relative_path(root, "usr/lib/modules");
	g_autoptr(GError) local = NULL;
	g_autoptr(GFileEnumerator) en = g_file_enumerate_children(mods, "standard::name,standard::type",
		G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, &local);
	if (en == NULL) {
		if (g_error_matches(local, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
			return 0;
		g_propagate_error(error, g_steal_pointer(&local));
		return -1;
	}
	for (;;) {
		GFileInfo *info = NULL;
		GFile *child = NULL;
		if (!g_file_enumerator_iterate(en, &info, &child, NULL, error))
			return -1;
		if (info == NULL)
			return 0;
		if (g_file_info_get_file_type(info) != G_FILE_TYPE_DIRECTORY)
			continue;
		g_autoptr(GFile) kernel = g_file_get_child(child, "vmlinuz");
		g_autoptr(GFileInfo) kinfo = g_file_query_info(kernel, "standard::size,standard::type",
			G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, NULL);
		if (kinfo == NULL || g_file_info_get_file_type(kinfo) != G_FILE_TYPE_REGULAR)
			continue;
		*ksize = g_file_info_get_size(kinfo);
		*kcsum = strdup(ostree_repo_file_get_checksum((OstreeRepoFile *)kernel));
		g_autoptr(GFile) initrd = g_file_get_child(child, "initramfs.img");
		g_autoptr(GFileInfo) iinfo = g_file_query_info(initrd, "standard::size,standard::type",
			G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, NULL);
		if (iinfo != NULL && g_file_info_get_file_type(iinfo) == G_FILE_TYPE_REGULAR) {
			*isize = g_file_info_get_size(iinfo);
			*icsum = strdup(ostree_repo_file_get_checksum((OstreeRepoFile *)initrd));
		} else {
			*isize = 0;
			*icsum = strdup("");
		}
		return 1;
	}
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/errdefs"
)

// bootFiles are the kernel and initramfs a commit deploys: their sizes and
// content object checksums (equal checksums, equal boot checksum).
type bootFiles struct {
	KernelSize, InitramfsSize uint64
	Kernel, Initramfs         string
}

// readBootFiles reads the boot files of commit from the sysroot's repo
// without checking it out; ok is false when the commit has no kernel
// under usr/lib/modules (libostree then looks elsewhere; nothing is
// checked in advance).
func (e *Engine) readBootFiles(commit string) (bootFiles, bool, error) {
	cpath := C.CString(e.sr.RepoPath())
	defer C.free(unsafe.Pointer(cpath))
	crev := C.CString(commit)
	defer C.free(unsafe.Pointer(crev))
	var ks, is C.guint64
	var kc, ic *C.char
	var gerr *C.GError
	r := C.hc_boot_files(cpath, crev, &ks, &is, &kc, &ic, &gerr)
	if r < 0 {
		msg := "unknown error"
		if gerr != nil {
			msg = C.GoString(gerr.message)
			C.g_error_free(gerr)
		}
		return bootFiles{}, false, fmt.Errorf("read the kernel of commit %s: %s", commit, msg)
	}
	if r == 0 {
		return bootFiles{}, false, nil
	}
	defer C.free(unsafe.Pointer(kc))
	defer C.free(unsafe.Pointer(ic))
	return bootFiles{KernelSize: uint64(ks), InitramfsSize: uint64(is), Kernel: C.GoString(kc), Initramfs: C.GoString(ic)}, true, nil
}

// bootSlack is room for what libostree writes into /boot beside the kernel
// and initramfs: the BLS entries of the new loader.N and bootloader config.
const bootSlack = 64 << 10

// checkBootSpace refuses to deploy commit when /boot cannot take its
// kernel and initramfs: libostree would fail at the bootloader swap, after
// the deployment was written, with a bare ENOSPC. Nothing is needed when
// a deployment with the same kernel and initramfs has its boot directory
// in /boot/ostree already, or when /boot is on the sysroot's filesystem
// (libostree hardlinks the files then).
func (e *Engine) checkBootSpace(ctx context.Context, commit string) error {
	boot := filepath.Join(e.sr.Path(), "boot")
	var bst, rst unix.Stat_t
	if err := unix.Stat(boot, &bst); err != nil {
		return fmt.Errorf("check free space of %s: %w", boot, err)
	}
	if err := unix.Stat(e.sr.RepoPath(), &rst); err != nil {
		return fmt.Errorf("check free space of %s: %w", boot, err)
	}
	if bst.Dev == rst.Dev {
		return nil
	}
	want, ok, err := e.readBootFiles(commit)
	if err != nil || !ok {
		return err
	}
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return err
	}
	for _, d := range deps {
		have, ok, err := e.readBootFiles(d.Checksum)
		if err != nil || !ok || have.Kernel != want.Kernel || have.Initramfs != want.Initramfs {
			continue
		}
		if _, err := os.Stat(filepath.Join(boot, "ostree", d.OSName+"-"+d.BootChecksum)); err == nil {
			return nil // same boot checksum: libostree reuses the directory
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("check %s: %w", boot, err)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(boot, &st); err != nil {
		return fmt.Errorf("check free space of %s: %w", boot, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	need := want.KernelSize + want.InitramfsSize + bootSlack
	if need > free {
		return errdefs.Errorf(errdefs.ErrNoSpace, "not enough space in /boot (%s) for the kernel and initramfs of %s: no space left on device: needs %s in /boot, %s free; "+
			"remove the rollback deployment (hostctl cleanup --rollback) or free space in /boot, then try again",
			boot, commit[:min(12, len(commit))], mib(need), mib(free))
	}
	return nil
}

// mib formats a byte count in MiB.
func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
