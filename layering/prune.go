package layering

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hostctl/hostctl/deploy"
)

// packageCacheSubject prefixes the subject of every package cache commit.
const packageCacheSubject = "hostctl package cache: "

// PruneResult says what PruneCache removed.
type PruneResult struct {
	// Packages are the NEVRAs whose cache commits (and RPM files) were dropped.
	Packages []string
	// Files counts the removed RPM files.
	Files int
}

// PruneCache empties the caches of what no deployment uses, as `rpm-ostree
// cleanup -m` does: the package commits (hostctl/pkg/... refs) of packages
// that no layered commit in inUse lists, their RPM files, RPM files no
// package commit accounts for, and the repository metadata and .solv caches
// (fetched again when next needed). The objects themselves go with the next
// prune of the repo. inUse holds the NEVRAs layered in any deployment.
func PruneCache(ctx context.Context, repo *deploy.Repo, cacheDir string, inUse map[string]bool) (PruneResult, error) {
	var res PruneResult
	refs, err := repo.Refs(ctx, strings.TrimSuffix(PackageRefPrefix, "/"))
	if err != nil {
		return res, fmt.Errorf("prune package cache: %w", err)
	}
	keepFiles := map[string]bool{}
	for ref, commit := range refs {
		if !strings.HasPrefix(ref, PackageRefPrefix) {
			ref = PackageRefPrefix + strings.TrimPrefix(ref, "/")
		}
		subject, meta, err := repo.CommitMetadata(commit)
		if err != nil {
			return res, fmt.Errorf("prune package cache: %w", err)
		}
		nevra := strings.TrimPrefix(subject, packageCacheSubject)
		file := strings.Replace(meta[PackageChecksumKey], ":", "-", 1) + ".rpm"
		if inUse[nevra] {
			keepFiles[file] = true
			continue
		}
		if err := repo.SetRef(ctx, ref, ""); err != nil {
			return res, fmt.Errorf("prune package cache: %w", err)
		}
		res.Packages = append(res.Packages, nevra)
	}
	pkgDir := filepath.Join(cacheDir, "packages")
	entries, err := os.ReadDir(pkgDir)
	if err != nil && !os.IsNotExist(err) {
		return res, fmt.Errorf("prune package cache: %w", err)
	}
	for _, e := range entries {
		if keepFiles[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(pkgDir, e.Name())); err != nil {
			return res, fmt.Errorf("prune package cache: %w", err)
		}
		res.Files++
	}
	for _, d := range []string{"repos", "solv"} {
		if err := os.RemoveAll(filepath.Join(cacheDir, d)); err != nil {
			return res, fmt.Errorf("prune metadata cache: %w", err)
		}
	}
	return res, nil
}

// LayeredIn lists the NEVRAs a layered commit records (none for a base commit).
func LayeredIn(repo *deploy.Repo, commit string) ([]string, error) {
	_, meta, err := repo.CommitMetadata(commit)
	if err != nil {
		return nil, err
	}
	if meta[LayeredKey] == "" {
		return nil, nil
	}
	return strings.Split(meta[LayeredKey], ";"), nil
}
