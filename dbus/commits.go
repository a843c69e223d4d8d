package dbus

import godbus "github.com/godbus/dbus/v5"

// Commit is what an OSTree commit of the repository says of itself.
type Commit struct {
	Checksum  string
	Version   string
	Timestamp uint64
	// Metadata is the commit's a{sv} metadata, every key as libostree
	// reads it.
	Metadata map[string]godbus.Variant
}

// CommitReader is implemented by an Engine that reads the commits of its
// repository and the origins of its deployments; the rpm-ostree API's
// deployment dictionaries use it (base-commit-meta, base-version...).
type CommitReader interface {
	// Commit reads one commit.
	Commit(checksum string) (Commit, error)
	// LocalReplacements are the NEVRAs the origin of deployment id replaces
	// base packages with from local RPM files (override replace with a
	// file), as opposed to those from the repositories.
	LocalReplacements(id string) []string
}
