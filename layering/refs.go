package layering

import (
	"fmt"
	"strings"
)

// PackageRefPrefix is the prefix of the refs of the package cache in the
// sysroot's repository: one commit per imported RPM payload.
const PackageRefPrefix = "hostctl/pkg/"

// PackageRef names the cached payload commit of a package:
// hostctl/pkg/NAME/EVR.ARCH, with every character an OSTree ref may not hold
// (e.g. the ':' of an epoch, '~', '^', '+') escaped as _XX.
func PackageRef(name, evr, arch string) string {
	return PackageRefPrefix + escapeRef(name) + "/" + escapeRef(evr+"."+arch)
}

func escapeRef(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02X", c)
		}
	}
	return b.String()
}
