package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/internal/testutil"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// mountTmpfs mounts a tmpfs of size bytes on dir (made empty first) and
// unmounts it at the end of the test; it skips the test when mounting is
// not allowed here.
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		harness.Skip(t, "cannot mount a size-limited tmpfs here (%v): the full-disk tests need one", err)
	}
	t.Cleanup(func() {
		for _, d := range []string{filepath.Join(dir, "boot")} {
			unix.Unmount(d, unix.MNT_DETACH)
		}
		unix.Unmount(dir, unix.MNT_DETACH)
	})
}

// moveOnto copies the tree at src onto the (mounted, empty) directory dst.
func moveOnto(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src+"/.", dst+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy %s onto %s: %v\n%s", src, dst, err, out)
	}
}

// filler takes all but leave bytes of the filesystem of dir, in a file it
// returns; removing the file frees the space again.
func filler(t *testing.T, dir string, leave uint64) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if free <= leave {
		t.Fatalf("%s has only %d bytes free, want more than %d", dir, free, leave)
	}
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n := free - leave; n > 0; {
		k := min(n, uint64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			break // the filesystem is as full as it gets
		}
		n -= k
	}
	return p
}

func freeBytes(t *testing.T, dir string) uint64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// hostState is what a failed transaction must leave as it was: the
// deployments `ostree admin status` lists, the boot entries, the default
// deployment's origin file.
func (e *env) hostState() string {
	e.t.Helper()
	e.waitIdle()
	ids, err := adminStatus(e.sysroot)
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "deployments %v\n", ids)
	ents, _ := filepath.Glob(filepath.Join(e.sysroot, "boot", "loader", "entries", "*.conf"))
	for _, en := range ents {
		data, _ := os.ReadFile(en)
		fmt.Fprintf(&b, "%s:\n%s\n", filepath.Base(en), data)
	}
	if len(ids) > 0 {
		csum, serial, _ := strings.Cut(ids[0], ".")
		data, _ := os.ReadFile(filepath.Join(e.sysroot, "ostree", "deploy", fixture.OSName, "deploy", csum+"."+serial+".origin"))
		fmt.Fprintf(&b, "origin:\n%s", data)
	}
	return b.String()
}

// expectNoSpace runs hostctl args, wants it to fail naming what ran out,
// and the host unchanged.
func (e *env) expectNoSpace(what string, want []string, args ...string) {
	e.t.Helper()
	before := e.hostState()
	r := e.hostctl(args...)
	out := r.Stdout + r.Stderr
	if r.Code == 0 {
		e.t.Fatalf("%s on a full disk succeeded:\n%s", what, out)
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(out), strings.ToLower(w)) {
			e.t.Errorf("%s on a full disk: the client's error does not say %q:\n%s", what, w, out)
		}
	}
	if after := e.hostState(); after != before {
		e.t.Errorf("%s on a full disk changed the host:\nbefore:\n%s\nafter:\n%s", what, before, after)
	}
	e.waitIdle()
	if err := checkBoot(e.sysroot); len(err) > 0 {
		e.t.Errorf("%s on a full disk: %v", what, err)
	}
	rec := e.lastHistory()
	if rec.State != "failed" || !strings.Contains(strings.ToLower(rec.Error), "no space left on device") {
		e.t.Errorf("%s on a full disk: the history's newest entry is %s %s (%s), want it failed for want of space", what, rec.Kind, rec.State, rec.Error)
	}
	e.t.Logf("%s on a full disk: %s at step %v: %s", what, rec.State, rec.Steps[len(rec.Steps)-1:], lastLines(r.Stderr, 1))
}

