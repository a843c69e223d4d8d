package e2e

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/dbus/rpmostree"
	"github.com/hostctl/hostctl/tests/fixture"
)

// sigRecorder keeps the body signatures of the messages a connection
// receives, as the wire has them: godbus decodes a struct as []any, whose
// signature reads "av", so the replies' and signals' own are read from the
// message headers (WithIncomingInterceptor) instead. Property values and
// dictionary values are variants, which keep their wire signature as long
// as they are read from the body as they came (not through godbus.Store,
// which makes them anew from the decoded values).
type sigRecorder struct {
	mu        sync.Mutex
	lastReply string
	// signals, when not nil, gets every signal with its signature.
	signals chan recordedSignal
}

// recordedSignal is one signal as it came.
type recordedSignal struct {
	path, member, sig string
	body              []any
}

func (r *sigRecorder) intercept(msg *godbus.Message) {
	sig := ""
	if v, ok := msg.Headers[godbus.FieldSignature]; ok {
		sig = v.Value().(godbus.Signature).String()
	}
	switch msg.Type {
	case godbus.TypeMethodReply:
		r.mu.Lock()
		r.lastReply = sig
		r.mu.Unlock()
	case godbus.TypeSignal:
		if r.signals != nil {
			path, _ := msg.Headers[godbus.FieldPath].Value().(godbus.ObjectPath)
			member, _ := msg.Headers[godbus.FieldMember].Value().(string)
			r.signals <- recordedSignal{string(path), member, sig, msg.Body}
		}
	}
}

// reply is the signature of the last method reply received.
func (r *sigRecorder) reply() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastReply
}

// recConn is a bus connection whose replies' signatures are recorded.
type recConn struct {
	*godbus.Conn
	rec *sigRecorder
}

// connectRecorded connects to the bus at addr as root, recording.
func connectRecorded(t *testing.T, addr string) recConn {
	t.Helper()
	rec := &sigRecorder{}
	conn, err := godbus.Connect(addr, godbus.WithIncomingInterceptor(rec.intercept))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return recConn{conn, rec}
}

// rpmDeploymentKeys are the keys of rpm-ostree's deployment dictionaries
// and their types (rpm-ostree's rpmostreed-deployment-utils.cxx and
// rust/src/daemon.rs build them), those every deployment has.
var rpmDeploymentKeys = map[string]string{"id": "s", "osname": "s", "serial": "i", "checksum": "s", "version": "s", "timestamp": "t",
	"origin": "s", "booted": "b", "staged": "b", "pinned": "b", "unlocked": "s", "packages": "as", "requested-packages": "as",
	"requested-local-packages": "as", "requested-base-removals": "as", "requested-base-local-replacements": "as",
	"base-removals": "av", "base-local-replacements": "a(vv)", "regenerate-initramfs": "b", "base-commit-meta": "a{sv}", "gpg-enabled": "b"}

// rpmLayeredKeys are the keys a layered deployment has besides.
var rpmLayeredKeys = map[string]string{"base-checksum": "s", "base-version": "s", "base-timestamp": "t"}

// checkDeploymentDict checks d's keys and their types as the wire has
// them; layered says whether d layers packages on its base.
func checkDeploymentDict(t *testing.T, d map[string]godbus.Variant, layered bool) {
	t.Helper()
	for k, sig := range rpmDeploymentKeys {
		if got := d[k].Signature().String(); got != sig {
			t.Errorf("deployment %v key %s: %q, want %s", d["id"], k, got, sig)
		}
	}
	for k, sig := range rpmLayeredKeys {
		if v, ok := d[k]; ok != layered || ok && v.Signature().String() != sig {
			t.Errorf("deployment %v (layered %v) key %s: %v, want %s when layered only", d["id"], layered, k, v, sig)
		}
	}
	if _, ok := d["signatures"]; ok {
		t.Errorf("deployment %v has signatures: hostd does not produce libostree's", d["id"])
	}
}

// rpmContract is the checked-in rpm-ostree interface, by interface name.
type rpmContract map[string]introspect.Interface

func loadRPMContract(t *testing.T) rpmContract {
	t.Helper()
	var n introspect.Node
	if err := xml.Unmarshal([]byte(rpmostree.XML), &n); err != nil {
		t.Fatalf("parse org.projectatomic.rpmostree1.xml: %v", err)
	}
	c := rpmContract{}
	for _, i := range n.Interfaces {
		c[i.Name] = i
	}
	return c
}

// outSig is the signature of a method's out arguments in the contract.
func (c rpmContract) outSig(t *testing.T, iface, method string) string {
	t.Helper()
	for _, m := range c[iface].Methods {
		if m.Name == method {
			var s string
			for _, a := range m.Args {
				if a.Direction == "out" {
					s += a.Type
				}
			}
			return s
		}
	}
	t.Fatalf("no method %s.%s in the contract", iface, method)
	return ""
}

// checkProps checks that props has every property of iface with the type
// the contract gives, and nothing else.
func (c rpmContract) checkProps(t *testing.T, iface string, props map[string]godbus.Variant) {
	t.Helper()
	want := map[string]string{}
	for _, p := range c[iface].Properties {
		want[p.Name] = p.Type
	}
	for name, typ := range want {
		v, ok := props[name]
		if !ok {
			t.Errorf("%s: property %s missing", iface, name)
			continue
		}
		if got := v.Signature().String(); got != typ {
			t.Errorf("%s.%s has type %s, the contract says %s", iface, name, got, typ)
		}
	}
	for name := range props {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: property %s is not in the contract", iface, name)
		}
	}
}

// call calls an rpm-ostree method and checks the reply's signature, as
// the message carries it, against the contract.
func (c rpmContract) call(t *testing.T, conn recConn, path godbus.ObjectPath, iface, method string, args ...any) []any {
	t.Helper()
	call := conn.Object(rpmostree.BusName, path).Call(iface+"."+method, 0, args...)
	if call.Err != nil {
		t.Fatalf("%s(%v): %v", method, args, call.Err)
	}
	if got, want := conn.rec.reply(), c.outSig(t, iface, method); got != want {
		t.Fatalf("%s replied %s, the contract says %s", method, got, want)
	}
	return call.Body
}

