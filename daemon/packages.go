package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/layering"
	"github.com/hostctl/hostctl/layering/solv"
)

// validPkgChange checks a package change request before it becomes a transaction.
func validPkgChange(req dbus.Request) error {
	o := req.Options
	names := append(append(append(o.Strings("add"), o.Strings("remove")...), o.Strings("override-remove")...), o.Strings("override-reset")...)
	names = append(names, o.Strings("override-replace")...)
	if len(names) == 0 && !o.Bool("override-reset-all") && len(req.Files) == 0 {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "name at least one package to add or remove")
	}
	for _, p := range names {
		if p == "" || strings.ContainsAny(p, ";\n\x00") {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "invalid package name %q", p)
		}
	}
	if len(req.Files) > 0 && len(o.Strings("override-replace-local")) != len(req.Files) {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "override-replace-local names %d file(s) for %d RPM file descriptor(s)", len(o.Strings("override-replace-local")), len(req.Files))
	}
	return nil
}

func nonNilStrings(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// requestedAfter applies a change to the requested packages. Adding one
// already requested or removing one that is not is an error unless idempotent.
func requestedAfter(old, add, remove []string, idempotent bool) ([]string, error) {
	out := slices.Clone(old)
	for _, p := range remove {
		i := slices.Index(out, p)
		if i < 0 {
			if idempotent {
				continue
			}
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "package %q is not layered (layered: %s)", p, listOrNone(old))
		}
		out = slices.Delete(out, i, i+1)
	}
	for _, p := range add {
		if slices.Contains(out, p) {
			if idempotent {
				continue
			}
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "package %q is already requested; pass --idempotent to ignore this", p)
		}
		out = append(out, p)
	}
	return out, nil
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, " ")
}

// pkgChange layers and unlayers packages: it resolves the new requested set
// against the base of the current deployment, builds the layered commit and
// deploys it (or the base itself when nothing stays layered).
func (e *Engine) pkgChange(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	st, err := e.changeStart(ctx)
	if err != nil {
		return nil, err
	}
	cur := st.def
	old := cur.Origin.Packages()
	requested, err := requestedAfter(old, opts.Strings("add"), opts.Strings("remove"), opts.Bool("idempotent"))
	if err != nil {
		return nil, err
	}
	oldRemoved := removedOverrides(cur.Origin)
	oldReplaced := replacedOverrides(cur.Origin)
	resetNames := opts.Strings("override-reset")
	replaced, resetFound := replacedAfter(oldReplaced, resetNames, opts.Bool("override-reset-all"))
	// A name reset that a replacement had is not one for the removals.
	var resetRemoved []string
	for _, n := range resetNames {
		if resetFound[n] {
			continue
		}
		if !slices.Contains(oldRemoved, n) && !opts.Bool("idempotent") && !opts.Bool("override-reset-all") {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "package %q has no override (overridden: %s)", n, listOrNone(overrideNames(oldRemoved, oldReplaced)))
		}
		resetRemoved = append(resetRemoved, n)
	}
	removed, err := removedAfter(oldRemoved, opts.Strings("override-remove"), resetRemoved,
		opts.Bool("override-reset-all"), opts.Bool("idempotent"))
	if err != nil {
		return nil, err
	}
	cacheDir := filepath.Join(e.sr.Path(), "ostree", "deploy", st.merge.OSName, "var", "cache", "hostctl")
	local, undoLocal, err := receiveLocal(ctx, t, cacheDir)
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			undoLocal()
		}
	}()
	newSpecs := opts.Strings("override-replace")
	replaceChange := len(newSpecs) > 0 || len(local) > 0
	if replaceChange {
		replaced = supersededBy(replaced, newSpecs, local)
	}
	if !replaceChange && slices.Equal(requested, old) && slices.Equal(removed, oldRemoved) && slices.Equal(replaced, oldReplaced) {
		t.message("No change.")
		return map[string]any{"changed": false, "requested": requested, "removed-base-packages": removed}, nil
	}
	base := baseOf(cur)
	origin := cur.Origin.Clone()
	origin.SetPackages(requested)
	setRemovedOverrides(origin, removed)
	setReplacedOverrides(origin, replaced)
	res := map[string]any{"requested": requested, "removed-base-packages": removed}
	if len(requested) == 0 && len(removed) == 0 && len(replaced) == 0 && !replaceChange {
		if opts.Bool("dry-run") {
			t.message("Would deploy the base commit " + base[:12] + " without layered packages.")
			return map[string]any{"changed": false, "dry-run": true}, nil
		}
		return e.deployCommit(ctx, t, st, base, origin, res)
	}
	lreq := layerRequest(cacheDir, requested, removed, replaced)
	lreq.Replace = append(lreq.Replace, newSpecs...)
	for _, l := range local {
		lreq.ReplaceLocal = append(lreq.ReplaceLocal, l.LocalRPM)
	}
	l, repos, err := e.layererFor(ctx, t, st.merge, requested, len(lreq.Replace) > 0)
	if err != nil {
		return nil, err
	}
	info, err := e.sr.CommitInfo(base)
	if err != nil {
		return nil, err
	}
	plan, err := l.ResolveChange(ctx, base, info.Version, repos, lreq)
	if err != nil {
		return nil, layerError(err)
	}
	if err := checkInactive(plan, old, opts.Bool("allow-inactive")); err != nil {
		return nil, err
	}
	if replaceChange {
		if replaced, err = replacedByPlan(replaced, plan, newSpecs, local); err != nil {
			return nil, err
		}
		setReplacedOverrides(origin, replaced)
	}
	res["packages"] = plan.NEVRAs()
	res["replaced-base-packages"] = nonNilStrings(plan.ReplacedLines())
	if inactive := plan.InactiveRequests(); len(inactive) > 0 {
		res["inactive"] = inactive
		t.message("Inactive requests (provided by the base): " + strings.Join(inactive, " "))
	}
	if opts.Bool("dry-run") {
		if len(removed) > 0 {
			t.message("Would remove from the base: " + strings.Join(removed, " "))
		}
		if r := plan.ReplacedLines(); len(r) > 0 {
			t.message("Would replace in the base: " + strings.Join(r, ", "))
		}
		t.message("Would layer: " + listOrNone(plan.NEVRAs()))
		res["dry-run"] = true
		res["changed"] = false
		return res, nil
	}
	if r := plan.ReplacedLines(); len(r) > 0 {
		t.message("Replacing in the base: " + strings.Join(r, ", "))
	}
	built, err := l.Build(ctx, plan)
	if err != nil {
		return nil, layerError(err)
	}
	if err := e.keepBase(ctx, base); err != nil {
		return nil, err
	}
	reportBuild(t, built)
	res["downloaded"] = built.Downloaded
	out, err := e.deployCommit(ctx, t, st, built.Commit, origin, res)
	done = err == nil
	return out, err
}

