package main

import (
	"context"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"github.com/hostctl/hostctl/bench/internal/stats"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// installPhases are the steps hostd announces during `container install`,
// in order; "" is hostctl's start up to the first of them, and the last one
// lasts until hostd's Finished signal.
var installPhases = []struct{ stage, label string }{
	{"", "hostctl start, D-Bus call, transaction begin, image lookup"},
	{"checkout", "checkout of the layers (hardlinks) and rendering"},
	{"activate", "symlink flip, origin written"},
	{"host-files", "unit, tmpfiles, hostfs files, reload, enable"},
	{"start", "start: runc run, then the direct mode's settle wait"},
}

// installResult holds the install benchmark's measurements.
type installResult struct {
	layers int
	// hostd: the whole `hostctl container install`, and up to the start step.
	hostd, hostdNoStart  []time.Duration
	phases               [][]time.Duration
	tail                 []time.Duration // Finished to hostctl's exit
	hostdGrowth          []growth
	hostdIO              []ioCounters
	shared, checked      int // rootfs files shared with the first container, out of checked
	tar, cp, checkout    []time.Duration
	tarG, cpG, checkoutG []growth
	rootfsFiles          int
	rootfsBytes          int64
	ratioTar, ratioCp    []float64 // hostd up to start / peer, run by run
	ratioCheckout        []float64
	first                time.Duration // the first container's install (not a peer)
}

// benchInstall installs a first container from the image the pull
// benchmark left in its first sysroot, then times installing more
// containers of the same image against making the same rootfs without
// deduplication.
func benchInstall(ctx context.Context, s *sandbox, cfg config, pr *pullResult) (*installResult, error) {
	sr := pr.keep
	h, err := s.startHostd(ctx, sr)
	if err != nil {
		return nil, err
	}
	defer h.Stop()
	r := &installResult{layers: len(s.img.layers), phases: make([][]time.Duration, len(installPhases))}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if _, r.first, _, err = s.hostctlAt(ctx, "container", "install", "--name", "first", "--set", fmt.Sprintf("PORT=%d", port), s.image); err != nil {
		return nil, fmt.Errorf("%w\nhostd log:\n%s", err, h.Log)
	}
	firstRootfs := filepath.Join(sr.ctrDir, "first.0", "rootfs")
	fs0, err := takeSnapshot(firstRootfs)
	if err != nil {
		return nil, err
	}
	for _, in := range fs0.inodes {
		if in.mode.IsRegular() {
			r.rootfsFiles++
			r.rootfsBytes += in.size
		}
	}
	report.Progress("install: first container installed in %s ms; its rootfs has %d files, %s", stats.MS(r.first), r.rootfsFiles, mib(r.rootfsBytes))
	repo := filepath.Join(sr.dir, "ostree", "repo")
	layerRefs := make([]string, len(s.img.layers))
	for i, l := range s.img.layers {
		layerRefs[i] = "ociimage/" + blobHex(l)
	}

	repoSnap, err := takeSnapshot(repo)
	if err != nil {
		return nil, err
	}
	w, err := s.watchSteps()
	if err != nil {
		return nil, err
	}
	defer w.close()
	for i := 0; i < cfg.installRuns; i++ {
		name := fmt.Sprintf("c%d", i)
		var hNoStart time.Duration
		runHostd := func() error {
			port, err := freePort()
			if err != nil {
				return err
			}
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
			w.reset()
			t0, d, _, err := s.hostctlAt(ctx, "container", "install", "--name", name, "--set", fmt.Sprintf("PORT=%d", port), s.image)
			if err != nil {
				return fmt.Errorf("%w\nhostd log:\n%s", err, h.Log)
			}
			steps, end := w.marks()
			io1, err := readIO(pid)
			if err != nil {
				return err
			}
			after, err := takeSnapshot(sr.dir)
			if err != nil {
				return err
			}
			marks := []time.Time{t0}
			for _, ph := range installPhases[1:] {
				t, ok := steps[ph.stage]
				if !ok {
					return fmt.Errorf("hostd never announced the step %q of an install: update bench/cmd/ctrbench/install.go to hostd's steps", ph.stage)
				}
				marks = append(marks, t)
			}
			if end.IsZero() {
				return fmt.Errorf("no Finished signal seen for the install of %s", name)
			}
			marks = append(marks, end)
			for k := range installPhases {
				r.phases[k] = append(r.phases[k], marks[k+1].Sub(marks[k]))
			}
			r.tail = append(r.tail, t0.Add(d).Sub(end))
			hNoStart = steps["start"].Sub(t0)
			r.hostd = append(r.hostd, d)
			r.hostdNoStart = append(r.hostdNoStart, hNoStart)
			r.hostdGrowth = append(r.hostdGrowth, diff(before, after))
			r.hostdIO = append(r.hostdIO, io1.sub(io0))
			for _, f := range []string{"bin/busybox", "usr/share/bench/data/blob0.bin", "etc/bench/d0/f0.so", "exports/manifest.json"} {
				a, err1 := os.Stat(filepath.Join(firstRootfs, f))
				b, err2 := os.Stat(filepath.Join(sr.ctrDir, name+".0", "rootfs", f))
				if err1 != nil || err2 != nil {
					return fmt.Errorf("rootfs of %s: %v %v", name, err1, err2)
				}
				r.checked++
				if os.SameFile(a, b) {
					r.shared++
				}
			}
			return nil
		}
		peerDir := func(kind string) (string, error) {
			d := filepath.Join(s.work, fmt.Sprintf("%s-%d", kind, i))
			return filepath.Join(d, "rootfs"), os.MkdirAll(d, 0o755)
		}
		runTar := func() error {
			dst, err := peerDir("tar")
			if err != nil {
				return err
			}
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			settle()
			start := time.Now()
			for _, l := range s.img.layers {
				blob := filepath.Join(pr.keepOCI, "blobs", "sha256", blobHex(l))
				if out, err := exec.CommandContext(ctx, "tar", "-xzf", blob, "-C", dst).CombinedOutput(); err != nil {
					return fmt.Errorf("tar -xzf %s: %w\n%s", blob, err, out)
				}
			}
			r.tar = append(r.tar, time.Since(start))
			return addPeer(&r.tarG, dst, emptySnapshot())
		}
		runCp := func() error {
			dst, err := peerDir("cp")
			if err != nil {
				return err
			}
			settle()
			d, err := timed(ctx, "cp", "-a", firstRootfs, dst)
			if err != nil {
				return err
			}
			r.cp = append(r.cp, d)
			return addPeer(&r.cpG, dst, emptySnapshot())
		}
		runCheckout := func() error {
			dst, err := peerDir("checkout")
			if err != nil {
				return err
			}
			settle()
			start := time.Now()
			for _, ref := range layerRefs {
				if out, err := exec.CommandContext(ctx, "ostree", "--repo="+repo, "checkout", "--union", "--whiteouts", "--require-hardlinks", ref, dst).CombinedOutput(); err != nil {
					return fmt.Errorf("ostree checkout %s: %w\n%s", ref, err, out)
				}
			}
			r.checkout = append(r.checkout, time.Since(start))
			return addPeer(&r.checkoutG, dst, repoSnap)
		}
		order := []func() error{runHostd, runTar, runCp, runCheckout}
		k := i % len(order)
		order = append(order[k:], order[:k]...)
		for _, f := range order {
			if err := f(); err != nil {
				return nil, err
			}
		}
		r.ratioTar = append(r.ratioTar, float64(hNoStart)/float64(last(r.tar)))
		r.ratioCp = append(r.ratioCp, float64(hNoStart)/float64(last(r.cp)))
		r.ratioCheckout = append(r.ratioCheckout, float64(hNoStart)/float64(last(r.checkout)))
		report.Progress("install %d/%d: hostctl container install %s ms (%s ms before the start step), tar -xzf %s ms, cp -a %s ms, ostree checkout %s ms",
			i+1, cfg.installRuns, stats.MS(last(r.hostd)), stats.MS(hNoStart), stats.MS(last(r.tar)), stats.MS(last(r.cp)), stats.MS(last(r.checkout)))
	}
	return r, nil
}

// addPeer records what a peer wrote into dst, a directory it made: every
// inode under it that base (what existed before: the repo, for a checkout
// that hardlinks its objects) does not have, and every name under it.
func addPeer(to *[]growth, dst string, base *snapshot) error {
	snap, err := takeSnapshot(dst)
	if err != nil {
		return err
	}
	g := diff(base, snap)
	g.Names = snap.names
	*to = append(*to, g)
	return nil
}

// hostctlAt is hostctl as a whole process, with the time it started.
func (s *sandbox) hostctlAt(ctx context.Context, args ...string) (time.Time, time.Duration, string, error) {
	settle()
	t0 := time.Now()
	d, out, err := s.hostctlNoSettle(ctx, args...)
	return t0, d, out, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *installResult) print(w io.Writer) {
	h, hn := summarize(r.hostd), summarize(r.hostdNoStart)
	t, c, o := summarize(r.tar), summarize(r.cp), summarize(r.checkout)
	fmt.Fprintf(w, "\n## Install of another container from an image already present\n\n")
	fmt.Fprintf(w, "The image is pulled and one container of it (`first`) is installed and running (its install took %s ms, not a peer); its rootfs has %d regular files, %s. Each run installs one more container of the same image under a new name and port, and makes the same rootfs the non-deduplicated ways; the four take turns, who goes first rotates. Times are wall-clock, whole processes.\n\n",
		stats.MS(r.first), r.rootfsFiles, mib(r.rootfsBytes))
	fmt.Fprintf(w, "| install | runs | min ms | median ms | max ms |\n|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| `hostctl container install` (whole, service started) | %d | %s | %s | %s |\n", h.N, stats.MS(h.Min), stats.MS(h.Median), stats.MS(h.Max))
	fmt.Fprintf(w, "| the same, up to hostd's start step (rootfs, config, unit and host files ready) | %d | %s | %s | %s |\n", hn.N, stats.MS(hn.Min), stats.MS(hn.Median), stats.MS(hn.Max))
	fmt.Fprintf(w, "| `tar -xzf` of the %d layer blobs from the oci: directory into a new rootfs | %d | %s | %s | %s |\n", r.layers, t.N, stats.MS(t.Min), stats.MS(t.Median), stats.MS(t.Max))
	fmt.Fprintf(w, "| `cp -a` of the first container's rootfs | %d | %s | %s | %s |\n", c.N, stats.MS(c.Min), stats.MS(c.Median), stats.MS(c.Max))
	fmt.Fprintf(w, "| `ostree checkout --union --whiteouts --require-hardlinks` of the %d layer commits | %d | %s | %s | %s |\n", r.layers, o.N, stats.MS(o.Min), stats.MS(o.Median), stats.MS(o.Max))
	fmt.Fprintf(w, "\nRatios of medians, hostd up to its start step / peer: tar **%s** (run by run %s), cp -a **%s** (%s), ostree checkout **%s** (%s).\n",
		ratio(int64(hn.Median), int64(t.Median)), spread(r.ratioTar), ratio(int64(hn.Median), int64(c.Median)), spread(r.ratioCp),
		ratio(int64(hn.Median), int64(o.Median)), spread(r.ratioCheckout))

	fmt.Fprintf(w, "\nWhere hostd's time goes (medians, from the steps hostd announces, client-side timestamps):\n\n| step | median ms | share |\n|---|---|---|\n")
	for k, ph := range installPhases {
		sm := summarize(r.phases[k])
		fmt.Fprintf(w, "| %s | %s | %.0f%% |\n", ph.label, stats.MS(sm.Median), 100*float64(sm.Median)/float64(h.Median))
	}
	tl := summarize(r.tail)
	fmt.Fprintf(w, "| Finished signal to hostctl's exit | %s | %.0f%% |\n", stats.MS(tl.Median), 100*float64(tl.Median)/float64(h.Median))

	hg, tg, cg, og := medGrowth(r.hostdGrowth), medGrowth(r.tarG), medGrowth(r.cpG), medGrowth(r.checkoutG)
	io := medIO(r.hostdIO)
	fmt.Fprintf(w, "\nWhat each wrote (medians; new inodes found by walking the sysroot, or the peer's directory, before and after):\n\n")
	fmt.Fprintf(w, "| written | hostd install | tar -xzf | cp -a | ostree checkout |\n|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| new regular files | %d | %d | %d | %d |\n", hg.Files, tg.Files, cg.Files, og.Files)
	fmt.Fprintf(w, "| apparent size of the new files | %s | %s | %s | %s |\n", mib(hg.FileBytes), mib(tg.FileBytes), mib(cg.FileBytes), mib(og.FileBytes))
	fmt.Fprintf(w, "| new directories / other inodes | %d / %d | %d / %d | %d / %d | %d / %d |\n", hg.Dirs, hg.Other, tg.Dirs, tg.Other, cg.Dirs, cg.Other, og.Dirs, og.Other)
	fmt.Fprintf(w, "| new names (hardlinks to existing files included) | %d | %d | %d | %d |\n", hg.Names, tg.Names, cg.Names, og.Names)
	fmt.Fprintf(w, "| blocks allocated to new inodes | %s | %s | %s | %s |\n", mib(hg.Allocated), mib(tg.Allocated), mib(cg.Allocated), mib(og.Allocated))
	fmt.Fprintf(w, "| bytes existing files grew by | %s | | | |\n", mib(hg.Grown))
	fmt.Fprintf(w, "| hostd write_bytes / wchar (/proc/PID/io) | %s / %s | | | |\n", mib(io.WriteBytes), mib(io.WChar))
	fmt.Fprintf(w, "\nBytes ratio (new file bytes) hostd / tar: **%s**, hostd / cp -a: **%s**; blocks allocated hostd / tar: **%s**. Rootfs files of each new container checked against the first container's: %d of %d are the same inode.\n",
		fineRatio(hg.FileBytes, tg.FileBytes), fineRatio(hg.FileBytes, cg.FileBytes), fineRatio(hg.Allocated, tg.Allocated), r.shared, r.checked)
}
