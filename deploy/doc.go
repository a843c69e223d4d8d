// Package deploy owns the OSTree side of hostctl: the libostree binding (cgo)
// and every sysroot operation the daemon composes: loading a sysroot, listing
// its deployments, pulling from remotes, deploying a commit with libostree's
// /etc merge, writing the deployment list (the bootloader swap), rollback,
// cleanup, and the origin files that record what a deployment follows.
//
// A Sysroot serializes every call into libostree, whose objects are not
// thread-safe. Operations that change the sysroot require the sysroot lock
// (Lock), which the daemon takes for the length of a transaction. A pull is
// the exception: it runs on a repository object of its own, without the
// Sysroot's mutex, so reads answer while it waits on the network; and with a
// pull helper configured (SetPullHelper, RunPullHelper) it runs in a child
// process that is killed on cancel, because libostree 2022.7 does not abort
// a request in flight when its GCancellable is cancelled.
package deploy
