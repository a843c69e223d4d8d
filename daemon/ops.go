package daemon

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/hostctl/hostctl/containers"
	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
)

// pullProgress turns libostree's pull progress into transaction progress.
func pullProgress(t *txn) func(deploy.PullProgress) {
	return func(p deploy.PullProgress) {
		text := p.Status
		if text == "" {
			text = fmt.Sprintf("Receiving objects: %d/%d", p.Fetched, p.Requested)
		}
		t.progress(dbus.Progress{Stage: "pull", Done: uint64(p.Fetched), Total: uint64(p.Requested), Bytes: p.Bytes, Text: text}, false)
	}
}

// baseOf is the base commit of a deployment (its own commit unless layered).
func baseOf(d deploy.Deployment) string {
	if d.BaseChecksum != "" {
		return d.BaseChecksum
	}
	return d.Checksum
}

func (e *Engine) upgrade(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	stage, lock, err := e.staging(ctx, opts)
	if err != nil {
		return nil, err
	}
	st, err := e.changeStart(ctx)
	if err != nil {
		return nil, err
	}
	st.stage, st.lockFinalization = stage, lock
	cur := st.def
	if err := e.checkRemote(ctx, cur); err != nil {
		return nil, err
	}
	refspec := cur.Refspec()
	if opts.Bool("check") || opts.Bool("preview") {
		csum, res, err := e.fetchCommit(ctx, t, cur, refspec, "Checking "+refspec+" for updates")
		if err != nil {
			return nil, err
		}
		osUpdate := res["update-available"].(bool)
		if osUpdate && !opts.Bool("preview") {
			// The base moves: that answers --check; the new commit's rpmdb
			// (a few MiB) gives the package diff recorded with it, when the
			// remote has it. --preview also resolves the layered packages.
			withDiff, err := e.previewPackages(ctx, t, refspec, cur, csum, res)
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				t.message(fmt.Sprintf("No package diff: %v", err))
				return res, nil
			}
			return withDiff, nil
		}
		base := baseOf(cur)
		if osUpdate {
			// The new base's rpmdb, which the layered packages resolve against too.
			if res, err = e.previewPackages(ctx, t, refspec, cur, csum, res); err != nil {
				return nil, err
			}
			base = csum
		}
		u, err := e.resolveLayered(ctx, t, st, base)
		if err != nil {
			return nil, err
		}
		noteLayered(t, u, res)
		return res, nil
	}
	t.step("pull", "Pulling "+refspec)
	csum, err := e.sr.Pull(ctx, refspec, deploy.PullOptions{Progress: pullProgress(t)})
	if err != nil {
		return nil, err
	}
	res, err := e.describeUpdate(cur, csum)
	if err != nil {
		return nil, err
	}
	followed, err := e.followContainers(ctx, t, cur)
	if err != nil {
		return nil, err
	}
	osUpdate := res["update-available"].(bool)
	if osUpdate {
		if err := e.checkNotOlder(cur, csum, opts.Bool("allow-downgrade")); err != nil {
			return nil, err
		}
	}
	base := baseOf(cur)
	if osUpdate {
		base = csum
	}
	// The layered packages resolved against the base the new deployment
	// gets: newer packages (or a rebuilt one) make an upgrade on their own.
	layered, err := e.resolveLayered(ctx, t, st, base)
	if err != nil {
		return nil, err
	}
	pkgUpdate := noteLayered(t, layered, res)
	if len(followed) > 0 {
		names := make([]string, 0, len(followed))
		for n := range followed {
			names = append(names, n)
		}
		sort.Strings(names)
		res["containers"] = names
		res["update-available"] = true
	}
	if !osUpdate && !pkgUpdate && len(followed) == 0 {
		t.message("No upgrade available.")
		t.message("No change.")
		return res, nil
	}
	if opts.Bool("download-only") {
		if osUpdate {
			t.message(fmt.Sprintf("Downloaded %s; not deployed (--download-only).", shortVersion(res)))
		}
		if pkgUpdate {
			t.message("The layered package updates are fetched when the upgrade is deployed; nothing deployed (--download-only).")
		}
		return res, nil
	}
	setFollowed := func(o *deploy.Origin) {
		for name, ce := range followed {
			o.Set(deploy.GroupContainers, name, ce.String())
		}
	}
	if !osUpdate && !pkgUpdate {
		// Only followed images moved: a new generation of the same tree.
		d, err := e.writeGeneration(ctx, t, st, setFollowed)
		if err != nil {
			return nil, err
		}
		res["deployment"], res["changed"] = d.ID(), true
		t.message(fmt.Sprintf("Deployed %s with the new images of %s.", d.ID(), strings.Join(res["containers"].([]string), ", ")))
		return res, nil
	}
	origin := cur.Origin.Clone()
	origin.SetOverrideCommit("")
	setFollowed(origin)
	// One generation: the new base, the moved packages and the followed
	// images together (or the same base with the moved packages).
	target := base
	if layered != nil {
		if target, err = e.buildLayered(ctx, t, layered); err != nil {
			return nil, err
		}
	}
	return e.deployCommit(ctx, t, st, target, origin, res)
}

