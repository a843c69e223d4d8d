package containers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostctl/hostctl/containers"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/tests/fixture"
)

// recorder is a Reporter that keeps what it was told.
type recorder struct {
	mu    sync.Mutex
	steps []string
	msgs  []string
	temp  map[string]bool
}

func newRecorder() *recorder { return &recorder{temp: map[string]bool{}} }

func (r *recorder) Step(stage, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, stage)
}

func (r *recorder) Message(text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, text)
}

func (r *recorder) Progress(containers.PullProgress) {}

func (r *recorder) AddTemp(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.temp[path] = true
}

func (r *recorder) DropTemp(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.temp, path)
}

func (r *recorder) said(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// mgrEnv is a host in a temporary directory: an OSTree repo, the hello
// image in an OCI layout, and a Manager driving real runc containers with
// the direct service manager.
type mgrEnv struct {
	t     *testing.T
	ctx   context.Context
	m     *containers.Manager
	h     containers.Host
	image string // oci:DIR:1
	state string // runc --root
}

func newMgrEnv(t *testing.T) *mgrEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runc containers need root")
	}
	for _, bin := range []string{"runc", "ostree"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: %v", bin, err)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skipf("the test image needs the host's busybox (apt-get install busybox-static): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	tmp := t.TempDir()
	repoDir := filepath.Join(tmp, "repo")
	if out, err := exec.Command("ostree", "init", "--repo="+repoDir, "--mode=bare").CombinedOutput(); err != nil {
		t.Fatalf("ostree init: %v: %s", err, out)
	}
	repo, err := deploy.OpenRepo(ctx, repoDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)

	root := filepath.Join(tmp, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc", "containers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "containers", "policy.json"), []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	base, err := fixture.BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	exports, err := fixture.Layer(fixture.HelloExports(fixture.HelloConfigTemplate(true)))
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(tmp, "layout")
	if _, err := fixture.OCILayout(layout, "1", [][]byte{base, exports}); err != nil {
		t.Fatal(err)
	}

	state := filepath.Join(tmp, "runc")
	m := containers.NewManager(containers.ManagerConfig{ServiceManager: "direct", StateDir: state}, repo, nil)
	t.Cleanup(func() {
		m.Close()
		// The containers outlive the manager (direct mode): stop what is left.
		ents, _ := os.ReadDir(state)
		for _, ent := range ents {
			if ent.IsDir() {
				exec.Command("runc", "--root", state, "delete", "--force", ent.Name()).Run()
			}
		}
	})
	h := containers.Host{Dir: filepath.Join(tmp, "var", "lib", "containers", "hostctl"), Etc: filepath.Join(root, "etc"), Root: root}
	return &mgrEnv{t: t, ctx: ctx, m: m, h: h, image: "oci:" + layout + ":1", state: state}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get fetches http://127.0.0.1:port/ ("" when nothing answers).
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

// answers waits until port serves want.
func (e *mgrEnv) answers(port int, want string) {
	e.t.Helper()
	got := ""
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = get(port); strings.Contains(got, want) {
			return
		}
	}
	e.t.Fatalf("port %d answers %q, want %q", port, got, want)
}

