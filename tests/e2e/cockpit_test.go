package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/dbus/rpmostree"
	"github.com/hostctl/hostctl/tests/fixture"
)

// cockpitWS and chromium are Debian 12's (packages cockpit-ws,
// cockpit-bridge, cockpit-system and chromium).
const (
	cockpitWS = "/usr/lib/cockpit/cockpit-ws"
	chromium  = "/usr/bin/chromium"
)

// cockpitPage is the repo's Cockpit page served by a real cockpit-ws with a
// local session (no login: the bridge runs as the test's user, root) whose
// system bus is the test's private bus, and a headless chromium driven over
// the DevTools protocol.
type cockpitPage struct {
	t       *testing.T
	ctx     context.Context
	url     string
	console *strings.Builder
}

func newCockpitPage(t *testing.T, e *env) *cockpitPage { return newCockpitPageAs(t, e, 0) }

// newCockpitPageAs is newCockpitPage with cockpit-ws (and so its bridge,
// the session's user) running as uid.
func newCockpitPageAs(t *testing.T, e *env, uid int) *cockpitPage {
	t.Helper()
	if testing.Short() {
		t.Skip("starts cockpit-ws and chromium")
	}
	for _, bin := range []string{cockpitWS, chromium, "/usr/bin/cockpit-bridge"} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("%s is not installed (apt-get install -y cockpit-ws cockpit-bridge cockpit-system chromium): %v", bin, err)
		}
	}
	// XDG_DATA_DIRS: the repo's page beside Debian's base1 and shell.
	// Not t.TempDir: the session's user must reach the page through every
	// directory of the path.
	tmp, err := os.MkdirTemp("", "hostctl-cockpit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o755)
	share := filepath.Join(tmp, "share")
	if err := os.MkdirAll(filepath.Join(share, "cockpit"), 0o755); err != nil {
		t.Fatal(err)
	}
	page, err := filepath.Abs("../../cockpit/hostctl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(page, filepath.Join(share, "cockpit", "hostctl")); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ws := exec.Command(cockpitWS, "--no-tls", "--local-session=/usr/bin/cockpit-bridge", "--address", "127.0.0.1", "--port", fmt.Sprint(port))
	ws.Env = append(os.Environ(), "XDG_DATA_DIRS="+share+":/usr/share", "DBUS_SYSTEM_BUS_ADDRESS="+e.bus.Address)
	// Its own process group: the bridge starts a session dbus-daemon that
	// must go with it.
	ws.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if uid != 0 {
		ws.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
		ws.Env = append(ws.Env, "HOME=/", "XDG_RUNTIME_DIR=")
	}
	var wsLog strings.Builder
	ws.Stdout, ws.Stderr = &wsLog, &wsLog
	if err := ws.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-ws.Process.Pid, syscall.SIGKILL)
		ws.Wait()
		if t.Failed() {
			t.Logf("cockpit-ws:\n%s", wsLog.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cockpit-ws does not listen on port %d: %v\n%s", port, err, wsLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	p := &cockpitPage{t: t, console: &strings.Builder{}}
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			for _, a := range ev.Args {
				fmt.Fprintf(p.console, "console.%s: %s\n", ev.Type, a.Value)
			}
		case *runtime.EventExceptionThrown:
			fmt.Fprintf(p.console, "exception: %s\n", ev.ExceptionDetails.Text)
		}
	})
	p.ctx = ctx
	// The page alone (no shell frame): cockpit-ws serves a package's files
	// at /cockpit/@localhost/PACKAGE/ for the local session.
	p.url = fmt.Sprintf("http://127.0.0.1:%d/cockpit/@localhost/hostctl/index.html", port)
	t.Cleanup(func() {
		if t.Failed() {
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			body, _ := chromedp.Run(sctx, chromedp.OuterHTML("body"))
			scancel()
			t.Logf("browser console:\n%s\npage:\n%s", p.console.String(), body)
			if e.hostd != nil {
				t.Logf("hostd log:\n%s", e.hostd.Log)
			}
		}
	})
	return p
}

// run runs browser actions with a deadline.
func (p *cockpitPage) run(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := chromedp.Do(ctx, actions...)
		if err == nil {
			return
		}
		// The page re-rendered the element between its lookup and the
		// click (a PropertiesChanged redraws the rows): look it up again.
		if attempt < 5 && ctx.Err() == nil && strings.Contains(err.Error(), "Could not find node with given id") {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		p.t.Fatalf("%s: %v", what, err)
	}
}

