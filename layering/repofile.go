package layering

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// NeverExpire is the Repo.MetadataExpire of a repository whose metadata never
// expires (`metadata_expire=-1` or `never`).
const NeverExpire time.Duration = -1

// DefaultMetadataExpire is dnf's default for metadata_expire (48 hours).
const DefaultMetadataExpire = 48 * time.Hour

// Repo is one repository section of a .repo file.
type Repo struct {
	// ID is the section name, e.g. "fedora".
	ID string
	// Name is the human name; it defaults to ID.
	Name string
	// BaseURLs are the base URLs in order of preference, variables expanded.
	BaseURLs []string
	// Metalink and MirrorList are recorded but not used: hostctl needs BaseURLs.
	Metalink, MirrorList string
	// Enabled is false when the repository is disabled (default true).
	Enabled bool
	// GPGCheck asks for the signature of each package to be verified (default false, as dnf).
	GPGCheck bool
	// GPGKeys are the URLs of the keys that sign the packages, variables expanded.
	GPGKeys []string
	// MetadataExpire is how long fetched metadata stays fresh; NeverExpire for never.
	MetadataExpire time.Duration
	// File and Line locate the section header.
	File string
	Line int
}

// RepoFileError is a problem in a .repo file, located by file and line.
type RepoFileError struct {
	File string
	Line int
	Msg  string
}

// Error returns "FILE:LINE: message".
func (e *RepoFileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// LoadRepoDir reads every *.repo file of dir (e.g. TREE/etc/yum.repos.d) in
// name order, expanding vars ($basearch, $releasever, ...). A repository id
// defined twice, in one file or two, is an error. A missing dir yields no repos.
func LoadRepoDir(dir string, vars map[string]string) ([]Repo, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.repo"))
	if err != nil {
		return nil, fmt.Errorf("list repo files in %s: %w", dir, err)
	}
	sort.Strings(names)
	var all []Repo
	seen := map[string]Repo{}
	for _, name := range names {
		repos, err := loadRepoFile(name, vars)
		if err != nil {
			return nil, err
		}
		for _, r := range repos {
			if prev, ok := seen[r.ID]; ok {
				return nil, &RepoFileError{File: r.File, Line: r.Line,
					Msg: fmt.Sprintf("repository %q is already defined at %s:%d; rename one of them", r.ID, prev.File, prev.Line)}
			}
			seen[r.ID] = r
			all = append(all, r)
		}
	}
	return all, nil
}

func loadRepoFile(name string, vars map[string]string) ([]Repo, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open repo file: %w", err)
	}
	defer f.Close()
	return ParseRepoFile(name, f, vars)
}

// maxRepoLine bounds one line of a .repo file.
const maxRepoLine = 1 << 20

// ParseRepoFile parses the .repo INI text of r; name is used in errors and
// recorded in each Repo. Keys hostctl does not know are ignored, as dnf
// ignores them; values of known keys are validated.
func ParseRepoFile(name string, r io.Reader, vars map[string]string) ([]Repo, error) {
	p := iniParser{file: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxRepoLine)
	for sc.Scan() {
		p.line++
		if err := p.feed(sc.Text()); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &RepoFileError{File: name, Line: p.line + 1, Msg: "line too long"}
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	var repos []Repo
	for _, s := range p.sections {
		repo, err := s.repo(name, vars)
		if err != nil {
			return nil, err
		}
		repos = append(repos, repo)
	}
	return repos, nil
}

type iniValue struct {
	value string
	line  int
}

type iniSection struct {
	id   string
	line int
	keys map[string]iniValue
}

type iniParser struct {
	file     string
	line     int
	sections []*iniSection
	lastKey  string // key a continuation line extends
}

func (p *iniParser) errorf(format string, a ...any) error {
	return &RepoFileError{File: p.file, Line: p.line, Msg: fmt.Sprintf(format, a...)}
}

func (p *iniParser) feed(raw string) error {
	if strings.ContainsRune(raw, 0) {
		return p.errorf("NUL byte in line")
	}
	trimmed := strings.TrimSpace(raw)
	if trimmed == "" {
		p.lastKey = ""
		return nil
	}
	if trimmed[0] == '#' || trimmed[0] == ';' {
		return nil
	}
	// A line that starts with whitespace continues the previous value
	// (several baseurl lines are written this way).
	if raw[0] == ' ' || raw[0] == '\t' {
		if p.lastKey != "" {
			s := p.sections[len(p.sections)-1]
			v := s.keys[p.lastKey]
			v.value += "\n" + trimmed
			s.keys[p.lastKey] = v
			return nil
		}
	}
	if trimmed[0] == '[' {
		if !strings.HasSuffix(trimmed, "]") {
			return p.errorf("section header %q has no closing ]", trimmed)
		}
		id := strings.TrimSpace(trimmed[1 : len(trimmed)-1])
		if err := validRepoID(id); err != nil {
			return p.errorf("%v", err)
		}
		for _, s := range p.sections {
			if s.id == id {
				return p.errorf("repository %q is already defined at line %d", id, s.line)
			}
		}
		p.sections = append(p.sections, &iniSection{id: id, line: p.line, keys: map[string]iniValue{}})
		p.lastKey = ""
		return nil
	}
	key, value, ok := strings.Cut(trimmed, "=")
	if !ok {
		return p.errorf("expected key=value or [section], got %q", trimmed)
	}
	key = strings.ToLower(strings.TrimSpace(key))
	if key == "" {
		return p.errorf("empty key before =")
	}
	if len(p.sections) == 0 {
		return p.errorf("key %q before the first [section]", key)
	}
	s := p.sections[len(p.sections)-1]
	// As in Python's configparser, which dnf uses: a repeated key replaces the earlier one.
	s.keys[key] = iniValue{value: strings.TrimSpace(value), line: p.line}
	p.lastKey = key
	return nil
}

// validRepoID accepts the characters dnf accepts in repository ids.
func validRepoID(id string) error {
	if id == "" {
		return errors.New("empty repository id in []")
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.', c == ':':
		default:
			return fmt.Errorf("repository id %q has invalid character %q (allowed: letters, digits, - _ . :)", id, c)
		}
	}
	return nil
}

