package daemon

import (
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
)

func TestValidRemoteAdd(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		ok        bool
	}{
		{"fedora", "https://ostree.example.com/repo", true},
		{"my_remote-2.x", "http://127.0.0.1:8080", true},
		{"local", "file:///srv/repo", true},
		{"", "https://example.com", false},
		{"a/b", "https://example.com", false},
		{"a:b", "https://example.com", false},
		{"../etc", "https://example.com", false},
		{".hidden", "https://example.com", false},
		{"-rf", "https://example.com", false},
		{"sp ace", "https://example.com", false},
		{"x", "", false},
		{"x", "ftp://example.com/repo", false},
		{"x", "https://", false},
		{"x", "not a url", false},
	} {
		req := dbus.Request{Kind: "remote-add", Arg: tc.name, Options: dbus.Options{"url": godbus.MakeVariant(tc.url)}}
		if err := validRemoteAdd(req); (err == nil) != tc.ok {
			t.Errorf("remote add %q %q: %v, want ok=%v", tc.name, tc.url, err, tc.ok)
		}
	}
}

func TestMissingRemote(t *testing.T) {
	have := map[string]bool{"hostos": true}
	for _, tc := range []struct {
		refspec, want string
	}{
		{"hostos:hostos/x86_64/stable", ""},
		{"gone:hostos/x86_64/stable", "Remote 'gone' not found"},
		{"local/ref", ""}, // no remote: nothing to miss
	} {
		d := deploy.Deployment{Origin: deploy.NewOrigin(tc.refspec)}
		if got := missingRemote(d, have); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.refspec, got, tc.want)
		}
	}
	if got := missingRemote(deploy.Deployment{}, have); got != "" {
		t.Errorf("no origin: %q", got)
	}
}

func FuzzValidRemoteName(f *testing.F) {
	for _, s := range []string{"fedora", "", "a/b", "..", "x\x00y", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if validRemoteName("fuzz", name) != nil {
			return
		}
		for _, bad := range []string{"/", ":", "\x00", " ", "\n", "["} {
			if len(name) == 0 || name[0] == '.' || strings.Contains(name, bad) {
				t.Fatalf("accepted %q", name)
			}
		}
	})
}