// noteLayered records in res how the layered packages of a resolved upgrade
// differ from those the default deployment layers ("layered-changes", one
// line a package) and tells the user; it reports whether they differ, and
// then marks the update available.
func noteLayered(t *txn, u *layeredUpdate, res map[string]any) bool {
	if u == nil {
		return false
	}
	lines := u.diff.Lines()
	res["layered-changes"] = append([]string{}, lines...)
	if len(lines) == 0 {
		return false
	}
	res["update-available"] = true
	t.message("Layered packages: " + strings.Join(lines, "; "))
	return true
}

// followContainers pulls the images of the default generation's containers
// that follow a tag (container install --follow) and returns the entries of
// those whose image moved, for the upgrade's new generation.
func (e *Engine) followContainers(ctx context.Context, t *txn, def deploy.Deployment) (map[string]containers.Entry, error) {
	want, bad := desiredContainers(def)
	if len(bad) > 0 {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "deployment %s has [containers] entries that cannot be read; fix its origin or roll back before upgrading", def.ID())
	}
	names := make([]string, 0, len(want))
	for n, w := range want {
		if w.Follow {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	sort.Strings(names)
	h, err := e.host(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]containers.Entry{}
	for _, name := range names {
		w := want[name]
		if _, err := e.ctr.Pull(ctx, h, w.Image, reporter{t}); err != nil {
			return nil, fmt.Errorf("container %s follows %s: %w", name, w.Image, err)
		}
		img, err := containers.FindImage(e.sr.Repo(), w.Image)
		if err != nil {
			return nil, fmt.Errorf("container %s follows %s: %w", name, w.Image, err)
		}
		if img.Digest != w.Digest {
			t.message(fmt.Sprintf("Container %s: %s moved from %s to %s.", name, w.Image, short(w.Digest), short(img.Digest)))
			w.Digest = img.Digest
			out[name] = w
		}
	}
	return out, nil
}

// fetchCommit pulls only the commit object refspec points at and describes
// it against cur (see describeUpdate).
func (e *Engine) fetchCommit(ctx context.Context, t *txn, cur deploy.Deployment, refspec, text string) (string, map[string]any, error) {
	t.step("pull-metadata", text)
	csum, err := e.sr.Pull(ctx, refspec, deploy.PullOptions{CommitOnly: true, Progress: pullProgress(t)})
	if err != nil {
		return "", nil, err
	}
	res, err := e.describeUpdate(cur, csum)
	return csum, res, err
}

// describeUpdate compares the current base with a pulled commit.
func (e *Engine) describeUpdate(cur deploy.Deployment, csum string) (map[string]any, error) {
	info, err := e.sr.CommitInfo(csum)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"update-available": csum != baseOf(cur),
		"checksum":         csum,
		"version":          info.Version,
		"timestamp":        uint64(info.Timestamp.Unix()),
		"current-checksum": baseOf(cur),
		"current-version":  cur.Version,
	}, nil
}