// peerSignal is one signal heard on a transaction socket.
type peerSignal struct {
	name string
	body []any
}

// runPeer connects to a transaction's socket as rpm-ostree's clients do (no
// bus, SASL EXTERNAL), calls Start and returns the signals up to Finished,
// each checked against the contract.
func (c rpmContract) runPeer(t *testing.T, addr string) []peerSignal {
	t.Helper()
	got, finished := c.peerSignals(t, addr)
	if !finished {
		t.Fatalf("the connection to %s closed before Finished; heard %v", addr, got)
	}
	return got
}

// peerSignals is runPeer up to Finished or until hostd closes the
// connection (finished false then), as a reboot does.
func (c rpmContract) peerSignals(t *testing.T, addr string) (got []peerSignal, finished bool) {
	t.Helper()
	if !strings.HasPrefix(addr, "unix:") {
		t.Fatalf("transaction address %q is not a unix socket address", addr)
	}
	rec := &sigRecorder{signals: make(chan recordedSignal, 4096)}
	conn, err := godbus.Dial(addr, godbus.WithIncomingInterceptor(rec.intercept))
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	defer conn.Close()
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal("0")}); err != nil {
		t.Fatalf("authenticate on %s: %v", addr, err)
	}
	want := map[string]string{}
	for _, s := range c[rpmostree.TransactionInterface].Signals {
		var sig string
		for _, a := range s.Args {
			sig += a.Type
		}
		want[s.Name] = sig
	}
	var title string
	if err := conn.Object("", "/").Call("org.freedesktop.DBus.Properties.Get", 0, rpmostree.TransactionInterface, "Title").Store(&title); err != nil || title == "" {
		t.Fatalf("Title: %q %v", title, err)
	}
	var started bool
	if err := conn.Object("", "/").Call(rpmostree.TransactionInterface+".Start", 0).Store(&started); err != nil || !started {
		t.Fatalf("Start: %v %v", started, err)
	}
	take := func(s recordedSignal) bool {
		name := s.member
		sig, ok := want[name]
		if !ok || s.path != "/" {
			t.Fatalf("signal %s at %s is not in the contract", s.member, s.path)
		}
		if s.sig != sig {
			t.Fatalf("signal %s has %s, the contract says %s", name, s.sig, sig)
		}
		got = append(got, peerSignal{name, s.body})
		return name == "Finished"
	}
	deadline := time.After(3 * time.Minute) // liveness bound only
	for {
		select {
		case s := <-rec.signals:
			if take(s) {
				return got, true
			}
		case <-conn.Context().Done():
			for {
				select {
				case s := <-rec.signals:
					if take(s) {
						return got, true
					}
				default:
					return got, false
				}
			}
		case <-deadline:
			t.Fatalf("no Finished on %s; heard %v", addr, got)
		}
	}
}

func finishedOK(t *testing.T, what string, sigs []peerSignal) {
	t.Helper()
	last := sigs[len(sigs)-1]
	if ok := last.body[0].(bool); !ok {
		t.Fatalf("%s finished with failure: %v (signals %v)", what, last.body[1], sigs)
	}
	seen := map[string]bool{}
	for _, s := range sigs {
		seen[s.name] = true
	}
	if !seen["TaskBegin"] || !seen["TaskEnd"] {
		t.Fatalf("%s: no TaskBegin/TaskEnd among %v", what, sigs)
	}
}

// diffLines turns a(sua{sv}) into "TYPE NAME PREV NEW" lines, reading the
// body as it came so that PreviousPackage and NewPackage keep their wire
// signature, which must be (sss).
func diffLines(t *testing.T, v any) []string {
	t.Helper()
	entries, ok := v.([][]any)
	if !ok {
		t.Fatalf("a(sua{sv}) decoded as %T", v)
	}
	var out []string
	for _, e := range entries {
		if len(e) != 3 {
			t.Fatalf("diff entry %v is not (sua{sv})", e)
		}
		name, okName := e[0].(string)
		typ, okType := e[1].(uint32)
		details, okDetails := e[2].(map[string]godbus.Variant)
		if !okName || !okType || !okDetails || typ > 3 {
			t.Fatalf("diff entry %v is not (sua{sv}) with a type from 0 to 3", e)
		}
		line := []string{[]string{"added", "removed", "upgraded", "downgraded"}[typ], name}
		for _, k := range []string{"PreviousPackage", "NewPackage"} {
			if d, ok := details[k]; ok {
				if d.Signature().String() != "(sss)" {
					t.Fatalf("%s of %s is %s, want (sss)", k, name, d.Signature())
				}
				var p struct{ Name, EVR, Arch string }
				if err := d.Store(&p); err != nil {
					t.Fatal(err)
				}
				line = append(line, k+"="+p.Name+"-"+p.EVR+"."+p.Arch)
			}
		}
		out = append(out, strings.Join(line, " "))
	}
	return out
}

