package daemon

import (
	"context"
	"os"
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
// requested (only base packages removed, or replaced by local RPMs) no
// repository is needed unless needRepos (a replacement from them), and none
// is read.
func (e *Engine) layererFor(ctx context.Context, t *txn, cur deploy.Deployment, requested []string, needRepos bool) (*layering.Layerer, []layering.RepoMetadata, error) {
	if len(requested) > 0 || needRepos {
		return e.layerer(ctx, t, cur, false)
	}
	return &layering.Layerer{
		Repo:     e.sr.Repo(),
		CacheDir: filepath.Join(e.sr.Path(), "ostree", "deploy", cur.OSName, "var", "cache", "hostctl"),
		TmpDir:   filepath.Join(e.sr.RepoPath(), "tmp"),
		KeyRoot:  cur.Path,
		Step:     t.step,
		AddTemp:  t.addTemp,
		// The accounts of the deployment the new one replaces keep their ids.
		AccountsRoot: cur.Path,
	}, nil, nil
}

// Base package replacements (rpm-ostree's `override replace`) live in the
// same group: replace=NEVRA; names builds from the enabled repositories,
// replace-local=SHA256:NEVRA; local RPMs given to hostd, kept in the
// stateroot's package cache under their digest (as rpm-ostree keeps
// replace-local= NEVRAs and their RPMs). Every new layered commit replaces
// them again, until `override reset NAME`.
const (
	overrideReplaceKey      = "replace"
	overrideReplaceLocalKey = "replace-local"
)

// replaceEntry is one recorded replacement: the NEVRA that replaces a base
// package, and for a local RPM its sha256.
type replaceEntry struct {
	NEVRA, SHA256 string
}

// name is the package name of the replacement.
func (r replaceEntry) name() string {
	if p, err := layering.ParseNEVRA(r.NEVRA); err == nil {
		return p.Name
	}
	return r.NEVRA
}

// String is how the origin records it.
func (r replaceEntry) String() string {
	if r.SHA256 != "" {
		return r.SHA256 + ":" + r.NEVRA
	}
	return r.NEVRA
}

// replacedOverrides lists the replacements an origin records, the
// repositories' first.
func replacedOverrides(o *deploy.Origin) []replaceEntry {
	if o == nil {
		return nil
	}
	var out []replaceEntry
	for _, n := range o.GetList(groupOverrides, overrideReplaceKey) {
		out = append(out, replaceEntry{NEVRA: n})
	}
	for _, v := range o.GetList(groupOverrides, overrideReplaceLocalKey) {
		if sum, nevra, ok := strings.Cut(v, ":"); ok && len(sum) == 64 {
			out = append(out, replaceEntry{NEVRA: nevra, SHA256: sum})
		}
	}
	return out
}

// setReplacedOverrides records the replacements (none drops the keys, and
// the group once it is empty).
func setReplacedOverrides(o *deploy.Origin, list []replaceEntry) {
	var repo, local []string
	for _, r := range list {
		if r.SHA256 != "" {
			local = append(local, r.String())
		} else {
			repo = append(repo, r.NEVRA)
		}
	}
	o.SetList(groupOverrides, overrideReplaceKey, repo)
	o.SetList(groupOverrides, overrideReplaceLocalKey, local)
	if len(o.Keys(groupOverrides)) == 0 {
		o.DeleteGroup(groupOverrides)
	}
}

// hasOverrides says whether an origin removes or replaces base packages.
func hasOverrides(o *deploy.Origin) bool {
	return len(removedOverrides(o)) > 0 || len(replacedOverrides(o)) > 0
}

// overrideNames are the names of the base packages an origin overrides.
func overrideNames(removed []string, replaced []replaceEntry) []string {
	out := slices.Clone(removed)
	for _, r := range replaced {
		out = append(out, r.name())
	}
	return out
}

// layerRequest is what a layered tree of an origin with these packages and
// overrides is built from; the local RPMs are in the stateroot's cache.
func layerRequest(cacheDir string, requested, removed []string, replaced []replaceEntry) layering.LayerRequest {
	req := layering.LayerRequest{Requested: requested, Remove: removed}
	for _, r := range replaced {
		if r.SHA256 != "" {
			req.ReplaceLocal = append(req.ReplaceLocal, layering.LocalRPM{Path: layering.LocalRPMPath(cacheDir, r.SHA256), SHA256: r.SHA256})
		} else {
			req.Replace = append(req.Replace, r.NEVRA)
		}
	}
	return req
}

// replacedAfter applies reset requests to the recorded replacements:
// resetAll drops them all, a name in reset drops its replacement (found
// tells which names it found).
func replacedAfter(old []replaceEntry, reset []string, resetAll bool) (out []replaceEntry, found map[string]bool) {
	found = map[string]bool{}
	for _, r := range old {
		if resetAll {
			continue
		}
		if slices.Contains(reset, r.name()) {
			found[r.name()] = true
			continue
		}
		out = append(out, r)
	}
	return out, found
}

// replacedByPlan is the replacements to record after a change that asked
// for new ones: those kept from before that the new ones do not supersede
// (a kept one the base now has stays, inactive), and the plan's
// replacements that are new. It refuses a new request the base already
// satisfies.
func replacedByPlan(kept []replaceEntry, plan *layering.Plan, newSpecs []string, newLocal []layering.ReceivedRPM) ([]replaceEntry, error) {
	keptNEVRA := map[string]bool{}
	for _, r := range kept {
		keptNEVRA[r.NEVRA] = true
	}
	out := slices.Clone(kept)
	added := 0
	for _, r := range plan.Replaced {
		n := r.New.NEVRA()
		if keptNEVRA[n] {
			continue
		}
		e := replaceEntry{NEVRA: n}
		if r.New.Repo == layering.LocalRepo {
			e.SHA256 = r.New.Checksum
		}
		out = append(out, e)
		added++
	}
	if want := len(newSpecs) + len(newLocal); added < want {
		var names []string
		names = append(names, newSpecs...)
		for _, l := range newLocal {
			names = append(names, l.NEVRA)
		}
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "override replace %s: the base already has that build; nothing to replace", strings.Join(names, " "))
	}
	return out, nil
}