// checkNotOlder refuses a commit older than the current one, as rpm-ostree does.
func (e *Engine) checkNotOlder(cur deploy.Deployment, csum string, allow bool) error {
	if allow {
		return nil
	}
	info, err := e.sr.CommitInfo(csum)
	if err != nil {
		return err
	}
	base, err := e.sr.CommitInfo(baseOf(cur))
	if err != nil {
		return err
	}
	if info.Timestamp.Before(base.Timestamp) {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "upgrade target %s (%s) is older than the current commit (%s): pass allow-downgrade, or use `hostctl deploy` to pick an older revision", csum[:12], info.Timestamp, base.Timestamp)
	}
	return nil
}

func shortVersion(res map[string]any) string {
	v, _ := res["version"].(string)
	c, _ := res["checksum"].(string)
	if len(c) > 12 {
		c = c[:12]
	}
	if v != "" {
		return v + " (" + c + ")"
	}
	return c
}

// deployCommit deploys csum with origin as the new default, keeping the
// kernel arguments of the deployment the change started from, and verifies
// the boot entries.
func (e *Engine) deployCommit(ctx context.Context, t *txn, st changeStart, csum string, origin *deploy.Origin, res map[string]any) (map[string]any, error) {
	t.step("deploy", "Deploying "+csum[:12])
	if err := e.checkBootSpace(ctx, csum); err != nil {
		return nil, err
	}
	d, err := e.sr.Deploy(ctx, deploy.DeployOptions{OSName: st.def.OSName, Revision: csum, Origin: origin,
		Kargs: kargsOf(st.def), BeforeSwap: t.beginSwap, Stage: st.stage, LockFinalization: st.lockFinalization,
		DeferCleanup: true})
	if err != nil {
		return nil, err
	}
	t.step("verify", "Checking the boot entries")
	if err := e.verifyStaged(ctx, d); err != nil {
		return nil, errdefs.Errorf(errdefs.ErrFailed, "deployed %s but the boot entries are wrong: %v", d.ID(), err)
	}
	if res == nil {
		res = map[string]any{}
	}
	res["deployment"] = d.ID()
	res["changed"] = true
	res["version"] = d.Version
	res["checksum"] = d.Checksum
	e.addDeployDiff(ctx, t, st.def, d, res) // the package changes, which hostctl prints
	switch {
	case d.Staged && d.FinalizationLocked:
		res["staged"] = true
		t.message(fmt.Sprintf("Staged %s (version %s), finalization locked: run `hostctl finalize` before the reboot, or it is dropped.", d.ID(), d.Version))
	case d.Staged:
		res["staged"] = true
		t.message(fmt.Sprintf("Staged %s (version %s); it enters the boot entries at shutdown. Reboot to use it.", d.ID(), d.Version))
	default:
		t.message(fmt.Sprintf("Deployed %s (version %s). Reboot to use it.", d.ID(), d.Version))
	}
	return res, nil
}

var checksumRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// deployRevision deploys a commit of the followed ref, named by checksum
// ("revision=" prefix accepted) or by version.
func (e *Engine) deployRevision(ctx context.Context, t *txn, revision string, opts dbus.Options) (map[string]any, error) {
	stage, lock, err := e.staging(ctx, opts)
	if err != nil {
		return nil, err
	}
	st, err := e.changeStart(ctx)
	if err != nil {
		return nil, err
	}
	st.stage, st.lockFinalization = stage, lock
	cur := st.def
	refspec := cur.Refspec()
	csum, err := e.findRevision(ctx, t, refspec, revision)
	if err != nil {
		return nil, err
	}
	if csum == baseOf(cur) {
		t.message(fmt.Sprintf("Commit %s is what the default deployment %s already runs. No change.", short(csum), cur.ID()))
		return map[string]any{"changed": false, "checksum": csum, "deployment": cur.ID()}, nil
	}
	if err := e.pullRevision(ctx, t, refspec, csum); err != nil {
		return nil, err
	}
	origin := cur.Origin.Clone()
	origin.SetOverrideCommit(csum)
	target, err := e.relayer(ctx, t, st, csum)
	if err != nil {
		return nil, err
	}
	return e.deployCommit(ctx, t, st, target, origin, nil)
}

