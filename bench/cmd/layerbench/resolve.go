package main

import (
	"context"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"github.com/hostctl/hostctl/bench/internal/stats"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/layering"
	"github.com/hostctl/hostctl/tests/fixture"
)

// resolveResult holds the resolve benchmark's measurements.
type resolveResult struct {
	repo *genRepo
	// hostctl's metadata step (fetch, checksum, decompress; when warm,
	// repomd.xml only) and resolve step (Layerer.Resolve), and their sum.
	mdCold, mdWarm, solveCold, solveWarm, hostCold, hostWarm []time.Duration
	dnfCold, dnfWarm                                         []time.Duration
	hostctlSet, dnfSet                                       int
	solvMiB, dnfCacheMiB                                     string
}

// benchResolve generates the repository, serves it, and times hostctl's
// resolve path and dnf --assumeno on the same request, cold and warm, the
// two taking turns.
func benchResolve(ctx context.Context, cfg config, dir string) (*resolveResult, error) {
	report.Progress("resolve: generating a repository of %d packages", cfg.packages)
	repo, err := generateRepo(filepath.Join(dir, "repo"), cfg.packages, cfg.seed)
	if err != nil {
		return nil, fmt.Errorf("generate the repository: %w", err)
	}
	report.Progress("resolve: generated in %s: primary.xml %s MiB (%s MiB gzip), request %s (closure %d)",
		repo.took.Round(time.Millisecond), mib(repo.primaryOpen), mib(repo.primarySize), repo.request, repo.closure)
	r := &resolveResult{repo: repo}
	srv, err := fixture.NewServer(repo.dir)
	if err != nil {
		return nil, err
	}
	defer srv.Close()

	o, err := fixture.BuildOS(ctx)
	if err != nil {
		return nil, fmt.Errorf("build the test OS: %w", err)
	}
	// hostctl resolves against the base commit's rpmdb in the repository,
	// as hostd does; dnf against a plain checkout of the same commit.
	osRepo, err := deploy.OpenRepo(ctx, o.RepoPath)
	if err != nil {
		return nil, err
	}
	defer osRepo.Close()
	root := filepath.Join(dir, "dnf-root")
	if err := o.Checkout(ctx, "1", root); err != nil {
		return nil, err
	}
	repos, err := layering.ParseRepoFile("gen.repo", strings.NewReader(fixture.YumRepoFile("gen", srv.URL())), nil)
	if err != nil {
		return nil, err
	}
	peer, err := newDnfPeer(filepath.Join(dir, "dnf"), "gen", srv.URL(), true)
	if err != nil {
		return nil, err
	}
	base := o.Commit("1")

	hostRun := func(cache string, warm bool) error {
		settle()
		l := &layering.Layerer{Repo: osRepo, CacheDir: cache, TmpDir: filepath.Join(dir, "tmp")}
		t0 := time.Now()
		md, err := layering.RefreshMetadata(ctx, cache, repos, false)
		if err != nil {
			return err
		}
		t1 := time.Now()
		plan, err := l.Resolve(ctx, base, "1", md, []string{repo.request})
		if err != nil {
			return err
		}
		t2 := time.Now()
		r.hostctlSet = len(plan.Packages)
		if warm {
			r.mdWarm, r.solveWarm, r.hostWarm = append(r.mdWarm, t1.Sub(t0)), append(r.solveWarm, t2.Sub(t1)), append(r.hostWarm, t2.Sub(t0))
		} else {
			r.mdCold, r.solveCold, r.hostCold = append(r.mdCold, t1.Sub(t0)), append(r.solveCold, t2.Sub(t1)), append(r.hostCold, t2.Sub(t0))
		}
		report.Progress("resolve: hostctl %s %s ms (metadata %s, resolve %s): %d packages", coldWarm(warm), stats.MS(t2.Sub(t0)), stats.MS(t1.Sub(t0)), stats.MS(t2.Sub(t1)), len(plan.Packages))
		return nil
	}
	dnfRun := func(cache string, warm bool) error {
		d, out, err := peer.run(ctx, root, cache, true, "install", "--assumeno", repo.request)
		if err != nil {
			return err
		}
		if r.dnfSet, err = dnfInstallSize(out); err != nil {
			return err
		}
		if warm {
			r.dnfWarm = append(r.dnfWarm, d)
		} else {
			r.dnfCold = append(r.dnfCold, d)
		}
		report.Progress("resolve: dnf %s %s ms: %d packages", coldWarm(warm), stats.MS(d), r.dnfSet)
		return nil
	}
	var hostCache, dnfCache string
	for i := 0; i < cfg.resolveCold; i++ {
		hostCache = filepath.Join(dir, fmt.Sprintf("hostctl-cache-%d", i))
		dnfCache = filepath.Join(dir, fmt.Sprintf("dnf-cache-%d", i))
		if err := inTurn(i, func() error { return hostRun(hostCache, false) }, func() error { return dnfRun(dnfCache, false) }); err != nil {
			return nil, err
		}
	}
	r.solvMiB = mib(dirSize(filepath.Join(hostCache, "solv")))
	r.dnfCacheMiB = mib(dirSize(dnfCache))
	for i := 0; i < cfg.resolveWarm; i++ {
		if err := inTurn(i, func() error { return hostRun(hostCache, true) }, func() error { return dnfRun(dnfCache, true) }); err != nil {
			return nil, err
		}
	}
	os.RemoveAll(filepath.Join(dir, "tmp"))
	return r, nil
}