func (e *mgrEnv) active(name string) int {
	e.t.Helper()
	n, err := e.h.ActiveSlot(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestManagerLifecycle drives real runc containers through the manager:
// install, a refused second install, update and its undo, a failed start
// (install removed, update switched back), reconcile to a recorded entry
// (a slot re-rendered from the repo when it is gone), a kept unreadable
// entry, and removal by reconcile.
func TestManagerLifecycle(t *testing.T) {
	e := newMgrEnv(t)
	ctx := e.ctx
	port := freePort(t)
	set := []string{fmt.Sprintf("PORT=%d", port), "GREETING=one"}

	r := newRecorder()
	inst, err := e.m.Install(ctx, e.h, containers.InstallRequest{Name: "web", Image: e.image, Set: set, Follow: true}, r)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	e.answers(port, "one from web")
	if !inst.Changed || inst.Slot != 0 || inst.Entry.Image != e.image || !inst.Entry.Follow || !strings.HasPrefix(inst.Entry.Digest, "sha256:") {
		t.Fatalf("install: %+v", inst)
	}
	if again, err := containers.ParseEntry(inst.Entry.String()); err != nil || again != inst.Entry {
		t.Fatalf("the install's entry does not read back: %+v, %v", again, err)
	}
	if got := strings.Join(r.steps, ","); got != "pull,checkout,activate,host-files,start" {
		t.Errorf("install steps %s", got)
	}
	if slot := e.h.SlotPath("web", 0); r.temp[slot] {
		t.Errorf("the live slot %s is still a temporary path: recovery would remove it", slot)
	}
	if b, err := os.ReadFile(filepath.Join(e.h.Root, "etc", "hostctl-test", "web.conf")); err != nil || string(b) != fmt.Sprintf("port=%d\n", port) {
		t.Errorf("host file: %q, %v", b, err)
	}
	if _, err := os.Stat(e.h.UnitPath("web")); err != nil {
		t.Errorf("unit: %v", err)
	}

	_, err = e.m.Install(ctx, e.h, containers.InstallRequest{Name: "web", Image: e.image}, newRecorder())
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "already installed") {
		t.Fatalf("second install of web: %v, want already installed", err)
	}
	// A name the generation records is taken even when nothing is live.
	_, err = e.m.Install(ctx, e.h, containers.InstallRequest{Name: "other", Image: e.image, Recorded: inst.Entry}, newRecorder())
	if err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Fatalf("install of a recorded name: %v, want already installed", err)
	}

	// Update to new values: slot 1 live; its undo puts slot 0 back.
	up, err := e.m.Update(ctx, e.h, containers.UpdateRequest{Name: "web", Set: []string{"GREETING=two"}, Recorded: inst.Entry}, newRecorder())
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	e.answers(port, "two from web")
	if !up.Changed || up.Slot != 1 || e.active("web") != 1 || up.Entry.Digest != inst.Entry.Digest || up.Entry.Values == inst.Entry.Values || !up.Entry.Follow {
		t.Fatalf("update: %+v (installed %+v)", up, inst)
	}
	cause := errors.New("the generation could not be written")
	if err := up.Undo(cause); !errors.Is(err, cause) || !strings.Contains(err.Error(), "rolled back to the previous version (slot 0)") {
		t.Fatalf("undo of the update: %v", err)
	}
	e.answers(port, "one from web")
	if e.active("web") != 0 {
		t.Fatalf("after the undo slot %d is active, want 0", e.active("web"))
	}

	// Nothing to change: no slot is touched.
	same, err := e.m.Update(ctx, e.h, containers.UpdateRequest{Name: "web", Recorded: inst.Entry}, newRecorder())
	if err != nil || same.Changed || same.Undo != nil {
		t.Fatalf("update to the same values: %+v, %v", same, err)
	}

	// A start that fails: the update switches back by itself.
	r = newRecorder()
	_, err = e.m.Update(ctx, e.h, containers.UpdateRequest{Name: "web", Set: []string{"PORT=notaport"}, Recorded: inst.Entry}, r)
	if err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("update to a bad port: %v, want rolled back", err)
	}
	e.answers(port, "one from web")
	if e.active("web") != 0 {
		t.Fatalf("after the failed update slot %d is active, want 0", e.active("web"))
	}
	// ...and an install whose service does not start leaves nothing.
	r = newRecorder()
	if _, err := e.m.Install(ctx, e.h, containers.InstallRequest{Name: "bad", Image: e.image, Set: []string{"PORT=notaport"}}, r); err == nil {
		t.Fatal("install with a bad port succeeded")
	}
	if !r.said("The service did not start; removing bad again.") {
		t.Errorf("failed install said %q", r.msgs)
	}
	if n := e.active("bad"); n >= 0 {
		t.Fatalf("a failed install left slot %d active", n)
	}
	if _, err := os.Stat(e.h.SlotPath("bad", 0)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed install left its slot: %v", err)
	}

	// Reconcile to the updated entry: its slot (1) is activated again.
	if err := e.m.Reconcile(ctx, e.h, map[string]containers.Entry{"web": up.Entry}, nil); err != nil {
		t.Fatalf("reconcile to the update: %v", err)
	}
	e.answers(port, "two from web")
	// Reconcile to the installed entry with its slot gone: rendered again from the repo.
	if err := os.RemoveAll(e.h.SlotPath("web", 0)); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Reconcile(ctx, e.h, map[string]containers.Entry{"web": inst.Entry}, nil); err != nil {
		t.Fatalf("reconcile to a missing slot: %v", err)
	}
	e.answers(port, "one from web")
	if e.active("web") != 0 {
		t.Fatalf("reconcile activated slot %d, want 0", e.active("web"))
	}

	list, err := e.m.List(ctx, e.h)
	if err != nil || len(list) != 1 || list[0].Name != "web" || list[0].State != containers.StateRunning || list[0].Values["GREETING"] != "one" {
		t.Fatalf("list: %+v, %v", list, err)
	}
	inUse, err := e.m.SlotImages(e.h)
	if err != nil || len(inUse) == 0 || inUse[0] != inst.Entry.Digest {
		t.Fatalf("slot images: %v, %v", inUse, err)
	}

	// An entry that could not be read keeps its container as it is.
	if err := e.m.Reconcile(ctx, e.h, nil, map[string]bool{"web": true}); err != nil {
		t.Fatalf("reconcile keeping web: %v", err)
	}
	e.answers(port, "one from web")
	// A generation without it removes it: service, slots, unit, host files.
	if err := e.m.Reconcile(ctx, e.h, nil, nil); err != nil {
		t.Fatalf("reconcile to no containers: %v", err)
	}
	if got := get(port); got != "" {
		t.Errorf("port %d still answers %q after the container was removed", port, got)
	}
	if n := e.active("web"); n >= 0 {
		t.Errorf("web is still installed (slot %d)", n)
	}
	for _, p := range []string{e.h.UnitPath("web"), filepath.Join(e.h.Root, "etc", "hostctl-test", "web.conf"), e.h.SlotPath("web", 0), e.h.SlotPath("web", 1)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left after the removal: %v", p, err)
		}
	}
}