// waitText waits until the element sel's text contains want, and returns it.
func (p *cockpitPage) waitText(what, sel, want string, d time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		text, err := chromedp.Run(ctx, chromedp.Text(sel, chromedp.NodeReady))
		cancel()
		if err == nil && strings.Contains(text, want) {
			return text
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s does not show %q after %v (err %v); it shows:\n%s", what, sel, want, d, err, text)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCockpitPage loads the Host updates page in a real browser through
// cockpit-ws and checks what it shows and does against hostd: the
// generation row of the sandbox host, "Check for updates" finding v2 with
// its package diff, "Update" ending with v2 as the default, the rollback
// and pinned marks as hostd has them, a package added and removed from the
// page, a refused package whose failure is told in words (after a reload
// too), "Roll back", and a "Clean up" that removes the unpinned old
// generation. The fixture sysroot is not booted: no "Reboot to use it".
func TestCockpitPage(t *testing.T) {
	e := newEnv(t)
	p := newCockpitPage(t, e)
	st := e.status()
	v1 := st.Deployments[0]
	p.run("open the page", time.Minute, chromedp.Navigate(p.url))
	rows := p.waitText("the generation rows", "#generations tbody", v1.Checksum[:12], time.Minute)
	p.waitText("the host's settings", "#host-state", "Automatic updates: off · Reboots: off", time.Minute)
	p.waitText("the offline sysroot", "#host-state", "No generation is booted from this sysroot (offline)", time.Minute)
	for _, want := range []string{"1", refspec} {
		if !strings.Contains(rows, want) {
			t.Fatalf("the generation row does not show %q:\n%s", want, rows)
		}
	}
	if strings.Contains(rows, "ostree=/ostree/boot") {
		t.Fatalf("the kernel arguments column shows libostree's own ostree= argument:\n%s", rows)
	}
	if got := p.flags(v1.ID); got != "default" {
		t.Errorf("the only generation's status is %q, want default", got)
	}

	e.publish("2")
	p.run("click Check for updates", time.Minute, chromedp.Click("#check"))
	v2 := e.os.Commit("2")
	avail := p.waitText("the available update", "#available", v2[:12], 2*time.Minute)
	// With its package diff: every package rpm says changed from v1 to v2 is named.
	for _, name := range rpmQAChanges(e.rpmQAOfCommit(v1.Checksum), e.rpmQAOfCommit(v2)) {
		if n := name[:strings.LastIndex(name, ".")]; !strings.Contains(avail, n) {
			t.Errorf("the available update does not name the changed package %s:\n%s", n, avail)
		}
	}

	p.run("click Update", time.Minute, chromedp.Click("#update"))
	// Update changes what boots: the page asks first.
	p.run("confirm", time.Minute, chromedp.WaitVisible("#confirm-yes"), chromedp.Click("#confirm-yes"))
	p.waitText("the new default generation", "#generations tbody", v2[:12], 3*time.Minute)
	e.waitDefault(t, "after Update on the page", func(d dbus.Deployment) bool { return d.Checksum == v2 && d.Version == "2" })
	p.waitText("the update's notice", "#notice", "Deployed generation", time.Minute)
	// Nothing is booted from the fixture sysroot: the default is what
	// boots first, there is nothing to reboot into.
	if p.visible("#reboot") {
		t.Errorf("the page says %q on a sysroot nothing is booted from", p.text("#reboot"))
	}
	// The rollback mark is hostd's (the generation Roll back makes the
	// default): v1 now.
	st = e.status()
	p.checkMarks(st)
	if got := p.flags(st.Deployments[1].ID); got != "rollback" {
		t.Errorf("v1's status after the update is %q, want rollback", got)
	}

	// A generation pinned with hostctl is marked pinned on the page.
	e.mustHostctl("pin", "1")
	p.waitFlags("the pinned generation", v1.ID, "rollback pinned")

	// Add a layered package from the page.
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	p.run("type hello-layer", time.Minute, chromedp.SendKeys("#pkg-add-name", "hello-layer"))
	p.run("add hello-layer", time.Minute, chromedp.Click("#pkg-add"))
	p.confirmIfAsked()
	p.waitText("the layered package", "#generations tbody", "hello-layer", 3*time.Minute)
	e.waitDefault(t, "after Add package", func(d dbus.Deployment) bool { return slices.Contains(d.Packages, "hello-layer") })
	withPkg := e.status().Deployments[0]
	p.waitText("the package list", "#packages", "hello-layer", time.Minute)

	// A package with a %pre script is refused: the page says so in words,
	// and after a reload the last failure's card says it again, from the
	// error name hostd keeps in its history.
	deps := e.ostreeStatus()
	p.run("type bad-pre", time.Minute, chromedp.SendKeys("#pkg-add-name", "bad-pre"))
	p.run("add bad-pre", time.Minute, chromedp.Click("#pkg-add"))
	p.confirmIfAsked()
	const refused = "Refused by hostctl's package policy"
	errText := p.waitText("the refusal", "#error", refused, 3*time.Minute)
	if !strings.Contains(errText, "bad-pre") || !strings.Contains(errText, "leave that package out") {
		t.Errorf("the refusal does not name the package and what to do: %q", errText)
	}
	if rec := e.lastHistory(); rec.State != "failed" || rec.ErrorName != dbus.ErrUnsupportedScript {
		t.Fatalf("history records the refused package as %s with error name %q (%s), want failed %s", rec.State, rec.ErrorName, rec.Error, dbus.ErrUnsupportedScript)
	}
	if got := e.ostreeStatus(); !slices.Equal(got, deps) {
		t.Fatalf("the refused package changed the deployments: %v, was %v", got, deps)
	}
	p.run("reload the page", time.Minute, chromedp.Reload(), chromedp.WaitVisible(`body[data-loaded="true"]`))
	p.run("the last failure's card", time.Minute, chromedp.WaitVisible("#last-failure"))
	failure := p.text("#failure-text")
	if !strings.HasPrefix(failure, "The package change failed (") || !strings.Contains(failure, refused) || !strings.Contains(failure, "bad-pre") {
		t.Errorf("after a reload the last failure's card says %q, want the refusal in words", failure)
	}

	// Remove the package from the page: a new generation without it; the
	// success supersedes the failure.
	p.run("click Remove on hello-layer", time.Minute, chromedp.Click(`#packages li.package[data-name="hello-layer"] button.remove-package`))
	p.run("confirm", time.Minute, chromedp.WaitVisible("#confirm-yes"))
	if q := p.text("#confirm-text"); !strings.Contains(q, "Remove hello-layer?") || !strings.Contains(q, "without it") {
		t.Errorf("the page asks %q before removing the package", q)
	}
	p.run("confirm", time.Minute, chromedp.Click("#confirm-yes"))
	e.waitDefault(t, "after Remove", func(d dbus.Deployment) bool { return d.Version == "2" && len(d.Packages) == 0 && d.ID != withPkg.ID })
	p.waitText("the package list", "#packages", "No layered packages.", time.Minute)
	p.run("the failure card to go", time.Minute, chromedp.WaitNotVisible("#last-failure"))
	st = e.status()
	p.waitText("the new default generation", "#generations tbody tr.generation", st.Deployments[0].Checksum[:12], time.Minute)
	p.checkMarks(st)

	// Roll back: the generation with the package is the default again.
	before := len(st.Deployments)
	rb := -1
	for i, d := range st.Deployments {
		if d.Rollback {
			rb = i
		}
	}
	if rb < 0 || st.Deployments[rb].ID != withPkg.ID {
		t.Fatalf("hostd's rollback generation is #%d of %v, want %s", rb, st.Deployments, withPkg.ID)
	}
	p.run("click Roll back", time.Minute, chromedp.Click("#rollback"))
	p.run("the question", time.Minute, chromedp.WaitVisible("#confirm-yes"))
	if q := p.text("#confirm-text"); !strings.Contains(q, deploymentShort(withPkg.ID)) {
		t.Errorf("the page asks %q before the roll back, naming not the rollback generation %s", q, withPkg.ID)
	}
	p.run("confirm", time.Minute, chromedp.Click("#confirm-yes"))
	p.waitText("the roll-back notice", "#notice", "Rolled back", 3*time.Minute)
	e.waitDefault(t, "after Roll back", func(d dbus.Deployment) bool { return d.ID == withPkg.ID })
	st = e.status()
	if got := len(st.Deployments); got != before {
		t.Fatalf("Roll back changed the number of deployments from %d to %d", before, got)
	}
	p.waitText("the package list", "#packages", "hello-layer", time.Minute)
	p.checkMarks(st)

	// Clean up: the unpinned generations after the default go, the pinned
	// v1 stays.
	var gone []string
	for _, d := range st.Deployments[1:] {
		if !d.Pinned {
			gone = append(gone, d.ID)
		}
	}
	if len(gone) == 0 {
		t.Fatalf("no unpinned old generation to clean up: %+v", st.Deployments)
	}
	p.run("click Clean up", time.Minute, chromedp.Click("#cleanup"))
	p.run("the question", time.Minute, chromedp.WaitVisible("#confirm-yes"))
	if q := p.text("#confirm-text"); !strings.Contains(q, fmt.Sprintf("removes %d older generation", len(gone))) || !strings.Contains(q, "Pinned generations stay") {
		t.Errorf("the page asks %q before the clean up of %v", q, gone)
	}
	p.run("confirm", time.Minute, chromedp.Click("#confirm-yes"))
	notice := p.waitText("the clean-up notice", "#notice", "Cleaned up: removed", 3*time.Minute)
	for _, id := range gone {
		if !strings.Contains(notice, deploymentShort(id)) {
			t.Errorf("the clean-up notice %q does not name the removed %s", notice, id)
		}
	}
	st = e.status()
	if got := []string{st.Deployments[0].ID, st.Deployments[len(st.Deployments)-1].ID}; len(st.Deployments) != 2 || got[0] != withPkg.ID || got[1] != v1.ID {
		t.Fatalf("after Clean up hostd has %v, want the default %s and the pinned %s", st.Deployments, withPkg.ID, v1.ID)
	}
	for _, id := range gone {
		waitUntil(t, time.Minute, "the removed generation's row to go", func() bool {
			n, _ := chromedp.Run(p.ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('#generations tr.generation[data-id=%q]').length`, id)))
			return n == 0
		})
	}
	p.checkMarks(st)
	if p.visible("#error") {
		t.Errorf("the page shows an error: %q", p.text("#error"))
	}
}

// TestCockpitRebootNotice: what the page says about a reboot, from the
// deployments as hostd gives them, in the browser: the fixture sysroot is
// never booted, so the booted cases are given to the page's own function.
// And the words for every error name of the API and for history records
// (with an error name, from an older hostd without one, interrupted).
func TestCockpitRebootNotice(t *testing.T) {
	e := newEnv(t)
	p := newCockpitPage(t, e)
	p.run("open the page", time.Minute, chromedp.Navigate(p.url), chromedp.WaitVisible(`body[data-loaded="true"]`))
	const a, b = "hostos-" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.0", "hostos-" + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.0"
	dep := func(id, version string, booted, staged bool) string {
		return fmt.Sprintf(`{"id": %q, "version": %q, "booted": %v, "staged": %v}`, id, version, booted, staged)
	}
	for _, c := range []struct {
		name string
		deps []string
		want []string // "" for no notice
	}{
		{"booted default", []string{dep(a, "1", true, false)}, nil},
		{"booted default, a rollback after it", []string{dep(a, "2", true, false), dep(b, "1", false, false)}, nil},
		{"a new default over the booted one", []string{dep(b, "2", false, false), dep(a, "1", true, false)},
			[]string{"Reboot to use it: generation version 2, hostos bbbbbbbbbbbb.0 is the default at the next boot.", "The host runs version 1, hostos aaaaaaaaaaaa.0."}},
		{"a staged one", []string{dep(b, "2", false, true), dep(a, "1", true, false)},
			[]string{"Reboot to use it: generation version 2, hostos bbbbbbbbbbbb.0 is staged"}},
		{"offline", []string{dep(b, "2", false, false), dep(a, "1", false, false)}, nil},
		{"none", nil, nil},
	} {
		got, err := chromedp.Run(p.ctx, chromedp.Evaluate[string]("HostctlPage.rebootNotice(["+strings.Join(c.deps, ",")+"])"))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(c.want) == 0 && got != "" {
			t.Errorf("%s: the page says %q, want nothing", c.name, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: the page says %q, want %q in it", c.name, got, w)
			}
		}
	}
	// The page renders it from hostd's deployments: none is booted here.
	if p.visible("#reboot") {
		t.Errorf("the page says %q on a sysroot nothing is booted from", p.text("#reboot"))
	}
	// Every error name the API has is told in words of its own; AccessDenied
	// never tells a web page's user to use sudo.
	seen := map[string]string{}
	for _, name := range []string{dbus.ErrBusy, dbus.ErrAccessDenied, dbus.ErrInvalidArgument, dbus.ErrNotFound, dbus.ErrCancelled,
		dbus.ErrNotCancellable, dbus.ErrNoTransaction, dbus.ErrUnsupportedScript, dbus.ErrNoSpace, dbus.ErrSignatureInvalid, dbus.ErrFailed} {
		const msg = "the engine's message; run it with sudo"
		got, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](fmt.Sprintf("HostctlPage.describeError(%q, %q)", name, msg)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got == msg || got == "" {
			t.Errorf("%s: the page shows the engine's message as it is: %q", name, got)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%s and %s are told in the same words: %q", name, other, got)
		}
		seen[got] = name
		if name == dbus.ErrAccessDenied && (strings.Contains(got, "sudo") || !strings.Contains(got, "Not authorized") || !strings.Contains(got, "Turn on administrative access")) {
			t.Errorf("AccessDenied reads %q: want Not authorized and Turn on administrative access, no sudo", got)
		}
	}
	// A history record: by its error name; one of a hostd before
	// error-name with its message as it is; an interrupted one in words.
	for _, c := range []struct{ rec, want string }{
		{`{"state": "failed", "error": "no space left", "error-name": "` + dbus.ErrNoSpace + `"}`, "Not enough disk space (no space left). Remove old generations (Clean up)"},
		{`{"state": "failed", "error": "pkg-change: refused"}`, "pkg-change: refused"},
		{`{"state": "interrupted", "error": "hostd stopped during step \"pull\""}`, "hostd stopped while it ran"},
	} {
		got, err := chromedp.Run(p.ctx, chromedp.Evaluate[string]("HostctlPage.describeRecord("+c.rec+")"))
		if err != nil || !strings.HasPrefix(got, c.want) {
			t.Errorf("the record %s reads %q (%v), want %q first", c.rec, got, err, c.want)
		}
	}
}

// TestCockpitNotAuthorized: a session of a user who is not root sees the
// generations, the layered package and the container, and every change it
// asks for is refused by hostd, shown as "Not authorized" with Cockpit's
// words (never "sudo"): Check for updates (it pulls and records what it
// found), Update, Roll back, Clean up, add and remove a package, a
// container's Update and Roll back, and Cancel of root's running update;
// nothing changes.
func TestCockpitNotAuthorized(t *testing.T) {
	c := newCtrEnv(t)
	e := c.env
	image, err := c.reg.Push(c.ctx, helloImage(t, "latest", "hello"), "latest", "web")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	c.mustHostctl("container", "install", "--name", "web", "--set", fmt.Sprintf("PORT=%d", port), image)
	c.waitAnswer(port, "hello from web")
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	e.mustHostctl("pkg-add", "hello-layer")
	if _, err := c.reg.Push(c.ctx, helloImage(t, "latest", "howdy"), "latest", "web"); err != nil {
		t.Fatal(err)
	}
	e.publish("2")
	p := newCockpitPageAs(t, e, 65534)
	st := e.status()
	ctr := c.list()["web"]
	p.run("open the page", time.Minute, chromedp.Navigate(p.url))
	p.waitText("the generation rows", "#generations tbody", st.Deployments[0].Checksum[:12], time.Minute)
	p.waitText("the package", "#packages", "hello-layer", time.Minute)
	const row = `#containers tr.container[data-name="web"]`
	p.waitText("the container row", row+" td.digest", shortDigest(ctr.Digest), time.Minute)
	deps := e.ostreeStatus()
	refused := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		p.run(what, time.Minute, actions...)
		p.confirmIfAsked()
		got := p.waitText(what+" as nobody", "#error", "Not authorized", 2*time.Minute)
		if strings.Contains(got, "sudo") || !strings.Contains(got, "Turn on administrative access") {
			t.Errorf("%s: the page says %q: want Cockpit's words (Turn on administrative access), no sudo", what, got)
		}
		if _, err := chromedp.Run(p.ctx, chromedp.Evaluate[string]("document.getElementById('error').textContent = ''")); err != nil {
			t.Fatalf("clear the error: %v", err)
		}
	}
	for _, button := range []string{"#check", "#update", "#rollback", "#cleanup"} {
		refused("click "+button, chromedp.Click(button))
	}
	p.run("type hello-lib", time.Minute, chromedp.SendKeys("#pkg-add-name", "hello-lib"))
	refused("add hello-lib", chromedp.Click("#pkg-add"))
	refused("remove hello-layer", chromedp.Click(`#packages li.package[data-name="hello-layer"] button.remove-package`))
	refused("update the container", chromedp.Click(row+" button.container-update"))
	refused("roll the container back", chromedp.Click(row+" button.container-rollback"))
	if p.visible("#available") {
		t.Errorf("the refused check for updates shows an update: %q", p.text("#available"))
	}

	// Cancel of root's update, shown running on nobody's page.
	e.srv.SetRate(16 << 10)
	t.Cleanup(func() { e.srv.SetRate(0) })
	cmd, out := e.spawnHostctl("upgrade")
	e.waitRunning(t)
	p.waitText("root's running update", "#txn-kind", "upgrade", 30*time.Second)
	refused("click Cancel", chromedp.Click("#cancel"))
	if st := e.status(); st.Transaction == nil || st.Transaction.Kind != "upgrade" {
		t.Fatalf("nobody's refused Cancel ended root's update: %+v", st.Transaction)
	}
	e.mustHostctl("cancel")
	if err := cmd.Wait(); err == nil {
		t.Fatalf("root's update succeeded after hostctl cancel:\n%s", out)
	}

	if got := e.ostreeStatus(); !slices.Equal(got, deps) {
		t.Fatalf("the refused changes changed the deployments: %v, was %v", got, deps)
	}
	after := e.status()
	if after.CachedUpdate != nil {
		t.Errorf("the refused check for updates recorded %+v", after.CachedUpdate)
	}
	if !slices.Equal(after.Deployments[0].Packages, st.Deployments[0].Packages) {
		t.Errorf("the packages changed: %v, were %v", after.Deployments[0].Packages, st.Deployments[0].Packages)
	}
	if l := c.list()["web"]; l.Digest != ctr.Digest || l.Slot != ctr.Slot {
		t.Errorf("the refused container changes changed it: %+v, was %+v", l, ctr)
	}
}

// flags is the status column (default, rollback, pinned, staged) of the
// generation id's row.
func (p *cockpitPage) flags(id string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	js := fmt.Sprintf(`Array.from(document.querySelectorAll('#generations tr.generation[data-id=%q] td.flags .flag')).map(function (e) { return e.textContent }).join(" ")`, id)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("the status of %s's row: %v", id, err)
	}
	return got
}

// waitFlags waits until the generation id's row has the status want.
func (p *cockpitPage) waitFlags(what, id, want string) {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := p.flags(id)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: the row of %s says %q, want %q", what, id, got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkMarks checks that every generation row has the marks hostd's
// status gives it (in the page's order: default, rollback, pinned, staged),
// once the page shows as many rows.
func (p *cockpitPage) checkMarks(st dbus.Status) {
	p.t.Helper()
	for _, d := range st.Deployments {
		var want []string
		for _, m := range []struct {
			on   bool
			name string
		}{{d.Default, "default"}, {d.Rollback, "rollback"}, {d.Pinned, "pinned"}, {d.Staged, "staged"}} {
			if m.on {
				want = append(want, m.name)
			}
		}
		p.waitFlags("the marks hostd gives", d.ID, strings.Join(want, " "))
	}
}

// visible tells whether the element sel is shown (not hidden, and not in a
// hidden ancestor).
func (p *cockpitPage) visible(sel string) bool {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(function(){var e=document.querySelector(%q); return !!e && e.offsetParent !== null})()`, sel)))
	if err != nil {
		p.t.Fatalf("is %s visible: %v", sel, err)
	}
	return v
}

// deploymentShort is a deployment id as the page shortens it.
func deploymentShort(id string) string {
	i := strings.LastIndex(id, "-")
	j := strings.LastIndex(id, ".")
	if i < 0 || j < i || j-i-1 < 12 {
		return id
	}
	return id[:i] + " " + id[i+1:i+13] + id[j:]
}

// confirmIfAsked presses Continue when the page asks for confirmation.
func (p *cockpitPage) confirmIfAsked() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible("#confirm-yes")); err != nil {
		return // no question asked
	}
	p.run("confirm", time.Minute, chromedp.Click("#confirm-yes"))
}

// waitDefault waits until hostd's default deployment satisfies ok.
func (e *env) waitDefault(t *testing.T, what string, ok func(dbus.Deployment) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d := e.status().Deployments[0]
		if ok(d) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: hostd's default deployment is %+v", what, d)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestCockpitCancel: Update against a remote that answers slowly shows the
// running transaction and its pull progress; Cancel on the page ends it, the
// page says in words that it was cancelled and nothing changed, hostd
// records it as cancelled and its default is still version 1.
func TestCockpitCancel(t *testing.T) {
	e := newEnv(t)
	p := newCockpitPage(t, e)
	v1 := e.status().Deployments[0]
	e.publish("2")
	p.run("open the page", time.Minute, chromedp.Navigate(p.url))
	p.waitText("the generation rows", "#generations tbody", v1.Checksum[:12], time.Minute)

	// 16 KiB/s over every response: the pull of v2 takes minutes.
	e.srv.SetRate(16 << 10)
	t.Cleanup(func() { e.srv.SetRate(0) })
	p.run("click Update", time.Minute, chromedp.Click("#update"))
	p.run("confirm", time.Minute, chromedp.WaitVisible("#confirm-yes"), chromedp.Click("#confirm-yes"))
	p.waitText("the running transaction", "#txn-kind", "upgrade", 30*time.Second)
	progress := p.waitText("the pull's progress", "#txn-text", "pull", 30*time.Second)
	t.Logf("progress on the page: %q", progress)
	if st := e.status(); st.Transaction == nil || st.Transaction.Kind != "upgrade" {
		t.Fatalf("the page shows a running update (%q) but hostd's transaction is %+v", progress, st.Transaction)
	}

	start := time.Now()
	p.run("click Cancel", time.Minute, chromedp.Click("#cancel"))
	notice := p.waitText("the cancelled update", "#notice", "The update was cancelled.", 30*time.Second)
	if !strings.Contains(notice, "Nothing changed: 1 is still the default generation.") {
		t.Errorf("the notice does not say the default did not change: %q", notice)
	}
	p.run("the progress card to go", 30*time.Second, chromedp.WaitNotVisible("#transaction"))
	t.Logf("the page showed the end %v after Cancel", time.Since(start).Round(time.Millisecond))
	if errText, err := chromedp.Run(p.ctx, chromedp.TextContent("#error")); err != nil || errText != "" {
		t.Errorf("the page shows an error after the cancel the user asked for: %q (%v)", errText, err)
	}

	st := e.status()
	if st.Transaction != nil {
		t.Fatalf("hostd still runs %+v after the page showed the cancel", st.Transaction)
	}
	if d := st.Deployments[0]; d.ID != v1.ID || d.Checksum != v1.Checksum {
		t.Fatalf("the cancelled update changed hostd's default deployment to %+v, was %+v", d, v1)
	}
	if got := versions(st); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("the cancelled update changed the deployments: %v", got)
	}
	if rec := e.lastHistory(); rec.Kind != "upgrade" || rec.State != "cancelled" {
		t.Fatalf("history records the update as %s %s (%s), want upgrade cancelled", rec.Kind, rec.State, rec.Error)
	}
}

// text is the visible text of the element sel.
func (p *cockpitPage) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(sel, chromedp.NodeReady))
	if err != nil {
		p.t.Fatalf("the text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// attr is the attribute name of the element sel.
func (p *cockpitPage) attr(sel, name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	m, err := chromedp.Run(ctx, chromedp.Attributes(sel, chromedp.NodeReady))
	if err != nil {
		p.t.Fatalf("the attributes of %s: %v", sel, err)
	}
	return m[name]
}

// screenshotIfAsked writes the page's screenshot (PNG) to the path
// HOSTCTL_COCKPIT_SCREENSHOT names, if it names one: docs/cockpit.png is
// made so.
func (p *cockpitPage) screenshotIfAsked() {
	p.t.Helper()
	path := os.Getenv("HOSTCTL_COCKPIT_SCREENSHOT")
	if path == "" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("wrote the page's screenshot to %s (%d bytes)", path, len(png))
}

// shortDigest is a digest as the page's container rows show it.
func shortDigest(d string) string { return d[:min(len(d), len("sha256:")+12)] }

// TestCockpitContainer: a system container installed from the test
// registry is a row with its name, image and digest; after a new image is
// pushed to its tag, "Update" on the row moves it to the new digest in a new
// generation, live at once; "Roll back" on the row brings the first digest
// back, in another generation. A package layered from the page then keeps
// the container: the page shows two generations, the package and the
// container row (the screenshot in docs/cockpit.png, written with
// HOSTCTL_COCKPIT_SCREENSHOT=PATH).
func TestCockpitContainer(t *testing.T) {
	c := newCtrEnv(t)
	p := newCockpitPage(t, c.env)
	image, err := c.reg.Push(c.ctx, helloImage(t, "latest", "hello"), "latest", "web")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	c.mustHostctl("container", "install", "--name", "web", "--set", fmt.Sprintf("PORT=%d", port), image)
	c.waitAnswer(port, "hello from web")
	first := c.list()["web"]
	gen1 := c.status().Deployments[0]

	p.run("open the page", time.Minute, chromedp.Navigate(p.url))
	const row = `#containers tr.container[data-name="web"]`
	p.waitText("the container row", row+" td.name", "web", time.Minute)
	if got := p.text(row + " td.image"); got != image {
		t.Errorf("the container row shows the image %q, want %q", got, image)
	}
	if got := p.text(row + " td.digest"); got != shortDigest(first.Digest) {
		t.Errorf("the container row shows the digest %q, want %q (of %s)", got, shortDigest(first.Digest), first.Digest)
	}
	if got := p.text(row + " td.state"); got != "running" {
		t.Errorf("the container row shows the state %q, want running", got)
	}
	if got := p.attr("#generations tbody tr.generation", "data-id"); got != gen1.ID {
		t.Fatalf("the page's default generation is %q, hostd's %q", got, gen1.ID)
	}

	// A new image on the container's tag; Update on its row.
	if _, err := c.reg.Push(c.ctx, helloImage(t, "latest", "howdy"), "latest", "web"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.run("click Update on the container row", time.Minute, chromedp.Click(row+" button.container-update"))
	p.run("confirm", time.Minute, chromedp.WaitVisible("#confirm-yes"), chromedp.Click("#confirm-yes"))
	p.waitText("the container update notice", "#notice", "Updated web to sha256:", time.Minute)
	t.Logf("container update from the page: %v", time.Since(start).Round(time.Millisecond))
	c.waitAnswer(port, "howdy from web")
	second := c.list()["web"]
	if second.Digest == first.Digest || second.Slot != "1" || second.Image != image {
		t.Fatalf("after Update on the page hostd lists %+v, before %+v: want the new digest in slot 1", second, first)
	}
	if n := p.text("#notice"); !strings.Contains(n, shortDigest(second.Digest)) {
		t.Errorf("the notice %q does not name the new digest %s", n, second.Digest)
	}
	p.waitText("the updated container row", row+" td.digest", shortDigest(second.Digest), time.Minute)
	if got := p.text(row + " td.slot"); got != "1" {
		t.Errorf("the updated container row shows slot %q, want 1", got)
	}
	gen2 := c.status().Deployments[0]
	if gen2.ID == gen1.ID || len(gen2.Containers) != 1 || !strings.Contains(gen2.Containers[0], second.Digest) {
		t.Fatalf("after the container update hostd's default is %s with containers %q, was %s: want a new generation naming %s",
			gen2.ID, gen2.Containers, gen1.ID, second.Digest)
	}
	// The generation's containers column: name, image and short digest,
	// the whole origin entry as the title.
	const genCtr = "#generations tbody tr.generation td.containers li"
	p.waitText("the new generation's containers", genCtr, "web: "+image+" "+shortDigest(second.Digest), time.Minute)
	if got := p.attr(genCtr, "title"); got != gen2.Containers[0] {
		t.Errorf("the new generation's container entry has the title %q, want hostd's %q", got, gen2.Containers[0])
	}
	if got := p.attr("#generations tbody tr.generation", "data-id"); got != gen2.ID {
		t.Fatalf("the page's default generation is %q after the container update, hostd's %q", got, gen2.ID)
	}

	// Roll back on its row: the first image again, in another generation.
	p.run("click Roll back on the container row", time.Minute, chromedp.Click(row+" button.container-rollback"))
	p.run("confirm", time.Minute, chromedp.WaitVisible("#confirm-yes"), chromedp.Click("#confirm-yes"))
	p.waitText("the container roll-back notice", "#notice", "Rolled back web to "+shortDigest(first.Digest), time.Minute)
	c.waitAnswer(port, "hello from web")
	p.waitText("the rolled-back container row", row+" td.digest", shortDigest(first.Digest), time.Minute)
	if l := c.list()["web"]; l.Digest != first.Digest || l.Slot != "0" {
		t.Fatalf("after Roll back on the page hostd lists %+v, want %+v", l, first)
	}
	gen3 := c.status().Deployments[0]
	if gen3.ID == gen2.ID || !strings.Contains(strings.Join(gen3.Containers, " "), first.Digest) {
		t.Fatalf("after the container roll back hostd's default is %s with containers %q: want a new generation naming %s", gen3.ID, gen3.Containers, first.Digest)
	}

	// A package layered from the page: the new generation keeps the container.
	srv := c.serveRPMs(nil, nil, nil)
	c.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	p.run("type hello-layer", time.Minute, chromedp.SendKeys("#pkg-add-name", "hello-layer"))
	p.run("add hello-layer", time.Minute, chromedp.Click("#pkg-add"))
	p.confirmIfAsked()
	p.waitText("the layered package", "#generations tbody tr.generation td.packages", "hello-layer", 3*time.Minute)
	c.waitDefault(t, "after Add package", func(d dbus.Deployment) bool {
		return slices.Contains(d.Packages, "hello-layer") && strings.Contains(strings.Join(d.Containers, " "), first.Digest)
	})
	if got := p.text(genCtr); !strings.Contains(got, shortDigest(first.Digest)) {
		t.Errorf("the generation with the package does not show the container: %q", got)
	}
	p.waitText("the container row", row+" td.state", "running", time.Minute)
	p.screenshotIfAsked()
}

// TestCockpitRPMOstreeCancel: an update begun on the page (through
// org.hostctl.Host1) is the rpm-ostree API's active transaction too, with a
// peer-to-peer address in the Sysroot's ActiveTransactionPath, as
// rpm-ostreed gives every transaction: a client there (as `rpm-ostree
// cancel` does: SASL EXTERNAL, no bus) hears its signals and cancels it; the
// page then says the update was cancelled and nothing changed.
func TestCockpitRPMOstreeCancel(t *testing.T) {
	e := newEnv(t)
	e.hostd.Stop()
	e.startHostd("--rpm-ostree-compat")
	conn, err := godbus.Connect(e.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitUntil(t, 30*time.Second, "hostd to own "+rpmostree.BusName, func() bool {
		var has bool
		return conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, rpmostree.BusName).Store(&has) == nil && has
	})
	sysroot := func(name string) godbus.Variant {
		t.Helper()
		var v godbus.Variant
		if err := conn.Object(rpmostree.BusName, rpmostree.SysrootPath).Call("org.freedesktop.DBus.Properties.Get", 0, rpmostree.SysrootInterface, name).Store(&v); err != nil {
			t.Fatalf("Sysroot %s: %v", name, err)
		}
		return v
	}
	p := newCockpitPage(t, e)
	v1 := e.status().Deployments[0]
	e.publish("2")
	p.run("open the page", time.Minute, chromedp.Navigate(p.url))
	p.waitText("the generation rows", "#generations tbody", v1.Checksum[:12], time.Minute)

	e.srv.SetRate(16 << 10)
	t.Cleanup(func() { e.srv.SetRate(0) })
	p.run("click Update", time.Minute, chromedp.Click("#update"))
	p.run("confirm", time.Minute, chromedp.WaitVisible("#confirm-yes"), chromedp.Click("#confirm-yes"))
	p.waitText("the pull's progress", "#txn-text", "pull", 30*time.Second)
	ref := e.status().Transaction
	if ref == nil {
		t.Fatal("hostd runs no transaction while the page shows the pull")
	}

	var addr string
	waitUntil(t, 10*time.Second, "ActiveTransactionPath to name the page's update", func() bool {
		addr, _ = sysroot("ActiveTransactionPath").Value().(string)
		return addr != ""
	})
	if at, _ := sysroot("ActiveTransaction").Value().([]any); len(at) != 3 || at[0] != "upgrade" || at[2] != string(ref.Path) {
		t.Fatalf("ActiveTransaction %v, want (upgrade, \"\", %s)", at, ref.Path)
	}
	peer, err := godbus.Dial(addr)
	if err != nil {
		t.Fatalf("connect to the transaction's address %s: %v", addr, err)
	}
	defer peer.Close()
	if err := peer.Auth([]godbus.Auth{godbus.AuthExternal("0")}); err != nil {
		t.Fatalf("authenticate on %s: %v", addr, err)
	}
	sigs := make(chan *godbus.Signal, 1024)
	peer.Signal(sigs)
	txn := peer.Object("", "/")
	var title string
	if err := txn.Call("org.freedesktop.DBus.Properties.Get", 0, rpmostree.TransactionInterface, "Title").Store(&title); err != nil || !strings.Contains(title, "upgrade") {
		t.Fatalf("Title: %q %v", title, err)
	}
	// The page started it: Start there says so, as for another client's.
	var started bool
	if err := txn.Call(rpmostree.TransactionInterface+".Start", 0).Store(&started); err != nil || started {
		t.Fatalf("Start on the socket of the page's update: %v %v, want false", started, err)
	}
	if err := txn.Call(rpmostree.TransactionInterface+".Cancel", 0).Err; err != nil {
		t.Fatalf("Cancel on %s: %v", addr, err)
	}
	var heard []string
	deadline := time.After(30 * time.Second)
	for fin := false; !fin; {
		select {
		case s := <-sigs:
			name := strings.TrimPrefix(s.Name, rpmostree.TransactionInterface+".")
			heard = append(heard, name)
			if name == "Finished" {
				fin = true
				if ok, _ := s.Body[0].(bool); ok || len(s.Body) != 2 {
					t.Fatalf("Finished %v after Cancel, want (false, why)", s.Body)
				}
				t.Logf("the socket heard %v; Finished says %q", heard, s.Body[1])
			}
		case <-deadline:
			t.Fatalf("no Finished on %s 30 s after Cancel; heard %v", addr, heard)
		}
	}
	notice := p.waitText("the cancelled update", "#notice", "The update was cancelled.", 30*time.Second)
	if !strings.Contains(notice, "Nothing changed: 1 is still the default generation.") {
		t.Errorf("the notice does not say the default did not change: %q", notice)
	}
	st := e.status()
	if st.Transaction != nil || st.Deployments[0].ID != v1.ID || !slices.Equal(versions(st), []string{"1"}) {
		t.Fatalf("after the cancel: transaction %+v, deployments %v (default %s, was %s)", st.Transaction, versions(st), st.Deployments[0].ID, v1.ID)
	}
	if rec := e.lastHistory(); rec.Kind != "upgrade" || rec.State != "cancelled" {
		t.Fatalf("history records the update as %s %s (%s), want upgrade cancelled", rec.Kind, rec.State, rec.Error)
	}
	waitUntil(t, 10*time.Second, "ActiveTransactionPath to be empty", func() bool { return sysroot("ActiveTransactionPath").Value() == "" })
}
