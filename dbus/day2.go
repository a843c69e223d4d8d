package dbus

import (
	"context"
	"fmt"

	godbus "github.com/godbus/dbus/v5"
)

// PackageDiff is what changes in the packages from one deployment (or
// commit) to another, as `rpm-ostree db diff` shows it.
type PackageDiff struct {
	// From and To name the two sides (deployment IDs, or commit checksums).
	From string `json:"from"`
	To   string `json:"to"`
	// FromChecksum and ToChecksum are their commits.
	FromChecksum string `json:"from-checksum"`
	ToChecksum   string `json:"to-checksum"`
	// Added and Removed are packages only in To, only in From.
	Added   []DiffPackage `json:"added"`
	Removed []DiffPackage `json:"removed"`
	// Upgraded and Downgraded are packages in both with another version.
	Upgraded   []DiffChange `json:"upgraded"`
	Downgraded []DiffChange `json:"downgraded"`
}

// DiffPackage is a package that is only on one side of a diff.
type DiffPackage struct {
	Name  string `json:"name"`
	EVR   string `json:"evr"`
	Arch  string `json:"arch"`
	NEVRA string `json:"nevra"`
}

// DiffChange is a package whose version changes between the sides of a diff.
type DiffChange struct {
	Name string `json:"name"`
	Arch string `json:"arch"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Empty says whether no package changes.
func (d PackageDiff) Empty() bool {
	return len(d.Added)+len(d.Removed)+len(d.Upgraded)+len(d.Downgraded) == 0
}

func (d PackageDiff) toBus() map[string]godbus.Variant {
	pkgs := func(l []DiffPackage) []map[string]godbus.Variant {
		out := make([]map[string]godbus.Variant, 0, len(l))
		for _, p := range l {
			out = append(out, map[string]godbus.Variant{"name": godbus.MakeVariant(p.Name), "evr": godbus.MakeVariant(p.EVR),
				"arch": godbus.MakeVariant(p.Arch), "nevra": godbus.MakeVariant(p.NEVRA)})
		}
		return out
	}
	changes := func(l []DiffChange) []map[string]godbus.Variant {
		out := make([]map[string]godbus.Variant, 0, len(l))
		for _, c := range l {
			out = append(out, map[string]godbus.Variant{"name": godbus.MakeVariant(c.Name), "arch": godbus.MakeVariant(c.Arch),
				"from": godbus.MakeVariant(c.From), "to": godbus.MakeVariant(c.To)})
		}
		return out
	}
	return map[string]godbus.Variant{
		"from": godbus.MakeVariant(d.From), "to": godbus.MakeVariant(d.To),
		"from-checksum": godbus.MakeVariant(d.FromChecksum), "to-checksum": godbus.MakeVariant(d.ToChecksum),
		"added": godbus.MakeVariant(pkgs(d.Added)), "removed": godbus.MakeVariant(pkgs(d.Removed)),
		"upgraded": godbus.MakeVariant(changes(d.Upgraded)), "downgraded": godbus.MakeVariant(changes(d.Downgraded)),
	}
}

func packageDiffFromBus(m map[string]godbus.Variant) (PackageDiff, error) {
	o := Options(m)
	d := PackageDiff{From: o.String("from"), To: o.String("to"), FromChecksum: o.String("from-checksum"), ToChecksum: o.String("to-checksum"),
		Added: []DiffPackage{}, Removed: []DiffPackage{}, Upgraded: []DiffChange{}, Downgraded: []DiffChange{}}
	list := func(key string) ([]Options, error) {
		v, ok := m[key]
		if !ok {
			return nil, nil
		}
		var raw []map[string]godbus.Variant
		if err := v.Store(&raw); err != nil {
			return nil, fmt.Errorf("read diff: %s: %w", key, err)
		}
		out := make([]Options, 0, len(raw))
		for _, r := range raw {
			out = append(out, Options(r))
		}
		return out, nil
	}
	for _, k := range []string{"added", "removed"} {
		l, err := list(k)
		if err != nil {
			return d, err
		}
		for _, p := range l {
			dp := DiffPackage{Name: p.String("name"), EVR: p.String("evr"), Arch: p.String("arch"), NEVRA: p.String("nevra")}
			if k == "added" {
				d.Added = append(d.Added, dp)
			} else {
				d.Removed = append(d.Removed, dp)
			}
		}
	}
	for _, k := range []string{"upgraded", "downgraded"} {
		l, err := list(k)
		if err != nil {
			return d, err
		}
		for _, c := range l {
			dc := DiffChange{Name: c.String("name"), Arch: c.String("arch"), From: c.String("from"), To: c.String("to")}
			if k == "upgraded" {
				d.Upgraded = append(d.Upgraded, dc)
			} else {
				d.Downgraded = append(d.Downgraded, dc)
			}
		}
	}
	return d, nil
}

// Diff compares the packages of two deployments (read-only, open to every caller).
func (h hostObject) Diff(from, to string) (map[string]godbus.Variant, *godbus.Error) {
	d, err := h.s.eng.Diff(from, to)
	if err != nil {
		return nil, toBus(err)
	}
	return d.toBus(), nil
}

// Reset starts taking the default deployment back to its plain base.
func (h hostObject) Reset(sender godbus.Sender, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "reset", "", opts)
}

// Diff compares the packages of two deployments: from and to are
// deployment indexes (0 is the default), deployment IDs or commit
// checksums; "" takes the defaults (the booted deployment, else the previous
// default, against the default one).
func (c *Client) Diff(ctx context.Context, from, to string) (PackageDiff, error) {
	var raw map[string]godbus.Variant
	if err := c.call(ctx, "Diff", &raw, from, to); err != nil {
		return PackageDiff{}, err
	}
	return packageDiffFromBus(raw)
}

// Reset begins taking the default deployment back to its plain base; opts:
// overlays, overrides, kargs (booleans; none set means all).
func (c *Client) Reset(ctx context.Context, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "Reset", MakeOptions(opts))
}
