package layering

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/layering/solv"
)

// Commit metadata keys of hostctl's commits.
const (
	// PackageChecksumKey on a package cache commit is the RPM's checksum
	// ("sha256:HEX") from the metadata it was imported for.
	PackageChecksumKey = "hostctl.rpm.checksum"
	// LayeredKey on a layered commit lists the layered packages' NEVRAs, ';'-separated.
	LayeredKey = "hostctl.layered-packages"
	// RequestedKey on a layered commit lists the requested packages it
	// layers (the active requests), ';'-separated.
	RequestedKey = "hostctl.requested-packages"
	// InactiveKey on a layered commit lists the requests its base already
	// provided, so nothing was layered for them, ';'-separated.
	InactiveKey = "hostctl.inactive-packages"
)

// Layerer builds layered trees: the base commit plus packages, committed to
// the sysroot's repository. Nothing it does writes through a deployment or
// moves a ref other than the package cache's.
type Layerer struct {
	// Repo is the sysroot's repository.
	Repo *deploy.Repo
	// CacheDir holds the metadata, .solv and package file caches (the
	// stateroot's /var/cache/hostctl).
	CacheDir string
	// TmpDir is where scratch trees go; it must be on the repository's file
	// system so checkouts are hardlinks (e.g. SYSROOT/ostree/repo/tmp).
	TmpDir string
	// KeyRoot is the tree file:// gpgkey URLs are read from (the merge deployment).
	KeyRoot string
	// AccountsRoot is the tree whose users and groups keep their ids in the
	// new one (the merge deployment); "" allocates every new account afresh.
	AccountsRoot string
	// Client fetches packages and keys; nil means a default client that also reads file:// URLs.
	Client *http.Client
	// Step is told of each stage (may be nil).
	Step func(stage, text string)
	// AddTemp is told of each scratch directory before it is created, so a
	// crash can be cleaned up (may be nil).
	AddTemp func(path string)
	// BaseTrees maps commits to trees on disk whose files are exactly the
	// commit's, /etc aside: the sysroot's deployments. With the base's
	// there, %post and %posttrans run over an overlay of it and nothing is
	// checked out; only read, never written. May be nil.
	BaseTrees map[string]string
	// forceCheckout makes Build assemble every tree on a checkout (for the
	// test that compares the two ways).
	forceCheckout bool
}

func (l *Layerer) step(stage, text string) {
	if l.Step != nil {
		l.Step(stage, text)
	}
}