// TestRPMOstreeAPI replays cockpit-ostree's calls against hostd
// -rpm-ostree-compat on a private bus and checks every reply's type against
// the checked-in interface and the host's state after each change.
func TestRPMOstreeAPI(t *testing.T) {
	e := newEnv(t)
	e.hostd.Stop()
	e.startHostd("--rpm-ostree-compat")
	c := loadRPMContract(t)
	conn := connectRecorded(t, e.bus.Address)
	waitUntil(t, 30*time.Second, "hostd to own "+rpmostree.BusName, func() bool {
		var has bool
		return conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, rpmostree.BusName).Store(&has) == nil && has
	})
	v1, v2 := e.os.Commit("1"), e.os.Commit("2")
	osPath := godbus.ObjectPath("/org/projectatomic/rpmostree1/" + strings.ReplaceAll(fixture.OSName, "-", "_"))

	var xmlText string
	if err := conn.Object(rpmostree.BusName, rpmostree.SysrootPath).Call("org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xmlText); err != nil || xmlText != rpmostree.XML {
		t.Fatalf("introspection differs from dbus/rpmostree/org.projectatomic.rpmostree1.xml (%v)", err)
	}

	// cockpit-ostree: RegisterClient, GetManagedObjects, ReloadConfig.
	c.call(t, conn, rpmostree.SysrootPath, rpmostree.SysrootInterface, "RegisterClient", map[string]godbus.Variant{"id": godbus.MakeVariant("cockpit")})
	managed := func() map[godbus.ObjectPath]map[string]map[string]godbus.Variant {
		t.Helper()
		call := conn.Object(rpmostree.BusName, rpmostree.BasePath).Call("org.freedesktop.DBus.ObjectManager.GetManagedObjects", 0)
		if call.Err != nil {
			t.Fatal(call.Err)
		}
		if sig := conn.rec.reply(); sig != "a{oa{sa{sv}}}" {
			t.Fatalf("GetManagedObjects replied %s", sig)
		}
		objs, ok := call.Body[0].(map[godbus.ObjectPath]map[string]map[string]godbus.Variant)
		if !ok {
			t.Fatalf("GetManagedObjects decoded as %T", call.Body[0])
		}
		return objs
	}
	objs := managed()
	if len(objs) != 2 || objs[rpmostree.SysrootPath] == nil || objs[osPath] == nil {
		t.Fatalf("managed objects: %v", objs)
	}
	c.checkProps(t, rpmostree.SysrootInterface, objs[rpmostree.SysrootPath][rpmostree.SysrootInterface])
	c.checkProps(t, rpmostree.OSInterface, objs[osPath][rpmostree.OSInterface])
	sys, osp := objs[rpmostree.SysrootPath][rpmostree.SysrootInterface], objs[osPath][rpmostree.OSInterface]
	if sys["Booted"].Value() != osPath || sys["Path"].Value() != e.sysroot || osp["Name"].Value() != fixture.OSName || sys["AutomaticUpdatePolicy"].Value() != "none" {
		t.Fatalf("Sysroot %v OS %v", sys, osp)
	}
	deps := sys["Deployments"].Value().([]map[string]godbus.Variant)
	if len(deps) != 1 || deps[0]["checksum"].Value() != v1 || deps[0]["id"].Value() != fixture.OSName+"-"+v1+".0" ||
		deps[0]["serial"].Signature().String() != "i" || deps[0]["timestamp"].Signature().String() != "t" ||
		deps[0]["version"].Value() != "1" || deps[0]["origin"].Value() != refspec || deps[0]["booted"].Value() != false {
		t.Fatalf("Deployments: %v", deps)
	}
	checkDeploymentDict(t, deps[0], false)
	if meta := deps[0]["base-commit-meta"].Value().(map[string]godbus.Variant); meta["version"].Value() != "1" {
		t.Errorf("base-commit-meta of version 1: %v", meta)
	}
	if deps[0]["gpg-enabled"].Value() != false {
		t.Errorf("gpg-enabled %v: the fixture's remote does not verify signatures", deps[0]["gpg-enabled"])
	}
	if def := osp["DefaultDeployment"].Value().(map[string]godbus.Variant); def["checksum"].Value() != v1 {
		t.Fatalf("DefaultDeployment %v", def)
	}
	if len(osp["BootedDeployment"].Value().(map[string]godbus.Variant)) != 0 || len(osp["RollbackDeployment"].Value().(map[string]godbus.Variant)) != 0 {
		t.Fatalf("BootedDeployment/RollbackDeployment of an unbooted single-deployment sysroot: %v", osp)
	}
	c.call(t, conn, rpmostree.SysrootPath, rpmostree.SysrootInterface, "ReloadConfig")
	if p := c.call(t, conn, rpmostree.SysrootPath, rpmostree.SysrootInterface, "GetOS", fixture.OSName); p[0] != osPath {
		t.Fatalf("GetOS: %v", p)
	}
	id1 := fixture.OSName + "-" + v1 + ".0"
	if d := c.call(t, conn, osPath, rpmostree.OSInterface, "GetDeploymentsRpmDiff", id1, id1); len(diffLines(t, d[0])) != 0 {
		t.Fatalf("a deployment against itself: %v", d)
	}
	if r := c.call(t, conn, osPath, rpmostree.OSInterface, "AutomaticUpdateTrigger", map[string]godbus.Variant{}); r[0] != false || r[1] != "" {
		t.Fatalf("AutomaticUpdateTrigger: %v", r)
	}

	// A rebase preview: DownloadRebaseRpmDiff over the peer socket, then
	// GetCachedRebaseRpmDiff; nothing is deployed.
	testingRef := remote + ":" + fixture.TestingRef
	if r := c.call(t, conn, osPath, rpmostree.OSInterface, "GetCachedRebaseRpmDiff", testingRef, []string{}); len(diffLines(t, r[0])) != 0 {
		t.Fatalf("GetCachedRebaseRpmDiff before any download: %v", r)
	}
	addr := c.call(t, conn, osPath, rpmostree.OSInterface, "DownloadRebaseRpmDiff", testingRef, []string{})[0].(string)
	finishedOK(t, "DownloadRebaseRpmDiff", c.runPeer(t, addr))
	if v := e.ostreeStatus(); len(v) != 1 || v[0] != v1 {
		t.Fatalf("DownloadRebaseRpmDiff deployed something: %v", v)
	}
	r := c.call(t, conn, osPath, rpmostree.OSInterface, "GetCachedRebaseRpmDiff", testingRef, []string{})
	v10 := e.os.Commit("10")
	if details := r[1].(map[string]godbus.Variant); details["checksum"].Value() != v10 || details["version"].Value() != "10" {
		t.Fatalf("GetCachedRebaseRpmDiff details: %v, want checksum %s version 10", details, v10)
	}
	if got, want := len(diffLines(t, r[0])), len(rpmQAChanges(e.rpmQAOfCommit(v1), e.rpmQAOfCommit(v10))); got == 0 || got != want {
		t.Fatalf("GetCachedRebaseRpmDiff has %d entries, rpm -qa of the two commits differs in %d", got, want)
	}

	// An update appears; DownloadUpdateRpmDiff over the peer socket.
	e.publish("2")
	addr = c.call(t, conn, osPath, rpmostree.OSInterface, "DownloadUpdateRpmDiff")[0].(string)
	finishedOK(t, "DownloadUpdateRpmDiff", c.runPeer(t, addr))
	if v := e.ostreeStatus(); len(v) != 1 || v[0] != v1 {
		t.Fatalf("DownloadUpdateRpmDiff deployed something: %v", v)
	}
	osp = managed()[osPath][rpmostree.OSInterface]
	cached := osp["CachedUpdate"].Value().(map[string]godbus.Variant)
	if cached["checksum"].Value() != v2 || cached["version"].Value() != "2" || cached["origin"].Value() != refspec || cached["ref-has-new-commit"].Value() != true || osp["HasCachedUpdateRpmDiff"].Value() != true {
		t.Fatalf("CachedUpdate after DownloadUpdateRpmDiff: %v (HasCachedUpdateRpmDiff %v)", cached, osp["HasCachedUpdateRpmDiff"])
	}
	r = c.call(t, conn, osPath, rpmostree.OSInterface, "GetCachedUpdateRpmDiff", "")
	cachedDiff := diffLines(t, r[0])
	if details := r[1].(map[string]godbus.Variant); details["checksum"].Value() != v2 || details["version"].Value() != "2" {
		t.Fatalf("GetCachedUpdateRpmDiff details: %v", details)
	}
	// The diff is what rpm says of the two trees (rpmQA keys: NAME.ARCH).
	from, to := e.rpmQAOfCommit(v1), e.rpmQAOfCommit(v2)
	var want []string
	for name, evra := range to {
		if old, ok := from[name]; !ok {
			want = append(want, "added "+name)
		} else if old != evra {
			want = append(want, "changed "+name)
		}
	}
	for name := range from {
		if _, ok := to[name]; !ok {
			want = append(want, "removed "+name)
		}
	}
	if len(want) == 0 || len(cachedDiff) != len(want) {
		t.Fatalf("GetCachedUpdateRpmDiff: %v; rpm -qa differs in %v", cachedDiff, want)
	}
	for _, l := range cachedDiff {
		f := strings.Fields(l)
		nevra := f[len(f)-1]
		name := f[1] + nevra[strings.LastIndex(nevra, "."):]
		switch f[0] {
		case "added":
			if _, ok := from[name]; ok || len(f) != 3 || !strings.HasPrefix(f[2], "NewPackage=") {
				t.Fatalf("diff line %q", l)
			}
		case "removed":
			if _, ok := to[name]; ok || len(f) != 3 || !strings.HasPrefix(f[2], "PreviousPackage=") {
				t.Fatalf("diff line %q", l)
			}
		default:
			if from[name] == to[name] || len(f) != 4 {
				t.Fatalf("diff line %q", l)
			}
		}
	}

	// Unprivileged callers read, and are refused every change.
	nobody := newRawClient(t, e.bus.Address, 65534)
	if err := nobody.conn.Object(rpmostree.BusName, rpmostree.BasePath).Call("org.freedesktop.DBus.ObjectManager.GetManagedObjects", 0).Err; err != nil {
		t.Fatalf("GetManagedObjects as nobody: %v", err)
	}
	noOpts := map[string]godbus.Variant{}
	for _, tc := range []struct {
		method string
		args   []any
	}{
		{"Deploy", []any{v2, noOpts}}, {"Upgrade", []any{noOpts}}, {"Rollback", []any{noOpts}}, {"DownloadUpdateRpmDiff", nil},
		{"Rebase", []any{noOpts, refspec, []string{}}}, {"PkgChange", []any{noOpts, []string{"hello-layer"}, []string{}}},
		{"Cleanup", []any{[]string{"rollback-deploy"}}}, {"RefreshMd", []any{noOpts}},
		{"KernelArgs", []any{"", []string{"quiet"}, []string{}, []string{}, noOpts}},
		{"UpdateDeployment", []any{map[string]godbus.Variant{"set-revision": godbus.MakeVariant(v2)}, noOpts}},
		{"DownloadRebaseRpmDiff", []any{refspec, []string{}}},
		{"FinalizeDeployment", []any{map[string]godbus.Variant{"allow-missing-checksum": godbus.MakeVariant(true)}}},
	} {
		err := nobody.conn.Object(rpmostree.BusName, osPath).Call(rpmostree.OSInterface+"."+tc.method, 0, tc.args...).Err
		if !dbus.IsError(err, dbus.ErrAccessDenied) {
			t.Fatalf("%s as nobody: %v, want %s", tc.method, err, dbus.ErrAccessDenied)
		}
	}

	// Deploy(checksum, {reboot: false}).
	addr = c.call(t, conn, osPath, rpmostree.OSInterface, "Deploy", v2, map[string]godbus.Variant{"reboot": godbus.MakeVariant(false)})[0].(string)
	// While it is pending, the Sysroot names it, and a peer of another uid is refused.
	sys = managed()[rpmostree.SysrootPath][rpmostree.SysrootInterface]
	if sys["ActiveTransactionPath"].Value() != addr || sys["ActiveTransaction"].Value().([]any)[0] != "Deploy" {
		t.Fatalf("active transaction %v %v, want %s", sys["ActiveTransaction"], sys["ActiveTransactionPath"], addr)
	}
	if pc, err := dialAs(addr, 65534); err == nil {
		if err := pc.Auth([]godbus.Auth{godbus.AuthExternal("65534")}); err == nil {
			t.Fatal("uid 65534 authenticated on root's transaction socket")
		}
		pc.Close()
	}
	sigs := c.runPeer(t, addr)
	finishedOK(t, "Deploy", sigs)
	// The pull reported its progress: DownloadProgress, whose six tuples
	// runPeer checked against the contract as the wire has them.
	progress := false
	for _, s := range sigs {
		progress = progress || s.name == "DownloadProgress"
	}
	if !progress {
		t.Fatalf("Deploy of a commit to pull sent no DownloadProgress: %v", sigs)
	}
	if v := e.ostreeStatus(); len(v) != 2 || v[0] != v2 || v[1] != v1 {
		t.Fatalf("after Deploy, ostree admin status: %v", v)
	}
	entries, _ := filepath.Glob(filepath.Join(e.sysroot, "boot/loader/entries/*.conf"))
	if len(entries) != 2 {
		t.Fatalf("BLS entries after Deploy: %v", entries)
	}
	waitUntil(t, 10*time.Second, "the Sysroot to show two deployments", func() bool {
		return len(managed()[rpmostree.SysrootPath][rpmostree.SysrootInterface]["Deployments"].Value().([]map[string]godbus.Variant)) == 2
	})
	osp = managed()[osPath][rpmostree.OSInterface]
	if osp["DefaultDeployment"].Value().(map[string]godbus.Variant)["checksum"].Value() != v2 ||
		osp["RollbackDeployment"].Value().(map[string]godbus.Variant)["checksum"].Value() != v1 {
		t.Fatalf("after Deploy: %v", osp)
	}
	if len(osp["CachedUpdate"].Value().(map[string]godbus.Variant)) != 0 || osp["HasCachedUpdateRpmDiff"].Value() != false {
		t.Fatalf("CachedUpdate after deploying it: %v", osp["CachedUpdate"])
	}
	// The deployments' diff is the cached update's diff.
	id2 := fixture.OSName + "-" + v2 + ".0"
	if d := diffLines(t, c.call(t, conn, osPath, rpmostree.OSInterface, "GetDeploymentsRpmDiff", id1, id2)[0]); strings.Join(d, "\n") != strings.Join(cachedDiff, "\n") {
		t.Fatalf("GetDeploymentsRpmDiff %s %s:\n%s\nGetCachedUpdateRpmDiff said:\n%s", id1, id2, strings.Join(d, "\n"), strings.Join(cachedDiff, "\n"))
	}

	// Rollback.
	addr = c.call(t, conn, osPath, rpmostree.OSInterface, "Rollback", noOpts)[0].(string)
	finishedOK(t, "Rollback", c.runPeer(t, addr))
	if v := e.ostreeStatus(); len(v) != 2 || v[0] != v1 || v[1] != v2 {
		t.Fatalf("after Rollback, ostree admin status: %v", v)
	}
	waitUntil(t, 10*time.Second, "DefaultDeployment to be version 1 again", func() bool {
		return managed()[osPath][rpmostree.OSInterface]["DefaultDeployment"].Value().(map[string]godbus.Variant)["checksum"].Value() == v1
	})
	st := e.status()
	if len(st.Deployments) != 2 || st.Deployments[0].Checksum != v1 {
		t.Fatalf("hostctl status after Rollback: %v", versions(st))
	}
	sys = managed()[rpmostree.SysrootPath][rpmostree.SysrootInterface]
	if sys["ActiveTransactionPath"].Value() != "" {
		t.Fatalf("ActiveTransactionPath after the end: %v", sys["ActiveTransactionPath"])
	}
}

