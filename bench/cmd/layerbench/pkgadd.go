package main

import (
	"context"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"github.com/hostctl/hostctl/bench/internal/stats"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// benchPackage is the one small package both tools install: one file, and
// a %post that writes another (so both run a script, as real packages do),
// or, with -no-post, the file alone.
const benchPackage = "hello-bench"

// benchSpec is hello-bench's spec, with its %post unless noPost.
func benchSpec(noPost bool) string {
	post := "%post\necho ran > /usr/share/hello-bench/post-ran\n"
	desc := "One small file and a %post."
	if noPost {
		post, desc = "", "One small file, no script."
	}
	return `Name: hello-bench
Version: 1.0
Release: 1
Summary: the package layering benchmark installs
License: MIT
BuildArch: noarch
%description
` + desc + `
%install
mkdir -p %{buildroot}/usr/share/hello-bench
echo hello > %{buildroot}/usr/share/hello-bench/hello
` + post + `%files
/usr/share/hello-bench
`
}

// stageLabels say what each step hostd announces during pkg-add covers; a
// step lasts until the next one starts.
var stageLabels = map[string]string{
	"start":     "hostctl start, PkgChange call, transaction start",
	"metadata":  "metadata: repomd.xml fetched (and primary.xml when cold), checked",
	"resolve":   "resolve: base rpmdb checked out, libsolv (.solv cache when warm)",
	"download":  "download (or package cache hit), signature and script policy checks",
	"checkout":  "hardlink checkout of the base (checkout path only)",
	"import":    "payload extraction into a tree (cold only)",
	"conflicts": "file conflict check against the base; package cache commit (cold)",
	"assemble":  "from-commit path: base commit's tree loaded lazily, package merged, rpmdb copy + rpm --justdb (checkout path: union checkout of the package over the base)",
	"scripts":   "%post in bwrap over an overlay of the base's deployment (checkout path: over rofiles-fuse)",
	"commit":    "commit of the layered tree (from-commit path: the changed directories only)",
	"deploy":    "deployment checkout and /etc merge",
	"swap":      "bootloader swap (the cleanup after it runs after Finished)",
	"verify":    "boot entry check, journal end, until hostctl exits",
}

// stageTime is one step of one run.
type stageTime struct {
	stage string
	d     time.Duration
}

// pkgAddResult holds the pkg-add benchmark's measurements.
type pkgAddResult struct {
	files, baseFiles     int
	prepare              time.Duration
	cold, warm           []time.Duration
	dnfCold, dnfWarm     []time.Duration
	coldSteps, warmSteps [][]stageTime
	// coldCleanup and warmCleanup are the cleanups after Finished (removal
	// of the replaced deployment, repository prune): from hostctl's exit
	// until hostd is idle, the wait the user no longer has.
	coldCleanup, warmCleanup []time.Duration
	dnfCacheKiB              string
	noPost                   bool
}

// benchPkgAdd builds the bulk base and the package repository, prepares a
// pristine sysroot and a pristine plain copy of the base, then times cold
// runs (each on fresh copies, empty caches) and warm runs (on the last cold
// sysroot after pkg-remove; dnf with the last cold run's cache on a fresh
// copy of the base), hostctl and dnf taking turns.
func benchPkgAdd(ctx context.Context, cfg config, dir string) (*pkgAddResult, error) {
	r := &pkgAddResult{files: cfg.files, noPost: cfg.noPost}
	start := time.Now()
	o, err := fixture.BuildOS(ctx)
	if err != nil {
		return nil, fmt.Errorf("build the test OS: %w", err)
	}
	report.Progress("pkgadd: building the bulk base (%d files)", cfg.files)
	bulk, err := fixture.BuildBulkBase(ctx, o, filepath.Join(dir, "bulk"), cfg.files)
	if err != nil {
		return nil, err
	}
	rpmDir := filepath.Join(dir, "rpms")
	specPath := filepath.Join(dir, "hello-bench.spec")
	if err := os.WriteFile(specPath, []byte(benchSpec(cfg.noPost)), 0o644); err != nil {
		return nil, err
	}
	if _, err := fixture.BuildRPMRepo(ctx, rpmDir, fixture.Spec{Path: specPath}); err != nil {
		return nil, err
	}
	osSrv, err := fixture.NewServer(bulk.RepoPath)
	if err != nil {
		return nil, err
	}
	defer osSrv.Close()
	rpmSrv, err := fixture.NewServer(rpmDir)
	if err != nil {
		return nil, err
	}
	defer rpmSrv.Close()
	bus, err := harness.StartBus(ctx, filepath.Join(dir, "bus"), cfg.policies...)
	if err != nil {
		return nil, err
	}
	defer bus.Stop()

	report.Progress("pkgadd: pulling and deploying the bulk base into a sysroot")
	pristine := filepath.Join(dir, "sysroot-pristine")
	if err := harness.NewSysroot(ctx, pristine, fixture.OSName, osSrv.URL(), fixture.OSName+":"+fixture.BulkRef, bulk.Commit); err != nil {
		return nil, fmt.Errorf("make the pristine sysroot: %w", err)
	}
	dep, err := defaultDeployment(ctx, pristine)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dep.Path, "etc/yum.repos.d/bench.repo"), []byte(fixture.YumRepoFile("bench", rpmSrv.URL())), 0o644); err != nil {
		return nil, fmt.Errorf("write the repo file: %w", err)
	}
	dnfPristine := filepath.Join(dir, "dnf-pristine")
	if out, err := exec.CommandContext(ctx, "ostree", "checkout", "--repo="+bulk.RepoPath, bulk.Commit, dnfPristine).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ostree checkout of the bulk base: %w\n%s", err, out)
	}
	r.baseFiles = countFiles(dnfPristine)
	peer, err := newDnfPeer(filepath.Join(dir, "dnf"), "bench", rpmSrv.URL(), false)
	if err != nil {
		return nil, err
	}
	r.prepare = time.Since(start)
	report.Progress("pkgadd: prepared in %s (base of %d files)", r.prepare.Round(time.Second), r.baseFiles)

	conn, err := godbus.Connect(bus.Address)
	if err != nil {
		return nil, fmt.Errorf("connect to the sandbox bus: %w", err)
	}
	defer conn.Close()
	clock, err := newStepClock(conn)
	if err != nil {
		return nil, err
	}

	var hostd *harness.Hostd
	var sysroot, dnfCache string
	defer func() {
		if hostd != nil {
			hostd.Stop()
		}
	}()
	hostdBin, hostctlBin := filepath.Join(cfg.bin, "hostd"), filepath.Join(cfg.bin, "hostctl")
	hostctlRun := func(warm bool) error {
		d, steps, cleanup, err := timedPkgAdd(ctx, hostctlBin, bus, clock)
		if err != nil {
			return fmt.Errorf("%w\nhostd log:\n%s", err, hostd.Log)
		}
		if warm {
			r.warm, r.warmSteps, r.warmCleanup = append(r.warm, d), append(r.warmSteps, steps), append(r.warmCleanup, cleanup)
		} else {
			r.cold, r.coldSteps, r.coldCleanup = append(r.cold, d), append(r.coldSteps, steps), append(r.coldCleanup, cleanup)
		}
		report.Progress("pkgadd: hostctl %s %s ms, then the cleanup after Finished %s ms", coldWarm(warm), stats.MS(d), stats.MS(cleanup))
		return nil
	}
	for i := 0; i < cfg.coldRuns; i++ {
		root := filepath.Join(dir, fmt.Sprintf("dnf-root-cold-%d", i))
		dnfCache = filepath.Join(dir, fmt.Sprintf("dnf-cache-%d", i))
		if err := copyTree(ctx, dnfPristine, root); err != nil {
			return nil, err
		}
		if hostd != nil {
			hostd.Stop()
			hostd = nil
			removeAll(sysroot)
		}
		sysroot = filepath.Join(dir, fmt.Sprintf("sysroot-%d", i))
		if err := copyTree(ctx, pristine, sysroot); err != nil {
			return nil, err
		}
		if hostd, err = harness.StartHostd(ctx, hostdBin, sysroot, bus); err != nil {
			return nil, err
		}
		dnfRun := func() error {
			d, _, err := peer.run(ctx, root, dnfCache, false, "install", "-y", benchPackage)
			if err != nil {
				return err
			}
			if err := checkInstalled(root, cfg.noPost); err != nil {
				return fmt.Errorf("after dnf install: %w", err)
			}
			r.dnfCold = append(r.dnfCold, d)
			report.Progress("pkgadd: dnf cold %s ms", stats.MS(d))
			return nil
		}
		if err := inTurn(i, func() error { return hostctlRun(false) }, dnfRun); err != nil {
			return nil, err
		}
		removeAll(root)
	}
	r.dnfCacheKiB = kib(dirSize(dnfCache))
	for i := 0; i < cfg.warmRuns; i++ {
		if res := harness.Hostctl(ctx, hostctlBin, bus, 0, "pkg-remove", benchPackage); res.Code != 0 {
			return nil, fmt.Errorf("hostctl pkg-remove: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
		}
		root := filepath.Join(dir, fmt.Sprintf("dnf-root-warm-%d", i))
		if err := copyTree(ctx, dnfPristine, root); err != nil {
			return nil, err
		}
		dnfRun := func() error {
			d, _, err := peer.run(ctx, root, dnfCache, false, "install", "-y", benchPackage)
			if err != nil {
				return err
			}
			if err := checkInstalled(root, cfg.noPost); err != nil {
				return fmt.Errorf("after dnf install: %w", err)
			}
			r.dnfWarm = append(r.dnfWarm, d)
			report.Progress("pkgadd: dnf warm %s ms", stats.MS(d))
			return nil
		}
		if err := inTurn(i, func() error { return hostctlRun(true) }, dnfRun); err != nil {
			return nil, err
		}
		removeAll(root)
	}
	hostd.Stop()
	hostd = nil
	dep, err = defaultDeployment(ctx, sysroot)
	if err != nil {
		return nil, err
	}
	if err := checkInstalled(dep.Path, cfg.noPost); err != nil {
		return nil, fmt.Errorf("the layered deployment: %w", err)
	}
	if len(dep.Origin.Packages()) != 1 {
		return nil, fmt.Errorf("the layered deployment requests %v, want [%s]", dep.Origin.Packages(), benchPackage)
	}
	return r, nil
}

