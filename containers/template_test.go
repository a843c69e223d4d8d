package containers

import (
	"encoding/json"
	"errors"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// Expected results below are what CPython 3.11's string.Template(text).substitute(values)
// gives; TestRenderMatchesPython checks them against a real python3 when there is one.
var renderCases = []struct {
	name    string
	text    string
	values  map[string]string
	want    string
	missing []string // first one is what Python's KeyError names
	line    int      // invalid placeholder position, 0 if none
	col     int
}{
	{name: "plain", text: "no dollars here\n", want: "no dollars here\n"},
	{name: "empty", text: "", want: ""},
	{name: "named", text: "port=$PORT\n", values: map[string]string{"PORT": "8080"}, want: "port=8080\n"},
	{name: "braced", text: "${NAME}ctl", values: map[string]string{"NAME": "etcd"}, want: "etcdctl"},
	{name: "named stops at non-ident", text: "$A-$B.c", values: map[string]string{"A": "1", "B": "2"}, want: "1-2.c"},
	{name: "named is greedy", text: "$NAMEctl", values: map[string]string{"NAME": "x"}, missing: []string{"NAMEctl"}},
	{name: "escaped", text: "cost $$5 and $$$X", values: map[string]string{"X": "y"}, want: "cost $5 and $y"},
	{name: "escaped braces", text: "$${X}", want: "${X}"},
	{name: "lower and underscore", text: "$_a1 $b_", values: map[string]string{"_a1": "p", "b_": "q"}, want: "p q"},
	{name: "case matters", text: "$name", values: map[string]string{"NAME": "x"}, missing: []string{"name"}},
	{name: "values are not rescanned", text: "$A", values: map[string]string{"A": "$B"}, want: "$B"},
	{name: "dollar at end", text: "abc$", line: 1, col: 4},
	{name: "dollar digit", text: "x\n  $1", line: 2, col: 3},
	{name: "unterminated brace", text: "${NAME", values: map[string]string{"NAME": "x"}, line: 1, col: 1},
	{name: "brace with digit", text: "a ${1x}", line: 1, col: 3},
	{name: "empty braces", text: "${}", line: 1, col: 1},
	{name: "space after dollar", text: "line1\nline2 $ x", line: 2, col: 7},
	{name: "crlf counts once", text: "a\r\nb\r\n$-", line: 3, col: 1},
	{name: "lone cr and formfeed are lines", text: "a\rb\fc$ ", line: 3, col: 2},
	{name: "columns count characters", text: "é€x$!", line: 1, col: 4},
	{name: "unicode line separator", text: "a\u2028b$.", line: 2, col: 2},
	{name: "non-ascii identifier is invalid", text: "$é", line: 1, col: 1},
	{name: "missing before invalid", text: "$A $", missing: []string{"A"}},
	{name: "invalid before missing", text: "$ $A", line: 1, col: 1},
	{name: "all missing named", text: "$A ${B} $A $C", values: map[string]string{"C": "c"}, missing: []string{"A", "B"}},
}

func TestRender(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render("t.template", tc.text, tc.values)
			var inv *InvalidPlaceholderError
			var miss *MissingValuesError
			switch {
			case tc.line != 0:
				if !errors.As(err, &inv) {
					t.Fatalf("Render(%q) = %q, %v; want invalid placeholder", tc.text, got, err)
				}
				if inv.Line != tc.line || inv.Col != tc.col {
					t.Fatalf("position = line %d col %d, want line %d col %d", inv.Line, inv.Col, tc.line, tc.col)
				}
				if !strings.Contains(err.Error(), "t.template") {
					t.Errorf("error %q does not name the template", err)
				}
			case tc.missing != nil:
				if !errors.As(err, &miss) {
					t.Fatalf("Render(%q) = %q, %v; want missing values", tc.text, got, err)
				}
				if !reflect.DeepEqual(miss.Names, tc.missing) {
					t.Fatalf("missing = %v, want %v", miss.Names, tc.missing)
				}
				for _, n := range tc.missing {
					if !strings.Contains(err.Error(), "$"+n) {
						t.Errorf("error %q does not name %s", err, n)
					}
				}
			default:
				if err != nil || got != tc.want {
					t.Fatalf("Render(%q) = %q, %v; want %q", tc.text, got, err, tc.want)
				}
			}
		})
	}
}

func TestVariables(t *testing.T) {
	got := Variables("$A ${B} $$C $A $ ${D")
	if want := []string{"A", "B"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Variables = %v, want %v", got, want)
	}
	for s, want := range map[string]bool{"A": true, "_x9": true, "9x": false, "": false, "a-b": false, "é": false} {
		if IsIdentifier(s) != want {
			t.Errorf("IsIdentifier(%q) = %v", s, !want)
		}
	}
}

// pythonRender runs CPython's string.Template on each case and returns, per
// case, {"ok": text} or {"missing": name} or {"invalid": "line L, col C"}.
const pythonRender = `
import json, sys
from string import Template
out = []
for c in json.load(sys.stdin):
    try:
        out.append({"ok": Template(c["text"]).substitute(c["values"] or {})})
    except KeyError as e:
        out.append({"missing": e.args[0]})
    except ValueError as e:
        out.append({"invalid": str(e).split(": ", 1)[1]})
json.dump(out, sys.stdout)
`

