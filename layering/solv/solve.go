package solv

/*
#include <stdlib.h>
#include "helpers.h"
*/
import "C"

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unsafe"
)

// Package is a package the solver chose to install.
type Package struct {
	Name, EVR, Arch string
	// Repo is the id of the repository it comes from.
	Repo string
	// Location is its href relative to the repository's base URL.
	Location string
	// ChecksumType and Checksum are the package file's digest from the
	// repository metadata (e.g. "sha256" and hex); empty for installed packages.
	ChecksumType, Checksum string
	// Order is the package's place in the install order of the
	// transaction, as rpm would install it (libsolv's transaction_order):
	// a package comes after the packages it requires, prerequisites
	// (Requires(post)) weighing most. Dependency cycles are broken by
	// libsolv's heuristics, which may cut a cycle elsewhere than rpm's own
	// ordering would.
	Order int
}

// NEVRA returns name-evr.arch.
func (p Package) NEVRA() string { return p.Name + "-" + p.EVR + "." + p.Arch }

// ProblemError is an install request libsolv cannot satisfy; Problems holds
// one entry per problem: libsolv's summary and the rules behind it (the
// missing capability and the chain that needs it).
type ProblemError struct {
	Problems []string
}

// Error returns every problem, one block each.
func (e *ProblemError) Error() string {
	return "cannot resolve the request:\n" + strings.Join(e.Problems, "\n")
}

// ReplacementError is a solution that would replace or remove installed
// (base) packages, which layering never does.
type ReplacementError struct {
	// Changes are lines "NEVRA would be replaced by NEVRA" or "NEVRA would be removed".
	Changes []string
}

// Error names every installed package the solution would change.
func (e *ReplacementError) Error() string {
	return "forbidden base package replacement:\n" + strings.Join(e.Changes, "\n")
}

// SolveInstall resolves installing the packages named by specs (a name, a
// provide, name-version, name.arch, or "name >= version") on top of the
// installed repository and returns the packages to add, sorted by name, each
// with its place in the transaction's install order (Package.Order). It
// fails with *ProblemError when the request cannot be satisfied and with
// *ReplacementError when the solution would change an installed package.
func (p *Pool) SolveInstall(specs []string) ([]Package, error) {
	return p.SolveChange(specs, nil)
}

// BrokenDependencyError refuses removing base packages that other installed
// (or requested) packages need.
type BrokenDependencyError struct {
	// Removed are the base packages asked to be removed; Needed the
	// installed packages (NEVRAs) that need them, or libsolv's problems.
	Removed, Needed []string
}

// Error names the removed packages and what needs them.
func (e *BrokenDependencyError) Error() string {
	return fmt.Sprintf("removing base package(s) %s would break %s, which need(s) it; remove those too or keep it",
		strings.Join(e.Removed, " "), strings.Join(e.Needed, "; "))
}

// SolveChange is SolveInstall with the installed packages named in erase
// (exact names) removed in the same transaction. A removal that another
// installed package or an install needs fails with *BrokenDependencyError
// naming both; the removed packages themselves are not reported as changes.
func (p *Pool) SolveChange(specs, erase []string) ([]Package, error) {
	add, _, err := p.SolveOverrides(specs, erase, nil)
	return add, err
}

// Replace asks for a base package to be replaced by another build of it
// (rpm-ostree's `override replace`).
type Replace struct {
	// Spec names the replacement: a name (the best build the repositories
	// have), name-version, or a NEVRA.
	Spec string
	// Repo, when set, is the only repository the replacement may come from
	// (the local RPMs' one).
	Repo string
}

// Replacement is a base package the solution replaces, and by what.
type Replacement struct {
	Old, New Package
}

// String is "OLD-NEVRA -> NEW-NEVRA".
func (r Replacement) String() string { return r.Old.NEVRA() + " -> " + r.New.NEVRA() }

// NotInBaseError refuses replacing a package the base does not have.
type NotInBaseError struct {
	// Spec is the replacement asked for, Name its package name ("" when
	// no available package matches it either).
	Spec, Name string
}

