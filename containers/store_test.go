package containers

import (
	"strings"
	"testing"
)

func TestImageRef(t *testing.T) {
	for _, tc := range []struct{ name, ref string }{
		{"127.0.0.1:5000/hello:1", "ociimage/127.0.0.1_3A5000_2Fhello_3A1"},
		{"docker.io/library/busybox:latest", "ociimage/docker.io_2Flibrary_2Fbusybox_3Alatest"},
		{"oci:/tmp/x:tag", "ociimage/oci_3A_2Ftmp_2Fx_3Atag"},
	} {
		if got := ImageRef(tc.name); got != tc.ref {
			t.Errorf("ImageRef(%q) = %q, want %q", tc.name, got, tc.ref)
		}
		if got, ok := DecodeImageRef(tc.ref); !ok || got != tc.name {
			t.Errorf("DecodeImageRef(%q) = %q, %v", tc.ref, got, ok)
		}
	}
	layer := LayerRef("sha256:" + strings.Repeat("a", 64))
	if _, ok := DecodeImageRef(layer); ok {
		t.Errorf("a layer ref decoded as an image name")
	}
	for _, bad := range []string{"ociimage/a_", "ociimage/a_G1", "other/x"} {
		if _, ok := DecodeImageRef(bad); ok {
			t.Errorf("DecodeImageRef(%q) accepted", bad)
		}
	}
}

// FuzzImageRef: every name survives the round trip, and its ref is a valid
// OSTree ref component (letters, digits, ".", "-", "_" only).
func FuzzImageRef(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5000/hello:1", "oci:/x:y", "_", "a@sha256:00", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ref := ImageRef(name)
		for _, c := range strings.TrimPrefix(ref, ociPrefix) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				t.Fatalf("ImageRef(%q) = %q has %q", name, ref, c)
			}
		}
		got, ok := DecodeImageRef(ref)
		if hex64.MatchString(strings.TrimPrefix(ref, ociPrefix)) {
			return // indistinguishable from a layer ref
		}
		if !ok || got != name {
			t.Fatalf("round trip of %q: %q, %v", name, got, ok)
		}
	})
}
