package layering

import (
	"fmt"
	"strings"

	"github.com/cavaliergopher/rpm"
)

// ScriptAction is what hostctl does with a package script of one type.
type ScriptAction int

const (
	// ScriptRun runs the script in the sandbox against the new tree.
	ScriptRun ScriptAction = iota + 1
	// ScriptIgnore never runs the script: it only matters when a package is
	// removed or verified in place, and hostctl removes by assembling a tree
	// without the package.
	ScriptIgnore
	// ScriptRefuse refuses the package before anything is written.
	ScriptRefuse
)

// String returns "run", "ignore" or "refuse".
func (a ScriptAction) String() string {
	switch a {
	case ScriptRun:
		return "run"
	case ScriptIgnore:
		return "ignore"
	case ScriptRefuse:
		return "refuse"
	}
	return fmt.Sprintf("ScriptAction(%d)", int(a))
}

// LuaInterpreter is the interpreter rpm names for its built-in Lua.
const LuaInterpreter = "<lua>"

// DefaultInterpreter runs a script whose header names no interpreter.
const DefaultInterpreter = "/bin/sh"

// RPM header tags of scripts and triggers (rpmtag.h).
const (
	tagPrein                      = 1023
	tagPostin                     = 1024
	tagPreun                      = 1025
	tagPostun                     = 1026
	tagTriggerScripts             = 1065
	tagTriggerFlags               = 1068
	tagTriggerIndex               = 1069
	tagVerifyScript               = 1079
	tagPreinProg                  = 1085
	tagPostinProg                 = 1086
	tagPreunProg                  = 1087
	tagPostunProg                 = 1088
	tagVerifyScriptProg           = 1091
	tagTriggerScriptProg          = 1092
	tagPretrans                   = 1151
	tagPosttrans                  = 1152
	tagPretransProg               = 1153
	tagPosttransProg              = 1154
	tagFileTriggerScripts         = 5066
	tagFileTriggerScriptProg      = 5067
	tagFileTriggerIndex           = 5070
	tagFileTriggerFlags           = 5072
	tagTransFileTriggerScripts    = 5076
	tagTransFileTriggerScriptProg = 5077
	tagTransFileTriggerIndex      = 5080
	tagTransFileTriggerFlags      = 5082
	tagPreuntrans                 = 5103
	tagPostuntrans                = 5104
	tagPreuntransProg             = 5105
	tagPostuntransProg            = 5106
)

// Trigger condition senses (rpmds.h RPMSENSE_TRIGGER*).
const (
	senseTriggerIn     = 1 << 16
	senseTriggerUn     = 1 << 17
	senseTriggerPostUn = 1 << 18
	senseTriggerPrein  = 1 << 25
	senseTriggerMask   = senseTriggerIn | senseTriggerUn | senseTriggerPostUn | senseTriggerPrein
)

// ScriptPolicyEntry is one row of the script policy: a script type, named as
// rpm-ostree names it, and what hostctl does with it.
type ScriptPolicyEntry struct {
	// Type is e.g. "%prein", "%post", "%triggerin", "%transfiletriggerin".
	Type string
	// Action is what hostctl does with a script of this type.
	Action ScriptAction
	// Why explains the choice.
	Why string
}

// scriptFamily says how the scripts of one or more types are stored in a header.
type scriptFamily int

const (
	plainScript            scriptFamily = iota // one body tag and one interpreter tag
	triggerScript                              // %trigger*: scripts selected by condition sense
	fileTriggerScript                          // %filetrigger*
	transFileTriggerScript                     // %transfiletrigger*
)

type scriptKind struct {
	ScriptPolicyEntry
	family  scriptFamily
	tag     int   // plain: body tag
	progTag int   // plain: interpreter tag
	sense   int64 // trigger families: condition sense
}

const (
	whyRemoval = "runs only when a package is removed; hostctl removes by assembling a tree without it"
	whyInstall = "would run before or around the payload of a live system; hostctl assembles a new tree instead"
)

