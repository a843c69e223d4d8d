package containers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	imgspec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// CheckConfig parses a rendered config.json and checks that runc can run it
// as a system container: valid JSON of the OCI runtime spec (version 1.x),
// root.path "rootfs" and root.readonly true (the checkout is shared with the
// OSTree repository and must never be written), a process with arguments and
// an absolute cwd, absolute mount destinations, known and unique namespaces.
func CheckConfig(data []byte) (*specs.Spec, error) {
	var s specs.Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("config.json: %w", describeJSONError(data, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("config.json: text after the JSON object")
	}
	if !strings.HasPrefix(s.Version, "1.") {
		return nil, fmt.Errorf("config.json: ociVersion %q: only OCI runtime spec 1.x is supported", s.Version)
	}
	if s.Root == nil {
		return nil, fmt.Errorf("config.json: no \"root\": set root.path to \"rootfs\" and root.readonly to true")
	}
	if !s.Root.Readonly {
		return nil, fmt.Errorf("config.json: root.readonly is false: system containers run from a read-only rootfs; set \"readonly\": true and bind-mount the directories the service writes")
	}
	if s.Root.Path != "rootfs" {
		return nil, fmt.Errorf("config.json: root.path is %q: it must be \"rootfs\", the checkout of the image in the container's directory", s.Root.Path)
	}
	if s.Process == nil || len(s.Process.Args) == 0 {
		return nil, fmt.Errorf("config.json: no process.args: say which program the container runs")
	}
	if !path.IsAbs(s.Process.Cwd) {
		return nil, fmt.Errorf("config.json: process.cwd %q is not an absolute path", s.Process.Cwd)
	}
	for i, m := range s.Mounts {
		if !path.IsAbs(m.Destination) {
			return nil, fmt.Errorf("config.json: mounts[%d].destination %q is not an absolute path", i, m.Destination)
		}
	}
	if s.Linux != nil {
		known := []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.MountNamespace,
			specs.IPCNamespace, specs.UTSNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace}
		seen := map[specs.LinuxNamespaceType]bool{}
		for _, ns := range s.Linux.Namespaces {
			if !slices.Contains(known, ns.Type) {
				return nil, fmt.Errorf("config.json: unknown namespace type %q", ns.Type)
			}
			if seen[ns.Type] {
				return nil, fmt.Errorf("config.json: namespace %q is listed twice", ns.Type)
			}
			seen[ns.Type] = true
		}
	}
	return &s, nil
}

// describeJSONError adds the line and column to a JSON syntax or type error.
func describeJSONError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	// The offset is just past the offending byte.
	col := max(int(off)-bytes.LastIndexByte(before, '\n')-1, 1)
	return fmt.Errorf("line %d, col %d: %w", line, col, err)
}

// BindSources lists the host paths config.json bind-mounts: mounts whose type
// contains "bind" (what atomic checks) or whose options hold "bind" or "rbind".
func BindSources(s *specs.Spec) []string {
	var out []string
	for _, m := range s.Mounts {
		if m.Source == "" {
			continue
		}
		if strings.Contains(m.Type, "bind") || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind") {
			out = append(out, m.Source)
		}
	}
	return out
}

// MissingBindSources is BindSources without the ones that exist under
// hostRoot ("/" on a booted host); what DefaultTmpfiles creates.
func MissingBindSources(s *specs.Spec, hostRoot string) []string {
	var out []string
	for _, src := range BindSources(s) {
		if _, err := os.Lstat(filepath.Join(hostRoot, src)); err != nil {
			out = append(out, src)
		}
	}
	return out
}

// DefaultConfig is the config.json of an image without
// /exports/config.json.template. atomic takes "runc spec --rootless" and sets
// root to a read-only "rootfs", terminal off and args ["run.sh"]; this is the
// same spec for a container run by root: the namespaces of "runc spec" minus
// the network one (the rootless spec keeps the host network too) and without
// a user namespace, runc's default mounts and masked paths, and
//
//   - process args, env, cwd and numeric user from the image's config
//     (Entrypoint + Cmd; "run.sh" as atomic when both are empty);
//   - hostname NAME;
//   - $STATE_DIRECTORY/$NAME bind-mounted read-write on /var/lib/$NAME, so the
//     service has a place to keep state (DefaultTmpfiles creates it), and a
//     tmpfs on /tmp.
//
// values must be the resolved values (NAME, STATE_DIRECTORY).
func DefaultConfig(img imgspec.ImageConfig, values map[string]string) ([]byte, error) {
	name := values["NAME"]
	if name == "" {
		return nil, fmt.Errorf("default config.json: no NAME value")
	}
	stateDir := values["STATE_DIRECTORY"]
	if stateDir == "" {
		stateDir = "/var/lib"
	}
	args := append(append([]string(nil), img.Entrypoint...), img.Cmd...)
	if len(args) == 0 {
		args = []string{"run.sh"}
	}
	env := img.Env
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	}
	cwd := img.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	user, err := numericUser(img.User)
	if err != nil {
		return nil, fmt.Errorf("default config.json: %w", err)
	}
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	s := specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: false,
			User:     user,
			Args:     args,
			Env:      env,
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: name,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
			{Destination: "/var/lib/" + name, Type: "bind", Source: strings.TrimRight(stateDir, "/") + "/" + name, Options: []string{"rbind", "rw"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
				"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
				"/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	b, err := json.MarshalIndent(&s, "", "    ")
	if err != nil {
		return nil, fmt.Errorf("default config.json: %w", err)
	}
	return append(b, '\n'), nil
}

// numericUser parses the image's User when it is "", "UID" or "UID:GID".
func numericUser(u string) (specs.User, error) {
	if u == "" {
		return specs.User{}, nil
	}
	us, gs, hasGID := strings.Cut(u, ":")
	uid, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return specs.User{}, fmt.Errorf("image user %q is not numeric: give the image a config.json.template that sets process.user", u)
	}
	gid := uint64(0)
	if hasGID {
		if gid, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return specs.User{}, fmt.Errorf("image user %q has a group that is not numeric: give the image a config.json.template that sets process.user", u)
		}
	}
	return specs.User{UID: uint32(uid), GID: uint32(gid)}, nil
}
