package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/layering"
)

// Base package overrides (rpm-ostree's `override remove`/`reset`) live in
// the origin's [overrides] group: remove=a;b; names the base packages taken
// out of the tree. Every new layered commit (pkg-change, upgrade, deploy,
// rebase, reset) is built from the base minus them, so they stay removed
// across base updates until `override reset`.

// overrideRemoveKey is the [overrides] key of the removed base packages.
const overrideRemoveKey = "remove"

// removedOverrides lists the base packages an origin removes.
func removedOverrides(o *deploy.Origin) []string {
	if o == nil {
		return nil
	}
	return o.GetList(groupOverrides, overrideRemoveKey)
}

// setRemovedOverrides records the removed base packages (none drops the key,
// and the group once it is empty).
func setRemovedOverrides(o *deploy.Origin, names []string) {
	o.SetList(groupOverrides, overrideRemoveKey, names)
	if len(o.Keys(groupOverrides)) == 0 {
		o.DeleteGroup(groupOverrides)
	}
}

// removedAfter applies override remove and reset requests to the removed
// base packages. Removing one already removed, or resetting one that is not
// overridden, is an error unless idempotent; resetAll drops every override.
func removedAfter(old, remove, reset []string, resetAll, idempotent bool) ([]string, error) {
	out := slices.Clone(old)
	if resetAll {
		out = nil
	}
	for _, p := range reset {
		i := slices.Index(out, p)
		if i < 0 {
			if idempotent || resetAll {
				continue
			}
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "package %q has no override (overridden: %s)", p, listOrNone(old))
		}
		out = slices.Delete(out, i, i+1)
	}
	for _, p := range remove {
		if slices.Contains(out, p) {
			if idempotent {
				continue
			}
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "base package %q is already removed; pass --idempotent to ignore this", p)
		}
		if strings.ContainsAny(p, "<>= ") {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "override remove takes package names, not %q", p)
		}
		out = append(out, p)
	}
	return out, nil
}

// layererFor is layerer for a change that layers requested: with nothing
// requested (only base packages removed) no repository is needed, and none
// is read.
func (e *Engine) layererFor(ctx context.Context, t *txn, cur deploy.Deployment, requested []string) (*layering.Layerer, []layering.RepoMetadata, error) {
	if len(requested) > 0 {
		return e.layerer(ctx, t, cur, false)
	}
	return &layering.Layerer{
		Repo:     e.sr.Repo(),
		CacheDir: filepath.Join(e.sr.Path(), "ostree", "deploy", cur.OSName, "var", "cache", "hostctl"),
		TmpDir:   filepath.Join(e.sr.RepoPath(), "tmp"),
		KeyRoot:  cur.Path,
		Step:     t.step,
		AddTemp:  t.addTemp,
	}, nil, nil
}
