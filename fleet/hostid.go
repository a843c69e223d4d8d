package fleet

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/hostctl/hostctl/errdefs"
)

// AppID is the application id hostctl's fleet host ids are derived with
// (systemd-id128 machine-id --app-specific=AppID --uuid prints the same id).
const AppID = "7db0593d199c409f97a951bdddd24f96"

// MachineIDPath is where the machine id lives on a host.
const MachineIDPath = "/etc/machine-id"

// HostID derives the host id of a machine from its machine id (32
// hexadecimal digits, as in /etc/machine-id) and an application id (the
// same form; AppID for hostctl's fleet): HMAC-SHA256 keyed by the machine
// id over the application id, its first 128 bits made a version 4 UUID,
// formatted as a lowercase UUID. This is what systemd's
// sd_id128_get_machine_app_specific computes, so the id is stable for the
// life of the machine, differs per application, and does not reveal the
// machine id.
func HostID(machineID, appID string) (string, error) {
	m, err := parseID128(machineID)
	if err != nil {
		return "", errdefs.Errorf(errdefs.ErrInvalidArgument, "machine id %q: %w", machineID, err)
	}
	if m == ([16]byte{}) {
		return "", errdefs.Errorf(errdefs.ErrInvalidArgument, "machine id is all zeros: initialize it (systemd-machine-id-setup) first")
	}
	a, err := parseID128(appID)
	if err != nil {
		return "", errdefs.Errorf(errdefs.ErrInvalidArgument, "application id %q: %w", appID, err)
	}
	mac := hmac.New(sha256.New, m[:])
	mac.Write(a[:])
	var id [16]byte
	copy(id[:], mac.Sum(nil))
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	x := hex.EncodeToString(id[:])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:], nil
}

// ReadHostID reads the machine id at path (MachineIDPath on a host, the
// sysroot's etc/machine-id for a host that is not booted) and derives the
// host id from it with AppID.
func ReadHostID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errdefs.Errorf(errdefs.ErrNotFound, "reading the machine id: %w: boot the host once or run systemd-machine-id-setup", err)
		}
		return "", fmt.Errorf("reading the machine id: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" || s == "uninitialized" {
		return "", errdefs.Errorf(errdefs.ErrNotFound, "%s holds no machine id yet (%q): boot the host once or run systemd-machine-id-setup", path, s)
	}
	id, err := HostID(s, AppID)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// parseID128 parses 32 hexadecimal digits, or a UUID with dashes.
func parseID128(s string) ([16]byte, error) {
	var id [16]byte
	t := s
	if len(t) == 36 && t[8] == '-' && t[13] == '-' && t[18] == '-' && t[23] == '-' {
		t = t[:8] + t[9:13] + t[14:18] + t[19:23] + t[24:]
	}
	if len(t) != 32 {
		return id, fmt.Errorf("want 32 hexadecimal digits, got %d characters", len(s))
	}
	if _, err := hex.Decode(id[:], []byte(t)); err != nil {
		return id, fmt.Errorf("not hexadecimal: %w", err)
	}
	return id, nil
}
