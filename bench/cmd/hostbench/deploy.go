package main

import (
	"context"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"github.com/hostctl/hostctl/bench/internal/stats"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// deployPhases are the steps hostd announces during a deploy, in order; the
// benchmark times each from the client's side of the bus. An optional step
// hostd may skip (it pulls nothing when the commit is complete in the repo)
// counts as taking no time.
var deployPhases = []struct {
	stage, label string
	optional     bool
}{
	{"", "Deploy call, Start, journal begin", false},
	{"pull", "pull (skipped when the commit is complete in the repo)", true},
	{"deploy", "checkout and /etc merge", false},
	{"swap", "bootloader swap", false},
	{"verify", "boot entry check, journal end, status refresh", false},
}

// deployResult holds the deploy benchmark's measurements.
type deployResult struct {
	hostd, ostree []time.Duration
	// pairRatios are hostd/ostree, pair by pair.
	pairRatios []float64
	// phases[i] are the durations of deployPhases[i], one per hostd run.
	phases [][]time.Duration
	// hostdHWM is hostd's VmHWM (KiB) after each deploy; ostreeMaxRSS is
	// the ostree process's peak RSS (KiB) from its rusage.
	hostdHWM, ostreeMaxRSS []uint64
	// hostdStart is hostd's start until it serves its name; ostreeStatus is
	// `ostree admin status` on the peer sysroot: both load the sysroot and
	// can then tell its deployments.
	hostdStart, ostreeStatus []time.Duration
	prepare                  time.Duration
	// hostdRequests and ostreeRequests are the HTTP requests each deploy
	// made to the remote (the commit is already in the repo); hostdExample
	// is one hostd deploy's list.
	hostdRequests, ostreeRequests []int
	hostdExample                  []string
}

// benchDeploy prepares cfg.deployRuns pairs of identical sysroots (version 1
// deployed, version 2 pulled), then deploys version 2 on each: through hostd
// on one of a pair, with `ostree admin deploy` on the other. The two take
// turns and swap who goes first each pair. Only the deploy itself is timed.
func benchDeploy(ctx context.Context, s *sandbox, cfg config) (*deployResult, error) {
	commit := s.os.Commit("2")
	r := &deployResult{phases: make([][]time.Duration, len(deployPhases))}
	start := time.Now()
	type pair struct{ hostd, ostree string }
	pairs := make([]pair, cfg.deployRuns)
	for i := range pairs {
		var err error
		if pairs[i].hostd, err = s.newSysroot(ctx, fmt.Sprintf("deploy-hostd-%d", i)); err != nil {
			return nil, err
		}
		if pairs[i].ostree, err = s.newSysroot(ctx, fmt.Sprintf("deploy-ostree-%d", i)); err != nil {
			return nil, err
		}
	}
	r.prepare = time.Since(start)
	report.Progress("deploy: %d pairs of sysroots prepared in %s", len(pairs), r.prepare.Round(time.Millisecond))

	conn, err := s.connect()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	for i, p := range pairs {
		var h, o time.Duration
		runHostd := func() error {
			s.srv.ResetStats()
			d, startup, phases, hwm, err := deployThroughHostd(ctx, s, conn, filepath.Join(cfg.bin, "hostd"), p.hostd, commit)
			if err != nil {
				return err
			}
			reqs := s.srv.Requests()
			r.hostdRequests = append(r.hostdRequests, len(reqs))
			if r.hostdExample == nil {
				r.hostdExample = reqs
			}
			h = d
			r.hostdStart = append(r.hostdStart, startup)
			for k, ph := range phases {
				r.phases[k] = append(r.phases[k], ph)
			}
			r.hostdHWM = append(r.hostdHWM, hwm)
			return nil
		}
		runOstree := func() error {
			st, err := ostreeAdminStatus(ctx, p.ostree)
			if err != nil {
				return err
			}
			r.ostreeStatus = append(r.ostreeStatus, st)
			s.srv.ResetStats()
			d, maxRSS, err := deployWithOstree(ctx, p.ostree, commit)
			if err != nil {
				return err
			}
			r.ostreeRequests = append(r.ostreeRequests, len(s.srv.Requests()))
			o = d
			r.ostreeMaxRSS = append(r.ostreeMaxRSS, maxRSS)
			return nil
		}
		order := []func() error{runHostd, runOstree}
		if i%2 == 1 {
			order = []func() error{runOstree, runHostd}
		}
		for _, f := range order {
			if err := f(); err != nil {
				return nil, err
			}
		}
		for _, dir := range []string{p.hostd, p.ostree} {
			got, n, err := defaultCommit(ctx, dir)
			if err != nil {
				return nil, err
			}
			if got != commit || n != 2 {
				return nil, fmt.Errorf("after the deploy %s has default %s and %d deployments; want %s and 2", dir, got, n, commit)
			}
		}
		r.hostd = append(r.hostd, h)
		r.ostree = append(r.ostree, o)
		r.pairRatios = append(r.pairRatios, float64(h)/float64(o))
		report.Progress("deploy %d/%d: hostd %s ms, ostree admin deploy %s ms", i+1, len(pairs), stats.MS(h), stats.MS(o))
	}
	return r, nil
}

// deployThroughHostd starts hostd on sysroot, timing its start apart, then
// times the Deploy method from the call to the Finished signal, with the time
// of each step hostd announces. It returns hostd's VmHWM afterwards, in KiB.
func deployThroughHostd(ctx context.Context, s *sandbox, conn *godbus.Conn, hostdBin, sysroot, commit string) (deploy, startup time.Duration, phases []time.Duration, hwm uint64, err error) {
	settle()
	t0 := time.Now()
	h, err := harness.StartHostd(ctx, hostdBin, sysroot, s.bus)
	if err != nil {
		return 0, 0, nil, 0, err
	}
	startup = time.Since(t0)
	defer h.Stop()
	settle()
	client := dbus.NewClient(conn)
	seen := map[string]time.Time{}
	onEvent := func(ev dbus.Event) {
		if ev.Progress != nil {
			if _, ok := seen[ev.Progress.Stage]; !ok {
				seen[ev.Progress.Stage] = time.Now()
			}
		}
	}
	start := time.Now()
	txn, err := client.Deploy(ctx, commit, nil)
	if err != nil {
		return 0, 0, nil, 0, fmt.Errorf("hostd Deploy %s: %w", commit, err)
	}
	if _, err := txn.Run(ctx, onEvent); err != nil {
		return 0, 0, nil, 0, fmt.Errorf("hostd deploy %s on %s: %w\nhostd log:\n%s", commit, sysroot, err, h.Log)
	}
	end := time.Now()

	marks := make([]time.Time, len(deployPhases)+1)
	marks[0], marks[len(deployPhases)] = start, end
	for k := len(deployPhases) - 1; k >= 1; k-- {
		ph := deployPhases[k]
		t, ok := seen[ph.stage]
		switch {
		case ok:
			marks[k] = t
		case ph.optional:
			marks[k] = marks[k+1] // skipped: it took no time
		default:
			return 0, 0, nil, 0, fmt.Errorf("hostd never announced the step %q (steps seen: %v): update bench/cmd/hostbench/deploy.go to hostd's steps", ph.stage, keys(seen))
		}
	}
	phases = make([]time.Duration, len(deployPhases))
	for k := range phases {
		phases[k] = marks[k+1].Sub(marks[k])
	}
	pid, err := pidOf(conn, dbus.BusName)
	if err != nil {
		return 0, 0, nil, 0, err
	}
	m, err := readMemory(pid)
	if err != nil {
		return 0, 0, nil, 0, err
	}
	return end.Sub(start), startup, phases, m.HWM, nil
}

// deployWithOstree times `ostree admin deploy` of commit on sysroot, as a
// whole process, and returns its peak RSS in KiB.
func deployWithOstree(ctx context.Context, sysroot, commit string) (time.Duration, uint64, error) {
	settle()
	cmd := exec.CommandContext(ctx, "ostree", "admin", "deploy", "--sysroot="+sysroot, "--os="+fixture.OSName, commit)
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return 0, 0, fmt.Errorf("ostree admin deploy %s on %s: %w\n%s%s", commit, sysroot, err, out, stderr)
	}
	var maxRSS uint64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxRSS = uint64(ru.Maxrss) // KiB on Linux
	}
	return d, maxRSS, nil
}

