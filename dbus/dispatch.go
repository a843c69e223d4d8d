package dbus

import (
	"encoding/xml"
	"fmt"
	"os"
	"reflect"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/hostctl/hostctl/errdefs"
)

// Limits on what a caller may send, far above any real use: a name, a
// reference or a revision is never longer than maxString bytes, and no list
// or a{sv} has more than maxItems entries.
const (
	maxString    = 4096
	maxOptionKey = 256
	maxItems     = 1024
)

// contractMethod is one method of the contract (the checked-in XML): its
// name and its in-arguments, each with its name and signature.
type contractMethod struct {
	name string
	args []contractArg
}

type contractArg struct{ name, sig string }

// contractMethods reads the methods of iface from the interface XML.
func contractMethods(xmlText, iface string) ([]contractMethod, error) {
	var node introspect.Node
	if err := xml.Unmarshal([]byte(xmlText), &node); err != nil {
		return nil, fmt.Errorf("parse the %s interface XML: %w", iface, err)
	}
	for _, i := range node.Interfaces {
		if i.Name != iface {
			continue
		}
		var out []contractMethod
		for _, m := range i.Methods {
			cm := contractMethod{name: m.Name}
			for _, a := range m.Args {
				if a.Direction != "out" {
					cm.args = append(cm.args, contractArg{name: a.Name, sig: a.Type})
				}
			}
			out = append(out, cm)
		}
		return out, nil
	}
	return nil, fmt.Errorf("the interface XML lacks %s", iface)
}

var (
	senderType  = reflect.TypeOf(godbus.Sender(""))
	messageType = reflect.TypeOf(godbus.Message{})
	variantType = reflect.TypeOf(godbus.Variant{})
	busErrType  = reflect.TypeOf(&godbus.Error{})
)

// methodTable builds what the server exports for iface: for every method of
// the contract, a function that takes each argument as whatever the caller
// sent, checks it against the contract's signature and the limits above,
// and only then calls impl's typed method. A caller that sends an argument
// of the wrong kind, too long, not UTF-8 or with control characters gets
// org.hostctl.Host1.Error.InvalidArgument naming the argument, not godbus's
// generic InvalidArgs; a panic in a method becomes a Failed error instead
// of killing hostd. (A call with the wrong number of arguments is still
// refused by godbus itself, with org.freedesktop.DBus.Error.InvalidArgs,
// before any of this runs.)
func methodTable(impl any, methods []contractMethod, iface string) (map[string]any, error) {
	v := reflect.ValueOf(impl)
	table := make(map[string]any, len(methods))
	for _, m := range methods {
		gm := v.MethodByName(m.name)
		if !gm.IsValid() {
			return nil, fmt.Errorf("%s.%s is in the contract but not implemented", iface, m.name)
		}
		gt := gm.Type()
		var params []reflect.Type
		for i := 0; i < gt.NumIn(); i++ {
			if gt.In(i) != senderType {
				params = append(params, gt.In(i))
			}
		}
		if len(params) != len(m.args) || gt.NumOut() == 0 || gt.Out(gt.NumOut()-1) != busErrType {
			return nil, fmt.Errorf("%s.%s: the Go method does not match the contract", iface, m.name)
		}
		// godbus fills the Sender and the Message; it stores each argument
		// into a Variant, which takes anything (only the count must match),
		// and the checks below read the arguments as they came, from the
		// message body.
		in := []reflect.Type{senderType, messageType}
		for range m.args {
			in = append(in, variantType)
		}
		out := make([]reflect.Type, gt.NumOut())
		for i := range out {
			out[i] = gt.Out(i)
		}
		m := m
		fn := reflect.MakeFunc(reflect.FuncOf(in, out, false), func(args []reflect.Value) (results []reflect.Value) {
			fail := func(err error) []reflect.Value {
				res := make([]reflect.Value, len(out))
				for i := range out[:len(out)-1] {
					res[i] = reflect.Zero(out[i])
				}
				res[len(out)-1] = reflect.ValueOf(toBus(err))
				return res
			}
			vals := args[1].Interface().(godbus.Message).Body
			if len(vals) != len(m.args) {
				return fail(errdefs.Errorf(errdefs.ErrInvalidArgument, "%s.%s takes %d arguments, got %d", iface, m.name, len(m.args), len(vals)))
			}
			consumed := false
			defer func() {
				if p := recover(); p != nil {
					fmt.Fprintf(os.Stderr, "hostd: panic in %s.%s: %v\n%s", iface, m.name, p, debug.Stack())
					if !consumed {
						closeFDs(vals)
					}
					results = fail(errdefs.Errorf(errdefs.ErrFailed, "internal error in hostd handling %s.%s: %v (please report it)", iface, m.name, p))
				}
			}()
			if err := checkArgs(iface, m, vals); err != nil {
				closeFDs(vals)
				return fail(err)
			}
			call := make([]reflect.Value, 0, gt.NumIn())
			j := 0
			for i := 0; i < gt.NumIn(); i++ {
				if gt.In(i) == senderType {
					call = append(call, args[0])
					continue
				}
				p := reflect.New(gt.In(i))
				if err := godbus.Store([]any{vals[j]}, p.Interface()); err != nil {
					closeFDs(vals)
					return fail(errdefs.Errorf(errdefs.ErrInvalidArgument, "%s.%s: argument %s: %v", iface, m.name, m.args[j].name, err))
				}
				call = append(call, p.Elem())
				j++
			}
			// File descriptors passed where the contract takes them ("h",
			// "a(sh)") are the method's to close; any other (inside options,
			// say) would stay open in hostd for good.
			for i, a := range m.args {
				if a.sig != "h" && a.sig != fileListSig {
					closeFDs(vals[i : i+1])
				}
			}
			consumed = true
			return gm.Call(call)
		})
		table[m.name] = fn.Interface()
	}
	return table, nil
}