// relayer layers the packages the default deployment requests onto a new
// base (an upgrade, a deploy, a rebase), from the package cache where nothing
// changed. With nothing requested it returns the base itself.
func (e *Engine) relayer(ctx context.Context, t *txn, st changeStart, base string) (string, error) {
	u, err := e.resolveLayered(ctx, t, st, base)
	if err != nil || u == nil {
		return base, err
	}
	return e.buildLayered(ctx, t, u)
}

// layeredUpdate is the default deployment's requested packages resolved
// against a base, and how that differs from what its commit layers now.
type layeredUpdate struct {
	l    *layering.Layerer
	plan *layering.Plan
	diff layering.PackageDiff
}

// resolveLayered resolves the packages the default deployment requests
// against base with the repos' metadata refreshed (metadata_expire holds;
// refresh-md forces), and compares the result with the packages its commit
// layers: newer versions in the enabled repos, and packages rebuilt with the
// same NEVRA (a new checksum), show in the diff. It returns nil when nothing
// is requested.
func (e *Engine) resolveLayered(ctx context.Context, t *txn, st changeStart, base string) (*layeredUpdate, error) {
	requested := st.def.Origin.Packages()
	removed := removedOverrides(st.def.Origin)
	replaced := replacedOverrides(st.def.Origin)
	if len(requested) == 0 && len(removed) == 0 && len(replaced) == 0 {
		return nil, nil
	}
	cacheDir := filepath.Join(e.sr.Path(), "ostree", "deploy", st.merge.OSName, "var", "cache", "hostctl")
	lreq := layerRequest(cacheDir, requested, removed, replaced)
	l, repos, err := e.layererFor(ctx, t, st.merge, requested, len(lreq.Replace) > 0)
	if err != nil {
		return nil, err
	}
	info, err := e.sr.CommitInfo(base)
	if err != nil {
		return nil, err
	}
	plan, err := l.ResolveChange(ctx, base, info.Version, repos, lreq)
	if err != nil {
		return nil, layerError(err)
	}
	if r := plan.ReplacedLines(); len(r) > 0 {
		t.message("Replacing in the base: " + strings.Join(r, ", "))
	}
	if inactive := plan.InactiveRequests(); len(inactive) > 0 {
		t.message("Inactive requests (provided by the base): " + strings.Join(inactive, " "))
	}
	old, err := layering.LayeredPackages(e.sr.Repo(), st.def.Checksum)
	if err != nil {
		return nil, err
	}
	return &layeredUpdate{l: l, plan: plan, diff: layering.DiffLayered(old, plan.Packages)}, nil
}

