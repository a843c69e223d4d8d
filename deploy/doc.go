// Package deploy owns the OSTree side of hostctl: the libostree binding (cgo)
// and every sysroot operation the daemon composes: loading a sysroot, listing
// its deployments, pulling from remotes, deploying a commit with libostree's
// /etc merge, writing the deployment list (the bootloader swap), rollback,
// cleanup, and the origin files that record what a deployment follows.
//
// A Sysroot serializes every call into libostree, whose objects are not
// thread-safe. Operations that change the sysroot require the sysroot lock
// (Lock), which the daemon takes for the length of a transaction.
package deploy
