package fleet

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/errdefs"
)

func TestHostID(t *testing.T) {
	cases := []struct {
		machine, app, want string
		kind               error // nil: success
	}{
		// Vectors computed independently (Python's hmac); the first one was
		// also checked with systemd-id128 machine-id --app-specific=AppID -u.
		{machine: "3d1219c7c4c5404aaa1f6d2a48adfda4", app: AppID, want: "b91f4dae-8250-40fb-8936-d3a88b873712"},
		{machine: "00000000000000000000000000000001", app: AppID, want: "f9e886fe-e158-4f8e-83ae-f18abb746821"},
		{machine: "ffffffffffffffffffffffffffffffff", app: AppID, want: "146bba02-0edd-4ffd-ba5e-965eff0423b2"},
		{machine: "0123456789abcdef0123456789abcdef", app: AppID, want: "0d20e516-17a4-4372-9ead-9e0907b168d1"},
		{machine: "0123456789ABCDEF0123456789ABCDEF", app: AppID, want: "0d20e516-17a4-4372-9ead-9e0907b168d1"},
		{machine: "01234567-89ab-cdef-0123-456789abcdef", app: AppID, want: "0d20e516-17a4-4372-9ead-9e0907b168d1"},
		{machine: "", app: AppID, kind: errdefs.ErrInvalidArgument},
		{machine: "uninitialized", app: AppID, kind: errdefs.ErrInvalidArgument},
		{machine: "0123456789abcdef0123456789abcdeg", app: AppID, kind: errdefs.ErrInvalidArgument},
		{machine: "00000000000000000000000000000000", app: AppID, kind: errdefs.ErrInvalidArgument},
		{machine: "0123456789abcdef0123456789abcdef", app: "short", kind: errdefs.ErrInvalidArgument},
	}
	for _, tc := range cases {
		got, err := HostID(tc.machine, tc.app)
		if tc.kind != nil {
			if err == nil || errdefs.Kind(err) != tc.kind {
				t.Errorf("HostID(%q): %q, %v; want an error of kind %v", tc.machine, got, err, tc.kind)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("HostID(%q) = %q, %v; want %q", tc.machine, got, err, tc.want)
		}
		if strings.Contains(strings.ReplaceAll(got, "-", ""), strings.ToLower(strings.ReplaceAll(tc.machine, "-", ""))) {
			t.Errorf("HostID(%q) = %q contains the machine id", tc.machine, got)
		}
	}
	// Another application gets another id from the same machine.
	a, _ := HostID("0123456789abcdef0123456789abcdef", AppID)
	b, _ := HostID("0123456789abcdef0123456789abcdef", "00000000000000000000000000000002")
	if a == b {
		t.Errorf("two application ids gave the same host id %s", a)
	}
}

func TestReadHostID(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "machine-id")
	os.WriteFile(p, []byte("3d1219c7c4c5404aaa1f6d2a48adfda4\n"), 0o444)
	if id, err := ReadHostID(p); err != nil || id != "b91f4dae-8250-40fb-8936-d3a88b873712" {
		t.Errorf("ReadHostID = %q, %v", id, err)
	}
	os.WriteFile(p, []byte("uninitialized\n"), 0o444)
	if _, err := ReadHostID(p); !errdefs.IsNotFound(err) {
		t.Errorf("uninitialized machine id: %v, want not found", err)
	}
	if _, err := ReadHostID(filepath.Join(dir, "none")); !errdefs.IsNotFound(err) {
		t.Errorf("missing machine id: %v, want not found", err)
	}
	// The same id systemd derives for this machine, when both are here.
	if _, err := os.Stat(MachineIDPath); err == nil {
		if path, err := exec.LookPath("systemd-id128"); err == nil {
			out, err := exec.Command(path, "machine-id", "--app-specific="+AppID, "--uuid").Output()
			if err == nil {
				id, err := ReadHostID(MachineIDPath)
				if err != nil || id != strings.TrimSpace(string(out)) {
					t.Errorf("ReadHostID(%s) = %q, %v; systemd-id128 says %q", MachineIDPath, id, err, out)
				}
			}
		}
	}
}