// signatureOf is the D-Bus signature of a value decoded from a message.
func signatureOf(v any) (sig string) {
	defer func() {
		if recover() != nil {
			sig = "?"
		}
	}()
	if v == nil {
		return ""
	}
	return godbus.SignatureOf(v).String()
}

// checkArgs checks the arguments of a call against the contract: each of
// the signature the XML gives, every string within the limits.
func checkArgs(iface string, m contractMethod, vals []any) error {
	for i, a := range m.args {
		if a.sig == fileListSig && isFileList(vals[i]) {
			continue
		}
		if got := signatureOf(vals[i]); got != a.sig {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s.%s: argument %s must be %s, got %s",
				iface, m.name, a.name, describeSignature(a.sig), describeSignature(got))
		}
		// A command run in a container may well contain newlines or tabs.
		control := m.name == "ContainerExec" && a.name == "args"
		if err := checkValue(a.name, vals[i], control, 0); err != nil {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s.%s: %v", iface, m.name, err)
		}
	}
	return nil
}

// checkValue applies the limits to every string in v.
func checkValue(what string, v any, control bool, depth int) error {
	if depth > 8 {
		return fmt.Errorf("%s: nested too deeply", what)
	}
	switch x := v.(type) {
	case string:
		return checkString(what, x, maxString, control)
	case godbus.ObjectPath:
		return checkString(what, string(x), maxString, false)
	case []string:
		if len(x) > maxItems {
			return fmt.Errorf("%s has %d entries; at most %d are accepted", what, len(x), maxItems)
		}
		for i, s := range x {
			if err := checkString(fmt.Sprintf("%s[%d]", what, i), s, maxString, control); err != nil {
				return err
			}
		}
	case godbus.Variant:
		return checkValue(what, x.Value(), control, depth+1)
	case map[string]godbus.Variant:
		if len(x) > maxItems {
			return fmt.Errorf("%s has %d entries; at most %d are accepted", what, len(x), maxItems)
		}
		for k, val := range x {
			if err := checkString(what+" key", k, maxOptionKey, false); err != nil {
				return err
			}
			if err := checkValue(fmt.Sprintf("%s %q", what, k), val.Value(), control, depth+1); err != nil {
				return err
			}
		}
	default:
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Slice, reflect.Array:
			if rv.Len() > maxItems*64 {
				return fmt.Errorf("%s has %d entries; at most %d are accepted", what, rv.Len(), maxItems*64)
			}
			if rv.Type().Elem().Kind() == reflect.Uint8 {
				return nil
			}
			for i := 0; i < rv.Len(); i++ {
				if err := checkValue(fmt.Sprintf("%s[%d]", what, i), rv.Index(i).Interface(), control, depth+1); err != nil {
					return err
				}
			}
		case reflect.Map:
			if rv.Len() > maxItems {
				return fmt.Errorf("%s has %d entries; at most %d are accepted", what, rv.Len(), maxItems)
			}
			it := rv.MapRange()
			for it.Next() {
				if err := checkValue(what+" key", it.Key().Interface(), false, depth+1); err != nil {
					return err
				}
				if err := checkValue(what+" value", it.Value().Interface(), control, depth+1); err != nil {
					return err
				}
			}
		case reflect.Struct:
			for i := 0; i < rv.NumField(); i++ {
				if rv.Type().Field(i).IsExported() {
					if err := checkValue(what, rv.Field(i).Interface(), control, depth+1); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// checkString refuses a string longer than max bytes, not UTF-8, or with a
// NUL or (unless control) another control character.
func checkString(what, s string, max int, control bool) error {
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes long; at most %d are accepted", what, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fmt.Errorf("%s contains a NUL byte (at byte %d)", what, i)
	}
	if control {
		return nil
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s contains the control character %q (at byte %d)", what, r, i)
		}
	}
	return nil
}

// closeFDs closes every file descriptor in vals, however deep.
func closeFDs(vals []any) {
	for _, v := range vals {
		closeFDsIn(reflect.ValueOf(v), 0)
	}
}

func closeFDsIn(v reflect.Value, depth int) {
	if !v.IsValid() || depth > 64 {
		return
	}
	if v.Type() == reflect.TypeOf(godbus.UnixFD(0)) {
		if fd := int(v.Int()); fd > 2 {
			os.NewFile(uintptr(fd), "fd").Close()
		}
		return
	}
	if v.Type() == reflect.TypeOf(godbus.Variant{}) {
		closeFDsIn(reflect.ValueOf(v.Interface().(godbus.Variant).Value()), depth+1)
		return
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if !v.IsNil() {
			closeFDsIn(v.Elem(), depth+1)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := 0; i < v.Len(); i++ {
			closeFDsIn(v.Index(i), depth+1)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			closeFDsIn(it.Value(), depth+1)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				closeFDsIn(v.Field(i), depth+1)
			}
		}
	}
}

// fileListSig is a list of named file descriptors: (name, fd) pairs. (An
// "ah" cannot be used: godbus v5.2.4's decoder panics on an array of file
// descriptors in a message that carries them, which would kill hostd.)
const fileListSig = "a(sh)"

// FileArg is one element of an a(sh) argument: a file's name (for
// messages) and its descriptor.
type FileArg struct {
	Name string
	FD   godbus.UnixFD
}

// isFileList says whether v is an a(sh) as godbus decodes it (structs
// arrive as []any), with names within the limits.
func isFileList(v any) bool {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || rv.Kind() != reflect.Slice || rv.Len() > maxItems {
		return false
	}
	for i := 0; i < rv.Len(); i++ {
		el, ok := rv.Index(i).Interface().([]any)
		if !ok || len(el) != 2 {
			return false
		}
		name, ok := el[0].(string)
		if !ok || checkString("file name", name, maxString, false) != nil {
			return false
		}
		if _, ok := el[1].(godbus.UnixFD); !ok {
			return false
		}
	}
	return true
}
