package layering

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hostctl/hostctl/internal/proc"
)

// RemovedKey on a layered commit lists the base packages removed from its
// tree (rpm-ostree's `override remove`), ';'-separated.
const RemovedKey = "hostctl.removed-base-packages"

// ReplacedKey on a layered commit lists the base packages replaced in its
// tree (rpm-ostree's `override replace`), "OLD-NEVRA -> NEW-NEVRA" each,
// ';'-separated.
const ReplacedKey = "hostctl.replaced-base-packages"

// prefixed returns each of list with p before it.
func prefixed(p string, list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = p + s
	}
	return out
}

// commitPath maps a path as rpm records it to where it is in an OSTree
// commit: /etc is usr/etc and /opt is usr/lib/opt (as layering puts them);
// "" for what a commit does not carry (/var, /run: the stateroot's).
func commitPath(p string) string {
	p = filepath.Clean("/" + p)
	switch {
	case p == "/etc" || strings.HasPrefix(p, "/etc/"):
		return "usr" + p
	case p == "/opt" || strings.HasPrefix(p, "/opt/"):
		return "usr/lib" + p
	case p == "/var" || strings.HasPrefix(p, "/var/") || p == "/run" || strings.HasPrefix(p, "/run/"):
		return ""
	}
	return strings.TrimPrefix(p, "/")
}

// rpmdbArgs are the arguments that make rpm use the tree's rpmdb.
func rpmdbArgs(tree string) []string {
	return []string{"--root", tree, "--dbpath", "/" + RPMDBPath, "--define", "_db_backend sqlite"}
}

// fileOwners maps every path in the tree's rpmdb to the packages that own it.
func fileOwners(ctx context.Context, tree string) (map[string][]string, error) {
	args := append(rpmdbArgs(tree), "-qa", "--qf", `[%{=NAME}\t%{FILENAMES}\n]`)
	cmd := proc.Command(ctx, "rpm", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list the files of the base packages: rpm: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	owners := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		name, path, ok := strings.Cut(sc.Text(), "\t")
		if !ok || path == "" || path == "(none)" {
			continue
		}
		owners[path] = append(owners[path], name)
	}
	return owners, sc.Err()
}

// removeBasePackages takes the named base packages out of the checked-out
// tree: it deletes the files only they own (a directory once empty), then
// drops them from the tree's rpmdb with `rpm --justdb -e` (the rpmdb is
// copied first: the checkout's files are hardlinks into the repository).
// No script runs: nothing is uninstalled in rpm's sense.
func removeBasePackages(ctx context.Context, tree string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if err := breakHardlinks(filepath.Join(tree, RPMDBPath)); err != nil {
		return fmt.Errorf("remove base packages: %w", err)
	}
	owners, err := fileOwners(ctx, tree)
	if err != nil {
		return err
	}
	removed := map[string]bool{}
	for _, n := range names {
		removed[n] = true
	}
	var paths []string
	for p, by := range owners {
		only := true
		for _, o := range by {
			if !removed[o] {
				only = false
				break
			}
		}
		if only {
			paths = append(paths, p)
		}
	}
	// Deepest first, so a directory is emptied before it is looked at.
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for _, p := range paths {
		rel := commitPath(p)
		if rel == "" || rel == "." {
			continue
		}
		full := filepath.Join(tree, rel)
		fi, err := os.Lstat(full)
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("remove base packages: %w", err)
		}
		if fi.IsDir() {
			if ents, err := os.ReadDir(full); err == nil && len(ents) > 0 {
				continue // still holds files of other packages or of none
			}
		}
		if err := os.Remove(full); err != nil {
			return fmt.Errorf("remove base packages: %w", err)
		}
		pruneEmptyParents(tree, rel, owners, removed)
	}
	args := append(rpmdbArgs(tree), "--justdb", "--nodeps", "--noscripts", "--notriggers", "-e")
	args = append(args, names...)
	cmd := proc.Command(ctx, "rpm", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("remove base packages %s from the rpmdb of the new tree: rpm: %v: %s", strings.Join(names, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// pruneEmptyParents removes the directories above rel that the removal
// left empty and that no remaining package owns (rpm records a package's
// %doc directory only through its files), up to the second level of the
// tree (usr/share stays).
func pruneEmptyParents(tree, rel string, owners map[string][]string, removed map[string]bool) {
	for dir := filepath.Dir(rel); strings.Count(dir, "/") >= 2; dir = filepath.Dir(dir) {
		key := "/" + dir
		if strings.HasPrefix(dir, "usr/etc/") || strings.HasPrefix(dir, "usr/lib/opt/") {
			key = "/" + strings.TrimPrefix(strings.TrimPrefix(dir, "usr/lib/"), "usr/")
		}
		for _, o := range owners[key] {
			if !removed[o] {
				return
			}
		}
		if os.Remove(filepath.Join(tree, dir)) != nil {
			return // not empty (or gone): leave it
		}
	}
}
