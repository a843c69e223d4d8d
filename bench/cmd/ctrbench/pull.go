package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"github.com/hostctl/hostctl/bench/internal/stats"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hostctl/hostctl/tests/fixture"
)

// pullResult holds the pull benchmark's measurements.
type pullResult struct {
	layers int
	// Cold runs, one per fresh sysroot / oci directory / repo.
	hostd, skopeo, commits  []time.Duration // commits: ostree commit of every layer after skopeo
	hostdTxn                []time.Duration // first step announced to Finished, seen on the bus
	pairRatios              []float64       // hostd / skopeo, run by run
	hostdBytes              []int64         // bytes received, as hostd reports them
	hostdTraffic, skTraffic []traffic       // what the registry sent
	hostdGrowth             []growth        // new inodes in the sysroot
	hostdIO                 []ioCounters    // hostd's counters over the pull
	skGrowth, ostreeGrowth  []growth        // the oci directory, the ostree repo
	// Warm runs on the first run's sysroot and oci directory.
	warmHostd, warmSkopeo []time.Duration
	warmHostdBytes        []int64
	warmHostdTr, warmSkTr []traffic
	warmHostdLine         string
	prepare               time.Duration
	keep                  *sysroot // the first run's sysroot, with the image pulled
	keepOCI               string   // the first run's oci directory
}

// benchPull times cold pulls (runs of them), then warm ones.
func benchPull(ctx context.Context, s *sandbox, cfg config, runs int) (*pullResult, error) {
	r := &pullResult{layers: len(s.img.layers)}
	src := "docker://" + s.image
	w, err := s.watchSteps()
	if err != nil {
		return nil, err
	}
	defer w.close()
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		sr, err := s.newSysroot(ctx, fmt.Sprintf("pull-%d", i))
		if err != nil {
			return nil, err
		}
		h, err := s.startHostd(ctx, sr)
		if err != nil {
			return nil, err
		}
		oci := filepath.Join(s.work, fmt.Sprintf("oci-%d", i))
		repo := filepath.Join(s.work, fmt.Sprintf("ostree-%d", i))
		if _, err := timed(ctx, "ostree", "init", "--repo="+repo, "--mode=bare"); err != nil {
			h.Stop()
			return nil, err
		}
		r.prepare += time.Since(t0)

		var hd, sk time.Duration
		runHostd := func() error {
			before, err := takeSnapshot(sr.dir)
			if err != nil {
				return err
			}
			pid, err := s.hostdPID()
			if err != nil {
				return err
			}
			io0, err := readIO(pid)
			if err != nil {
				return err
			}
			mark := len(s.reg.Log())
			w.reset()
			d, out, err := s.hostctl(ctx, "image", "pull", s.image)
			if err != nil {
				return fmt.Errorf("%w\nhostd log:\n%s", err, h.Log)
			}
			steps, end := w.marks()
			io1, err := readIO(pid)
			if err != nil {
				return err
			}
			fetched, present, bytes, ok := pullSummary(out)
			if !ok || fetched != r.layers || present != 0 {
				return fmt.Errorf("cold pull on a fresh sysroot: want %d layers fetched, 0 present; hostctl said:\n%s", r.layers, out)
			}
			after, err := takeSnapshot(sr.dir)
			if err != nil {
				return err
			}
			hd = d
			r.hostdBytes = append(r.hostdBytes, bytes)
			r.hostdTraffic = append(r.hostdTraffic, s.trafficSince(mark))
			r.hostdGrowth = append(r.hostdGrowth, diff(before, after))
			r.hostdIO = append(r.hostdIO, io1.sub(io0))
			if t, ok := steps["pull"]; ok && !end.IsZero() {
				r.hostdTxn = append(r.hostdTxn, end.Sub(t))
			}
			return nil
		}
		runSkopeo := func() error {
			settle()
			mark := len(s.reg.Log())
			d, err := timed(ctx, "skopeo", "copy", "--quiet", "--insecure-policy", "--src-tls-verify=false", src, "oci:"+oci+":1")
			if err != nil {
				return err
			}
			sk = d
			r.skTraffic = append(r.skTraffic, s.trafficSince(mark))
			g, err := takeSnapshot(oci)
			if err != nil {
				return err
			}
			r.skGrowth = append(r.skGrowth, diff(emptySnapshot(), g))
			if !cfg.withOstreeCI {
				return nil
			}
			// The same import done with the CLIs: every layer blob skopeo
			// stored, committed to its own branch of a fresh bare repo.
			before, err := takeSnapshot(repo)
			if err != nil {
				return err
			}
			settle()
			var total time.Duration
			for n, l := range s.img.layers {
				blob := filepath.Join(oci, "blobs", "sha256", blobHex(l))
				tmp := filepath.Join(repo, "tmp", fmt.Sprintf("layer-%d", n))
				if err := os.MkdirAll(tmp, 0o755); err != nil {
					return err
				}
				d1, err := timed(ctx, "tar", "-xzf", blob, "-C", tmp)
				if err != nil {
					return err
				}
				d2, err := timed(ctx, "ostree", "--repo="+repo, "commit", fmt.Sprintf("--branch=layer/%d", n), "--tree=dir="+tmp, "--subject=layer")
				if err != nil {
					return err
				}
				os.RemoveAll(tmp)
				total += d1 + d2
			}
			after, err := takeSnapshot(repo)
			if err != nil {
				return err
			}
			r.commits = append(r.commits, total)
			r.ostreeGrowth = append(r.ostreeGrowth, diff(before, after))
			return nil
		}
		order := []func() error{runHostd, runSkopeo}
		if i%2 == 1 {
			order = []func() error{runSkopeo, runHostd}
		}
		for _, f := range order {
			if err := f(); err != nil {
				h.Stop()
				return nil, err
			}
		}
		r.hostd = append(r.hostd, hd)
		r.skopeo = append(r.skopeo, sk)
		r.pairRatios = append(r.pairRatios, float64(hd)/float64(sk))
		report.Progress("cold pull %d/%d: hostctl image pull %s ms, skopeo copy %s ms, then tar + ostree commit of %d layers %s ms",
			i+1, runs, stats.MS(hd), stats.MS(sk), r.layers, stats.MS(last(r.commits)))

		if i == 0 {
			if err := benchWarm(ctx, s, cfg, r, src, oci); err != nil {
				h.Stop()
				return nil, err
			}
			r.keep, r.keepOCI = sr, oci
		} else {
			removeSysroot(sr)
			os.RemoveAll(oci)
		}
		h.Stop()
		os.RemoveAll(repo)
	}
	return r, nil
}

