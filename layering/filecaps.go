package layering

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// capNames are the Linux capability names in number order (capability.h).
func capNumber(name string) (int, bool) {
	names := [...]string{
		"cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid",
		"cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable",
		"cap_net_bind_service", "cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock",
		"cap_ipc_owner", "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace",
		"cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice", "cap_sys_resource",
		"cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease", "cap_audit_write",
		"cap_audit_control", "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog",
		"cap_wake_alarm", "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf",
		"cap_checkpoint_restore",
	}
	for i, n := range names {
		if n == name {
			return i, true
		}
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 && n < 64 {
		return n, true
	}
	return 0, false
}

const capLast = 40

// fileCapsXattr converts rpm's textual file capabilities (cap_from_text
// syntax, e.g. "cap_net_raw,cap_net_admin=ep") to the value of the
// security.capability xattr (vfs_cap_data revision 2). It returns nil for an
// empty set.
func fileCapsXattr(text string) ([]byte, error) {
	var eff, perm, inh uint64
	for _, clause := range strings.Fields(strings.ToLower(text)) {
		opAt := strings.IndexAny(clause, "=+-")
		if opAt < 0 {
			return nil, fmt.Errorf("capabilities %q: clause %q has no =, + or -", text, clause)
		}
		var set uint64
		if list := clause[:opAt]; list == "" || list == "all" {
			set = 1<<(capLast+1) - 1
		} else {
			for _, n := range strings.Split(list, ",") {
				c, ok := capNumber(n)
				if !ok {
					return nil, fmt.Errorf("capabilities %q: unknown capability %q", text, n)
				}
				set |= 1 << c
			}
		}
		rest := clause[opAt:]
		for rest != "" {
			op := rest[0]
			rest = rest[1:]
			end := strings.IndexAny(rest, "=+-")
			if end < 0 {
				end = len(rest)
			}
			flags := rest[:end]
			rest = rest[end:]
			if op == '=' {
				eff, perm, inh = eff&^set, perm&^set, inh&^set
			}
			for _, f := range flags {
				var target *uint64
				switch f {
				case 'e':
					target = &eff
				case 'p':
					target = &perm
				case 'i':
					target = &inh
				default:
					return nil, fmt.Errorf("capabilities %q: unknown flag %q", text, f)
				}
				if op == '-' {
					*target &^= set
				} else {
					*target |= set
				}
			}
		}
	}
	if eff == 0 && perm == 0 && inh == 0 {
		return nil, nil
	}
	const vfsCapRevision2 = 0x02000000
	const vfsCapFlagsEffective = 0x000001
	magic := uint32(vfsCapRevision2)
	if eff != 0 {
		magic |= vfsCapFlagsEffective
	}
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], magic)
	binary.LittleEndian.PutUint32(b[4:], uint32(perm))
	binary.LittleEndian.PutUint32(b[8:], uint32(inh))
	binary.LittleEndian.PutUint32(b[12:], uint32(perm>>32))
	binary.LittleEndian.PutUint32(b[16:], uint32(inh>>32))
	return b, nil
}
