package daemon

import (
	"testing"

	"github.com/hostctl/hostctl/deploy"
)

func dep(csum string, serial int, booted bool, kargs string) deploy.Deployment {
	return deploy.Deployment{OSName: "os", Checksum: csum, Serial: serial, Booted: booted, Kargs: kargs}
}

// TestStartOf: a change takes its origin from the default deployment (the
// pending one) and its /etc from the booted one.
func TestStartOf(t *testing.T) {
	pending, booted, rollback := dep("b", 0, false, ""), dep("a", 0, true, ""), dep("r", 0, false, "")
	other := deploy.Deployment{OSName: "other", Checksum: "o"}
	for _, tc := range []struct {
		name           string
		deps           []deploy.Deployment
		wantDef, merge string
	}{
		{"not booted", []deploy.Deployment{dep("a", 0, false, ""), rollback}, "os-a.0", "os-a.0"},
		{"booted, nothing pending", []deploy.Deployment{booted, rollback}, "os-a.0", "os-a.0"},
		{"booted, pending above it", []deploy.Deployment{pending, booted}, "os-b.0", "os-a.0"},
		{"booted below the rollback", []deploy.Deployment{rollback, booted}, "os-r.0", "os-a.0"},
		{"another stateroot first", []deploy.Deployment{other, pending, booted}, "os-b.0", "os-a.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := startOf(tc.deps, "/sysroot")
			if err != nil {
				t.Fatal(err)
			}
			if s.def.ID() != tc.wantDef || s.merge.ID() != tc.merge {
				t.Fatalf("start: default %s merge %s, want %s and %s", s.def.ID(), s.merge.ID(), tc.wantDef, tc.merge)
			}
		})
	}
	if _, err := startOf(nil, "/sysroot"); err == nil {
		t.Fatal("no deployment: no error")
	}
}

// TestChooseLive: the containers of the default generation run, but in the
// first start of a boot into another entry than the default, the booted one.
func TestChooseLive(t *testing.T) {
	pending, booted := dep("b", 0, false, ""), dep("a", 0, true, "")
	for _, tc := range []struct {
		name      string
		deps      []deploy.Deployment
		recorded  string
		have      bool
		want, rec string
	}{
		{"not booted: default", []deploy.Deployment{dep("a", 0, false, ""), dep("b", 0, false, "")}, "", false, "os-a.0", ""},
		{"first start of the boot: booted", []deploy.Deployment{pending, booted}, "", false, "os-a.0", "os-a.0"},
		{"recorded booted", []deploy.Deployment{pending, booted}, "os-a.0", true, "os-a.0", ""},
		{"recorded new default", []deploy.Deployment{pending, booted}, "os-b.0", true, "os-b.0", ""},
		{"recorded one that is gone: default", []deploy.Deployment{pending, booted}, "os-z.0", true, "os-b.0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, rec, ok := chooseLive(tc.deps, tc.recorded, tc.have)
			if !ok || d.ID() != tc.want || rec != tc.rec {
				t.Fatalf("chooseLive = %s, record %q, %v; want %s, record %q", d.ID(), rec, ok, tc.want, tc.rec)
			}
		})
	}
}

// TestKargsOf: a new generation keeps the kernel arguments of the one it
// starts from, quoted values intact.
func TestKargsOf(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{"root=UUID=1 rw ostree=/ostree/boot.1/os/x/0", []string{"root=UUID=1", "rw", "ostree=/ostree/boot.1/os/x/0"}},
		{`quiet foo="a b" console=ttyS0`, []string{"quiet", `foo="a b"`, "console=ttyS0"}},
	} {
		got := kargsOf(dep("a", 0, false, tc.in))
		if len(got) != len(tc.want) {
			t.Fatalf("kargsOf(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("kargsOf(%q) = %q, want %q", tc.in, got, tc.want)
			}
		}
	}
}