// scriptKinds is the script policy, in the order refusals are reported.
func scriptKinds() []scriptKind {
	plain := func(typ string, a ScriptAction, why string, tag, prog int) scriptKind {
		return scriptKind{ScriptPolicyEntry{typ, a, why}, plainScript, tag, prog, 0}
	}
	trig := func(typ string, a ScriptAction, why string, fam scriptFamily, sense int64) scriptKind {
		return scriptKind{ScriptPolicyEntry{typ, a, why}, fam, 0, 0, sense}
	}
	return []scriptKind{
		plain("%prein", ScriptRefuse, "would run against the live system before the payload; use sysusers.d/tmpfiles.d instead (a %pre that only creates users and groups with getent/groupadd/useradd is translated to sysusers.d entries)", tagPrein, tagPreinProg),
		plain("%post", ScriptRun, "runs in the sandbox against the new tree", tagPostin, tagPostinProg),
		plain("%preun", ScriptIgnore, whyRemoval, tagPreun, tagPreunProg),
		plain("%postun", ScriptIgnore, whyRemoval, tagPostun, tagPostunProg),
		plain("%pretrans", ScriptRefuse, whyInstall, tagPretrans, tagPretransProg),
		plain("%posttrans", ScriptRun, "runs in the sandbox against the new tree, after every %post", tagPosttrans, tagPosttransProg),
		plain("%preuntrans", ScriptIgnore, whyRemoval, tagPreuntrans, tagPreuntransProg),
		plain("%postuntrans", ScriptIgnore, whyRemoval, tagPostuntrans, tagPostuntransProg),
		plain("%verifyscript", ScriptIgnore, "runs only for rpm --verify", tagVerifyScript, tagVerifyScriptProg),
		trig("%triggerprein", ScriptRefuse, whyInstall, triggerScript, senseTriggerPrein),
		trig("%triggerin", ScriptRefuse, "triggers run code of one package on another's install; not supported", triggerScript, senseTriggerIn),
		trig("%triggerun", ScriptIgnore, whyRemoval, triggerScript, senseTriggerUn),
		trig("%triggerpostun", ScriptIgnore, whyRemoval, triggerScript, senseTriggerPostUn),
		trig("%filetriggerin", ScriptRefuse, "file triggers are not supported", fileTriggerScript, senseTriggerIn),
		trig("%filetriggerun", ScriptIgnore, whyRemoval, fileTriggerScript, senseTriggerUn),
		trig("%filetriggerpostun", ScriptIgnore, whyRemoval, fileTriggerScript, senseTriggerPostUn),
		trig("%transfiletriggerin", ScriptRefuse, "file triggers are not supported", transFileTriggerScript, senseTriggerIn),
		trig("%transfiletriggerun", ScriptIgnore, whyRemoval, transFileTriggerScript, senseTriggerUn),
		trig("%transfiletriggerpostun", ScriptIgnore, whyRemoval, transFileTriggerScript, senseTriggerPostUn),
	}
}

// ScriptPolicy returns the script policy table: every script type rpm knows
// and what hostctl does with it.
func ScriptPolicy() []ScriptPolicyEntry {
	kinds := scriptKinds()
	out := make([]ScriptPolicyEntry, len(kinds))
	for i, k := range kinds {
		out[i] = k.ScriptPolicyEntry
	}
	return out
}

// Script is one script or trigger script of a package.
type Script struct {
	// Type is the script type, e.g. "%post" or "%triggerin".
	Type string
	// Action is what the policy does with it.
	Action ScriptAction
	// Interpreter is the interpreter and its arguments, e.g. ["/bin/sh"] or ["<lua>"].
	Interpreter []string
	// Body is the script text; empty for e.g. `%post -p /sbin/ldconfig`.
	Body string
}

// PackageScripts are the scripts of one package.
type PackageScripts struct {
	// Name is the package name.
	Name string
	// Scripts are all its scripts, in policy order.
	Scripts []Script
}

// ReadScripts reads every script and trigger script from the header of pkg.
func ReadScripts(pkg *rpm.Package) (*PackageScripts, error) {
	h := &pkg.Header
	ps := &PackageScripts{Name: pkg.Name()}
	if ps.Name == "" {
		return nil, fmt.Errorf("read scripts: package header has no name")
	}
	families := map[scriptFamily][]familyScript{}
	for _, fam := range []scriptFamily{triggerScript, fileTriggerScript, transFileTriggerScript} {
		scripts, err := readTriggerFamily(h, fam)
		if err != nil {
			return nil, fmt.Errorf("read scripts of package %s: %w", ps.Name, err)
		}
		families[fam] = scripts
	}
	for _, k := range scriptKinds() {
		if k.family == plainScript {
			body, hasBody := h.Tags[k.tag]
			prog, hasProg := h.Tags[k.progTag]
			if !hasBody && !hasProg {
				continue
			}
			interp := prog.StringSlice()
			if len(interp) == 0 {
				interp = []string{DefaultInterpreter}
			}
			ps.Scripts = append(ps.Scripts, Script{Type: k.Type, Action: k.Action, Interpreter: interp, Body: body.String()})
			continue
		}
		for _, fs := range families[k.family] {
			if fs.sense&k.sense == 0 {
				continue
			}
			ps.Scripts = append(ps.Scripts, Script{Type: k.Type, Action: k.Action, Interpreter: []string{fs.interp}, Body: fs.body})
		}
	}
	return ps, nil
}

