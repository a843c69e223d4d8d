package rpmostree

import (
	"errors"
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/errdefs"
)

func TestTranslateDeployOptions(t *testing.T) {
	yes, no := godbus.MakeVariant(true), godbus.MakeVariant(false)
	for _, tc := range []struct {
		name string
		kind string
		opts map[string]godbus.Variant
		// want are the hostctl options; refused names the option an
		// InvalidArgument must name ("" for none).
		want    map[string]any
		refused string
	}{
		{name: "rpm-ostree install's options, false", kind: kindPkgChange,
			opts: map[string]godbus.Variant{"cache-only": no, "download-only": no, "no-pull-base": yes, "idempotent-layering": no, "allow-inactive": no,
				"lock-finalization": no, "dry-run": no, "reboot": no, "initiating-command-line": godbus.MakeVariant("rpm-ostree install x")},
			want: map[string]any{"idempotent": false, "allow-inactive": false, "dry-run": false, "reboot": false}},
		{name: "dry-run of an upgrade is a check", kind: kindUpgrade, opts: map[string]godbus.Variant{"dry-run": yes}, want: map[string]any{"check": true}},
		{name: "dry-run of a rebase is a preview", kind: kindRebase, opts: map[string]godbus.Variant{"dry-run": yes}, want: map[string]any{"preview": true}},
		{name: "dry-run of a deploy", kind: kindDeploy, opts: map[string]godbus.Variant{"dry-run": yes}, refused: "dry-run"},
		{name: "dry-run false of a deploy", kind: kindDeploy, opts: map[string]godbus.Variant{"dry-run": no}, want: map[string]any{}},
		{name: "lock-finalization stages", kind: kindDeploy, opts: map[string]godbus.Variant{"lock-finalization": yes},
			want: map[string]any{"stage": true, "lock-finalization": true}},
		{name: "lock-finalization of a package change", kind: kindPkgChange, opts: map[string]godbus.Variant{"lock-finalization": yes}, refused: "lock-finalization"},
		{name: "download-only of an upgrade", kind: kindUpgrade, opts: map[string]godbus.Variant{"download-only": yes}, want: map[string]any{"download-only": true}},
		{name: "download-only of a rebase", kind: kindRebase, opts: map[string]godbus.Variant{"download-only": yes}, refused: "download-only"},
		{name: "no-pull-base of an upgrade", kind: kindUpgrade, opts: map[string]godbus.Variant{"no-pull-base": yes}, refused: "no-pull-base"},
		{name: "cache-only of a reset", kind: kindReset, opts: map[string]godbus.Variant{"cache-only": yes}, want: map[string]any{}},
		{name: "cache-only of a package change", kind: kindPkgChange, opts: map[string]godbus.Variant{"cache-only": yes}, refused: "cache-only"},
		{name: "allow-inactive-requests", kind: kindPkgChange, opts: map[string]godbus.Variant{"allow-inactive-requests": yes}, want: map[string]any{"allow-inactive": true}},
		{name: "allow-downgrade of a deploy is what it does", kind: kindDeploy, opts: map[string]godbus.Variant{"allow-downgrade": yes}, want: map[string]any{}},
		{name: "reboot", kind: kindRebase, opts: map[string]godbus.Variant{"reboot": yes}, want: map[string]any{"reboot": true}},
		{name: "mistyped", kind: kindUpgrade, opts: map[string]godbus.Variant{"reboot": godbus.MakeVariant("true")}, refused: "reboot"},
		{name: "unknown", kind: kindUpgrade, opts: map[string]godbus.Variant{"apply-live": yes}, refused: "apply-live"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := translate("M", tc.kind, tc.opts, deployRules)
			if tc.refused != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"`+tc.refused+`"`) {
					t.Fatalf("%v, want InvalidArgument naming %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k].Value() != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestParseNEVRA(t *testing.T) {
	for in, want := range map[string]nevraTuple{
		"hostos-tools-1.7-1.noarch":    {"hostos-tools-1.7-1.noarch", "hostos-tools", 0, "1.7", "1", "noarch"},
		"kernel-2:6.2.0-1.fc39.x86_64": {"kernel-2:6.2.0-1.fc39.x86_64", "kernel", 2, "6.2.0", "1.fc39", "x86_64"},
	} {
		if got, ok := parseNEVRA(in); !ok || got != want {
			t.Errorf("parseNEVRA(%q) = %+v %v, want %+v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "noarch", "a.b", "a-b.c"} {
		if _, ok := parseNEVRA(bad); ok {
			t.Errorf("parseNEVRA(%q) accepted", bad)
		}
	}
}