// rpmQAChanges lists the packages (NAME.ARCH) added, removed or changed from
// one rpm -qa listing to another.
func rpmQAChanges(from, to map[string]string) []string {
	var out []string
	for name, evra := range to {
		if old, ok := from[name]; !ok || old != evra {
			out = append(out, name)
		}
	}
	for name := range from {
		if _, ok := to[name]; !ok {
			out = append(out, name)
		}
	}
	return out
}

// rpmClient is an rpm-ostree client of one env: the recorded connection,
// the contract and the OS object.
type rpmClient struct {
	t      *testing.T
	e      *env
	c      rpmContract
	conn   recConn
	osPath godbus.ObjectPath
}

// newRPMClient restarts e's hostd with flags and connects once it owns
// rpm-ostree's name.
func newRPMClient(t *testing.T, e *env, flags ...string) *rpmClient {
	t.Helper()
	e.hostd.Stop()
	e.startHostd(flags...)
	conn := connectRecorded(t, e.bus.Address)
	waitUntil(t, 30*time.Second, "hostd to own "+rpmostree.BusName, func() bool {
		var has bool
		return conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, rpmostree.BusName).Store(&has) == nil && has
	})
	return &rpmClient{t: t, e: e, c: loadRPMContract(t), conn: conn,
		osPath: godbus.ObjectPath("/org/projectatomic/rpmostree1/" + strings.ReplaceAll(fixture.OSName, "-", "_"))}
}

