package daemon

import (
	"strings"
	"testing"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
)

func TestResolveDiffEnd(t *testing.T) {
	a := "a" + strings.Repeat("1", 63)
	b := "b" + strings.Repeat("2", 63)
	ab := "ab" + strings.Repeat("3", 62)
	deps := []deploy.Deployment{dep(b, 0, false, ""), dep(a, 0, false, ""), dep(ab, 1, false, "")}
	other := "c" + strings.Repeat("4", 63)
	for _, tc := range []struct {
		ref, want string
		dep       bool
		kind      error
	}{
		{ref: "0", want: b, dep: true},
		{ref: "2", want: ab, dep: true},
		{ref: "3", kind: errdefs.ErrNotFound},
		{ref: "-1", kind: errdefs.ErrNotFound},
		{ref: "os-" + a + ".0", want: a, dep: true},
		{ref: "os-" + a + ".7", kind: errdefs.ErrNotFound},
		{ref: a[:8], want: a, dep: true},
		{ref: b, want: b, dep: true},
		{ref: "a1", kind: errdefs.ErrNotFound}, // too short a prefix
		{ref: "a", kind: errdefs.ErrNotFound},
		{ref: other, want: other},                    // a commit of the repository
		{ref: other[:12], kind: errdefs.ErrNotFound}, // a prefix names deployments only
		{ref: strings.ToUpper(a), kind: errdefs.ErrInvalidArgument},
		{ref: "../../etc", kind: errdefs.ErrInvalidArgument},
		{ref: "nosuchdeployment", kind: errdefs.ErrInvalidArgument},
		{ref: "", kind: errdefs.ErrInvalidArgument},
	} {
		got, err := resolveDiffEnd(deps, tc.ref)
		if tc.kind != nil {
			if err == nil || errdefs.Kind(err) != tc.kind {
				t.Errorf("%q: %+v, %v; want %v", tc.ref, got, err, tc.kind)
			}
			continue
		}
		if err != nil || got.commit != tc.want || (got.dep != nil) != tc.dep {
			t.Errorf("%q: commit %s deployment %v, %v; want %s, deployment %v", tc.ref, got.commit, got.dep != nil, err, tc.want, tc.dep)
		}
	}
	// A prefix shared by two commits is refused.
	shared := []deploy.Deployment{dep("abcdef01"+strings.Repeat("0", 56), 0, false, ""), dep("abcdef01"+strings.Repeat("1", 56), 0, false, "")}
	if _, err := resolveDiffEnd(shared, "abcdef01"); errdefs.Kind(err) != errdefs.ErrInvalidArgument {
		t.Errorf("ambiguous prefix: %v", err)
	}
}

func TestDefaultDiffEnds(t *testing.T) {
	other := deploy.Deployment{OSName: "other", Checksum: "o"}
	for _, tc := range []struct {
		name     string
		deps     []deploy.Deployment
		from, to string
	}{
		{"one deployment", []deploy.Deployment{dep("a", 0, false, "")}, "os-a.0", "os-a.0"},
		{"not booted: previous default", []deploy.Deployment{dep("b", 0, false, ""), dep("a", 0, false, "")}, "os-a.0", "os-b.0"},
		{"booted below a pending one", []deploy.Deployment{dep("b", 0, false, ""), dep("a", 0, true, "")}, "os-a.0", "os-b.0"},
		{"booted is the default", []deploy.Deployment{dep("a", 0, true, ""), dep("r", 0, false, "")}, "os-a.0", "os-a.0"},
		{"another stateroot between", []deploy.Deployment{dep("b", 0, false, ""), other, dep("a", 0, false, "")}, "os-a.0", "os-b.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, err := defaultDiffEnds(tc.deps, "", "")
			if err != nil || a.name() != tc.from || b.name() != tc.to {
				t.Fatalf("%s -> %s, %v; want %s -> %s", a.name(), b.name(), err, tc.from, tc.to)
			}
		})
	}
	if _, _, err := defaultDiffEnds(nil, "", ""); errdefs.Kind(err) != errdefs.ErrNotFound {
		t.Fatalf("no deployment: %v", err)
	}
}