// TestDiskFull fills the sysroot's filesystem during a pull, a layered
// commit and a container image import, and /boot before a new kernel is
// written: each time the client says what ran out, nothing changed, and
// once space is freed the same transaction succeeds.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short")
	}
	ctr := true
	for _, bin := range []string{"runc", "skopeo", "docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Logf("%s is not installed (%v): the image import case is left out", bin, err)
			ctr = false
		}
	}
	var e *env
	var c *ctrEnv
	if ctr {
		c = newCtrEnv(t)
		e = c.env
	} else {
		e = newEnv(t)
	}
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	img := ""
	if ctr {
		var err error
		img, err = c.reg.Push(e.ctx, c.layout("1", fixture.HelloExports(fixture.HelloConfigTemplate(true)),
			[]fixture.TarEntry{{Name: "usr/share/big", Body: strings.Repeat("x", 512<<10)}}), "1", "hello")
		if err != nil {
			t.Fatal(err)
		}
	}
	// The sysroot moves onto a 48 MiB tmpfs.
	e.hostd.Stop()
	e.hostd = nil
	small := testutil.TempSysrootDir(t)
	mountTmpfs(t, small, 48<<20)
	moveOnto(t, e.sysroot, small)
	e.sysroot = small
	e.startHostd()

	// A pull that fills the disk.
	e.publish("2")
	fill := filler(t, small, 16<<10)
	e.expectNoSpace("upgrade (pull)", []string{"no space left on device", "pull"}, "upgrade")
	os.Remove(fill)
	free := freeBytes(t, small)
	e.mustHostctl("upgrade")
	t.Logf("upgrade with space: %d KiB used", (free-freeBytes(t, small))>>10)
	if got := versions(e.status()); !slices.Equal(got, []string{"2", "1"}) {
		t.Fatalf("upgrade after space was freed: %v", got)
	}

	// A layered commit that fills the disk: the metadata and the packages
	// are in the cache already (a first pkg-add, removed again), so what
	// runs out of room is the assembly of the tree and its commit.
	e.mustHostctl("cleanup", "--rollback")
	e.mustHostctl("pkg-add", "hello-layer")
	e.mustHostctl("pkg-remove", "hello-layer")
	e.mustHostctl("cleanup", "--rollback")
	// (300 KiB: room for the copy of the base's rpmdb the resolve reads,
	// not for the new tree's rpmdb and the commit.)
	fill = filler(t, small, 300<<10)
	e.expectNoSpace("pkg-add", []string{"no space left on device", "Error.NoSpace"}, "pkg-add", "hello-layer")
	os.Remove(fill)
	free = freeBytes(t, small)
	e.mustHostctl("pkg-add", "hello-layer")
	t.Logf("pkg-add with space: %d KiB used", (free-freeBytes(t, small))>>10)
	if st := e.status(); !slices.Equal(st.Deployments[0].Packages, []string{"hello-layer"}) {
		t.Fatalf("pkg-add after space was freed: %+v", st.Deployments[0])
	}

	// A container image import that fills the disk.
	if ctr {
		fill = filler(t, small, 128<<10)
		e.expectNoSpace("image pull", []string{"no space left on device", "Error.NoSpace"}, "image", "pull", img)
		os.Remove(fill)
		e.mustHostctl("image", "pull", img)
		if out := e.mustHostctl("image", "list"); !strings.Contains(out, img) {
			t.Fatalf("image list after space was freed:\n%s", out)
		}
	}

	// /boot on its own small filesystem, full: a new kernel is refused
	// before anything is written, with the numbers; the same kernel needs
	// no room.
	e.mustHostctl("pkg-remove", "hello-layer")
	e.mustHostctl("cleanup", "--rollback")
	e.mustHostctl("deploy", "version=1")
	e.mustHostctl("cleanup", "--rollback")
	if got := versions(e.status()); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("back at version 1: %v", got)
	}
	e.hostd.Stop()
	e.hostd = nil
	boot := filepath.Join(small, "boot")
	saved := filepath.Join(t.TempDir(), "boot")
	if out, err := exec.Command("cp", "-a", boot, saved).CombinedOutput(); err != nil {
		t.Fatalf("save /boot: %v\n%s", err, out)
	}
	if err := unix.Mount("tmpfs", boot, "tmpfs", 0, "size=1m,mode=0755"); err != nil {
		harness.Skip(t, "cannot mount a tmpfs on /boot: %v", err)
	}
	moveOnto(t, saved, boot)
	e.startHostd()
	fill = filler(t, boot, 32<<10)
	e.expectNoSpace("upgrade (new kernel, /boot full)", []string{"no space left on device", "in /boot", "MiB free", "Error.NoSpace"}, "upgrade")
	os.Remove(fill)
	e.mustHostctl("upgrade")
	if got := versions(e.status()); !slices.Equal(got, []string{"2", "1"}) {
		t.Fatalf("upgrade after /boot was freed: %v", got)
	}
	// Version 3 has version 2's kernel: its boot directory is there already.
	e.mustHostctl("cleanup", "--rollback")
	e.publish("3")
	fill = filler(t, boot, 32<<10)
	e.mustHostctl("upgrade")
	os.Remove(fill)
	if got := versions(e.status()); !slices.Equal(got, []string{"3", "2"}) {
		t.Fatalf("upgrade to 3 with /boot full: %v", got)
	}
	e.waitIdle()
	if err := checkBoot(small); len(err) > 0 {
		t.Fatalf("after the /boot cases: %v", err)
	}
	t.Logf("free after: sysroot %d KiB, /boot %d KiB", freeBytes(t, small)>>10, freeBytes(t, boot)>>10)
}