// benchWarm pulls the image again where every layer is present: into the
// same sysroot through hostd, into the same oci directory with skopeo.
func benchWarm(ctx context.Context, s *sandbox, cfg config, r *pullResult, src, oci string) error {
	for i := 0; i < cfg.warmRuns; i++ {
		runHostd := func() error {
			mark := len(s.reg.Log())
			d, out, err := s.hostctl(ctx, "image", "pull", s.image)
			if err != nil {
				return err
			}
			fetched, present, bytes, ok := pullSummary(out)
			if !ok || fetched != 0 || present != r.layers {
				return fmt.Errorf("warm pull: want 0 layers fetched, %d present; hostctl said:\n%s", r.layers, out)
			}
			r.warmHostd = append(r.warmHostd, d)
			r.warmHostdBytes = append(r.warmHostdBytes, bytes)
			r.warmHostdTr = append(r.warmHostdTr, s.trafficSince(mark))
			r.warmHostdLine = firstLineWith(out, "bytes received")
			return nil
		}
		runSkopeo := func() error {
			settle()
			mark := len(s.reg.Log())
			d, err := timed(ctx, "skopeo", "copy", "--quiet", "--insecure-policy", "--src-tls-verify=false", src, "oci:"+oci+":1")
			if err != nil {
				return err
			}
			r.warmSkopeo = append(r.warmSkopeo, d)
			r.warmSkTr = append(r.warmSkTr, s.trafficSince(mark))
			return nil
		}
		order := []func() error{runHostd, runSkopeo}
		if i%2 == 1 {
			order = []func() error{runSkopeo, runHostd}
		}
		for _, f := range order {
			if err := f(); err != nil {
				return err
			}
		}
		report.Progress("warm pull %d/%d: hostctl image pull %s ms, skopeo copy %s ms", i+1, cfg.warmRuns, stats.MS(last(r.warmHostd)), stats.MS(last(r.warmSkopeo)))
	}
	return nil
}

