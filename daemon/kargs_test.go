package daemon

import (
	"errors"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/bootloader"
	"github.com/hostctl/hostctl/errdefs"
)

func TestKargsEdits(t *testing.T) {
	const cur = "root=UUID=abc rw quiet console=tty0 console=ttyS0 ostree=/ostree/boot.1/hostos/x/0"
	for _, tc := range []struct {
		name  string
		edits []string
		want  string // the user's arguments after, when no error
		err   string // a substring of the error
		kind  error
	}{
		{name: "append", edits: []string{"append=foo=bar"}, want: "root=UUID=abc rw quiet console=tty0 console=ttyS0 foo=bar"},
		{name: "append twice keeps both", edits: []string{"append=quiet"}, want: "root=UUID=abc rw quiet console=tty0 console=ttyS0 quiet"},
		{name: "append-if-missing present", edits: []string{"append-if-missing=quiet"}, want: "root=UUID=abc rw quiet console=tty0 console=ttyS0"},
		{name: "append-if-missing absent", edits: []string{"append-if-missing=nomodeset"}, want: "root=UUID=abc rw quiet console=tty0 console=ttyS0 nomodeset"},
		{name: "delete key", edits: []string{"delete=quiet"}, want: "root=UUID=abc rw console=tty0 console=ttyS0"},
		{name: "delete key=value of several", edits: []string{"delete=console=tty0"}, want: "root=UUID=abc rw quiet console=ttyS0"},
		{name: "delete ambiguous", edits: []string{"delete=console"}, err: `"console"`, kind: errdefs.ErrInvalidArgument},
		{name: "delete absent", edits: []string{"delete=nosuch"}, err: "nosuch", kind: errdefs.ErrInvalidArgument},
		{name: "delete-if-present absent", edits: []string{"delete-if-present=nosuch"}, want: "root=UUID=abc rw quiet console=tty0 console=ttyS0"},
		{name: "replace", edits: []string{`replace=root="UUID=def"`}, want: `root="UUID=def" rw quiet console=tty0 console=ttyS0`},
		{name: "replace splits KEY=OLD=NEW", edits: []string{"replace=root=UUID=def"}, err: "root", kind: errdefs.ErrInvalidArgument},
		{name: "replace old=new", edits: []string{"replace=console=ttyS0=ttyS1"}, want: "root=UUID=abc rw quiet console=tty0 console=ttyS1"},
		{name: "replace ambiguous", edits: []string{"replace=console=ttyS2"}, err: `"console"`, kind: errdefs.ErrInvalidArgument},
		{name: "in order: append then delete", edits: []string{"append=a=1", "delete=a=1"}, want: "root=UUID=abc rw quiet console=tty0 console=ttyS0"},
		{name: "in order: delete then append", edits: []string{"delete=quiet", "append=quiet"}, want: "root=UUID=abc rw console=tty0 console=ttyS0 quiet"},
		{name: "a later failure refuses all", edits: []string{"append=a=1", "delete=console"}, err: "console", kind: errdefs.ErrInvalidArgument},
		{name: "set", edits: []string{"set=a b=c"}, want: "a b=c"},
		{name: "set keeps ostree=", edits: []string{"set=ostree=/evil x"}, want: "x"},
		{name: "ostree= refused", edits: []string{"delete=ostree"}, err: "libostree", kind: errdefs.ErrInvalidArgument},
		{name: "unknown op", edits: []string{"frob=x"}, err: "OP=ARGUMENT", kind: errdefs.ErrInvalidArgument},
		{name: "no op", edits: []string{"quiet"}, err: "OP=ARGUMENT", kind: errdefs.ErrInvalidArgument},
		{name: "empty argument", edits: []string{"append="}, err: "needs a kernel argument", kind: errdefs.ErrInvalidArgument},
		{name: "no edits", edits: nil, err: "at least one edit", kind: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edits, err := parseKargsEdits(tc.edits)
			var k bootloader.Kargs
			if err == nil {
				k, err = applyKargsEdits(cur, edits)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, tc.kind) {
					t.Fatalf("err %v, want one with %q of kind %v", err, tc.err, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := userKargs(k.String()); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if got := k.Get("ostree"); len(got) != 1 || got[0] != "/ostree/boot.1/hostos/x/0" {
				t.Fatalf("ostree= became %q", got)
			}
		})
	}
}

// TestKargsSetKeepsOstreeInPlace: the --editor line unchanged is the same
// options line (libostree writes ostree= last), so it is no change.
func TestKargsSetKeepsOstreeInPlace(t *testing.T) {
	for _, tc := range []struct{ cur, set, want string }{
		{"root=UUID=abc rw quiet ostree=/ostree/boot.1/h/x/0", "root=UUID=abc rw quiet", "root=UUID=abc rw quiet ostree=/ostree/boot.1/h/x/0"},
		{"root=UUID=abc rw ostree=/ostree/boot.1/h/x/0", "root=UUID=abc rw nomodeset", "root=UUID=abc rw nomodeset ostree=/ostree/boot.1/h/x/0"},
		{"ostree=/ostree/boot.1/h/x/0 rw quiet", "rw quiet", "ostree=/ostree/boot.1/h/x/0 rw quiet"},
		{"a ostree=/o b c", "a b c", "a ostree=/o b c"},
		{"a b ostree=/o c d", "x", "x ostree=/o"},
		{"ostree=/o", "", "ostree=/o"},
		{"quiet", "rw", "rw"},
	} {
		edits, err := parseKargsEdits([]string{"set=" + tc.set})
		if err != nil {
			t.Fatal(err)
		}
		k, err := applyKargsEdits(tc.cur, edits)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.String(); got != tc.want {
			t.Errorf("set %q on %q: %q, want %q", tc.set, tc.cur, got, tc.want)
		}
	}
}

func TestUserKargs(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "",
		"ostree=/ostree/boot.0/a/b/0": "",
		"quiet ostree=/x rw":          "quiet rw",
		`a="b c" ostree=/x "d=e f"`:   `a="b c" "d=e f"`,
		"ostreefoo=1 ostree=/x":       "ostreefoo=1",
	} {
		if got := userKargs(in); got != want {
			t.Errorf("userKargs(%q) = %q, want %q", in, got, want)
		}
	}
}
