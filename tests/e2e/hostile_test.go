package e2e

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/hostctl/hostctl/dbus"
)

// TestHostileInput calls every method of org.hostctl.Host1 (and
// Transaction1) with raw godbus, from root and from an unprivileged uid, with
// arguments of the wrong kind, huge, empty, with NUL bytes, `..` and
// absolute paths, unknown options and options of the wrong type. Every call
// must end in a named org.hostctl.Host1.Error.* (a transaction that got
// begun must finish with one), hostd must keep running as the same process,
// and nothing may change: the same deployments, origin files, BLS entries
// and /boot/loader, and no history entry but the failed transactions the
// test started.
func TestHostileInput(t *testing.T) {
	e := newEnv(t)
	before := e.hostSnapshot()
	histBefore, err := e.history()
	if err != nil {
		t.Fatal(err)
	}
	owner := e.hostdOwner()

	methods := contract(t, dbus.HostXML, dbus.HostInterface)
	names := map[string]int{}
	started := 0
	for _, who := range []uint32{0, 65534} {
		c := newRawClient(t, e.bus.Address, who)
		if who != 0 {
			var uid uint32
			if err := c.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, c.conn.Names()[0]).Store(&uid); err != nil || uid != who {
				t.Fatalf("the unprivileged connection is uid %d (%v), want %d", uid, err, who)
			}
		}
		for _, m := range methods {
			for _, args := range hostileCalls(m) {
				label := fmt.Sprintf("uid %d %s(%s)", who, m.Name, describeArgs(args.values))
				res := c.call(t, dbus.HostInterface+"."+m.Name, args.values)
				switch {
				case res.busRefused:
					// The bus itself refused the message (a NUL byte in a
					// string is not D-Bus); hostd never saw it.
					names["refused by the bus"]++
					continue
				case res.err == nil && m.reads():
					continue
				case res.err == nil && m.Name == "Cancel":
					t.Fatalf("%s: Cancel with nothing running succeeded", label)
				case res.err == nil && txnPath(res.body) == "":
					// Succeeded without a transaction: ReloadConfig, or
					// AutomaticUpdateTrigger under the policy none.
					if who != 0 {
						t.Fatalf("%s: an unprivileged caller got %v, want AccessDenied", label, res.body)
					}
					names["done, no transaction"]++
					continue
				case res.err == nil:
					// A transaction was begun: only root may begin one, and it
					// must fail, with a name, without changing anything.
					if who != 0 {
						t.Fatalf("%s: an unprivileged caller began transaction %v", label, res.body)
					}
					path := txnPath(res.body)
					name, msg := c.runTxn(t, path)
					started++
					if !strings.HasPrefix(name, dbus.ErrorPrefix) {
						t.Fatalf("%s: transaction %s ended with %q %q, want a named failure", label, path, name, msg)
					}
					names[strings.TrimPrefix(name, dbus.ErrorPrefix)+" (transaction)"]++
					if name == dbus.ErrFailed {
						// Named, but not a refusal: the engine should tell the
						// caller what was wrong with the request.
						t.Logf("%s: transaction failed unclassified: %.200s", label, msg)
					}
					continue
				}
				name := busName(res.err)
				if args.countMismatch {
					if name != "org.freedesktop.DBus.Error.InvalidArgs" {
						t.Fatalf("%s: %s %v, want the bus library's InvalidArgs for a wrong argument count", label, name, res.err)
					}
					names["InvalidArgs (argument count)"]++
					continue
				}
				if !strings.HasPrefix(name, dbus.ErrorPrefix) {
					t.Fatalf("%s: error %q (%v) is not a named %s*", label, name, res.err, dbus.ErrorPrefix)
				}
				if who != 0 && !m.reads() && name != dbus.ErrAccessDenied && name != dbus.ErrInvalidArgument && name != dbus.ErrNoTransaction {
					t.Fatalf("%s: an unprivileged caller got %s (%v), want AccessDenied or InvalidArgument", label, name, res.err)
				}
				names[strings.TrimPrefix(name, dbus.ErrorPrefix)]++
			}
		}
		// The transaction interface: a transaction begun by root, poked by
		// this caller with extra arguments and hostile calls, then cancelled.
		if who == 0 {
			continue
		}
		var path godbus.ObjectPath
		root := newRawClient(t, e.bus.Address, 0)
		if err := root.conn.Object(dbus.BusName, dbus.HostPath).Call(dbus.HostInterface+".Deploy", 0, "../../nothing", map[string]godbus.Variant{}).Store(&path); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"Start", "Cancel"} {
			if err := c.conn.Object(dbus.BusName, path).Call(dbus.TransactionInterface+"."+m, 0).Err; busName(err) != dbus.ErrAccessDenied {
				t.Fatalf("nobody %s on root's transaction: %s %v, want AccessDenied", m, busName(err), err)
			}
			if err := c.conn.Object(dbus.BusName, path).Call(dbus.TransactionInterface+"."+m, 0, "extra").Err; busName(err) != "org.freedesktop.DBus.Error.InvalidArgs" {
				t.Fatalf("%s with an extra argument: %s %v", m, busName(err), err)
			}
		}
		if err := root.conn.Object(dbus.BusName, path).Call(dbus.TransactionInterface+".Cancel", 0).Err; err != nil {
			t.Fatalf("root cancels its pending transaction: %v", err)
		}
	}
	var seen []string
	for n, c := range names {
		seen = append(seen, fmt.Sprintf("%s: %d", n, c))
	}
	sort.Strings(seen)
	t.Logf("answers: %s", strings.Join(seen, ", "))

	if got := e.hostdOwner(); got != owner {
		t.Fatalf("hostd's bus name moved from %s to %q: it died or restarted\n%s", owner, got, e.hostd.Log)
	}
	waitUntil(t, 10*time.Second, "hostd idle", func() bool { return e.status().Transaction == nil })
	if after := e.hostSnapshot(); !slices.Equal(after, before) {
		t.Fatalf("hostile calls changed the host:\nbefore %q\nafter  %q", before, after)
	}
	histAfter, err := e.history()
	if err != nil {
		t.Fatal(err)
	}
	added := histAfter[:len(histAfter)-len(histBefore)]
	if len(added) != started {
		t.Fatalf("%d history entries added, %d transactions started", len(added), started)
	}
	for _, r := range added {
		if r.State != "failed" {
			t.Fatalf("history entry %s %s is %s (%s), want failed", r.Kind, r.ID, r.State, r.Error)
		}
	}
}