// buildLayered builds the layered commit of a resolved update.
func (e *Engine) buildLayered(ctx context.Context, t *txn, u *layeredUpdate) (string, error) {
	built, err := u.l.Build(ctx, u.plan)
	if err != nil {
		return "", layerError(err)
	}
	if err := e.keepBase(ctx, u.plan.Base); err != nil {
		return "", err
	}
	reportBuild(t, built)
	return built.Commit, nil
}

// checkInactive refuses a request new to this change (not in old) that the
// base already provides, unless allowInactive: layering it would change
// nothing, and rpm-ostree refuses it the same way.
func checkInactive(plan *layering.Plan, old []string, allowInactive bool) error {
	if allowInactive {
		return nil
	}
	for _, r := range plan.InactiveRequests() {
		if !slices.Contains(old, r) {
			return errdefs.Wrap(errdefs.ErrInvalidArgument, &layering.ProvidedByBaseError{Request: r, By: plan.Inactive[r]})
		}
	}
	return nil
}

func reportBuild(t *txn, b *layering.Result) {
	if len(b.Layered) == 0 {
		t.message("No package layered: every request is provided by the base.")
		return
	}
	t.message(fmt.Sprintf("Layered %s (downloaded %d, imported %d, %d script(s) run).",
		strings.Join(b.Layered, " "), len(b.Downloaded), len(b.Imported), b.ScriptsRun))
	if len(b.Users) > 0 {
		t.message("Created for the packages: " + strings.Join(b.Users, ", ") + ".")
	}
}

// layerer sets up layering for a change whose /etc comes from cur (the merge
// deployment): its stateroot's cache, the repos of its /etc/yum.repos.d with
// their metadata refreshed.
func (e *Engine) layerer(ctx context.Context, t *txn, cur deploy.Deployment, force bool) (*layering.Layerer, []layering.RepoMetadata, error) {
	cacheDir := filepath.Join(e.sr.Path(), "ostree", "deploy", cur.OSName, "var", "cache", "hostctl")
	reposDir := filepath.Join(cur.Path, "etc", "yum.repos.d")
	repos, err := layering.EnabledRepos(reposDir, layering.TreeVars(cur.Path))
	if err != nil {
		return nil, nil, errdefs.Wrap(errdefs.ErrInvalidArgument, err)
	}
	t.step("metadata", "Updating metadata of "+repoIDs(repos))
	md, err := layering.RefreshMetadata(ctx, cacheDir, repos, force)
	if err != nil {
		return nil, nil, err
	}
	// Every deployment is a tree of its commit on disk: %post scripts run
	// over an overlay of the base's instead of a checkout of it.
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return nil, nil, err
	}
	baseTrees := map[string]string{}
	for _, d := range deps {
		baseTrees[d.Checksum] = d.Path
	}
	l := &layering.Layerer{
		BaseTrees: baseTrees,
		Repo:      e.sr.Repo(),
		CacheDir:  cacheDir,
		TmpDir:    filepath.Join(e.sr.RepoPath(), "tmp"),
		KeyRoot:   cur.Path,
		Step:      t.step,
		AddTemp:   t.addTemp,
		// The accounts of the deployment the new one replaces keep their ids.
		AccountsRoot: cur.Path,
	}
	return l, md, nil
}

func repoIDs(repos []layering.Repo) string {
	ids := make([]string, len(repos))
	for i, r := range repos {
		ids[i] = r.ID
	}
	return strings.Join(ids, " ")
}

// layerError gives layering's refusals their D-Bus names.
func layerError(err error) error {
	var us *layering.UnsupportedScriptsError
	var pe *solv.ProblemError
	var re *solv.ReplacementError
	var be *solv.BrokenDependencyError
	var ce *layering.ConflictError
	var se *layering.SignatureError
	var nb *solv.NotInBaseError
	var sb *solv.SameAsBaseError
	switch {
	case errors.As(err, &se):
		return errdefs.Wrap(errdefs.ErrUntrusted, err)
	case errors.As(err, &nb), errors.As(err, &sb):
		return errdefs.Wrap(errdefs.ErrInvalidArgument, err)
	case errors.As(err, &us):
		return errdefs.Wrap(errdefs.ErrRefusedByPolicy, err)
	case errors.As(err, &pe), errors.As(err, &re), errors.As(err, &ce), errors.As(err, &be):
		return errdefs.Wrap(errdefs.ErrInvalidArgument, err)
	}
	return err
}

