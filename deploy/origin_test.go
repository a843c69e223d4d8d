package deploy

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseOrigin(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		refspec  string
		packages []string
		err      string
	}{
		{name: "plain", in: "[origin]\nrefspec=fedora:fedora/x86_64/coreos/stable\n", refspec: "fedora:fedora/x86_64/coreos/stable"},
		{name: "layered rpm-ostree", in: "[origin]\nbaserefspec=os:os/stable\n\n[packages]\nrequested=vim;htop;\n", refspec: "os:os/stable", packages: []string{"vim", "htop"}},
		{name: "comments and spaces", in: "# written by rpm-ostree\n[origin]\n  refspec = os:a\n# pinned\n", refspec: "os:a"},
		{name: "escaped list item", in: "[origin]\nrefspec=r:x\n[packages]\nrequested=a\\;b;c;\n", refspec: "r:x", packages: []string{"a;b", "c"}},
		{name: "crlf", in: "[origin]\r\nrefspec=r:x\r\n", refspec: "r:x"},
		{name: "entry before group", in: "refspec=r:x\n", err: "does not start with a group"},
		{name: "bad header", in: "[origin\nrefspec=r:x\n", err: "malformed group header"},
		{name: "not key=value", in: "[origin]\nrefspec\n", err: "not a key=value"},
		{name: "empty key", in: "[origin]\n=x\n", err: "invalid key"},
		{name: "bad escape", in: "[origin]\nrefspec=a\\q\n", err: "invalid escape"},
		{name: "nul", in: "[origin]\nrefspec=a\x00\n", err: "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOrigin([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Refspec() != tt.refspec {
				t.Errorf("refspec = %q, want %q", o.Refspec(), tt.refspec)
			}
			if !reflect.DeepEqual(o.Packages(), tt.packages) {
				t.Errorf("packages = %q, want %q", o.Packages(), tt.packages)
			}
		})
	}
}

func TestOriginEdit(t *testing.T) {
	o := NewOrigin("os:os/stable")
	o.SetPackages([]string{"vim", "a;b"})
	o.Set(GroupContainers, "etcd", "docker.io/etcd@sha256:00;v")
	o.SetOverrideCommit("abc")
	o.SetRefspec("os:os/testing")
	back, err := ParseOrigin(o.Marshal())
	if err != nil {
		t.Fatalf("%v\n%s", err, o.Marshal())
	}
	if back.Refspec() != "os:os/testing" || back.OverrideCommit() != "abc" {
		t.Fatalf("round trip: %s", o.Marshal())
	}
	if got := back.Packages(); !reflect.DeepEqual(got, []string{"vim", "a;b"}) {
		t.Fatalf("packages: %q", got)
	}
	back.SetPackages(nil)
	if strings.Contains(string(back.Marshal()), "[packages]") {
		t.Fatalf("empty group kept:\n%s", back.Marshal())
	}
}

func TestSplitRefspec(t *testing.T) {
	for in, want := range map[string][2]string{"a:b/c": {"a", "b/c"}, "b/c": {"", "b/c"}} {
		r, ref, err := SplitRefspec(in)
		if err != nil || r != want[0] || ref != want[1] {
			t.Errorf("SplitRefspec(%q) = %q %q %v", in, r, ref, err)
		}
	}
	for _, bad := range []string{"", "a:", ":b", "a:b c", "a:../x", "a:/x"} {
		if _, _, err := SplitRefspec(bad); err == nil {
			t.Errorf("SplitRefspec(%q) accepted", bad)
		}
	}
}

// FuzzParseOrigin checks that whatever parses survives a marshal round trip
// with the same groups, keys and values.
func FuzzParseOrigin(f *testing.F) {
	for _, s := range []string{
		"[origin]\nrefspec=fedora:fedora/x86_64/coreos/stable\n",
		"# c\n[origin]\nbaserefspec=os:os/stable\n[packages]\nrequested=vim;htop;\n",
		"[origin]\nrefspec=r:x\n[kargs]\nappend=quiet\\sfoo\n",
		"[a]\nk=\\s lead\\\\\n[b]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseOrigin(data)
		if err != nil {
			return
		}
		out := o.Marshal()
		back, err := ParseOrigin(out)
		if err != nil {
			t.Fatalf("marshalled origin does not parse: %v\n%q", err, out)
		}
		if !reflect.DeepEqual(o.Groups(), back.Groups()) {
			t.Fatalf("groups %q != %q", o.Groups(), back.Groups())
		}
		for _, g := range o.Groups() {
			if !reflect.DeepEqual(o.Keys(g), back.Keys(g)) {
				t.Fatalf("keys of %s: %q != %q", g, o.Keys(g), back.Keys(g))
			}
			for _, k := range o.Keys(g) {
				v1, ok1 := o.Get(g, k)
				v2, ok2 := back.Get(g, k)
				if v1 != v2 || ok1 != ok2 {
					t.Fatalf("%s.%s: %q != %q", g, k, v1, v2)
				}
			}
		}
	})
}
