package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hostctl/hostctl/bench/internal/report"
	"github.com/hostctl/hostctl/bench/internal/stats"
	"github.com/hostctl/hostctl/tests/fixture"
)

// buildBigImage makes the big image of issue 17's pull comparison: six
// gzip'd layers, most of the bytes incompressible (like binaries), most of
// the files small text (like libraries and configuration). With the
// defaults (-big-files 6000, -big-random-mib 96) it is about 105 MB of
// blobs, 140 MB of file content and 6,100 tar entries.
func buildBigImage(files, randomMiB int) (*benchImage, error) {
	img := &benchImage{}
	add := func(name string, ents []fixture.TarEntry) error {
		l, err := fixture.Layer(ents)
		if err != nil {
			return fmt.Errorf("layer %s: %w", name, err)
		}
		img.layers = append(img.layers, l)
		img.names = append(img.names, name)
		img.entries += len(ents)
		img.compressed += int64(len(l))
		for _, e := range ents {
			img.raw += int64(len(e.Body))
		}
		return nil
	}
	base, err := fixture.BusyboxLayer()
	if err != nil {
		return nil, err
	}
	img.layers = append(img.layers, base)
	img.names = append(img.names, "busybox-static and the root directories")
	img.entries += 8
	img.compressed += int64(len(base))
	if fi, err := os.Stat("/bin/busybox"); err == nil {
		img.raw += fi.Size()
	}
	rng := rand.New(rand.NewPCG(3, 4))
	libs := files * 2 / 3
	if err := add(fmt.Sprintf("%d library-like files (text, 1-16 KiB)", libs), textFiles(rng, "usr/lib/big", libs, 1024, 16384)); err != nil {
		return nil, err
	}
	half := randomMiB / 2
	if err := add(fmt.Sprintf("%d MiB of incompressible data in 48 files", half), randomFiles(rng, "usr/share/big/data", 48, half<<20)); err != nil {
		return nil, err
	}
	if err := add(fmt.Sprintf("%d MiB of incompressible binaries in 12 files", randomMiB-half), randomFiles(rng, "usr/libexec/big", 12, (randomMiB-half)<<20)); err != nil {
		return nil, err
	}
	conf := files - libs
	if err := add(fmt.Sprintf("%d configuration files (64 B-1 KiB)", conf), textFiles(rng, "etc/big", conf, 64, 1024)); err != nil {
		return nil, err
	}
	if err := add("/exports: config.json.template, manifest.json, hostfs", fixture.HelloExports(fixture.HelloConfigTemplate(true))); err != nil {
		return nil, err
	}
	return img, nil
}

// bigPullResult holds the big-image pull comparison.
type bigPullResult struct {
	img                  *benchImage
	hostd, podman, cli   []time.Duration
	podmanDriver         string
	podmanVersion        string
	hostdRatio, cliRatio []float64 // run by run: hostd / podman, (skopeo+tar+ostree) / podman
	hostdGrowth          []growth
	podmanGrowth         []growth
	prepare              time.Duration
}

