package containers

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunBundle: runc is given a copy of the active slot's config.json with
// absolute paths into that slot and a cgroup of this hostd's own, unless the
// image names one; two state directories never share a container's cgroup.
func TestRunBundle(t *testing.T) {
	dir := t.TempDir()
	slot := filepath.Join(dir, "web.1")
	if err := os.MkdirAll(filepath.Join(slot, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("web.1", filepath.Join(dir, "web")); err != nil {
		t.Fatal(err)
	}
	write := func(cfg string) {
		if err := os.WriteFile(filepath.Join(slot, "config.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(bundle string) map[string]any {
		b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := &Direct{root: filepath.Join(dir, "a", "runc"), host: Host{Dir: dir}}
	b := &Direct{root: filepath.Join(dir, "b", "runc"), host: Host{Dir: dir}}

	write(`{"ociVersion":"1.0.0","root":{"path":"rootfs","readonly":true},"process":{"user":{"uid":4294967294,"gid":0},"args":["sh"]},
	"mounts":[{"destination":"/data","type":"bind","source":"data","options":["rbind"]},{"destination":"/proc","type":"proc","source":"proc"}]}`)
	bundle, err := a.runBundle("web", filepath.Join(dir, "web"))
	if err != nil {
		t.Fatal(err)
	}
	got := read(bundle)
	if p := got["root"].(map[string]any)["path"]; p != filepath.Join(slot, "rootfs") {
		t.Errorf("root.path = %v, want the active slot's rootfs", p)
	}
	if ro := got["root"].(map[string]any)["readonly"]; ro != true {
		t.Errorf("root.readonly lost: %v", ro)
	}
	mounts := got["mounts"].([]any)
	if src := mounts[0].(map[string]any)["source"]; src != filepath.Join(slot, "data") {
		t.Errorf("relative bind source = %v", src)
	}
	if src := mounts[1].(map[string]any)["source"]; src != "proc" {
		t.Errorf("a proc mount's source was changed: %v", src)
	}
	if uid := got["process"].(map[string]any)["user"].(map[string]any)["uid"]; uid != 4294967294.0 {
		t.Errorf("uid = %v", uid)
	}
	cgA := got["linux"].(map[string]any)["cgroupsPath"]
	bundleB, err := b.runBundle("web", filepath.Join(dir, "web"))
	if err != nil {
		t.Fatal(err)
	}
	cgB := read(bundleB)["linux"].(map[string]any)["cgroupsPath"]
	if cgA == cgB || cgA == "" || filepath.Base(cgA.(string)) != "web" {
		t.Errorf("cgroups of two state directories: %v and %v, want distinct, ending in the name", cgA, cgB)
	}
	if raw, _ := os.ReadFile(filepath.Join(slot, "config.json")); !strings.HasPrefix(string(raw), `{"ociVersion":"1.0.0","root":{"path":"rootfs"`) {
		t.Errorf("the slot's config.json was rewritten: %s", raw)
	}

	// An image that names its cgroup keeps it.
	write(`{"ociVersion":"1.0.0","root":{"path":"/abs/rootfs"},"linux":{"cgroupsPath":"/mine/web"}}`)
	bundle, err = a.runBundle("web", filepath.Join(dir, "web"))
	if err != nil {
		t.Fatal(err)
	}
	got = read(bundle)
	if p := got["linux"].(map[string]any)["cgroupsPath"]; p != "/mine/web" {
		t.Errorf("the image's cgroupsPath was replaced: %v", p)
	}
	if p := got["root"].(map[string]any)["path"]; p != "/abs/rootfs" {
		t.Errorf("an absolute root.path was changed: %v", p)
	}
}