// refreshMetadata refreshes the rpm-md metadata of the enabled repositories.
func (e *Engine) refreshMetadata(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	st, err := e.changeStart(ctx)
	if err != nil {
		return nil, err
	}
	_, md, err := e.layerer(ctx, t, st.merge, true)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range md {
		ids = append(ids, m.Repo.ID)
		state := "unchanged"
		if len(m.Metadata.Downloaded) > 0 {
			state = "updated"
		}
		t.message(fmt.Sprintf("%s: metadata %s (revision checked %s)", m.Repo.ID, state, m.Metadata.Checked.UTC().Format("2006-01-02 15:04:05")))
	}
	return map[string]any{"repos": ids, "changed": false}, nil
}

// baseRefPrefix keeps the base commits of layered deployments in the repo:
// a layered deployment's commit does not reference its base, and pkg-remove
// or a re-layer after a rollback needs it.
const baseRefPrefix = "hostctl/base/"

// keepBase points a ref at base, and drops the base refs no deployment
// (nor this base) needs any more.
func (e *Engine) keepBase(ctx context.Context, base string) error {
	repo := e.sr.Repo()
	if err := repo.SetRef(ctx, baseRefPrefix+base, base); err != nil {
		return err
	}
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return err
	}
	used := map[string]bool{base: true}
	for _, d := range deps {
		used[baseOf(d)] = true
	}
	refs, err := repo.Refs(ctx, strings.TrimSuffix(baseRefPrefix, "/"))
	if err != nil {
		return err
	}
	for ref, c := range refs {
		if !used[c] {
			name := ref
			if !strings.HasPrefix(name, baseRefPrefix) {
				name = baseRefPrefix + strings.TrimPrefix(name, "/")
			}
			if err := repo.SetRef(ctx, name, ""); err != nil {
				e.log.Warn("drop base ref", "ref", name, "err", err)
			}
		}
	}
	return nil
}

// withLayered adds to a deployment what its commit really layers (the
// layered NEVRAs, the requests the base provided when it was built) and the
// requests of its origin the commit does not carry, so status never hides a
// difference between the request and the tree.
func (e *Engine) withLayered(d dbus.Deployment) dbus.Deployment {
	if len(d.Packages) == 0 && d.BaseChecksum == "" {
		return d
	}
	_, meta, err := e.sr.Repo().CommitMetadata(d.Checksum)
	if err != nil {
		e.log.Warn("read the layered packages of a deployment", "deployment", d.ID, "err", err)
		return d
	}
	split := func(k string) []string {
		if meta[k] == "" {
			return nil
		}
		return strings.Split(meta[k], ";")
	}
	d.Layered = split(layering.LayeredKey)
	d.ReplacedBasePackages = split(layering.ReplacedKey)
	d.Inactive = split(layering.InactiveKey)
	built := append(split(layering.RequestedKey), d.Inactive...)
	for _, p := range d.Packages {
		if !slices.Contains(built, p) {
			d.Missing = append(d.Missing, p)
		}
	}
	return d
}

// prunePackageCache empties the package and metadata caches of what no
// deployment layers (cleanup -m).
func (e *Engine) prunePackageCache(ctx context.Context, t *txn) error {
	deps, err := e.sr.Deployments(ctx)
	if err != nil {
		return err
	}
	inUse := map[string]bool{}
	for _, d := range deps {
		nevras, err := layering.LayeredIn(e.sr.Repo(), d.Checksum)
		if err != nil {
			return err
		}
		for _, n := range nevras {
			inUse[n] = true
		}
	}
	cur, ok := current(deps)
	if !ok {
		return nil
	}
	cacheDir := filepath.Join(e.sr.Path(), "ostree", "deploy", cur.OSName, "var", "cache", "hostctl")
	res, err := layering.PruneCache(ctx, e.sr.Repo(), cacheDir, inUse)
	if err != nil {
		return err
	}
	t.message(fmt.Sprintf("Removed %d cached package(s) and the repository metadata.", len(res.Packages)))
	return nil
}
