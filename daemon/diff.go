package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/internal/rpmdb"
)

// A diff compares the packages of two deployments (or commits), as
// `rpm-ostree db diff` does: added, removed, upgraded and downgraded, read
// from each tree's rpmdb. A deployment's rpmdb is never opened where it is
// (sqlite writes beside a database even to read it, and a deployment's files
// are hardlinks into the repository's objects): its files are copied into a
// private directory first, read there and removed.

// diffTimeout bounds one Diff call (copying and reading two rpmdbs).
const diffTimeout = 2 * time.Minute

// fullChecksumRe is a full commit checksum.
var fullChecksumRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// diffEnd is one side of a diff: a deployment, or a commit of the repository.
type diffEnd struct {
	// dep is set when the side is a deployment.
	dep *deploy.Deployment
	// commit is the side's commit.
	commit string
}

// name is how the diff names the side: the deployment ID, else the commit.
func (d diffEnd) name() string {
	if d.dep != nil {
		return d.dep.ID()
	}
	return d.commit
}

// resolveDiffEnd finds what ref names among deps: a deployment index (as
// `hostctl status` counts, 0 the default), a deployment ID, a full commit
// checksum, or a prefix of at least 8 hex digits of a deployment's commit.
func resolveDiffEnd(deps []deploy.Deployment, ref string) (diffEnd, error) {
	if n, err := strconv.Atoi(ref); err == nil && len(ref) < 4 {
		if n < 0 || n >= len(deps) {
			return diffEnd{}, errdefs.Errorf(errdefs.ErrNotFound, "no deployment with index %d: there are %d (0 is the default; `hostctl status` lists them)", n, len(deps))
		}
		d := deps[n]
		return diffEnd{dep: &d, commit: d.Checksum}, nil
	}
	for i := range deps {
		if deps[i].ID() == ref {
			d := deps[i]
			return diffEnd{dep: &d, commit: d.Checksum}, nil
		}
	}
	if len(ref) >= 8 && len(ref) <= 64 && strings.Trim(ref, "0123456789abcdef") == "" {
		var found []deploy.Deployment
		for _, d := range deps {
			if strings.HasPrefix(d.Checksum, ref) {
				found = append(found, d)
			}
		}
		if len(found) > 0 {
			// Deployments of one commit have the same packages: any will do.
			d := found[0]
			for _, f := range found[1:] {
				if f.Checksum != d.Checksum {
					return diffEnd{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "%q is the prefix of several deployments' commits: give more of it", ref)
				}
			}
			return diffEnd{dep: &d, commit: d.Checksum}, nil
		}
		if fullChecksumRe.MatchString(ref) {
			return diffEnd{commit: ref}, nil
		}
	}
	if !diffRefRe.MatchString(ref) {
		return diffEnd{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "%q is not a deployment index, a deployment id (OSNAME-CHECKSUM.SERIAL) or a commit checksum", ref)
	}
	return diffEnd{}, errdefs.Errorf(errdefs.ErrNotFound, "%q names no deployment: give a deployment index, a deployment id or a commit checksum (`hostctl status` lists them)", ref)
}

// diffRefRe is what a diff side may look like: an index, a deployment id,
// a commit checksum or a prefix of one.
var diffRefRe = regexp.MustCompile(`^([0-9]+|[A-Za-z0-9_.-]+-[0-9a-f]{64}\.[0-9]+|[0-9a-f]{1,64})$`)

// defaultDiffEnds are the sides of a diff given without arguments: the
// booted deployment (on a sysroot that is not booted, the previous default,
// which plays its part) against the default one, as `rpm-ostree db diff`
// compares the booted deployment with the pending one. With one argument,
// that side against the default.
func defaultDiffEnds(deps []deploy.Deployment, from, to string) (diffEnd, diffEnd, error) {
	s, err := startOf(deps, "")
	if err != nil {
		return diffEnd{}, diffEnd{}, errdefs.Errorf(errdefs.ErrNotFound, "the sysroot has no deployment: there is nothing to compare")
	}
	def := s.def
	end := func(ref string, fallback func() diffEnd) (diffEnd, error) {
		if ref == "" {
			return fallback(), nil
		}
		return resolveDiffEnd(deps, ref)
	}
	b, err := end(to, func() diffEnd { return diffEnd{dep: &def, commit: def.Checksum} })
	if err != nil {
		return diffEnd{}, diffEnd{}, err
	}
	a, err := end(from, func() diffEnd {
		if s.merge.Booted {
			m := s.merge
			return diffEnd{dep: &m, commit: m.Checksum}
		}
		// Not booted: the deployment after the default in its stateroot.
		past := false
		for _, d := range deps {
			if past && d.OSName == def.OSName {
				return diffEnd{dep: &d, commit: d.Checksum}
			}
			past = past || d.ID() == def.ID()
		}
		return diffEnd{dep: &def, commit: def.Checksum}
	})
	if err != nil {
		return diffEnd{}, diffEnd{}, err
	}
	return a, b, nil
}

// Diff implements dbus.Engine: the package changes from one deployment (or
// commit) to another. from and to are deployment indexes, IDs or commit
// checksums; "" takes the defaults (see defaultDiffEnds). Read-only: it
// reads the deployments as last refreshed and never waits for a transaction
// unless a side is a commit that no deployment has (the repository is then
// read, which a transaction may hold for a moment).
func (e *Engine) Diff(from, to string) (dbus.PackageDiff, error) {
	ctx, cancel := context.WithTimeout(context.Background(), diffTimeout)
	defer cancel()
	a, b, err := defaultDiffEnds(e.cachedDeployments(), from, to)
	if err != nil {
		return dbus.PackageDiff{}, err
	}
	d, err := e.diffEnds(ctx, a, b)
	if err != nil {
		return dbus.PackageDiff{}, err
	}
	return diffData(a, b, d), nil
}

