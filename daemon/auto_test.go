package daemon

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
)

func TestAutomaticPolicy(t *testing.T) {
	for _, tc := range []struct {
		configured, mode, want string
		bad                    bool
	}{
		{configured: PolicyNone, want: PolicyNone},
		{configured: PolicyCheck, want: PolicyCheck},
		{configured: PolicyStage, want: PolicyStage},
		{configured: PolicyNone, mode: "check", want: PolicyCheck},
		{configured: PolicyCheck, mode: "none", want: PolicyNone},
		{configured: PolicyCheck, mode: "Stage", want: PolicyStage},
		{configured: PolicyCheck, mode: "always", bad: true},
	} {
		e := &Engine{settings: Settings{AutomaticUpdatePolicy: tc.configured}}
		got, err := e.AutomaticPolicy(0, "", tc.mode)
		if tc.bad {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("policy %s, mode %q: %v, want an invalid argument", tc.configured, tc.mode, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("policy %s, mode %q: %q, %v; want %q", tc.configured, tc.mode, got, err, tc.want)
		}
	}
}

func TestValidAutomatic(t *testing.T) {
	for mode, ok := range map[string]bool{"check": true, "stage": true, "none": false, "": false, "Check": false} {
		req := dbus.Request{Kind: dbus.AutomaticUpdateKind, Options: dbus.Options{"mode": godbus.MakeVariant(mode)}}
		if err := validAutomatic(req); (err == nil) != ok {
			t.Errorf("mode %q: %v", mode, err)
		}
	}
}

func TestReloadConfigKeepsSettingsOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hostd.conf")
	writeFile(t, path, "[Daemon]\nAutomaticUpdatePolicy=check\nIdleExitTimeout=30\n")
	e := &Engine{cfg: Config{ConfigPath: path}, log: slog.New(slog.DiscardHandler), settings: DefaultSettings()}
	if err := e.ReloadConfig(0, ""); err != nil {
		t.Fatal(err)
	}
	if s := e.Settings(); s.AutomaticUpdatePolicy != PolicyCheck || s.IdleExitTimeout.Seconds() != 30 {
		t.Fatalf("after reload: %+v", s)
	}
	writeFile(t, path, "[Daemon]\nAutomaticUpdatePolicy=stage\nIdleExitTimeout=soon\n")
	err := e.ReloadConfig(0, "")
	var ce *ConfigError
	if !errdefs.IsInvalidArgument(err) || !errors.As(err, &ce) || ce.Line != 3 || ce.Key != "IdleExitTimeout" || ce.Path != path {
		t.Fatalf("bad file: %v", err)
	}
	if s := e.Settings(); s.AutomaticUpdatePolicy != PolicyCheck {
		t.Fatalf("a bad file changed the settings: %+v", s)
	}
}

func TestQuiesceIfIdle(t *testing.T) {
	e := &Engine{active: &txn{}}
	if e.QuiesceIfIdle() {
		t.Fatal("quiesced during a transaction")
	}
	e.active = nil
	if !e.QuiesceIfIdle() {
		t.Fatal("idle engine did not quiesce")
	}
	if _, err := e.Begin(dbus.Request{Kind: "rollback"}); !errdefs.IsBusy(err) {
		t.Fatalf("Begin while exiting: %v, want busy", err)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
