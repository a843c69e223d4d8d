package containers

import (
	"strings"
	"testing"
)

const (
	testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testValues = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// TestParseEntry: the [containers] lines hostd writes read back;
// anything else is refused, never read as a partial entry.
func TestParseEntry(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   Entry
		errSub string
	}{
		{in: "reg/hello:1@" + testDigest + ";" + testValues, want: Entry{Image: "reg/hello:1", Digest: testDigest, Values: testValues}},
		{in: "reg:5000/hello:1@" + testDigest + ";" + testValues + ";follow", want: Entry{Image: "reg:5000/hello:1", Digest: testDigest, Values: testValues, Follow: true}},
		{in: "oci:/tmp/x:1@" + testDigest + ";" + testValues, want: Entry{Image: "oci:/tmp/x:1", Digest: testDigest, Values: testValues}},
		{in: "", errSub: "wrong number of fields"},
		{in: "hello@" + testDigest, errSub: "wrong number of fields"},
		{in: "hello@" + testDigest + ";" + testValues + ";follow;x", errSub: "wrong number of fields"},
		{in: "hello;" + testValues, errSub: "no image digest"},
		{in: "@" + testDigest + ";" + testValues, errSub: "no image digest"},
		{in: "hello@sha256:abc;" + testValues, errSub: "no image digest"},
		{in: "hello@" + testDigest + ";", errSub: "no values digest"},
		{in: "hello@" + testDigest + ";" + testValues + ";pin", errSub: `unknown flag "pin"`},
	} {
		got, err := ParseEntry(tc.in)
		if tc.errSub != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errSub) {
				t.Errorf("parse %q: %v, want an error with %q", tc.in, err, tc.errSub)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parse %q = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.in {
			t.Errorf("String() of %q = %q", tc.in, got.String())
		}
	}
}

// FuzzParseEntry: an entry that parses writes back to the same
// line, and what it writes parses to the same entry.
func FuzzParseEntry(f *testing.F) {
	f.Add("reg/hello:1@" + testDigest + ";" + testValues)
	f.Add("h@" + testDigest + ";" + testValues + ";follow")
	f.Add(";;;")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEntry(s)
		if err != nil {
			return
		}
		if e.String() != s {
			t.Fatalf("%q parsed to %+v, which writes %q", s, e, e.String())
		}
		again, err := ParseEntry(e.String())
		if err != nil || again != e {
			t.Fatalf("round trip of %+v: %+v, %v", e, again, err)
		}
	})
}

// TestDefaultName: an image's container name is its last path component
// without tag or digest.
func TestDefaultName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"registry.example.com/app:1", "app"},
		{"127.0.0.1:5000/team/etcd:3.5", "etcd"},
		{"127.0.0.1:5000/hello", "hello"},
		{"hello@" + testDigest, "hello"},
		{"reg:5000/hello:1@" + testDigest, "hello"},
		{"oci:/tmp/layout:1", "layout"},
		{"busybox", "busybox"},
	} {
		if got := DefaultName(tc.in); got != tc.want {
			t.Errorf("DefaultName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestIsDigest: a pulled image may be named by its digest, with or without
// the sha256: prefix; nothing else is a digest.
func TestIsDigest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{testDigest, true},
		{testValues, true},
		{"sha256:" + testValues[:63], false},
		{"SHA256:" + testValues, false},
		{"hello@" + testDigest, false},
		{"", false},
	} {
		if got := IsDigest(tc.in); got != tc.want {
			t.Errorf("IsDigest(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
