package dbus

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// FuzzDispatch drives the server's method dispatch with fuzzed arguments of
// every kind, for every method of org.hostctl.Host1, two ways: over a real
// bus (as a hostile client would: strings are what D-Bus can carry) and
// straight into the exported method table with the raw values (NUL bytes,
// invalid UTF-8). It checks the server never panics, every error is a named
// org.hostctl.Host1.Error.*, nothing it hands the engine breaks the limits
// (and no detach option reaches it), and no file descriptor stays open.
func FuzzDispatch(f *testing.F) {
	s, eng, addr := serve(f)
	client := dial(f, addr)
	obj := client.Object(BusName, HostPath)
	methods, err := contractMethods(HostXML, HostInterface)
	if err != nil {
		f.Fatal(err)
	}
	table, err := methodTable(hostObject{s}, methods, HostInterface)
	if err != nil {
		f.Fatal(err)
	}
	sender := godbus.Sender(client.Names()[0])
	for i := range methods {
		for _, k := range [][]byte{{0, 0, 0}, {1, 2, 3}, {6, 7, 8}, {10, 11, 12}, {13, 14, 9}, {0, 5, 4}} {
			f.Add(uint8(i), k, "../../etc/passwd", int64(-1), "check")
		}
	}
	f.Add(uint8(0), []byte{0, 1}, strings.Repeat("A", 5000), int64(1), "detach")
	f.Add(uint8(5), []byte{0, 0, 0, 6}, "a\x00b", int64(1<<40), "add")
	f.Add(uint8(13), []byte{0, 0, 0, 3}, "/abs\xff", int64(7), "set")
	f.Add(uint8(2), []byte{0, 2}, "", int64(0), "")

	f.Fuzz(func(t *testing.T, method uint8, kinds []byte, str string, n int64, key string) {
		m := methods[int(method)%len(methods)]
		fdsBefore := openFDs(t)
		reqsBefore := len(eng.requests())

		// Over the bus.
		args, cleanup := fuzzArgs(t, m, kinds, str, n, key)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		call := obj.CallWithContext(ctx, HostInterface+"."+m.name, 0, sanitize(args)...)
		cancel()
		cleanup()
		checkReply(t, m.name, call.Err)

		// Straight into the method table, with the values as they are.
		args, cleanup = fuzzArgs(t, m, kinds, str, n, key)
		in := []reflect.Value{reflect.ValueOf(sender), reflect.ValueOf(godbus.Message{Body: dupFDs(t, args)})}
		for range args {
			in = append(in, reflect.ValueOf(godbus.Variant{}))
		}
		out := reflect.ValueOf(table[m.name]).Call(in)
		cleanup()
		if e := out[len(out)-1].Interface().(*godbus.Error); e != nil {
			checkReply(t, m.name, *e)
		}

		for _, req := range eng.requests()[reqsBefore:] {
			if _, ok := req.Options[detachOption]; ok {
				t.Fatalf("%s: the detach option reached the engine", m.name)
			}
			if err := checkString("arg", req.Arg, maxString, false); err != nil {
				t.Fatalf("%s: the engine got an argument the limits refuse: %v", m.name, err)
			}
			if err := checkValue("options", map[string]godbus.Variant(req.Options), false, 0); err != nil {
				t.Fatalf("%s: the engine got options the limits refuse: %v", m.name, err)
			}
			if req.Sender != string(sender) {
				t.Fatalf("%s: Request.Sender %q, want %q", m.name, req.Sender, sender)
			}
		}
		if after := openFDs(t); after > fdsBefore {
			t.Fatalf("%s: %d file descriptors open after the call, %d before", m.name, after, fdsBefore)
		}
	})
}

// checkReply fails the test unless err is nil or a named hostctl error
// that is not a recovered panic.
func checkReply(t *testing.T, method string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	name := busErrorName(err)
	if !strings.HasPrefix(name, ErrorPrefix) {
		t.Fatalf("%s: error %q is not a named %s* error: %v", method, name, ErrorPrefix, err)
	}
	if strings.Contains(err.Error(), "internal error") {
		t.Fatalf("%s: the server panicked: %v", method, err)
	}
}

