package main

import (
	"context"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"github.com/hostctl/hostctl/bench/internal/stats"
	"io"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
)

// target is one service the status benchmark calls.
type target struct {
	label string
	call  func(*godbus.Conn) error
	// pid is the process that answers (the bus daemon for calls to the bus).
	pid int
}

// latency is one target's round trips at one client count.
type latency struct {
	samples []time.Duration
	// wall is the time the batches took in total, start to last reply.
	wall time.Duration
	// serviceCPU and busCPU are the CPU time the answering process and the
	// bus daemon used during the batches.
	serviceCPU, busCPU time.Duration
}

// runLatency makes cfg.statusCalls calls to every target for each client
// count, each client on its own connection. The calls are split into
// cfg.rounds rounds and the targets take turns within each round, so a
// change of the machine's speed during the run hits them alike.
func runLatency(s *sandbox, targets []target, busPID int, cfg config) (map[int][]latency, error) {
	most := 0
	for _, c := range cfg.clients {
		most = max(most, c)
	}
	conns := make([]*godbus.Conn, most)
	for i := range conns {
		c, err := s.connect()
		if err != nil {
			return nil, err
		}
		defer c.Close()
		conns[i] = c
	}
	out := map[int][]latency{}
	for _, clients := range cfg.clients {
		res := make([]latency, len(targets))
		// Warm-up: every connection calls every target once.
		for _, t := range targets {
			if _, _, err := batch(t.call, conns[:clients], clients); err != nil {
				return nil, err
			}
		}
		for round := 0; round < cfg.rounds; round++ {
			calls := cfg.statusCalls / cfg.rounds
			if round == cfg.rounds-1 {
				calls = cfg.statusCalls - calls*(cfg.rounds-1)
			}
			for k := range targets {
				i := (k + round) % len(targets) // who goes first rotates
				svc0, err := readCPU(targets[i].pid)
				if err != nil {
					return nil, err
				}
				bus0, err := readCPU(busPID)
				if err != nil {
					return nil, err
				}
				samples, wall, err := batch(targets[i].call, conns[:clients], calls)
				if err != nil {
					return nil, err
				}
				svc1, err := readCPU(targets[i].pid)
				if err != nil {
					return nil, err
				}
				bus1, err := readCPU(busPID)
				if err != nil {
					return nil, err
				}
				res[i].samples = append(res[i].samples, samples...)
				res[i].wall += wall
				res[i].serviceCPU += svc1 - svc0
				res[i].busCPU += bus1 - bus0
			}
		}
		out[clients] = res
		report.Progress("status: %d client(s): hostd p50 %s ms, p99 %s ms", clients, stats.MS(stats.Summarize(res[0].samples).P50), stats.MS(stats.Summarize(res[0].samples).P99))
	}
	return out, nil
}

// batch makes total calls spread over conns, one goroutine per connection,
// all starting together, and returns every call's round trip.
func batch(call func(*godbus.Conn) error, conns []*godbus.Conn, total int) ([]time.Duration, time.Duration, error) {
	per := make([][]time.Duration, len(conns))
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	for i, conn := range conns {
		n := total / len(conns)
		if i < total%len(conns) {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			ds := make([]time.Duration, 0, n)
			for j := 0; j < n; j++ {
				t0 := time.Now()
				if err := call(conn); err != nil {
					errs[i] = err
					return
				}
				ds = append(ds, time.Since(t0))
			}
			per[i] = ds
		}()
	}
	start := time.Now()
	close(startGate)
	wg.Wait()
	wall := time.Since(start)
	var all []time.Duration
	for i := range per {
		if errs[i] != nil {
			return nil, 0, errs[i]
		}
		all = append(all, per[i]...)
	}
	return all, wall, nil
}

// processResult is `hostctl status` and its peer timed as whole processes.
type processResult struct {
	hostctl, dbusSend []time.Duration
}

// runProcesses times `hostctl status` (start, connect, GetAll, print, exit)
// against `dbus-send` making the same GetAll, taking turns.
func runProcesses(ctx context.Context, s *sandbox, cfg config) (*processResult, error) {
	hostctl := []string{filepath.Join(cfg.bin, "hostctl"), "status"}
	send := []string{"dbus-send", "--system", "--print-reply", "--dest=" + dbus.BusName, string(dbus.HostPath),
		"org.freedesktop.DBus.Properties.GetAll", "string:" + dbus.HostInterface}
	r := &processResult{}
	for i := -1; i < cfg.procRuns; i++ { // run -1 is the warm-up
		a, err := timeProcess(ctx, s, hostctl)
		if err != nil {
			return nil, err
		}
		b, err := timeProcess(ctx, s, send)
		if err != nil {
			return nil, err
		}
		if i >= 0 {
			r.hostctl = append(r.hostctl, a)
			r.dbusSend = append(r.dbusSend, b)
		}
	}
	return r, nil
}