func (l *Layerer) scratch(pattern string) (string, error) {
	if err := os.MkdirAll(l.TmpDir, 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(l.TmpDir, pattern)
	if err != nil {
		return "", err
	}
	if l.AddTemp != nil {
		l.AddTemp(dir)
	}
	return dir, nil
}

// Plan is a resolved layering request.
type Plan struct {
	// Base is the base commit and BaseVersion its version.
	Base, BaseVersion string
	// Requested are the requested packages.
	Requested []string
	// Active are the requests the base does not provide: those layered.
	// Inactive maps each other request to the base packages that already
	// provide it (rpm-ostree's "inactive requests"); such a request becomes
	// active again on a base that drops it.
	Active   []string
	Inactive map[string][]string
	// Packages are the packages to add to the base, sorted by name; each
	// one's Order is its place in the install order scripts run in.
	Packages []solv.Package
	// Remove are the base packages taken out of the tree (exact names).
	Remove []string
	// Replaced are the base packages replaced by another build; each new
	// build is in Packages too.
	Replaced []solv.Replacement
	repos    map[string]Repo
	// local maps the sha256 of each local RPM to its file.
	local map[string]string
}

// ReplacedLines lists the replacements, "OLD-NEVRA -> NEW-NEVRA".
func (p *Plan) ReplacedLines() []string {
	out := make([]string, len(p.Replaced))
	for i, r := range p.Replaced {
		out[i] = r.String()
	}
	return out
}

// NEVRAs lists the packages of the plan.
func (p *Plan) NEVRAs() []string {
	out := make([]string, len(p.Packages))
	for i, pkg := range p.Packages {
		out[i] = pkg.NEVRA()
	}
	return out
}

// Resolve solves installing requested on top of the base commit with libsolv:
// the installed packages are the base's rpmdb (its usr/lib/sysimage/rpm,
// checked out alone into a scratch directory), the available ones the repos'
// primary metadata (through .solv caches). A request that cannot be met
// fails with *solv.ProblemError, one that would change a base package with
// *solv.ReplacementError.
func (l *Layerer) Resolve(ctx context.Context, base, baseVersion string, repos []RepoMetadata, requested []string) (*Plan, error) {
	return l.ResolveOverrides(ctx, base, baseVersion, repos, requested, nil)
}

// ResolveOverrides is Resolve with the base packages named in remove (exact
// names, rpm-ostree's `override remove`) taken out of the tree in the same
// transaction. A removal another base package or a requested one needs
// fails with *solv.BrokenDependencyError naming both.
func (l *Layerer) ResolveOverrides(ctx context.Context, base, baseVersion string, repos []RepoMetadata, requested, remove []string) (*Plan, error) {
	return l.ResolveChange(ctx, base, baseVersion, repos, LayerRequest{Requested: requested, Remove: remove})
}

// LayerRequest is what a layered tree is the base plus: the requested packages and
// the base package overrides.
type LayerRequest struct {
	// Requested are the requested packages; Remove the base packages taken
	// out (exact names).
	Requested, Remove []string
	// Replace are base package replacements from the enabled repositories
	// (names or NEVRAs); ReplaceLocal replacements by local RPM files.
	Replace      []string
	ReplaceLocal []LocalRPM
}

// LocalRPM is an RPM file given to hostd (not from a repository).
type LocalRPM struct {
	// Path is the file, in the package cache (LocalRPMPath).
	Path string
	// SHA256 is its digest, hex.
	SHA256 string
}

// LocalRepo is the repository id of local RPMs in plans and commits.
const LocalRepo = "@local"

// LocalRPMPath is where the package cache keeps a local RPM of that sha256
// digest: beside the downloaded ones, named the same way.
func LocalRPMPath(cacheDir, sha256 string) string {
	return filepath.Join(cacheDir, "packages", "sha256-"+sha256+".rpm")
}

// ResolveChange is ResolveOverrides with base packages replaced as well
// (rpm-ostree's `override replace`): by the best matching build in the
// repositories, or by a local RPM. A replacement for a package the base
// lacks fails with *solv.NotInBaseError; one that is the build the base
// already has is left out (Plan.InactiveReplace).
func (l *Layerer) ResolveChange(ctx context.Context, base, baseVersion string, repos []RepoMetadata, ch LayerRequest) (*Plan, error) {
	requested, remove := ch.Requested, ch.Remove
	what := append(slices.Clone(requested), prefixed("-", remove)...)
	what = append(what, prefixed("=", ch.Replace)...)
	for _, lr := range ch.ReplaceLocal {
		what = append(what, "="+filepath.Base(lr.Path))
	}
	l.step("resolve", "Resolving "+strings.Join(what, " "))
	tmp, err := l.scratch("hostctl-rpmdb-")
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	dbdir := filepath.Join(root, RPMDBPath)
	if err := os.MkdirAll(filepath.Dir(dbdir), 0o755); err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	if err := l.Repo.Checkout(ctx, base, dbdir, deploy.CheckoutOptions{Subpath: "/" + RPMDBPath, Copy: true}); err != nil {
		return nil, fmt.Errorf("resolve: read the rpmdb of base %s: %w", short(base), err)
	}
	pool := solv.NewPool(BaseArch())
	defer pool.Close()
	if _, err := pool.LoadInstalled(root); err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	plan := &Plan{Base: base, BaseVersion: baseVersion, Requested: requested, Remove: remove, repos: map[string]Repo{}}
	solvDir := filepath.Join(l.CacheDir, "solv")
	if err := os.MkdirAll(solvDir, 0o755); err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	for _, r := range repos {
		plan.repos[r.Repo.ID] = r.Repo
		cache := ""
		if d, ok := r.Metadata.RepoMD.Find("primary"); ok && d.Checksum.Value != "" {
			cache = filepath.Join(solvDir, r.Repo.ID+"-"+d.Checksum.Value+".solv")
		}
		if _, err := pool.AddRepoMD(r.Repo.ID, r.Metadata.Primary(), cache); err != nil {
			return nil, fmt.Errorf("resolve: %w", err)
		}
	}
	plan.Inactive = map[string][]string{}
	for _, r := range requested {
		if by := pool.InstalledMatches(r); len(by) > 0 {
			plan.Inactive[r] = by
		} else {
			plan.Active = append(plan.Active, r)
		}
	}
	var replace []solv.Replace
	localSHA := map[string]string{}
	for _, r := range ch.Replace {
		replace = append(replace, solv.Replace{Spec: r})
	}
	if len(ch.ReplaceLocal) > 0 {
		var paths []string
		for _, lr := range ch.ReplaceLocal {
			paths = append(paths, lr.Path)
		}
		locals, err := pool.AddRPMs(LocalRepo, paths)
		if err != nil {
			return nil, fmt.Errorf("resolve: %w", err)
		}
		plan.local = map[string]string{}
		for i, lp := range locals {
			plan.local[ch.ReplaceLocal[i].SHA256] = ch.ReplaceLocal[i].Path
			localSHA[lp.NEVRA()] = ch.ReplaceLocal[i].SHA256
			replace = append(replace, solv.Replace{Spec: lp.NEVRA(), Repo: LocalRepo})
		}
	}
	pkgs, replaced, err := pool.SolveOverrides(plan.Active, remove, replace)
	if err != nil {
		return nil, err
	}
	for i := range pkgs {
		if pkgs[i].Repo == LocalRepo {
			// The cache names a local RPM by the digest hostd computed
			// while receiving it.
			pkgs[i].ChecksumType, pkgs[i].Checksum = "sha256", localSHA[pkgs[i].NEVRA()]
		}
	}
	plan.Packages = pkgs
	plan.Replaced = replaced
	return plan, nil
}

// InactiveRequests lists the requests the base provides, sorted.
func (p *Plan) InactiveRequests() []string {
	out := make([]string, 0, len(p.Inactive))
	for r := range p.Inactive {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// ProvidedByBaseError refuses a new request that the base already provides.
type ProvidedByBaseError struct {
	// Request is the request and By the base packages that provide it.
	Request string
	By      []string
}

// Error names the request, the providers and the way out.
func (e *ProvidedByBaseError) Error() string {
	return fmt.Sprintf("package %q is already provided by the base (%s); pass --allow-inactive to request it anyway (it is layered once a base no longer provides it)",
		e.Request, strings.Join(e.By, " "))
}

// Result is what Build made.
type Result struct {
	// Commit is the layered commit.
	Commit string
	// Layered are the NEVRAs added to the base.
	Layered []string
	// Downloaded are the NEVRAs fetched from a repository by this build;
	// Imported those whose payload was committed to the package cache;
	// the others came from the caches.
	Downloaded, Imported []string
	// ScriptsRun counts the %post and %posttrans scripts run.
	ScriptsRun int
	// Users are the users and groups created in the tree ("user NAME",
	// "group NAME") for the packages' sysusers.d files and %pre scripts.
	Users []string
}

// packageUsers collects the users and groups the packages need: their
// sysusers.d files, and their %pre scripts that only create users and
// groups (translated; such a %pre is then not refused, and not run).
func packageUsers(ctx context.Context, pkgs []*preparedPkg) ([]SysUser, error) {
	var users []SysUser
	for _, p := range pkgs {
		for i, s := range p.scripts.Scripts {
			if s.Type != "%prein" || s.Action != ScriptRefuse || len(s.Interpreter) != 1 ||
				(s.Interpreter[0] != "/bin/sh" && s.Interpreter[0] != "/bin/bash" && s.Interpreter[0] != "/usr/bin/sh" && s.Interpreter[0] != "/usr/bin/bash") {
				continue
			}
			if u, ok := PreScriptUsers(s.Body); ok {
				users = append(users, u...)
				p.scripts.Scripts[i].Action = ScriptIgnore
			}
		}
		su, err := PackageSysusers(ctx, p.file.Path)
		if err != nil {
			return nil, err
		}
		users = append(users, su...)
	}
	return users, nil
}

type preparedPkg struct {
	file    PackageFile
	scripts *PackageScripts
	ref     string
	commit  string // cached commit, or "" until imported
	dir     string // payload tree in the scratch directory
	order   int    // place in the transaction's install order
}

// Build makes the layered commit of plan: it downloads (or reuses) and
// verifies every package, refuses any with a script the policy refuses,
// all before writing anything; then it imports each payload once into the
// package cache (a commit on PackageRef) and assembles the tree one of two
// ways (see incremental.go). When no %post or %posttrans is to run and no
// base package is removed or replaced, it builds the tree from the base
// commit without a checkout (only the directories the packages touch and a
// copy of the rpmdb are written). Otherwise, or when a package does not
// merge cleanly, it checks out the base with hardlinks, unions the packages
// over it (a conflicting file is an error), records them in the new tree's
// rpmdb (a copy), runs their %post and %posttrans sandboxed, and commits the
// tree. Both commit with the base commit, its version and the layered
// packages in the metadata, and give the same tree.
func (l *Layerer) Build(ctx context.Context, plan *Plan) (*Result, error) {
	res := &Result{Layered: plan.NEVRAs()}
	scratch, err := l.scratch("hostctl-layer-")
	if err != nil {
		return nil, fmt.Errorf("layer packages: %w", err)
	}
	defer os.RemoveAll(scratch)

	pkgs, err := l.fetch(ctx, scratch, plan, res)
	if err != nil {
		return nil, err
	}
	users, err := packageUsers(ctx, pkgs)
	if err != nil {
		return nil, err
	}
	var all []*PackageScripts
	for _, p := range pkgs {
		all = append(all, p.scripts)
	}
	if err := CheckScriptPolicy(all); err != nil {
		return nil, err
	}

	runs := scriptJobs(pkgs)
	if why := checkoutNeeded(plan, runs, l.BaseTrees[plan.Base]); why == "" && !l.forceCheckout {
		err := l.buildFromCommit(ctx, scratch, plan, pkgs, users, runs, res)
		var div *deploy.MergeDivergesError
		switch {
		case err == nil:
			return res, nil
		case errors.As(err, &div):
			// A package file over a different one, or a directory over a
			// symbolic link: the checkout path decides (and refuses) those.
			l.step("checkout", "The packages do not merge cleanly with the base ("+err.Error()+"): assembling a checkout")
		case errors.Is(err, errNoOverlay):
			l.step("checkout", "The scripts cannot run over an overlay ("+err.Error()+"): assembling a checkout")
		default:
			return nil, err
		}
		res.Users, res.ScriptsRun = nil, 0
	} else if why != "" {
		l.step("checkout", "Assembling on a checkout of the base: "+why)
	}
	l.step("checkout", "Checking out base "+short(plan.Base))
	tree := filepath.Join(scratch, "tree")
	// The checkouts record which files are hardlinks to which objects, so the
	// commit of the assembled tree reads only what scripts and rpm changed
	// (those were copied up or copied first, so they have new inodes).
	devino := deploy.NewDevinoCache()
	defer devino.Close()
	if err := l.Repo.Checkout(ctx, plan.Base, tree, deploy.CheckoutOptions{Devino: devino}); err != nil {
		return nil, fmt.Errorf("layer packages: %w", err)
	}
	// A replaced base package goes as a removed one does; its new build
	// is then layered like any package.
	gone := slices.Clone(plan.Remove)
	for _, r := range plan.Replaced {
		gone = append(gone, r.Old.Name)
	}
	if err := removeBasePackages(ctx, tree, gone); err != nil {
		return nil, err
	}
	// The users and groups the packages need exist before their payloads
	// are imported, so the files they own keep their owner.
	prev, err := PreviousIDs(l.AccountsRoot)
	if err != nil {
		return nil, fmt.Errorf("layer packages: %w", err)
	}
	added, err := AddSysUsers(tree, users, prev)
	if err != nil {
		return nil, fmt.Errorf("layer packages: create the users and groups of the packages: %w", err)
	}
	res.Users = added
	if err := l.payloads(ctx, scratch, tree, pkgs, true); err != nil {
		return nil, err
	}
	var trees []pkgTree
	for _, p := range pkgs {
		trees = append(trees, pkgTree{name: p.file.Name, dir: p.dir})
	}
	l.step("conflicts", "Checking for file conflicts")
	if err := checkConflicts(tree, trees); err != nil {
		return nil, err
	}
	if err := l.importPackages(ctx, pkgs, res); err != nil {
		return nil, err
	}
	l.step("assemble", "Assembling "+strings.Join(res.Layered, " "))
	varBefore := listDir(filepath.Join(tree, "var"))
	for _, p := range pkgs {
		if err := l.Repo.Checkout(ctx, p.commit, tree, deploy.CheckoutOptions{Overwrite: deploy.OverwriteUnionIdentical, Devino: devino}); err != nil {
			return nil, fmt.Errorf("layer package %s: %w", p.file.NEVRA(), err)
		}
	}
	if err := breakHardlinks(filepath.Join(tree, RPMDBPath)); err != nil {
		return nil, fmt.Errorf("layer packages: %w", err)
	}
	var files []string
	for _, p := range pkgs {
		files = append(files, p.file.Path)
	}
	if err := registerPackages(ctx, tree, files); err != nil {
		return nil, err
	}
	if len(runs) > 0 {
		l.step("scripts", fmt.Sprintf("Running %d package script(s) in the sandbox", len(runs)))
	}
	if err := runScripts(ctx, scratch, tree, runs); err != nil {
		return nil, err
	}
	res.ScriptsRun = len(runs)
	// /var belongs to the stateroot, not the commit: drop what rpm left there.
	for _, name := range listDir(filepath.Join(tree, "var")) {
		if !contains(varBefore, name) {
			os.RemoveAll(filepath.Join(tree, "var", name))
		}
	}
	l.step("commit", "Committing the layered tree")
	opts := layeredCommitOptions(plan, res)
	opts.Devino = devino
	c, err := l.Repo.Commit(ctx, tree, opts)
	if err != nil {
		return nil, fmt.Errorf("commit the layered tree: %w", err)
	}
	res.Commit = c
	return res, nil
}

// importPackages commits the payload tree of every package not in the
// package cache yet to its cache ref.
func (l *Layerer) importPackages(ctx context.Context, pkgs []*preparedPkg, res *Result) error {
	for _, p := range pkgs {
		if p.commit != "" {
			continue
		}
		c, err := l.Repo.Commit(ctx, p.dir, packageCacheCommit(p))
		if err != nil {
			return fmt.Errorf("import package %s into the package cache: %w", p.file.NEVRA(), err)
		}
		p.commit = c
		res.Imported = append(res.Imported, p.file.NEVRA())
	}
	return nil
}

// packageCacheCommit describes the package cache commit of p.
func packageCacheCommit(p *preparedPkg) deploy.CommitOptions {
	return deploy.CommitOptions{Ref: p.ref, Subject: packageCacheSubject + p.file.NEVRA(),
		Metadata: map[string]string{PackageChecksumKey: p.file.ChecksumType + ":" + p.file.Checksum, "version": p.file.EVR}}
}

// layeredCommitOptions are the subject and metadata of plan's layered
// commit, the same whichever way the tree was built.
func layeredCommitOptions(plan *Plan, res *Result) deploy.CommitOptions {
	return deploy.CommitOptions{
		Subject: fmt.Sprintf("hostctl: %s + %s", versionOr(plan.BaseVersion, short(plan.Base)),
			strings.Join(append(append(slices.Clone(plan.Requested), prefixed("-", plan.Remove)...), prefixed("=", plan.ReplacedLines())...), " ")),
		Metadata: map[string]string{
			deploy.BaseCommitKey: plan.Base,
			"version":            plan.BaseVersion,
			LayeredKey:           strings.Join(res.Layered, ";"),
			RequestedKey:         strings.Join(plan.Active, ";"),
			InactiveKey:          strings.Join(plan.InactiveRequests(), ";"),
			LayeredChecksumsKey:  layeredChecksums(plan.Packages),
			RemovedKey:           strings.Join(plan.Remove, ";"),
			ReplacedKey:          strings.Join(plan.ReplacedLines(), ";"),
		},
	}
}

// scriptJobs lists the scripts to run as rpm would run them for one
// install transaction: every %post in the transaction's install order (a
// package's after those of the packages it requires), then every
// %posttrans, in the same order.
func scriptJobs(pkgs []*preparedPkg) []ScriptJob {
	ordered := slices.Clone(pkgs)
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].order < ordered[j].order })
	var runs []ScriptJob
	for _, typ := range []string{"%post", "%posttrans"} {
		for _, p := range ordered {
			for _, s := range p.scripts.ToRun(typ) {
				runs = append(runs, ScriptJob{Package: p.file.Name, Script: s, Arg: "1"})
			}
		}
	}
	return runs
}