// txnPath is the transaction a successful reply names: its object path
// (a string one for AutomaticUpdateTrigger's result), or "" for none.
func txnPath(body []any) godbus.ObjectPath {
	for _, v := range body {
		switch p := v.(type) {
		case godbus.ObjectPath:
			return p
		case string:
			if strings.HasPrefix(p, "/") {
				return godbus.ObjectPath(p)
			}
		}
	}
	return ""
}

// contractMethod is a method of the checked-in XML.
type contractMethod struct {
	introspect.Method
}

func (m contractMethod) in() []string {
	var sigs []string
	for _, a := range m.Args {
		if a.Direction != "out" {
			sigs = append(sigs, a.Type)
		}
	}
	return sigs
}

// reads tells whether the method only reads (open to everyone).
func (m contractMethod) reads() bool {
	return m.Name == "History" || m.Name == "Diff" || m.Name == "FleetStatus" || strings.HasPrefix(m.Name, "List")
}

func contract(t *testing.T, text, iface string) []contractMethod {
	var node introspect.Node
	if err := xml.Unmarshal([]byte(text), &node); err != nil {
		t.Fatal(err)
	}
	for _, i := range node.Interfaces {
		if i.Name == iface {
			var out []contractMethod
			for _, m := range i.Methods {
				out = append(out, contractMethod{m})
			}
			return out
		}
	}
	t.Fatalf("no %s in the XML", iface)
	return nil
}

