package deploy

import (
	"bytes"
	"fmt"
	"strings"
)

// Origin is a deployment's origin file: a GLib key file recording what the
// deployment follows (the refspec), and hostctl's part of the generation
// (layered packages, kernel arguments, system containers). Parsing and
// marshalling keep groups, keys and comments in their order, so a file
// written by rpm-ostree or libostree survives a round trip.
type Origin struct {
	head   []string // comments before the first group
	groups []*originGroup
}

type originGroup struct {
	name  string
	lines []originLine
}

// originLine is a key=value entry, or a comment/blank line when key is "".
type originLine struct {
	key, value string // value as stored: escaped
	comment    string
}

// Origin groups and keys hostctl reads and writes.
const (
	GroupOrigin     = "origin"
	GroupPackages   = "packages"
	GroupKargs      = "kargs"
	GroupContainers = "containers"
)

// NewOrigin returns an origin that follows refspec (REMOTE:REF).
func NewOrigin(refspec string) *Origin {
	o := &Origin{}
	o.Set(GroupOrigin, "refspec", refspec)
	return o
}

// ParseOrigin parses key file text. It refuses what GLib would refuse: an
// entry before the first group, a malformed group header, a line that is not
// key=value, an empty key, NUL bytes.
func ParseOrigin(data []byte) (*Origin, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("parse origin: NUL byte in key file")
	}
	o := &Origin{}
	var cur *originGroup
	for n, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimLeft(strings.TrimSuffix(raw, "\r"), " \t")
		lineno := n + 1
		switch {
		case line == "" || line[0] == '#':
			if cur == nil {
				if line != "" {
					o.head = append(o.head, line)
				}
			} else {
				cur.lines = append(cur.lines, originLine{comment: line})
			}
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 || strings.TrimSpace(line[end+1:]) != "" {
				return nil, fmt.Errorf("parse origin: line %d: malformed group header %q", lineno, line)
			}
			name := line[1:end]
			if !validGroupName(name) {
				return nil, fmt.Errorf("parse origin: line %d: invalid group name %q", lineno, name)
			}
			cur = o.group(name, true)
		default:
			if cur == nil {
				return nil, fmt.Errorf("parse origin: line %d: key file does not start with a group", lineno)
			}
			eq := strings.IndexByte(line, '=')
			if eq < 0 {
				return nil, fmt.Errorf("parse origin: line %d: %q is not a key=value pair", lineno, line)
			}
			key := strings.TrimRight(line[:eq], " \t")
			if !validKey(key) {
				return nil, fmt.Errorf("parse origin: line %d: invalid key %q", lineno, key)
			}
			value := strings.TrimLeft(line[eq+1:], " \t")
			if _, err := unescapeValue(value); err != nil {
				return nil, fmt.Errorf("parse origin: line %d: key %s: %w", lineno, key, err)
			}
			cur.set(key, value)
		}
	}
	return o, nil
}

func validGroupName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r == '[' || r == ']' || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func validKey(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if r == '=' || r == '\n' || r < 0x20 || r == 0x7f || r == '#' && key[0] == '#' {
			return false
		}
	}
	return key[0] != '[' && key[0] != ' '
}

func (o *Origin) group(name string, create bool) *originGroup {
	for _, g := range o.groups {
		if g.name == name {
			return g
		}
	}
	if !create {
		return nil
	}
	g := &originGroup{name: name}
	o.groups = append(o.groups, g)
	return g
}

func (g *originGroup) set(key, escaped string) {
	for i := range g.lines {
		if g.lines[i].key == key {
			g.lines[i].value = escaped
			return
		}
	}
	g.lines = append(g.lines, originLine{key: key, value: escaped})
}

// Groups lists the group names in order.
func (o *Origin) Groups() []string {
	out := make([]string, 0, len(o.groups))
	for _, g := range o.groups {
		out = append(out, g.name)
	}
	return out
}

// Keys lists the keys of a group in order.
func (o *Origin) Keys(group string) []string {
	g := o.group(group, false)
	if g == nil {
		return nil
	}
	var out []string
	for _, l := range g.lines {
		if l.key != "" {
			out = append(out, l.key)
		}
	}
	return out
}

// Get returns a value, unescaped.
func (o *Origin) Get(group, key string) (string, bool) {
	g := o.group(group, false)
	if g == nil {
		return "", false
	}
	for _, l := range g.lines {
		if l.key == key {
			v, err := unescapeValue(l.value)
			if err != nil {
				return "", false
			}
			return v, true
		}
	}
	return "", false
}

// Set sets a value, creating the group when needed.
func (o *Origin) Set(group, key, value string) {
	o.group(group, true).set(key, escapeValue(value))
}

