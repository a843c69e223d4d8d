package dbus

import (
	"fmt"
	"strings"

	godbus "github.com/godbus/dbus/v5"
)

// CachedUpdate is what the last `upgrade --check` (or --preview) found on
// the remote: an update the default deployment has not deployed yet.
type CachedUpdate struct {
	// Refspec is what was checked (the default deployment's origin then).
	Refspec string `json:"refspec"`
	// Checksum, Version and Timestamp describe the new commit (Timestamp:
	// the commit's, seconds since the epoch).
	Checksum  string `json:"checksum"`
	Version   string `json:"version"`
	Timestamp uint64 `json:"timestamp"`
	// Checked is when the check ran (seconds since the epoch).
	Checked uint64 `json:"checked"`
	// Base is the base commit of the default deployment it was compared with.
	Base string `json:"base"`
	// HasDiff says the new commit's rpmdb was read: Upgraded and
	// Downgraded ("NAME FROM -> TO"), Added and Removed (NEVRAs) are the
	// package changes from Base.
	HasDiff    bool     `json:"has-diff,omitempty"`
	Upgraded   []string `json:"upgraded,omitempty"`
	Downgraded []string `json:"downgraded,omitempty"`
	Added      []string `json:"added,omitempty"`
	Removed    []string `json:"removed,omitempty"`
}

// DiffSummary is the package diff in a line, as rpm-ostree status gives
// it ("2 upgraded, 1 added"); "" when there is none to tell.
func (u *CachedUpdate) DiffSummary() string {
	if u == nil || !u.HasDiff {
		return ""
	}
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{len(u.Upgraded), "upgraded"}, {len(u.Downgraded), "downgraded"}, {len(u.Removed), "removed"}, {len(u.Added), "added"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if len(parts) == 0 {
		return "no package changes"
	}
	return strings.Join(parts, ", ")
}

// cachedUpdateToBus gives the property value: every key always, empty
// when there is no update (godbus's prop stores a new map into the old one
// key by key, so a key left out would keep its old value).
func cachedUpdateToBus(u *CachedUpdate) map[string]godbus.Variant {
	if u == nil {
		u = &CachedUpdate{}
	}
	return map[string]godbus.Variant{
		"refspec": godbus.MakeVariant(u.Refspec), "checksum": godbus.MakeVariant(u.Checksum),
		"version": godbus.MakeVariant(u.Version), "timestamp": godbus.MakeVariant(u.Timestamp),
		"checked": godbus.MakeVariant(u.Checked), "base": godbus.MakeVariant(u.Base),
		"has-diff": godbus.MakeVariant(u.HasDiff), "upgraded": godbus.MakeVariant(nonNil(u.Upgraded)),
		"downgraded": godbus.MakeVariant(nonNil(u.Downgraded)), "added": godbus.MakeVariant(nonNil(u.Added)),
		"removed": godbus.MakeVariant(nonNil(u.Removed)),
	}
}

func cachedUpdateFromBus(m map[string]godbus.Variant) *CachedUpdate {
	o := Options(m)
	if o.String("checksum") == "" {
		return nil
	}
	return &CachedUpdate{Refspec: o.String("refspec"), Checksum: o.String("checksum"), Version: o.String("version"),
		Timestamp: uint64(o.Int64("timestamp")), Checked: uint64(o.Int64("checked")), Base: o.String("base"),
		HasDiff: o.Bool("has-diff"), Upgraded: o.Strings("upgraded"), Downgraded: o.Strings("downgraded"),
		Added: o.Strings("added"), Removed: o.Strings("removed")}
}
