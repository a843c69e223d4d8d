package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/fleet"
)

// DefaultConfigPath is where hostd reads its settings (hostd --config
// changes it). It is the host's own /etc: on a booted host, the booted
// deployment's; for `hostd --sysroot DIR` it is still the /etc of the
// machine hostd runs on, not a file inside DIR (as rpm-ostreed reads
// /etc/rpm-ostreed.conf), so give --config to use another.
const DefaultConfigPath = "/etc/hostctl/hostd.conf"

// Automatic update policies (AutomaticUpdatePolicy=), as rpm-ostreed's.
const (
	// PolicyNone: AutomaticUpdateTrigger does nothing.
	PolicyNone = "none"
	// PolicyCheck: it checks the remote and records what it found (CachedUpdate).
	PolicyCheck = "check"
	// PolicyStage: it downloads the update and writes it as the next deployment.
	PolicyStage = "stage"
)

// maxIdleExitTimeout bounds IdleExitTimeout (a year): far above any use,
// and far below a time.Duration overflow.
const maxIdleExitTimeout = 365 * 24 * 3600

// Settings are hostd's settings from hostd.conf.
type Settings struct {
	// AutomaticUpdatePolicy is none, check or stage.
	AutomaticUpdatePolicy string
	// IdleExitTimeout is how long hostd stays with no transaction and no
	// client calls before it exits (D-Bus activation starts it again); 0: never.
	IdleExitTimeout time.Duration
	// RebootStrategy is when an automatically staged update is finalized
	// and the host rebooted into it: off, immediate, periodic or fleet
	// (see reboot.go).
	RebootStrategy string
	// Periodic are the maintenance windows of RebootStrategy=periodic
	// ([Periodic] Window= lines and TimeZone=); nil when none are set.
	Periodic *fleet.Schedule
	// Fleet is the fleet lock of RebootStrategy=fleet ([Fleet]).
	Fleet FleetSettings
	// RpmOstreeCompat says whether hostd also serves rpm-ostree's D-Bus
	// API (org.projectatomic.rpmostree1) for cockpit-ostree, GNOME
	// Software and KDE Discover: CompatOn, CompatOff, or CompatAuto (the
	// default): on unless rpm-ostree is installed, whose rpm-ostreed owns
	// that name. Read when hostd starts; a reload does not add or drop the
	// name.
	RpmOstreeCompat string
}

// RpmOstreeCompat= values.
const (
	CompatAuto = "auto"
	CompatOn   = "true"
	CompatOff  = "false"
)

// ServeRpmOstree tells whether hostd serves rpm-ostree's API under s:
// rpmOstreeInstalled says whether this host has rpm-ostree (what auto
// decides by).
func (s Settings) ServeRpmOstree(rpmOstreeInstalled bool) bool {
	switch s.RpmOstreeCompat {
	case CompatOn:
		return true
	case CompatOff:
		return false
	}
	return !rpmOstreeInstalled
}

// FleetSettings are hostd.conf's [Fleet] section.
type FleetSettings struct {
	// Backend is etcd (a semaphore kept in etcd v3 directly) or fleetlock
	// (Zincati's FleetLock HTTP protocol, to a server such as airlock).
	Backend string
	// Endpoints are the etcd client URLs (Endpoints=URL,URL...).
	Endpoints []string
	// URL is the FleetLock server's base URL.
	URL string
	// Group is the group whose slots this host shares ("default").
	Group string
	// Slots is N for the etcd backend: 0 reads the group's config/slots
	// key (1 when it has none).
	Slots int
	// Prefix is the etcd key prefix (fleet.DefaultPrefix when empty).
	Prefix string
	// CAFile, CertFile and KeyFile are TLS files; Username and Password
	// etcd's authentication.
	CAFile, CertFile, KeyFile, Username, Password string
	// RetryInterval is how often hostd asks again for a slot it was
	// refused, or tries again after a failed step.
	RetryInterval time.Duration
}

// Reboot strategies (RebootStrategy=).
const (
	// RebootOff: an automatically staged update waits for whoever reboots
	// the host next (ostree-finalize-staged.service finalizes it then).
	RebootOff = "off"
	// RebootImmediate: hostd finalizes it and reboots at once.
	RebootImmediate = "immediate"
	// RebootPeriodic: only inside a maintenance window.
	RebootPeriodic = "periodic"
	// RebootFleet: only while holding one of the N slots of its group.
	RebootFleet = "fleet"
)

