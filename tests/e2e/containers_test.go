package e2e

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// ctrEnv is an env whose hostd runs system containers in direct mode (PID
// 1 is not systemd in CI), with a registry and the host's containers policy.
type ctrEnv struct {
	*env
	reg     *fixture.Registry
	ctrDir  string // the stateroot's var/lib/containers/hostctl
	runcDir string
	layers  map[string]string // name -> blob digest of the fixture layers
}

// depDir is the default deployment's checkout: every container change
// makes a new one.
func (c *ctrEnv) depDir() string {
	c.t.Helper()
	d := c.status().Deployments[0]
	return deploymentPath(c.sysroot, d.OSName, d.Checksum, d.Serial)
}

func newCtrEnv(t *testing.T) *ctrEnv {
	t.Helper()
	for _, bin := range []string{"runc", "skopeo", "docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil {
			harness.Skip(t, "%s is not installed: %v", bin, err)
		}
	}
	e := newEnv(t)
	c := &ctrEnv{env: e, layers: map[string]string{}}
	st := e.status()
	d := st.Deployments[0]
	c.ctrDir = filepath.Join(e.sysroot, "ostree", "deploy", d.OSName, "var", "lib", "containers", "hostctl")
	c.runcDir = filepath.Join(e.sysroot, "run", "hostctl", "runc")
	t.Cleanup(func() {
		// The containers outlive hostd (direct mode): stop what is left.
		ents, _ := os.ReadDir(c.runcDir)
		for _, ent := range ents {
			if ent.IsDir() {
				exec.Command("runc", "--root", c.runcDir, "delete", "--force", ent.Name()).Run()
			}
		}
	})
	regDir := t.TempDir()
	reg0, err := fixture.StartRegistry(e.ctx, regDir)
	if err != nil {
		t.Fatal(err)
	}
	c.reg = reg0
	t.Cleanup(c.reg.Stop)
	c.writePolicy(`{"default":[{"type":"insecureAcceptAnything"}]}`)
	reg := fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", c.reg.Addr)
	if err := os.WriteFile(filepath.Join(c.depDir(), "etc", "containers", "registries.conf"), []byte(reg), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *ctrEnv) writePolicy(policy string) {
	c.t.Helper()
	dir := filepath.Join(c.depDir(), "etc", "containers")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.json"), []byte(policy), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// layout writes an OCI layout of the busybox layer plus extra layers and
// returns its directory.
func (c *ctrEnv) layout(tag string, extra ...[]fixture.TarEntry) string {
	c.t.Helper()
	base, err := fixture.BusyboxLayer()
	if err != nil {
		c.t.Fatal(err)
	}
	layers := [][]byte{base}
	c.layers["busybox"] = blobDigest(base)
	for i, ents := range extra {
		l, err := fixture.Layer(ents)
		if err != nil {
			c.t.Fatal(err)
		}
		c.layers[fmt.Sprintf("%s-%d", tag, i)] = blobDigest(l)
		layers = append(layers, l)
	}
	dir := filepath.Join(c.t.TempDir(), "layout")
	if _, err := fixture.OCILayout(dir, tag, layers); err != nil {
		c.t.Fatal(err)
	}
	return dir
}

func blobDigest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get fetches http://127.0.0.1:port/ and returns the body ("" if nothing answers).
func get(port int) string {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (c *ctrEnv) waitAnswer(port int, want string) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	got := ""
	for time.Now().Before(deadline) {
		if got = get(port); strings.Contains(got, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("port %d answers %q, want %q\nhostd log:\n%s", port, got, want, c.hostd.Log)
}

func (c *ctrEnv) originContainers() map[string]string {
	c.t.Helper()
	st := c.status()
	d := st.Deployments[0]
	b, err := os.ReadFile(deploymentPath(c.sysroot, d.OSName, d.Checksum, d.Serial) + ".origin")
	if err != nil {
		c.t.Fatal(err)
	}
	o, err := deploy.ParseOrigin(b)
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range o.Keys(deploy.GroupContainers) {
		out[k], _ = o.Get(deploy.GroupContainers, k)
	}
	return out
}

type listedContainer struct {
	Name, Image, Digest, Slot, State string
}

func (c *ctrEnv) list() map[string]listedContainer {
	c.t.Helper()
	var l []listedContainer
	out := c.mustHostctl("container", "list", "--json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		c.t.Fatalf("container list --json: %v\n%s", err, out)
	}
	m := map[string]listedContainer{}
	for _, x := range l {
		m[x.Name] = x
	}
	return m
}

func (c *ctrEnv) slotTarget(name string) string {
	target, _ := os.Readlink(filepath.Join(c.ctrDir, name))
	return target
}

// killDuring runs hostctl args with hostd paused before its "activate"
// step (hostd --debug-pause-before), SIGKILLs hostd there, and starts a new
// hostd, which recovers.
func (c *ctrEnv) killDuring(args ...string) {
	c.t.Helper()
	c.hostd.Stop()
	c.startHostd("--debug-pause-before", "activate")
	cmd := exec.Command(hostctlBin, args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+c.bus.Address)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	waitUntil(c.t, 30*time.Second, "hostd to pause before activate", func() bool {
		return strings.Contains(c.hostd.Log.String(), "paused for a test")
	})
	c.hostd.Kill()
	cmd.Wait()
	c.startHostd()
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// assertGone checks that nothing of container name is left.
func (c *ctrEnv) assertGone(name string) {
	c.t.Helper()
	for _, p := range []string{
		filepath.Join(c.ctrDir, name), filepath.Join(c.ctrDir, name+".0"), filepath.Join(c.ctrDir, name+".1"),
		filepath.Join(c.depDir(), "etc", "systemd", "system", name+".service"),
		filepath.Join(c.depDir(), "etc", "tmpfiles.d", name+".conf"),
		filepath.Join(c.depDir(), "etc", "hostctl-test", name+".conf"),
	} {
		if exists(p) {
			c.t.Errorf("%s is left behind", p)
		}
	}
	if _, ok := c.originContainers()[name]; ok {
		c.t.Errorf("the origin still names %s", name)
	}
}

func TestContainersLifecycle(t *testing.T) {
	c := newCtrEnv(t)
	dir := c.layout("1", fixture.HelloExports(fixture.HelloConfigTemplate(true)))
	image, err := c.reg.Push(c.ctx, dir, "1", "hello")
	if err != nil {
		t.Fatal(err)
	}

	// Pull: every layer fetched once; a second pull downloads no layer.
	out := c.mustHostctl("image", "pull", image)
	if !strings.Contains(out, "2 layers fetched, 0 already present") {
		t.Fatalf("first pull:\n%s", out)
	}
	gets, refs := c.reg.BlobGets(), c.refCommits()
	objects := c.objectCount()
	out = c.mustHostctl("image", "pull", image)
	if !strings.Contains(out, "0 layers fetched, 2 already present, 0 bytes received") {
		t.Fatalf("second pull:\n%s", out)
	}
	// ... and fetches no blob (not even the config) and writes nothing.
	if got := c.reg.BlobGets(); got != gets {
		t.Errorf("the second pull fetched %d blobs, want none", got-gets)
	}
	if got := c.refCommits(); got != refs {
		t.Errorf("the second pull moved refs:\nbefore %s\nafter  %s", refs, got)
	}
	if got := c.objectCount(); got != objects {
		t.Errorf("the second pull wrote %d objects, want none", got-objects)
	}
	for _, l := range c.layers {
		if n := strings.Count(c.reg.Log(), "GET /v2/hello/blobs/"+l); n != 1 {
			t.Errorf("layer %s was downloaded %d times, want once", l, n)
		}
	}
	if out := c.mustHostctl("image", "list"); !strings.Contains(out, image) {
		t.Fatalf("image list:\n%s", out)
	}

	// Install: the service answers on its port, its files are on the host.
	p1, p2 := freePort(t), freePort(t)
	start := time.Now()
	c.mustHostctl("container", "install", "--name", "web1", "--set", fmt.Sprintf("PORT=%d", p1), image)
	t.Logf("install of web1 (checkout, render, start): %v", time.Since(start))
	c.waitAnswer(p1, "hello from web1")
	if got := c.slotTarget("web1"); got != "web1.0" {
		t.Fatalf("web1 -> %q", got)
	}
	unit, err := os.ReadFile(filepath.Join(c.depDir(), "etc", "systemd", "system", "web1.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=") || !strings.Contains(string(unit), "'web1'") {
		t.Fatalf("unit: %v\n%s", err, unit)
	}
	if b, err := os.ReadFile(filepath.Join(c.depDir(), "etc", "hostctl-test", "web1.conf")); err != nil || string(b) != fmt.Sprintf("port=%d\n", p1) {
		t.Fatalf("hostfs file: %v %q", err, b)
	}
	if v := c.originContainers()["web1"]; !strings.HasPrefix(v, image+"@sha256:") || !strings.Contains(v, ";") {
		t.Fatalf("origin [containers] web1=%q", v)
	}
	if l := c.list()["web1"]; l.State != "running" || l.Slot != "0" || l.Image != image {
		t.Fatalf("list: %+v", l)
	}
	if r := c.hostctl("container", "exec", "web1", "/bin/busybox", "cat", "/run/www/index.html"); r.Code != 0 || !strings.Contains(r.Stdout, "hello from web1") {
		t.Fatalf("exec: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := c.hostctl("container", "exec", "web1", "/bin/busybox", "false"); r.Code != 1 {
		t.Fatalf("exec false: exit %d, want 1\n%s", r.Code, r.Stderr)
	}

	// Update with a new value, then roll back.
	c.mustHostctl("container", "update", "--set", "GREETING=bonjour", "web1")
	c.waitAnswer(p1, "bonjour from web1")
	if got := c.slotTarget("web1"); got != "web1.1" {
		t.Fatalf("after update web1 -> %q", got)
	}
	c.mustHostctl("container", "rollback", "web1")
	c.waitAnswer(p1, "hello from web1")
	if l := c.list()["web1"]; l.Slot != "0" || l.State != "running" {
		t.Fatalf("after rollback: %+v", l)
	}

	// An update that does not start rolls back by itself.
	r := c.hostctl("container", "update", "--set", "PORT=notaport", "web1")
	if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "rolled back") {
		t.Fatalf("failing update: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	c.waitAnswer(p1, "hello from web1")
	if got := c.slotTarget("web1"); got != "web1.0" {
		t.Fatalf("after failed update web1 -> %q", got)
	}

	// A new image on the tag: update alone keeps the image last pulled,
	// --pull moves web1 to the new one.
	before := c.list()["web1"]
	moved := c.layout("1", fixture.HelloExports(fixture.HelloConfigTemplate(true)), []fixture.TarEntry{{Name: "etc/motd", Body: "moved\n"}})
	if _, err := c.reg.Push(c.ctx, moved, "1", "hello"); err != nil {
		t.Fatal(err)
	}
	c.mustHostctl("container", "update", "web1")
	if l := c.list()["web1"]; l.Digest != before.Digest {
		t.Fatalf("update without --pull moved web1 from %s to %s", before.Digest, l.Digest)
	}
	out = c.mustHostctl("container", "update", "--pull", "web1")
	after := c.list()["web1"]
	if after.Digest == before.Digest || after.State != "running" || !strings.Contains(out, "Pulled") {
		t.Fatalf("update --pull: web1 %+v (before %+v)\n%s", after, before, out)
	}
	c.waitAnswer(p1, "hello from web1")
	if r := c.hostctl("container", "exec", "web1", "/bin/busybox", "cat", "/etc/motd"); r.Code != 0 || r.Stdout != "moved\n" {
		t.Fatalf("web1 does not run the new image: exit %d %q%s", r.Code, r.Stdout, r.Stderr)
	}
	c.mustHostctl("container", "rollback", "web1")
	c.waitAnswer(p1, "hello from web1")

	// A second copy shares every layer object with the first.
	c.mustHostctl("container", "install", "--name", "web2", "--set", fmt.Sprintf("PORT=%d", p2), image)
	c.waitAnswer(p2, "hello from web2")
	c.waitAnswer(p1, "hello from web1")
	for _, f := range []string{"bin/busybox", "exports/manifest.json"} {
		a, err1 := os.Stat(filepath.Join(c.ctrDir, "web1.0", "rootfs", f))
		b, err2 := os.Stat(filepath.Join(c.ctrDir, "web2.0", "rootfs", f))
		if err1 != nil || err2 != nil || !os.SameFile(a, b) {
			t.Fatalf("%s is not shared between web1 and web2: %v %v", f, err1, err2)
		}
	}

	// Installing a name that exists is refused and changes nothing.
	if r := c.hostctl("container", "install", "--name", "web2", image); r.Code == 0 || !strings.Contains(r.Stderr, "already installed") {
		t.Fatalf("second install of web2: exit %d\n%s", r.Code, r.Stderr)
	}
	c.waitAnswer(p2, "hello from web2")

	// SIGKILL of hostd during an update leaves the old slot active.
	c.killDuring("container", "update", "--set", "GREETING=killed", "web2")
	if got := c.slotTarget("web2"); got != "web2.0" {
		t.Fatalf("after SIGKILL during update web2 -> %q\n%s", got, c.hostd.Log)
	}
	if exists(filepath.Join(c.ctrDir, "web2.1")) {
		t.Errorf("the half-written slot web2.1 is left behind")
	}
	c.waitAnswer(p2, "hello from web2")

	// Uninstall leaves nothing.
	for _, n := range []string{"web1", "web2"} {
		c.mustHostctl("container", "uninstall", n)
		c.assertGone(n)
	}
	if get(p1) != "" || get(p2) != "" {
		t.Fatalf("a service still answers after uninstall")
	}
	if l := c.list(); len(l) != 0 {
		t.Fatalf("list after uninstall: %+v", l)
	}
}

// TestContainersFollowGenerations: a container installed in one generation
// disappears when the OS rolls back to a generation without it, and comes
// back with the same values when the OS rolls forward again.
func TestContainersFollowGenerations(t *testing.T) {
	c := newCtrEnv(t)
	dir := c.layout("1", fixture.HelloExports(fixture.HelloConfigTemplate(true)))
	c.publish("2")
	c.mustHostctl("upgrade")
	// The new deployment has its own /etc: write the containers policy there too.
	c.writePolicy(`{"default":[{"type":"insecureAcceptAnything"}]}`)
	port := freePort(t)
	c.mustHostctl("container", "install", "--name", "gen", "--set", fmt.Sprintf("PORT=%d", port), "oci:"+dir+":1")
	c.waitAnswer(port, "hello from gen")

	c.mustHostctl("rollback") // to the generation before the install, which has no containers
	waitUntil(t, 30*time.Second, "gen to go", func() bool { return get(port) == "" && !exists(filepath.Join(c.ctrDir, "gen")) })
	c.mustHostctl("rollback") // forward to the generation with the container again
	c.waitAnswer(port, "hello from gen")
	if l := c.list()["gen"]; l.State != "running" {
		t.Fatalf("after rolling forward: %+v", l)
	}
	c.mustHostctl("container", "uninstall", "gen")
}

func TestContainersRefuseBadInput(t *testing.T) {
	c := newCtrEnv(t)
	good := fixture.HelloExports(fixture.HelloConfigTemplate(true))
	cases := []struct {
		name    string
		layers  [][]fixture.TarEntry
		install bool
		want    string
	}{
		{"dotdot", [][]fixture.TarEntry{{{Name: "../evil", Body: "x"}}}, false, `".."`},
		{"abs-symlink", [][]fixture.TarEntry{{{Name: "etc", Type: tar.TypeSymlink, Linkname: "/tmp"}, {Name: "etc/evil", Body: "x"}}}, false, "outside"},
		{"lower-symlink", [][]fixture.TarEntry{{{Name: "up", Type: tar.TypeSymlink, Linkname: "/"}}, {{Name: "up/evil", Body: "x"}}}, false, "symlink of a lower layer"},
		{"unknown-variable", [][]fixture.TarEntry{fixture.HelloExports(strings.Replace(fixture.HelloConfigTemplate(true), "$NAME\"", "$NOSUCHVAR\"", 1))}, true, "NOSUCHVAR"},
		{"writable-rootfs", [][]fixture.TarEntry{fixture.HelloExports(fixture.HelloConfigTemplate(false))}, true, "readonly"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := c.layout(tc.name, tc.layers...)
			refsBefore := c.refs()
			args := []string{"image", "pull", "oci:" + dir + ":" + tc.name}
			if tc.install {
				args = []string{"container", "install", "--name", "bad", "oci:" + dir + ":" + tc.name}
			}
			r := c.hostctl(args...)
			if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) {
				t.Fatalf("%v: exit %d, want an error with %q\n%s%s", args, r.Code, tc.want, r.Stdout, r.Stderr)
			}
			c.assertGone("bad")
			if !tc.install {
				if after := c.refs(); after != refsBefore {
					t.Fatalf("refused pull left refs:\nbefore %s\nafter  %s", refsBefore, after)
				}
			}
			if exists("/tmp/evil") {
				t.Fatalf("a layer wrote /tmp/evil")
			}
		})
	}

	t.Run("device-nodes-dropped", func(t *testing.T) {
		dir := c.layout("dev", []fixture.TarEntry{{Name: "dev/", Type: tar.TypeDir}, {Name: "dev/mem", Type: tar.TypeChar, Mode: 0o600}}, good)
		out := c.mustHostctl("image", "pull", "oci:"+dir+":dev")
		if !strings.Contains(out, "Left out 1 device nodes") {
			t.Fatalf("pull:\n%s", out)
		}
		port := freePort(t)
		c.mustHostctl("container", "install", "--name", "devs", "--set", fmt.Sprintf("PORT=%d", port), "oci:"+dir+":dev")
		if exists(filepath.Join(c.ctrDir, "devs.0", "rootfs", "dev", "mem")) {
			t.Fatalf("the device node reached the rootfs")
		}
		c.mustHostctl("container", "uninstall", "devs")
	})

	t.Run("bad-names", func(t *testing.T) {
		dir := c.layout("names", good)
		for _, n := range []string{"a/b", "../x", "-x"} {
			if r := c.hostctl("container", "install", "--name", n, "oci:"+dir+":names"); r.Code == 0 || !strings.Contains(r.Stderr, "container name") {
				t.Fatalf("--name %q: exit %d\n%s", n, r.Code, r.Stderr)
			}
		}
		if ents, _ := os.ReadDir(c.ctrDir); len(ents) > 1 { // .hostctl only
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("left in %s: %v", c.ctrDir, names)
		}
	})

	t.Run("signed-by-policy", func(t *testing.T) {
		dir := c.layout("signed", good)
		image, err := c.reg.Push(c.ctx, dir, "signed", "signed")
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(t.TempDir(), "key.gpg")
		os.WriteFile(key, []byte("not a key"), 0o644)
		c.writePolicy(fmt.Sprintf(`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":%q}]}`, key))
		defer c.writePolicy(`{"default":[{"type":"insecureAcceptAnything"}]}`)
		refsBefore := c.refs()
		r := c.hostctl("container", "install", "--name", "signed", image)
		if r.Code == 0 || !strings.Contains(r.Stderr, "signature policy") {
			t.Fatalf("install of an unsigned image under signedBy: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		c.assertGone("signed")
		if after := c.refs(); after != refsBefore {
			t.Fatalf("refused pull left refs:\nbefore %s\nafter  %s", refsBefore, after)
		}
	})

	t.Run("sigkill-during-install", func(t *testing.T) {
		dir := c.layout("kill", good)
		c.killDuring("container", "install", "--name", "killed", "oci:"+dir+":kill")
		c.assertGone("killed")
	})
}

// refCommits lists the sysroot repo's refs with their commits, one per line.
func (c *ctrEnv) refCommits() string {
	var b strings.Builder
	heads := filepath.Join(c.sysroot, "ostree", "repo", "refs", "heads")
	filepath.WalkDir(heads, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			commit, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(heads, p)
			fmt.Fprintf(&b, "%s %s\n", rel, strings.TrimSpace(string(commit)))
		}
		return nil
	})
	return b.String()
}

// objectCount counts the objects of the sysroot repo.
func (c *ctrEnv) objectCount() int {
	n := 0
	filepath.WalkDir(filepath.Join(c.sysroot, "ostree", "repo", "objects"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// refs lists the sysroot repo's ociimage/ and hostctl/ refs.
func (c *ctrEnv) refs() string {
	out, err := exec.Command("ostree", "refs", "--repo="+filepath.Join(c.sysroot, "ostree", "repo")).CombinedOutput()
	if err != nil {
		c.t.Fatalf("ostree refs: %v\n%s", err, out)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "ociimage/") || strings.HasPrefix(l, "hostctl/") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, " ")
}

// TestContainerChangesAreGenerations: every container change is a new
// deployment of the same tree whose origin records the new set; it is live
// at once, `hostctl rollback` brings the previous set back live at once, and
// status and history show the generations.
func TestContainerChangesAreGenerations(t *testing.T) {
	c := newCtrEnv(t)
	dir := c.layout("1", fixture.HelloExports(fixture.HelloConfigTemplate(true)))
	before := c.status().Deployments[0]
	port := freePort(t)

	c.mustHostctl("container", "install", "--name", "gen", "--set", fmt.Sprintf("PORT=%d", port), "oci:"+dir+":1")
	c.waitAnswer(port, "hello from gen")
	st := c.status()
	installed := st.Deployments[0]
	if installed.ID == before.ID || installed.Checksum != before.Checksum || userKargs(installed.Kargs) != userKargs(before.Kargs) {
		t.Fatalf("install: default %s (kargs %q), before %s (kargs %q): want a new deployment of the same commit and kargs",
			installed.ID, installed.Kargs, before.ID, before.Kargs)
	}
	if len(installed.Containers) != 1 || !strings.HasPrefix(installed.Containers[0], "gen=") {
		t.Fatalf("status containers of the new generation: %q", installed.Containers)
	}
	if len(st.Deployments) < 2 || st.Deployments[1].ID != before.ID || len(st.Deployments[1].Containers) != 0 {
		t.Fatalf("the previous generation is not the rollback entry, unchanged: %+v", st.Deployments)
	}
	if h := c.lastHistory(); h.Before != before.ID || h.After != installed.ID {
		t.Fatalf("history: before %q after %q, want %s -> %s", h.Before, h.After, before.ID, installed.ID)
	}
	if out := c.mustHostctl("status"); !strings.Contains(out, "Containers: gen=") {
		t.Fatalf("status does not show the generation's containers:\n%s", out)
	}

	// Update: another generation; rollback brings the old values back live.
	c.mustHostctl("container", "update", "--set", "GREETING=bonjour", "gen")
	c.waitAnswer(port, "bonjour from gen")
	updated := c.status().Deployments[0]
	if updated.ID == installed.ID {
		t.Fatalf("update made no new generation")
	}
	if v := c.originContainers()["gen"]; !strings.Contains(v, ";") {
		t.Fatalf("origin after update: %q", v)
	}
	c.mustHostctl("rollback")
	c.waitAnswer(port, "hello from gen") // at once, no reboot
	if d := c.status().Deployments[0]; d.ID != installed.ID {
		t.Fatalf("after rollback the default is %s, want %s", d.ID, installed.ID)
	}
	c.mustHostctl("rollback")
	c.waitAnswer(port, "bonjour from gen")

	// Uninstall is a generation too; rolling it back brings the container back.
	c.mustHostctl("container", "uninstall", "gen")
	waitUntil(t, 30*time.Second, "gen to go", func() bool { return get(port) == "" })
	if d := c.status().Deployments[0]; len(d.Containers) != 0 || d.ID == updated.ID {
		t.Fatalf("after uninstall: %+v", d)
	}
	c.mustHostctl("rollback")
	c.waitAnswer(port, "bonjour from gen") // re-rendered from the image in the repo
	if l := c.list()["gen"]; l.State != "running" {
		t.Fatalf("after rolling the uninstall back: %+v", l)
	}
	c.fsck()
}

// userKargs is a kernel command line without libostree's ostree= argument,
// which names the boot.N directory of the current bootversion.
func userKargs(kargs string) string {
	var out []string
	for _, a := range strings.Fields(kargs) {
		if !strings.HasPrefix(a, "ostree=") {
			out = append(out, a)
		}
	}
	return strings.Join(out, " ")
}

// TestContainerFollowsTag: a container installed with --follow moves to the
// newest image of its tag at `hostctl upgrade`, in one new generation (here
// with no OS update: same tree), live at once; without a new image the
// upgrade says so and makes no deployment.
func TestContainerFollowsTag(t *testing.T) {
	c := newCtrEnv(t)
	image, err := c.reg.Push(c.ctx, helloImage(t, "latest", "hello"), "latest", "follow")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	c.mustHostctl("container", "install", "--follow", "--name", "fol", "--set", fmt.Sprintf("PORT=%d", port), image)
	c.waitAnswer(port, "hello from fol")
	if v := c.originContainers()["fol"]; !strings.HasSuffix(v, ";follow") {
		t.Fatalf("origin entry %q does not record --follow", v)
	}
	before := c.status().Deployments[0]
	if out := c.mustHostctl("upgrade"); !strings.Contains(out, "No upgrade available") {
		t.Fatalf("upgrade with nothing new:\n%s", out)
	}
	if d := c.status().Deployments[0]; d.ID != before.ID {
		t.Fatalf("an upgrade with nothing new made deployment %s", d.ID)
	}

	if _, err := c.reg.Push(c.ctx, helloImage(t, "latest", "howdy"), "latest", "follow"); err != nil {
		t.Fatal(err)
	}
	out := c.mustHostctl("upgrade")
	if !strings.Contains(out, "Container fol: "+image+" moved") {
		t.Fatalf("upgrade after a new image:\n%s", out)
	}
	c.waitAnswer(port, "howdy from fol")
	after := c.status().Deployments[0]
	if after.ID == before.ID || after.Checksum != before.Checksum || after.Containers[0] == before.Containers[0] {
		t.Fatalf("upgrade: %+v, before %+v: want a new generation of the same tree with the new digest", after, before)
	}
	if v := c.originContainers()["fol"]; !strings.HasSuffix(v, ";follow") {
		t.Fatalf("origin entry %q lost --follow", v)
	}
	c.mustHostctl("rollback")
	c.waitAnswer(port, "hello from fol")
}