// ostreeAdminStatus times `ostree admin status` on sysroot as a whole process.
func ostreeAdminStatus(ctx context.Context, sysroot string) (time.Duration, error) {
	settle()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "ostree", "admin", "status", "--sysroot="+sysroot).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ostree admin status on %s: %w\n%s", sysroot, err, out)
	}
	return time.Since(start), nil
}

// settle flushes dirty pages before a timed run: both deploy paths end with
// syncfs(), which would otherwise also write back what preparing the other
// sysroots left in the page cache.
func settle() {
	unix.Sync()
}

func keys(m map[string]time.Time) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (r *deployResult) print(w io.Writer) {
	h, o := stats.Summarize(r.hostd), stats.Summarize(r.ostree)
	fmt.Fprintf(w, "\n## Deploy of an already pulled commit\n\n")
	fmt.Fprintf(w, "%d pairs of identical sysroots (version 1 deployed, version 2 pulled; prepared in %s, not timed); each run deploys version 2.\n\n",
		len(r.hostd), r.prepare.Round(time.Second))
	fmt.Fprintf(w, "| deploy | runs | min ms | median ms | max ms |\n|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| hostd (D-Bus Deploy to Finished) | %d | %s | %s | %s |\n", h.N, stats.MS(h.Min), stats.MS(h.Median), stats.MS(h.Max))
	fmt.Fprintf(w, "| `ostree admin deploy` (whole process) | %d | %s | %s | %s |\n", o.N, stats.MS(o.Min), stats.MS(o.Median), stats.MS(o.Max))
	pr := slices.Clone(r.pairRatios)
	slices.Sort(pr)
	fmt.Fprintf(w, "\nRatio hostd / ostree: %s (ratio of medians); pair by pair min %.2f, median %.2f, max %.2f.\n",
		stats.Ratio(h.Median, o.Median), pr[0], medianFloat(pr), pr[len(pr)-1])

	fmt.Fprintf(w, "\nWhere hostd's time goes (medians over the runs, from the steps hostd announces; client-side timestamps):\n\n")
	fmt.Fprintf(w, "| step | median ms | share |\n|---|---|---|\n")
	for k, ph := range deployPhases {
		sm := stats.Summarize(r.phases[k])
		fmt.Fprintf(w, "| %s | %s | %.0f%% |\n", ph.label, stats.MS(sm.Median), 100*float64(sm.Median)/float64(h.Median))
	}
	fmt.Fprintf(w, "\nRequests to the remote per deploy (the commit is already in the repo): hostd %v, `ostree admin deploy` %v.", r.hostdRequests, r.ostreeRequests)
	if len(r.hostdExample) > 0 {
		fmt.Fprintf(w, " hostd's first: `%s`.", strings.Join(r.hostdExample, "`, `"))
	}
	fmt.Fprintln(w)
	hs, st := stats.Summarize(r.hostdStart), stats.Summarize(r.ostreeStatus)
	fmt.Fprintf(w, "\nStart-up on the same sysroots (before the deploy): hostd from exec until it serves its bus name, min %s / median %s / max %s ms; `ostree admin status` as a whole process, min %s / median %s / max %s ms; ratio of medians %s.\n",
		stats.MS(hs.Min), stats.MS(hs.Median), stats.MS(hs.Max), stats.MS(st.Min), stats.MS(st.Median), stats.MS(st.Max), stats.Ratio(hs.Median, st.Median))
	fmt.Fprintf(w, "\nPeak memory: hostd VmHWM after the deploy, median %s MiB; `ostree admin deploy` max RSS, median %s MiB.\n",
		mib(medianUint(r.hostdHWM)), mib(medianUint(r.ostreeMaxRSS)))
}

func medianFloat(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func medianUint(v []uint64) uint64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
