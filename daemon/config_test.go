package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/fleet"
)

// with is DefaultSettings changed by f.
func with(f func(*Settings)) Settings {
	s := DefaultSettings()
	f(&s)
	return s
}

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       Settings
		// errLine and errKey are what the error must name (errLine 0: no error).
		errLine int
		errKey  string
		// errSays is text the error must hold (what to do), if any.
		errSays string
	}{
		{name: "empty", text: "", want: DefaultSettings()},
		{name: "check", text: "[Daemon]\nAutomaticUpdatePolicy=check\n", want: with(func(s *Settings) { s.AutomaticUpdatePolicy = "check" })},
		{name: "stage and idle", text: "# hostd\n[Daemon]\nAutomaticUpdatePolicy = Stage\nIdleExitTimeout=60\n",
			want: with(func(s *Settings) { s.AutomaticUpdatePolicy, s.IdleExitTimeout = "stage", time.Minute })},
		{name: "off is none", text: "[Daemon]\nAutomaticUpdatePolicy=off\n", want: DefaultSettings()},
		{name: "idle 0", text: "[Daemon]\n; never\nIdleExitTimeout=0\n", want: DefaultSettings()},
		{name: "other section ignored", text: "[Other]\nFoo=bar\n[Daemon]\nIdleExitTimeout=5\n", want: with(func(s *Settings) { s.IdleExitTimeout = 5 * time.Second })},
		{name: "bom and crlf", text: "\ufeff[Daemon]\r\nAutomaticUpdatePolicy=check\r\n", want: with(func(s *Settings) { s.AutomaticUpdatePolicy = "check" })},
		{name: "bad policy", text: "[Daemon]\nAutomaticUpdatePolicy=sometimes\n", errLine: 2, errKey: "AutomaticUpdatePolicy"},
		{name: "negative idle", text: "[Daemon]\nAutomaticUpdatePolicy=check\nIdleExitTimeout=-1\n", errLine: 3, errKey: "IdleExitTimeout"},
		{name: "idle not a number", text: "[Daemon]\nIdleExitTimeout=1m\n", errLine: 2, errKey: "IdleExitTimeout"},
		{name: "idle too big", text: "[Daemon]\nIdleExitTimeout=99999999999999999999\n", errLine: 2, errKey: "IdleExitTimeout"},
		{name: "unknown key", text: "[Daemon]\nAutomaticUpdates=check\n", errLine: 2, errKey: "AutomaticUpdates"},
		{name: "twice", text: "[Daemon]\nIdleExitTimeout=1\nIdleExitTimeout=2\n", errLine: 3, errKey: "IdleExitTimeout"},
		{name: "no section", text: "IdleExitTimeout=1\n", errLine: 1, errKey: "IdleExitTimeout"},
		{name: "not key=value", text: "[Daemon]\nstage\n", errLine: 2},
		{name: "bad header", text: "\n[Daemon\n", errLine: 2},
		{name: "immediate", text: "[Daemon]\nRebootStrategy=Immediate\n", want: with(func(s *Settings) { s.RebootStrategy = RebootImmediate })},
		{name: "periodic", text: "[Daemon]\nRebootStrategy=periodic\n[Periodic]\nWindow=Mon-Fri 22:30 60\nWindow=Sat 03:00 120\nTimeZone=UTC\n",
			want: with(func(s *Settings) {
				s.RebootStrategy = RebootPeriodic
				s.Periodic, _ = fleet.ParseSchedule([]string{"Mon-Fri 22:30 60", "Sat 03:00 120"}, "UTC")
			})},
		{name: "fleet etcd", text: "[Daemon]\nRebootStrategy=fleet\n[Fleet]\nEndpoints=http://10.0.0.1:2379, http://10.0.0.2:2379\nGroup=workers\nSlots=2\nRetryInterval=1\n",
			want: with(func(s *Settings) {
				s.RebootStrategy = RebootFleet
				s.Fleet.Endpoints = []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379"}
				s.Fleet.Group, s.Fleet.Slots, s.Fleet.RetryInterval = "workers", 2, time.Second
			})},
		{name: "fleet fleetlock", text: "[Daemon]\nRebootStrategy=fleet\n[Fleet]\nBackend=fleetlock\nURL=https://fl.example.com\n",
			want: with(func(s *Settings) {
				s.RebootStrategy, s.Fleet.Backend, s.Fleet.URL = RebootFleet, BackendFleetLock, "https://fl.example.com"
			})},
		{name: "bad strategy", text: "[Daemon]\nRebootStrategy=now\n", errLine: 2, errKey: "RebootStrategy"},
		{name: "periodic without window", text: "[Daemon]\nRebootStrategy=periodic\n", errLine: 2, errKey: "RebootStrategy"},
		{name: "fleet without endpoints", text: "[Daemon]\nRebootStrategy=fleet\n[Fleet]\nGroup=g\n", errLine: 2, errKey: "RebootStrategy"},
		{name: "fleetlock without url", text: "[Daemon]\nRebootStrategy=fleet\n[Fleet]\nBackend=fleetlock\n", errLine: 2, errKey: "RebootStrategy"},
		{name: "bad window", text: "[Periodic]\nWindow=Someday 22:30 60\n", errLine: 2, errKey: "Window"},
		{name: "bad zone", text: "[Periodic]\nWindow=Mon 22:30 60\nTimeZone=Mars/Base\n", errLine: 3, errKey: "TimeZone"},
		{name: "zone without window", text: "[Periodic]\nTimeZone=UTC\n", errLine: 2, errKey: "TimeZone"},
		{name: "bad endpoint", text: "[Fleet]\nEndpoints=10.0.0.1:2379\n", errLine: 2, errKey: "Endpoints"},
		{name: "bad group", text: "[Fleet]\nGroup=a/b\n", errLine: 2, errKey: "Group"},
		{name: "bad slots", text: "[Fleet]\nSlots=-1\n", errLine: 2, errKey: "Slots"},
		{name: "retry 0", text: "[Fleet]\nRetryInterval=0\n", errLine: 2, errKey: "RetryInterval"},
		{name: "unknown fleet key", text: "[Fleet]\nServer=x\n", errLine: 2, errKey: "Server"},
		{name: "fleet key twice", text: "[Fleet]\nGroup=a\nGroup=b\n", errLine: 3, errKey: "Group"},
		{name: "etcd tls", text: "[Daemon]\nRebootStrategy=fleet\n[Fleet]\nEndpoints=https://etcd1:2379,https://etcd2:2379\n" +
			"CAFile=/etc/hostctl/etcd-ca.pem\nCertFile=/etc/hostctl/etcd-client.pem\nKeyFile = /etc/hostctl/etcd-client-key.pem\n",
			want: with(func(s *Settings) {
				s.RebootStrategy = RebootFleet
				s.Fleet.Endpoints = []string{"https://etcd1:2379", "https://etcd2:2379"}
				s.Fleet.CAFile, s.Fleet.CertFile, s.Fleet.KeyFile = "/etc/hostctl/etcd-ca.pem", "/etc/hostctl/etcd-client.pem", "/etc/hostctl/etcd-client-key.pem"
			})},
		{name: "etcd tls, CA only", text: "[Fleet]\nEndpoints=https://etcd1:2379\nCAFile=/etc/hostctl/etcd-ca.pem\n",
			want: with(func(s *Settings) {
				s.Fleet.Endpoints, s.Fleet.CAFile = []string{"https://etcd1:2379"}, "/etc/hostctl/etcd-ca.pem"
			})},
		{name: "etcd tls, client certificate only (system CAs)", text: "[Fleet]\nEndpoints=http://a:2379,https://etcd1:2379\nCertFile=/c.pem\nKeyFile=/k.pem\n",
			want: with(func(s *Settings) {
				s.Fleet.Endpoints, s.Fleet.CertFile, s.Fleet.KeyFile = []string{"http://a:2379", "https://etcd1:2379"}, "/c.pem", "/k.pem"
			})},
		{name: "fleetlock tls", text: "[Daemon]\nRebootStrategy=fleet\n[Fleet]\nBackend=fleetlock\nURL=https://fl:3333\nCAFile=/etc/ssl/fl-ca.pem\nCertFile=/etc/hostctl/fl.pem\nKeyFile=/etc/hostctl/fl-key.pem\n",
			want: with(func(s *Settings) {
				s.RebootStrategy, s.Fleet.Backend, s.Fleet.URL = RebootFleet, BackendFleetLock, "https://fl:3333"
				s.Fleet.CAFile, s.Fleet.CertFile, s.Fleet.KeyFile = "/etc/ssl/fl-ca.pem", "/etc/hostctl/fl.pem", "/etc/hostctl/fl-key.pem"
			})},
		{name: "empty TLS keys are unset", text: "[Fleet]\nEndpoints=http://a:2379\nCAFile=\nCertFile=\nKeyFile=\n",
			want: with(func(s *Settings) { s.Fleet.Endpoints = []string{"http://a:2379"} })},
		{name: "relative CAFile", text: "[Fleet]\nEndpoints=https://a:2379\nCAFile=etcd-ca.pem\n", errLine: 3, errKey: "CAFile", errSays: "write the full path, such as /etc/hostctl/etcd-ca.pem"},
		{name: "relative CertFile", text: "[Fleet]\nCertFile=./client.pem\nKeyFile=/k.pem\n", errLine: 2, errKey: "CertFile"},
		{name: "relative KeyFile", text: "[Fleet]\nCertFile=/c.pem\nKeyFile=~/key.pem\n", errLine: 3, errKey: "KeyFile", errSays: "write the full path"},
		{name: "relative path up", text: "[Fleet]\nCAFile=../ca.pem\n", errLine: 2, errKey: "CAFile"},
		{name: "certificate without key", text: "[Fleet]\nEndpoints=https://a:2379\nCertFile=/c.pem\n", errLine: 3, errKey: "CertFile", errSays: "add KeyFile="},
		{name: "key without certificate", text: "[Fleet]\nEndpoints=https://a:2379\n\nKeyFile=/k.pem\n", errLine: 4, errKey: "KeyFile", errSays: "add CertFile="},
		{name: "TLS files for http endpoints", text: "[Fleet]\nEndpoints=http://a:2379,http://b:2379\nCertFile=/c.pem\nCAFile=/ca.pem\nKeyFile=/k.pem\n", errLine: 4, errKey: "CAFile", errSays: "write Endpoints=https://"},
		{name: "client certificate for http endpoints", text: "[Fleet]\nCertFile=/c.pem\nKeyFile=/k.pem\nEndpoints=http://a:2379\n", errLine: 2, errKey: "CertFile", errSays: "no etcd endpoint is https://"},
		{name: "TLS files for an http FleetLock URL", text: "[Fleet]\nBackend=fleetlock\nURL=http://fl:3333\nCAFile=/ca.pem\n", errLine: 4, errKey: "CAFile", errSays: "write URL=https://"},
		{name: "TLS files checked against the backend in use", text: "[Fleet]\nBackend=fleetlock\nEndpoints=https://a:2379\nURL=http://fl:3333\nCAFile=/ca.pem\n", errLine: 5, errKey: "CAFile", errSays: "URL=http://fl:3333 is http://"},
		{name: "rpm-ostree compat", text: "[Daemon]\nRpmOstreeCompat=true\n", want: with(func(s *Settings) { s.RpmOstreeCompat = CompatOn })},
		{name: "rpm-ostree compat yes", text: "[Daemon]\nRpmOstreeCompat = Yes\n", want: with(func(s *Settings) { s.RpmOstreeCompat = CompatOn })},
		{name: "rpm-ostree compat off", text: "[Daemon]\nRpmOstreeCompat=false\n", want: with(func(s *Settings) { s.RpmOstreeCompat = CompatOff })},
		{name: "rpm-ostree compat 0", text: "[Daemon]\nRpmOstreeCompat=0\n", want: with(func(s *Settings) { s.RpmOstreeCompat = CompatOff })},
		{name: "rpm-ostree compat auto", text: "[Daemon]\nRpmOstreeCompat=Auto\n", want: DefaultSettings()},
		{name: "bad rpm-ostree compat", text: "[Daemon]\nAutomaticUpdatePolicy=check\nRpmOstreeCompat=maybe\n", errLine: 3, errKey: "RpmOstreeCompat"},
		{name: "rpm-ostree compat twice", text: "[Daemon]\nRpmOstreeCompat=true\nRpmOstreeCompat=false\n", errLine: 3, errKey: "RpmOstreeCompat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSettings("hostd.conf", strings.NewReader(tc.text))
			if tc.errLine == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
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
			if w := tc.errSays; w != "" && !strings.Contains(err.Error(), w) {
				t.Fatalf("error %q does not say %q", err, w)
			}
		})
	}
}