// fetch downloads (or finds in the cache) every package of plan, verifies
// signatures where the repository asks for it and reads the headers.
func (l *Layerer) fetch(ctx context.Context, scratch string, plan *Plan, res *Result) ([]*preparedPkg, error) {
	l.step("download", fmt.Sprintf("Fetching %d package(s)", len(plan.Packages)))
	dir := filepath.Join(l.CacheDir, "packages")
	keyrings := map[string]*keyring{}
	var out []*preparedPkg
	for _, sp := range plan.Packages {
		if sp.Repo == LocalRepo {
			f := PackageFile{Package: sp, Path: plan.local[sp.Checksum]}
			if _, err := os.Stat(f.Path); f.Path == "" || err != nil {
				return nil, fmt.Errorf("local package %s (sha256 %s) is no longer in the package cache %s: give its RPM file to `hostctl override replace` again, or undo the replacement with `hostctl override reset %s`",
					sp.NEVRA(), sp.Checksum, dir, sp.Name)
			}
			scripts, err := readHeaderScripts(f)
			if err != nil {
				return nil, err
			}
			out = append(out, &preparedPkg{file: f, scripts: scripts, ref: PackageRef(sp.Name, sp.EVR, sp.Arch), order: sp.Order})
			continue
		}
		repo, ok := plan.repos[sp.Repo]
		if !ok {
			return nil, fmt.Errorf("package %s comes from unknown repo %q", sp.NEVRA(), sp.Repo)
		}
		f, err := fetchPackage(ctx, l.Client, dir, repo, sp)
		if err != nil {
			return nil, err
		}
		if f.Downloaded {
			res.Downloaded = append(res.Downloaded, sp.NEVRA())
		}
		if repo.GPGCheck {
			k := keyrings[repo.ID]
			if k == nil {
				if k, err = newKeyring(ctx, l.Client, scratch, l.KeyRoot, repo); err != nil {
					return nil, err
				}
				keyrings[repo.ID] = k
			}
			if err := k.verify(ctx, f.Path, f, repo.ID); err != nil {
				return nil, err
			}
		}
		scripts, err := readHeaderScripts(f)
		if err != nil {
			return nil, err
		}
		out = append(out, &preparedPkg{file: f, scripts: scripts, ref: PackageRef(sp.Name, sp.EVR, sp.Arch), order: sp.Order})
	}
	return out, nil
}

