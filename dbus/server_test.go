package dbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/errdefs"
)

func TestOptionsCheck(t *testing.T) {
	spec := OptionSpec{"check": "b", "name": "s", "set": "as", "depth": "x"}
	v := godbus.MakeVariant
	for _, tc := range []struct {
		name string
		opts Options
		spec OptionSpec
		want string // "" for accepted; else words the error must contain
	}{
		{"none", Options{}, spec, ""},
		{"all of the right type", Options{"check": v(true), "name": v("etcd"), "set": v([]string{"A=1"}), "depth": v(int64(2))}, spec, ""},
		{"unknown", Options{"chekc": v(true)}, spec, `unknown option "chekc" (known: check b, depth x, name s, set as)`},
		{"bool sent as a string", Options{"check": v("true")}, spec, `option "check" must be a boolean (b), got a string (s)`},
		{"bool sent as an int", Options{"check": v(int32(1))}, spec, `option "check" must be a boolean (b), got a 32-bit integer (i)`},
		{"string array sent as a string", Options{"set": v("A=1")}, spec, `option "set" must be an array of strings (as), got a string (s)`},
		{"int64 sent as uint32", Options{"depth": v(uint32(2))}, spec, `option "depth" must be a 64-bit integer (x), got an unsigned 32-bit integer (u)`},
		{"nested variant", Options{"name": v(v("etcd"))}, spec, `option "name" must be a string (s), got a variant (v)`},
		{"empty spec", Options{"check": v(true)}, nil, `unknown option "check": this method takes no options`},
		{"zero variant", Options{"name": {}}, spec, `option "name" must be a string (s), got nothing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Check(tc.spec)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if !errdefs.IsInvalidArgument(err) || ErrorName(err) != ErrInvalidArgument {
				t.Fatalf("error %v is of kind %v (%s), want invalid argument", err, errdefs.Kind(err), ErrorName(err))
			}
		})
	}
}

func TestErrorNames(t *testing.T) {
	for _, e := range errorNames {
		t.Run(e.name, func(t *testing.T) {
			// The errdefs path and the old dbus path give the same name.
			viaKind := errdefs.Errorf(e.kind, "something went %s", "wrong")
			viaName := Errorf(e.name, "something went %s", "wrong")
			if ErrorName(viaKind) != e.name || ErrorName(viaName) != e.name || !IsError(viaName, e.name) {
				t.Fatalf("names: %s and %s, want %s", ErrorName(viaKind), ErrorName(viaName), e.name)
			}
			if errdefs.Kind(viaName) != e.kind {
				t.Fatalf("dbus.Errorf(%s) is of kind %v", e.name, errdefs.Kind(viaName))
			}
			// Across the bus and back, the kind and the message survive.
			back := fromBus(*toBus(viaKind))
			if errdefs.Kind(back) != e.kind || back.Error() != "something went wrong" || ErrorName(back) != e.name {
				t.Fatalf("round trip: %v of kind %v", back, errdefs.Kind(back))
			}
		})
	}
	if ErrorName(godbus.ErrMsgNoObject) != ErrFailed || ErrorName(errors.New("x")) != ErrFailed {
		t.Fatal("foreign errors are Failed")
	}
	// A cause the engine did not classify still gets its name from its chain.
	full := fmt.Errorf("commit: %w", &os.PathError{Op: "write", Path: "/sysroot/x", Err: syscall.ENOSPC})
	if got := ErrorName(NewError(ErrFailed, full)); got != ErrNoSpace {
		t.Fatalf("ENOSPC under Failed crosses as %s", got)
	}
	if got := ErrorName(fmt.Errorf("pull: %w", context.Canceled)); got != ErrCancelled {
		t.Fatalf("context.Canceled crosses as %s", got)
	}
	// A name a newer hostd sends is kept, though it has no kind here.
	future := fromBus(godbus.Error{Name: ErrorPrefix + "Frobnicated", Body: []any{"frob"}})
	if ErrorName(future) != ErrorPrefix+"Frobnicated" || !errdefs.IsFailed(future) {
		t.Fatalf("unknown name: %s, kind %v", ErrorName(future), errdefs.Kind(future))
	}
}

// TestWrongArgumentsNamed calls the live server with arguments of the wrong
// kind and checks each refusal is InvalidArgument naming what was wrong.
func TestWrongArgumentsNamed(t *testing.T) {
	_, eng, addr := serve(t)
	obj := dial(t, addr).Object(BusName, HostPath)
	v := godbus.MakeVariant
	for _, tc := range []struct {
		method string
		args   []any
		want   string
	}{
		{"Deploy", []any{int64(42), map[string]godbus.Variant{}}, "argument revision must be a string (s), got a 64-bit integer (x)"},
		{"Deploy", []any{[]string{"1"}, map[string]godbus.Variant{}}, "argument revision must be a string (s), got an array of strings (as)"},
		{"Upgrade", []any{"check"}, "argument options must be a dictionary of variants (a{sv}), got a string (s)"},
		{"Upgrade", []any{map[string]string{"check": "true"}}, "argument options must be a dictionary of variants (a{sv}), got a dictionary of strings (a{ss})"},
		{"Upgrade", []any{map[string]godbus.Variant{"check": v("yes")}}, `option "check" must be a boolean (b), got a string (s)`},
		{"Upgrade", []any{map[string]godbus.Variant{"frobnicate": v(true)}}, `unknown option "frobnicate"`},
		{"Upgrade", []any{map[string]godbus.Variant{"detach": v("yes")}}, `option "detach" must be a boolean (b), got a string (s)`},
		{"PkgChange", []any{"foo", []string{}, map[string]godbus.Variant{}}, "argument add must be an array of strings (as), got a string (s)"},
		{"PkgChange", []any{[]string{}, []string{}, map[string]godbus.Variant{"add": v([]string{"x"})}}, `option "add": name the packages in the add argument`},
		{"Kargs", []any{"quiet", map[string]godbus.Variant{}}, "argument edits must be an array of strings (as), got a string (s)"},
		{"Kargs", []any{[]string{"append=x"}, map[string]godbus.Variant{"edits": v([]string{"x"})}}, `option "edits": give the edits in the edits argument`},
		{"Pin", []any{uint32(0), map[string]godbus.Variant{}}, "argument deployment must be a string (s), got an unsigned 32-bit integer (u)"},
		{"History", []any{"ten"}, "argument limit must be an unsigned 32-bit integer (u), got a string (s)"},
		{"History", []any{int32(-1)}, "argument limit must be an unsigned 32-bit integer (u), got a 32-bit integer (i)"},
		{"Rebase", []any{strings.Repeat("x", 1<<20), map[string]godbus.Variant{}}, "refspec is 1048576 bytes long; at most 4096 are accepted"},
		{"Rebase", []any{"hostos:a\nb", map[string]godbus.Variant{}}, `refspec contains the control character '\n'`},
		{"ContainerInstall", []any{"img", map[string]godbus.Variant{"name": v("a\x1bb")}}, `options "name" contains the control character`},
		{"ContainerInstall", []any{"img", map[string]godbus.Variant{strings.Repeat("k", 300): v("x")}}, "options key is 300 bytes long; at most 256"},
		{"ContainerExec", []any{"ctr", []string{"sh"}, "0", "1", "2"}, "argument stdin must be a file descriptor (h), got a string (s)"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			before := len(eng.requests())
			err := obj.Call(HostInterface+"."+tc.method, 0, tc.args...).Err
			if busErrorName(err) != ErrInvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s(%v): %s %v, want InvalidArgument with %q", tc.method, tc.args, busErrorName(err), err, tc.want)
			}
			if tc.want != `unknown option "frobnicate"` && !strings.Contains(tc.want, `"check" must be`) && len(eng.requests()) != before {
				t.Fatalf("%s: a refused call reached the engine", tc.method)
			}
		})
	}
	// A call with the wrong number of arguments is refused by godbus before
	// the server sees it, with the standard name.
	if err := obj.Call(HostInterface+".Upgrade", 0).Err; busErrorName(err) != "org.freedesktop.DBus.Error.InvalidArgs" {
		t.Fatalf("Upgrade with no arguments: %v", err)
	}
}

// TestClientLeavingCancels checks that the server cancels the transaction of
// a client that leaves the bus, and not one begun with detach.
func TestClientLeavingCancels(t *testing.T) {
	_, eng, addr := serve(t)
	for _, detach := range []bool{false, true} {
		t.Run(fmt.Sprintf("detach=%v", detach), func(t *testing.T) {
			conn, err := godbus.Connect(addr)
			if err != nil {
				t.Fatal(err)
			}
			c := NewClient(conn)
			c.Detach = detach
			txn, err := c.Upgrade(context.Background(), map[string]any{"check": true})
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.Object(BusName, txn.Path).Call(TransactionInterface+".Start", 0).Err; err != nil {
				t.Fatal(err)
			}
			reqs := eng.requests()
			req := reqs[len(reqs)-1]
			if req.Sender != conn.Names()[0] {
				t.Fatalf("Request.Sender %q, the client is %q", req.Sender, conn.Names()[0])
			}
			if _, ok := req.Options["detach"]; ok || !req.Options.Bool("check") {
				t.Fatalf("options reaching Begin: %v (detach must be stripped, check kept)", req.Options.Map())
			}
			rt := eng.last()
			conn.Close()
			select {
			case caller := <-rt.cancelled:
				if detach {
					t.Fatal("a detached transaction was cancelled when its client left")
				}
				if caller != 0 {
					t.Fatalf("cancelled on behalf of uid %d, want the server (0)", caller)
				}
			case <-time.After(map[bool]time.Duration{false: 5 * time.Second, true: 500 * time.Millisecond}[detach]):
				if !detach {
					t.Fatal("the transaction of a client that left was not cancelled within 5 s")
				}
			}
		})
	}
	// A transaction begun but never started is dropped as soon as its client leaves.
	conn, err := godbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(conn).Cleanup(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	rt := eng.last()
	conn.Close()
	select {
	case <-rt.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("a pending transaction outlived its client")
	}
}

// TestRunCancelsOnContext checks the client side: when Run's context ends
// (hostctl's Ctrl-C) it asks for the cancel over a connection that is
// still open, and returns an error for which errdefs.IsCancelled holds.
func TestRunCancelsOnContext(t *testing.T) {
	_, eng, addr := serve(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	txn, err := c.Upgrade(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err = txn.Run(ctx, nil)
	if !errdefs.IsCancelled(err) || ErrorName(err) != ErrCancelled {
		t.Fatalf("Run after its context ended: %v (kind %v)", err, errdefs.Kind(err))
	}
	select {
	case <-eng.last().cancelled:
	default:
		t.Fatal("the engine's transaction was not cancelled")
	}
}
