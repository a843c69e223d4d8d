package containers

import (
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest([]byte(`{
	"version": "1.0",
	"defaultValues": {"PORT": "8080", "N": 3, "F": 1.5, "BIG": 1e16, "ON": true, "OFF": false, "NIL": null},
	"renameFiles": {"/etc/etcd/etcd.conf": "$CONF_DIRECTORY/$NAME/etcd.conf", "/usr/local/bin/etcdctl": "/usr/local/bin/${NAME}ctl"},
	"installedFilesTemplate": ["/etc/etcd.conf"],
	"noContainerService": true,
	"useLinks": false,
	"somethingNew": 1
}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Manifest{
		Version: "1.0",
		DefaultValues: map[string]string{"PORT": "8080", "N": "3", "F": "1.5", "BIG": "1e+16",
			"ON": "True", "OFF": "False", "NIL": "None"},
		RenameFiles: map[string]string{"/etc/etcd/etcd.conf": "$CONF_DIRECTORY/$NAME/etcd.conf",
			"/usr/local/bin/etcdctl": "/usr/local/bin/${NAME}ctl"},
		InstalledFilesTemplate: []string{"/etc/etcd.conf"},
		NoContainerService:     true,
		UseLinks:               false,
		Unknown:                []string{"somethingNew"},
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("ParseManifest =\n%+v\nwant\n%+v", m, want)
	}
	if m.HasContainerService() {
		t.Error("noContainerService ignored")
	}

	d, err := ParseManifest([]byte(`{}`))
	if err != nil || !d.UseLinks || d.NoContainerService || !d.HasContainerService() {
		t.Fatalf("empty manifest = %+v, %v; useLinks defaults to true", d, err)
	}
}

func TestManifestTruth(t *testing.T) {
	// Python's truth, as atomic's "not manifest[...]": the string "false" is true.
	for raw, want := range map[string]bool{`true`: true, `false`: false, `0`: false, `1`: true, `0.0`: false,
		`""`: false, `"false"`: true, `null`: false, `[]`: false, `[0]`: true, `{}`: false} {
		m, err := ParseManifest([]byte(`{"noContainerService": ` + raw + `}`))
		if err != nil || m.NoContainerService != want {
			t.Errorf("noContainerService %s = %v, %v; want %v", raw, m.NoContainerService, err, want)
		}
	}
}

func TestParseManifestErrors(t *testing.T) {
	for raw, want := range map[string]string{
		`[]`:                                   "cannot unmarshal array",
		`null`:                                 "must be a JSON object",
		`{"version": "1.0",}`:                  "line 1, col 19",
		"{\n\"a\": 1\n\"b\": 2}":               "line 3",
		`{"defaultValues": []}`:                `"defaultValues": must be an object`,
		`{"defaultValues": {"A": [1]}}`:        "A: must be a string, a number or a boolean",
		`{"defaultValues": {"A": {"x": 1}}}`:   "A: must be a string",
		`{"renameFiles": {"/a": 1}}`:           "/a: the destination must be a string",
		`{"renameFiles": {"a": "/b"}}`:         "a: the source must be an absolute path",
		`{"renameFiles": {"/a/../b": "/b"}}`:   "the source must be an absolute path",
		`{"installedFilesTemplate": "/etc/a"}`: `"installedFilesTemplate"`,
		`{"installedFilesTemplate": [1]}`:      `"installedFilesTemplate"`,
		`{"version": true}`:                    `"version": must be a string`,
		`{} {}`:                                "text after",
		`{}}`:                                  "text after",
	} {
		_, err := ParseManifest([]byte(raw))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "manifest.json") {
			t.Errorf("ParseManifest(%s) err = %v, want %q", raw, err, want)
		}
	}
}

func TestRenderRenameFiles(t *testing.T) {
	values := map[string]string{"NAME": "etcd2", "CONF_DIRECTORY": "/etc"}
	got, err := RenderRenameFiles(map[string]string{"/etc/etcd/etcd.conf": "$CONF_DIRECTORY/$NAME/etcd.conf",
		"/usr/local/bin/etcdctl": "/usr/local/bin/${NAME}ctl"}, values)
	if err != nil || got["/etc/etcd/etcd.conf"] != "/etc/etcd2/etcd.conf" || got["/usr/local/bin/etcdctl"] != "/usr/local/bin/etcd2ctl" {
		t.Fatalf("RenderRenameFiles = %v, %v", got, err)
	}
	if _, err := RenderRenameFiles(map[string]string{"/a": "/x/$MISSING"}, values); err == nil || !strings.Contains(err.Error(), "$MISSING") {
		t.Errorf("missing value: %v", err)
	}
	for _, bad := range []string{"relative", "/a/../../etc/shadow", "$NAME"} {
		if _, err := RenderRenameFiles(map[string]string{"/a": bad}, values); err == nil {
			t.Errorf("rename to %q accepted", bad)
		}
	}
}

// TestPythonStrMatchesPython checks number and scalar conversion against
// CPython's str(json.loads(x)).
func TestPythonStrMatchesPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	nums := []string{"0", "-0", "7", "-12", "123456789012345678901234567890", "1.5", "-0.0", "1e3", "1E-5",
		"0.0001", "0.00001", "1e15", "1e16", "1.25e16", "123456.789", "1e308", "1e999", "-1e999",
		"2.5e-300", "0.1", "100.0", "9007199254740993.0", "true", "false", "null", `"s"`}
	in, _ := json.Marshal(nums)
	out, err := exec.Command(py, "-c", "import json,sys; print(json.dumps([str(json.loads(x)) for x in json.loads(sys.argv[1])]))", string(in)).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	json.Unmarshal(out, &want)
	for i, n := range nums {
		var v any
		dec := json.NewDecoder(strings.NewReader(n))
		dec.UseNumber()
		dec.Decode(&v)
		got, err := pythonStr(v)
		if err != nil || got != want[i] {
			t.Errorf("str(%s): got %q, %v; python %q", n, got, err, want[i])
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(`{"version": "1.0", "defaultValues": {"A": 1, "B": "x"}, "renameFiles": {"/a": "/$NAME"}}`)
	f.Add(`{"installedFilesTemplate": ["/etc/x"], "noContainerService": "no", "useLinks": 0}`)
	f.Add(`{"defaultValues": {"F": 1e400, "G": -0.0}}`)
	f.Add(`[1, 2]`)
	f.Fuzz(func(t *testing.T, data string) {
		m, err := ParseManifest([]byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "manifest.json") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		if m.DefaultValues == nil || m.RenameFiles == nil {
			t.Fatal("nil maps")
		}
		for k := range m.RenameFiles {
			if !strings.HasPrefix(k, "/") || hasDotDot(k) {
				t.Fatalf("rename source %q accepted", k)
			}
		}
		if !json.Valid([]byte(data)) {
			t.Fatalf("invalid JSON %q accepted", data)
		}
	})
}
