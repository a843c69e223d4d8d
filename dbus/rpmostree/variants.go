package rpmostree

import (
	"sort"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
)

// Package diff entry types, as rpm-ostree numbers them in a(sua{sv}).
const (
	diffAdded uint32 = iota
	diffRemoved
	diffUpgraded
	diffDowngraded
)

// pkgTuple is one package as (name, evr, arch): rpm-ostree's (sss).
type pkgTuple struct {
	Name, EVR, Arch string
}

// DiffEntry is one element of an a(sua{sv}) package diff: the package name,
// the kind of change, and PreviousPackage / NewPackage as (sss).
type DiffEntry struct {
	Name    string
	Type    uint32
	Details map[string]godbus.Variant
}

// RpmDiff turns a package diff into rpm-ostree's a(sua{sv}), sorted by type
// then name as rpm-ostree sorts it.
func RpmDiff(d dbus.PackageDiff) []DiffEntry {
	out := make([]DiffEntry, 0, len(d.Added)+len(d.Removed)+len(d.Upgraded)+len(d.Downgraded))
	for _, p := range d.Added {
		out = append(out, DiffEntry{p.Name, diffAdded, map[string]godbus.Variant{
			"NewPackage": godbus.MakeVariant(pkgTuple{p.Name, p.EVR, p.Arch})}})
	}
	for _, p := range d.Removed {
		out = append(out, DiffEntry{p.Name, diffRemoved, map[string]godbus.Variant{
			"PreviousPackage": godbus.MakeVariant(pkgTuple{p.Name, p.EVR, p.Arch})}})
	}
	change := func(c dbus.DiffChange, typ uint32) DiffEntry {
		return DiffEntry{c.Name, typ, map[string]godbus.Variant{
			"PreviousPackage": godbus.MakeVariant(pkgTuple{c.Name, c.From, c.Arch}),
			"NewPackage":      godbus.MakeVariant(pkgTuple{c.Name, c.To, c.Arch})}}
	}
	for _, c := range d.Upgraded {
		out = append(out, change(c, diffUpgraded))
	}
	for _, c := range d.Downgraded {
		out = append(out, change(c, diffDowngraded))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// deploymentDict is a deployment in rpm-ostree's a{sv} keys and types,
// with det, the keys read from its commits (details.go).
func deploymentDict(d dbus.Deployment, det commitDetails) map[string]godbus.Variant {
	inactive := map[string]bool{}
	for _, p := range append(append([]string{}, d.Inactive...), d.Missing...) {
		inactive[p] = true
	}
	active := []string{}
	for _, p := range d.Packages {
		if !inactive[p] {
			active = append(active, p)
		}
	}
	m := map[string]godbus.Variant{
		"id":                                godbus.MakeVariant(d.ID),
		"osname":                            godbus.MakeVariant(d.OSName),
		"serial":                            godbus.MakeVariant(d.Serial),
		"checksum":                          godbus.MakeVariant(d.Checksum),
		"version":                           godbus.MakeVariant(d.Version),
		"timestamp":                         godbus.MakeVariant(d.Timestamp),
		"origin":                            godbus.MakeVariant(d.Origin),
		"booted":                            godbus.MakeVariant(d.Booted),
		"staged":                            godbus.MakeVariant(d.Staged),
		"pinned":                            godbus.MakeVariant(d.Pinned),
		"unlocked":                          godbus.MakeVariant("none"),
		"packages":                          godbus.MakeVariant(active),
		"requested-packages":                godbus.MakeVariant(nonNil(d.Packages)),
		"requested-local-packages":          godbus.MakeVariant([]string{}),
		"requested-base-removals":           godbus.MakeVariant(nonNil(d.RemovedBasePackages)),
		"requested-base-local-replacements": godbus.MakeVariant([]string{}),
		"base-removals":                     godbus.MakeVariant([]godbus.Variant{}),
		"base-local-replacements":           godbus.MakeVariant([]replacement{}),
		"regenerate-initramfs":              godbus.MakeVariant(false),
	}
	if d.Version == "" {
		delete(m, "version") // rpm-ostree leaves out what the commit does not say
	}
	if d.BaseChecksum != "" && d.BaseChecksum != d.Checksum {
		m["base-checksum"] = godbus.MakeVariant(d.BaseChecksum)
	}
	for k, v := range det {
		m[k] = v
	}
	return m
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// cachedUpdateDict is a cached update in rpm-ostree's keys, empty when
// there is none for osname; gpgEnabled says whether its remote verifies
// signatures.
func cachedUpdateDict(u *dbus.CachedUpdate, osname string, gpgEnabled bool) map[string]godbus.Variant {
	if u == nil || u.Checksum == "" {
		return map[string]godbus.Variant{}
	}
	m := map[string]godbus.Variant{
		"osname":             godbus.MakeVariant(osname),
		"checksum":           godbus.MakeVariant(u.Checksum),
		"timestamp":          godbus.MakeVariant(u.Timestamp),
		"origin":             godbus.MakeVariant(u.Refspec),
		"ref-has-new-commit": godbus.MakeVariant(u.Checksum != u.Base),
		"gpg-enabled":        godbus.MakeVariant(gpgEnabled),
	}
	if u.Version != "" {
		m["version"] = godbus.MakeVariant(u.Version)
	}
	return m
}

// updateDetails are the details GetCachedUpdateRpmDiff returns beside the diff.
func updateDetails(u *dbus.CachedUpdate, osname string) map[string]godbus.Variant {
	m := cachedUpdateDict(u, osname, false)
	delete(m, "ref-has-new-commit")
	delete(m, "gpg-enabled")
	return m
}

// objectPath is the OS object of osname: rpm-ostree's path, with every
// character that may not be in an object path element made "_".
func objectPath(osname string) godbus.ObjectPath {
	var b strings.Builder
	for _, r := range osname {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return godbus.ObjectPath(string(BasePath) + "/" + b.String())
}
