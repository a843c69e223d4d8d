package daemon

import (
	"github.com/hostctl/hostctl/dbus"
)

// Commit implements dbus.CommitReader.
func (e *Engine) Commit(checksum string) (dbus.Commit, error) {
	info, err := e.sr.CommitInfo(checksum)
	if err != nil {
		return dbus.Commit{}, err
	}
	meta, err := e.sr.CommitMetadata(checksum)
	if err != nil {
		return dbus.Commit{}, err
	}
	return dbus.Commit{Checksum: checksum, Version: info.Version, Timestamp: uint64(info.Timestamp.Unix()), Metadata: meta}, nil
}

// LocalReplacements implements dbus.CommitReader.
func (e *Engine) LocalReplacements(id string) []string {
	var out []string
	for _, d := range e.cachedDeployments() {
		if d.ID() != id {
			continue
		}
		for _, r := range replacedOverrides(d.Origin) {
			if r.SHA256 != "" {
				out = append(out, r.NEVRA)
			}
		}
	}
	return out
}