// findRevision resolves revision in the history of refspec: a full commit
// checksum (with or without the prefix "revision="), else a version
// ("version=" prefix accepted) or a checksum prefix of 8 digits or more,
// searched from the tip down (only the commit objects are pulled).
func (e *Engine) findRevision(ctx context.Context, t *txn, refspec, revision string) (string, error) {
	rev := strings.TrimPrefix(strings.TrimPrefix(revision, "revision="), "version=")
	if checksumRe.MatchString(rev) && !strings.HasPrefix(revision, "version=") {
		return rev, nil
	}
	t.step("pull-metadata", "Searching the history of "+refspec+" for version "+rev)
	tip, err := e.sr.Pull(ctx, refspec, deploy.PullOptions{CommitOnly: true, Depth: -1, Progress: pullProgress(t)})
	if err != nil {
		return "", err
	}
	for c := tip; c != ""; {
		info, err := e.sr.CommitInfo(c)
		if err != nil {
			break // history beyond here is not on the remote
		}
		if info.Version == rev || strings.HasPrefix(c, rev) && len(rev) >= 8 {
			return c, nil
		}
		c = info.Parent
	}
	return "", errdefs.Errorf(errdefs.ErrNotFound, "no commit with version or checksum %q in the history of %s: `hostctl upgrade --check` shows the latest", rev, refspec)
}

// pullRevision pulls commit csum of refspec unless it is here complete.
func (e *Engine) pullRevision(ctx context.Context, t *txn, refspec, csum string) error {
	if e.sr.Repo().HasCompleteCommit(csum) {
		t.message("Commit " + csum[:12] + " is already here; nothing to download.")
		return nil
	}
	t.step("pull", "Pulling "+csum[:12])
	_, err := e.sr.Pull(ctx, refspec, deploy.PullOptions{Commit: csum, Progress: pullProgress(t)})
	return err
}

// rebase switches the followed refspec and deploys its tip, or with the
// option revision that revision of the new refspec (as `rpm-ostree rebase
// REFSPEC REVISION`): the origin then pins it (override-commit), as deploy
// does, until the next upgrade.
func (e *Engine) rebase(ctx context.Context, t *txn, refspec string, opts dbus.Options) (map[string]any, error) {
	stage, lock, err := e.staging(ctx, opts)
	if err != nil {
		return nil, err
	}
	st, err := e.changeStart(ctx)
	if err != nil {
		return nil, err
	}
	st.stage, st.lockFinalization = stage, lock
	cur := st.def
	remote, ref, err := deploy.SplitRefspec(refspec)
	if err != nil {
		return nil, errdefs.Wrap(errdefs.ErrInvalidArgument, err)
	}
	if remote == "" {
		curRemote, _, _ := deploy.SplitRefspec(cur.Refspec())
		refspec = curRemote + ":" + ref
	}
	revision := opts.String("revision")
	if opts.Bool("preview") {
		if revision != "" {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "rebase: preview shows the tip of %s; leave out revision, or rebase to the revision without preview", refspec)
		}
		return e.rebasePreview(ctx, t, cur, refspec)
	}
	var csum string
	if revision != "" {
		if csum, err = e.findRevision(ctx, t, refspec, revision); err != nil {
			return nil, err
		}
		if err := e.pullRevision(ctx, t, refspec, csum); err != nil {
			return nil, err
		}
	} else {
		t.step("pull", "Pulling "+refspec)
		if csum, err = e.sr.Pull(ctx, refspec, deploy.PullOptions{Progress: pullProgress(t)}); err != nil {
			return nil, err
		}
	}
	origin := cur.Origin.Clone()
	origin.SetRefspec(refspec)
	origin.SetOverrideCommit("")
	if revision != "" {
		origin.SetOverrideCommit(csum)
	}
	target, err := e.relayer(ctx, t, st, csum)
	if err != nil {
		return nil, err
	}
	return e.deployCommit(ctx, t, st, target, origin, map[string]any{"refspec": refspec})
}