func (r *resolveResult) print(w io.Writer) {
	g := r.repo
	fmt.Fprintf(w, "\n## Loading and resolving against a repository the size of Fedora's\n\n")
	fmt.Fprintf(w, "Generated repository: %d packages; primary.xml %s MiB (%s MiB gzip), with filelists and other; generated in %s, not timed. Request: `%s`, which needs %d packages by its requires (more with weak dependencies). Installed set: HostOS 1's rpmdb. Served over loopback HTTP.\n\n",
		g.packages, mib(g.primaryOpen), mib(g.primarySize), g.took.Round(time.Second), g.request, g.closure)
	hc, hw, dc, dw := stats.Summarize(r.hostCold), stats.Summarize(r.hostWarm), stats.Summarize(r.dnfCold), stats.Summarize(r.dnfWarm)
	mc, mw, sc, sw := stats.Summarize(r.mdCold), stats.Summarize(r.mdWarm), stats.Summarize(r.solveCold), stats.Summarize(r.solveWarm)
	fmt.Fprintf(w, "| run | runs | min ms | median ms | max ms | ratio of medians |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| hostctl, cold (fetch + Layerer.Resolve from XML) | %d | %s | %s | %s | %s |\n", hc.N, stats.MS(hc.Min), stats.MS(hc.Median), stats.MS(hc.Max), stats.Ratio(hc.Median, dc.Median))
	fmt.Fprintf(w, "| `dnf --installroot install --assumeno`, cold | %d | %s | %s | %s | 1 |\n", dc.N, stats.MS(dc.Min), stats.MS(dc.Median), stats.MS(dc.Max))
	fmt.Fprintf(w, "| hostctl, warm (repomd.xml check + Resolve from .solv) | %d | %s | %s | %s | %s |\n", hw.N, stats.MS(hw.Min), stats.MS(hw.Median), stats.MS(hw.Max), stats.Ratio(hw.Median, dw.Median))
	fmt.Fprintf(w, "| `dnf --installroot install --assumeno`, warm | %d | %s | %s | %s | 1 |\n", dw.N, stats.MS(dw.Min), stats.MS(dw.Median), stats.MS(dw.Max))
	fmt.Fprintf(w, "\nhostctl's two steps (medians): cold, metadata %s ms + resolve %s ms; warm, metadata %s ms + resolve %s ms. Caches after a cold run: hostctl's .solv %s MiB; dnf's cache %s MiB.\n",
		stats.MS(mc.Median), stats.MS(sc.Median), stats.MS(mw.Median), stats.MS(sw.Median), r.solvMiB, r.dnfCacheMiB)
	agree := "the same number"
	if r.hostctlSet != r.dnfSet {
		agree = "**different numbers**"
	}
	fmt.Fprintf(w, "\nBoth tools chose %s of packages: hostctl %d, dnf %d (weak dependencies on in both).\n", agree, r.hostctlSet, r.dnfSet)
}