// inTurn runs a then b on even runs and b then a on odd ones.
func inTurn(i int, a, b func() error) error {
	if i%2 == 1 {
		a, b = b, a
	}
	if err := a(); err != nil {
		return err
	}
	return b()
}

func coldWarm(warm bool) string {
	if warm {
		return "warm"
	}
	return "cold"
}

// checkInstalled checks that the tree has the package's file and the file
// its %post wrote (unless noPost).
func checkInstalled(root string, noPost bool) error {
	files := []string{"usr/share/hello-bench/hello", "usr/share/hello-bench/post-ran"}
	if noPost {
		files = files[:1]
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			return err
		}
	}
	return nil
}

func defaultDeployment(ctx context.Context, sysroot string) (deploy.Deployment, error) {
	sr, err := deploy.Open(ctx, sysroot)
	if err != nil {
		return deploy.Deployment{}, err
	}
	defer sr.Close()
	deps, err := sr.Deployments(ctx)
	if err != nil || len(deps) == 0 {
		return deploy.Deployment{}, fmt.Errorf("list the deployments of %s: %v", sysroot, err)
	}
	return deps[0], nil
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// timedPkgAdd runs `hostctl pkg-add` as a whole process and splits its time
// by the steps hostd announced meanwhile. It then waits until hostd is idle
// and returns, apart, how long the cleanup after Finished took after
// hostctl exited (the removal of the replaced deployment and the
// repository prune, which hostctl no longer waits for).
func timedPkgAdd(ctx context.Context, hostctlBin string, bus *harness.Bus, clock *stepClock) (time.Duration, []stageTime, time.Duration, error) {
	settle()
	clock.reset()
	start := time.Now()
	res := harness.Hostctl(ctx, hostctlBin, bus, 0, "pkg-add", benchPackage)
	end := time.Now()
	if res.Code != 0 {
		return 0, nil, 0, fmt.Errorf("hostctl pkg-add: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err := harness.WaitIdle(wctx, bus)
	cancel()
	if err != nil {
		return 0, nil, 0, err
	}
	cleanup := time.Since(end)
	// The last signals may still be on their way.
	time.Sleep(50 * time.Millisecond)
	marks := clock.marks()
	var steps []stageTime
	prev, prevStage := start, "start"
	for _, m := range marks {
		if m.at.After(end) {
			break
		}
		steps = append(steps, stageTime{prevStage, m.at.Sub(prev)})
		prev, prevStage = m.at, m.stage
	}
	steps = append(steps, stageTime{prevStage, end.Sub(prev)})
	return end.Sub(start), steps, cleanup, nil
}

// stepClock notes when each step hostd announces on the bus begins.
type stepClock struct {
	mu    sync.Mutex
	seen  []mark
	sigCh chan *godbus.Signal
}

type mark struct {
	stage string
	at    time.Time
}

const transactionInterface = "org.hostctl.Transaction1"

func newStepClock(conn *godbus.Conn) (*stepClock, error) {
	if err := conn.AddMatchSignal(godbus.WithMatchInterface(transactionInterface), godbus.WithMatchMember("Progress")); err != nil {
		return nil, fmt.Errorf("subscribe to transaction progress: %w", err)
	}
	c := &stepClock{sigCh: make(chan *godbus.Signal, 1024)}
	conn.Signal(c.sigCh)
	go func() {
		for sig := range c.sigCh {
			at := time.Now()
			if sig.Name != transactionInterface+".Progress" || len(sig.Body) == 0 {
				continue
			}
			stage, _ := sig.Body[0].(string)
			c.mu.Lock()
			if n := len(c.seen); stage != "" && (n == 0 || c.seen[n-1].stage != stage) {
				c.seen = append(c.seen, mark{stage, at})
			}
			c.mu.Unlock()
		}
	}()
	return c, nil
}

func (c *stepClock) reset() {
	c.mu.Lock()
	c.seen = nil
	c.mu.Unlock()
}

func (c *stepClock) marks() []mark {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]mark(nil), c.seen...)
}

// stageMedians sums each run's time per stage and takes the median over
// the runs, in the order the stages first appear.
func stageMedians(runs [][]stageTime) (order []string, med map[string]time.Duration) {
	per := map[string][]time.Duration{}
	for _, run := range runs {
		sum := map[string]time.Duration{}
		for _, st := range run {
			if _, ok := sum[st.stage]; !ok && !contains(order, st.stage) {
				order = append(order, st.stage)
			}
			sum[st.stage] += st.d
		}
		for s, d := range sum {
			per[s] = append(per[s], d)
		}
	}
	med = map[string]time.Duration{}
	for s, ds := range per {
		for len(ds) < len(runs) {
			ds = append(ds, 0) // a stage some runs skipped
		}
		med[s] = stats.Summarize(ds).Median
	}
	return order, med
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *pkgAddResult) print(w io.Writer) {
	hc, hw := stats.Summarize(r.cold), stats.Summarize(r.warm)
	dc, dw := stats.Summarize(r.dnfCold), stats.Summarize(r.dnfWarm)
	fmt.Fprintf(w, "\n## pkg-add of one small package onto a base of %d files\n\n", r.baseFiles)
	what := "one file, a %post"
	if r.noPost {
		what = "one file, no script (-no-post)"
	}
	fmt.Fprintf(w, "Base: HostOS 1 + hostos-bulk (%d small files), %d files in all. Package: %s (%s), from an rpm-md repository on loopback HTTP. Prepared in %s, not timed.\n\n",
		r.files, r.baseFiles, benchPackage, what, r.prepare.Round(time.Second))
	fmt.Fprintf(w, "| run | runs | min ms | median ms | max ms | ratio of medians |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| `hostctl pkg-add` through hostd, cold | %d | %s | %s | %s | %s |\n", hc.N, stats.MS(hc.Min), stats.MS(hc.Median), stats.MS(hc.Max), stats.Ratio(hc.Median, dc.Median))
	fmt.Fprintf(w, "| `dnf --installroot install -y`, cold | %d | %s | %s | %s | 1 |\n", dc.N, stats.MS(dc.Min), stats.MS(dc.Median), stats.MS(dc.Max))
	fmt.Fprintf(w, "| `hostctl pkg-add` through hostd, warm | %d | %s | %s | %s | %s |\n", hw.N, stats.MS(hw.Min), stats.MS(hw.Median), stats.MS(hw.Max), stats.Ratio(hw.Median, dw.Median))
	fmt.Fprintf(w, "| `dnf --installroot install -y`, warm | %d | %s | %s | %s | 1 |\n", dw.N, stats.MS(dw.Min), stats.MS(dw.Median), stats.MS(dw.Max))
	fmt.Fprintf(w, "\nCold: a fresh copy of the sysroot (hostd started on it before the timer) and of dnf's root, empty caches. Warm: hostctl on the last cold sysroot after `pkg-remove` (metadata, .solv and package cache filled); dnf on a fresh copy of the root with the last cold run's cache (%s KiB, keepcache on). Both check that the file (and the file the %%post writes, if any) are there.\n", r.dnfCacheKiB)
	for _, c := range []struct {
		name string
		runs [][]stageTime
		tot  time.Duration
	}{{"cold", r.coldSteps, hc.Median}, {"warm", r.warmSteps, hw.Median}} {
		order, med := stageMedians(c.runs)
		fmt.Fprintf(w, "\nWhere hostctl's time goes, %s (medians over the runs, from the steps hostd announces on the bus; a step lasts until the next begins):\n\n", c.name)
		fmt.Fprintf(w, "| step | what | median ms | share |\n|---|---|---|---|\n")
		for _, s := range order {
			label := stageLabels[s]
			fmt.Fprintf(w, "| %s | %s | %s | %.0f%% |\n", s, label, stats.MS(med[s]), 100*float64(med[s])/float64(c.tot))
		}
	}
	cc, cw := stats.Summarize(r.coldCleanup), stats.Summarize(r.warmCleanup)
	fmt.Fprintf(w, "\nThe cleanup after Finished (removal of the replaced deployment, repository prune), from hostctl's exit until hostd is idle (CleanupPending false); hostctl no longer waits for it, so before issue 17 the swap step included it:\n\n")
	fmt.Fprintf(w, "| run | runs | min ms | median ms | max ms | share of what hostctl would wait |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| cold | %d | %s | %s | %s | %.0f%% |\n", cc.N, stats.MS(cc.Min), stats.MS(cc.Median), stats.MS(cc.Max), 100*float64(cc.Median)/float64(cc.Median+hc.Median))
	fmt.Fprintf(w, "| warm | %d | %s | %s | %s | %.0f%% |\n", cw.N, stats.MS(cw.Min), stats.MS(cw.Median), stats.MS(cw.Max), 100*float64(cw.Median)/float64(cw.Median+hw.Median))
}