// call calls an OS method, checking the reply against the contract.
func (r *rpmClient) call(method string, args ...any) []any {
	r.t.Helper()
	return r.c.call(r.t, r.conn, r.osPath, rpmostree.OSInterface, method, args...)
}

// run calls a changing OS method and runs its transaction to Finished.
func (r *rpmClient) run(method string, args ...any) []peerSignal {
	r.t.Helper()
	return r.c.runPeer(r.t, r.call(method, args...)[0].(string))
}

// refused calls an OS method and wants it refused with InvalidArgument
// naming what.
func (r *rpmClient) refused(what string, method string, args ...any) {
	r.t.Helper()
	err := r.conn.Object(rpmostree.BusName, r.osPath).Call(rpmostree.OSInterface+"."+method, 0, args...).Err
	if !dbus.IsError(err, dbus.ErrInvalidArgument) || !strings.Contains(err.Error(), what) {
		r.t.Fatalf("%s(%v): %v, want %s naming %q", method, args, err, dbus.ErrInvalidArgument, what)
	}
}

// defaultDict is the OS object's DefaultDeployment, read after a Reload.
func (r *rpmClient) defaultDict() map[string]godbus.Variant {
	r.t.Helper()
	r.c.call(r.t, r.conn, rpmostree.SysrootPath, rpmostree.SysrootInterface, "Reload")
	call := r.conn.Object(rpmostree.BusName, r.osPath).Call("org.freedesktop.DBus.Properties.Get", 0, rpmostree.OSInterface, "DefaultDeployment")
	if call.Err != nil {
		r.t.Fatal(call.Err)
	}
	v := call.Body[0].(godbus.Variant)
	if v.Signature().String() != "a{sv}" {
		r.t.Fatalf("DefaultDeployment is %s", v.Signature())
	}
	return v.Value().(map[string]godbus.Variant)
}

// finishedFailing wants the transaction to have failed with a message
// containing each of want, and returns the message.
func finishedFailing(t *testing.T, what string, sigs []peerSignal, want ...string) string {
	t.Helper()
	last := sigs[len(sigs)-1]
	ok, msg := last.body[0].(bool), last.body[1].(string)
	if ok {
		t.Fatalf("%s succeeded, want a failure saying %q (signals %v)", what, want, sigs)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("%s failed with %q, want it to say %q", what, msg, w)
		}
	}
	return msg
}