// benchBigPull pulls the big image, each run cold: through hostd into a fresh
// sysroot, with `podman pull` into a fresh --root (overlay, or vfs where the
// kernel refuses overlay here), and with skopeo copy + tar -xzf + ostree
// commit of every layer into a fresh bare repository. The three take turns,
// who goes first rotates.
func benchBigPull(ctx context.Context, s *sandbox, cfg config) (*bigPullResult, error) {
	t0 := time.Now()
	img, err := buildBigImage(cfg.bigFiles, cfg.bigRandomMiB)
	if err != nil {
		return nil, err
	}
	layout := filepath.Join(s.work, "big-layout")
	if _, err := fixture.OCILayout(layout, "1", img.layers); err != nil {
		return nil, err
	}
	ref, err := s.reg.Push(ctx, layout, "1", "ctrbench-big")
	if err != nil {
		return nil, err
	}
	os.RemoveAll(layout)
	r := &bigPullResult{img: img}
	if out, err := exec.CommandContext(ctx, "podman", "--version").Output(); err == nil {
		r.podmanVersion = strings.TrimSpace(string(out))
	}
	if r.podmanDriver, err = podmanDriver(ctx, s.work); err != nil {
		return nil, err
	}
	r.prepare = time.Since(t0)
	report.Progress("bigpull: image %s pushed as %s in %s; podman storage driver %s", img.describe(), ref, r.prepare.Round(time.Millisecond), r.podmanDriver)

	for i := 0; i < cfg.bigRuns; i++ {
		sr, err := s.newSysroot(ctx, fmt.Sprintf("bigpull-%d", i))
		if err != nil {
			return nil, err
		}
		h, err := s.startHostd(ctx, sr)
		if err != nil {
			return nil, err
		}
		proot := filepath.Join(s.work, fmt.Sprintf("podman-%d", i))
		oci := filepath.Join(s.work, fmt.Sprintf("bigoci-%d", i))
		repo := filepath.Join(s.work, fmt.Sprintf("bigostree-%d", i))
		var hd, pd, cd time.Duration
		runHostd := func() error {
			before, err := takeSnapshot(sr.dir)
			if err != nil {
				return err
			}
			d, out, err := s.hostctl(ctx, "image", "pull", ref)
			if err != nil {
				return fmt.Errorf("%w\nhostd log:\n%s", err, h.Log)
			}
			if fetched, _, _, ok := pullSummary(out); !ok || fetched != len(img.layers) {
				return fmt.Errorf("cold pull of the big image: want %d layers fetched; hostctl said:\n%s", len(img.layers), out)
			}
			after, err := takeSnapshot(sr.dir)
			if err != nil {
				return err
			}
			r.hostdGrowth = append(r.hostdGrowth, diff(before, after))
			hd = d
			return nil
		}
		runPodman := func() error {
			settle()
			d, err := timed(ctx, "podman", podmanArgs(proot, r.podmanDriver, "pull", "--quiet", "--tls-verify=false", ref)...)
			if err != nil {
				return err
			}
			g, err := takeSnapshot(proot)
			if err != nil {
				return err
			}
			r.podmanGrowth = append(r.podmanGrowth, diff(emptySnapshot(), g))
			pd = d
			return nil
		}
		runCLI := func() error {
			if _, err := timed(ctx, "ostree", "init", "--repo="+repo, "--mode=bare"); err != nil {
				return err
			}
			settle()
			d, err := timed(ctx, "skopeo", "copy", "--quiet", "--insecure-policy", "--src-tls-verify=false", "docker://"+ref, "oci:"+oci+":1")
			if err != nil {
				return err
			}
			total := d
			for n, l := range img.layers {
				tmp := filepath.Join(repo, "tmp", fmt.Sprintf("layer-%d", n))
				if err := os.MkdirAll(tmp, 0o755); err != nil {
					return err
				}
				d1, err := timed(ctx, "tar", "-xzf", filepath.Join(oci, "blobs", "sha256", blobHex(l)), "-C", tmp)
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
			cd = total
			return nil
		}
		order := []func() error{runHostd, runPodman, runCLI}
		order = append(order[i%3:], order[:i%3]...)
		for _, f := range order {
			if err := f(); err != nil {
				h.Stop()
				return nil, err
			}
		}
		h.Stop()
		removeSysroot(sr)
		fixture.RemoveAll(proot)
		os.RemoveAll(oci)
		os.RemoveAll(repo)
		r.hostd, r.podman, r.cli = append(r.hostd, hd), append(r.podman, pd), append(r.cli, cd)
		r.hostdRatio = append(r.hostdRatio, float64(hd)/float64(pd))
		r.cliRatio = append(r.cliRatio, float64(cd)/float64(pd))
		report.Progress("bigpull %d/%d: hostctl image pull %s ms, podman pull (%s) %s ms, skopeo + tar + ostree commit %s ms",
			i+1, cfg.bigRuns, stats.MS(hd), r.podmanDriver, stats.MS(pd), stats.MS(cd))
	}
	return r, nil
}

// podmanArgs are podman's global flags for a private store under root.
func podmanArgs(root, driver string, args ...string) []string {
	return append([]string{"--root", filepath.Join(root, "storage"), "--runroot", filepath.Join(root, "run"),
		"--storage-driver", driver, "--events-backend", "file", "--cgroup-manager", "cgroupfs", "--tmpdir", filepath.Join(root, "tmp")}, args...)
}

// podmanDriver picks overlay when podman can use it on this filesystem
// (`podman info` on a fresh root sets it up and checks it), vfs otherwise.
func podmanDriver(ctx context.Context, work string) (string, error) {
	if _, err := exec.LookPath("podman"); err != nil {
		return "", fmt.Errorf("podman is missing: run `make deps` (it installs podman) or leave bigpull out of -only")
	}
	root := filepath.Join(work, "podman-probe")
	defer fixture.RemoveAll(root)
	out, err := exec.CommandContext(ctx, "podman", podmanArgs(root, "overlay", "info", "--format", "{{.Store.GraphDriverName}}")...).CombinedOutput()
	if err == nil && strings.TrimSpace(string(out)) == "overlay" {
		return "overlay", nil
	}
	report.Progress("bigpull: podman cannot use overlay here (%v: %s); using vfs", err, strings.TrimSpace(string(out)))
	return "vfs", nil
}

func (r *bigPullResult) print(w io.Writer) {
	h, p, c := summarize(r.hostd), summarize(r.podman), summarize(r.cli)
	fmt.Fprintf(w, "\n## Pull of a big image: hostd against podman pull\n\n")
	fmt.Fprintf(w, "Image: %s\n\n", r.img.describe())
	fmt.Fprintf(w, "%d cold runs; each tool pulls from the same registry into a fresh place (a fresh sysroot, a fresh podman --root with the %s driver, a fresh oci: directory and bare repo); the three take turns, who goes first rotates. Peer: %s. Image built and pushed in %s (not timed).\n\n",
		h.N, r.podmanDriver, r.podmanVersion, r.prepare.Round(time.Second))
	fmt.Fprintf(w, "| cold pull of the big image | runs | min ms | median ms | max ms | ratio to podman |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| `hostctl image pull` through hostd | %d | %s | %s | %s | **%s** |\n", h.N, stats.MS(h.Min), stats.MS(h.Median), stats.MS(h.Max), ratio(int64(h.Median), int64(p.Median)))
	fmt.Fprintf(w, "| `podman pull` into a fresh --root (%s) | %d | %s | %s | %s | 1 |\n", r.podmanDriver, p.N, stats.MS(p.Min), stats.MS(p.Median), stats.MS(p.Max))
	fmt.Fprintf(w, "| skopeo copy + `tar -xzf` + `ostree commit` of every layer | %d | %s | %s | %s | %s |\n", c.N, stats.MS(c.Min), stats.MS(c.Median), stats.MS(c.Max), ratio(int64(c.Median), int64(p.Median)))
	fmt.Fprintf(w, "\nRun by run, hostd / podman %s; CLI import / podman %s.\n", spread(r.hostdRatio), spread(r.cliRatio))
	hg, pg := medGrowth(r.hostdGrowth), medGrowth(r.podmanGrowth)
	fmt.Fprintf(w, "\n| written (medians) | hostd | podman |\n|---|---|---|\n")
	fmt.Fprintf(w, "| new files / directories / other inodes | %d / %d / %d | %d / %d / %d |\n", hg.Files, hg.Dirs, hg.Other, pg.Files, pg.Dirs, pg.Other)
	fmt.Fprintf(w, "| apparent size of the new files | %s | %s |\n", mib(hg.FileBytes), mib(pg.FileBytes))
	fmt.Fprintf(w, "| blocks allocated to new inodes | %s | %s |\n", mib(hg.Allocated), mib(pg.Allocated))
}