// Delete removes a key, and the group when it becomes empty.
func (o *Origin) Delete(group, key string) {
	g := o.group(group, false)
	if g == nil {
		return
	}
	kept := g.lines[:0]
	for _, l := range g.lines {
		if l.key != key {
			kept = append(kept, l)
		}
	}
	g.lines = kept
	if len(o.Keys(group)) == 0 {
		o.DeleteGroup(group)
	}
}

// DeleteGroup removes a group and its keys.
func (o *Origin) DeleteGroup(group string) {
	kept := o.groups[:0]
	for _, g := range o.groups {
		if g.name != group {
			kept = append(kept, g)
		}
	}
	o.groups = kept
}

// GetList returns a ;-separated list value.
func (o *Origin) GetList(group, key string) []string {
	g := o.group(group, false)
	if g == nil {
		return nil
	}
	for _, l := range g.lines {
		if l.key == key {
			return splitList(l.value)
		}
	}
	return nil
}

// SetList stores a ;-separated list, or deletes the key for an empty list.
func (o *Origin) SetList(group, key string, values []string) {
	if len(values) == 0 {
		o.Delete(group, key)
		return
	}
	var b strings.Builder
	for _, v := range values {
		b.WriteString(strings.ReplaceAll(escapeValue(v), ";", `\;`))
		b.WriteByte(';')
	}
	o.group(group, true).set(key, b.String())
}

// Refspec is the REMOTE:REF the deployment follows (rpm-ostree writes
// baserefspec once packages are layered; both are read).
func (o *Origin) Refspec() string {
	if v, ok := o.Get(GroupOrigin, "refspec"); ok {
		return v
	}
	v, _ := o.Get(GroupOrigin, "baserefspec")
	return v
}

// SetRefspec makes the origin follow refspec.
func (o *Origin) SetRefspec(refspec string) {
	o.Delete(GroupOrigin, "baserefspec")
	o.Set(GroupOrigin, "refspec", refspec)
}

// OverrideCommit is the commit the origin is pinned to by `deploy`, or "".
func (o *Origin) OverrideCommit() string {
	v, _ := o.Get(GroupOrigin, "override-commit")
	return v
}

// SetOverrideCommit pins the origin to a commit; "" unpins it.
func (o *Origin) SetOverrideCommit(commit string) {
	if commit == "" {
		o.Delete(GroupOrigin, "override-commit")
		return
	}
	o.Set(GroupOrigin, "override-commit", commit)
}

// Packages are the layered packages requested (names or name-version).
func (o *Origin) Packages() []string { return o.GetList(GroupPackages, "requested") }

// SetPackages records the layered packages requested.
func (o *Origin) SetPackages(pkgs []string) { o.SetList(GroupPackages, "requested", pkgs) }

// Clone returns a deep copy.
func (o *Origin) Clone() *Origin {
	c := &Origin{head: append([]string(nil), o.head...)}
	for _, g := range o.groups {
		ng := &originGroup{name: g.name, lines: append([]originLine(nil), g.lines...)}
		c.groups = append(c.groups, ng)
	}
	return c
}

// Marshal renders the key file text.
func (o *Origin) Marshal() []byte {
	var b bytes.Buffer
	for _, h := range o.head {
		b.WriteString(h + "\n")
	}
	for i, g := range o.groups {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[%s]\n", g.name)
		lines := g.lines
		for len(lines) > 0 && lines[len(lines)-1].key == "" && lines[len(lines)-1].comment == "" {
			lines = lines[:len(lines)-1]
		}
		for _, l := range lines {
			if l.key == "" {
				b.WriteString(l.comment)
			} else {
				b.WriteString(l.key + "=" + l.value)
			}
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// escapeValue escapes a value as g_key_file_set_value does.
func escapeValue(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch r {
		case ' ':
			if i == 0 {
				b.WriteString(`\s`)
			} else {
				b.WriteRune(r)
			}
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// unescapeValue undoes the key file escapes \s \n \t \r \\ (and keeps \; for lists).
func unescapeValue(v string) (string, error) {
	if !strings.Contains(v, `\`) {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(v) {
			return "", fmt.Errorf("value %q ends in a backslash", v)
		}
		switch v[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		case ';':
			b.WriteString(`\;`)
		default:
			return "", fmt.Errorf("value %q has an invalid escape \\%c", v, v[i])
		}
	}
	return b.String(), nil
}

// splitList splits a stored list value at unescaped ';' and unescapes each item.
func splitList(stored string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(stored); i++ {
		c := stored[i]
		switch {
		case c == '\\' && i+1 < len(stored) && stored[i+1] == ';':
			cur.WriteByte(';')
			i++
		case c == '\\' && i+1 < len(stored):
			cur.WriteByte(c)
			cur.WriteByte(stored[i+1])
			i++
		case c == ';':
			if v, err := unescapeValue(cur.String()); err == nil && v != "" {
				out = append(out, v)
			}
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		if v, err := unescapeValue(cur.String()); err == nil && v != "" {
			out = append(out, v)
		}
	}
	return out
}