// peerTitle reads a transaction's Title before anyone starts it.
func peerTitle(t *testing.T, addr string) string {
	t.Helper()
	conn, err := godbus.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal("0")}); err != nil {
		t.Fatal(err)
	}
	var title string
	if err := conn.Object("", "/").Call("org.freedesktop.DBus.Properties.Get", 0, rpmostree.TransactionInterface, "Title").Store(&title); err != nil {
		t.Fatal(err)
	}
	return title
}

// variantNEVRA reads one of rpm-ostree's package variants, (sstsss).
func variantNEVRA(t *testing.T, v godbus.Variant) []any {
	t.Helper()
	if v.Signature().String() != "(sstsss)" {
		t.Fatalf("package variant %v is %s, want (sstsss)", v, v.Signature())
	}
	return v.Value().([]any)
}

// TestRPMOstreeChanges: the changes GNOME Software, cockpit-ostree and
// `rpm-ostree` make through UpdateDeployment, Rebase, Rollback, Deploy and
// KernelArgs, with the options they send: what hostd can do is done, what
// it cannot is refused naming the option; the deployment dictionaries of
// layered deployments; reboot on a sysroot that is not booted.
func TestRPMOstreeChanges(t *testing.T) {
	e := newEnv(t)
	r := newRPMClient(t, e, "--rpm-ostree-compat")
	v1, v2, v10 := e.os.Commit("1"), e.os.Commit("2"), e.os.Commit("10")
	no := godbus.MakeVariant(false)
	testingRef := remote + ":" + fixture.TestingRef

	// What hostd cannot do is refused at the call, naming the option;
	// nothing starts.
	r.refused("download-only", "UpdateDeployment", map[string]godbus.Variant{"set-revision": godbus.MakeVariant(v2)}, map[string]godbus.Variant{"download-only": godbus.MakeVariant(true)})
	r.refused("cache-only", "UpdateDeployment", map[string]godbus.Variant{"install-packages": godbus.MakeVariant([]string{"hello-layer"})}, map[string]godbus.Variant{"cache-only": godbus.MakeVariant(true)})
	r.refused("no-pull-base", "UpdateDeployment", map[string]godbus.Variant{}, map[string]godbus.Variant{"no-pull-base": godbus.MakeVariant(true)})
	r.refused("lock-finalization", "KernelArgs", "", []string{"quiet"}, []string{}, []string{}, map[string]godbus.Variant{"lock-finalization": godbus.MakeVariant(true)})
	r.refused("reboot", "Deploy", v2, map[string]godbus.Variant{"reboot": godbus.MakeVariant("yes")})
	r.refused("apply-live", "UpdateDeployment", map[string]godbus.Variant{}, map[string]godbus.Variant{"apply-live": godbus.MakeVariant(true)})
	r.refused("rollback-deployment", "Cleanup", []string{"rollback-deployment"})
	if v := e.ostreeStatus(); len(v) != 1 || v[0] != v1 {
		t.Fatalf("a refused call changed the deployments: %v", v)
	}

	// `rpm-ostree override remove` sends UpdateDeployment with every
	// deployment option, false unless asked for: all accepted.
	cmdline := "rpm-ostree override remove hostos-tools"
	addr := r.call("UpdateDeployment", map[string]godbus.Variant{"override-remove-packages": godbus.MakeVariant([]string{"hostos-tools"})},
		map[string]godbus.Variant{"reboot": no, "allow-downgrade": no, "cache-only": no, "download-only": no, "dry-run": no, "no-pull-base": godbus.MakeVariant(true),
			"skip-purge": no, "no-initramfs": no, "idempotent-layering": no, "allow-inactive": no, "allow-inactive-requests": no,
			"lock-finalization": no, "initiating-command-line": godbus.MakeVariant(cmdline)})[0].(string)
	if title := peerTitle(t, addr); title != cmdline {
		t.Fatalf("transaction title %q, want the initiating command line %q", title, cmdline)
	}
	finishedOK(t, "UpdateDeployment override-remove-packages", r.c.runPeer(t, addr))
	def := r.defaultDict()
	checkDeploymentDict(t, def, true)
	if def["base-checksum"].Value() != v1 || def["base-version"].Value() != "1" || def["base-timestamp"].Value().(uint64) == 0 || def["checksum"].Value() == v1 {
		t.Fatalf("layered deployment: %v", def)
	}
	removals := def["base-removals"].Value().([]godbus.Variant)
	if len(removals) != 1 {
		t.Fatalf("base-removals %v, want hostos-tools", removals)
	}
	if n := variantNEVRA(t, removals[0]); n[1] != "hostos-tools" || !strings.HasPrefix(n[0].(string), "hostos-tools-") || n[5] != "noarch" {
		t.Fatalf("base-removals %v, want hostos-tools", n)
	}
	if rq := def["requested-base-removals"].Value().([]string); len(rq) != 1 || rq[0] != "hostos-tools" {
		t.Fatalf("requested-base-removals %v", rq)
	}
	if meta := def["base-commit-meta"].Value().(map[string]godbus.Variant); meta["version"].Value() != "1" {
		t.Fatalf("base-commit-meta %v, want version 1's", meta)
	}

	// no-overrides alone is a reset; cache-only is what a reset does anyway.
	finishedOK(t, "UpdateDeployment no-overrides", r.run("UpdateDeployment", map[string]godbus.Variant{},
		map[string]godbus.Variant{"no-overrides": godbus.MakeVariant(true), "cache-only": godbus.MakeVariant(true)}))
	def = r.defaultDict()
	checkDeploymentDict(t, def, false)
	if def["checksum"].Value() != v1 || len(def["base-removals"].Value().([]godbus.Variant)) != 0 {
		t.Fatalf("after the reset: %v", def)
	}

	// A local RPM replacing a base package (hostctl override replace FILE):
	// base-local-replacements has (new, old).
	srv, localRPM := e.replaceRPMs()
	e.setRepoFile("replace", fixture.YumRepoFile("replace", srv.URL()))
	e.mustHostctl("override", "replace", localRPM)
	def = r.defaultDict()
	checkDeploymentDict(t, def, true)
	repl := def["base-local-replacements"].Value().([][]any)
	if len(repl) != 1 || len(repl[0]) != 2 {
		t.Fatalf("base-local-replacements %v, want one (new, old)", repl)
	}
	newPkg, oldPkg := variantNEVRA(t, repl[0][0].(godbus.Variant)), variantNEVRA(t, repl[0][1].(godbus.Variant))
	if newPkg[1] != "hostos-tools" || newPkg[3] != "1.7" || oldPkg[1] != "hostos-tools" || oldPkg[3] == "1.7" {
		t.Fatalf("base-local-replacements: new %v old %v, want hostos-tools 1.7 for the base's", newPkg, oldPkg)
	}
	e.mustHostctl("reset", "--overrides")

	// KernelArgs with the arguments as the client read them: refused when
	// they changed meanwhile, applied when they did not.
	kargs := e.status().Deployments[0].Kargs
	before := e.ostreeStatus()
	finishedFailing(t, "KernelArgs from stale arguments", r.run("KernelArgs", kargs+" hostctl.gone=1", []string{"hostctl.test=1"}, []string{}, []string{}, map[string]godbus.Variant{}),
		"changed since they were read")
	if after := e.ostreeStatus(); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Fatalf("a refused KernelArgs changed the deployments: %v -> %v", before, after)
	}
	finishedOK(t, "KernelArgs", r.run("KernelArgs", kargs, []string{"hostctl.test=1"}, []string{}, []string{},
		map[string]godbus.Variant{"initiating-command-line": godbus.MakeVariant("rpm-ostree kargs --append=hostctl.test=1"), "reboot": no}))
	if k := e.status().Deployments[0].Kargs; !strings.Contains(" "+k+" ", " hostctl.test=1 ") {
		t.Fatalf("kernel arguments after KernelArgs: %q", k)
	}

	// set-refspec with set-revision: that revision of the new ref. Rebase's
	// revision: a version in the new ref's history, not its tip.
	e.publish("3")
	finishedOK(t, "UpdateDeployment set-refspec set-revision", r.run("UpdateDeployment",
		map[string]godbus.Variant{"set-refspec": godbus.MakeVariant(testingRef), "set-revision": godbus.MakeVariant(v10)}, map[string]godbus.Variant{}))
	if d := e.status().Deployments[0]; d.Checksum != v10 || d.Origin != testingRef || !strings.Contains(e.originOf(d), "override-commit="+v10) {
		t.Fatalf("after set-refspec %s set-revision %s: %s %s\n%s", testingRef, v10, d.Checksum, d.Origin, e.originOf(d))
	}
	finishedOK(t, "Rebase with revision", r.run("Rebase", map[string]godbus.Variant{"revision": godbus.MakeVariant("2"), "reboot": no}, refspec, []string{}))
	d := e.status().Deployments[0]
	if d.Checksum != v2 || d.Origin != refspec || !strings.Contains(e.originOf(d), "override-commit="+v2) {
		t.Fatalf("Rebase to %s revision 2: %s (version %s) %s, want %s (the tip is 3)\n%s", refspec, d.Checksum, d.Version, d.Origin, v2, e.originOf(d))
	}
	if !strings.Contains(d.Kargs, "hostctl.test=1") {
		t.Fatalf("the kernel arguments were not carried over: %q", d.Kargs)
	}

	// reboot: the change is written; this sysroot is not booted, so the
	// reboot part is refused and the transaction says so.
	msg := finishedFailing(t, "Rollback with reboot", r.run("Rollback", map[string]godbus.Variant{"reboot": godbus.MakeVariant(true)}),
		"is written, but the reboot was refused", "not the booted host's")
	if v := e.ostreeStatus(); len(v) < 2 || v[0] != v10 {
		t.Fatalf("Rollback with reboot (%q): the rollback was not written: %v", msg, v)
	}
	// A change that changes nothing does not reboot, and succeeds.
	sigs := r.run("Deploy", v10, map[string]godbus.Variant{"reboot": godbus.MakeVariant(true)})
	if last := sigs[len(sigs)-1]; last.body[0] != true {
		t.Fatalf("Deploy of what runs, with reboot: %v", sigs)
	}
	said := false
	for _, s := range sigs {
		said = said || s.name == "Message" && strings.Contains(s.body[0].(string), "not rebooting")
	}
	if !said {
		t.Fatalf("Deploy that changed nothing with reboot: no message that it does not reboot: %v", sigs)
	}

	// Cleanup with rpm-ostree's element names.
	finishedOK(t, "Cleanup rollback-deploy", r.run("Cleanup", []string{"rollback-deploy"}))
	if v := e.ostreeStatus(); len(v) != 1 || v[0] != v10 {
		t.Fatalf("after Cleanup rollback-deploy: %v", v)
	}

	// AutomaticUpdateTrigger's mode auto is the configured policy (none
	// here); check overrides it.
	if res := r.call("AutomaticUpdateTrigger", map[string]godbus.Variant{"mode": godbus.MakeVariant("auto"), "output-to-self": no}); res[0] != false || res[1] != "" {
		t.Fatalf("AutomaticUpdateTrigger auto under none: %v", res)
	}
	res := r.call("AutomaticUpdateTrigger", map[string]godbus.Variant{"mode": godbus.MakeVariant("check")})
	if res[0] != true || res[1] == "" {
		t.Fatalf("AutomaticUpdateTrigger check: %v", res)
	}
	finishedOK(t, "AutomaticUpdateTrigger check", r.c.runPeer(t, res[1].(string)))
}

