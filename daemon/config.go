package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hostctl/hostctl/errdefs"
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
}

// DefaultSettings are the settings with no hostd.conf: no automatic
// updates, never exit when idle.
func DefaultSettings() Settings {
	return Settings{AutomaticUpdatePolicy: PolicyNone}
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
// rpm-ostreed.conf) whose [Daemon] section may set AutomaticUpdatePolicy
// (none, check or stage, case-insensitive; "off" means none) and
// IdleExitTimeout (seconds, 0 for never). Comments start with # or ;. Other
// sections are ignored (later versions may add some); an unknown key in
// [Daemon], a key given twice, a line that is neither a section, a
// comment nor KEY=VALUE, or a bad value is an error naming path, the line
// and the key. Keys not set keep their defaults.
func ParseSettings(path string, r io.Reader) (Settings, error) {
	s := DefaultSettings()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	section := ""
	seen := map[string]int{}
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
		if section != "Daemon" {
			continue
		}
		if prev, dup := seen[key]; dup {
			return s, &ConfigError{Path: path, Line: n, Key: key, Msg: fmt.Sprintf("set twice (first on line %d)", prev)}
		}
		seen[key] = n
		switch key {
		case "AutomaticUpdatePolicy":
			switch p := strings.ToLower(val); p {
			case PolicyNone, "off":
				s.AutomaticUpdatePolicy = PolicyNone
			case PolicyCheck, PolicyStage:
				s.AutomaticUpdatePolicy = p
			default:
				return s, &ConfigError{Path: path, Line: n, Key: key, Msg: fmt.Sprintf("%q is not a policy: use none, check or stage", val)}
			}
		case "IdleExitTimeout":
			secs, err := strconv.ParseUint(val, 10, 64)
			if err != nil || secs > maxIdleExitTimeout {
				return s, &ConfigError{Path: path, Line: n, Key: key, Msg: fmt.Sprintf("%q is not a number of seconds from 0 (never) to %d", val, maxIdleExitTimeout)}
			}
			s.IdleExitTimeout = time.Duration(secs) * time.Second
		default:
			return s, &ConfigError{Path: path, Line: n, Key: key, Msg: "unknown key in [Daemon] (known: AutomaticUpdatePolicy, IdleExitTimeout)"}
		}
	}
	if err := sc.Err(); err != nil {
		return s, &ConfigError{Path: path, Msg: fmt.Sprintf("read: %v", err)}
	}
	return s, nil
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