// Error names the package and the way out.
func (e *NotInBaseError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("override replace %q: no package in the enabled repositories matches it", e.Spec)
	}
	return fmt.Sprintf("override replace %q: the base has no package named %q, so there is nothing to replace; layer it with pkg-add instead", e.Spec, e.Name)
}

// SameAsBaseError says a replacement is the build the base already has.
type SameAsBaseError struct {
	Spec, NEVRA string
}

// Error names the package.
func (e *SameAsBaseError) Error() string {
	return fmt.Sprintf("override replace %q: the base already has %s; name another version", e.Spec, e.NEVRA)
}

// SolveOverrides is SolveChange with base packages replaced as well: each
// of replace is resolved to available (not installed) packages whose name
// an installed package has, the best of them replacing it (up or down in
// version). The solution may change an installed package only where a
// replacement asks for it. A replacement whose spec names no package the
// base has fails with *NotInBaseError; one that is exactly the build the
// base has is left out and its spec returned in inactive (rpm-ostree's
// inactive replacement).
func (p *Pool) SolveOverrides(specs, erase []string, replace []Replace) (add []Package, replaced []Replacement, err error) {
	if len(specs) == 0 && len(erase) == 0 && len(replace) == 0 {
		return nil, nil, nil
	}
	C.pool_addfileprovides(p.p)
	C.pool_createwhatprovides(p.p)

	job := C.hc_queue_new()
	defer C.hc_queue_delete(job)
	sel := C.hc_queue_new()
	defer C.hc_queue_delete(sel)
	for _, spec := range specs {
		cspec := C.CString(spec)
		C.queue_empty(sel)
		C.selection_make(p.p, sel, cspec, C.SELECTION_NAME|C.SELECTION_PROVIDES|C.SELECTION_CANON|C.SELECTION_DOTARCH|C.SELECTION_REL)
		C.free(unsafe.Pointer(cspec))
		n := int(C.hc_queue_count(sel))
		if n == 0 {
			return nil, nil, &ProblemError{Problems: []string{fmt.Sprintf("no package matches %q", spec)}}
		}
		for i := 0; i+1 < n; i += 2 {
			how := C.hc_queue_at(sel, C.int(i)) | C.SOLVER_INSTALL
			C.hc_queue_push2(job, how, C.hc_queue_at(sel, C.int(i+1)))
		}
	}

	for _, name := range erase {
		cname := C.CString(name)
		C.queue_empty(sel)
		C.selection_make(p.p, sel, cname, C.SELECTION_NAME|C.SELECTION_INSTALLED_ONLY)
		C.free(unsafe.Pointer(cname))
		n := int(C.hc_queue_count(sel))
		if n == 0 {
			return nil, nil, &ProblemError{Problems: []string{fmt.Sprintf("no installed package is named %q", name)}}
		}
		for i := 0; i+1 < n; i += 2 {
			how := C.hc_queue_at(sel, C.int(i)) | C.SOLVER_ERASE
			C.hc_queue_push2(job, how, C.hc_queue_at(sel, C.int(i+1)))
		}
	}

	replacing := map[string]bool{}
	for _, r := range replace {
		ids, err := p.replacementCandidates(r)
		if err != nil {
			return nil, nil, err
		}
		if len(ids) == 0 {
			continue
		}
		replacing[C.GoString(C.hc_solvable_name(p.p, ids[0]))] = true
		C.queue_empty(sel)
		for _, id := range ids {
			C.queue_push(sel, id)
		}
		C.hc_queue_push2(job, C.SOLVER_INSTALL|C.SOLVER_SOLVABLE_ONE_OF, C.hc_queue_to_whatprovides(p.p, sel))
	}

	solver := C.solver_create(p.p)
	defer C.solver_free(solver)
	if len(replacing) > 0 {
		C.solver_set_flag(solver, C.SOLVER_FLAG_ALLOW_DOWNGRADE, 1)
	}
	if C.solver_solve(solver, job) != 0 {
		if len(erase) > 0 {
			return nil, nil, &BrokenDependencyError{Removed: erase, Needed: problems(solver)}
		}
		return nil, nil, &ProblemError{Problems: problems(solver)}
	}
	trans := C.solver_create_transaction(solver)
	defer C.transaction_free(trans)
	// Put the steps in the order rpm would run them: what a package needs
	// is installed (and its %post run) before the package itself.
	C.transaction_order(trans, 0)

	steps := C.hc_transaction_steps(trans)
	var changes, broken []string
	for i := 0; i < int(C.hc_queue_count(steps)); i++ {
		id := C.hc_queue_at(steps, C.int(i))
		if C.hc_solvable_installed(p.p, id) != 0 {
			by := C.transaction_obs_pkg(trans, id)
			if by == 0 && slices.Contains(erase, C.GoString(C.hc_solvable_name(p.p, id))) {
				continue
			}
			if by == 0 && len(erase) > 0 {
				broken = append(broken, p.nevra(id))
				continue
			}
			if by != 0 && replacing[C.GoString(C.hc_solvable_name(p.p, id))] && C.GoString(C.hc_solvable_name(p.p, id)) == C.GoString(C.hc_solvable_name(p.p, by)) {
				replaced = append(replaced, Replacement{Old: p.pkg(id), New: p.pkg(by)})
				continue
			}
			if by != 0 {
				changes = append(changes, fmt.Sprintf("%s would be replaced by %s", p.nevra(id), p.nevra(by)))
			} else {
				changes = append(changes, p.nevra(id)+" would be removed")
			}
			continue
		}
		pkg := p.pkg(id)
		pkg.Order = len(add)
		add = append(add, pkg)
	}
	if len(broken) > 0 {
		return nil, nil, &BrokenDependencyError{Removed: erase, Needed: broken}
	}
	if len(changes) > 0 {
		return nil, nil, &ReplacementError{Changes: changes}
	}
	sort.Slice(add, func(i, j int) bool { return add[i].Name < add[j].Name })
	sort.Slice(replaced, func(i, j int) bool { return replaced[i].Old.Name < replaced[j].Old.Name })
	return add, replaced, nil
}