func TestLoadSettings(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadSettings(filepath.Join(dir, "missing.conf"))
	if err != nil || !reflect.DeepEqual(s, DefaultSettings()) {
		t.Fatalf("missing file: %+v, %v; want the defaults", s, err)
	}
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("[Daemon]\nIdleExitTimeout=soon\n"), 0o644)
	s, err = LoadSettings(bad)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !reflect.DeepEqual(s, DefaultSettings()) {
		t.Fatalf("bad file: %+v, %v; want the defaults and InvalidArgument", s, err)
	}
}

// FuzzParseSettings: any text parses to valid settings or to an error that
// names the file; never a panic, never a policy outside the three.
func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{"", "[Daemon]\nAutomaticUpdatePolicy=check\nIdleExitTimeout=60\n", "[Daemon]\nIdleExitTimeout=-1", "[x]\na=b\n[", "=\n[Daemon]\n=x",
		"[Daemon]\nRebootStrategy=periodic\n[Periodic]\nWindow=Mon-Fri 22:30 60\nTimeZone=Europe/Berlin\n",
		"[Daemon]\nRebootStrategy=fleet\n[Fleet]\nEndpoints=http://a:1\nSlots=3\nGroup=g\n", "[Daemon]\nRpmOstreeCompat=true\n", "[Daemon]\nRpmOstreeCompat=\n"} {
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
		switch {
		case s.RebootStrategy == RebootPeriodic && (s.Periodic == nil || len(s.Periodic.Windows) == 0):
			t.Fatalf("periodic without windows")
		case s.RebootStrategy == RebootFleet && len(s.Fleet.Endpoints) == 0 && s.Fleet.URL == "":
			t.Fatalf("fleet without a fleet lock")
		case s.Fleet.RetryInterval < time.Second:
			t.Fatalf("retry interval %v", s.Fleet.RetryInterval)
		}
	})
}

func TestServeRpmOstree(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		installed bool
		want      bool
	}{
		{CompatAuto, false, true}, {CompatAuto, true, false}, {"", false, true},
		{CompatOn, true, true}, {CompatOn, false, true},
		{CompatOff, false, false}, {CompatOff, true, false},
	} {
		if got := (Settings{RpmOstreeCompat: tc.mode}).ServeRpmOstree(tc.installed); got != tc.want {
			t.Errorf("RpmOstreeCompat=%q, rpm-ostree installed %v: serve %v, want %v", tc.mode, tc.installed, got, tc.want)
		}
	}
}