// Fleet lock backends ([Fleet] Backend=).
const (
	BackendEtcd      = "etcd"
	BackendFleetLock = "fleetlock"
)

// defaultRetryInterval is [Fleet] RetryInterval's default (Zincati asks
// its FleetLock server about as often).
const defaultRetryInterval = 5 * time.Minute

// DefaultSettings are the settings with no hostd.conf: no automatic
// updates, never exit when idle, no reboots by hostd.
func DefaultSettings() Settings {
	return Settings{AutomaticUpdatePolicy: PolicyNone, RebootStrategy: RebootOff, RpmOstreeCompat: CompatAuto,
		Fleet: FleetSettings{Backend: BackendEtcd, Group: "default", RetryInterval: defaultRetryInterval}}
}

// ConfigError is a hostd.conf line hostd cannot use: it names the file,
// the line and the key.
type ConfigError struct {
	Path string
	Line int
	Key  string
	Msg  string
}

// Error implements error.
func (e *ConfigError) Error() string {
	where := e.Path
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.Path, e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: %s: %s", where, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", where, e.Msg)
}

// ParseSettings reads hostd.conf text: an INI file (a GKeyFile, like
// rpm-ostreed.conf). Its [Daemon] section may set AutomaticUpdatePolicy
// (none, check or stage, case-insensitive; "off" means none),
// IdleExitTimeout (seconds, 0 for never), RebootStrategy (off,
// immediate, periodic or fleet) and RpmOstreeCompat (auto, true or false;
// also yes, no, 1, 0); [Periodic] the maintenance windows
// (Window=DAYS HH:MM MINUTES, one per line, as many lines as windows) and
// TimeZone=; [Fleet] the fleet lock (Backend=etcd|fleetlock,
// Endpoints=URL[,URL...], URL=, Group=, Slots=, Prefix=, CAFile=,
// CertFile=, KeyFile=, Username=, Password=, RetryInterval=SECONDS).
// Comments start with # or ;. Other sections are ignored (later versions
// may add some); an unknown key in a known section, a key other than
// Window given twice, a line that is neither a section, a comment nor
// KEY=VALUE, a bad value, or a strategy its section does not complete
// (periodic with no window, fleet with no endpoint) is an error naming
// path, the line and the key. So are [Fleet] TLS keys that cannot work: a
// relative CAFile, CertFile or KeyFile, a CertFile without its KeyFile or
// the reverse, and TLS files for a backend with no https:// URL (the files
// themselves are read when the fleet lock is used: fleet.TLSConfig). Keys
// not set keep their defaults.
func ParseSettings(path string, r io.Reader) (Settings, error) {
	s := DefaultSettings()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	section := ""
	seen := map[string]int{}
	var windows []string
	timeZone, strategyLine := "", 0
	windowLine := 0
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") || len(line) < 3 || strings.ContainsAny(line[1:len(line)-1], "[]") {
				return s, &ConfigError{Path: path, Line: n, Msg: fmt.Sprintf("bad section header %q: write it as [Daemon]", line)}
			}
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" {
			return s, &ConfigError{Path: path, Line: n, Msg: fmt.Sprintf("%q is not KEY=VALUE", line)}
		}
		if section == "" {
			return s, &ConfigError{Path: path, Line: n, Key: key, Msg: "set before any section: put it under [Daemon]"}
		}
		keys, known := sectionKeys[section]
		if !known {
			continue
		}
		bad := func(format string, a ...any) error {
			return &ConfigError{Path: path, Line: n, Key: key, Msg: fmt.Sprintf(format, a...)}
		}
		if !slices.Contains(keys, key) {
			return s, bad("unknown key in [%s] (known: %s)", section, strings.Join(keys, ", "))
		}
		if prev, dup := seen[section+"/"+key]; dup && key != "Window" {
			return s, bad("set twice (first on line %d)", prev)
		}
		seen[section+"/"+key] = n
		var err error
		switch section + "/" + key {
		case "Daemon/AutomaticUpdatePolicy":
			switch p := strings.ToLower(val); p {
			case PolicyNone, "off":
				s.AutomaticUpdatePolicy = PolicyNone
			case PolicyCheck, PolicyStage:
				s.AutomaticUpdatePolicy = p
			default:
				return s, bad("%q is not a policy: use none, check or stage", val)
			}
		case "Daemon/IdleExitTimeout":
			s.IdleExitTimeout, err = parseSeconds(val, 0)
		case "Daemon/RpmOstreeCompat":
			switch strings.ToLower(val) {
			case "true", "yes", "1":
				s.RpmOstreeCompat = CompatOn
			case "false", "no", "0":
				s.RpmOstreeCompat = CompatOff
			case "auto":
				s.RpmOstreeCompat = CompatAuto
			default:
				return s, bad("%q is not one of auto, true or false", val)
			}
		case "Daemon/RebootStrategy":
			switch r := strings.ToLower(val); r {
			case RebootOff, RebootImmediate, RebootPeriodic, RebootFleet:
				s.RebootStrategy, strategyLine = r, n
			default:
				return s, bad("%q is not a reboot strategy: use off, immediate, periodic or fleet", val)
			}
		case "Periodic/Window":
			if _, werr := fleet.ParseWindow(val); werr != nil {
				return s, bad("%v", werr)
			}
			windows, windowLine = append(windows, val), n
		case "Periodic/TimeZone":
			if _, zerr := fleet.ParseSchedule([]string{"Mon 00:00 1"}, val); zerr != nil {
				return s, bad("%v", zerr)
			}
			timeZone = val
		case "Fleet/Backend":
			switch b := strings.ToLower(val); b {
			case BackendEtcd, BackendFleetLock:
				s.Fleet.Backend = b
			default:
				return s, bad("%q is not a fleet lock backend: use etcd or fleetlock", val)
			}
		case "Fleet/Endpoints":
			s.Fleet.Endpoints = nil
			for _, u := range strings.Split(val, ",") {
				if u = strings.TrimSpace(u); u != "" {
					if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
						return s, bad("%q is not an etcd client URL (http://HOST:2379 or https://...)", u)
					}
					s.Fleet.Endpoints = append(s.Fleet.Endpoints, u)
				}
			}
		case "Fleet/URL":
			if !strings.HasPrefix(val, "http://") && !strings.HasPrefix(val, "https://") {
				return s, bad("%q is not a FleetLock server URL (http://HOST[:PORT] or https://...)", val)
			}
			s.Fleet.URL = val
		case "Fleet/Group":
			if val == "" || len(val) > 128 || strings.ContainsAny(val, "/ \t") {
				return s, bad("%q is not a group name: 1 to 128 characters, no slash or space", val)
			}
			s.Fleet.Group = val
		case "Fleet/Slots":
			n, perr := strconv.ParseUint(val, 10, 16)
			if perr != nil {
				return s, bad("%q is not a number of slots (0: the group's own setting in etcd)", val)
			}
			s.Fleet.Slots = int(n)
		case "Fleet/Prefix":
			s.Fleet.Prefix = val
		case "Fleet/CAFile", "Fleet/CertFile", "Fleet/KeyFile":
			if val != "" && !filepath.IsAbs(val) {
				return s, bad("%q is a relative path: hostd does not run in the directory it is relative to; write the full path, such as /etc/hostctl/%s", val, filepath.Base(val))
			}
			switch key {
			case "CAFile":
				s.Fleet.CAFile = val
			case "CertFile":
				s.Fleet.CertFile = val
			default:
				s.Fleet.KeyFile = val
			}
		case "Fleet/Username":
			s.Fleet.Username = val
		case "Fleet/Password":
			s.Fleet.Password = val
		case "Fleet/RetryInterval":
			s.Fleet.RetryInterval, err = parseSeconds(val, 1)
		}
		if err != nil {
			return s, bad("%v", err)
		}
	}
	if err := sc.Err(); err != nil {
		return s, &ConfigError{Path: path, Msg: fmt.Sprintf("read: %v", err)}
	}
	if len(windows) == 0 && timeZone != "" {
		return s, &ConfigError{Path: path, Line: seen["Periodic/TimeZone"], Key: "TimeZone", Msg: "a time zone but no window: add Window=DAYS HH:MM MINUTES lines under [Periodic]"}
	}
	if len(windows) > 0 {
		sched, err := fleet.ParseSchedule(windows, timeZone)
		if err != nil {
			return s, &ConfigError{Path: path, Line: windowLine, Key: "Window", Msg: err.Error()}
		}
		s.Periodic = sched
	}
	if err := checkFleetTLS(path, s.Fleet, seen); err != nil {
		return s, err
	}
	switch {
	case s.RebootStrategy == RebootPeriodic && s.Periodic == nil:
		return s, &ConfigError{Path: path, Line: strategyLine, Key: "RebootStrategy",
			Msg: "periodic needs a maintenance window: add [Periodic] with a line such as Window=Mon-Fri 22:30 60"}
	case s.RebootStrategy == RebootFleet && s.Fleet.Backend == BackendEtcd && len(s.Fleet.Endpoints) == 0:
		return s, &ConfigError{Path: path, Line: strategyLine, Key: "RebootStrategy",
			Msg: "fleet needs the fleet lock: add [Fleet] with Endpoints=http://ETCD:2379 (or Backend=fleetlock and URL=)"}
	case s.RebootStrategy == RebootFleet && s.Fleet.Backend == BackendFleetLock && s.Fleet.URL == "":
		return s, &ConfigError{Path: path, Line: strategyLine, Key: "RebootStrategy",
			Msg: "fleet with Backend=fleetlock needs the server: add URL=https://FLEETLOCK-SERVER under [Fleet]"}
	}
	return s, nil
}

