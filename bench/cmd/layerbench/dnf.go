package main

import (
	"context"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/tests/fixture"
)

// dnfPeer runs Debian's dnf 4 on a plain tree, as the e2e peer check does:
// the repository through its own reposdir, the rpmdb where HostOS keeps it
// (Debian's rpm would use ~/.rpmdb), no signature checks, no plugins.
type dnfPeer struct {
	home, reposDir string
	weakDeps       bool
}

// newDnfPeer writes the .rpmmacros and the repo file dnf reads to dir.
func newDnfPeer(dir, repoID, baseURL string, weakDeps bool) (*dnfPeer, error) {
	d := &dnfPeer{home: filepath.Join(dir, "home"), reposDir: filepath.Join(dir, "repos.d"), weakDeps: weakDeps}
	for _, p := range []string{d.home, d.reposDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
	}
	macros := "%_dbpath " + fixture.RPMDBPath + "\n%_db_backend sqlite\n"
	if err := os.WriteFile(filepath.Join(d.home, ".rpmmacros"), []byte(macros), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(d.reposDir, repoID+".repo"), []byte(fixture.YumRepoFile(repoID, baseURL)), 0o644); err != nil {
		return nil, err
	}
	return d, nil
}

// run times one dnf process on root with cacheDir as its cache (keepcache
// on, so a warm run finds the package too) and returns its output. An exit
// status other than 0 is an error unless allowFail.
func (d *dnfPeer) run(ctx context.Context, root, cacheDir string, allowFail bool, args ...string) (time.Duration, string, error) {
	weak := "False"
	if d.weakDeps {
		weak = "True"
	}
	all := append([]string{"--installroot", root, "--setopt=reposdir=" + d.reposDir, "--setopt=cachedir=" + cacheDir,
		"--setopt=keepcache=True", "--setopt=install_weak_deps=" + weak, "--releasever=1", "--nogpgcheck",
		"--disableplugin=*"}, args...)
	cmd := exec.CommandContext(ctx, "dnf", all...)
	cmd.Env = append(os.Environ(), "HOME="+d.home, "LC_ALL=C.UTF-8", "COLUMNS=200")
	settle()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	if err != nil && !allowFail {
		return 0, "", fmt.Errorf("dnf %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return elapsed, string(out), nil
}

var dnfInstallCount = regexp.MustCompile(`(?m)^Install\s+(\d+)\s+Package`)

// dnfInstallSize reads the number of packages dnf would install from its
// transaction summary.
func dnfInstallSize(out string) (int, error) {
	m := dnfInstallCount.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no \"Install N Packages\" line in dnf's output:\n%s", out)
	}
	return strconv.Atoi(m[1])
}

// dnfVersion names the peer for the report.
func dnfVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "dnf", "--version").Output()
	if err != nil {
		return "dnf (version unknown)"
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return "dnf " + first
}

// copyTree copies a plain tree with cp -a (untimed preparation).
func copyTree(ctx context.Context, src, dst string) error {
	if out, err := exec.CommandContext(ctx, "cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %w\n%s", src, dst, err, out)
	}
	return nil
}

// settle flushes dirty pages before a timed run, so one run does not pay
// for writing back what the previous one (or the preparation) left.
func settle() { unix.Sync() }

// removeAll removes a tree, immutable deployment directories included.
func removeAll(p string) {
	if err := fixture.RemoveAll(p); err != nil {
		report.Progress("remove %s: %v", p, err)
	}
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func mib(n int64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }

func kib(n int64) string { return fmt.Sprintf("%.0f", float64(n)/(1<<10)) }