// replacementCandidates resolves a replacement to the available packages it
// may be: those matching its spec (in its repository, if it names one) that
// are not installed, whose name an installed package has, other than the
// very build installed. None, with no error, when the spec is exactly the
// build installed and a repository has it (an inactive replacement).
func (p *Pool) replacementCandidates(r Replace) ([]C.Id, error) {
	sel := C.hc_queue_new()
	defer C.hc_queue_delete(sel)
	pkgs := C.hc_queue_new()
	defer C.hc_queue_delete(pkgs)
	cspec := C.CString(r.Spec)
	C.selection_make(p.p, sel, cspec, C.SELECTION_NAME|C.SELECTION_CANON|C.SELECTION_DOTARCH|C.SELECTION_REL)
	C.free(unsafe.Pointer(cspec))
	C.selection_solvables(p.p, sel, pkgs)
	var out []C.Id
	name, same := "", ""
	for i := 0; i < int(C.hc_queue_count(pkgs)); i++ {
		id := C.hc_queue_at(pkgs, C.int(i))
		n := C.GoString(C.hc_solvable_name(p.p, id))
		if C.hc_solvable_installed(p.p, id) != 0 {
			if same == "" {
				same = p.nevra(id)
			}
			name = n
			continue
		}
		if r.Repo != "" && C.GoString(C.hc_solvable_repo(p.p, id)) != r.Repo {
			continue
		}
		base := p.installedNamed(n)
		if name == "" || len(base) > 0 {
			name = n
		}
		if len(base) == 0 {
			continue
		}
		if slices.Contains(base, p.nevra(id)) {
			same = p.nevra(id)
			continue
		}
		out = append(out, id)
	}
	switch {
	case len(out) > 0:
		return out, nil
	case same != "" && len(p.installedNamed(name)) > 0:
		if r.Spec == same {
			return nil, nil
		}
		return nil, &SameAsBaseError{Spec: r.Spec, NEVRA: same}
	}
	return nil, &NotInBaseError{Spec: r.Spec, Name: name}
}

