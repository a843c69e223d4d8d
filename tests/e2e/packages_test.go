package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
)

// layerRPMs are the layering test RPMs, built once per test binary.
var layerRPMs struct {
	once sync.Once
	dir  string
	err  error
}

func builtLayerRPMs(t *testing.T) string {
	t.Helper()
	layerRPMs.once.Do(func() {
		dir, err := os.MkdirTemp("", "hostctl-layer-rpms-")
		if err != nil {
			layerRPMs.err = err
			return
		}
		layerRPMs.dir = dir
		_, layerRPMs.err = fixture.BuildRPMs(context.Background(), dir, append(fixture.LayerSpecs(), fixture.LayerCaseSpecs()...)...)
	})
	if layerRPMs.err != nil {
		t.Fatalf("build the layering RPMs: %v", layerRPMs.err)
	}
	return layerRPMs.dir
}

// serveRPMs makes an rpm-md repository of the layering RPMs (plus extra
// files), lets prepare change the RPMs before createrepo_c and after run
// after it, and serves it.
func (e *env) serveRPMs(extra []string, prepare, after func(dir string)) *fixture.Server {
	e.t.Helper()
	dir := filepath.Join(e.t.TempDir(), "rpms")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	src, _ := filepath.Glob(filepath.Join(builtLayerRPMs(e.t), "*.rpm"))
	for _, f := range append(src, extra...) {
		data, err := os.ReadFile(f)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	if prepare != nil {
		prepare(dir)
	}
	if err := fixture.CreateRepo(e.ctx, dir); err != nil {
		e.t.Fatal(err)
	}
	if after != nil {
		after(dir)
	}
	srv, err := fixture.NewServer(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { srv.Stop() })
	return srv
}

// defaultDeployment is the path of the default deployment.
func (e *env) defaultDeployment() (dbus.Deployment, string) {
	e.t.Helper()
	d := e.status().Deployments[0]
	return d, deploymentPath(e.sysroot, d.OSName, d.Checksum, d.Serial)
}

// setRepoFile writes (text != "") or removes /etc/yum.repos.d/ID.repo of the
// default deployment: its /etc is the deployment's own copy.
func (e *env) setRepoFile(id, text string) {
	e.t.Helper()
	_, dep := e.defaultDeployment()
	p := filepath.Join(dep, "etc", "yum.repos.d", id+".repo")
	if text == "" {
		os.Remove(p)
		return
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// snapshot is what a refused change must leave as it was.
type snapshot struct {
	deployments []string
	refs        string
	scratch     []string
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	e.waitIdle() // the cleanup after the last transaction rewrites the deployment refs
	out, err := exec.Command("ostree", "refs", "--repo="+filepath.Join(e.sysroot, "ostree", "repo")).CombinedOutput()
	if err != nil {
		e.t.Fatalf("ostree refs: %v\n%s", err, out)
	}
	refs := strings.Fields(string(out))
	sort.Strings(refs)
	var scratch []string
	entries, _ := os.ReadDir(filepath.Join(e.sysroot, "ostree", "repo", "tmp"))
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), "hostctl-") {
			scratch = append(scratch, en.Name())
		}
	}
	return snapshot{deployments: e.ostreeStatus(), refs: strings.Join(refs, "\n"), scratch: scratch}
}

