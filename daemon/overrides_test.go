package daemon

import (
	"slices"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/deploy"
)

func TestRemovedAfter(t *testing.T) {
	for _, tc := range []struct {
		name         string
		old, rm, rst []string
		all, idem    bool
		want         []string
		wantErr      string
	}{
		{name: "remove", rm: []string{"a"}, want: []string{"a"}},
		{name: "remove more", old: []string{"a"}, rm: []string{"b"}, want: []string{"a", "b"}},
		{name: "remove again", old: []string{"a"}, rm: []string{"a"}, wantErr: "already removed"},
		{name: "remove again idempotent", old: []string{"a"}, rm: []string{"a"}, idem: true, want: []string{"a"}},
		{name: "reset one", old: []string{"a", "b"}, rst: []string{"a"}, want: []string{"b"}},
		{name: "reset unknown", old: []string{"a"}, rst: []string{"x"}, wantErr: `"x" has no override`},
		{name: "reset unknown idempotent", old: []string{"a"}, rst: []string{"x"}, idem: true, want: []string{"a"}},
		{name: "reset all", old: []string{"a", "b"}, all: true, want: nil},
		{name: "reset all and remove", old: []string{"a"}, all: true, rm: []string{"c"}, want: []string{"c"}},
		{name: "not a name", rm: []string{"a >= 1"}, wantErr: "package names"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := removedAfter(tc.old, tc.rm, tc.rst, tc.all, tc.idem)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestRemovedOverridesOrigin: the removals round-trip through the origin as
// rpm-ostree writes them, and none drops the group.
func TestRemovedOverridesOrigin(t *testing.T) {
	o := deploy.NewOrigin("remote:ref")
	setRemovedOverrides(o, []string{"a", "b"})
	if m := string(o.Marshal()); !strings.Contains(m, "[overrides]\nremove=a;b;\n") {
		t.Fatalf("origin:\n%s", m)
	}
	if got := removedOverrides(o); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("read back %v", got)
	}
	setRemovedOverrides(o, nil)
	if m := string(o.Marshal()); strings.Contains(m, "overrides") {
		t.Fatalf("origin after removing every override:\n%s", m)
	}
}
