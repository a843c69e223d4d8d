package containers

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func TestRuntimeConfig(t *testing.T) {
	tests := []struct {
		name, in  string
		want      map[string]string // JSON path (dotted) -> value
		wantError string
	}{
		{
			name: "relative root and bind source, no cgroup",
			in: `{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},
				"mounts":[{"destination":"/data","type":"bind","source":"data","options":["rbind"]},
				          {"destination":"/etc/x","type":"none","source":"x","options":["bind","ro"]},
				          {"destination":"/proc","type":"proc","source":"proc"},
				          {"destination":"/var","type":"bind","source":"/var/lib/web"}],
				"linux":{"resources":{"memory":{"limit":9223372036854775807}}},
				"vendor.example":{"kept":true}}`,
			want: map[string]string{
				"root.path": "/slots/web.1/rootfs", "mounts.0.source": "/slots/web.1/data",
				"mounts.1.source": "/slots/web.1/x", "mounts.2.source": "proc", "mounts.3.source": "/var/lib/web",
				"linux.cgroupsPath": "hostctl-x/web", "linux.resources.memory.limit": "9223372036854775807",
				"vendor.example.kept": "true",
			},
		},
		{
			name: "the image's own cgroup and absolute root are kept",
			in:   `{"root":{"path":"/abs/rootfs"},"linux":{"cgroupsPath":"/machine/web"}}`,
			want: map[string]string{"root.path": "/abs/rootfs", "linux.cgroupsPath": "/machine/web"},
		},
		{
			name: "no linux section",
			in:   `{"root":{"path":"rootfs"}}`,
			want: map[string]string{"linux.cgroupsPath": "hostctl-x/web"},
		},
		{name: "no root", in: `{"linux":{}}`, wantError: `no "root"`},
		{name: "not JSON", in: `{"root":`, wantError: "config.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runtimeConfig([]byte(tt.in), "/slots/web.1", "hostctl-x/web")
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(strings.NewReader(string(out)))
			dec.UseNumber()
			var got any
			if err := dec.Decode(&got); err != nil {
				t.Fatal(err)
			}
			for path, want := range tt.want {
				if v := lookup(got, path); v != want {
					t.Errorf("%s = %q, want %q\n%s", path, v, want, out)
				}
			}
		})
	}
}

// lookup follows a dotted path of object keys and array indexes; the last
// dotted key may itself hold a dot (vendor.example).
func lookup(v any, path string) string {
	if path == "" {
		switch v := v.(type) {
		case string:
			return v
		case json.Number:
			return v.String()
		case bool:
			if v {
				return "true"
			}
			return "false"
		}
		return "?"
	}
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if path == k || strings.HasPrefix(path, k+".") {
				if r := lookup(child, strings.TrimPrefix(strings.TrimPrefix(path, k), ".")); r != "?" {
					return r
				}
			}
		}
	case []any:
		head, rest, _ := strings.Cut(path, ".")
		for i, child := range x {
			if head == itoa(i) {
				return lookup(child, rest)
			}
		}
	}
	return "?"
}

func itoa(i int) string { return strconv.Itoa(i) }

// FuzzRuntimeConfig: whatever config.json a slot holds, the runtime bundle's
// is an error or a JSON object whose root.path is absolute and under the
// slot when it was relative, and which names a cgroup.
func FuzzRuntimeConfig(f *testing.F) {
	f.Add(`{"root":{"path":"rootfs"},"mounts":[{"type":"bind","source":"x","destination":"/x"}]}`)
	f.Add(`{"root":{"path":"/abs"},"linux":{"cgroupsPath":"a/b"}}`)
	f.Add(`{"root":{"path":7},"linux":[],"mounts":{"a":1}}`)
	f.Add(`{"root":{"path":"../../etc"},"mounts":[null,1,{"options":["rbind"],"source":"../up"}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		out, err := runtimeConfig([]byte(in), "/slots/web.1", "hostctl-x/web")
		if err != nil {
			return
		}
		var spec struct {
			Root struct {
				Path string `json:"path"`
			} `json:"root"`
			Linux struct {
				CgroupsPath string `json:"cgroupsPath"`
			} `json:"linux"`
		}
		if err := json.Unmarshal(out, &spec); err != nil {
			t.Fatalf("%q gave %q: %v", in, out, err)
		}
		if !strings.HasPrefix(spec.Root.Path, "/") || spec.Linux.CgroupsPath == "" {
			t.Fatalf("%q gave root %q, cgroup %q", in, spec.Root.Path, spec.Linux.CgroupsPath)
		}
	})
}
