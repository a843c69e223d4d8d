package layering

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/hostctl/hostctl/layering/rpmmd"
)

// BaseArch is the rpm architecture of this machine, as $basearch expands.
func BaseArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	}
	return runtime.GOARCH
}

// TreeVars are the variables .repo files of the tree at root expand:
// $basearch, $arch and $releasever (VERSION_ID of the tree's os-release).
func TreeVars(root string) map[string]string {
	vars := map[string]string{"basearch": BaseArch(), "arch": BaseArch()}
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		f, err := os.Open(filepath.Join(root, p))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VERSION_ID="); ok {
				vars["releasever"] = strings.Trim(v, `"'`)
			}
		}
		f.Close()
		break
	}
	return vars
}

// EnabledRepos reads the .repo files of dir (the merge deployment's
// /etc/yum.repos.d) and returns the enabled repositories. No enabled
// repository is an error the user can act on.
func EnabledRepos(dir string, vars map[string]string) ([]Repo, error) {
	all, err := LoadRepoDir(dir, vars)
	if err != nil {
		return nil, err
	}
	var out []Repo
	for _, r := range all {
		if r.Enabled {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no enabled repository in %s: add a .repo file there (e.g. /etc/yum.repos.d/NAME.repo with baseurl=)", dir)
	}
	return out, nil
}

// RepoMetadata is a repository with its cached metadata.
type RepoMetadata struct {
	Repo     Repo
	Metadata *rpmmd.Metadata
}

// RefreshMetadata brings the cached rpm-md metadata of repos up to date
// under cacheDir/repos (force ignores metadata_expire) and returns it.
func RefreshMetadata(ctx context.Context, cacheDir string, repos []Repo, force bool) ([]RepoMetadata, error) {
	c := &rpmmd.Cache{Dir: filepath.Join(cacheDir, "repos")}
	out := make([]RepoMetadata, 0, len(repos))
	for _, r := range repos {
		expire := r.MetadataExpire
		if expire == NeverExpire {
			expire = rpmmd.NeverExpire
		}
		m, err := c.Refresh(ctx, rpmmd.Source{ID: r.ID, BaseURLs: r.BaseURLs, MetadataExpire: expire}, force)
		if err != nil {
			return nil, err
		}
		out = append(out, RepoMetadata{Repo: r, Metadata: m})
	}
	return out, nil
}
