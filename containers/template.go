package containers

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The template language of /exports is Python's string.Template, because
// images written for the atomic CLI must render the same here:
//
//	$$          a literal "$"
//	$NAME       the value of NAME, NAME = [_a-zA-Z][_a-zA-Z0-9]*
//	${NAME}     the same, so that letters may follow
//
// Any other "$" is an invalid placeholder. Scanning is left to right and never
// backtracks: "$1" and "${x" are invalid, "$x-y" is $x followed by "-y".

// InvalidPlaceholderError reports a "$" that starts none of the three forms.
// Line and Col are counted as Python counts them: 1-based, Col in characters,
// pointing at the "$".
type InvalidPlaceholderError struct {
	Template string // name of the template, for the message
	Line     int
	Col      int
}

func (e *InvalidPlaceholderError) Error() string {
	return fmt.Sprintf("template %s: invalid placeholder at line %d, col %d: write $$ for a literal dollar, $NAME or ${NAME} for a variable",
		e.Template, e.Line, e.Col)
}

// MissingValuesError reports variables a template uses that have no value.
type MissingValuesError struct {
	Template string   // name of the template, for the message
	Names    []string // in order of first use, each once
}

func (e *MissingValuesError) Error() string {
	vars := make([]string, len(e.Names))
	for i, n := range e.Names {
		vars[i] = "$" + n
	}
	return fmt.Sprintf("template %s: no value for %s: give one with --set NAME=VALUE",
		e.Template, strings.Join(vars, ", "))
}

// Render substitutes values into text with string.Template.substitute
// semantics. name names the template in errors. The error is an
// *InvalidPlaceholderError or a *MissingValuesError, whichever problem comes
// first in the text (the one Python would raise); a MissingValuesError names
// every variable of the text that has no value.
func Render(name, text string, values map[string]string) (string, error) {
	var out strings.Builder
	out.Grow(len(text))
	var invalid *InvalidPlaceholderError
	var missing []string
	missingFirst := false
	seen := map[string]bool{}
	scan(text, func(lit string) { out.WriteString(lit) },
		func(ident string, at int) {
			v, ok := values[ident]
			if ok {
				out.WriteString(v)
				return
			}
			if invalid == nil && len(missing) == 0 {
				missingFirst = true
			}
			if !seen[ident] {
				seen[ident] = true
				missing = append(missing, ident)
			}
		},
		func(at int) {
			if invalid == nil {
				line, col := pythonPosition(text, at)
				invalid = &InvalidPlaceholderError{Template: name, Line: line, Col: col}
			}
		})
	switch {
	case len(missing) > 0 && (missingFirst || invalid == nil):
		return "", &MissingValuesError{Template: name, Names: missing}
	case invalid != nil:
		return "", invalid
	}
	return out.String(), nil
}

// Variables returns the names text refers to, in order of first use, each
// once; invalid placeholders are skipped. It is what "which values does this
// image need" is answered from.
func Variables(text string) []string {
	var names []string
	seen := map[string]bool{}
	scan(text, func(string) {}, func(ident string, _ int) {
		if !seen[ident] {
			seen[ident] = true
			names = append(names, ident)
		}
	}, func(int) {})
	return names
}

// IsIdentifier reports whether s is a valid variable name: [_a-zA-Z][_a-zA-Z0-9]*.
func IsIdentifier(s string) bool {
	return s != "" && identLen(s) == len(s)
}

// scan walks text, calling lit for literal runs, ident for each placeholder
// (with the byte offset of its "$") and invalid for each invalid "$".
func scan(text string, lit func(string), ident func(string, int), invalid func(int)) {
	pos := 0
	for pos < len(text) {
		i := strings.IndexByte(text[pos:], '$')
		if i < 0 {
			lit(text[pos:])
			return
		}
		d := pos + i
		if d > pos {
			lit(text[pos:d])
		}
		rest := text[d+1:]
		if strings.HasPrefix(rest, "$") {
			lit("$")
			pos = d + 2
			continue
		}
		if n := identLen(rest); n > 0 {
			ident(rest[:n], d)
			pos = d + 1 + n
			continue
		}
		if strings.HasPrefix(rest, "{") {
			if n := identLen(rest[1:]); n > 0 && strings.HasPrefix(rest[1+n:], "}") {
				ident(rest[1:1+n], d)
				pos = d + 1 + n + 2
				continue
			}
		}
		// Python substitutes the empty "invalid" match: the "$" is consumed and
		// what follows is scanned again as text.
		invalid(d)
		pos = d + 1
	}
}

// identLen is the length of the identifier at the start of s, or 0.
func identLen(s string) int {
	n := 0
	for n < len(s) {
		c := s[n]
		switch {
		case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		case n > 0 && c >= '0' && c <= '9':
		default:
			return n
		}
		n++
	}
	return n
}

// pythonPosition computes the line and column of the "$" at byte offset at the
// way string.Template._invalid does: str.splitlines boundaries, columns in
// characters, both 1-based.
func pythonPosition(text string, at int) (line, col int) {
	line, col = 1, 1
	prefix := text[:at]
	for i := 0; i < len(prefix); {
		r, w := utf8.DecodeRuneInString(prefix[i:])
		i += w
		switch r {
		case '\r':
			if i < len(prefix) && prefix[i] == '\n' {
				i++
			}
			fallthrough
		case '\n', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			line++
			col = 1
		default:
			col++
		}
	}
	return line, col
}
