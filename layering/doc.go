// Package layering owns everything RPM in hostctl: the repositories a host
// reads (.repo files), the policy on package scripts, the import of package
// payloads into a tree, and (in sub-packages) rpm-md metadata and depsolving.
//
// Nothing here writes through a deployment: payloads are extracted into a
// fresh directory the caller owns, and metadata into a cache directory with
// atomic renames.
package layering
