// Package rpmdb reads the package list of an rpmdb (sqlite, ndb or bdb) and
// compares two of them. Open only a copy: sqlite writes beside the database
// even to read it, and a deployment's rpmdb is shared with the repo's objects.
package rpmdb

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	_ "github.com/glebarez/go-sqlite" // the "sqlite" driver go-rpmdb opens
	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
)

// Package is one installed package.
type Package struct {
	Name, Version, Release, Arch string
	Epoch                        int
}

// EVR is [EPOCH:]VERSION-RELEASE.
func (p Package) EVR() string {
	if p.Epoch > 0 {
		return strconv.Itoa(p.Epoch) + ":" + p.Version + "-" + p.Release
	}
	return p.Version + "-" + p.Release
}

// NEVRA is NAME-EVR.ARCH.
func (p Package) NEVRA() string { return p.Name + "-" + p.EVR() + "." + p.Arch }

// Read lists the packages of the rpmdb in dir (a directory holding
// rpmdb.sqlite, Packages.db or Packages), sorted by name.
func Read(dir string) ([]Package, error) {
	var file string
	for _, f := range []string{"rpmdb.sqlite", "Packages.db", "Packages"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			file = filepath.Join(dir, f)
			break
		}
	}
	if file == "" {
		return nil, fmt.Errorf("read rpmdb %s: no rpmdb.sqlite, Packages.db or Packages there", dir)
	}
	db, err := rpmdb.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read rpmdb %s: %w", file, err)
	}
	defer db.Close()
	infos, err := db.ListPackages()
	if err != nil {
		return nil, fmt.Errorf("read rpmdb %s: %w", file, err)
	}
	out := make([]Package, 0, len(infos))
	for _, in := range infos {
		p := Package{Name: in.Name, Version: in.Version, Release: in.Release, Arch: in.Arch}
		if in.Epoch != nil {
			p.Epoch = *in.Epoch
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NEVRA() < out[j].NEVRA() })
	return out, nil
}

// Change is a package whose version differs between two package lists.
type Change struct {
	Name     string `json:"name"`
	Arch     string `json:"arch"`
	From, To string // EVRs
}

// Diff is what changes from one package list to another, like `rpm-ostree db diff`.
type Diff struct {
	Upgraded, Downgraded []Change
	Added, Removed       []Package
}

// Compare computes the difference from old to new (matched by name and arch).
func Compare(old, new []Package) Diff {
	key := func(p Package) string { return p.Name + "." + p.Arch }
	before := map[string]Package{}
	for _, p := range old {
		before[key(p)] = p
	}
	var d Diff
	seen := map[string]bool{}
	for _, p := range new {
		k := key(p)
		seen[k] = true
		o, ok := before[k]
		switch {
		case !ok:
			d.Added = append(d.Added, p)
		case CompareEVR(o, p) < 0:
			d.Upgraded = append(d.Upgraded, Change{Name: p.Name, Arch: p.Arch, From: o.EVR(), To: p.EVR()})
		case CompareEVR(o, p) > 0:
			d.Downgraded = append(d.Downgraded, Change{Name: p.Name, Arch: p.Arch, From: o.EVR(), To: p.EVR()})
		}
	}
	for _, p := range old {
		if !seen[key(p)] {
			d.Removed = append(d.Removed, p)
		}
	}
	return d
}

// CompareEVR orders two packages' epoch, version and release as rpm does.
func CompareEVR(a, b Package) int {
	if a.Epoch != b.Epoch {
		if a.Epoch < b.Epoch {
			return -1
		}
		return 1
	}
	if c := Vercmp(a.Version, b.Version); c != 0 {
		return c
	}
	return Vercmp(a.Release, b.Release)
}

// Vercmp is rpm's rpmvercmp: segments of digits compare numerically, of
// letters lexically, digits beat letters, '~' sorts before everything (even
// the end) and '^' after the end but before anything else.
func Vercmp(a, b string) int {
	if a == b {
		return 0
	}
	isAlnum := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	for len(a) > 0 || len(b) > 0 {
		for len(a) > 0 && !isAlnum(a[0]) && a[0] != '~' && a[0] != '^' {
			a = a[1:]
		}
		for len(b) > 0 && !isAlnum(b[0]) && b[0] != '~' && b[0] != '^' {
			b = b[1:]
		}
		// Tilde: sorts before anything.
		if len(a) > 0 && a[0] == '~' || len(b) > 0 && b[0] == '~' {
			if len(a) == 0 || a[0] != '~' {
				return 1
			}
			if len(b) == 0 || b[0] != '~' {
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		// Caret: sorts after the end, before anything else.
		if len(a) > 0 && a[0] == '^' || len(b) > 0 && b[0] == '^' {
			if len(a) == 0 {
				return -1
			}
			if len(b) == 0 {
				return 1
			}
			if a[0] != '^' {
				return 1
			}
			if b[0] != '^' {
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		if len(a) == 0 || len(b) == 0 {
			break
		}
		numeric := isDigit(a[0])
		span := func(s string) (string, string) {
			i := 0
			for i < len(s) && (numeric && isDigit(s[i]) || !numeric && isAlnum(s[i]) && !isDigit(s[i])) {
				i++
			}
			return s[:i], s[i:]
		}
		var sa, sb string
		sa, a = span(a)
		sb, b = span(b)
		if sb == "" {
			if numeric {
				return 1
			}
			return -1
		}
		if numeric {
			for len(sa) > 1 && sa[0] == '0' {
				sa = sa[1:]
			}
			for len(sb) > 1 && sb[0] == '0' {
				sb = sb[1:]
			}
			if len(sa) != len(sb) {
				if len(sa) < len(sb) {
					return -1
				}
				return 1
			}
		}
		if sa != sb {
			if sa < sb {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return -1
	}
	return 1
}