// fuzzArgs makes one argument per contract argument: kinds[i] picks the
// right type with fuzzed content, or one of many wrong ones. cleanup closes
// the file descriptors made for it.
func fuzzArgs(t *testing.T, m contractMethod, kinds []byte, str string, n int64, key string) ([]any, func()) {
	var files []*os.File
	fd := func() godbus.UnixFD {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		return godbus.UnixFD(f.Fd())
	}
	kind := func(i int) byte {
		if len(kinds) == 0 {
			return 0
		}
		return kinds[i%len(kinds)]
	}
	value := func(k byte) any {
		switch k % 15 {
		case 1:
			return str
		case 2:
			return n
		case 3:
			return int32(n)
		case 4:
			return uint32(n)
		case 5:
			return n%2 == 0
		case 6:
			return []string{str, key}
		case 7:
			return map[string]godbus.Variant{key: godbus.MakeVariant(str)}
		case 8:
			return map[string]string{key: str}
		case 9:
			return godbus.ObjectPath("/org/hostctl/x")
		case 10:
			return godbus.MakeVariant(str)
		case 11:
			return []byte(str)
		case 12:
			return struct {
				A string
				B int64
			}{str, n}
		case 13:
			return fd()
		case 14:
			return float64(n) / 3
		}
		return nil
	}
	args := make([]any, len(m.args))
	for i, a := range m.args {
		k := kind(i)
		if k%15 != 0 {
			args[i] = value(k)
			continue
		}
		switch a.sig {
		case "s":
			args[i] = str
		case "as":
			args[i] = []string{str, key, ".."}
		case "u":
			args[i] = uint32(n)
		case "h":
			args[i] = fd()
		case "a(sh)":
			args[i] = []FileArg{{Name: str, FD: fd()}, {Name: key, FD: fd()}}
		case "a{sv}":
			opts := map[string]godbus.Variant{}
			if v := value(kind(i + 1)); v != nil {
				opts[key] = godbus.MakeVariant(v)
			} else {
				opts[key] = godbus.MakeVariant(str)
			}
			if n%3 == 0 {
				opts[detachOption] = godbus.MakeVariant(n%2 == 0)
			}
			args[i] = opts
		default:
			t.Fatalf("no fuzz value for signature %s", a.sig)
		}
	}
	return args, func() {
		for _, f := range files {
			f.Close()
		}
	}
}

// sanitize makes every string something D-Bus can carry (valid UTF-8, no
// NUL): the bus itself disconnects a client that sends anything else.
func sanitize(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = sanitizeValue(a)
	}
	return out
}

func sanitizeValue(v any) any {
	clean := func(s string) string { return strings.ReplaceAll(strings.ToValidUTF8(s, "?"), "\x00", "") }
	switch x := v.(type) {
	case string:
		return clean(x)
	case []string:
		out := make([]string, len(x))
		for i, s := range x {
			out[i] = clean(s)
		}
		return out
	case map[string]godbus.Variant:
		out := make(map[string]godbus.Variant, len(x))
		for k, val := range x {
			out[clean(k)] = godbus.MakeVariant(sanitizeValue(val.Value()))
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, val := range x {
			out[clean(k)] = clean(val)
		}
		return out
	case godbus.Variant:
		return godbus.MakeVariant(sanitizeValue(x.Value()))
	case struct {
		A string
		B int64
	}:
		x.A = clean(x.A)
		return x
	}
	return v
}

// dupFDs gives the direct call file descriptors of its own, as the bus
// would: the server closes them.
func dupFDs(t *testing.T, args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = a
		if fd, ok := a.(godbus.UnixFD); ok {
			d, err := dupFD(fd)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = d
		}
		if v, ok := a.(map[string]godbus.Variant); ok {
			cp := make(map[string]godbus.Variant, len(v))
			for k, val := range v {
				cp[k] = val
				if fd, ok := val.Value().(godbus.UnixFD); ok {
					d, err := dupFD(fd)
					if err != nil {
						t.Fatal(err)
					}
					cp[k] = godbus.MakeVariant(d)
				}
			}
			out[i] = cp
		}
	}
	return out
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open file descriptors: %v", err)
	}
	return len(ents)
}