// checkFleetTLS refuses [Fleet] TLS keys that cannot work: a client
// certificate without its key (or a key without its certificate), and TLS
// files for a backend none of whose URLs is https:// (the etcd client
// ignores them for http:// endpoints). seen gives the keys' lines.
func checkFleetTLS(path string, f FleetSettings, seen map[string]int) error {
	at := func(key, msg string) error {
		return &ConfigError{Path: path, Line: seen["Fleet/"+key], Key: key, Msg: msg}
	}
	switch {
	case f.CertFile != "" && f.KeyFile == "":
		return at("CertFile", "a client certificate needs its private key: add KeyFile=/PATH/TO/KEY.pem under [Fleet] (or drop CertFile=)")
	case f.KeyFile != "" && f.CertFile == "":
		return at("KeyFile", "a private key needs its client certificate: add CertFile=/PATH/TO/CERT.pem under [Fleet] (or drop KeyFile=)")
	}
	key := "CertFile" // KeyFile goes with it (above)
	switch {
	case f.CAFile != "":
		key = "CAFile"
	case f.CertFile == "":
		return nil
	}
	var urls []string
	if f.Backend == BackendFleetLock {
		if f.URL != "" {
			urls = []string{f.URL}
		}
	} else {
		urls = f.Endpoints
	}
	if len(urls) == 0 || slices.ContainsFunc(urls, func(u string) bool { return strings.HasPrefix(u, "https://") }) {
		return nil
	}
	if f.Backend == BackendFleetLock {
		return at(key, fmt.Sprintf("TLS files are set but URL=%s is http://: write URL=https://... (or drop the TLS keys)", f.URL))
	}
	return at(key, "TLS files are set but no etcd endpoint is https:// (the etcd client ignores them for http://): write Endpoints=https://HOST:2379,... (or drop the TLS keys)")
}