func readHeaderScripts(f PackageFile) (*PackageScripts, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, fmt.Errorf("read package %s: %w", f.NEVRA(), err)
	}
	defer fh.Close()
	pkg, err := ReadPackage(bufio.NewReader(fh))
	if err != nil {
		return nil, fmt.Errorf("read package %s: %w", f.NEVRA(), err)
	}
	if pkg.Name() != f.Name {
		return nil, fmt.Errorf("package file of %s is named %q in its header: the repository metadata does not match its packages", f.NEVRA(), pkg.Name())
	}
	return ReadScripts(pkg)
}

// payloads gives every package a payload tree in scratch: a hardlink
// checkout of its package cache commit when the cache has it for the same
// checksum (only when checkoutCached; else the commit alone), else its
// payload extracted (owners mapped through the passwd and group of tree,
// /etc moved to /usr/etc).
func (l *Layerer) payloads(ctx context.Context, scratch, tree string, pkgs []*preparedPkg, checkoutCached bool) error {
	ids, err := LoadIDs(idFiles(tree))
	if err != nil {
		return fmt.Errorf("layer packages: %w", err)
	}
	for i, p := range pkgs {
		p.dir = filepath.Join(scratch, fmt.Sprintf("pkg-%d", i))
		want := p.file.ChecksumType + ":" + p.file.Checksum
		if c, err := l.Repo.Resolve(p.ref); err == nil {
			if _, meta, err := l.Repo.CommitMetadata(c); err == nil && meta[PackageChecksumKey] == want {
				if !checkoutCached {
					p.commit = c
					continue
				}
				if err := l.Repo.Checkout(ctx, c, p.dir, deploy.CheckoutOptions{}); err != nil {
					return fmt.Errorf("check out cached package %s: %w", p.file.NEVRA(), err)
				}
				p.commit = c
				continue
			}
		} else if !errors.Is(err, deploy.ErrNotFound) {
			return fmt.Errorf("look up cached package %s: %w", p.file.NEVRA(), err)
		}
		l.step("import", "Importing "+p.file.NEVRA())
		if err := os.Mkdir(p.dir, 0o755); err != nil {
			return err
		}
		if _, err := ExtractPayload(ctx, p.file.Path, p.dir, ids); err != nil {
			return err
		}
		if err := moveEtc(p.dir); err != nil {
			return fmt.Errorf("import package %s: %w", p.file.NEVRA(), err)
		}
	}
	return nil
}

// moveEtc moves a payload's etc/ to usr/etc/, where an OSTree commit keeps
// the default configuration.
func moveEtc(dir string) error {
	etc := filepath.Join(dir, "etc")
	st, err := os.Lstat(etc)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("/etc in the payload is not a directory")
	}
	usrEtc := filepath.Join(dir, "usr", "etc")
	if err := os.MkdirAll(filepath.Join(dir, "usr"), 0o755); err != nil {
		return err
	}
	if _, err := os.Lstat(usrEtc); err == nil {
		return fmt.Errorf("the payload has both /etc and /usr/etc")
	}
	return os.Rename(etc, usrEtc)
}

func listDir(dir string) []string {
	entries, _ := os.ReadDir(dir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func short(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func versionOr(v, alt string) string {
	if v != "" {
		return v
	}
	return alt
}
