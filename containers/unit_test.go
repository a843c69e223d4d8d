package containers

import (
	"strings"
	"testing"
)

func TestDefaultUnit(t *testing.T) {
	in := baseInputs()
	in.Name = "web"
	in.Destination = "/var/lib/containers/hostctl/web.0"
	values, err := ResolveValues(in)
	if err != nil {
		t.Fatal(err)
	}
	unit, err := RenderUnit(UnitTemplate("", false), values)
	if err != nil {
		t.Fatal(err)
	}
	want := `
[Unit]
Description=web

[Service]
ExecStartPre=
ExecStart=/usr/bin/runc  --systemd-cgroup run -d --pid-file /run/container-web.pid 'web'
ExecStop=
ExecStopPost=/usr/bin/runc delete 'web'
Restart=on-failure
WorkingDirectory=/var/lib/containers/hostctl/web.0
PIDFile=/run/container-web.pid

[Install]
WantedBy=multi-user.target
`
	if unit != want {
		t.Fatalf("default unit:\n%s\nwant:\n%s", unit, want)
	}

	// Without --pid-file the default unit runs the container in the
	// foreground and stops it with kill.
	in.RuntimeFeatures.PidFile = false
	values, _ = ResolveValues(in)
	unit, _ = RenderUnit(DefaultUnitTemplate, values)
	for _, line := range []string{"ExecStart=/usr/bin/runc --systemd-cgroup run 'web'\n",
		"ExecStop=/usr/bin/runc --systemd-cgroup kill 'web'\n", "ExecStopPost=\n", "Restart=on-failure\n"} {
		if !strings.Contains(unit, line) {
			t.Errorf("unit lacks %q:\n%s", line, unit)
		}
	}
}

func TestImageUnitTemplate(t *testing.T) {
	tmpl := "[Service]\nExecStart=$EXEC_START\nExecStop=$EXEC_STOP\nEnvironment=PORT=$PORT\n"
	in := baseInputs()
	in.Name = "web"
	in.UnitTemplate = UnitTemplate(tmpl, true)
	in.Set = map[string]string{"PORT": "9000"}
	values, _ := ResolveValues(in)
	unit, err := RenderUnit(in.UnitTemplate, values)
	if err != nil {
		t.Fatal(err)
	}
	want := "[Service]\nExecStart=/usr/bin/runc --systemd-cgroup run 'web'\nExecStop=/usr/bin/runc --systemd-cgroup kill 'web'\nEnvironment=PORT=9000\n"
	if unit != want {
		t.Fatalf("unit = %q, want %q", unit, want)
	}
	delete(values, "PORT")
	if _, err := RenderUnit(tmpl, values); err == nil || !strings.Contains(err.Error(), "service.template") || !strings.Contains(err.Error(), "$PORT") {
		t.Fatalf("missing PORT: %v", err)
	}
}

func TestTemplateSupportsPidfile(t *testing.T) {
	for tmpl, want := range map[string]bool{
		DefaultUnitTemplate:                   true,
		"$EXEC_STOPPOST $PIDFILE":             true,
		"${EXEC_STOPPOST} $PIDFILE":           false, // literal check, as atomic
		"ExecStart=$EXEC_START\n$PIDFILE":     false,
		"ExecStopPost=$EXEC_STOPPOST\nno pid": false,
	} {
		if got := TemplateSupportsPidfile(tmpl); got != want {
			t.Errorf("TemplateSupportsPidfile(%q) = %v", tmpl, got)
		}
	}
}

func TestTmpfiles(t *testing.T) {
	got, err := RenderTmpfiles("d $STATE_DIRECTORY/$NAME 0700 - - -\n", map[string]string{"STATE_DIRECTORY": "/var/lib", "NAME": "web"})
	if err != nil || got != "d /var/lib/web 0700 - - -\n" {
		t.Fatalf("RenderTmpfiles = %q, %v", got, err)
	}
	if _, err := RenderTmpfiles("d $X", nil); err == nil || !strings.Contains(err.Error(), "tmpfiles.template") {
		t.Fatalf("err = %v", err)
	}
	if got := DefaultTmpfiles([]string{"/var/lib/web", "/run/web"}, 0, 0); got != "d    /var/lib/web   0700 0 0 - -\nd    /run/web   0700 0 0 - -\n" {
		t.Fatalf("DefaultTmpfiles = %q", got)
	}
	if DefaultTmpfiles(nil, 0, 0) != "" {
		t.Fatal("no missing paths, yet tmpfiles content")
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"etcd", "web-2", "a.b_c", "9x"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "../x", ".hidden", "-x", "a b", "it's", strings.Repeat("a", 129)} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestForkingIfDetached(t *testing.T) {
	v := map[string]string{"NAME": "web", "DESTDIR": "/d", "PIDFILE": "/run/container-web.pid", "EXEC_STARTPRE": "", "EXEC_STOP": ""}
	detached := RuntimeDirectives("/usr/bin/runc", "web", v["PIDFILE"], RuntimeFeatures{PidFile: true}, TemplateSupportsPidfile(DefaultUnitTemplate))
	v["EXEC_START"], v["EXEC_STOPPOST"] = detached.Start, detached.StopPost
	unit, err := RenderUnit(DefaultUnitTemplate, v)
	if err != nil {
		t.Fatal(err)
	}
	got := ForkingIfDetached(unit, v["EXEC_START"])
	if !strings.Contains(got, "[Service]\nType=forking\nTimeoutStopSec=10s\nExecStartPre=") || !strings.Contains(got, "PIDFile=/run/container-web.pid") {
		t.Fatalf("detached unit:\n%s", got)
	}
	if again := ForkingIfDetached(got, v["EXEC_START"]); again != got {
		t.Fatalf("applied twice:\n%s", again)
	}
	fg := RuntimeDirectives("/usr/bin/runc", "web", v["PIDFILE"], RuntimeFeatures{}, true)
	if got := ForkingIfDetached(unit, fg.Start); got != unit {
		t.Fatalf("foreground form changed:\n%s", got)
	}
}

func TestScopeOf(t *testing.T) {
	tests := []struct{ in, want string }{
		{"12:name=systemd:/system.slice/runc-web.scope\n4:memory:/system.slice/runc-web.scope\n0::/system.slice/runc-web.scope\n", "runc-web.scope"},
		{"1:name=systemd:/machine.slice/x.scope\n0::/other.scope\n", "x.scope"}, // systemd's own hierarchy wins on v1
		{"0::/system.slice/runc-web.scope\n", "runc-web.scope"},
		// A systemd in systemd-nspawn on a hybrid host: name=systemd is the payload's.
		{"9:name=systemd:/payload\n4:memory:/process_api/d050\n0::/payload/system.slice/runc-web.scope\n", "runc-web.scope"},
		{"0::/system.slice/web.service\n", ""},
		{"0::/\n", ""},
		{"0::/.scope\n", ""},
		{"", ""},
		{"garbage", ""},
	}
	for _, tt := range tests {
		if got := scopeOf(tt.in); got != tt.want {
			t.Errorf("scopeOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