// supersededBy drops from kept the replacements of the packages named by
// the new requests (a name, a NEVRA, or a local RPM's name).
func supersededBy(kept []replaceEntry, specs []string, local []layering.ReceivedRPM) []replaceEntry {
	names := map[string]bool{}
	for _, s := range specs {
		names[s] = true
		if p, err := layering.ParseNEVRA(s); err == nil {
			names[p.Name] = true
		}
	}
	for _, l := range local {
		names[l.Name] = true
	}
	var out []replaceEntry
	for _, r := range kept {
		if !names[r.name()] {
			out = append(out, r)
		}
	}
	return out
}

// receiveLocal copies the RPM files the caller passed (already authorized:
// Begin checked the caller before the transaction existed) into the
// package cache. undo removes the ones that were not there before, for a
// change that does not go through.
func receiveLocal(ctx context.Context, t *txn, cacheDir string) (got []layering.ReceivedRPM, undo func(), err error) {
	undo = func() {
		for _, g := range got {
			if g.Added {
				os.Remove(g.Path)
			}
		}
	}
	for i, f := range t.files {
		label := f.Name()
		if i < len(t.fileNames) && t.fileNames[i] != "" {
			label = t.fileNames[i]
		}
		t.step("receive", "Receiving "+label)
		r, err := layering.ReceiveLocalRPM(ctx, cacheDir, label, f)
		if err != nil {
			undo()
			return nil, func() {}, errdefs.Wrap(errdefs.ErrInvalidArgument, err)
		}
		got = append(got, r)
	}
	return got, undo, nil
}