// diffEnds reads both sides' packages and compares them.
func (e *Engine) diffEnds(ctx context.Context, a, b diffEnd) (rpmdb.Diff, error) {
	old, err := e.packagesAt(ctx, a)
	if err != nil {
		return rpmdb.Diff{}, err
	}
	if a.commit == b.commit {
		return rpmdb.Diff{}, nil
	}
	cur, err := e.packagesAt(ctx, b)
	if err != nil {
		return rpmdb.Diff{}, err
	}
	return rpmdb.Compare(old, cur), nil
}

// diffData is a diff as the D-Bus Diff method returns it.
func diffData(a, b diffEnd, d rpmdb.Diff) dbus.PackageDiff {
	out := dbus.PackageDiff{From: a.name(), To: b.name(), FromChecksum: a.commit, ToChecksum: b.commit,
		Added: []dbus.DiffPackage{}, Removed: []dbus.DiffPackage{}, Upgraded: []dbus.DiffChange{}, Downgraded: []dbus.DiffChange{}}
	pkg := func(p rpmdb.Package) dbus.DiffPackage {
		return dbus.DiffPackage{Name: p.Name, EVR: p.EVR(), Arch: p.Arch, NEVRA: p.NEVRA()}
	}
	for _, p := range d.Added {
		out.Added = append(out.Added, pkg(p))
	}
	for _, p := range d.Removed {
		out.Removed = append(out.Removed, pkg(p))
	}
	for _, c := range d.Upgraded {
		out.Upgraded = append(out.Upgraded, dbus.DiffChange{Name: c.Name, Arch: c.Arch, From: c.From, To: c.To})
	}
	for _, c := range d.Downgraded {
		out.Downgraded = append(out.Downgraded, dbus.DiffChange{Name: c.Name, Arch: c.Arch, From: c.From, To: c.To})
	}
	return out
}

// diffLines puts a diff into res the way an upgrade preview does: upgraded,
// downgraded ("NAME FROM -> TO"), added, removed (NEVRAs), each as.
func diffLines(d rpmdb.Diff, res map[string]any) {
	up, down, added, removed := []string{}, []string{}, []string{}, []string{}
	for _, c := range d.Upgraded {
		up = append(up, fmt.Sprintf("%s %s -> %s", c.Name, c.From, c.To))
	}
	for _, c := range d.Downgraded {
		down = append(down, fmt.Sprintf("%s %s -> %s", c.Name, c.From, c.To))
	}
	for _, p := range d.Added {
		added = append(added, p.NEVRA())
	}
	for _, p := range d.Removed {
		removed = append(removed, p.NEVRA())
	}
	res["upgraded"], res["downgraded"], res["added"], res["removed"] = up, down, added, removed
}

// addDeployDiff records in res the package changes from the deployment a
// change started from to the one it wrote (the end of every upgrade prints
// them). A diff that cannot be read does not fail the change, which is
// already made: it is reported as a message instead.
func (e *Engine) addDeployDiff(ctx context.Context, t *txn, from, to deploy.Deployment, res map[string]any) {
	d, err := e.diffEnds(ctx, diffEnd{dep: &from, commit: from.Checksum}, diffEnd{dep: &to, commit: to.Checksum})
	if err != nil {
		e.log.Warn("package diff of the new deployment", "err", err)
		t.message(fmt.Sprintf("Could not compare the packages of %s and %s (%v); `hostctl diff` retries.", from.ID(), to.ID(), err))
		return
	}
	diffLines(d, res)
}

// packagesAt lists the packages of one side from a private copy of its rpmdb.
func (e *Engine) packagesAt(ctx context.Context, end diffEnd) ([]rpmdb.Package, error) {
	dir, err := os.MkdirTemp(filepath.Join(e.sr.RepoPath(), "tmp"), "hostctl-diff-")
	if err != nil {
		return nil, fmt.Errorf("read the packages of %s: %w", end.name(), err)
	}
	defer os.RemoveAll(dir)
	if end.dep != nil && end.dep.Path != "" {
		var lastErr error
		for _, sub := range rpmdbPaths {
			src := filepath.Join(end.dep.Path, sub)
			if _, err := os.Stat(src); err != nil {
				lastErr = err
				continue
			}
			if err := rpmdb.CopyDB(ctx, src, dir); err != nil {
				return nil, fmt.Errorf("read the packages of %s: %w", end.name(), err)
			}
			pkgs, err := rpmdb.Read(dir)
			if err != nil {
				return nil, fmt.Errorf("read the packages of %s: %w", end.name(), err)
			}
			return pkgs, nil
		}
		return nil, errdefs.Errorf(errdefs.ErrNotFound, "deployment %s has no rpmdb (looked in %v): %v", end.name(), rpmdbPaths, lastErr)
	}
	var lastErr error
	for i, sub := range rpmdbPaths {
		dst := filepath.Join(dir, strconv.Itoa(i))
		// A copy, never hardlinks: sqlite writes beside the database even to read it.
		if err := e.sr.Repo().Checkout(ctx, end.commit, dst, deploy.CheckoutOptions{Subpath: sub, Copy: true}); err != nil {
			lastErr = err
			continue
		}
		pkgs, err := rpmdb.Read(dst)
		if err != nil {
			return nil, fmt.Errorf("read the packages of %s: %w", end.name(), err)
		}
		return pkgs, nil
	}
	return nil, errdefs.Wrap(errdefs.ErrNotFound, fmt.Errorf("commit %s has no rpmdb in the repository (looked in %v; pull it first): %w", end.commit, rpmdbPaths, lastErr))
}
