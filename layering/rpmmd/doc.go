// Package rpmmd reads rpm-md repository metadata (repodata/repomd.xml and the
// files it names) and keeps a verified local cache of it, one directory per
// repository, updated only by atomic renames.
package rpmmd
