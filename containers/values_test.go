package containers

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

func fixedUUID() (string, error) { return "11111111-2222-4333-8444-555555555555", nil }

func baseInputs() ValueInputs {
	return ValueInputs{
		Name: "etcd", Image: "registry.local/etcd:latest", ImageID: "abc123",
		Destination: "/var/lib/containers/hostctl/etcd.0", HostUID: 0, HostGID: 0,
		Runtime: "/usr/bin/runc", RuntimeFeatures: RuntimeFeatures{PidFile: true, SystemdCgroup: true},
		UnitTemplate: DefaultUnitTemplate, Capabilities: []string{"CAP_CHOWN", "CAP_KILL"},
		NewUUID: fixedUUID,
	}
}

func TestResolveValuesPrecedence(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*ValueInputs)
		want   map[string]string
	}{
		{"generated defaults", func(*ValueInputs) {}, map[string]string{
			"RUN_DIRECTORY": "/run", "PIDFILE": "/run/container-etcd.pid", "CONF_DIRECTORY": "/etc",
			"STATE_DIRECTORY": "/var/lib", "RUNTIME": "/usr/bin/runc", "UUID": "11111111-2222-4333-8444-555555555555",
			"ALL_PROCESS_CAPABILITIES": "\"CAP_CHOWN\",\n\"CAP_KILL\"\n",
			"NAME":                     "etcd", "DESTDIR": "/var/lib/containers/hostctl/etcd.0", "HOST_UID": "0", "HOST_GID": "0",
			"IMAGE_NAME": "registry.local/etcd:latest", "IMAGE_ID": "abc123",
			"EXEC_START":    "/usr/bin/runc  --systemd-cgroup run -d --pid-file /run/container-etcd.pid 'etcd'",
			"EXEC_STOPPOST": "/usr/bin/runc delete 'etcd'", "EXEC_STOP": "", "EXEC_STARTPRE": "",
		}},
		{"--set beats generated", func(in *ValueInputs) {
			in.Set = map[string]string{"RUN_DIRECTORY": "/srv/run", "STATE_DIRECTORY": "/srv"}
		}, map[string]string{"RUN_DIRECTORY": "/srv/run", "PIDFILE": "/srv/run/container-etcd.pid", "STATE_DIRECTORY": "/srv",
			"EXEC_START": "/usr/bin/runc  --systemd-cgroup run -d --pid-file /srv/run/container-etcd.pid 'etcd'"}},
		{"generated beats defaultValues", func(in *ValueInputs) {
			// etcd's real manifest.json sets CONF_DIRECTORY; atomic ignores it.
			in.Defaults = map[string]string{"CONF_DIRECTORY": "/opt/etc", "RUN_DIRECTORY": "/x", "PORT": "2379"}
		}, map[string]string{"CONF_DIRECTORY": "/etc", "RUN_DIRECTORY": "/run", "PORT": "2379"}},
		{"--set beats defaultValues", func(in *ValueInputs) {
			in.Set = map[string]string{"PORT": "8080"}
			in.Defaults = map[string]string{"PORT": "2379", "HOST": "0.0.0.0"}
		}, map[string]string{"PORT": "8080", "HOST": "0.0.0.0"}},
		{"defaultValues UUID beats a fresh one", func(in *ValueInputs) {
			in.Defaults = map[string]string{"UUID": "from-image"}
		}, map[string]string{"UUID": "from-image"}},
		{"--set UUID beats defaultValues", func(in *ValueInputs) {
			in.Set = map[string]string{"UUID": "mine"}
			in.Defaults = map[string]string{"UUID": "from-image"}
		}, map[string]string{"UUID": "mine"}},
		{"forced beat defaultValues", func(in *ValueInputs) {
			in.Defaults = map[string]string{"NAME": "other", "DESTDIR": "/tmp", "EXEC_START": "rm -rf /"}
		}, map[string]string{"NAME": "etcd", "DESTDIR": "/var/lib/containers/hostctl/etcd.0",
			"EXEC_START": "/usr/bin/runc  --systemd-cgroup run -d --pid-file /run/container-etcd.pid 'etcd'"}},
		{"update keeps stored values, --set overrides them", func(in *ValueInputs) {
			in.Stored = map[string]string{"UUID": "stored-uuid", "PORT": "1", "PIDFILE": "/run/container-etcd.pid",
				"RUN_DIRECTORY": "/run", "NAME": "stale", "IMAGE_ID": "old"}
			in.Set = map[string]string{"PORT": "2", "RUN_DIRECTORY": "/srv/run"}
			in.Defaults = map[string]string{"PORT": "3", "NEW": "n"}
		}, map[string]string{"UUID": "stored-uuid", "PORT": "2", "RUN_DIRECTORY": "/srv/run",
			// atomic keeps a stored PIDFILE even when RUN_DIRECTORY changes
			"PIDFILE": "/run/container-etcd.pid", "NEW": "n", "NAME": "etcd", "IMAGE_ID": "abc123"}},
		{"--set RUNTIME changes the variable, not the commands", func(in *ValueInputs) {
			in.Set = map[string]string{"RUNTIME": "/usr/bin/crun"}
		}, map[string]string{"RUNTIME": "/usr/bin/crun",
			"EXEC_START": "/usr/bin/runc  --systemd-cgroup run -d --pid-file /run/container-etcd.pid 'etcd'"}},
		{"template without pid file support: run and kill", func(in *ValueInputs) {
			in.UnitTemplate = "[Service]\nExecStart=$EXEC_START\nExecStop=$EXEC_STOP\n"
		}, map[string]string{"EXEC_START": "/usr/bin/runc --systemd-cgroup run 'etcd'",
			"EXEC_STOP": "/usr/bin/runc --systemd-cgroup kill 'etcd'", "EXEC_STOPPOST": "", "EXEC_STARTPRE": ""}},
		{"runtime without --pid-file nor --systemd-cgroup", func(in *ValueInputs) {
			in.RuntimeFeatures = RuntimeFeatures{}
		}, map[string]string{"EXEC_START": "/usr/bin/runc run 'etcd'", "EXEC_STOP": "/usr/bin/runc kill 'etcd'"}},
		{"default runtime", func(in *ValueInputs) {
			in.Runtime = ""
			in.RuntimeFeatures = RuntimeFeatures{}
		}, map[string]string{"RUNTIME": DefaultRuntime, "EXEC_START": DefaultRuntime + " run 'etcd'"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInputs()
			tc.modify(&in)
			got, err := ResolveValues(in)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				if got[k] != want {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

func TestResolveValuesRefuses(t *testing.T) {
	for set, want := range map[string]string{"NAME": "set by hostctl", "EXEC_START": "set by hostctl", "A-B": "not a variable name", "": "not a variable name"} {
		in := baseInputs()
		in.Set = map[string]string{set: "x"}
		if _, err := ResolveValues(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--set %q: err = %v, want %q", set, err, want)
		}
	}
	in := baseInputs()
	in.Name = ""
	if _, err := ResolveValues(in); err == nil {
		t.Error("empty name accepted")
	}
}

func TestRandomUUID(t *testing.T) {
	in := baseInputs()
	in.NewUUID = nil
	a, _ := ResolveValues(in)
	b, _ := ResolveValues(in)
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if !re.MatchString(a["UUID"]) || a["UUID"] == b["UUID"] {
		t.Fatalf("UUIDs %q %q", a["UUID"], b["UUID"])
	}
}

func TestParseSetValues(t *testing.T) {
	got, err := ParseSetValues([]string{"A=1", "B=x=y", "A=2", "C="})
	if err != nil || got["A"] != "2" || got["B"] != "x=y" || got["C"] != "" || len(got) != 3 {
		t.Fatalf("ParseSetValues = %v, %v", got, err)
	}
	if _, err := ParseSetValues([]string{"novalue"}); err == nil || !strings.Contains(err.Error(), "NAME=VALUE") {
		t.Fatalf("err = %v", err)
	}
}

func TestAllProcessCapabilities(t *testing.T) {
	caps, err := AllProcessCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) < 38 || caps[0] != "CAP_CHOWN" || caps[21] != "CAP_SYS_ADMIN" {
		t.Fatalf("caps = %v", caps)
	}
	// capsh, where installed, decodes the same names.
	if capsh, err := exec.LookPath("capsh"); err == nil {
		out, _ := exec.Command(capsh, "--print").Output()
		if !strings.Contains(strings.ToUpper(string(out)), caps[len(caps)-1]) {
			t.Logf("capsh does not list %s", caps[len(caps)-1])
		}
	}
}

func TestProbeRuntime(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	f, err := ProbeRuntime(context.Background(), runc)
	if err != nil {
		t.Fatal(err)
	}
	if !f.PidFile || !f.SystemdCgroup {
		t.Fatalf("runc features = %+v, runc 1.x has both", f)
	}
	if _, err := ProbeRuntime(context.Background(), "/nonexistent/runc"); err == nil {
		t.Fatal("missing runtime accepted")
	}
}
