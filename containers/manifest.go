package containers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// Manifest is an image's /exports/manifest.json, as atomic reads it.
type Manifest struct {
	// Version is the "version" field as written ("1.0" in practice); atomic
	// does not interpret it and neither does hostctl.
	Version string
	// DefaultValues are the image's template values, each converted to the
	// string Python's str() makes of it (true -> "True", 8080 -> "8080").
	DefaultValues map[string]string
	// RenameFiles maps a path under hostfs/ (as "/etc/foo") to the host path it
	// is copied to; its values are templates (see RenderRenameFiles).
	RenameFiles map[string]string
	// InstalledFilesTemplate lists the host paths (after renaming) whose
	// content is a template rendered while copying.
	InstalledFilesTemplate []string
	// NoContainerService: the image only copies files to the host, there is
	// no unit and no rootfs is kept.
	NoContainerService bool
	// UseLinks: files copied under /usr may be hard links (default true).
	UseLinks bool
	// Unknown lists the top-level keys hostctl does not know, sorted.
	Unknown []string
}

// DefaultManifest is what an image without manifest.json gets.
func DefaultManifest() *Manifest {
	return &Manifest{DefaultValues: map[string]string{}, RenameFiles: map[string]string{}, UseLinks: true}
}

// ParseManifest parses manifest.json. Booleans follow Python's truth rules,
// as atomic tests them with "not": false, 0, "", null, [] and {} are false,
// anything else (including the string "false") is true. defaultValues entries
// must be strings, numbers, booleans or null; renameFiles must map absolute
// paths to strings; installedFilesTemplate must be a list of strings.
func ParseManifest(data []byte) (*Manifest, error) {
	var top map[string]json.RawMessage
	if err := strictUnmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", describeJSONError(data, err))
	}
	if top == nil {
		return nil, fmt.Errorf("manifest.json: the top level must be a JSON object, not null")
	}
	m := DefaultManifest()
	for _, key := range sortedRawKeys(top) {
		raw := top[key]
		var err error
		switch key {
		case "version":
			m.Version, err = versionText(raw)
		case "defaultValues":
			m.DefaultValues, err = parseDefaultValues(raw)
		case "renameFiles":
			m.RenameFiles, err = parseRenameFiles(raw)
		case "installedFilesTemplate":
			err = strictUnmarshal(raw, &m.InstalledFilesTemplate)
			if err == nil && bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
				m.InstalledFilesTemplate = nil
			}
		case "noContainerService":
			m.NoContainerService, err = pythonTruth(raw)
		case "useLinks":
			m.UseLinks, err = pythonTruth(raw)
		default:
			m.Unknown = append(m.Unknown, key)
		}
		if err != nil {
			return nil, fmt.Errorf("manifest.json: %q: %w", key, err)
		}
	}
	return m, nil
}

// HasContainerService reports whether the image runs as a service.
func (m *Manifest) HasContainerService() bool { return !m.NoContainerService }

// RenderRenameFiles renders the renameFiles destinations with values (atomic's
// _update_rename_file_value); a destination must come out absolute, without
// ".." components.
func RenderRenameFiles(rename map[string]string, values map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(rename))
	for _, k := range sortedKeys(rename) {
		v, err := Render("manifest.json renameFiles["+k+"]", rename[k], values)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(v, "/") || hasDotDot(v) {
			return nil, fmt.Errorf("manifest.json: renameFiles[%s] renders to %q: it must be an absolute path without \"..\"", k, v)
		}
		out[k] = v
	}
	return out, nil
}

func hasDotDot(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("text after the JSON value")
	}
	return nil
}

func sortedRawKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func versionText(raw json.RawMessage) (string, error) {
	var v any
	if err := strictUnmarshal(raw, &v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	}
	return "", fmt.Errorf("must be a string such as \"1.0\"")
}

func parseDefaultValues(raw json.RawMessage) (map[string]string, error) {
	var obj map[string]any
	if err := strictUnmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("must be an object of NAME: value: %w", err)
	}
	out := make(map[string]string, len(obj))
	for k, v := range obj {
		s, err := pythonStr(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}

func parseRenameFiles(raw json.RawMessage) (map[string]string, error) {
	var obj map[string]any
	if err := strictUnmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("must be an object of \"/path\": \"/new/path\": %w", err)
	}
	out := make(map[string]string, len(obj))
	for k, v := range obj {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: the destination must be a string", k)
		}
		if !strings.HasPrefix(k, "/") || hasDotDot(k) {
			return nil, fmt.Errorf("%s: the source must be an absolute path without \"..\", as /etc/foo for hostfs/etc/foo", k)
		}
		out[k] = s
	}
	return out, nil
}

// pythonStr is Python's str() of a JSON scalar.
func pythonStr(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		if x {
			return "True", nil
		}
		return "False", nil
	case nil:
		return "None", nil
	case json.Number:
		return pythonNumber(x.String())
	}
	return "", fmt.Errorf("must be a string, a number or a boolean, not a list or an object")
}

// pythonNumber is str() of what Python's json makes of a number: an int
// (arbitrary precision) without fraction or exponent, else a float in repr form.
func pythonNumber(s string) (string, error) {
	if !strings.ContainsAny(s, ".eE") {
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return "", fmt.Errorf("bad number %q", s)
		}
		return n.String(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
			return "", fmt.Errorf("bad number %q", s)
		}
	}
	return pythonFloatRepr(f), nil
}

// pythonFloatRepr formats f like Python's repr(float): the shortest digits
// that round-trip, fixed notation when -4 < decimal point <= 16, else
// d.ddde+XX, and ".0" on integral values.
func pythonFloatRepr(f float64) string {
	switch {
	case f != f:
		return "nan"
	case f > 1.7976931348623157e308:
		return "inf"
	case f < -1.7976931348623157e308:
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±XX
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, expS, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expS)
	decpt := exp + 1
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			return sign + "0." + strings.Repeat("0", -decpt) + digits
		case decpt >= len(digits):
			return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		default:
			return sign + digits[:decpt] + "." + digits[decpt:]
		}
	}
	m := digits[:1]
	if len(digits) > 1 {
		m += "." + digits[1:]
	}
	es := "+"
	if exp < 0 {
		es, exp = "-", -exp
	}
	return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
}

// pythonTruth is Python's bool() of a JSON value.
func pythonTruth(raw json.RawMessage) (bool, error) {
	var v any
	if err := strictUnmarshal(raw, &v); err != nil {
		return false, err
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case nil:
		return false, nil
	case string:
		return x != "", nil
	case json.Number:
		f, err := strconv.ParseFloat(x.String(), 64)
		return err != nil || f != 0, nil
	case []any:
		return len(x) > 0, nil
	case map[string]any:
		return len(x) > 0, nil
	}
	return false, fmt.Errorf("unexpected value")
}
