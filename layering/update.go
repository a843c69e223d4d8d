package layering

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/internal/rpmdb"
	"github.com/hostctl/hostctl/layering/solv"
)

// LayeredChecksumsKey on a layered commit lists, for each layered package,
// "NEVRA=TYPE:HEX": the checksum of the RPM file it was built from, so an
// upgrade can tell a package rebuilt with the same NEVRA.
const LayeredChecksumsKey = "hostctl.layered-checksums"

// LayeredPackage is a package a layered commit carries.
type LayeredPackage struct {
	// Name, EVR ([EPOCH:]VERSION-RELEASE) and Arch identify it.
	Name, EVR, Arch string
	// Checksum is "TYPE:HEX" of the RPM it was layered from, or "" when
	// neither the commit nor the package cache records it.
	Checksum string
}

// NEVRA returns name-evr.arch.
func (p LayeredPackage) NEVRA() string { return p.Name + "-" + p.EVR + "." + p.Arch }

// ParseNEVRA splits NAME-[EPOCH:]VERSION-RELEASE.ARCH.
func ParseNEVRA(s string) (LayeredPackage, error) {
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 || dot == len(s)-1 {
		return LayeredPackage{}, fmt.Errorf("invalid NEVRA %q: no architecture", s)
	}
	arch, rest := s[dot+1:], s[:dot]
	rel := strings.LastIndexByte(rest, '-')
	if rel <= 0 || rel == len(rest)-1 {
		return LayeredPackage{}, fmt.Errorf("invalid NEVRA %q: no release", s)
	}
	ver := strings.LastIndexByte(rest[:rel], '-')
	if ver <= 0 || ver == rel-1 {
		return LayeredPackage{}, fmt.Errorf("invalid NEVRA %q: no version", s)
	}
	p := LayeredPackage{Name: rest[:ver], EVR: rest[ver+1:], Arch: arch}
	if _, err := parseEVR(p.EVR); err != nil {
		return LayeredPackage{}, fmt.Errorf("invalid NEVRA %q: %w", s, err)
	}
	return p, nil
}

// parseEVR splits [EPOCH:]VERSION-RELEASE.
func parseEVR(evr string) (rpmdb.Package, error) {
	var p rpmdb.Package
	if e, rest, ok := strings.Cut(evr, ":"); ok {
		n, err := strconv.Atoi(e)
		if err != nil || n < 0 {
			return p, fmt.Errorf("invalid epoch %q", e)
		}
		p.Epoch, evr = n, rest
	}
	i := strings.LastIndexByte(evr, '-')
	if i <= 0 || i == len(evr)-1 {
		return p, fmt.Errorf("invalid version-release %q", evr)
	}
	p.Version, p.Release = evr[:i], evr[i+1:]
	return p, nil
}