type familyScript struct {
	body, interp string
	sense        int64
}

// readTriggerFamily reads the trigger scripts of one family; each script's
// type is the sense of the conditions that point at it.
func readTriggerFamily(h *rpm.Header, fam scriptFamily) ([]familyScript, error) {
	var scriptsTag, progTag, indexTag, flagsTag int
	var what string
	switch fam {
	case triggerScript:
		scriptsTag, progTag, indexTag, flagsTag, what = tagTriggerScripts, tagTriggerScriptProg, tagTriggerIndex, tagTriggerFlags, "trigger"
	case fileTriggerScript:
		scriptsTag, progTag, indexTag, flagsTag, what = tagFileTriggerScripts, tagFileTriggerScriptProg, tagFileTriggerIndex, tagFileTriggerFlags, "file trigger"
	default:
		scriptsTag, progTag, indexTag, flagsTag, what = tagTransFileTriggerScripts, tagTransFileTriggerScriptProg, tagTransFileTriggerIndex, tagTransFileTriggerFlags, "transaction file trigger"
	}
	bodies := h.GetTag(scriptsTag).StringSlice()
	progs := h.GetTag(progTag).StringSlice()
	index := h.GetTag(indexTag).Int64Slice()
	flags := h.GetTag(flagsTag).Int64Slice()
	n := max(len(bodies), len(progs))
	if n == 0 && len(index) == 0 {
		return nil, nil
	}
	if len(index) != len(flags) {
		return nil, fmt.Errorf("malformed %s tags: %d conditions but %d flags", what, len(index), len(flags))
	}
	scripts := make([]familyScript, n)
	for i := range scripts {
		scripts[i].interp = DefaultInterpreter
		if i < len(bodies) {
			scripts[i].body = bodies[i]
		}
		if i < len(progs) && progs[i] != "" {
			scripts[i].interp = progs[i]
		}
	}
	for c, ix := range index {
		if ix < 0 || ix >= int64(n) {
			return nil, fmt.Errorf("malformed %s tags: condition %d names script %d of %d", what, c, ix, n)
		}
		scripts[ix].sense |= flags[c] & senseTriggerMask
	}
	for i, s := range scripts {
		if s.sense == 0 {
			// No condition says when it runs: treat it as an install trigger, refused.
			scripts[i].sense = senseTriggerIn
		}
	}
	return scripts, nil
}

// Refusals returns one line per script type of the package that the policy
// refuses, e.g. "package foo has unsupported script of type %prein"; a script
// to run written in rpm's built-in Lua is refused too.
func (p *PackageScripts) Refusals() []string {
	var lines []string
	seen := map[string]bool{}
	for _, s := range p.Scripts {
		var line string
		switch {
		case s.Action == ScriptRefuse:
			line = fmt.Sprintf("package %s has unsupported script of type %s", p.Name, s.Type)
		case s.Action == ScriptRun && len(s.Interpreter) > 0 && s.Interpreter[0] == LuaInterpreter:
			line = fmt.Sprintf("package %s has unsupported script of type %s (interpreter %s)", p.Name, s.Type, LuaInterpreter)
		default:
			continue
		}
		if !seen[line] {
			seen[line] = true
			lines = append(lines, line)
		}
	}
	return lines
}

// ToRun returns the scripts the sandbox runs, of the given type ("%post" or
// "%posttrans"), in header order.
func (p *PackageScripts) ToRun(typ string) []Script {
	var out []Script
	for _, s := range p.Scripts {
		if s.Action == ScriptRun && s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// UnsupportedScriptsError lists the refused scripts of a set of packages, one
// line per package and script type.
type UnsupportedScriptsError struct {
	Lines []string
}

// Error returns the lines joined by newlines.
func (e *UnsupportedScriptsError) Error() string { return strings.Join(e.Lines, "\n") }

// CheckScriptPolicy returns an *UnsupportedScriptsError naming every refused
// script of pkgs, or nil when all of them may be layered.
func CheckScriptPolicy(pkgs []*PackageScripts) error {
	var lines []string
	for _, p := range pkgs {
		lines = append(lines, p.Refusals()...)
	}
	if len(lines) == 0 {
		return nil
	}
	return &UnsupportedScriptsError{Lines: lines}
}
