// Command layerbench runs hostctl's package layering benchmarks and prints
// the figures as Markdown tables. Every figure is measured against dnf in the
// same run and quoted with its ratio, so the machine's speed cancels out:
//
//   - pkgadd: `hostctl pkg-add` of one small package through a real hostd
//     onto a base of about 20,000 files (HostOS version 1 plus the
//     hostos-bulk package, tests/fixture.BuildBulkBase), with empty package
//     and metadata caches (cold) and with both filled (warm), against `dnf
//     --installroot DIR install -y` of the same package from the same
//     repository into a plain copy of the same base (cold: empty dnf cache;
//     warm: dnf's cache kept). hostd's time is split by the steps it
//     announces on the bus.
//   - resolve: loading and resolving against a generated repository the size
//     of Fedora's (70,000 packages by default): hostctl's path (rpm-md fetch,
//     then layering.Layerer.Resolve: libsolv on primary.xml, or on its .solv
//     cache when warm) against `dnf --installroot DIR install --assumeno PKG`
//     on the same metadata and request, without and with dnf's cache.
//
// It needs root, ostree, rpm, rpmbuild, createrepo_c, dnf, dbus-daemon, bwrap
// and rofiles-fuse, and the binaries of `make build`. bench/run.sh builds it
// and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// config is what the flags set.
type config struct {
	bin         string
	work        string
	policies    []string
	only        map[string]bool
	revision    string
	files       int
	coldRuns    int
	warmRuns    int
	packages    int
	resolveCold int
	resolveWarm int
	seed        uint64
	noPost      bool
}

func main() {
	var cfg config
	var only, policies string
	flag.StringVar(&cfg.bin, "bin", "bin", "directory holding hostd and hostctl (make build)")
	flag.StringVar(&cfg.work, "work", "", "work directory (default: a new one under $TMPDIR, removed at the end)")
	flag.StringVar(&policies, "policies", "packaging/org.hostctl.Host1.conf", "D-Bus policy files the sandbox bus loads")
	flag.StringVar(&only, "only", "pkgadd,resolve", "benchmarks to run")
	flag.StringVar(&cfg.revision, "revision", "", "revision of hostctl measured, for the report (bench/run.sh passes git describe)")
	flag.IntVar(&cfg.files, "files", 20000, "files of the bulk package added to the base for the pkg-add benchmark")
	flag.IntVar(&cfg.coldRuns, "cold-runs", 2, "pkg-add runs with empty caches, each on a fresh copy of the sysroot (and of dnf's root)")
	flag.IntVar(&cfg.warmRuns, "warm-runs", 3, "pkg-add runs with the caches filled")
	flag.IntVar(&cfg.packages, "packages", 70000, "packages in the generated repository of the resolve benchmark")
	flag.IntVar(&cfg.resolveCold, "resolve-cold-runs", 2, "resolve runs without caches, per tool")
	flag.IntVar(&cfg.resolveWarm, "resolve-warm-runs", 3, "resolve runs with caches, per tool")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the generated repository")
	flag.BoolVar(&cfg.noPost, "no-post", false, "pkg-add benchmark: the package has no %post (hostctl then builds the layered commit from the base commit, without a checkout)")
	flag.Parse()

	for _, p := range strings.Split(policies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.policies = append(cfg.policies, p)
		}
	}
	cfg.only = map[string]bool{}
	for _, f := range strings.Split(only, ",") {
		cfg.only[strings.TrimSpace(f)] = true
	}
	if cfg.files < 1 || cfg.coldRuns < 1 || cfg.warmRuns < 1 || cfg.packages < 100 || cfg.resolveCold < 1 || cfg.resolveWarm < 1 {
		fatalf("-files, -cold-runs, -warm-runs, -resolve-cold-runs and -resolve-warm-runs must be positive, -packages at least 100")
	}
	var err error
	if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		fatalf("%v", err)
	}
	if err := run(context.Background(), cfg); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "layerbench: "+format+"\n", args...)
	os.Exit(1)
}

func run(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the test OS is installed with rpm --root and sysroots need chattr")
	}
	for _, p := range []string{filepath.Join(cfg.bin, "hostd"), filepath.Join(cfg.bin, "hostctl")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w: run `make build`, or use bench/run.sh", err)
		}
	}
	for _, p := range cfg.policies {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("D-Bus policy: %w: run from the top of the repository, or pass -policies", err)
		}
	}
	work := cfg.work
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "hostctl-layerbench-"); err != nil {
			return err
		}
		defer removeAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	os.Chmod(work, 0o755)
	start := time.Now()

	fmt.Printf("# hostctl package layering benchmarks\n\n%s\n", report.MachineLine())
	if cfg.revision != "" {
		fmt.Printf("Revision: %s.\n", cfg.revision)
	}
	fmt.Printf("Peer: %s.\n", dnfVersion(ctx))
	if cfg.only["pkgadd"] {
		r, err := benchPkgAdd(ctx, cfg, filepath.Join(work, "pkgadd"))
		if err != nil {
			return fmt.Errorf("pkg-add benchmark: %w", err)
		}
		r.print(os.Stdout)
		removeAll(filepath.Join(work, "pkgadd"))
	}
	if cfg.only["resolve"] {
		r, err := benchResolve(ctx, cfg, filepath.Join(work, "resolve"))
		if err != nil {
			return fmt.Errorf("resolve benchmark: %w", err)
		}
		r.print(os.Stdout)
	}
	report.Progress("done in %s", time.Since(start).Round(time.Second))
	return nil
}
