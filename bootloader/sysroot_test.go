package bootloader

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ostreeCmd runs the ostree CLI and returns its stdout.
func ostreeCmd(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("ostree", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// testSysroot is a real sysroot made by the ostree CLI.
type testSysroot struct {
	t    *testing.T
	dir  string // the sysroot
	tree string // the tree committed next
}

func newTestSysroot(t *testing.T) *testSysroot {
	t.Helper()
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Skip("ostree CLI not installed (Debian package ostree)")
	}
	base := t.TempDir()
	s := &testSysroot{t: t, dir: filepath.Join(base, "sysroot"), tree: filepath.Join(base, "tree")}
	// Runs before TempDir's cleanup: libostree makes deployment roots
	// immutable, which RemoveAll cannot undo.
	t.Cleanup(func() { clearImmutable(t, s.dir) })
	// What `ostree admin deploy` needs of a tree: a kernel and initramfs
	// in usr/lib/modules/VERSION/ and an os-release with PRETTY_NAME or ID
	// (usr/lib/os-release or, as here, usr/etc/os-release, which becomes
	// /etc/os-release). It needs no /usr/bin or anything else.
	s.write("usr/lib/modules/5.0.0/vmlinuz", "kernel 1\n")
	s.write("usr/lib/modules/5.0.0/initramfs.img", "initramfs 1\n")
	s.write("usr/etc/os-release", "ID=testos\nPRETTY_NAME=\"Test OS\"\n")
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ostreeCmd(t, "admin", "init-fs", s.dir)
	ostreeCmd(t, "admin", "os-init", "--sysroot", s.dir, "testos")
	return s
}

// fsImmutableFl is FS_IMMUTABLE_FL of linux/fs.h (chattr +i).
const fsImmutableFl = 0x10

// clearImmutable removes the immutable flag libostree sets on deployment
// directories so the test can delete them.
func clearImmutable(t *testing.T, sysroot string) {
	dirs, _ := filepath.Glob(filepath.Join(sysroot, "ostree/deploy/*/deploy/*"))
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
		if err == nil && flags&fsImmutableFl != 0 {
			if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFl)); err != nil {
				t.Logf("clear immutable flag of %s: %v", d, err)
			}
		}
		f.Close()
	}
}

func (s *testSysroot) write(rel, data string) {
	s.t.Helper()
	p := filepath.Join(s.tree, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *testSysroot) boot() string { return filepath.Join(s.dir, "boot") }

// commitAndDeploy commits the tree as testos/x with the given version and
// deploys it as the new default.
func (s *testSysroot) commitAndDeploy(version string, deployArgs ...string) string {
	s.t.Helper()
	csum := strings.TrimSpace(ostreeCmd(s.t, "--repo="+filepath.Join(s.dir, "ostree/repo"), "commit",
		"-b", "testos/x", "--tree=dir="+s.tree, "-s", "version "+version,
		"--add-metadata-string=version="+version))
	args := append([]string{"admin", "deploy", "--sysroot", s.dir, "--os", "testos"}, deployArgs...)
	ostreeCmd(s.t, append(args, "testos/x")...)
	return csum
}

var statusLine = regexp.MustCompile(`(?m)^[* ]\s*(\S+) ([0-9a-f]{64})\.([0-9]+)`)

// status returns the deployments `ostree admin status` lists, in order.
func (s *testSysroot) status() []DeploymentRef {
	s.t.Helper()
	out := ostreeCmd(s.t, "admin", "status", "--sysroot", s.dir)
	var refs []DeploymentRef
	for _, m := range statusLine.FindAllStringSubmatch(out, -1) {
		serial, _ := strconv.Atoi(m[3])
		refs = append(refs, DeploymentRef{OSName: m[1], Checksum: m[2], Serial: serial})
	}
	if len(refs) == 0 {
		s.t.Fatalf("no deployments in ostree admin status:\n%s", out)
	}
	return refs
}

// checkAgainstOstree asserts that Read's order is ostree's deployment order
// and that every entry marshals to the bytes libostree wrote.
func (s *testSysroot) checkAgainstOstree(wantVersion int) *Loader {
	t := s.t
	t.Helper()
	if err := Verify(s.boot()); err != nil {
		t.Fatalf("Verify of a sysroot ostree just wrote: %v", err)
	}
	l, err := Read(s.boot())
	if err != nil {
		t.Fatal(err)
	}
	status := s.status()
	if !l.Linked || l.Version != wantVersion {
		t.Errorf("loader version %d (linked %v), want %d", l.Version, l.Linked, wantVersion)
	}
	if len(l.Entries) != len(status) {
		t.Fatalf("%d entries, ostree admin status lists %d deployments", len(l.Entries), len(status))
	}
	for i, e := range l.Entries {
		d, err := e.Deployment(s.dir)
		if err != nil {
			t.Fatal(err)
		}
		if d != status[i] {
			t.Errorf("entry %d (%s) boots %+v; ostree admin status has %+v there", i, e.Name, d, status[i])
		}
		// libostree: version N-index, file ostree-VERSION-OSNAME.conf
		// (2022.7; ostree-VERSION.conf since 2024.5), title "... (ostree:INDEX)".
		if want := strconv.Itoa(len(l.Entries) - i); e.Version != want {
			t.Errorf("entry %s has version %q, want %s", e.Name, e.Version, want)
		}
		if !strings.HasPrefix(e.Name, "ostree-"+e.Version+"") || !strings.HasSuffix(e.Title, "(ostree:"+strconv.Itoa(i)+")") {
			t.Errorf("entry %s title %q does not match its position %d", e.Name, e.Title, i)
		}
		bl, err := e.BootLink()
		if err != nil || bl.BootVersion != l.Version || bl.OSName != "testos" {
			t.Errorf("entry %s boot link %+v, %v", e.Name, bl, err)
		}
		raw, err := os.ReadFile(filepath.Join(s.boot(), "loader", "entries", e.Name))
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Marshal()) != string(raw) {
			t.Errorf("Marshal of %s differs from libostree's file:\n%s\nlibostree:\n%s", e.Name, e.Marshal(), raw)
		}
	}
	def, ok := l.Default()
	if d, _ := def.Deployment(s.dir); !ok || d != status[0] {
		t.Errorf("Default %s boots %+v, ostree's default is %+v", def.Name, d, status[0])
	}
	if len(status) > 1 {
		rb, ok := l.Rollback()
		if d, _ := rb.Deployment(s.dir); !ok || d != status[1] {
			t.Errorf("Rollback %s boots %+v, ostree's rollback is %+v", rb.Name, d, status[1])
		}
	}
	return l
}

