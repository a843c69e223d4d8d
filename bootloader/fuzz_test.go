package bootloader

import (
	"reflect"
	"strings"
	"testing"
)

func FuzzParseEntry(f *testing.F) {
	f.Add("ostree-2-testos.conf", []byte(libostreeEntry))
	f.Add("x+3-1.conf", []byte("# c\r\n  title\t\tMy OS  \r\nlinux /vmlinuz\ninitrd /a\ninitrd /b\noptions a=1\noptions b=2\nsort-key s\nx-y z\n"))
	f.Add("a+0.conf", []byte("linux /k"))
	f.Add("a.conf", []byte("linux /a\nlinux /b\n"))
	f.Add("a.conf", []byte("title x\ninitrd /i\n"))
	f.Add("a.conf", []byte("linux /a\noptions\n"))
	f.Add("a.conf", []byte("linux /a\x00"))
	f.Add("a.conf", []byte("linux \t/a \r\r\n"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		e, err := ParseEntry(name, data)
		if err != nil {
			if !strings.Contains(err.Error(), "boot entry") {
				t.Fatalf("error does not say what it parsed: %v", err)
			}
			return
		}
		if e.Linux == "" || e.Name != name {
			t.Fatalf("parsed entry without linux or with another name: %+v", e)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("parsed entry does not validate: %v", err)
		}
		out := e.Marshal()
		back, err := ParseEntry(name, out)
		if err != nil {
			t.Fatalf("reparse of %q: %v", out, err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("round trip changed the entry:\n%+v\n%+v", e, back)
		}
		if string(back.Marshal()) != string(out) {
			t.Fatalf("Marshal not stable")
		}
	})
}

func FuzzParseKargs(f *testing.F) {
	for _, s := range []string{
		"", "quiet", "root=/dev/sda1 ro quiet", `foo="a b" bar`, `"foo=a b" bar`, `foo="`, `"foo="`,
		`foo=a"b c"d e`, `foo="unterminated and more`, "=x=y", "a\tb\nc\vd\fe\rf",
		"ostree=/ostree/boot.1/testos/abc/0 console=tty0 console=ttyS0,115200n8",
	} {
		f.Add(s, "append", "x=1")
		f.Add(s, "replace", "foo=b")
		f.Add(s, "delete", "foo")
	}
	f.Add("foo=1 foo=2", "replace", "foo=2=3")
	f.Add("root=UUID=1", "replace", `root="UUID=1"=UUID=2`)
	f.Add("a=1 a a=", "delete", "a=")
	f.Add("a=x b", "replace", `"a=x"=y`)
	f.Fuzz(func(t *testing.T, cmdline, op, arg string) {
		k := ParseKargs(cmdline)
		roundTrip(t, k)
		before := k.String()
		var err error
		switch op {
		case "append":
			err = k.Append(arg)
		case "appendif":
			err = k.AppendIfMissing(arg)
		case "replace":
			err = k.Replace(arg)
		case "delete":
			err = k.Delete(arg)
		case "deleteif":
			err = k.DeleteIfPresent(arg)
		default:
			return
		}
		if err != nil {
			if k.String() != before {
				t.Fatalf("failed %s %q changed %q to %q", op, arg, before, k.String())
			}
			return
		}
		roundTrip(t, k)
		if op == "append" {
			for _, tok := range splitArgs(arg) {
				if !strings.HasSuffix(k.String(), tok) && !strings.Contains(k.String(), tok+" ") {
					t.Fatalf("append %q: %q missing from %q", arg, tok, k.String())
				}
			}
		}
	})
}

// roundTrip checks parse(String(k)) == k, quoting included.
func roundTrip(t *testing.T, k Kargs) {
	t.Helper()
	s := k.String()
	back := ParseKargs(s)
	if !reflect.DeepEqual(back.Args(), k.Args()) {
		t.Fatalf("round trip of %q:\n%#v\n%#v", s, k.Args(), back.Args())
	}
	for _, a := range k.Args() {
		if a.String() == "" {
			t.Fatalf("empty argument in %q", s)
		}
	}
}