type hostileCall struct {
	values        []any
	countMismatch bool
}

const mib = 1 << 20

// hostileCalls lists the calls made to m: for each argument in turn, values
// of every wrong kind and hostile values of the right kind, the other
// arguments being of the right kind; plus calls with one argument too many
// and too few.
func hostileCalls(m contractMethod) []hostileCall {
	sigs := m.in()
	// Whatever the other arguments are, the call must not do something real:
	// a method that takes only options always gets hostile ones.
	onlyOptions := len(sigs) == 1 && sigs[0] == "a{sv}"
	benign := func(sig string) any {
		switch sig {
		case "s":
			return "../../etc/passwd"
		case "as":
			return []string{"../../etc/passwd"}
		case "u":
			return uint32(1)
		case "h":
			return godbus.UnixFD(devNull())
		case "a(sh)":
			// A file passed by descriptor with a hostile name.
			return []struct {
				Name string
				FD   godbus.UnixFD
			}{{"../../etc/passwd.rpm", godbus.UnixFD(devNull())}}
		case "a{sv}":
			if onlyOptions {
				return map[string]godbus.Variant{"frobnicate": godbus.MakeVariant(true)}
			}
			return map[string]godbus.Variant{}
		}
		panic("no value for " + sig)
	}
	wrongKinds := []any{int64(7), true, "x", []string{"x"}, map[string]godbus.Variant{}, map[string]string{"check": "true"},
		godbus.ObjectPath("/"), uint32(1), godbus.MakeVariant("x"), []byte("x"), 1.5}
	huge := strings.Repeat("A", mib)
	if slices.Contains(sigs, "h") || slices.Contains(sigs, "a(sh)") {
		// godbus sends a message with descriptors in one sendmsg(2), which
		// a 1 MiB body does not fit ("short write"): 64 KiB is huge enough.
		huge = strings.Repeat("A", 64<<10)
	}
	hostile := map[string][]any{
		"s":  {"", huge, "a\x00b", "..", "../../../../etc/shadow", "/etc/passwd", "/", "name\nwith\nlines", "\x1b[31mred"},
		"as": {[]string{}, []string{""}, []string{huge}, []string{"a\x00b"}, []string{"..", "/etc/passwd"}, make([]string, 2000)},
		"u":  {uint32(0), ^uint32(0)},
		"a{sv}": {
			map[string]godbus.Variant{"frobnicate": godbus.MakeVariant(true)},
			map[string]godbus.Variant{"": godbus.MakeVariant(true)},
			map[string]godbus.Variant{huge: godbus.MakeVariant(true)},
			map[string]godbus.Variant{"detach": godbus.MakeVariant("yes")},
			map[string]godbus.Variant{"name": godbus.MakeVariant(huge)},
			map[string]godbus.Variant{"name": godbus.MakeVariant("../../etc")},
			map[string]godbus.Variant{"set": godbus.MakeVariant([]string{"A=\x00"})},
		},
	}
	// Every option a method documents, sent with the wrong type.
	for _, k := range []string{"check", "preview", "download-only", "allow-downgrade", "pending", "rollback", "repomd",
		"dry-run", "idempotent", "allow-inactive", "name", "set", "follow", "rebase", "add", "remove", "detach", "unpin", "override-remove", "override-reset", "override-reset-all", "reboot", "revision", "expect"} {
		hostile["a{sv}"] = append(hostile["a{sv}"], map[string]godbus.Variant{k: godbus.MakeVariant(int32(1))})
	}
	var calls []hostileCall
	for i, sig := range sigs {
		var values []any
		for _, v := range wrongKinds {
			if signature(v) != sig {
				values = append(values, v)
			}
		}
		values = append(values, hostile[sig]...)
		for _, v := range values {
			args := make([]any, len(sigs))
			for j, s := range sigs {
				args[j] = benign(s)
			}
			args[i] = v
			calls = append(calls, hostileCall{values: args})
		}
	}
	if !m.reads() || len(sigs) > 0 {
		args := make([]any, len(sigs))
		for j, s := range sigs {
			args[j] = benign(s)
		}
		calls = append(calls, hostileCall{values: append(args, "extra"), countMismatch: true})
		if len(sigs) > 0 {
			calls = append(calls, hostileCall{values: args[:len(args)-1], countMismatch: true})
		}
	} else {
		calls = append(calls, hostileCall{values: []any{"extra"}, countMismatch: true})
	}
	if m.Name == "Cancel" {
		calls = append(calls, hostileCall{values: nil})
	}
	return calls
}

