// Command ctrbench runs hostctl's system-container benchmarks and prints the
// figures as Markdown tables. Every figure is measured against a peer in the
// same run and quoted with its ratio, so the machine's speed cancels out:
//
//   - pull: `hostctl image pull` of a multi-layer image from a real
//     docker-registry on 127.0.0.1 through hostd (fetch, unpack, commit of
//     every layer into the sysroot's OSTree repo), each run on a fresh
//     sysroot, against `skopeo copy docker://... oci:DIR` of the same image
//     into a fresh directory (fetch and store the blobs as they are), and
//     against skopeo followed by `tar -xzf` and `ostree commit --tree=dir=` of
//     each layer into a fresh repo (the same import done with the CLIs; the
//     2022.7 CLI's --tree=tar= commits nothing); then a warm pull
//     (every layer present), with the bytes the registry sent;
//
//   - install: `hostctl container install` of another container from an
//     image already pulled and installed once, with the time and the bytes it
//     wrote (new inodes under the sysroot, hostd's write_bytes), against the
//     non-deduplicated ways to make a rootfs: `tar -xzf` of each layer blob of
//     the same image from an oci: layout into a new directory, and `cp -a` of
//     the first container's rootfs.
//
//   - bigpull: a cold pull of a big image (6 layers, about 105 MB of blobs,
//     6,100 files) through hostd against `podman pull` into a fresh --root
//     (overlay, or vfs where overlay cannot run) and against skopeo copy +
//     tar -xzf + ostree commit of every layer, in the same run.
//
// It needs root, ostree, dbus-daemon, runc, skopeo, docker-registry, tar,
// podman and busybox-static, and the binaries of `make build`. Run it from the top of
// the repository:
//
//	go run -tags "containers_image_openpgp containers_image_storage_stub containers_image_docker_daemon_stub" ./bench/cmd/ctrbench
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// config is what the flags set.
type config struct {
	bin          string
	work         string
	policies     []string
	only         map[string]bool
	revision     string
	pullRuns     int
	warmRuns     int
	installRuns  int
	smallFiles   int
	randomMiB    int
	withOstreeCI bool
	bigRuns      int
	bigFiles     int
	bigRandomMiB int
}

func main() {
	var cfg config
	var only, policies string
	flag.StringVar(&cfg.bin, "bin", "bin", "directory holding hostd and hostctl (make build)")
	flag.StringVar(&cfg.work, "work", "", "work directory (default: a new one under $TMPDIR, removed at the end)")
	flag.StringVar(&policies, "policies", "packaging/org.hostctl.Host1.conf", "D-Bus policy files the sandbox bus loads")
	flag.StringVar(&only, "only", "pull,install,bigpull", "benchmarks to run")
	flag.StringVar(&cfg.revision, "revision", "", "revision of hostctl measured, for the report (default: git describe)")
	flag.IntVar(&cfg.pullRuns, "pull-runs", 7, "cold pulls per tool, each into a fresh sysroot / oci directory / repo")
	flag.IntVar(&cfg.warmRuns, "warm-runs", 3, "warm pulls per tool (every layer present)")
	flag.IntVar(&cfg.installRuns, "install-runs", 7, "installs of another container per tool")
	flag.IntVar(&cfg.smallFiles, "small-files", 600, "small files spread over the image's middle layers")
	flag.IntVar(&cfg.randomMiB, "random-mib", 2, "MiB of incompressible data in the image's data layer")
	flag.BoolVar(&cfg.withOstreeCI, "ostree-peer", true, "also time skopeo copy + tar -xzf and ostree commit --tree=dir= per layer as a pull peer")
	flag.IntVar(&cfg.bigRuns, "big-runs", 3, "cold pulls of the big image per tool (hostd, podman, skopeo + tar + ostree commit)")
	flag.IntVar(&cfg.bigFiles, "big-files", 6000, "small files in the big image")
	flag.IntVar(&cfg.bigRandomMiB, "big-random-mib", 96, "MiB of incompressible data in the big image")
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
	if cfg.pullRuns < 1 || cfg.warmRuns < 1 || cfg.installRuns < 1 || cfg.bigRuns < 1 || cfg.smallFiles < 0 || cfg.randomMiB < 0 || cfg.bigFiles < 3 || cfg.bigRandomMiB < 2 {
		fatalf("-pull-runs, -warm-runs, -install-runs and -big-runs must be positive, -small-files and -random-mib not negative, -big-files at least 3, -big-random-mib at least 2")
	}
	var err error
	if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		fatalf("%v", err)
	}
	if cfg.revision == "" {
		if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
			cfg.revision = strings.TrimSpace(string(out))
		}
	}
	if err := run(context.Background(), cfg); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ctrbench: "+format+"\n", args...)
	os.Exit(1)
}

func run(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the test OS is installed with rpm --root and containers run with runc")
	}
	for _, p := range []string{filepath.Join(cfg.bin, "hostd"), filepath.Join(cfg.bin, "hostctl")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w: run `make build` first (or pass -bin)", err)
		}
	}
	for _, p := range cfg.policies {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("D-Bus policy: %w: run from the top of the repository, or pass -policies", err)
		}
	}
	for _, tool := range []string{"ostree", "dbus-daemon", "runc", "skopeo", "docker-registry", "tar", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing: run `make deps`", tool)
		}
	}
	start := time.Now()
	s, err := newSandbox(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.close()
	report.Progress("sandbox ready in %s: image %s (%d layers, %s compressed, %d entries), bus %s",
		time.Since(start).Round(time.Millisecond), s.image, len(s.img.layers), mib(s.img.compressed), s.img.entries, s.bus.Address)

	fmt.Printf("# hostctl system-container benchmarks\n\n%s\n", report.MachineLine())
	if cfg.revision != "" {
		fmt.Printf("Revision: %s.\n", cfg.revision)
	}
	fmt.Printf("\nImage: %s\n", s.img.describe())
	var pr *pullResult
	if cfg.only["pull"] || cfg.only["install"] {
		// The install benchmark starts from the state a cold pull leaves.
		runs := cfg.pullRuns
		if !cfg.only["pull"] {
			runs = 1
		}
		if pr, err = benchPull(ctx, s, cfg, runs); err != nil {
			return fmt.Errorf("pull benchmark: %w", err)
		}
		if cfg.only["pull"] {
			pr.print(os.Stdout)
		}
	}
	if cfg.only["install"] {
		ir, err := benchInstall(ctx, s, cfg, pr)
		if err != nil {
			return fmt.Errorf("install benchmark: %w", err)
		}
		ir.print(os.Stdout)
	}
	if cfg.only["bigpull"] {
		br, err := benchBigPull(ctx, s, cfg)
		if err != nil {
			return fmt.Errorf("big-image pull benchmark: %w", err)
		}
		br.print(os.Stdout)
	}
	report.Progress("done in %s", time.Since(start).Round(time.Second))
	return nil
}