func TestRealSysroot(t *testing.T) {
	s := newTestSysroot(t)

	// First deployment: libostree swaps to loader.1.
	first := s.commitAndDeploy("1.0")
	l := s.checkAgainstOstree(1)
	if d, _ := l.Default(); !strings.Contains(d.Title, "Test OS 1.0") {
		t.Errorf("default title %q", d.Title)
	}
	if _, ok := l.Rollback(); ok {
		t.Error("rollback entry with a single deployment")
	}
	if k := Detect(s.dir); k != None {
		t.Errorf("Detect = %v on a sysroot without bootloader files", k)
	}

	// Second deployment, with a new kernel and a quoted karg: loader.0.
	s.write("usr/lib/modules/5.0.0/vmlinuz", "kernel 2\n")
	second := s.commitAndDeploy("2.0", `--karg-append=foo="a b"`, "--karg-append=console=ttyS0")
	l = s.checkAgainstOstree(0)
	def, _ := l.Default()
	rb, _ := l.Rollback()
	if d, _ := def.Deployment(s.dir); d.Checksum != second {
		t.Errorf("default boots %s, want the second commit %s", d.Checksum, second)
	}
	if d, _ := rb.Deployment(s.dir); d.Checksum != first {
		t.Errorf("rollback boots %s, want the first commit %s", d.Checksum, first)
	}
	if got := def.Kargs().Get("foo"); len(got) != 1 || got[0] != "a b" {
		t.Errorf("default foo = %q (options %q)", got, def.Options)
	}
	if def.Linux == rb.Linux || len(def.Initrd) != 1 {
		t.Errorf("new kernel not in its own boot dir: %s %s %v", def.Linux, rb.Linux, def.Initrd)
	}
	if _, err := os.Stat(filepath.Join(s.boot(), "loader.1")); err == nil {
		t.Error("libostree left loader.1 behind")
	}

	// Editing the kargs the way `rpm-ostree kargs` does and handing them to
	// ostree gives the same line back.
	k := def.Kargs()
	if err := k.Apply(KargsEdit{Delete: []string{"console"}, Replace: []string{`foo="c d"`}, Append: []string{"quiet"}}); err != nil {
		t.Fatal(err)
	}
	s.write("usr/lib/modules/5.0.0/vmlinuz", "kernel 3\n")
	ostreeCmd(t, "--repo="+filepath.Join(s.dir, "ostree/repo"), "config", "set", "sysroot.bootprefix", "true")
	s.commitAndDeploy("3.0", "--karg-none", "--karg-append="+k.String())
	l = s.checkAgainstOstree(1)
	def, _ = l.Default()
	rb, _ = l.Rollback()
	// libostree rewrites ostree= in place for the new deployment.
	if err := k.Replace("ostree=" + def.OstreeArg()); err != nil {
		t.Fatal(err)
	}
	if def.Options != k.String() {
		t.Errorf("deployed options %q, want our kargs %q", def.Options, k.String())
	}
	if !strings.HasPrefix(def.Linux, "/boot/ostree/") {
		// sysroot.bootprefix is new in libostree 2023.x; older ones ignore it.
		t.Logf("this libostree ignores sysroot.bootprefix: kernel path %q", def.Linux)
	}
	// A separate /boot partition has no boot/boot -> . link: Verify still
	// finds /boot/ostree/... under the boot dir.
	if err := os.Remove(filepath.Join(s.boot(), "boot")); err != nil {
		t.Fatal(err)
	}
	if err := Verify(s.boot()); err != nil {
		t.Errorf("Verify without boot/boot: %v", err)
	}

	t.Run("missing kernel", func(t *testing.T) {
		kernel := filepath.Join(s.boot(), strings.TrimPrefix(def.Linux, "/boot"))
		if err := os.Rename(kernel, kernel+".moved"); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(kernel+".moved", kernel)
		err := Verify(s.boot())
		if err == nil {
			t.Fatal("Verify passed with the default kernel gone")
		}
		for _, want := range []string{"entry " + def.Name, "linux " + def.Linux, "missing"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	})
	t.Run("missing initrd", func(t *testing.T) {
		initrd := filepath.Join(s.boot(), strings.TrimPrefix(rb.Initrd[0], "/boot"))
		if err := os.Rename(initrd, initrd+".moved"); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(initrd+".moved", initrd)
		err := Verify(s.boot())
		if err == nil || !strings.Contains(err.Error(), "initrd "+rb.Initrd[0]) {
			t.Fatalf("Verify error %v does not name the initrd", err)
		}
	})
	t.Run("symlink to missing loader dir", func(t *testing.T) {
		link := filepath.Join(s.boot(), "loader")
		if err := os.Remove(link); err != nil {
			t.Fatal(err)
		}
		defer func() {
			os.Remove(link)
			os.Symlink("loader.1", link)
		}()
		if err := os.Symlink("loader.0", link); err != nil {
			t.Fatal(err)
		}
		err := Verify(s.boot())
		if err == nil || !strings.Contains(err.Error(), "points at loader.0, which is missing") {
			t.Fatalf("Verify error: %v", err)
		}
	})
	t.Run("stale loader dir", func(t *testing.T) {
		// An old loader.0 with entries for boot version 0 made current by hand.
		old := filepath.Join(s.boot(), "loader.0")
		if err := os.MkdirAll(filepath.Join(old, "entries"), 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(old)
		if err := os.WriteFile(filepath.Join(old, "entries", def.Name), def.Marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(s.boot(), "loader")
		os.Remove(link)
		defer func() {
			os.Remove(link)
			os.Symlink("loader.1", link)
		}()
		os.Symlink("loader.0", link)
		err := Verify(s.boot())
		if err == nil || !strings.Contains(err.Error(), "boot version 1 but the entry is in loader.0") {
			t.Fatalf("Verify error: %v", err)
		}
	})
	// Everything restored: ostree and Verify agree again.
	s.checkAgainstOstree(1)

	// With ten and more deployments versions compare as numbers (strverscmp),
	// not as strings: version "11" is the default, before "10" and "9".
	version := 1
	for i := 4; i <= 12; i++ { // 2 deployments are left after the third deploy
		s.commitAndDeploy(strconv.Itoa(i)+".0", "--retain")
		version = 1 - version
	}
	l = s.checkAgainstOstree(version)
	if len(l.Entries) != 11 || l.Entries[0].Version != "11" || l.Entries[2].Version != "9" {
		t.Errorf("entries %d, first version %q", len(l.Entries), l.Entries[0].Version)
	}
	if d, _ := l.Default(); !strings.Contains(d.Title, "12.0") {
		t.Errorf("default %s is not the last deployment: %q", d.Name, d.Title)
	}
}