func timeProcess(ctx context.Context, s *sandbox, argv []string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = s.env()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %w\n%s", argv[0], err, out)
	}
	return d, nil
}

func printLatency(w io.Writer, targets []target, res map[int][]latency, proc *processResult, cfg config) {
	fmt.Fprintf(w, "\n## Status round trip over D-Bus\n\n")
	fmt.Fprintf(w, "%d calls per target and client count, each client on its own bus connection, in %d rounds with the targets taking turns; the call is decoded as `hostctl status` decodes it.\n",
		cfg.statusCalls, cfg.rounds)
	for _, clients := range cfg.clients {
		fmt.Fprintf(w, "\n### %d concurrent client(s)\n\n", clients)
		fmt.Fprintf(w, "| target | p50 ms | p99 ms | max ms | calls/s | service CPU µs/call | bus CPU µs/call |\n|---|---|---|---|---|---|---|\n")
		sums := make([]stats.Summary, len(targets))
		for i, t := range targets {
			sm := stats.Summarize(res[clients][i].samples)
			sums[i] = sm
			l := res[clients][i]
			rate := float64(sm.N) / l.wall.Seconds()
			svc := "(the bus)"
			if i < 2 {
				svc = perCall(l.serviceCPU, sm.N)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f | %s | %s |\n", t.label, stats.MS(sm.P50), stats.MS(sm.P99), stats.MS(sm.Max), rate, svc, perCall(l.busCPU, sm.N))
		}
		fmt.Fprintf(w, "\nhostd / refhost: p50 %s, p99 %s. hostd / bus GetId: p50 %s, p99 %s.\n",
			stats.Ratio(sums[0].P50, sums[1].P50), stats.Ratio(sums[0].P99, sums[1].P99),
			stats.Ratio(sums[0].P50, sums[2].P50), stats.Ratio(sums[0].P99, sums[2].P99))
	}
	if proc != nil {
		a, b := stats.Summarize(proc.hostctl), stats.Summarize(proc.dbusSend)
		fmt.Fprintf(w, "\n### `hostctl status` as a whole process\n\n")
		fmt.Fprintf(w, "| command | runs | min ms | median ms | max ms |\n|---|---|---|---|---|\n")
		fmt.Fprintf(w, "| `hostctl status` | %d | %s | %s | %s |\n", a.N, stats.MS(a.Min), stats.MS(a.Median), stats.MS(a.Max))
		fmt.Fprintf(w, "| `dbus-send --print-reply` of the same GetAll | %d | %s | %s | %s |\n", b.N, stats.MS(b.Min), stats.MS(b.Median), stats.MS(b.Max))
		fmt.Fprintf(w, "\nRatio hostctl / dbus-send: %s (medians).\n", stats.Ratio(a.Median, b.Median))
	}
}

// perCall is CPU time per call in microseconds.
func perCall(cpu time.Duration, calls int) string {
	return fmt.Sprintf("%.0f", float64(cpu)/float64(time.Microsecond)/float64(max(calls, 1)))
}

func printMemory(w io.Writer, m *memoryReadings, afterCalls string) {
	fmt.Fprintf(w, "\n## Resident memory at idle\n\n")
	fmt.Fprintf(w, "From /proc/PID/status, %s after each moment; MiB.\n\n", idleSettle)
	fmt.Fprintf(w, "| process | moment | VmRSS | VmHWM | RssAnon | RssFile | of which its executable |\n|---|---|---|---|---|---|---|\n")
	for i, p := range m.procs {
		for _, moment := range m.moments {
			mem := m.at[moment][i]
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", p.label, moment, mib(mem.RSS), mib(mem.HWM), mib(mem.Anon), mib(mem.File), mib(mem.Exe))
		}
	}
	h, r := m.at[afterCalls][0], m.at[afterCalls][1]
	fmt.Fprintf(w, "\nhostd / refhost %s: VmRSS %.2f, VmHWM %.2f, RssAnon %.2f.\n", afterCalls,
		float64(h.RSS)/float64(max(r.RSS, 1)), float64(h.HWM)/float64(max(r.HWM, 1)), float64(h.Anon)/float64(max(r.Anon, 1)))
}
