package layering

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cavaliergopher/rpm"

	"github.com/hostctl/hostctl/layering/internal/testrpm"
)

func buildScriptRPMs(t *testing.T) map[string]string {
	t.Helper()
	rpms := testrpm.BuildFile(t, "testdata/scripts.spec", "")
	byName := map[string]string{}
	for _, p := range rpms {
		byName[strings.TrimSuffix(filepath.Base(p), "-1.0-1.noarch.rpm")] = p
	}
	return byName
}

func readPackageScripts(t *testing.T, path string) *PackageScripts {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkg, err := ReadPackage(f)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := ReadScripts(pkg)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// TestScriptPolicyRows checks every row of the policy table with a package
// built by rpmbuild that has exactly one script of that type.
func TestScriptPolicyRows(t *testing.T) {
	rpms := buildScriptRPMs(t)
	// rpm 4.18 (Debian 12) cannot build %preuntrans/%postuntrans: those rows use a header made here.
	synthetic := map[string]int{"%preuntrans": tagPreuntrans, "%postuntrans": tagPostuntrans}
	for _, row := range ScriptPolicy() {
		t.Run(row.Type, func(t *testing.T) {
			var ps *PackageScripts
			name := "scripts-" + strings.TrimPrefix(row.Type, "%")
			if tag, ok := synthetic[row.Type]; ok {
				var err error
				ps, err = ReadScripts(&rpm.Package{Header: rpm.Header{Tags: map[int]*rpm.Tag{
					1000: {ID: 1000, Type: rpm.TagTypeString, Value: []string{name}},
					tag:  {ID: tag, Type: rpm.TagTypeString, Value: []string{"echo x"}},
				}}})
				if err != nil {
					t.Fatal(err)
				}
			} else {
				path, ok := rpms[name]
				if !ok {
					t.Fatalf("no RPM %s built from testdata/scripts.spec", name)
				}
				ps = readPackageScripts(t, path)
			}
			if len(ps.Scripts) != 1 || ps.Scripts[0].Type != row.Type || ps.Scripts[0].Action != row.Action {
				t.Fatalf("scripts = %+v, want one %s (%v)", ps.Scripts, row.Type, row.Action)
			}
			if !strings.Contains(ps.Scripts[0].Body, "echo") {
				t.Fatalf("body = %q", ps.Scripts[0].Body)
			}
			err := CheckScriptPolicy([]*PackageScripts{ps})
			switch row.Action {
			case ScriptRefuse:
				want := "package " + name + " has unsupported script of type " + row.Type
				if err == nil || err.Error() != want {
					t.Fatalf("error = %v, want %q", err, want)
				}
			case ScriptRun:
				if err != nil {
					t.Fatal(err)
				}
				if got := ps.ToRun(row.Type); len(got) != 1 || got[0].Interpreter[0] != DefaultInterpreter {
					t.Fatalf("ToRun = %+v", got)
				}
			case ScriptIgnore:
				if err != nil {
					t.Fatal(err)
				}
				if got := ps.ToRun(row.Type); len(got) != 0 {
					t.Fatalf("ignored script would run: %+v", got)
				}
			}
		})
	}
}

func TestScriptPolicyPackages(t *testing.T) {
	rpms := buildScriptRPMs(t)

	none := readPackageScripts(t, rpms["scripts-none"])
	if len(none.Scripts) != 0 || CheckScriptPolicy([]*PackageScripts{none}) != nil {
		t.Fatalf("scripts-none: %+v", none.Scripts)
	}

	lua := readPackageScripts(t, rpms["scripts-luapost"])
	err := CheckScriptPolicy([]*PackageScripts{lua})
	if want := "package scripts-luapost has unsupported script of type %post (interpreter <lua>)"; err == nil || err.Error() != want {
		t.Fatalf("lua: error = %v, want %q", err, want)
	}

	prog := readPackageScripts(t, rpms["scripts-progpost"])
	if err := CheckScriptPolicy([]*PackageScripts{prog}); err != nil {
		t.Fatal(err)
	}
	if run := prog.ToRun("%post"); len(run) != 1 || !reflect.DeepEqual(run[0].Interpreter, []string{"/sbin/ldconfig"}) || run[0].Body != "" {
		t.Fatalf("progpost: %+v", run)
	}

	multi := readPackageScripts(t, rpms["scripts-multi"])
	post := readPackageScripts(t, rpms["scripts-post"])
	err = CheckScriptPolicy([]*PackageScripts{post, multi, lua})
	want := strings.Join([]string{
		"package scripts-multi has unsupported script of type %prein",
		"package scripts-multi has unsupported script of type %pretrans",
		"package scripts-multi has unsupported script of type %triggerin",
		"package scripts-luapost has unsupported script of type %post (interpreter <lua>)",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("error =\n%v\nwant\n%s", err, want)
	}
	if e, ok := err.(*UnsupportedScriptsError); !ok || len(e.Lines) != 4 {
		t.Fatalf("error type %T", err)
	}
	var triggers []string
	for _, s := range multi.Scripts {
		if strings.HasPrefix(s.Type, "%trigger") {
			triggers = append(triggers, s.Type+":"+strings.TrimSpace(s.Body))
		}
	}
	if !reflect.DeepEqual(triggers, []string{"%triggerin:echo a", "%triggerin:echo b", "%triggerun:echo c"}) {
		t.Fatalf("triggers = %v", triggers)
	}
}

func TestReadScriptsMalformed(t *testing.T) {
	name := &rpm.Tag{ID: 1000, Type: rpm.TagTypeString, Value: []string{"bad"}}
	for _, tags := range []map[int]*rpm.Tag{
		{1000: name, tagTriggerScripts: {Value: []string{"x"}}, tagTriggerIndex: {Value: []int64{3}}, tagTriggerFlags: {Value: []int64{senseTriggerIn}}},
		{1000: name, tagFileTriggerScripts: {Value: []string{"x"}}, tagFileTriggerIndex: {Value: []int64{0, 0}}, tagFileTriggerFlags: {Value: []int64{0}}},
	} {
		if _, err := ReadScripts(&rpm.Package{Header: rpm.Header{Tags: tags}}); err == nil || !strings.Contains(err.Error(), "read scripts of package bad: malformed") {
			t.Fatalf("error = %v", err)
		}
	}
	// A trigger script no condition points at is refused, not ignored.
	ps, err := ReadScripts(&rpm.Package{Header: rpm.Header{Tags: map[int]*rpm.Tag{1000: name,
		tagTransFileTriggerScripts: {Value: []string{"x"}}}}})
	if err != nil || CheckScriptPolicy([]*PackageScripts{ps}).Error() != "package bad has unsupported script of type %transfiletriggerin" {
		t.Fatalf("%v %+v", err, ps)
	}
	if _, err := ReadScripts(&rpm.Package{}); err == nil {
		t.Fatal("nameless header accepted")
	}
}

// FuzzReadScripts feeds arbitrary bytes to ReadPackage and the script
// reader: neither may panic, and a package they accept has a name. Its seeds
// are real RPMs checked in under testdata/fuzz/FuzzReadScripts (see
// TestWriteFuzzSeeds): nothing is built in the fuzz workers. Minimization is
// bounded (boundMinimize).
func FuzzReadScripts(f *testing.F) {
	boundMinimize(f, "2s")
	f.Add([]byte("\xed\xab\xee\xdb"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkg, err := ReadPackage(bytes.NewReader(data))
		if err != nil {
			return
		}
		ps, err := ReadScripts(pkg)
		if err != nil {
			return
		}
		_ = ps.Refusals()
	})
}