func TestResetOrigin(t *testing.T) {
	parse := func(s string) *deploy.Origin {
		o, err := deploy.ParseOrigin([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	full := "[origin]\nbaserefspec=hostos:stable\noverride-commit=abc\n\n[packages]\nrequested=hello;\n\n[overrides]\nremove=foo;\n\n[kargs]\nappend=quiet;\n\n[containers]\nweb=img@sha256:1;v\n"
	for _, tc := range []struct {
		name      string
		opts      map[string]any
		has, lack []string
	}{
		{"all", nil, []string{"refspec=hostos:stable", "override-commit=abc", "[containers]"}, []string{"[packages]", "[overrides]", "[kargs]", "baserefspec"}},
		{"overlays", map[string]any{"overlays": true}, []string{"refspec=hostos:stable", "[overrides]", "[kargs]"}, []string{"[packages]", "baserefspec"}},
		{"overrides", map[string]any{"overrides": true}, []string{"baserefspec=hostos:stable", "[packages]", "[kargs]"}, []string{"[overrides]"}},
		{"kargs", map[string]any{"kargs": true}, []string{"[packages]", "[overrides]"}, []string{"[kargs]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(resetOrigin(parse(full), resetPlanOf(dbus.Options(dbus.MakeOptions(tc.opts)))).Marshal())
			for _, h := range tc.has {
				if !strings.Contains(got, h) {
					t.Errorf("lacks %q:\n%s", h, got)
				}
			}
			for _, l := range tc.lack {
				if strings.Contains(got, l) {
					t.Errorf("has %q:\n%s", l, got)
				}
			}
		})
	}
	// Without a record of the arguments before hostctl changed them, the
	// installer's arguments (root=, console=) are not hostctl's to drop.
	d := dep("a", 0, false, "ostree=/ostree/boot.1/os/x/0 quiet console=ttyS0")
	if k := resetKargs(d, resetPlan{kargs: true}); len(k) != 3 {
		t.Fatalf("reset kargs without a recorded base: %q, want all kept", k)
	}
	if k := resetKargs(d, resetPlan{overlays: true}); len(k) != 3 {
		t.Fatalf("kept kargs: %q", k)
	}
	// With the record: back to it (an empty record: none but ostree=).
	d.Origin = parse("[origin]\nrefspec=r:x\n\n[kargs]\nbase=console=ttyS0\n")
	if k := resetKargs(d, resetPlan{kargs: true}); len(k) != 1 || k[0] != "console=ttyS0" {
		t.Fatalf("reset kargs with base console=ttyS0: %q", k)
	}
	d.Origin = parse("[origin]\nrefspec=r:x\n\n[kargs]\nbase=\n")
	if k := resetKargs(d, resetPlan{kargs: true}); k == nil || len(k) != 0 {
		t.Fatalf("reset kargs with an empty base: %q, want an empty (not nil) list", k)
	}
}

// FuzzResolveDiffEnd: a diff side from any caller never panics, and what it
// resolves to is a full commit checksum (never a path).
func FuzzResolveDiffEnd(f *testing.F) {
	a := "a" + strings.Repeat("1", 63)
	deps := []deploy.Deployment{dep(a, 0, false, ""), dep("b"+strings.Repeat("2", 63), 3, false, "")}
	for _, s := range []string{"0", "1", "-1", "999", "os-" + a + ".0", a[:8], a, "../x", "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		end, err := resolveDiffEnd(deps, ref)
		if err != nil {
			if k := errdefs.Kind(err); k != errdefs.ErrNotFound && k != errdefs.ErrInvalidArgument {
				t.Fatalf("%q: error of kind %v: %v", ref, k, err)
			}
			return
		}
		if !fullChecksumRe.MatchString(end.commit) {
			t.Fatalf("%q resolved to commit %q", ref, end.commit)
		}
	})
}