func signature(v any) string { return godbus.SignatureOf(v).String() }

func describeArgs(args []any) string {
	var parts []string
	for _, a := range args {
		s := fmt.Sprintf("%v", a)
		if len(s) > 40 {
			s = s[:40] + fmt.Sprintf("...(%d bytes)", len(s))
		}
		parts = append(parts, signature(a)+":"+strconv.Quote(s))
	}
	return strings.Join(parts, ", ")
}

var devNullFile *os.File

// devNull is a descriptor for ContainerExec's stdio arguments.
func devNull() int {
	if devNullFile == nil {
		f, err := os.Open(os.DevNull)
		if err != nil {
			panic(err)
		}
		devNullFile = f
	}
	return int(devNullFile.Fd())
}

func busName(err error) string {
	var de godbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	var dp *godbus.Error
	if errors.As(err, &dp) {
		return dp.Name
	}
	if err != nil {
		return "(not a D-Bus error: " + err.Error() + ")"
	}
	return ""
}

// rawClient is a godbus connection as uid, re-made when the bus drops it.
type rawClient struct {
	addr string
	uid  uint32
	conn *godbus.Conn
	sigs chan *godbus.Signal
}

func newRawClient(t *testing.T, addr string, uid uint32) *rawClient {
	c := &rawClient{addr: addr, uid: uid}
	c.connect(t)
	t.Cleanup(func() { c.conn.Close() })
	return c
}

// connect dials the bus as c.uid: the socket is connected from a thread
// that runs as that uid for the moment of connect(2), so the bus sees the
// peer credentials of an unprivileged process, as it would for one.
func (c *rawClient) connect(t *testing.T) {
	t.Helper()
	var conn *godbus.Conn
	if c.uid == 0 {
		var err error
		if conn, err = godbus.Connect(c.addr); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if conn, err = dialAs(c.addr, c.uid); err != nil {
			t.Fatalf("connect to the bus as uid %d: %v", c.uid, err)
		}
		if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(int(c.uid)))}); err != nil {
			t.Fatalf("authenticate as uid %d: %v", c.uid, err)
		}
		if err := conn.Hello(); err != nil {
			t.Fatal(err)
		}
	}
	c.conn = conn
	c.sigs = make(chan *godbus.Signal, 256)
	conn.Signal(c.sigs)
	if err := conn.AddMatchSignal(godbus.WithMatchInterface(dbus.TransactionInterface)); err != nil {
		t.Fatal(err)
	}
}

// dialAs opens a bus connection (not yet authenticated) with the
// credentials of uid, from one locked thread whose ids are switched for the
// moment of connect(2) and switched back. (Go starts new threads from a
// template thread when the current one is locked, so none inherits them.)
func dialAs(addr string, uid uint32) (*godbus.Conn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// setresgid/setresuid on this thread only (syscall.Setuid changes every
	// thread); the saved ids stay 0 to switch back.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(uid), uintptr(uid), 0); errno != 0 {
		return nil, fmt.Errorf("setresgid: %w", errno)
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), 0); errno != 0 {
		syscall.RawSyscall(syscall.SYS_SETRESGID, 0, 0, 0)
		return nil, fmt.Errorf("setresuid: %w", errno)
	}
	conn, err := godbus.Dial(addr)
	_, _, e1 := syscall.RawSyscall(syscall.SYS_SETRESUID, 0, 0, 0)
	_, _, e2 := syscall.RawSyscall(syscall.SYS_SETRESGID, 0, 0, 0)
	if e1 != 0 || e2 != 0 {
		panic(fmt.Sprintf("cannot switch this thread back to root: %v %v", e1, e2))
	}
	return conn, err
}

