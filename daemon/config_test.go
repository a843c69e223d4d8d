package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/errdefs"
)

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       Settings
		// errLine and errKey are what the error must name (errLine 0: no error).
		errLine int
		errKey  string
	}{
		{name: "empty", text: "", want: DefaultSettings()},
		{name: "check", text: "[Daemon]\nAutomaticUpdatePolicy=check\n", want: Settings{AutomaticUpdatePolicy: "check"}},
		{name: "stage and idle", text: "# hostd\n[Daemon]\nAutomaticUpdatePolicy = Stage\nIdleExitTimeout=60\n",
			want: Settings{AutomaticUpdatePolicy: "stage", IdleExitTimeout: time.Minute}},
		{name: "off is none", text: "[Daemon]\nAutomaticUpdatePolicy=off\n", want: DefaultSettings()},
		{name: "idle 0", text: "[Daemon]\n; never\nIdleExitTimeout=0\n", want: DefaultSettings()},
		{name: "other section ignored", text: "[Other]\nFoo=bar\n[Daemon]\nIdleExitTimeout=5\n", want: Settings{AutomaticUpdatePolicy: "none", IdleExitTimeout: 5 * time.Second}},
		{name: "bom and crlf", text: "\ufeff[Daemon]\r\nAutomaticUpdatePolicy=check\r\n", want: Settings{AutomaticUpdatePolicy: "check"}},
		{name: "bad policy", text: "[Daemon]\nAutomaticUpdatePolicy=sometimes\n", errLine: 2, errKey: "AutomaticUpdatePolicy"},
		{name: "negative idle", text: "[Daemon]\nAutomaticUpdatePolicy=check\nIdleExitTimeout=-1\n", errLine: 3, errKey: "IdleExitTimeout"},
		{name: "idle not a number", text: "[Daemon]\nIdleExitTimeout=1m\n", errLine: 2, errKey: "IdleExitTimeout"},
		{name: "idle too big", text: "[Daemon]\nIdleExitTimeout=99999999999999999999\n", errLine: 2, errKey: "IdleExitTimeout"},
		{name: "unknown key", text: "[Daemon]\nAutomaticUpdates=check\n", errLine: 2, errKey: "AutomaticUpdates"},
		{name: "twice", text: "[Daemon]\nIdleExitTimeout=1\nIdleExitTimeout=2\n", errLine: 3, errKey: "IdleExitTimeout"},
		{name: "no section", text: "IdleExitTimeout=1\n", errLine: 1, errKey: "IdleExitTimeout"},
		{name: "not key=value", text: "[Daemon]\nstage\n", errLine: 2},
		{name: "bad header", text: "\n[Daemon\n", errLine: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSettings("hostd.conf", strings.NewReader(tc.text))
			if tc.errLine == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got != tc.want {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConfigError, got %v", err)
			}
			if ce.Line != tc.errLine || ce.Key != tc.errKey {
				t.Fatalf("error names line %d key %q, want line %d key %q: %v", ce.Line, ce.Key, tc.errLine, tc.errKey, err)
			}
			want := "hostd.conf:" + strconv.Itoa(tc.errLine)
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.errKey) {
				t.Fatalf("error %q does not name %s and the key", err, want)
			}
		})
	}
}

func TestLoadSettings(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadSettings(filepath.Join(dir, "missing.conf"))
	if err != nil || s != DefaultSettings() {
		t.Fatalf("missing file: %+v, %v; want the defaults", s, err)
	}
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("[Daemon]\nIdleExitTimeout=soon\n"), 0o644)
	s, err = LoadSettings(bad)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || s != DefaultSettings() {
		t.Fatalf("bad file: %+v, %v; want the defaults and InvalidArgument", s, err)
	}
}

// FuzzParseSettings: any text parses to valid settings or to an error that
// names the file; never a panic, never a policy outside the three.
func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{"", "[Daemon]\nAutomaticUpdatePolicy=check\nIdleExitTimeout=60\n", "[Daemon]\nIdleExitTimeout=-1", "[x]\na=b\n[", "=\n[Daemon]\n=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSettings("f.conf", strings.NewReader(text))
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "f.conf") {
				t.Fatalf("error %v is not a ConfigError naming the file", err)
			}
			return
		}
		switch s.AutomaticUpdatePolicy {
		case PolicyNone, PolicyCheck, PolicyStage:
		default:
			t.Fatalf("policy %q", s.AutomaticUpdatePolicy)
		}
		if s.IdleExitTimeout < 0 || s.IdleExitTimeout > maxIdleExitTimeout*time.Second {
			t.Fatalf("idle exit timeout %v", s.IdleExitTimeout)
		}
	})
}
