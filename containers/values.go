package containers

import (
	"crypto/rand"
	"fmt"
	"os"

	"sort"
	"strconv"
	"strings"
)

// DefaultRuntime is the OCI runtime when none is configured, as in atomic
// (util.RUNC_PATH).
const DefaultRuntime = "/usr/bin/runc"

// forcedVariables are set by hostctl on every render and cannot be given with
// --set (atomic's TEMPLATE_FORCED_VARIABLES).
var forcedVariables = [...]string{"DESTDIR", "NAME", "EXEC_START", "EXEC_STOP",
	"EXEC_STARTPRE", "EXEC_STOPPOST", "HOST_UID", "HOST_GID", "IMAGE_ID", "IMAGE_NAME"}

// IsForced reports whether name is one of the variables hostctl always sets
// itself (DESTDIR, NAME, EXEC_*, HOST_UID, HOST_GID, IMAGE_ID, IMAGE_NAME).
func IsForced(name string) bool {
	for _, f := range forcedVariables {
		if f == name {
			return true
		}
	}
	return false
}

// ValueInputs is everything the template values of one slot come from.
type ValueInputs struct {
	Name        string // the container name: NAME
	Image       string // the image as the user named it: IMAGE_NAME
	ImageID     string // the image's id (manifest digest without "sha256:"): IMAGE_ID
	Destination string // the slot directory, .../NAME.0 or .../NAME.1: DESTDIR
	HostUID     int    // HOST_UID
	HostGID     int    // HOST_GID

	// Runtime is the OCI runtime hostctl runs (DefaultRuntime if empty). It is
	// the default of RUNTIME and the program of the EXEC_* commands; like
	// atomic, a --set RUNTIME changes the variable, not the commands.
	Runtime         string
	RuntimeFeatures RuntimeFeatures
	// UnitTemplate is the systemd unit template that will be rendered; its
	// text decides between the run/kill and the pid-file commands.
	UnitTemplate string
	// Capabilities is what ALL_PROCESS_CAPABILITIES lists (see
	// AllProcessCapabilities).
	Capabilities []string

	Stored   map[string]string // values of the slot being updated (from its info file); nil on install
	Set      map[string]string // --set NAME=VALUE
	Defaults map[string]string // the image's manifest.json defaultValues

	// NewUUID makes the UUID when nothing else sets one; nil means a random
	// version 4 UUID.
	NewUUID func() (string, error)
}

// ResolveValues computes the values templates are rendered with, the way
// atomic's SystemContainers._amend_values does:
//
//  1. the stored values of the slot being updated (none on install),
//     overridden by --set;
//  2. then, for each of RUN_DIRECTORY (/run), PIDFILE
//     ($RUN_DIRECTORY/container-NAME.pid), CONF_DIRECTORY (/etc),
//     STATE_DIRECTORY (/var/lib), ALL_PROCESS_CAPABILITIES and RUNTIME that is
//     still unset, the generated default;
//  3. then manifest.json defaultValues, for names still unset (so they never
//     override --set nor the generated defaults);
//  4. then a fresh UUID if still unset;
//  5. last the forced values, which override everything.
//
// A --set of a forced variable or of a name that is not an identifier is an
// error (atomic silently ignores the first and accepts the second).
func ResolveValues(in ValueInputs) (map[string]string, error) {
	if in.Name == "" {
		return nil, fmt.Errorf("resolve template values: the container has no name")
	}
	for _, k := range sortedKeys(in.Set) {
		if !IsIdentifier(k) {
			return nil, fmt.Errorf("--set %s: %q is not a variable name (letters, digits and _, not starting with a digit)", k, k)
		}
		if IsForced(k) {
			return nil, fmt.Errorf("--set %s: %s is set by hostctl and cannot be changed", k, k)
		}
	}
	runtime := in.Runtime
	if runtime == "" {
		runtime = DefaultRuntime
	}

	v := make(map[string]string, len(in.Stored)+len(in.Set)+len(in.Defaults)+16)
	for k, x := range in.Stored {
		v[k] = x
	}
	for k, x := range in.Set {
		v[k] = x
	}
	setDefault := func(k, x string) {
		if _, ok := v[k]; !ok {
			v[k] = x
		}
	}
	setDefault("RUN_DIRECTORY", "/run")
	// Joined as Python's os.path.sep.join: no cleaning of the directory.
	setDefault("PIDFILE", v["RUN_DIRECTORY"]+"/container-"+in.Name+".pid")
	setDefault("CONF_DIRECTORY", "/etc")
	setDefault("STATE_DIRECTORY", "/var/lib")
	setDefault("ALL_PROCESS_CAPABILITIES", FormatCapabilities(in.Capabilities))
	setDefault("RUNTIME", runtime)
	for k, x := range in.Defaults {
		setDefault(k, x)
	}
	if _, ok := v["UUID"]; !ok {
		newUUID := in.NewUUID
		if newUUID == nil {
			newUUID = randomUUID
		}
		u, err := newUUID()
		if err != nil {
			return nil, fmt.Errorf("resolve template values: make UUID: %w", err)
		}
		v["UUID"] = u
	}

	v["DESTDIR"] = in.Destination
	v["NAME"] = in.Name
	d := RuntimeDirectives(runtime, in.Name, v["PIDFILE"], in.RuntimeFeatures,
		TemplateSupportsPidfile(in.UnitTemplate))
	v["EXEC_START"], v["EXEC_STOP"], v["EXEC_STARTPRE"], v["EXEC_STOPPOST"] = d.Start, d.Stop, d.StartPre, d.StopPost
	v["HOST_UID"] = strconv.Itoa(in.HostUID)
	v["HOST_GID"] = strconv.Itoa(in.HostGID)
	v["IMAGE_NAME"] = in.Image
	v["IMAGE_ID"] = in.ImageID
	return v, nil
}

// ParseSetValues splits --set arguments at their first "=" (atomic's
// _split_set_args); a later NAME wins over an earlier one.
func ParseSetValues(args []string) (map[string]string, error) {
	out := make(map[string]string, len(args))
	for _, a := range args {
		k, val, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("--set %q: expected NAME=VALUE", a)
		}
		out[k] = val
	}
	return out, nil
}

// knownCapabilities are the Linux capabilities by number (atomic's KNOWN_CAPS,
// extended to CAP_CHECKPOINT_RESTORE).
var knownCapabilities = [...]string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
	"CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
	"CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"}

// AllProcessCapabilities lists the capabilities the running kernel knows
// (up to /proc/sys/kernel/cap_last_cap); ones newer than hostctl are left out,
// as atomic leaves out the ones capsh prints as numbers.
func AllProcessCapabilities() ([]string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return nil, fmt.Errorf("read the kernel's capabilities: %w", err)
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || last < 0 {
		return nil, fmt.Errorf("read the kernel's capabilities: bad cap_last_cap %q", b)
	}
	n := min(last+1, len(knownCapabilities))
	return append([]string(nil), knownCapabilities[:n]...), nil
}

// FormatCapabilities renders capabilities for ALL_PROCESS_CAPABILITIES: JSON
// strings joined by ",\n" with a final newline, ready to sit inside a JSON
// array of config.json.template (atomic's _get_all_capabilities).
func FormatCapabilities(caps []string) string {
	q := make([]string, len(caps))
	for i, c := range caps {
		q[i] = strconv.Quote(c)
	}
	return strings.Join(q, ",\n") + "\n"
}

func randomUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
