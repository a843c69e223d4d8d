package bootloader

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// BootLink is the parsed value of the ostree= kernel argument,
// /ostree/boot.BOOTVERSION/OSNAME/BOOTCSUM/TREESERIAL: a symlink in the
// sysroot that points at the deployment the entry boots.
type BootLink struct {
	BootVersion int    // 0 or 1: the loader.N the entry was written for
	OSName      string // the stateroot
	BootCsum    string // checksum of the kernel and initramfs
	TreeSerial  int    // tells apart deployments with the same BootCsum
}

// String returns the ostree= value.
func (b BootLink) String() string {
	return fmt.Sprintf("/ostree/boot.%d/%s/%s/%d", b.BootVersion, b.OSName, b.BootCsum, b.TreeSerial)
}

// ParseBootLink parses an ostree= value with the pattern libostree uses
// (_ostree_sysroot_parse_bootlink): ^/ostree/boot.([01])/([^/]+)/([^/]+)/([0-9]+)$.
func ParseBootLink(s string) (BootLink, error) {
	bad := fmt.Errorf("invalid ostree= argument %q: expected /ostree/boot.BOOTVERSION/OSNAME/BOOTCSUM/TREESERIAL", s)
	rest, ok := strings.CutPrefix(s, "/ostree/boot.")
	if !ok {
		return BootLink{}, bad
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || (parts[0] != "0" && parts[0] != "1") || parts[1] == "" || parts[2] == "" {
		return BootLink{}, bad
	}
	serial, ok := parseCounter(parts[3])
	if !ok || serial > 1<<31-1 {
		return BootLink{}, bad
	}
	return BootLink{
		BootVersion: int(parts[0][0] - '0'),
		OSName:      parts[1],
		BootCsum:    parts[2],
		TreeSerial:  int(serial),
	}, nil
}

// BootLink parses the entry's ostree= argument.
func (e Entry) BootLink() (BootLink, error) {
	arg := e.OstreeArg()
	if arg == "" {
		return BootLink{}, fmt.Errorf("boot entry %s: no ostree= kernel argument: not an ostree entry", e.Name)
	}
	bl, err := ParseBootLink(arg)
	if err != nil {
		return BootLink{}, fmt.Errorf("boot entry %s: %w", e.Name, err)
	}
	return bl, nil
}

// DeploymentRef names a deployment the way `ostree admin status` prints
// it: OSNAME CHECKSUM.SERIAL.
type DeploymentRef struct {
	OSName   string
	Checksum string
	Serial   int
}

// String returns "CHECKSUM.SERIAL".
func (d DeploymentRef) String() string { return d.Checksum + "." + strconv.Itoa(d.Serial) }

// Dir returns the deployment directory relative to the sysroot:
// ostree/deploy/OSNAME/deploy/CHECKSUM.SERIAL.
func (d DeploymentRef) Dir() string {
	return path.Join("ostree/deploy", d.OSName, "deploy", d.String())
}

// Deployment follows the entry's ostree= symlink in sysrootDir to the
// deployment it boots, as libostree does when it lists deployments.
func (e Entry) Deployment(sysrootDir string) (DeploymentRef, error) {
	bl, err := e.BootLink()
	if err != nil {
		return DeploymentRef{}, err
	}
	link := filepath.Join(sysrootDir, bl.String())
	target, err := os.Readlink(link)
	if err != nil {
		return DeploymentRef{}, fmt.Errorf("boot entry %s: read deployment link: %w", e.Name, err)
	}
	base := path.Base(target)
	csum, serialStr, ok := strings.Cut(base, ".")
	serial, okSerial := parseCounter(serialStr)
	if !ok || csum == "" || strings.Trim(csum, "0123456789abcdef") != "" || !okSerial || serial > 1<<31-1 {
		return DeploymentRef{}, fmt.Errorf("boot entry %s: deployment link %s points at %q, not a deployment CHECKSUM.SERIAL", e.Name, link, target)
	}
	d := DeploymentRef{OSName: bl.OSName, Checksum: csum, Serial: int(serial)}
	if fi, err := os.Stat(filepath.Join(sysrootDir, d.Dir())); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return DeploymentRef{}, fmt.Errorf("boot entry %s: deployment %s: %w", e.Name, d.Dir(), err)
	}
	return d, nil
}
