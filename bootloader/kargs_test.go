package bootloader

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// kv renders args as KEY, KEY=VALUE (unquoted) for comparison.
func kv(k Kargs) []string {
	var out []string
	for _, a := range k.Args() {
		if a.HasValue {
			out = append(out, a.Key+"="+a.Value)
		} else {
			out = append(out, a.Key)
		}
	}
	return out
}

func TestParseKargs(t *testing.T) {
	tests := []struct {
		in   string
		want []string // as kv renders them
		str  string   // String(); "" means same as in
	}{
		{in: "", want: nil},
		{in: "   \t ", want: nil, str: " "},
		{in: "quiet", want: []string{"quiet"}},
		{in: "root=/dev/sda1 ro quiet", want: []string{"root=/dev/sda1", "ro", "quiet"}},
		{in: "  root=/dev/sda1\t\tro\n", want: []string{"root=/dev/sda1", "ro"}, str: "root=/dev/sda1 ro"},
		{in: "root=UUID=abc-def", want: []string{"root=UUID=abc-def"}},
		{in: "rd.lvm=", want: []string{"rd.lvm="}},
		{in: `foo="a b"`, want: []string{"foo=a b"}},
		{in: `foo="a b" bar`, want: []string{"foo=a b", "bar"}},
		{in: `"foo=a b" bar`, want: []string{"foo=a b", "bar"}},
		{in: `"quiet"`, want: []string{"quiet"}},
		{in: `foo=""`, want: []string{"foo="}},
		{in: `foo="`, want: []string{"foo="}},
		{in: `"foo="`, want: []string{"foo="}},
		{in: `foo=a"b c"d e`, want: []string{`foo=a"b c"d`, "e"}},
		{in: `dyndbg="file x.c +p" quiet`, want: []string{"dyndbg=file x.c +p", "quiet"}},
		{in: `foo="unterminated and more`, want: []string{"foo=unterminated and more"}},
		{in: `a b="c d`, want: []string{"a", "b=c d"}},
		{in: `=x`, want: []string{"=x"}},
		{in: `=x=y`, want: []string{"=x=y"}},
		{in: `console=tty0 console=ttyS0,115200n8`, want: []string{"console=tty0", "console=ttyS0,115200n8"}},
		{in: `ostree=/ostree/boot.1/testos/abc/0`, want: []string{"ostree=/ostree/boot.1/testos/abc/0"}},
	}
	for _, tt := range tests {
		k := ParseKargs(tt.in)
		if got := kv(k); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseKargs(%q) = %q, want %q", tt.in, got, tt.want)
		}
		want := tt.str
		if want == "" {
			want = tt.in
		}
		if want == " " {
			want = ""
		}
		if got := k.String(); got != want {
			t.Errorf("ParseKargs(%q).String() = %q, want %q", tt.in, got, want)
		}
	}
}

func TestKargsGetHas(t *testing.T) {
	k := ParseKargs(`console=tty0 quiet console="ttyS0,115200 n8" empty=`)
	if got := k.Get("console"); !reflect.DeepEqual(got, []string{"tty0", "ttyS0,115200 n8"}) {
		t.Errorf("Get(console) = %q", got)
	}
	if got := k.Get("quiet"); !reflect.DeepEqual(got, []string{""}) {
		t.Errorf("Get(quiet) = %q", got)
	}
	if got := k.Get("nope"); got != nil {
		t.Errorf("Get(nope) = %q", got)
	}
	if !k.Has("quiet") || !k.Has("empty") || k.Has("nope") || k.Len() != 4 {
		t.Errorf("Has/Len wrong: %v %v %v %d", k.Has("quiet"), k.Has("empty"), k.Has("nope"), k.Len())
	}
}

func TestArgStringBuiltByHand(t *testing.T) {
	for _, tt := range []struct {
		a    Arg
		want string
	}{
		{Arg{Key: "quiet"}, "quiet"},
		{Arg{Key: "k", HasValue: true}, "k="},
		{Arg{Key: "k", Value: "v", HasValue: true}, "k=v"},
		{Arg{Key: "k", Value: "a b", HasValue: true}, `k="a b"`},
	} {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.a, got, tt.want)
		}
		if back := parseArg(tt.a.String()); !back.same(tt.a) {
			t.Errorf("parse(%q) = %#v, want %#v", tt.a.String(), back, tt.a)
		}
	}
}