// LayeredPackages reads the packages a commit layers (none for a base
// commit) with the checksums of their RPMs: from the commit's metadata, else
// (a commit made before hostctl recorded them) from the package cache commit
// of the same NEVRA.
func LayeredPackages(repo *deploy.Repo, commit string) ([]LayeredPackage, error) {
	_, meta, err := repo.CommitMetadata(commit)
	if err != nil {
		return nil, fmt.Errorf("read the layered packages of %s: %w", short(commit), err)
	}
	if meta[LayeredKey] == "" {
		return nil, nil
	}
	sums := parseLayeredChecksums(meta[LayeredChecksumsKey])
	var out []LayeredPackage
	for _, n := range strings.Split(meta[LayeredKey], ";") {
		p, err := ParseNEVRA(n)
		if err != nil {
			return nil, fmt.Errorf("read the layered packages of %s: %w", short(commit), err)
		}
		p.Checksum = sums[n]
		if p.Checksum == "" {
			c, err := repo.Resolve(PackageRef(p.Name, p.EVR, p.Arch))
			if err == nil {
				if _, m, err := repo.CommitMetadata(c); err == nil {
					p.Checksum = m[PackageChecksumKey]
				}
			} else if !errors.Is(err, deploy.ErrNotFound) {
				return nil, fmt.Errorf("look up cached package %s: %w", n, err)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Change is a layered package whose version moves.
type Change struct {
	Name     string
	From, To string // EVRs
}

// PackageDiff is how a new package set differs from what a commit layers.
type PackageDiff struct {
	// Upgraded and Downgraded move to another EVR (matched by name and arch).
	Upgraded, Downgraded []Change
	// Added and Removed are NEVRAs layered only in the new, or only in the old, set.
	Added, Removed []string
	// Rebuilt are NEVRAs whose RPM has a new checksum.
	Rebuilt []string
}

// Empty is true when the sets are the same packages from the same RPMs.
func (d PackageDiff) Empty() bool {
	return len(d.Upgraded)+len(d.Downgraded)+len(d.Added)+len(d.Removed)+len(d.Rebuilt) == 0
}

// Lines describes the difference, one line a package, as the client prints
// it: "Upgraded: hello-lib 1.0-1 -> 1.1-1".
func (d PackageDiff) Lines() []string {
	var out []string
	for _, c := range d.Upgraded {
		out = append(out, fmt.Sprintf("Upgraded: %s %s -> %s", c.Name, c.From, c.To))
	}
	for _, c := range d.Downgraded {
		out = append(out, fmt.Sprintf("Downgraded: %s %s -> %s", c.Name, c.From, c.To))
	}
	for _, n := range d.Rebuilt {
		out = append(out, "Rebuilt: "+n+" (same version, new package file)")
	}
	for _, n := range d.Added {
		out = append(out, "Added: "+n)
	}
	for _, n := range d.Removed {
		out = append(out, "Removed: "+n)
	}
	return out
}

// DiffLayered compares what a commit layers (old) with the packages a new
// resolution layers. A package whose old checksum is unknown is not
// reported as rebuilt.
func DiffLayered(old []LayeredPackage, pkgs []solv.Package) PackageDiff {
	key := func(name, arch string) string { return name + "." + arch }
	before := map[string]LayeredPackage{}
	for _, p := range old {
		before[key(p.Name, p.Arch)] = p
	}
	var d PackageDiff
	seen := map[string]bool{}
	for _, p := range pkgs {
		k := key(p.Name, p.Arch)
		seen[k] = true
		o, ok := before[k]
		if !ok {
			d.Added = append(d.Added, p.NEVRA())
			continue
		}
		switch c := compareEVR(o.EVR, p.EVR); {
		case c < 0:
			d.Upgraded = append(d.Upgraded, Change{Name: p.Name, From: o.EVR, To: p.EVR})
		case c > 0:
			d.Downgraded = append(d.Downgraded, Change{Name: p.Name, From: o.EVR, To: p.EVR})
		case o.Checksum != "" && !strings.EqualFold(o.Checksum, p.ChecksumType+":"+p.Checksum):
			d.Rebuilt = append(d.Rebuilt, p.NEVRA())
		}
	}
	for _, p := range old {
		if !seen[key(p.Name, p.Arch)] {
			d.Removed = append(d.Removed, p.NEVRA())
		}
	}
	sort.Slice(d.Upgraded, func(i, j int) bool { return d.Upgraded[i].Name < d.Upgraded[j].Name })
	sort.Slice(d.Downgraded, func(i, j int) bool { return d.Downgraded[i].Name < d.Downgraded[j].Name })
	sort.Strings(d.Added)
	sort.Strings(d.Removed)
	sort.Strings(d.Rebuilt)
	return d
}

// compareEVR orders two EVRs as rpm does; EVRs that do not parse compare
// as strings (equal only when identical).
func compareEVR(a, b string) int {
	pa, errA := parseEVR(a)
	pb, errB := parseEVR(b)
	if errA != nil || errB != nil {
		return strings.Compare(a, b)
	}
	return rpmdb.CompareEVR(pa, pb)
}

// layeredChecksums is the LayeredChecksumsKey value of the packages.
func layeredChecksums(pkgs []solv.Package) string {
	var parts []string
	for _, p := range pkgs {
		parts = append(parts, p.NEVRA()+"="+p.ChecksumType+":"+p.Checksum)
	}
	return strings.Join(parts, ";")
}

// parseLayeredChecksums reads a LayeredChecksumsKey value: NEVRA -> "TYPE:HEX".
func parseLayeredChecksums(v string) map[string]string {
	sums := map[string]string{}
	for _, e := range strings.Split(v, ";") {
		if n, c, ok := strings.Cut(e, "="); ok && n != "" && c != "" {
			sums[n] = c
		}
	}
	return sums
}
