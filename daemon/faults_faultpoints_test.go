//go:build faultpoints

package daemon

import (
	"strings"
	"testing"
)

func TestParseFaults(t *testing.T) {
	for _, c := range []struct {
		spec string
		want string // String() of the result, or the error text wanted
		err  bool
	}{
		{spec: "", want: ""},
		{spec: "upgrade/pull=kill", want: "upgrade/pull=kill"},
		{spec: "upgrade/pull=kill, pkg-change/*=error", want: "upgrade/pull=kill,pkg-change/*=error"},
		{spec: "*/after-swap=error", want: "*/after-swap=error"},
		{spec: "upgrade/pull", want: "want KIND/STEP=kill|error", err: true},
		{spec: "upgrade=kill", want: "want KIND/STEP=kill|error", err: true},
		{spec: "/pull=kill", want: "want KIND/STEP=kill|error", err: true},
		{spec: "upgrade/=kill", want: "want KIND/STEP=kill|error", err: true},
		{spec: "upgrade/pull=explode", want: `unknown action "explode"`, err: true},
	} {
		f, err := ParseFaults(c.spec)
		switch {
		case c.err && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("ParseFaults(%q) error = %v, want one saying %q", c.spec, err, c.want)
		case !c.err && err != nil:
			t.Errorf("ParseFaults(%q): %v", c.spec, err)
		case !c.err && f.String() != c.want:
			t.Errorf("ParseFaults(%q) = %q, want %q", c.spec, f.String(), c.want)
		}
	}
}

func TestFaultMatch(t *testing.T) {
	f, err := ParseFaults("upgrade/pull=kill,*/finish=error,rollback/*=kill")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind, point, want string
	}{
		{"upgrade", "pull", "upgrade/pull=kill"},
		{"upgrade", "deploy", ""},
		{"deploy", "finish", "*/finish=error"},
		{"rollback", "swap", "rollback/*=kill"},
		{"cleanup", "cleanup", ""},
	} {
		got := ""
		if x, ok := f.match(c.kind, c.point); ok {
			got = x.String()
		}
		if got != c.want {
			t.Errorf("match(%s, %s) = %q, want %q", c.kind, c.point, got, c.want)
		}
	}
}