// TestKargsEdits follows the cases of ostree's tests/test-kargs.c and of
// rpm-ostree's kargs tests (append, replace, delete semantics).
func TestKargsEdits(t *testing.T) {
	type op struct {
		kind, arg string
	}
	tests := []struct {
		name    string
		start   string
		ops     []op
		want    string
		wantErr error  // errors.Is target, nil for success
		errText string // substring of the error
	}{
		{name: "append new", start: "ro", ops: []op{{"append", "quiet"}}, want: "ro quiet"},
		{name: "append repeats key", start: "console=tty0", ops: []op{{"append", "console=ttyS0"}}, want: "console=tty0 console=ttyS0"},
		{name: "append same kv twice", start: "a=1", ops: []op{{"append", "a=1"}}, want: "a=1 a=1"},
		{name: "append several", start: "", ops: []op{{"append", `x=1 y="a b" z`}}, want: `x=1 y="a b" z`},
		{name: "append empty", start: "ro", ops: []op{{"append", "  "}}, errText: "empty argument"},
		{name: "append unterminated", start: "ro", ops: []op{{"append", `x="a`}}, errText: "unterminated"},
		{name: "append after unterminated", start: `x="a`, ops: []op{{"append", `y`}}, errText: "unterminated"},
		{name: "append NUL", start: "", ops: []op{{"append", "a\x00b"}}, errText: "NUL"},
		{name: "append empty key", start: "", ops: []op{{"append", `""`}}, errText: "empty key"},
		{name: "append if missing", start: "a=1", ops: []op{{"appendif", "a=2 b=3"}}, want: "a=1 b=3"},

		{name: "replace single", start: "ro foo=bar quiet", ops: []op{{"replace", "foo=baz"}}, want: "ro foo=baz quiet"},
		{name: "replace old=new", start: "foo=1 foo=2", ops: []op{{"replace", "foo=2=3"}}, want: "foo=1 foo=3"},
		{name: "replace to bare", start: "foo=1", ops: []op{{"replace", "foo"}}, want: "foo"},
		{name: "replace bare to value", start: "foo", ops: []op{{"replace", "foo=1"}}, want: "foo=1"},
		{name: "replace missing key", start: "ro", ops: []op{{"replace", "foo=1"}}, wantErr: ErrKargNotFound, errText: `no argument "foo"`},
		{name: "replace missing old", start: "foo=1", ops: []op{{"replace", "foo=2=3"}}, wantErr: ErrKargNotFound, errText: "no argument foo=2"},
		{name: "replace ambiguous", start: "foo=1 foo=2", ops: []op{{"replace", "foo=3"}}, wantErr: ErrKargAmbiguous, errText: "foo=OLD=NEW"},
		{name: "replace quoted old", start: `foo="a b" foo=c`, ops: []op{{"replace", `foo="a b"=d`}}, want: "foo=d foo=c"},
		{name: "replace equals inside quotes is the value", start: `foo=x`, ops: []op{{"replace", `foo="a=b"`}}, want: `foo="a=b"`},
		{name: "replace value with equals is old=new", start: "root=UUID=1", ops: []op{{"replace", "root=UUID=2"}}, wantErr: ErrKargNotFound, errText: "quote"},
		{name: "replace value with equals quoted old", start: "root=UUID=1", ops: []op{{"replace", `root="UUID=1"=UUID=2`}}, want: "root=UUID=2"},
		{name: "replace value with equals quoted new", start: "root=UUID=1", ops: []op{{"replace", `root="UUID=2"`}}, want: `root="UUID=2"`},
		{name: "replace unpaired quotes", start: "a=x b", ops: []op{{"replace", `"a=x"=y`}}, errText: "quotes do not pair up"},
		{name: "replace keeps order", start: "a b=1 c", ops: []op{{"replace", "b=2"}}, want: "a b=2 c"},
		{name: "replace atomic", start: "a=1 b=2", ops: []op{{"replace", "a=9 c=1"}}, want: "a=1 b=2", errText: `no argument "c"`},

		{name: "delete key single", start: "ro foo=bar quiet", ops: []op{{"delete", "foo"}}, want: "ro quiet"},
		{name: "delete kv single", start: "ro foo=bar", ops: []op{{"delete", "foo=bar"}}, want: "ro"},
		{name: "delete kv single wrong value", start: "foo=bar", ops: []op{{"delete", "foo=baz"}}, wantErr: ErrKargNotFound, errText: `the argument is "foo=bar"`},
		{name: "delete bare with value given", start: "foo", ops: []op{{"delete", "foo=1"}}, wantErr: ErrKargNotFound},
		{name: "delete missing", start: "ro", ops: []op{{"delete", "foo"}}, wantErr: ErrKargNotFound, errText: `no argument "foo"`},
		{name: "delete one of many", start: "console=tty0 console=ttyS0", ops: []op{{"delete", "console=ttyS0"}}, want: "console=tty0"},
		{name: "delete many by key ambiguous", start: "console=tty0 console=ttyS0", ops: []op{{"delete", "console"}}, wantErr: ErrKargAmbiguous, errText: "console=VALUE"},
		{name: "delete bare among many", start: "foo=1 foo foo=2", ops: []op{{"delete", "foo"}}, want: "foo=1 foo=2"},
		{name: "delete empty value among many", start: "foo=1 foo= foo=2", ops: []op{{"delete", "foo="}}, want: "foo=1 foo=2"},
		{name: "delete value not among many", start: "foo=1 foo=2", ops: []op{{"delete", "foo=3"}}, wantErr: ErrKargNotFound},
		{name: "delete quoted", start: `a foo="x y" b`, ops: []op{{"delete", `"foo=x y"`}}, want: "a b"},
		{name: "delete all of a key one by one", start: "c=1 c=2", ops: []op{{"delete", "c=1 c=2"}}, want: ""},
		{name: "delete atomic", start: "a b", ops: []op{{"delete", "a c"}}, want: "a b", errText: `no argument "c"`},
		{name: "delete if present", start: "a b", ops: []op{{"deleteif", "a c"}}, want: "b"},
		{name: "delete if present wrong value", start: "a=1", ops: []op{{"deleteif", "a=2"}}, wantErr: ErrKargNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := ParseKargs(tt.start)
			var err error
			for _, o := range tt.ops {
				switch o.kind {
				case "append":
					err = k.Append(o.arg)
				case "appendif":
					err = k.AppendIfMissing(o.arg)
				case "replace":
					err = k.Replace(o.arg)
				case "delete":
					err = k.Delete(o.arg)
				case "deleteif":
					err = k.DeleteIfPresent(o.arg)
				}
				if err != nil {
					break
				}
			}
			if tt.wantErr == nil && tt.errText == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
			} else {
				if err == nil {
					t.Fatalf("no error; kargs now %q", k.String())
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v is not %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not contain %q", err, tt.errText)
				}
				if tt.want == "" {
					tt.want = tt.start // a failed edit changes nothing
				}
			}
			if got := k.String(); got != tt.want {
				t.Errorf("kargs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKargsApplyOrder(t *testing.T) {
	k := ParseKargs("ro console=tty0 rhgb quiet")
	err := k.Apply(KargsEdit{
		Delete:          []string{"rhgb"},
		Replace:         []string{"console=ttyS0"},
		Append:          []string{"console=tty1", "foo=bar"},
		AppendIfMissing: []string{"ro"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.String(), "ro console=ttyS0 quiet console=tty1 foo=bar"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	// Replace runs after Delete and before Append: replacing console after
	// the append above would be ambiguous, but here it is fine.
	before := k.String()
	if err := k.Apply(KargsEdit{Append: []string{"x"}, Replace: []string{"console=ttyS1"}}); !errors.Is(err, ErrKargAmbiguous) {
		t.Fatalf("want ambiguous error, got %v", err)
	}
	if k.String() != before {
		t.Errorf("failed Apply changed kargs to %q", k.String())
	}
}