// installedNamed lists the NEVRAs of the installed packages named name.
func (p *Pool) installedNamed(name string) []string {
	sel := C.hc_queue_new()
	defer C.hc_queue_delete(sel)
	pkgs := C.hc_queue_new()
	defer C.hc_queue_delete(pkgs)
	cname := C.CString(name)
	C.selection_make(p.p, sel, cname, C.SELECTION_NAME|C.SELECTION_INSTALLED_ONLY)
	C.free(unsafe.Pointer(cname))
	C.selection_solvables(p.p, sel, pkgs)
	var out []string
	for i := 0; i < int(C.hc_queue_count(pkgs)); i++ {
		id := C.hc_queue_at(pkgs, C.int(i))
		if C.hc_solvable_installed(p.p, id) != 0 && C.GoString(C.hc_solvable_name(p.p, id)) == name {
			out = append(out, p.nevra(id))
		}
	}
	return out
}

// InstalledMatches returns the NEVRAs of the installed packages a request
// spec (as SolveInstall takes it) already matches by name or by what they
// provide, sorted; none when the installed repository has no such package.
// Call it after LoadInstalled.
func (p *Pool) InstalledMatches(spec string) []string {
	C.pool_addfileprovides(p.p)
	C.pool_createwhatprovides(p.p)
	sel := C.hc_queue_new()
	defer C.hc_queue_delete(sel)
	pkgs := C.hc_queue_new()
	defer C.hc_queue_delete(pkgs)
	cspec := C.CString(spec)
	C.selection_make(p.p, sel, cspec, C.SELECTION_NAME|C.SELECTION_PROVIDES|C.SELECTION_CANON|C.SELECTION_DOTARCH|C.SELECTION_REL|C.SELECTION_INSTALLED_ONLY)
	C.free(unsafe.Pointer(cspec))
	C.selection_solvables(p.p, sel, pkgs)
	var out []string
	for i := 0; i < int(C.hc_queue_count(pkgs)); i++ {
		id := C.hc_queue_at(pkgs, C.int(i))
		if C.hc_solvable_installed(p.p, id) != 0 {
			out = append(out, p.nevra(id))
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func (p *Pool) nevra(id C.Id) string { return p.pkg(id).NEVRA() }

func (p *Pool) pkg(id C.Id) Package {
	var typ *C.char
	sum := C.GoString(C.hc_solvable_checksum(p.p, id, &typ))
	return Package{
		ChecksumType: C.GoString(typ),
		Checksum:     sum,
		Name:         C.GoString(C.hc_solvable_name(p.p, id)),
		EVR:          C.GoString(C.hc_solvable_evr(p.p, id)),
		Arch:         C.GoString(C.hc_solvable_arch(p.p, id)),
		Repo:         C.GoString(C.hc_solvable_repo(p.p, id)),
		Location:     C.GoString(C.hc_solvable_location(p.p, id)),
	}
}

// problems renders each problem as libsolv's summary followed by every rule
// that takes part in it.
func problems(solver *C.Solver) []string {
	var out []string
	rules := C.hc_queue_new()
	defer C.hc_queue_delete(rules)
	count := int(C.solver_problem_count(solver))
	for pr := 1; pr <= count; pr++ {
		lines := []string{fmt.Sprintf("problem %d: %s", pr, C.GoString(C.solver_problem2str(solver, C.Id(pr))))}
		C.queue_empty(rules)
		C.solver_findallproblemrules(solver, C.Id(pr), rules)
		seen := map[string]bool{lines[0]: true}
		for i := 0; i < int(C.hc_queue_count(rules)); i++ {
			var source, target, dep C.Id
			typ := C.solver_ruleinfo(solver, C.hc_queue_at(rules, C.int(i)), &source, &target, &dep)
			line := "  - " + C.GoString(C.solver_problemruleinfo2str(solver, typ, source, target, dep))
			if !seen[line] {
				seen[line] = true
				lines = append(lines, line)
			}
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	return out
}