// sectionKeys are the keys each known section may set.
var sectionKeys = map[string][]string{
	"Daemon":   {"AutomaticUpdatePolicy", "IdleExitTimeout", "RebootStrategy", "RpmOstreeCompat"},
	"Periodic": {"Window", "TimeZone"},
	"Fleet": {"Backend", "Endpoints", "URL", "Group", "Slots", "Prefix", "CAFile", "CertFile", "KeyFile",
		"Username", "Password", "RetryInterval"},
}

// parseSeconds reads a number of seconds from min to maxIdleExitTimeout.
func parseSeconds(val string, min uint64) (time.Duration, error) {
	secs, err := strconv.ParseUint(val, 10, 64)
	if err != nil || secs < min || secs > maxIdleExitTimeout {
		return 0, fmt.Errorf("%q is not a number of seconds from %d to %d", val, min, maxIdleExitTimeout)
	}
	return time.Duration(secs) * time.Second, nil
}

// LoadSettings reads the settings from path; a missing file gives the
// defaults. A file hostd cannot use is an errdefs.ErrInvalidArgument
// wrapping its *ConfigError.
func LoadSettings(path string) (Settings, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultSettings(), nil
	}
	if err != nil {
		return DefaultSettings(), errdefs.Wrap(errdefs.ErrFailed, fmt.Errorf("read %s: %w", path, err))
	}
	defer f.Close()
	s, err := ParseSettings(path, f)
	if err != nil {
		return DefaultSettings(), errdefs.Wrap(errdefs.ErrInvalidArgument, fmt.Errorf("%w; fix the file and run `hostctl reload`", err))
	}
	return s, nil
}
