package solv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/layering/internal/testrpm"
)

// fixture is a tree whose rpmdb has base-1.0, and a repository with
// applib 1.0 and 2.0, app (needs applib >= 2.0 and libbase), base-2.0,
// broken (needs notthere) and needsnewbase (needs libbase >= 2.0).
type fixture struct {
	tree    string
	primary string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	testrpm.Require(t, "rpm")
	build := func(spec string) string { return testrpm.BuildFile(t, filepath.Join("testdata", spec), "")[0] }
	tree := t.TempDir()
	dbpath := "/usr/lib/sysimage/rpm"
	out, err := exec.Command("rpm", "--root", tree, "--dbpath", dbpath, "-i", "--justdb", "--nodeps", "--noscripts",
		build("base-1.0.spec")).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -i --justdb: %v\n%s", err, out)
	}
	repo := t.TempDir()
	var rpms []string
	for _, s := range []string{"applib-1.0.spec", "applib-2.0.spec", "app-1.0.spec", "base-2.0.spec", "broken-1.0.spec", "needsnewbase-1.0.spec"} {
		rpms = append(rpms, build(s))
	}
	testrpm.CreateRepo(t, repo, "", rpms...)
	primaries, _ := filepath.Glob(filepath.Join(repo, "repodata", "*-primary.xml.*"))
	if len(primaries) != 1 {
		t.Fatalf("primary: %v", primaries)
	}
	primary := filepath.Join(t.TempDir(), "primary.xml")
	plain, err := exec.Command("sh", "-c", `case "$1" in *.gz) gzip -dc "$1";; *.zst) zstd -dc "$1";; *.xz) xz -dc "$1";; *.bz2) bzip2 -dc "$1";; esac`, "sh", primaries[0]).Output()
	if err != nil {
		t.Fatalf("decompress primary: %v", err)
	}
	if err := os.WriteFile(primary, plain, 0o644); err != nil {
		t.Fatal(err)
	}
	return fixture{tree: tree, primary: primary}
}

func (f fixture) pool(t *testing.T, solvCache string) (*Pool, bool) {
	t.Helper()
	p := NewPool("x86_64")
	t.Cleanup(p.Close)
	n, err := p.LoadInstalled(f.tree)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("installed packages: %d, want 1 (base)", n)
	}
	cached, err := p.AddRepoMD("test", f.primary, solvCache)
	if err != nil {
		t.Fatal(err)
	}
	return p, cached
}

func names(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		out = append(out, p.NEVRA())
	}
	return out
}

func TestSolve(t *testing.T) {
	f := newFixture(t)
	dbDir := filepath.Join(f.tree, "usr/lib/sysimage/rpm")
	before, _ := os.ReadDir(dbDir)

	t.Run("versioned dependency", func(t *testing.T) {
		p, _ := f.pool(t, "")
		pkgs, err := p.SolveInstall([]string{"app"})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(pkgs); !reflect.DeepEqual(got, []string{"app-1.0-1.noarch", "applib-2.0-1.noarch"}) {
			t.Fatalf("install set %v", got)
		}
		if pkgs[0].Repo != "test" || !strings.HasSuffix(pkgs[0].Location, "app-1.0-1.noarch.rpm") {
			t.Fatalf("package %+v", pkgs[0])
		}
		// Sorted by name, but installed as rpm would: applib before the app
		// that requires it.
		if pkgs[0].Order != 1 || pkgs[1].Order != 0 {
			t.Fatalf("install order: app %d, applib %d; want applib (0) before app (1)", pkgs[0].Order, pkgs[1].Order)
		}
	})

	t.Run("explicit version", func(t *testing.T) {
		p, _ := f.pool(t, "")
		pkgs, err := p.SolveInstall([]string{"applib-1.0"})
		if err != nil || !reflect.DeepEqual(names(pkgs), []string{"applib-1.0-1.noarch"}) {
			t.Fatalf("%v %v", names(pkgs), err)
		}
	})

	t.Run("missing dependency", func(t *testing.T) {
		p, _ := f.pool(t, "")
		_, err := p.SolveInstall([]string{"broken"})
		var pe *ProblemError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "nothing provides notthere >= 3 needed by broken-1.0-1.noarch") {
			t.Fatalf("error = %v", err)
		}
	})

	t.Run("no such package", func(t *testing.T) {
		p, _ := f.pool(t, "")
		_, err := p.SolveInstall([]string{"nosuch"})
		if err == nil || !strings.Contains(err.Error(), `no package matches "nosuch"`) {
			t.Fatalf("error = %v", err)
		}
	})

	t.Run("base replacement refused", func(t *testing.T) {
		p, _ := f.pool(t, "")
		_, err := p.SolveInstall([]string{"needsnewbase"})
		var re *ReplacementError
		if !errors.As(err, &re) || err.Error() != "forbidden base package replacement:\nbase-1.0-1.noarch would be replaced by base-2.0-1.noarch" {
			t.Fatalf("error = %v", err)
		}
	})

	t.Run("installed matches", func(t *testing.T) {
		p, _ := f.pool(t, "")
		for _, c := range []struct {
			spec string
			want []string
		}{
			{"base", []string{"base-1.0-1.noarch"}},
			{"libbase", []string{"base-1.0-1.noarch"}},
			{"libbase >= 1.0", []string{"base-1.0-1.noarch"}},
			{"base-1.0", []string{"base-1.0-1.noarch"}},
			{"libbase >= 2.0", nil},
			{"app", nil},
			{"applib", nil},
			{"nosuch", nil},
		} {
			if got := p.InstalledMatches(c.spec); !reflect.DeepEqual(got, c.want) {
				t.Errorf("InstalledMatches(%q) = %v, want %v", c.spec, got, c.want)
			}
		}
	})

	t.Run("solv cache", func(t *testing.T) {
		cache := filepath.Join(t.TempDir(), "test.solv")
		p, cached := f.pool(t, cache)
		if cached {
			t.Fatal("first load claims the cache")
		}
		if st, err := os.Stat(cache); err != nil || st.Size() == 0 {
			t.Fatalf("no solv cache written: %v", err)
		}
		first, err := p.SolveInstall([]string{"app"})
		if err != nil {
			t.Fatal(err)
		}
		// The XML is gone: only the cache can answer.
		g := fixture{tree: f.tree, primary: filepath.Join(t.TempDir(), "absent.xml")}
		p2, cached := g.pool(t, cache)
		if !cached {
			t.Fatal("second load did not use the cache")
		}
		second, err := p2.SolveInstall([]string{"app"})
		if err != nil || !reflect.DeepEqual(first, second) {
			t.Fatalf("from cache: %v %v, want %v", second, err, first)
		}
	})

	after, _ := os.ReadDir(dbDir)
	if len(after) != len(before) {
		t.Fatalf("the tree's rpmdb directory changed: %d entries before, %d after", len(before), len(after))
	}
}

func TestLoadInstalledNoRpmdb(t *testing.T) {
	p := NewPool("x86_64")
	defer p.Close()
	if _, err := p.LoadInstalled(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no rpmdb") {
		t.Fatalf("error = %v", err)
	}
}

func TestSolveInstallChecksum(t *testing.T) {
	f := newFixture(t)
	p, _ := f.pool(t, "")
	got, err := p.SolveInstall([]string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range got {
		if pkg.ChecksumType != "sha256" || len(pkg.Checksum) != 64 {
			t.Errorf("%s: checksum %q:%q, want a sha256 from primary.xml", pkg.NEVRA(), pkg.ChecksumType, pkg.Checksum)
		}
	}
}