// TestRPMOstreeActivation: hostd.conf's RpmOstreeCompat=true serves
// rpm-ostree's API without the flag, and a call to the name starts hostd
// through the bus's activation as packaging/org.projectatomic.rpmostree1.service
// describes it; RpmOstreeCompat=false leaves the name alone.
func TestRPMOstreeActivation(t *testing.T) {
	// The packaged activation file: rpm-ostree's name, hostd's unit.
	text := readFile(t, "../../packaging/org.projectatomic.rpmostree1.service")
	for _, line := range []string{"[D-BUS Service]", "Name=" + rpmostree.BusName, "SystemdService=hostd.service", "User=root"} {
		if !strings.Contains("\n"+text+"\n", "\n"+line+"\n") {
			t.Fatalf("packaging/org.projectatomic.rpmostree1.service lacks %q:\n%s", line, text)
		}
	}
	if unit := readFile(t, "../../packaging/hostd.service"); !strings.Contains(unit, "ExecStart=/usr/libexec/hostd ") {
		t.Fatalf("packaging/hostd.service does not start hostd:\n%s", unit)
	}

	e := newEnv(t)
	work := t.TempDir()
	off := filepath.Join(work, "off.conf")
	writeConf(t, off, "[Daemon]\nRpmOstreeCompat=false\n")
	e.hostd.Stop()
	e.startHostd("--config", off)
	conn := connectRecorded(t, e.bus.Address)
	if err := conn.Object(dbus.BusName, dbus.HostPath).Call("org.freedesktop.DBus.Peer.Ping", 0).Err; err != nil {
		t.Fatal(err)
	}
	var has bool
	if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, rpmostree.BusName).Store(&has); err != nil || has {
		t.Fatalf("RpmOstreeCompat=false: %s owned %v (%v)", rpmostree.BusName, has, err)
	}
	e.hostd.Stop()

	// Not set: auto, on unless rpm-ostree is installed here.
	auto := filepath.Join(work, "auto.conf")
	writeConf(t, auto, "[Daemon]\nAutomaticUpdatePolicy=none\n")
	e.startHostd("--config", auto)
	_, rpmOstree := os.Stat("/usr/bin/rpm-ostree")
	want := rpmOstree != nil
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, rpmostree.BusName).Store(&has); err != nil {
			t.Fatal(err)
		}
		if has == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RpmOstreeCompat not set (auto), rpm-ostree installed %v: %s owned %v", !want, rpmostree.BusName, has)
		}
	}
	e.hostd.Stop()
	e.hostd = nil

	// No systemd runs this bus: the test's activation file has the
	// packaged Name and runs hostd itself where the packaged one names
	// hostd.service.
	on := filepath.Join(work, "on.conf")
	writeConf(t, on, "[Daemon]\nRpmOstreeCompat=true\n")
	act := e.activationBus(work)
	log := filepath.Join(work, "hostd.log")
	script := fmt.Sprintf("DBUS_SYSTEM_BUS_ADDRESS=unix:path=%s exec %s --sysroot %s --service-manager direct --config %s >>%s 2>&1 & echo $! >%s; wait",
		act.socket, hostdBin, e.sysroot, on, log, act.pidFile)
	service := strings.Replace(text, "SystemdService=hostd.service", "", 1)
	service = strings.Replace(service, "Exec=/bin/false", fmt.Sprintf("Exec=/bin/sh -c '%s'", script), 1)
	act.start(map[string]string{rpmostree.BusName: service})
	bus := e.bus
	c := loadRPMContract(t)
	conn = connectRecorded(t, bus.Address)
	if p := c.call(t, conn, rpmostree.SysrootPath, rpmostree.SysrootInterface, "GetOS", ""); p[0] == godbus.ObjectPath("/") {
		t.Fatalf("GetOS through activation: %v", p)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "serving name="+rpmostree.BusName) {
		t.Fatalf("the activated hostd's log does not say it serves %s:\n%s", rpmostree.BusName, b)
	}
}

