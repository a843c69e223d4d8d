// Package bootloader reads and verifies what libostree writes into /boot:
// Boot Loader Specification (BLS) entries, the kernel arguments in them,
// the /boot/loader -> loader.0|loader.1 swap, boot counting, and which
// bootloader a sysroot uses.
//
// libostree (driven by the deploy package) writes the entries; this package
// never writes to /boot. It parses entries the way bootloaders and libostree
// read them, orders them the way libostree and the bootloader pick the
// default, and checks after every write that what the bootloader will read
// is complete: the symlink, the entries directory, and every kernel, initrd
// and devicetree an entry names.
package bootloader
