package containers

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	imgspec "github.com/opencontainers/image-spec/specs-go/v1"
)

const goodConfigTemplate = `{
    "ociVersion": "1.0.0",
    "process": {"terminal": false, "user": {"uid": 0, "gid": 0},
        "args": ["/bin/httpd", "-f", "-p", "$PORT"], "cwd": "/",
        "capabilities": {"bounding": [$ALL_PROCESS_CAPABILITIES]}},
    "root": {"path": "rootfs", "readonly": true},
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/var/lib/$NAME", "type": "bind", "source": "$STATE_DIRECTORY/$NAME", "options": ["rbind", "rw"]},
        {"destination": "/etc/hosts", "type": "none", "source": "/etc/hosts", "options": ["bind", "ro"]}
    ],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
}`

func TestRenderedConfigChecks(t *testing.T) {
	values := map[string]string{"PORT": "8080", "NAME": "web", "STATE_DIRECTORY": "/var/lib",
		"ALL_PROCESS_CAPABILITIES": FormatCapabilities([]string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"})}
	out, err := Render("config.json.template", goodConfigTemplate, values)
	if err != nil {
		t.Fatal(err)
	}
	s, err := CheckConfig([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Process.Args; !slices.Equal(got, []string{"/bin/httpd", "-f", "-p", "8080"}) {
		t.Errorf("args = %v", got)
	}
	if got := s.Process.Capabilities.Bounding; !slices.Equal(got, []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}) {
		t.Errorf("capabilities = %v", got)
	}
	if got := BindSources(s); !slices.Equal(got, []string{"/var/lib/web", "/etc/hosts"}) {
		t.Errorf("BindSources = %v", got)
	}
	host := t.TempDir()
	os.MkdirAll(filepath.Join(host, "etc"), 0o755)
	os.WriteFile(filepath.Join(host, "etc/hosts"), nil, 0o644)
	if got := MissingBindSources(s, host); !slices.Equal(got, []string{"/var/lib/web"}) {
		t.Errorf("MissingBindSources = %v", got)
	}
}

func TestCheckConfigRefuses(t *testing.T) {
	base := `{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs", "readonly": true}}`
	if _, err := CheckConfig([]byte(base)); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for raw, want := range map[string]string{
		`{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs", "readonly": false}}`:                                                             "root.readonly is false",
		`{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}}`:                                                                                "root.readonly is false",
		`{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "/", "readonly": true}}`:                                                                   `root.path is "/"`,
		`{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}}`:                                                                                                            `no "root"`,
		`{"ociVersion": "1.0.2", "root": {"path": "rootfs", "readonly": true}}`:                                                                                                       "no process.args",
		`{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "x"}, "root": {"path": "rootfs", "readonly": true}}`:                                                              "process.cwd",
		`{"ociVersion": "0.5", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs", "readonly": true}}`:                                                                "ociVersion",
		`{"ociVersion": "1.0.2", "process": {"args": "sh", "cwd": "/"}, "root": {"path": "rootfs", "readonly": true}}`:                                                                "cannot unmarshal string",
		`{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs", "readonly": true}, "mounts": [{"destination": "tmp"}]}`:                          "mounts[0].destination",
		`{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs", "readonly": true}, "linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}}`: "listed twice",
		`{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs", "readonly": true}, "linux": {"namespaces": [{"type": "bogus"}]}}`:                "unknown namespace",
		`{}`:     "ociVersion",
		`{"a":}`: "line 1, col 6",
	} {
		_, err := CheckConfig([]byte(raw))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckConfig(%s) = %v, want %q", raw, err, want)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	values := map[string]string{"NAME": "web", "STATE_DIRECTORY": "/var/lib"}
	b, err := DefaultConfig(imgspec.ImageConfig{Entrypoint: []string{"/bin/httpd"}, Cmd: []string{"-f"},
		Env: []string{"A=1"}, WorkingDir: "/srv", User: "1000:1000"}, values)
	if err != nil {
		t.Fatal(err)
	}
	s, err := CheckConfig(b)
	if err != nil {
		t.Fatalf("the default config fails its own check: %v", err)
	}
	if !slices.Equal(s.Process.Args, []string{"/bin/httpd", "-f"}) || s.Process.Cwd != "/srv" ||
		s.Process.User.UID != 1000 || s.Process.User.GID != 1000 || s.Process.Terminal || s.Hostname != "web" {
		t.Errorf("process = %+v", s.Process)
	}
	if !slices.Contains(s.Process.Env, "A=1") || !strings.HasPrefix(s.Process.Env[0], "PATH=") {
		t.Errorf("env = %v", s.Process.Env)
	}
	if got := BindSources(s); !slices.Equal(got, []string{"/var/lib/web"}) {
		t.Errorf("binds = %v", got)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == "network" || ns.Type == "user" {
			t.Errorf("namespace %s in the default config", ns.Type)
		}
	}
	b, _ = DefaultConfig(imgspec.ImageConfig{}, values)
	if s, _ := CheckConfig(b); !slices.Equal(s.Process.Args, []string{"run.sh"}) || s.Process.Cwd != "/" {
		t.Errorf("empty image config: %+v", s.Process)
	}
	if _, err := DefaultConfig(imgspec.ImageConfig{User: "nobody"}, values); err == nil || !strings.Contains(err.Error(), "not numeric") {
		t.Errorf("named user: %v", err)
	}

}

// TestDefaultConfigRunsUnderRunc runs busybox with the default configuration
// under the real runc: the state directory is writable, the rootfs is not.
func TestDefaultConfigRunsUnderRunc(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed")
	}
	if os.Getuid() != 0 {
		t.Skip("runc needs root")
	}
	bundle, state := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(state, "web"), 0o755)
	b, err := DefaultConfig(imgspec.ImageConfig{Cmd: []string{"/bin/busybox", "sh", "-c",
		"echo hello > /var/lib/web/out; if touch /newfile 2>/dev/null; then echo rootfs-writable > /var/lib/web/ro; fi"}},
		map[string]string{"NAME": "web", "STATE_DIRECTORY": state})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644)
	os.MkdirAll(filepath.Join(bundle, "rootfs/bin"), 0o755)
	bb, _ := os.ReadFile(busybox)
	os.WriteFile(filepath.Join(bundle, "rootfs/bin/busybox"), bb, 0o755)
	out, err := exec.Command(runc, "--root", t.TempDir(), "run", "--bundle", bundle, "hostctl-test-default-config").CombinedOutput()
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(state, "web/out")); string(got) != "hello\n" {
		t.Errorf("state dir bind: out = %q", got)
	}
	if _, err := os.Stat(filepath.Join(state, "web/ro")); err == nil {
		t.Error("the rootfs was writable")
	}
}

func FuzzCheckConfig(f *testing.F) {
	f.Add(`{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs", "readonly": true}}`)
	f.Add(`{"ociVersion": "1.0.2", "root": {"path": "rootfs", "readonly": false}, "linux": {"namespaces": [{"type": "pid"}]}}`)
	f.Add(`{"mounts": [{"destination": "/x", "type": "bind", "source": "/y"}]}`)
	f.Fuzz(func(t *testing.T, data string) {
		s, err := CheckConfig([]byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config.json") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		if s.Root.Path != "rootfs" || !s.Root.Readonly || len(s.Process.Args) == 0 {
			t.Fatalf("accepted %q", data)
		}
	})
}
