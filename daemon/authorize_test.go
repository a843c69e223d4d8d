package daemon

import (
	"encoding/xml"
	"os"
	"testing"
)

func TestActionFor(t *testing.T) {
	for _, tc := range []struct{ kind, want string }{
		{"upgrade", actionUpgrade},
		{"deploy", actionUpgrade},
		{"rebase", actionUpgrade},
		{"rollback", actionRollback},
		{"cleanup", actionCleanup},
		{"pkg-change", actionPackages},
		{"refresh-md", actionPackages},
		{"kargs", actionKargs},
		{"pin", actionUpgrade},
		{"reset", actionPackages},
		{"image-pull", actionContainers},
		{"image-prune", actionContainers},
		{"container-install", actionContainers},
		{"container-uninstall", actionContainers},
		{"", ""},
		{"no-such-kind", ""},
		{"upgrade-x", ""},
	} {
		got, ok := actionFor(tc.kind)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("actionFor(%q) = %q, %v; want %q", tc.kind, got, ok, tc.want)
		}
	}
}

// TestEveryKindHasAnAction: a kind without a polkit action could only ever
// be done by root, silently; every kind the engine runs must have one.
func TestEveryKindHasAnAction(t *testing.T) {
	for kind := range (&Engine{}).operations() {
		if _, ok := actionFor(kind); !ok {
			t.Errorf("transaction kind %q has no polkit action: add it to actionFor and packaging/org.hostctl.host.policy", kind)
		}
	}
}

// TestPolicyDeclaresActions: the shipped policy file declares exactly the
// actions hostd asks polkit about, each admin-only by default.
func TestPolicyDeclaresActions(t *testing.T) {
	data, err := os.ReadFile("../packaging/org.hostctl.host.policy")
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Actions []struct {
			ID       string `xml:"id,attr"`
			Defaults struct {
				Any      string `xml:"allow_any"`
				Inactive string `xml:"allow_inactive"`
				Active   string `xml:"allow_active"`
			} `xml:"defaults"`
		} `xml:"action"`
	}
	if err := xml.Unmarshal(data, &policy); err != nil {
		t.Fatalf("parse the policy: %v", err)
	}
	declared := map[string]bool{}
	for _, a := range policy.Actions {
		declared[a.ID] = true
		if d := a.Defaults; d.Any != "no" || d.Inactive != "no" || d.Active != "auth_admin_keep" {
			t.Errorf("%s defaults = %+v, want no/no/auth_admin_keep", a.ID, d)
		}
	}
	asked := []string{actionUpgrade, actionRollback, actionPackages, actionContainers, actionKargs, actionCleanup}
	for _, a := range asked {
		if !declared[a] {
			t.Errorf("the policy does not declare %s", a)
		}
	}
	if len(declared) != len(asked) {
		t.Errorf("the policy declares %d actions, hostd asks about %d", len(declared), len(asked))
	}
}