// TestRPMOstreeRebootBootedHost: on the booted test host, with
// RpmOstreeCompat=true in its hostd.conf, a client of rpm-ostree's name
// (which starts hostd through the packaged activation file and
// hostd.service) deploys version 2 with reboot true: the host reboots into
// it by itself, through systemd, as `hostctl finalize --reboot` does.
func TestRPMOstreeRebootBootedHost(t *testing.T) {
	e := newBootedEnv(t)
	e.publish("2")
	conf := "[Daemon]\nRpmOstreeCompat=true\n"
	if r := e.host.Run(e.ctx, 0, "sh", "-c", "mkdir -p /etc/hostctl && printf '"+strings.ReplaceAll(conf, "\n", `\n`)+"' >/etc/hostctl/hostd.conf && systemctl stop hostd.service"); r.Code != 0 {
		t.Fatalf("write hostd.conf in the machine: %+v", r)
	}
	if r := e.host.Run(e.ctx, 0, "test", "-f", "/usr/share/dbus-1/system-services/"+rpmostree.BusName+".service"); r.Code != 0 {
		t.Fatalf("make install did not install the activation file of %s: %+v", rpmostree.BusName, r)
	}
	// The machine shares the host's network namespace (abstract sockets
	// too) and runs as the host's uids: the test talks to its system bus
	// from outside, as a client inside would.
	c := loadRPMContract(t)
	conn := connectRecorded(t, fmt.Sprintf("unix:path=/proc/%d/root/run/dbus/system_bus_socket", e.host.Machine.Leader))
	osPath := c.call(t, conn, rpmostree.SysrootPath, rpmostree.SysrootInterface, "GetOS", "")[0].(godbus.ObjectPath)
	addr := c.call(t, conn, osPath, rpmostree.OSInterface, "Deploy", e.os.Commits["2"], map[string]godbus.Variant{"reboot": godbus.MakeVariant(true)})[0].(string)
	sigs, finished := c.peerSignals(t, addr)
	t.Logf("Deploy with reboot: finished %v, signals %v", finished, sigs)
	if finished {
		if last := sigs[len(sigs)-1]; last.body[0] != true {
			t.Fatalf("Deploy with reboot failed: %v\nhostd's journal:\n%s", last.body, e.host.Machine.Journal(e.ctx, "hostd.service"))
		}
	}
	rebooting := false
	for _, s := range sigs {
		rebooting = rebooting || s.name == "TaskBegin" && strings.Contains(s.body[0].(string), "Rebooting")
	}
	if !rebooting {
		t.Fatalf("Deploy with reboot: no Rebooting task among %v", sigs)
	}
	if err := e.host.AwaitReboot(e.ctx, 2*time.Minute); err != nil {
		t.Fatalf("after Deploy with reboot: %v", err)
	}
	e.expectBooted("2")
}