// trafficSince sums the requests the registry logged after mark (a length
// of its log), once its access log has caught up.
func (s *sandbox) trafficSince(mark int) traffic {
	time.Sleep(50 * time.Millisecond) // the access log line is written after the answer
	return sumTraffic(parseAccessLog(s.reg.Log()[mark:]))
}

func blobHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func last(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[len(ds)-1]
}

func removeSysroot(sr *sysroot) {
	if err := fixture.RemoveAll(sr.dir); err != nil {
		report.Progress("remove %s: %v", sr.dir, err)
	}
}

func firstLineWith(out, sub string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

func (r *pullResult) print(w io.Writer) {
	h, k, c := summarize(r.hostd), summarize(r.skopeo), summarize(r.commits)
	fmt.Fprintf(w, "\n## Pull and import of a multi-layer image\n\n")
	fmt.Fprintf(w, "%d cold runs, each on a fresh sysroot (hostd) and into a fresh oci: directory and bare repo (peers), prepared in %s in all (not timed); the tools take turns, who goes first alternates. Times are whole processes.\n\n",
		h.N, r.prepare.Round(time.Second))
	fmt.Fprintf(w, "| cold pull | runs | min ms | median ms | max ms |\n|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| `hostctl image pull` through hostd (fetch, unpack, commit each layer) | %d | %s | %s | %s |\n", h.N, stats.MS(h.Min), stats.MS(h.Median), stats.MS(h.Max))
	fmt.Fprintf(w, "| `skopeo copy docker://… oci:DIR` (fetch, store the blobs as they are) | %d | %s | %s | %s |\n", k.N, stats.MS(k.Min), stats.MS(k.Median), stats.MS(k.Max))
	if c.N > 0 {
		sum := make([]time.Duration, c.N)
		for i := range sum {
			sum[i] = r.skopeo[i] + r.commits[i]
		}
		sc := summarize(sum)
		fmt.Fprintf(w, "| `tar -xzf` then `ostree commit --tree=dir=` of each of the %d layers skopeo stored | %d | %s | %s | %s |\n", r.layers, c.N, stats.MS(c.Min), stats.MS(c.Median), stats.MS(c.Max))
		fmt.Fprintf(w, "| skopeo copy + tar + ostree commit of every layer (the same import with the CLIs) | %d | %s | %s | %s |\n", sc.N, stats.MS(sc.Min), stats.MS(sc.Median), stats.MS(sc.Max))
		fmt.Fprintf(w, "\nRatio hostd / skopeo: **%s** (ratio of medians; run by run %s). Ratio hostd / (skopeo + tar + ostree commit): **%s**.\n",
			ratio(int64(h.Median), int64(k.Median)), spread(r.pairRatios), ratio(int64(h.Median), int64(sc.Median)))
	} else {
		fmt.Fprintf(w, "\nRatio hostd / skopeo: **%s** (ratio of medians; run by run %s).\n", ratio(int64(h.Median), int64(k.Median)), spread(r.pairRatios))
	}
	if t := summarize(r.hostdTxn); t.N > 0 {
		fmt.Fprintf(w, "\nhostd's transaction alone (its first step announced to Finished, seen on the bus): median %s ms, so %s ms of the median are hostctl's start, the D-Bus calls and the queueing around it.\n",
			stats.MS(t.Median), stats.MS(h.Median-t.Median))
	}
	hb, ht, kt := medianOf(r.hostdBytes), medTraffic(r.hostdTraffic), medTraffic(r.skTraffic)
	fmt.Fprintf(w, "\n| cold pull, what moved (medians) | hostd | skopeo |\n|---|---|---|\n")
	fmt.Fprintf(w, "| requests to the registry | %d | %d |\n", ht.Requests, kt.Requests)
	fmt.Fprintf(w, "| blob downloads (GET …/blobs/sha256:…) | %d | %d |\n", ht.BlobGets, kt.BlobGets)
	fmt.Fprintf(w, "| bytes the registry sent (access log) | %s | %s |\n", mib(ht.Bytes), mib(kt.Bytes))
	fmt.Fprintf(w, "| layer bytes received (hostd's own count) | %s | |\n", mib(hb))
	hg, kg := medGrowth(r.hostdGrowth), medGrowth(r.skGrowth)
	fmt.Fprintf(w, "| new files / directories / other inodes written | %d / %d / %d | %d / %d / %d |\n", hg.Files, hg.Dirs, hg.Other, kg.Files, kg.Dirs, kg.Other)
	fmt.Fprintf(w, "| apparent size of the new files | %s | %s |\n", mib(hg.FileBytes), mib(kg.FileBytes))
	fmt.Fprintf(w, "| blocks allocated to new inodes | %s | %s |\n", mib(hg.Allocated), mib(kg.Allocated))
	io := medIO(r.hostdIO)
	fmt.Fprintf(w, "| hostd write_bytes / wchar (/proc/PID/io) | %s / %s | |\n", mib(io.WriteBytes), mib(io.WChar))
	if len(r.ostreeGrowth) > 0 {
		og := medGrowth(r.ostreeGrowth)
		fmt.Fprintf(w, "\nThe ostree peer's repo gained %d files (%s, %s allocated) and %d directories for the same layers.\n", og.Files, mib(og.FileBytes), mib(og.Allocated), og.Dirs)
	}

	wh, wk := summarize(r.warmHostd), summarize(r.warmSkopeo)
	wht, wkt := medTraffic(r.warmHostdTr), medTraffic(r.warmSkTr)
	fmt.Fprintf(w, "\n### Warm pull (every layer present)\n\n")
	fmt.Fprintf(w, "%d runs on the first cold run's sysroot and oci: directory.\n\n", wh.N)
	fmt.Fprintf(w, "| warm pull | runs | min ms | median ms | max ms | requests | blob downloads | bytes sent by the registry |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| `hostctl image pull` | %d | %s | %s | %s | %d | %d | %s |\n", wh.N, stats.MS(wh.Min), stats.MS(wh.Median), stats.MS(wh.Max), wht.Requests, wht.BlobGets, mib(wht.Bytes))
	fmt.Fprintf(w, "| `skopeo copy` into the same oci: directory | %d | %s | %s | %s | %d | %d | %s |\n", wk.N, stats.MS(wk.Min), stats.MS(wk.Median), stats.MS(wk.Max), wkt.Requests, wkt.BlobGets, mib(wkt.Bytes))
	fmt.Fprintf(w, "\nRatio hostd / skopeo (warm): **%s**. hostd reports %s layer bytes received (\"%s\").\n",
		ratio(int64(wh.Median), int64(wk.Median)), mib(medianOf(r.warmHostdBytes)), r.warmHostdLine)
}

func medTraffic(ts []traffic) traffic {
	var req, gets, bb, b []int64
	for _, t := range ts {
		req = append(req, int64(t.Requests))
		gets = append(gets, int64(t.BlobGets))
		bb = append(bb, t.BlobBytes)
		b = append(b, t.Bytes)
	}
	return traffic{Requests: int(medianOf(req)), BlobGets: int(medianOf(gets)), BlobBytes: medianOf(bb), Bytes: medianOf(b)}
}

func medGrowth(gs []growth) growth {
	pick := func(f func(growth) int64) int64 {
		v := make([]int64, len(gs))
		for i, g := range gs {
			v[i] = f(g)
		}
		return medianOf(v)
	}
	return growth{
		Files:     int(pick(func(g growth) int64 { return int64(g.Files) })),
		Dirs:      int(pick(func(g growth) int64 { return int64(g.Dirs) })),
		Other:     int(pick(func(g growth) int64 { return int64(g.Other) })),
		FileBytes: pick(func(g growth) int64 { return g.FileBytes }),
		Allocated: pick(func(g growth) int64 { return g.Allocated }),
		Grown:     pick(func(g growth) int64 { return g.Grown }),
		Names:     int(pick(func(g growth) int64 { return int64(g.Names) })),
	}
}

func medIO(cs []ioCounters) ioCounters {
	var wb, wc, rb []int64
	for _, c := range cs {
		wb, wc, rb = append(wb, c.WriteBytes), append(wc, c.WChar), append(rb, c.ReadBytes)
	}
	return ioCounters{WriteBytes: medianOf(wb), WChar: medianOf(wc), ReadBytes: medianOf(rb)}
}