type callResult struct {
	body       []any
	err        error
	busRefused bool
}

// call makes one call; when the bus drops the connection (it does for a
// message it finds malformed), it says so and connects again.
func (c *rawClient) call(t *testing.T, method string, args []any) callResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call := c.conn.Object(dbus.BusName, dbus.HostPath).CallWithContext(ctx, method, 0, args...)
	var fe godbus.FormatError
	if errors.As(call.Err, &fe) {
		// Not D-Bus at all (a NUL byte in a string): godbus will not put it
		// on the wire, and the bus would drop a client that did; the server
		// refuses one in any case (dbus.FuzzDispatch sends it straight in).
		return callResult{err: call.Err, busRefused: true}
	}
	if call.Err != nil && !c.conn.Connected() {
		c.conn.Close()
		c.connect(t)
		return callResult{err: call.Err, busRefused: true}
	}
	if errors.Is(call.Err, context.DeadlineExceeded) {
		t.Fatalf("%s: no answer in 20 s", method)
	}
	return callResult{body: call.Body, err: call.Err}
}

// runTxn starts a transaction and waits for its Finished signal.
func (c *rawClient) runTxn(t *testing.T, path godbus.ObjectPath) (name, msg string) {
	t.Helper()
	if err := c.conn.Object(dbus.BusName, path).Call(dbus.TransactionInterface+".Start", 0).Err; err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	deadline := time.After(60 * time.Second)
	for {
		select {
		case sig := <-c.sigs:
			if sig.Path != path || sig.Name != dbus.TransactionInterface+".Finished" {
				continue
			}
			var ok bool
			var data map[string]godbus.Variant
			if err := godbus.Store(sig.Body, &ok, &name, &msg, &data); err != nil {
				t.Fatal(err)
			}
			if ok {
				t.Fatalf("transaction %s succeeded: %v", path, data)
			}
			return name, msg
		case <-deadline:
			t.Fatalf("transaction %s did not finish in 60 s", path)
		}
	}
}

// hostSnapshot is what a hostile call must not change: the deployments, their
// origin files, the BLS entries and where /boot/loader points.
func (e *env) hostSnapshot() []string {
	e.t.Helper()
	var out []string
	for _, d := range e.status().Deployments {
		out = append(out, fmt.Sprintf("deployment %s %s.%d default=%v", d.OSName, d.Checksum, d.Serial, d.Default))
	}
	origins, _ := filepath.Glob(filepath.Join(e.sysroot, "ostree", "deploy", "*", "deploy", "*.origin"))
	entries, _ := filepath.Glob(filepath.Join(e.sysroot, "boot", "loader", "entries", "*.conf"))
	for _, p := range append(origins, entries...) {
		b, err := os.ReadFile(p)
		if err != nil {
			e.t.Fatal(err)
		}
		rel, _ := filepath.Rel(e.sysroot, p)
		out = append(out, rel+":\n"+string(b))
	}
	return append(out, "loader -> "+e.loaderTarget())
}

func (e *env) history() ([]dbus.Record, error) {
	conn, err := godbus.Connect(e.bus.Address)
	if err != nil {
		return nil, err
	}
	c := dbus.NewClient(conn)
	defer c.Close()
	return c.History(context.Background(), 0)
}

// hostdOwner is the unique bus name of the hostd serving now.
func (e *env) hostdOwner() string {
	e.t.Helper()
	conn, err := godbus.Connect(e.bus.Address)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	var owner string
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, dbus.BusName).Store(&owner); err != nil {
		return ""
	}
	return owner
}
