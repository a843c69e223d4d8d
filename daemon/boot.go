package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hostctl/hostctl/bootloader"
	"github.com/hostctl/hostctl/deploy"
)

// verifyBoot checks the boot entries after a write of the deployment list:
// every entry's kernel and initramfs exist, /boot/loader points at the
// loader.N libostree wrote last, and the default entry boots want. (When the
// kernel and arguments are unchanged libostree only swaps the boot.N.M links
// and /boot/loader stays where it was: that is right, and what counts is
// where the default entry leads.)
func (e *Engine) verifyBoot(ctx context.Context, want deploy.Deployment) error {
	sysroot := e.sr.Path()
	boot := filepath.Join(sysroot, "boot")
	if err := bootloader.Verify(boot); err != nil {
		return err
	}
	bv, err := e.sr.BootVersion(ctx)
	if err != nil {
		return err
	}
	target, _ := os.Readlink(filepath.Join(boot, "loader"))
	if wantTarget := fmt.Sprintf("loader.%d", bv); target != wantTarget {
		return fmt.Errorf("/boot/loader points at %q, but libostree wrote %s", target, wantTarget)
	}
	ld, err := bootloader.Read(boot)
	if err != nil {
		return err
	}
	def, ok := ld.Default()
	if !ok {
		return fmt.Errorf("no boot entry in %s", ld.BootDir)
	}
	ref, err := def.Deployment(sysroot)
	if err != nil {
		return err
	}
	if ref.OSName != want.OSName || ref.Checksum != want.Checksum || ref.Serial != want.Serial {
		return fmt.Errorf("the default boot entry %s boots %s, not %s", def.Name, ref, want.ID())
	}
	return nil
}

// verifyStaged is verifyBoot for a deployment just written: a staged one is
// not in the boot entries until it is finalized, so only the entries as they
// are (still those of before) are checked.
func (e *Engine) verifyStaged(ctx context.Context, d deploy.Deployment) error {
	if d.Staged {
		return bootloader.Verify(filepath.Join(e.sr.Path(), "boot"))
	}
	return e.verifyBoot(ctx, d)
}