type pyCase struct {
	Text   string            `json:"text"`
	Values map[string]string `json:"values"`
}

type pyResult struct {
	OK      *string `json:"ok"`
	Missing string  `json:"missing"`
	Invalid string  `json:"invalid"`
}

func runPython(t testing.TB, cases []pyCase) []pyResult {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	in, _ := json.Marshal(cases)
	cmd := exec.Command(py, "-c", pythonRender)
	cmd.Stdin = strings.NewReader(string(in))
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var res []pyResult
	if err := json.Unmarshal(outb, &res); err != nil {
		t.Fatalf("python3 output: %v", err)
	}
	return res
}

// checkAgainstPython compares Render with CPython on each case.
func checkAgainstPython(t *testing.T, cases []pyCase) {
	res := runPython(t, cases)
	for i, c := range cases {
		got, err := Render("t", c.Text, c.Values)
		r := res[i]
		var inv *InvalidPlaceholderError
		var miss *MissingValuesError
		switch {
		case r.OK != nil:
			if err != nil || got != *r.OK {
				t.Errorf("%q: Render = %q, %v; python = %q", c.Text, got, err, *r.OK)
			}
		case r.Missing != "":
			if !errors.As(err, &miss) || miss.Names[0] != r.Missing {
				t.Errorf("%q: Render err = %v; python KeyError %q", c.Text, err, r.Missing)
			}
		default:
			if !errors.As(err, &inv) {
				t.Errorf("%q: Render = %q, %v; python invalid %s", c.Text, got, err, r.Invalid)
				continue
			}
			if !strings.Contains(inv.Error(), r.Invalid) { // "line L, col C"
				t.Errorf("%q: Render err = %v; python invalid at %s", c.Text, err, r.Invalid)
			}
		}
	}
}

func TestRenderMatchesPython(t *testing.T) {
	var cases []pyCase
	for _, tc := range renderCases {
		cases = append(cases, pyCase{tc.text, tc.values})
	}
	// Random texts over an alphabet dense in the characters that matter.
	alphabet := []string{"$", "$", "{", "}", "A", "b", "_", "1", "\n", "\r", "é", " ", "-", "\u2028", "\f"}
	seed := uint32(1)
	for i := 0; i < 2000; i++ {
		var b strings.Builder
		n := int(seed % 12)
		for j := 0; j < n; j++ {
			seed = seed*1664525 + 1013904223
			b.WriteString(alphabet[(seed>>16)%uint32(len(alphabet))])
		}
		seed = seed*1664525 + 1013904223
		cases = append(cases, pyCase{b.String(), map[string]string{"A": "<a>", "b": "$", "_": "u", "Ab": "x"}})
	}
	checkAgainstPython(t, cases)
}

// referencePattern is string.Template's own regular expression (leftmost-first
// alternation, as Python's re), used as a second implementation to fuzz against.
var referencePattern = regexp.MustCompile(`\$(?:(\$)|([_a-zA-Z][_a-zA-Z0-9]*)|\{([_a-zA-Z][_a-zA-Z0-9]*)\}|())`)

func referenceRender(text string, values map[string]string) (string, bool) {
	ok := true
	out := referencePattern.ReplaceAllStringFunc(text, func(m string) string {
		sm := referencePattern.FindStringSubmatch(m)
		switch {
		case sm[1] != "":
			return "$"
		case sm[2] != "":
			return values[sm[2]]
		case sm[3] != "":
			return values[sm[3]]
		}
		ok = false
		return ""
	})
	return out, ok
}

func FuzzRender(f *testing.F) {
	for _, tc := range renderCases {
		f.Add(tc.text)
	}
	f.Add("[Service]\nExecStart=$EXEC_START\nPIDFile=${PIDFILE}\n")
	f.Fuzz(func(t *testing.T, text string) {
		// Every variable the text names gets a value that itself contains
		// template syntax: it must come out verbatim.
		values := map[string]string{}
		for _, n := range Variables(text) {
			values[n] = "${" + n + "}$"
		}
		got, err := Render("fuzz", text, values)
		want, ok := referenceRender(text, values)
		var inv *InvalidPlaceholderError
		switch {
		case !ok:
			if !errors.As(err, &inv) || inv.Line < 1 || inv.Col < 1 {
				t.Fatalf("Render(%q) = %q, %v; want invalid placeholder", text, got, err)
			}
		case err != nil || got != want:
			t.Fatalf("Render(%q) = %q, %v; reference %q", text, got, err, want)
		}
		if !strings.Contains(text, "$") && (err != nil || got != text) {
			t.Fatalf("text without $ changed: %q -> %q, %v", text, got, err)
		}
		// With no values, a text that names a variable is a MissingValuesError
		// unless an invalid placeholder comes first.
		if _, err := Render("fuzz", text, nil); len(Variables(text)) > 0 && err == nil {
			t.Fatalf("Render(%q) without values succeeded", text)
		}
	})
}
