package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/internal/rpmdb"
)

// rpmdbPaths are where OS trees keep their rpmdb, newest layout first.
var rpmdbPaths = []string{"/usr/lib/sysimage/rpm", "/usr/share/rpm"}

// previewPackages adds to res the package changes an upgrade to csum would
// make, as `rpm-ostree upgrade --preview` shows: it pulls only the new
// commit's rpmdb and compares it with the current base's.
func (e *Engine) previewPackages(ctx context.Context, t *txn, refspec string, cur deploy.Deployment, csum string, res map[string]any) (map[string]any, error) {
	t.step("pull-rpmdb", "Fetching the package database of "+csum[:12])
	if _, err := e.sr.Pull(ctx, refspec, deploy.PullOptions{Commit: csum, Subdirs: rpmdbPaths, Progress: pullProgress(t)}); err != nil {
		return nil, err
	}
	newPkgs, err := e.packagesOf(ctx, t, csum)
	if err != nil {
		return nil, err
	}
	oldPkgs, err := e.packagesOf(ctx, t, baseOf(cur))
	if err != nil {
		return nil, err
	}
	d := rpmdb.Compare(oldPkgs, newPkgs)
	var up, down, added, removed []string
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
	for k, v := range map[string][]string{"upgraded": up, "downgraded": down, "added": added, "removed": removed} {
		if v == nil {
			v = []string{}
		}
		res[k] = v
	}
	return res, nil
}

// packagesOf lists the packages of a commit from a copy of its rpmdb.
func (e *Engine) packagesOf(ctx context.Context, t *txn, commit string) ([]rpmdb.Package, error) {
	tmpRoot := filepath.Join(e.sr.RepoPath(), "tmp")
	dir, err := os.MkdirTemp(tmpRoot, "hostctl-rpmdb-")
	if err != nil {
		return nil, fmt.Errorf("read packages of %s: %w", commit, err)
	}
	t.addTemp(dir)
	defer os.RemoveAll(dir)
	var lastErr error
	for i, sub := range rpmdbPaths {
		dst := filepath.Join(dir, fmt.Sprint(i))
		// A copy, never hardlinks: sqlite writes beside the database even to read it.
		if err := e.sr.Repo().Checkout(ctx, commit, dst, deploy.CheckoutOptions{Subpath: sub, Copy: true}); err != nil {
			lastErr = err
			continue
		}
		return rpmdb.Read(dst)
	}
	return nil, fmt.Errorf("commit %s has no rpmdb (looked in %v): %w", commit, rpmdbPaths, lastErr)
}