// rebasePreview is `rebase --preview`: it fetches only the commit refspec
// points at and its package database, and tells what a rebase to it would
// change in the base packages, as rpm-ostree's DownloadRebaseRpmDiff does.
// Nothing is deployed.
func (e *Engine) rebasePreview(ctx context.Context, t *txn, cur deploy.Deployment, refspec string) (map[string]any, error) {
	csum, res, err := e.fetchCommit(ctx, t, cur, refspec, "Fetching the commit of "+refspec)
	if err != nil {
		return nil, err
	}
	res["refspec"] = refspec
	res, err = e.previewPackages(ctx, t, refspec, cur, csum, res)
	if err != nil {
		return nil, err
	}
	v, _ := res["version"].(string)
	if v == "" {
		v = "no version"
	}
	t.message(fmt.Sprintf("Rebase to %s would deploy %s (%s): %d upgraded, %d downgraded, %d added, %d removed. Nothing deployed.", refspec, csum, v,
		len(res["upgraded"].([]string)), len(res["downgraded"].([]string)), len(res["added"].([]string)), len(res["removed"].([]string))))
	return res, nil
}

func (e *Engine) rollback(ctx context.Context, t *txn) (map[string]any, error) {
	var running deploy.Deployment // what runs now: the booted one, else the default
	if deps, err := e.sr.Deployments(ctx); err == nil {
		running, _ = current(deps)
	}
	if err := t.beginSwap(); err != nil {
		return nil, err
	}
	d, err := e.sr.Rollback(ctx)
	if err != nil {
		return nil, err
	}
	t.step("verify", "Checking the boot entries")
	if err := e.verifyBoot(ctx, d); err != nil {
		return nil, errdefs.Errorf(errdefs.ErrFailed, "rolled back to %s but the boot entries are wrong: %v", d.ID(), err)
	}
	if d.Checksum == running.Checksum && userKargs(d.Kargs) == userKargs(running.Kargs) {
		// Only the origin differs (system containers): nothing to reboot for.
		t.message(fmt.Sprintf("Moving %s to be the default deployment; it runs the same tree, and its system containers are applied now.", d.ID()))
	} else {
		t.message(fmt.Sprintf("Moving %s to be the default deployment. Reboot to use it (its system containers are applied now).", d.ID()))
	}
	return map[string]any{"deployment": d.ID(), "version": d.Version, "changed": true}, nil
}

func (e *Engine) cleanup(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	t.step("cleanup", "Cleaning up")
	removed, err := e.sr.Cleanup(ctx, deploy.CleanupOptions{Pending: opts.Bool("pending"), Rollback: opts.Bool("rollback")})
	if err == nil && opts.Bool("repomd") {
		// Once the deployments are settled, drop the cached packages none of
		// them layers and the metadata; a second cleanup prunes their objects.
		if err = e.prunePackageCache(ctx, t); err == nil {
			_, err = e.sr.Cleanup(ctx, deploy.CleanupOptions{})
		}
	}
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(removed))
	for _, d := range removed {
		ids = append(ids, d.ID())
		t.message("Removed deployment " + d.ID())
	}
	if deps, err := e.sr.Deployments(ctx); err == nil && len(removed) > 0 && len(deps) > 0 {
		if err := e.verifyBoot(ctx, deps[0]); err != nil {
			return nil, errdefs.Errorf(errdefs.ErrFailed, "cleanup removed deployments but the boot entries are wrong: %v", err)
		}
	}
	return map[string]any{"removed": ids, "changed": len(removed) > 0}, nil
}
