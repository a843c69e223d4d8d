package layering

import "testing"

func TestPackageRef(t *testing.T) {
	for _, tc := range []struct{ name, evr, arch, want string }{
		{"hello", "1.0-1", "noarch", "hostctl/pkg/hello/1.0-1.noarch"},
		{"foo", "2:1.0~rc1-1", "x86_64", "hostctl/pkg/foo/2_3A1.0_7Erc1-1.x86_5F64"},
		{"g++", "1^git-1", "x86_64", "hostctl/pkg/g_2B_2B/1_5Egit-1.x86_5F64"},
	} {
		if got := PackageRef(tc.name, tc.evr, tc.arch); got != tc.want {
			t.Errorf("PackageRef(%q, %q, %q) = %q, want %q", tc.name, tc.evr, tc.arch, got, tc.want)
		}
	}
}