// rpmQuery runs `rpm -q` on a copy of a deployment's rpmdb: opening it in
// place would let sqlite write beside the repository's objects.
func (e *env) rpmQuery(dep string, args ...string) (string, error) {
	e.t.Helper()
	root := e.t.TempDir()
	db := filepath.Join(root, "usr", "lib", "sysimage")
	if err := os.MkdirAll(db, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(dep, "usr", "lib", "sysimage", "rpm"), db).CombinedOutput(); err != nil {
		e.t.Fatalf("copy rpmdb: %v\n%s", err, out)
	}
	cmd := exec.Command("rpm", append([]string{"--root", root, "--dbpath", fixture.RPMDBPath, "-q"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// fsck runs `ostree fsck` on the sysroot's repository once hostd is idle.
func (e *env) fsck() {
	e.t.Helper()
	e.waitIdle()
	out, err := exec.Command("ostree", "fsck", "--repo="+filepath.Join(e.sysroot, "ostree", "repo")).CombinedOutput()
	if err != nil {
		e.t.Fatalf("ostree fsck after layering: %v\n%s", err, out)
	}
}

// lastHistory is the newest transaction record.
func (e *env) lastHistory() dbus.Record {
	e.t.Helper()
	var recs []dbus.Record
	if err := json.Unmarshal([]byte(e.mustHostctl("history", "--json", "-n", "1")), &recs); err != nil || len(recs) == 0 {
		e.t.Fatalf("history: %v %v", err, recs)
	}
	return recs[0]
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestPkgAddRemoveRollback(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	base, baseDir := e.defaultDeployment()
	osRelease := readFile(t, filepath.Join(baseDir, "usr/lib/os-release"))

	before := e.snapshot()
	out := e.mustHostctl("pkg-add", "--dry-run", "hello-layer")
	if !strings.Contains(out, "Would layer: hello-layer-1.0-1.noarch hello-lib-1.1-1.noarch") {
		t.Fatalf("dry run:\n%s", out)
	}
	if after := e.snapshot(); !slices.Equal(after.deployments, before.deployments) || after.refs != before.refs {
		t.Fatalf("--dry-run changed the sysroot: %+v -> %+v", before, after)
	}

	start := time.Now()
	out = e.mustHostctl("install", "hello-layer")
	cold := time.Since(start)
	st := e.status()
	if len(st.Deployments) != 2 || !slices.Equal(st.Deployments[0].Packages, []string{"hello-layer"}) ||
		st.Deployments[0].BaseChecksum != base.Checksum || st.Deployments[0].Version != base.Version {
		t.Fatalf("after pkg-add: %+v\n%s", st.Deployments, out)
	}
	if human := e.mustHostctl("status"); !strings.Contains(human, "LayeredPackages: hello-layer") {
		t.Fatalf("status:\n%s", human)
	}
	_, layered := e.defaultDeployment()
	if q, err := e.rpmQuery(layered, "hello-layer", "hello-lib"); err != nil || !strings.Contains(q, "hello-layer-1.0-1.noarch") || !strings.Contains(q, "hello-lib-1.1-1.noarch") {
		t.Fatalf("rpm -q in the layered deployment: %v\n%s", err, q)
	}
	if got := readFile(t, filepath.Join(layered, "usr/share/hello-layer/post-ran")); got != "post-ran 1\n" {
		t.Fatalf("%%post mark: %q", got)
	}
	if _, err := os.Stat(filepath.Join(layered, "usr/bin/hello-layer")); err != nil {
		t.Fatal(err)
	}
	// The base deployment is untouched.
	if q, err := e.rpmQuery(baseDir, "hello-layer"); err == nil {
		t.Fatalf("hello-layer in the base deployment:\n%s", q)
	}
	if _, err := os.Stat(filepath.Join(baseDir, "usr/share/hello-layer")); err == nil {
		t.Fatal("the base deployment has /usr/share/hello-layer")
	}
	if got := readFile(t, filepath.Join(baseDir, "usr/lib/os-release")); got != osRelease {
		t.Fatal("the base deployment's os-release changed")
	}
	if h := e.lastHistory(); h.Kind != "pkg-change" || h.State != "succeeded" {
		t.Fatalf("history: %+v", h)
	}

	// Asking again is an error, or nothing with --idempotent.
	if r := e.hostctl("pkg-add", "hello-layer"); r.Code == 0 || !strings.Contains(r.Stderr, "already requested") {
		t.Fatalf("second pkg-add: %d\n%s", r.Code, r.Stderr)
	}
	if out := e.mustHostctl("pkg-add", "--idempotent", "hello-layer"); !strings.Contains(out, "No change") {
		t.Fatalf("idempotent pkg-add:\n%s", out)
	}

	// A second package: /etc content lands in /usr/etc, %posttrans runs.
	srv.ResetStats()
	e.mustHostctl("pkg-add", "hello-etc")
	_, two := e.defaultDeployment()
	if st = e.status(); !slices.Equal(st.Deployments[0].Packages, []string{"hello-layer", "hello-etc"}) {
		t.Fatalf("after adding hello-etc: %+v", st.Deployments[0])
	}
	if got := readFile(t, filepath.Join(two, "usr/etc/hello/hello.conf")); got != "greeting=hi\n" {
		t.Fatalf("usr/etc/hello/hello.conf: %q", got)
	}
	if got := readFile(t, filepath.Join(two, "usr/etc/hello/posttrans-ran")); got != "posttrans-ran\n" {
		t.Fatalf("%%posttrans mark: %q", got)
	}
	for _, r := range srv.Requests() {
		if strings.Contains(r, "hello-layer") || strings.Contains(r, "hello-lib") {
			t.Errorf("re-layering hello-layer downloaded it again: %s", r)
		}
	}

	// Removing everything deploys the base commit itself.
	e.mustHostctl("uninstall", "hello-layer", "hello-etc")
	st = e.status()
	if st.Deployments[0].Checksum != base.Checksum || len(st.Deployments[0].Packages) != 0 || st.Deployments[0].BaseChecksum != "" {
		t.Fatalf("after removing all: %+v", st.Deployments[0])
	}
	if r := e.hostctl("pkg-remove", "hello-layer"); r.Code == 0 || !strings.Contains(r.Stderr, "not layered") {
		t.Fatalf("removing a package not layered: %d %s", r.Code, r.Stderr)
	}

	// Warm: the package cache has everything.
	srv.ResetStats()
	start = time.Now()
	e.mustHostctl("pkg-add", "hello-layer")
	warm := time.Since(start)
	for _, r := range srv.Requests() {
		if strings.HasSuffix(strings.Fields(r)[1], ".rpm") {
			t.Errorf("warm pkg-add downloaded %s", r)
		}
	}
	t.Logf("pkg-add hello-layer: cold %v, warm %v", cold.Round(time.Millisecond), warm.Round(time.Millisecond))

	// cleanup -m drops the cached packages no deployment layers any more
	// (hello-etc) and keeps those one does (hello-layer, hello-lib).
	if out := e.mustHostctl("cleanup", "-m"); !strings.Contains(out, "Removed 1 cached package") {
		t.Fatalf("cleanup -m:\n%s", out)
	}
	refs := e.snapshot().refs
	if !strings.Contains(refs, "hostctl/pkg/hello-layer/") || !strings.Contains(refs, "hostctl/pkg/hello-lib/") || strings.Contains(refs, "hostctl/pkg/hello-etc/") {
		t.Fatalf("package cache refs after cleanup -m:\n%s", refs)
	}
	e.fsck()
}

// TestPkgRollback: rollback brings the base set back, and forward again.
func TestPkgRollback(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	base, _ := e.defaultDeployment()
	e.mustHostctl("pkg-add", "hello-layer")
	var st dbus.Status
	// Both
	// deployments boot the same kernel, so libostree reorders them without
	// a new bootversion; hostd's rollback check expects /boot/loader to move.
	rollback := func() {
		t.Helper()
		if r := e.hostctl("rollback"); r.Code != 0 {
			t.Errorf("rollback between deployments with the same kernel: exit %d: %s", r.Code, r.Stderr)
		}
	}
	rollback()
	st = e.status()
	if len(st.Deployments[0].Packages) != 0 || st.Deployments[0].Checksum != base.Checksum {
		t.Fatalf("after rollback: %+v", st.Deployments[0])
	}
	rollback()
	if st = e.status(); !slices.Equal(st.Deployments[0].Packages, []string{"hello-layer"}) {
		t.Fatalf("after second rollback: %+v", st.Deployments[0])
	}

}

func TestPkgScriptSandbox(t *testing.T) {
	e := newEnv(t)
	probeSrv, err := fixture.NewServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { probeSrv.Stop() })
	// Make sure the probe URL works from the host, so "unreachable" means the sandbox.
	if out, err := exec.Command("busybox", "wget", "-q", "-O", "/dev/null", probeSrv.URL()+"/").CombinedOutput(); err != nil {
		t.Fatalf("the probe server is not reachable from the host: %v %s", err, out)
	}
	probeSrv.ResetStats()
	rpms, err := fixture.BuildRPMs(e.ctx, t.TempDir(), fixture.Spec{Path: fixture.SpecPath("layer/sandbox-probe.spec"),
		Defines: map[string]string{"probe_url": probeSrv.URL() + "/probe", "probe_host_path": e.sysroot}})
	if err != nil {
		t.Fatal(err)
	}
	srv := e.serveRPMs(rpms, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	_, baseDir := e.defaultDeployment()
	osRelease := readFile(t, filepath.Join(baseDir, "usr/lib/os-release"))
	os.Remove("/tmp/hostctl-probe-written")

	e.mustHostctl("pkg-add", "sandbox-probe")
	_, dep := e.defaultDeployment()
	res := func(name string) string {
		return strings.TrimSpace(readFile(t, filepath.Join(dep, "usr/share/sandbox-probe", name)))
	}
	if got := res("network"); got != "unreachable" {
		t.Errorf("the script reached the network: %s", got)
	}
	for _, r := range probeSrv.Requests() {
		t.Errorf("the probe server got a request from the sandbox: %s", r)
	}
	for _, line := range strings.Split(res("netdev"), "\n")[2:] {
		if name, _, _ := strings.Cut(strings.TrimSpace(line), ":"); name != "lo" {
			t.Errorf("the sandbox sees network interface %q", name)
		}
	}
	if got := res("host-path"); got != "invisible" {
		t.Errorf("the script sees the host's %s: %s", e.sysroot, got)
	}
	if got := res("sysroot"); got != "" {
		t.Errorf("the script sees /sysroot: %q", got)
	}
	if got := res("deployments"); got != "invisible" {
		t.Errorf("the script sees the deployments")
	}
	if _, err := os.Stat("/tmp/hostctl-probe-written"); err == nil {
		t.Error("the script wrote to the host's /tmp")
	}
	// Its write to a base file went to a copy in the new tree only.
	if got := readFile(t, filepath.Join(dep, "usr/lib/os-release")); !strings.HasSuffix(got, "probe-wrote\n") {
		t.Errorf("the new tree's os-release: %q", got)
	}
	if got := readFile(t, filepath.Join(baseDir, "usr/lib/os-release")); got != osRelease {
		t.Errorf("the script changed the base deployment's os-release: %q", got)
	}
	e.fsck()
}

func TestPkgRefusals(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	e.mustHostctl("refresh-md")

	refused := func(what string, pkgs []string, want ...string) {
		t.Helper()
		before := e.snapshot()
		r := e.hostctl(append([]string{"pkg-add"}, pkgs...)...)
		if r.Code == 0 {
			t.Fatalf("%s: pkg-add %v succeeded\n%s", what, pkgs, r.Stdout)
		}
		for _, w := range want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%s: want %q in the error:\n%s", what, w, r.Stderr)
			}
		}
		if after := e.snapshot(); !slices.Equal(after.deployments, before.deployments) || after.refs != before.refs || len(after.scratch) > 0 {
			t.Errorf("%s: the sysroot changed:\nbefore %+v\nafter  %+v", what, before, after)
		}
		h := e.lastHistory()
		if h.Kind != "pkg-change" || h.State != "failed" || !strings.Contains(h.Error, want[0]) {
			t.Errorf("%s: history %+v", what, h)
		}
	}
	for _, c := range []struct{ pkg, typ string }{{"bad-pre", "%prein"}, {"bad-pretrans", "%pretrans"}, {"bad-trigger", "%triggerin"}} {
		refused(c.pkg, []string{c.pkg}, "package "+c.pkg+" has unsupported script of type "+c.typ, dbus.ErrUnsupportedScript)
	}
	for _, f := range []string{"/tmp/bad-pre-ran", "/tmp/bad-pretrans-ran", "/tmp/bad-trigger-ran"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("a refused script ran: %s exists", f)
		}
	}
	refused("missing dependency", []string{"broken-dep"}, "does-not-exist >= 2", "broken-dep")
	refused("base replacement", []string{"needs-newer-base"}, "forbidden base package replacement", "hostos-tools")
	refused("file conflict", []string{"conflict-base"}, "file conflict", "conflict-base", "/usr/lib/os-release")
	refused("unknown package", []string{"no-such-package"}, "no-such-package")

	// A corrupted RPM on the server.
	corrupt := e.serveRPMs(nil, nil, func(dir string) {
		f, err := os.OpenFile(filepath.Join(dir, "hello-lib-1.1-1.noarch.rpm"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("tampered"))
		f.Close()
	})
	e.setRepoFile("layer", "")
	e.setRepoFile("corrupt", fixture.YumRepoFile("corrupt", corrupt.URL()))
	refused("checksum mismatch", []string{"hello-lib"}, "checksum mismatch", "hello-lib-1.1-1.noarch")

	// A repository that is down.
	down, err := fixture.UnreachableURL()
	if err != nil {
		t.Fatal(err)
	}
	e.setRepoFile("corrupt", "")
	e.setRepoFile("down", fixture.YumRepoFile("down", down))
	refused("repo down", []string{"hello-lib"}, `refresh metadata of repo "down"`, "connection refused")
	e.setRepoFile("down", "")

	// Signatures: gpgcheck=1 with the key in the deployment's /etc/pki/rpm-gpg.
	ctx := e.ctx
	good, err := fixture.NewSigningKey(ctx, t.TempDir(), "hostctl test")
	if err != nil {
		t.Fatal(err)
	}
	other, err := fixture.NewSigningKey(ctx, t.TempDir(), "someone else")
	if err != nil {
		t.Fatal(err)
	}
	_, dep := e.defaultDeployment()
	if err := os.WriteFile(filepath.Join(dep, "etc/pki/rpm-gpg/hostctl-test.asc"), good.Public, 0o644); err != nil {
		t.Fatal(err)
	}
	signedRepo := func(id string, key *fixture.SigningKey) {
		srv := e.serveRPMs(nil, func(dir string) {
			if key == nil {
				return
			}
			rpms, _ := filepath.Glob(filepath.Join(dir, "hello-lib-*.rpm"))
			if err := key.Sign(ctx, rpms...); err != nil {
				t.Fatal(err)
			}
		}, nil)
		e.setRepoFile(id, strings.Replace(fixture.YumRepoFile(id, srv.URL()), "gpgcheck=0", "gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/hostctl-test.asc", 1))
	}
	signedRepo("wrongkey", other)
	refused("bad signature", []string{"hello-lib"}, "bad or missing signature", "hello-lib-1.1-1.noarch", dbus.ErrSignatureInvalid)
	e.setRepoFile("wrongkey", "")
	signedRepo("unsigned", nil)
	refused("missing signature", []string{"hello-lib"}, "bad or missing signature", dbus.ErrSignatureInvalid)
	e.setRepoFile("unsigned", "")
	signedRepo("signed", good)
	e.mustHostctl("pkg-add", "hello-lib")
	if st := e.status(); !slices.Equal(st.Deployments[0].Packages, []string{"hello-lib"}) {
		t.Fatalf("signed pkg-add: %+v", st.Deployments[0])
	}
}

func TestPkgUpgradeRelayers(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	e.mustHostctl("pkg-add", "hello-layer")
	srv.ResetStats()
	e.publish("2")
	out := e.mustHostctl("upgrade")
	st := e.status()
	d := st.Deployments[0]
	if d.Version != "2" || d.BaseChecksum != e.os.Commit("2") || !slices.Equal(d.Packages, []string{"hello-layer"}) {
		t.Fatalf("after upgrade: %+v\n%s", d, out)
	}
	_, dep := e.defaultDeployment()
	if q, err := e.rpmQuery(dep, "hello-layer", "hello-lib", "hostos-filesystem"); err != nil ||
		!strings.Contains(q, "hello-layer-1.0-1") || !strings.Contains(q, "hostos-filesystem-2-1") {
		t.Fatalf("rpm -q after upgrade: %v\n%s", err, q)
	}
	if !strings.Contains(out, "downloaded 0, imported 0") {
		t.Errorf("upgrade output:\n%s", out)
	}
	for _, r := range srv.Requests() {
		if strings.HasSuffix(strings.Fields(r)[1], ".rpm") {
			t.Errorf("the upgrade downloaded %s again", r)
		}
	}
	e.fsck()
}

// TestPkgPeerDnf checks that hostctl layers the same packages as
// `dnf --installroot` installs on a plain copy of the same base.
func TestPkgPeerDnf(t *testing.T) {
	if _, err := exec.LookPath("dnf"); err != nil {
		t.Skip("dnf not installed")
	}
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	for _, req := range [][]string{{"hello-layer"}, {"hello-lib"}, {"hello-rich"}, {"hello-etc", "hello-layer"}, {"libhello"}} {
		out := e.mustHostctl(append([]string{"pkg-add", "--dry-run"}, req...)...)
		_, list, ok := strings.Cut(out, "Would layer: ")
		if !ok {
			t.Fatalf("%v: dry run:\n%s", req, out)
		}
		hostctl := strings.Fields(list)
		sort.Strings(hostctl)

		work := t.TempDir()
		root := filepath.Join(work, "root")
		if err := e.os.Checkout(e.ctx, "1", root); err != nil {
			t.Fatal(err)
		}
		before, err := fixture.QueryPackages(e.ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		home, reposDir := filepath.Join(work, "home"), filepath.Join(work, "repos")
		os.MkdirAll(home, 0o755)
		os.MkdirAll(reposDir, 0o755)
		os.WriteFile(filepath.Join(home, ".rpmmacros"), []byte("%_dbpath "+fixture.RPMDBPath+"\n%_db_backend sqlite\n"), 0o644)
		os.WriteFile(filepath.Join(reposDir, "layer.repo"), []byte(fixture.YumRepoFile("layer", srv.URL())), 0o644)
		args := append([]string{"--installroot", root, "--setopt=reposdir=" + reposDir, "--setopt=cachedir=" + filepath.Join(work, "cache"),
			"--releasever=1", "--assumeyes", "--nogpgcheck", "--setopt=install_weak_deps=True", "install"}, req...)
		cmd := exec.Command("dnf", args...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: dnf: %v\n%s", req, err, out)
		}
		after, err := fixture.QueryPackages(e.ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		var dnf []string
		for _, p := range after {
			if !slices.Contains(before, p) {
				dnf = append(dnf, p)
			}
		}
		sort.Strings(dnf)
		if !slices.Equal(hostctl, dnf) {
			t.Errorf("%v: hostctl layers %v, dnf installs %v", req, hostctl, dnf)
		}
	}
}

// TestPkgScriptEnvironment: a %post finds what scripts expect on an
// image-based host: SYSTEMD_OFFLINE=1, /run/ostree-booted, writable /tmp and
// /var/tmp (thrown away), /dev/null and friends, and no network.
func TestPkgScriptEnvironment(t *testing.T) {
	e := newEnv(t)
	rpms, err := fixture.BuildRPMs(e.ctx, t.TempDir(), fixture.Spec{Path: fixture.SpecPath("layer/sandbox-env.spec")})
	if err != nil {
		t.Fatal(err)
	}
	srv := e.serveRPMs(rpms, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	os.Remove("/var/tmp/sandbox-env")
	os.Remove("/tmp/sandbox-env")
	e.mustHostctl("pkg-add", "sandbox-env")
	_, dep := e.defaultDeployment()
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dep, "usr/share/sandbox-env/result"))), "\n") {
		name, res, _ := strings.Cut(line, " ")
		got[name] = res
	}
	for _, check := range []string{"systemd-offline", "ostree-booted", "tmp-writable", "var-tmp-writable", "dev-null", "dev-zero", "dev-urandom", "dev-full", "no-network"} {
		if got[check] != "ok" {
			t.Errorf("%%post check %s: %q", check, got[check])
		}
	}
	// What the script wrote to /tmp and /var/tmp is gone, from the tree and the host.
	for _, p := range []string{filepath.Join(dep, "tmp/sandbox-env"), filepath.Join(dep, "var/tmp/sandbox-env"), "/tmp/sandbox-env", "/var/tmp/sandbox-env",
		filepath.Join(dep, "run/ostree-booted")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists after the script ran", p)
		}
	}
	e.fsck()
}
