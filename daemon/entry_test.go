package daemon

import (
	"strings"
	"testing"
)

const (
	testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testValues = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// TestParseContainerEntry: the [containers] lines hostd writes read back;
// anything else is refused, never read as a partial entry.
func TestParseContainerEntry(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   containerEntry
		errSub string
	}{
		{in: "reg/hello:1@" + testDigest + ";" + testValues, want: containerEntry{Image: "reg/hello:1", Digest: testDigest, Values: testValues}},
		{in: "reg:5000/hello:1@" + testDigest + ";" + testValues + ";follow", want: containerEntry{Image: "reg:5000/hello:1", Digest: testDigest, Values: testValues, Follow: true}},
		{in: "oci:/tmp/x:1@" + testDigest + ";" + testValues, want: containerEntry{Image: "oci:/tmp/x:1", Digest: testDigest, Values: testValues}},
		{in: "", errSub: "wrong number of fields"},
		{in: "hello@" + testDigest, errSub: "wrong number of fields"},
		{in: "hello@" + testDigest + ";" + testValues + ";follow;x", errSub: "wrong number of fields"},
		{in: "hello;" + testValues, errSub: "no image digest"},
		{in: "@" + testDigest + ";" + testValues, errSub: "no image digest"},
		{in: "hello@sha256:abc;" + testValues, errSub: "no image digest"},
		{in: "hello@" + testDigest + ";", errSub: "no values digest"},
		{in: "hello@" + testDigest + ";" + testValues + ";pin", errSub: `unknown flag "pin"`},
	} {
		got, err := parseContainerEntry(tc.in)
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

// FuzzParseContainerEntry: an entry that parses writes back to the same
// line, and what it writes parses to the same entry.
func FuzzParseContainerEntry(f *testing.F) {
	f.Add("reg/hello:1@" + testDigest + ";" + testValues)
	f.Add("h@" + testDigest + ";" + testValues + ";follow")
	f.Add(";;;")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseContainerEntry(s)
		if err != nil {
			return
		}
		if e.String() != s {
			t.Fatalf("%q parsed to %+v, which writes %q", s, e, e.String())
		}
		again, err := parseContainerEntry(e.String())
		if err != nil || again != e {
			t.Fatalf("round trip of %+v: %+v, %v", e, again, err)
		}
	})
}
