package containers

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestInfoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := &Info{Image: "registry.local/web:1", Digest: "sha256:abc", Revision: "abc", OSTreeCommit: "c0ffee",
		Created: 1700000000, Values: map[string]string{"NAME": "web", "PORT": "8080"}, HasContainerService: true,
		InstalledFiles: map[string]string{"/etc/web.conf": "deadbeef"}, InstalledFilesList: []string{"/etc/web.conf"},
		RenameInstalledFiles: map[string]string{}, UseLinks: true, Runtime: "/usr/bin/runc"}
	if err := WriteInfo(dir, in); err != nil {
		t.Fatal(err)
	}
	// Rewrite: still one file, no temporaries left behind.
	in.Values["PORT"] = "9090"
	if err := WriteInfo(dir, in); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(dir)
	if len(names) != 1 || names[0].Name() != "info" {
		t.Fatalf("slot holds %v", names)
	}
	out, err := ReadInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("read back\n%+v\nwant\n%+v", out, in)
	}
}

func TestReadAtomicInfo(t *testing.T) {
	// An info file as atomic writes it: HOST_UID as a number, extra keys.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "info"), []byte(`{
    "image": "etcd", "revision": "0123", "ostree-commit": "abcd", "created": 1500000000,
    "values": {"NAME": "etcd", "HOST_UID": 0, "HOST_GID": 0, "FLAG": true},
    "has-container-service": true, "installed-files": [], "installed-files-checksum": {},
    "installed-files-template": [], "rename-installed-files": {}, "rpm-installed": null,
    "system-package": "no", "remote": null, "use-links": true, "runtime": "/usr/bin/runc"
}`), 0o644)
	info, err := ReadInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Values["HOST_UID"] != "0" || info.Values["FLAG"] != "True" || info.Image != "etcd" || info.Revision != "0123" {
		t.Fatalf("info = %+v", info)
	}
	os.WriteFile(filepath.Join(dir, "info"), []byte(`{"image": "old", "values": {}}`), 0o644)
	if info, err := ReadInfo(dir); err != nil || !info.HasContainerService {
		t.Fatalf("old info without has-container-service: %+v, %v", info, err)
	}
	os.WriteFile(filepath.Join(dir, "info"), []byte(`{"image": 1}`), 0o644)
	if _, err := ReadInfo(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("bad info: %v", err)
	}
	if _, err := ReadInfo(t.TempDir()); err == nil {
		t.Fatal("missing info accepted")
	}
}
