package daemon

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hostctl/hostctl/bootloader"
)

// loaderTarget is where SYSROOT/boot/loader points now ("" if nowhere yet).
func loaderTarget(sysroot string) string {
	t, _ := os.Readlink(filepath.Join(sysroot, "boot", "loader"))
	return t
}

// verifyBoot checks the boot entries after a write: /boot/loader points at a
// loader.N that exists, every entry's kernel and initramfs exist, and when
// before is set, the link moved off it (the swap really happened).
func verifyBoot(sysroot, before string) error {
	if err := bootloader.Verify(filepath.Join(sysroot, "boot")); err != nil {
		return err
	}
	if before != "" {
		if after := loaderTarget(sysroot); after == before {
			return fmt.Errorf("/boot/loader still points at %s after the swap", before)
		}
	}
	return nil
}