// TestManagerRefusesBadInput: a bad name or value is refused as an invalid
// argument before anything is pulled or written, and a missing container is
// not found.
func TestManagerRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	h := containers.Host{Dir: filepath.Join(dir, "ctr"), Etc: filepath.Join(dir, "etc"), Root: dir}
	m := containers.NewManager(containers.ManagerConfig{ServiceManager: "direct", StateDir: filepath.Join(dir, "runc"), Runtime: "/nonexistent/runc"}, nil, nil)
	defer m.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  containers.InstallRequest
	}{
		{"dotdot name", containers.InstallRequest{Name: "../x", Image: "oci:/x:1"}},
		{"empty name", containers.InstallRequest{Name: "", Image: "oci:/x:1"}},
		{"slash name", containers.InstallRequest{Name: "a/b", Image: "oci:/x:1"}},
		{"bad set", containers.InstallRequest{Name: "ok", Image: "oci:/x:1", Set: []string{"novalue"}}},
	} {
		r := newRecorder()
		_, err := m.Install(ctx, h, tc.req, r)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want an invalid argument", tc.name, err)
		}
		if len(r.steps) != 0 {
			t.Errorf("%s: steps %v were done", tc.name, r.steps)
		}
	}
	if _, err := os.Stat(h.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused install made %s: %v", h.Dir, err)
	}
	if _, err := m.Exec(ctx, h, "../x", nil, nil, io.Discard, io.Discard); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("exec ../x: %v, want an invalid argument", err)
	}
	if _, err := h.Active("web"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("active slot of a missing container: %v, want not found", err)
	}
}

// cgroups is the /proc/PID/cgroup of the running container name.
func (e *mgrEnv) cgroups(name string) string {
	e.t.Helper()
	out, err := exec.Command("runc", "--root", e.state, "state", name).Output()
	if err != nil {
		e.t.Fatalf("runc state %s: %v", name, err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil || st.Pid == 0 {
		e.t.Fatalf("runc state %s: %s, %v", name, out, err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// TestTwoHostsOneName runs a container of the same name on two hosts (two
// sysroots, as two test sandboxes or an installer beside the host): each has
// a cgroup of its own, and removing one leaves the other running and
// restartable. Both in one cgroup, the `runc delete` of one removed the
// cgroup under the other's start ("cgroup.procs: no such file or directory").
func TestTwoHostsOneName(t *testing.T) {
	a, b := newMgrEnv(t), newMgrEnv(t)
	pa, pb := freePort(t), freePort(t)
	for _, x := range []struct {
		e    *mgrEnv
		port int
	}{{a, pa}, {b, pb}} {
		set := []string{fmt.Sprintf("PORT=%d", x.port), "GREETING=one"}
		if _, err := x.e.m.Install(x.e.ctx, x.e.h, containers.InstallRequest{Name: "web", Image: x.e.image, Set: set}, newRecorder()); err != nil {
			t.Fatalf("install: %v", err)
		}
	}
	a.answers(pa, "one from web")
	b.answers(pb, "one from web")
	ca, cb := a.cgroups("web"), b.cgroups("web")
	for _, line := range strings.Split(strings.TrimSpace(ca), "\n") {
		if strings.Contains(cb, line+"\n") || strings.HasSuffix(cb, line) {
			if !strings.HasSuffix(line, ":/") { // a controller neither is placed in
				t.Errorf("both containers are in the cgroup %q:\nA:\n%s\nB:\n%s", line, ca, cb)
			}
		}
	}
	if _, err := a.m.Remove(a.ctx, a.h, "web"); err != nil {
		t.Fatalf("remove on A: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a.state+".bundles", "web")); !os.IsNotExist(err) {
		t.Errorf("A's runtime bundle of web is still there after its removal: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.state+".bundles", "web", "config.json")); err != nil {
		t.Errorf("B's runtime bundle of web: %v", err)
	}
	b.answers(pb, "one from web")
	if _, err := b.m.Update(b.ctx, b.h, containers.UpdateRequest{Name: "web", Set: []string{"GREETING=two"}}, newRecorder()); err != nil {
		t.Fatalf("update on B after A's remove: %v", err)
	}
	b.answers(pb, "two from web")
}
