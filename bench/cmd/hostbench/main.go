// Command hostbench runs hostctl's benchmarks on a sandbox host and prints
// the figures as Markdown tables. Every figure is measured against a peer in
// the same run and quoted with its ratio, so the machine's speed cancels out:
//
//   - deploy: deploying an already pulled commit through hostd (D-Bus Deploy,
//     from the call to the Finished signal) against `ostree admin deploy` on
//     an identical sysroot, N pairs prepared up front, the two taking turns;
//   - status: the status round trip (Properties.GetAll on org.hostctl.Host1,
//     the call `hostctl status` makes) with 1 and with 50 concurrent clients,
//     against the same call on refhost (a minimal service serving the same
//     values) and against GetId on the bus daemon itself; plus `hostctl
//     status` as a whole process against `dbus-send` making the same call;
//   - memory: hostd's VmRSS/VmHWM at idle, after start and after 1000 status
//     calls, against refhost and the dbus-daemon in the same run.
//
// It needs root (the test OS is installed with rpm --root), ostree,
// dbus-daemon and dbus-send, and the binaries of `make build`. bench/run.sh
// builds it and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// config is what the flags set.
type config struct {
	bin         string
	refhost     string
	work        string
	deployRuns  int
	statusCalls int
	clients     []int
	rounds      int
	idleCalls   int
	procRuns    int
	only        map[string]bool
	policies    []string
	revision    string
}

func main() {
	var cfg config
	var clients, only, policies string
	flag.StringVar(&cfg.bin, "bin", "bin", "directory holding hostd and hostctl (make build)")
	flag.StringVar(&cfg.refhost, "refhost", "", "path of the refhost reference service (bench/cmd/refhost)")
	flag.StringVar(&cfg.work, "work", "", "work directory for the sandbox (default: a new one under $TMPDIR, removed at the end)")
	flag.IntVar(&cfg.deployRuns, "deploy-runs", 15, "deploy pairs (hostd and ostree admin deploy, each on its own fresh sysroot)")
	flag.IntVar(&cfg.statusCalls, "status-calls", 4000, "status calls per target and client count, split evenly between the clients")
	flag.StringVar(&clients, "clients", "1,50", "concurrent client counts for the status benchmark")
	flag.IntVar(&cfg.rounds, "rounds", 4, "rounds the status calls are split into, the targets taking turns each round")
	flag.IntVar(&cfg.idleCalls, "idle-calls", 1000, "status calls made before the second memory reading")
	flag.IntVar(&cfg.procRuns, "process-runs", 20, "runs of `hostctl status` and of `dbus-send` as whole processes")
	flag.StringVar(&cfg.revision, "revision", "", "revision of hostctl measured, for the report (bench/run.sh passes git describe)")
	flag.StringVar(&only, "only", "deploy,status,memory", "benchmarks to run")
	flag.StringVar(&policies, "policies", "packaging/org.hostctl.Host1.conf,bench/refhost.conf", "D-Bus policy files the sandbox bus loads (hostd's as installed, and refhost's)")
	flag.Parse()

	for _, f := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatalf("-clients %q: want a comma-separated list of positive numbers", clients)
		}
		cfg.clients = append(cfg.clients, n)
	}
	for _, p := range strings.Split(policies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.policies = append(cfg.policies, p)
		}
	}
	cfg.only = map[string]bool{}
	for _, f := range strings.Split(only, ",") {
		cfg.only[strings.TrimSpace(f)] = true
	}
	if cfg.deployRuns < 1 || cfg.statusCalls < 1 || cfg.rounds < 1 || cfg.idleCalls < 1 || cfg.procRuns < 1 {
		fatalf("-deploy-runs, -status-calls, -rounds, -idle-calls and -process-runs must be positive")
	}
	var err error
	if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		fatalf("%v", err)
	}
	if cfg.refhost == "" {
		cfg.refhost = filepath.Join(cfg.bin, "refhost")
	}
	if err := run(context.Background(), cfg); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hostbench: "+format+"\n", args...)
	os.Exit(1)
}

func run(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the test OS is installed with rpm --root and sysroots need chattr")
	}
	for _, p := range []string{filepath.Join(cfg.bin, "hostd"), filepath.Join(cfg.bin, "hostctl"), cfg.refhost} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w: run `make build` (and build bench/cmd/refhost), or use bench/run.sh", err)
		}
	}
	for _, p := range cfg.policies {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("D-Bus policy: %w: run from the top of the repository, or pass -policies", err)
		}
	}
	start := time.Now()
	s, err := newSandbox(ctx, cfg.work, cfg.policies)
	if err != nil {
		return err
	}
	defer s.close()
	report.Progress("sandbox ready in %s: test OS %s, remote %s, bus %s", time.Since(start).Round(time.Millisecond), s.os.Dir, s.srv.URL(), s.bus.Address)

	fmt.Printf("# hostctl benchmarks\n\n%s\n", report.MachineLine())
	if cfg.revision != "" {
		fmt.Printf("Revision: %s.\n", cfg.revision)
	}
	if cfg.only["deploy"] {
		r, err := benchDeploy(ctx, s, cfg)
		if err != nil {
			return fmt.Errorf("deploy benchmark: %w", err)
		}
		r.print(os.Stdout)
	}
	if cfg.only["status"] || cfg.only["memory"] {
		if err := benchService(ctx, s, cfg); err != nil {
			return err
		}
	}
	report.Progress("done in %s", time.Since(start).Round(time.Second))
	return nil
}
