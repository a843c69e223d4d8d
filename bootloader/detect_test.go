package bootloader

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestDetect(t *testing.T) {
	if runtime.GOARCH == "s390x" {
		t.Skip("on s390x the default is zipl")
	}
	type file struct{ path, data string }
	tests := []struct {
		name  string
		files []file
		links map[string]string
		dirs  []string
		want  Kind
	}{
		{name: "empty", want: None},
		{name: "grub bios debian", files: []file{{"boot/grub/grub.cfg", ""}}, want: Grub2},
		{name: "grub bios fedora", files: []file{{"boot/grub2/grub.cfg", ""}}, want: Grub2},
		{name: "grub efi", files: []file{{"boot/efi/EFI/fedora/grub.cfg", ""}}, want: Grub2},
		{name: "grub efi BOOT only", files: []file{{"boot/efi/EFI/BOOT/grub.cfg", ""}}, want: None},
		{name: "grub efi symlinked dir skipped", files: []file{{"elsewhere/grub.cfg", ""}},
			links: map[string]string{"boot/efi/EFI/fedora": "../../../elsewhere"}, want: None},
		{name: "grub bootupd static", files: []file{{"boot/grub2/grub.cfg", ""}, {"boot/bootupd-state.json", `{"static-configs":{"x":1}}`}}, want: None},
		{name: "grub bootupd static null", files: []file{{"boot/grub2/grub.cfg", ""}, {"boot/bootupd-state.json", `{"static-configs":null}`}}, want: Grub2},
		{name: "syslinux first", files: []file{{"boot/syslinux/syslinux.cfg", ""}, {"boot/grub2/grub.cfg", ""}}, want: Syslinux},
		{name: "syslinux dangling symlink", links: map[string]string{"boot/syslinux/syslinux.cfg": "../loader/syslinux.cfg"}, dirs: []string{"boot/syslinux"}, want: Syslinux},
		{name: "uboot", files: []file{{"boot/loader.0/uEnv.txt", ""}}, links: map[string]string{"boot/loader": "loader.0"}, want: UBoot},
		{name: "systemd-boot", files: []file{{"boot/efi/EFI/systemd/systemd-bootx64.efi", ""}}, want: SystemdBoot},
		{name: "systemd-boot esp at /efi", files: []file{{"efi/EFI/systemd/systemd-bootaa64.efi", ""}}, want: SystemdBoot},
		{name: "grub wins over systemd-boot", files: []file{{"boot/efi/EFI/systemd/systemd-bootx64.efi", ""}, {"boot/efi/EFI/debian/grub.cfg", ""}}, want: Grub2},
		{name: "config none", files: []file{{"boot/grub2/grub.cfg", ""}, {"ostree/repo/config", "[core]\nrepo_version=1\n\n[sysroot]\nbootloader=none\n"}}, want: None},
		{name: "config zipl", files: []file{{"ostree/repo/config", "[sysroot]\nbootloader = zipl\n"}}, want: Zipl},
		{name: "config uboot", files: []file{{"ostree/repo/config", "[sysroot]\nbootloader=uboot\n"}}, want: UBoot},
		{name: "config aboot", files: []file{{"ostree/repo/config", "[sysroot]\nbootloader=aboot\n"}}, want: Aboot},
		{name: "config auto", files: []file{{"boot/grub2/grub.cfg", ""}, {"ostree/repo/config", "[sysroot]\nbootloader=auto\n"}}, want: Grub2},
		{name: "config other group", files: []file{{"boot/grub2/grub.cfg", ""}, {"ostree/repo/config", "[core]\nbootloader=none\n"}}, want: Grub2},
		{name: "config unknown", files: []file{{"boot/grub2/grub.cfg", ""}, {"ostree/repo/config", "[sysroot]\nbootloader=lilo\n"}}, want: Grub2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.files {
				p := filepath.Join(root, f.path)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(f.data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for l, target := range tt.links {
				p := filepath.Join(root, l)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
			}
			if got := Detect(root); got != tt.want {
				t.Errorf("Detect = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	want := map[Kind]string{None: "none", Grub2: "grub2", SystemdBoot: "systemd-boot", Syslinux: "syslinux",
		UBoot: "uboot", Zipl: "zipl", Aboot: "aboot", Kind(42): "Kind(42)"}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(k), k.String(), s)
		}
	}
}
