package dbus

import godbus "github.com/godbus/dbus/v5"

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
	}
}

func cachedUpdateFromBus(m map[string]godbus.Variant) *CachedUpdate {
	o := Options(m)
	if o.String("checksum") == "" {
		return nil
	}
	return &CachedUpdate{Refspec: o.String("refspec"), Checksum: o.String("checksum"), Version: o.String("version"),
		Timestamp: uint64(o.Int64("timestamp")), Checked: uint64(o.Int64("checked")), Base: o.String("base")}
}