func (s *iniSection) repo(file string, vars map[string]string) (Repo, error) {
	r := Repo{ID: s.id, Name: s.id, Enabled: true, MetadataExpire: DefaultMetadataExpire, File: file, Line: s.line}
	bad := func(key string, format string, a ...any) error {
		return &RepoFileError{File: file, Line: s.keys[key].line,
			Msg: fmt.Sprintf("repository %q: %s: %s", s.id, key, fmt.Sprintf(format, a...))}
	}
	var err error
	keys := make([]string, 0, len(s.keys))
	for key := range s.keys {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool { return s.keys[keys[i]].line < s.keys[keys[j]].line })
	for _, key := range keys {
		val := ExpandVars(s.keys[key].value, vars)
		switch key {
		case "name":
			r.Name = val
		case "baseurl":
			r.BaseURLs = splitList(val)
			for _, u := range r.BaseURLs {
				if !strings.Contains(u, "://") {
					return r, bad(key, "%q is not a URL (want http://, https:// or file://)", u)
				}
			}
		case "metalink":
			r.Metalink = val
		case "mirrorlist":
			r.MirrorList = val
		case "gpgkey":
			r.GPGKeys = splitList(val)
		case "enabled":
			if r.Enabled, err = parseBool(val); err != nil {
				return r, bad(key, "%v", err)
			}
		case "gpgcheck":
			if r.GPGCheck, err = parseBool(val); err != nil {
				return r, bad(key, "%v", err)
			}
		case "metadata_expire":
			if r.MetadataExpire, err = ParseMetadataExpire(val); err != nil {
				return r, bad(key, "%v", err)
			}
		}
	}
	if r.Enabled && len(r.BaseURLs) == 0 {
		msg := "no baseurl"
		if r.Metalink != "" || r.MirrorList != "" {
			msg += " (metalink and mirrorlist are not supported; add a baseurl)"
		} else {
			msg += "; add baseurl= or set enabled=0"
		}
		return r, &RepoFileError{File: file, Line: s.line, Msg: fmt.Sprintf("repository %q: %s", s.id, msg)}
	}
	return r, nil
}

// splitList splits a dnf list value on commas and whitespace (newlines included).
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(c rune) bool {
		return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
	})
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use 1 or 0)", v)
}

// ParseMetadataExpire parses a dnf metadata_expire value: a number of
// seconds with an optional unit s, m, h or d, or -1 / "never" for NeverExpire.
func ParseMetadataExpire(v string) (time.Duration, error) {
	v = strings.TrimSpace(strings.ToLower(v))
	if v == "never" || v == "-1" {
		return NeverExpire, nil
	}
	if v == "" {
		return 0, errors.New("empty value (want e.g. 6h, 2d, 3600 or never)")
	}
	unit := time.Second
	switch v[len(v)-1] {
	case 's':
		v = v[:len(v)-1]
	case 'm':
		unit, v = time.Minute, v[:len(v)-1]
	case 'h':
		unit, v = time.Hour, v[:len(v)-1]
	case 'd':
		unit, v = 24*time.Hour, v[:len(v)-1]
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || !isDecimal(v) {
		return 0, fmt.Errorf("%q is not a duration (want e.g. 6h, 2d, 3600 or never)", v)
	}
	d := n * float64(unit)
	if d > float64(1<<62) {
		return NeverExpire, nil
	}
	return time.Duration(d), nil
}

// ExpandVars replaces $name and ${name} in s for each name in vars (dnf's
// $basearch, $releasever, ...). Unknown variables are left as written, as dnf does.
func ExpandVars(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") || len(vars) == 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '{' {
			if end := strings.IndexByte(s[i+2:], '}'); end >= 0 {
				name := s[i+2 : i+2+end]
				if val, ok := vars[name]; ok {
					b.WriteString(val)
					i += end + 3
					continue
				}
			}
			b.WriteByte('$')
			i++
			continue
		}
		j := i + 1
		for j < len(s) && isVarChar(s[j]) {
			j++
		}
		if val, ok := vars[s[i+1:j]]; ok && j > i+1 {
			b.WriteString(val)
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	return b.String()
}

// isDecimal reports whether v is digits with an optional fraction, as libdnf accepts.
func isDecimal(v string) bool {
	whole, frac, hasDot := strings.Cut(v, ".")
	if whole == "" || hasDot && frac == "" {
		return false
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isVarChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
