package bootloader

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Kind is a bootloader libostree can drive (or, for SystemdBoot, one that
// reads the BLS entries directly).
type Kind int

// The bootloaders Detect reports.
const (
	// None: libostree writes only the BLS entries. Bootloaders that read
	// BLS natively (GRUB with blscfg and static configs) need nothing else.
	None Kind = iota
	Grub2
	SystemdBoot
	Syslinux
	UBoot
	Zipl
	// Aboot (Android boot images) is only used when configured explicitly.
	Aboot
)

// String returns the name libostree's sysroot.bootloader setting uses
// ("none", "grub2", "syslinux", "uboot", "zipl", "aboot"), and
// "systemd-boot".
func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Grub2:
		return "grub2"
	case SystemdBoot:
		return "systemd-boot"
	case Syslinux:
		return "syslinux"
	case UBoot:
		return "uboot"
	case Zipl:
		return "zipl"
	case Aboot:
		return "aboot"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// configured maps sysroot.bootloader values to kinds; "auto" is absent.
var configured = map[string]Kind{
	"none": None, "grub2": Grub2, "syslinux": Syslinux, "uboot": UBoot, "zipl": Zipl, "aboot": Aboot,
}

// Detect returns the bootloader of the sysroot at sysrootDir the way
// libostree chooses the one it writes configuration for
// (_ostree_sysroot_query_bootloader in ostree-sysroot.c):
//
//  1. sysroot.bootloader in ostree/repo/config, when set to anything but
//     "auto", decides (the default is "auto", and "zipl" on s390x);
//  2. otherwise the first of these that is present: Syslinux
//     (boot/syslinux/syslinux.cfg), Grub2 (boot/grub/grub.cfg,
//     boot/grub2/grub.cfg, or grub.cfg in a directory of boot/efi/EFI other
//     than BOOT; but not when boot/bootupd-state.json records static
//     configs), UBoot (boot/loader/uEnv.txt);
//  3. then, beyond libostree, which has no systemd-boot backend:
//     SystemdBoot when EFI/systemd/systemd-boot*.efi is on an ESP mounted at
//     boot/efi, efi or boot;
//  4. else None.
//
// An unknown sysroot.bootloader value (libostree refuses it) is treated as
// "auto". Unreadable files count as absent.
func Detect(sysrootDir string) Kind {
	setting := repoBootloaderSetting(filepath.Join(sysrootDir, "ostree/repo/config"))
	if setting == "" && runtime.GOARCH == "s390x" {
		setting = "zipl"
	}
	if k, ok := configured[setting]; ok {
		return k
	}
	at := func(rel string) string { return filepath.Join(sysrootDir, rel) }
	if lexists(at("boot/syslinux/syslinux.cfg")) {
		return Syslinux
	}
	if grub2Active(sysrootDir) {
		return Grub2
	}
	if lexists(at("boot/loader/uEnv.txt")) {
		return UBoot
	}
	for _, esp := range []string{"boot/efi", "efi", "boot"} {
		m, _ := filepath.Glob(filepath.Join(at(esp), "EFI/systemd/systemd-boot*.efi"))
		if len(m) > 0 {
			return SystemdBoot
		}
	}
	return None
}

// grub2Active mirrors _ostree_bootloader_grub2_query.
func grub2Active(sysrootDir string) bool {
	if data, err := os.ReadFile(filepath.Join(sysrootDir, "boot/bootupd-state.json")); err == nil {
		if bytes.Contains(data, []byte(`"static-configs"`)) && !bytes.Contains(data, []byte(`"static-configs":null`)) {
			// bootupd installed a static grub.cfg that reads the BLS
			// entries itself: libostree leaves GRUB alone.
			return false
		}
	}
	for _, p := range []string{"boot/grub/grub.cfg", "boot/grub2/grub.cfg"} {
		if exists(filepath.Join(sysrootDir, p)) {
			return true
		}
	}
	efi := filepath.Join(sysrootDir, "boot/efi/EFI")
	des, err := os.ReadDir(efi)
	if err != nil {
		return false
	}
	for _, de := range des {
		// ReadDir does not follow symlinks, like libostree's enumeration.
		if de.Name() == "BOOT" || !de.IsDir() {
			continue
		}
		if exists(filepath.Join(efi, de.Name(), "grub.cfg")) {
			return true
		}
	}
	return false
}

// repoBootloaderSetting returns [sysroot] bootloader= from the repo config
// (a GKeyFile), or "" when it is not set.
func repoBootloaderSetting(configPath string) string {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return ""
	}
	group, value := "", ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			group = line[1 : len(line)-1]
		case group == "sysroot":
			k, v, ok := strings.Cut(line, "=")
			if ok && strings.TrimSpace(k) == "bootloader" {
				value = strings.TrimSpace(v)
			}
		}
	}
	return value
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func lexists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
