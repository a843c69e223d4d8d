package layering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hostctl/hostctl/internal/proc"
	"golang.org/x/sys/unix"
)

// ScriptJob is one script to run in the sandbox: a package's %post or
// %posttrans.
type ScriptJob struct {
	Package string
	Script
	// Arg is $1: the number of instances of the package after the
	// transaction (1), as rpm passes it.
	Arg string
}

// scriptTimeout bounds one script.
const scriptTimeout = 5 * time.Minute

// runScripts runs scripts in order against tree. The tree is a hardlink
// checkout whose files are the repository's objects, so it is never written
// in place: rofiles-fuse --copyup shows it at a mountpoint where writing a
// file copies it first, and bubblewrap runs each script with that mountpoint
// as /, /etc bound to usr/etc, fresh /tmp, /var and /run, private /proc and
// /dev, and no network or other namespace of the host (--unshare-all).
func runScripts(ctx context.Context, scratch, tree string, scripts []ScriptJob) error {
	if len(scripts) == 0 {
		return nil
	}
	for _, tool := range []string{"bwrap", "rofiles-fuse"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("run package scripts: %s is not installed (it ships with bubblewrap and ostree)", tool)
		}
	}
	mnt := filepath.Join(scratch, "rofiles")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return fmt.Errorf("run package scripts: %w", err)
	}
	if out, err := proc.Command(ctx, "rofiles-fuse", "--copyup", tree, mnt).CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			unmount(mnt)
			return fmt.Errorf("run package scripts: mount the tree: %w", err)
		}
		return fmt.Errorf("run package scripts: rofiles-fuse %s: %v: %s", tree, err, bytes.TrimSpace(out))
	}
	defer unmount(mnt)
	hadEtc := exists(filepath.Join(tree, "etc"))
	if err := runScriptsAt(ctx, scratch, mnt, scripts); err != nil {
		return err
	}
	if !hadEtc {
		// bwrap made /etc as a mountpoint for usr/etc; the tree keeps /etc in /usr/etc.
		os.Remove(filepath.Join(tree, "etc"))
	}
	return nil
}

// runScriptsAt runs scripts in order in the sandbox with root (a mountpoint
// whose writes never reach the repository's objects) as /.
func runScriptsAt(ctx context.Context, scratch, root string, scripts []ScriptJob) error {
	dir := filepath.Join(scratch, "scripts")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("run package scripts: %w", err)
	}
	booted := filepath.Join(dir, "ostree-booted")
	if err := os.WriteFile(booted, nil, 0o644); err != nil {
		return fmt.Errorf("run package scripts: %w", err)
	}
	for i, s := range scripts {
		file := filepath.Join(dir, fmt.Sprintf("%d-%s", i, strings.TrimPrefix(s.Type, "%")))
		if err := os.WriteFile(file, []byte(s.Body), 0o644); err != nil {
			return fmt.Errorf("run package scripts: %w", err)
		}
		if err := runScript(ctx, root, file, booted, s); err != nil {
			return err
		}
	}
	return nil
}

func runScript(ctx context.Context, root, file, booted string, s ScriptJob) error {
	ctx, cancel := context.WithTimeout(ctx, scriptTimeout)
	defer cancel()
	args := []string{
		"--unshare-all", "--die-with-parent", "--new-session",
		"--bind", root, "/",
		"--bind", filepath.Join(root, "usr/etc"), "/etc",
		"--proc", "/proc", "--dev", "/dev",
		"--perms", "1777", "--tmpfs", "/tmp",
		"--tmpfs", "/var", "--perms", "1777", "--dir", "/var/tmp",
		"--tmpfs", "/run",
		// Scripts that check for an image-based host (systemd's, dracut's,
		// rpm-ostree-aware ones) find the marker libostree's boot leaves.
		"--ro-bind", booted, "/run/ostree-booted",
		"--ro-bind", file, "/run/hostctl-script",
		"--chdir", "/",
		"--clearenv",
		"--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin",
		"--setenv", "LANG", "C.UTF-8",
		// No systemd runs in the sandbox: systemctl enable/preset and
		// friends work on the tree, as under rpm-ostree.
		"--setenv", "SYSTEMD_OFFLINE", "1",
		"--setenv", "RPM_PACKAGE_NAME", s.Package,
		"--",
	}
	interp := s.Interpreter
	if len(interp) == 0 {
		interp = []string{DefaultInterpreter}
	}
	args = append(args, interp...)
	if s.Body != "" {
		args = append(args, "/run/hostctl-script")
	}
	args = append(args, s.Arg)
	// bwrap runs in its own process group: a cancel sends it TERM, then
	// KILL; --die-with-parent and its PID namespace take the script and
	// everything it started down with it.
	cmd := proc.Command(ctx, "bwrap", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		switch {
		case errors.Is(err, context.Canceled):
			return fmt.Errorf("package %s: %s script cancelled: %w", s.Package, s.Type, err)
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("package %s: %s script did not finish within %v and was killed (it may wait for input, the network or a service, none of which the sandbox has): %w", s.Package, s.Type, scriptTimeout, err)
		}
		return fmt.Errorf("package %s: %s script failed: %v: %s", s.Package, s.Type, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// unmount detaches the rofiles-fuse mount, waiting for the daemon to let go.
func unmount(mnt string) {
	for i := 0; i < 50; i++ {
		err := unix.Unmount(mnt, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	unix.Unmount(mnt, unix.MNT_DETACH)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
