package layering

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestPreScriptUsers(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       []SysUser
		ok         bool
	}{
		{"fedora idiom", "getent group foo >/dev/null || groupadd -r foo\ngetent passwd foo >/dev/null || \\\n    useradd -r -g foo -d /var/lib/foo -s /sbin/nologin \\\n    -c \"Foo daemon\" foo\nexit 0\n",
			[]SysUser{{Type: 'g', Name: "foo"}, {Type: 'u', Name: "foo", Group: "foo", Home: "/var/lib/foo", Shell: "/sbin/nologin", GECOS: "Foo daemon"}}, true},
		{"no exit, full paths, fixed ids", "/usr/bin/getent group bar &>/dev/null || /usr/sbin/groupadd -r -g 123 bar\n/usr/bin/getent passwd bar >/dev/null 2>&1 || /usr/sbin/useradd -r -u 123 -g bar -M -N -s /bin/false bar",
			[]SysUser{{Type: 'g', Name: "bar", ID: "123"}, {Type: 'u', Name: "bar", ID: "123", Group: "bar", Shell: "/bin/false"}}, true},
		{"unguarded, semicolons, comment", "# users\ngroupadd -f -r baz; useradd -r -g baz -G wheel baz ; :", []SysUser{{Type: 'g', Name: "baz"}, {Type: 'u', Name: "baz", Group: "baz"}}, true},
		{"anything else", "echo pre-ran > /tmp/x", nil, false},
		{"user creation plus more", "getent group foo >/dev/null || groupadd -r foo\nmkdir -p /var/lib/foo", nil, false},
		{"variable", "useradd -r $NAME", nil, false},
		{"other guard", "test -e /x || useradd -r foo", nil, false},
		{"command substitution", "getent passwd foo >/dev/null || useradd -r -d $(pwd) foo", nil, false},
		{"unknown option", "useradd -r -p secret foo", nil, false},
		{"bad name", "groupadd -r 'a:b'", nil, false},
		{"empty", "exit 0\n", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := PreScriptUsers(c.body)
			if ok != c.ok || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("PreScriptUsers = %+v %v, want %+v %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestParseSysusers(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       []SysUser
		err        string
	}{
		{"user and group", "# c\ng grp 950\nu usr - \"A user\" /var/lib/usr /bin/sh\nu other 960:grp\nm usr grp\nr - 500-900\n",
			[]SysUser{{Type: 'g', Name: "grp", ID: "950"}, {Type: 'u', Name: "usr", GECOS: "A user", Home: "/var/lib/usr", Shell: "/bin/sh"}, {Type: 'u', Name: "other", ID: "960", Group: "grp"}, {Type: 'm', Name: "usr", Group: "grp"}}, ""},
		{"m without a group", "m usr", nil, "expected m USER GROUP"},
		{"m with a bad group", "m usr gr:p", nil, "expected m USER GROUP"},
		{"uid from a path", "u svc /usr/bin/svc", []SysUser{{Type: 'u', Name: "svc"}}, ""},
		{"u!", "u! locked -", []SysUser{{Type: 'u', Name: "locked"}}, ""},
		{"bad type", "x foo", nil, "unsupported sysusers.d line type"},
		{"bad id", "u foo abc", nil, "not a number"},
		{"bad name", "u fo:o", nil, "invalid user or group name"},
		{"colon in gecos", "u foo - \"a:b\"", nil, "invalid field"},
		{"too short", "u", nil, "expected TYPE NAME"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseSysusers("test.conf", strings.NewReader(c.text))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParseSysusers = %+v %v, want %+v", got, err, c.want)
			}
		})
	}
}

func TestAddSysUsers(t *testing.T) {
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "usr/etc"), 0o755)
	os.MkdirAll(filepath.Join(tree, "usr/lib"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\ntaken:x:999:999::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "usr/etc/group"), []byte("root:x:0:\ntaken:x:999:\nwheel:x:10:\n"), 0o644)
	// The base's usr/lib/passwd is a hardlink of a repository object: it must be replaced, not written.
	obj := filepath.Join(t.TempDir(), "object")
	os.WriteFile(obj, []byte("libuser:x:998:998::/:/sbin/nologin\n"), 0o644)
	if err := os.Link(obj, filepath.Join(tree, "usr/lib/passwd")); err != nil {
		t.Fatal(err)
	}
	added, err := AddSysUsers(tree, []SysUser{
		{Type: 'u', Name: "svc", Group: "wheel", GECOS: "Service"},
		{Type: 'g', Name: "fixed", ID: "900"},
		{Type: 'u', Name: "own"},
		{Type: 'u', Name: "taken"},
		{Type: 'u', Name: "libuser"},
	}, AccountIDs{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"group fixed", "user svc", "group own", "user own"}; !reflect.DeepEqual(added, want) {
		t.Errorf("added %v, want %v", added, want)
	}
	if got := readString(t, filepath.Join(tree, "usr/lib/passwd")); got != "libuser:x:998:998::/:/sbin/nologin\nsvc:x:997:10:Service:/:/usr/sbin/nologin\nown:x:996:996::/:/usr/sbin/nologin\n" {
		t.Errorf("usr/lib/passwd:\n%s", got)
	}
	if got := readString(t, filepath.Join(tree, "usr/lib/group")); got != "fixed:x:900:\nown:x:996:\n" {
		t.Errorf("usr/lib/group:\n%s", got)
	}
	if got := readString(t, obj); got != "libuser:x:998:998::/:/sbin/nologin\n" {
		t.Errorf("the hardlinked object was written: %q", got)
	}
	if _, err := AddSysUsers(tree, []SysUser{{Type: 'u', Name: "x", Group: "nosuch"}}, AccountIDs{}); err == nil || !strings.Contains(err.Error(), `group "nosuch" does not exist`) {
		t.Errorf("user with a missing group: %v", err)
	}
}

// TestAddSysUsersMembers: "m" lines add the user to the group's member
// list, in the base's group file or a group just added, creating what is
// missing; nothing is written through a hardlink.
func TestAddSysUsersMembers(t *testing.T) {
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "usr/etc"), 0o755)
	os.MkdirAll(filepath.Join(tree, "usr/lib"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	obj := filepath.Join(t.TempDir(), "object")
	os.WriteFile(obj, []byte("root:x:0:\nwheel:x:10:root\nvideo:x:44:\n"), 0o644)
	if err := os.Link(obj, filepath.Join(tree, "usr/etc/group")); err != nil {
		t.Fatal(err)
	}
	added, err := AddSysUsers(tree, []SysUser{
		{Type: 'u', Name: "svc"},
		{Type: 'm', Name: "svc", Group: "wheel"},
		{Type: 'm', Name: "svc", Group: "video"},
		{Type: 'm', Name: "svc", Group: "svcadm"},
		{Type: 'm', Name: "helper", Group: "svcadm"},
		{Type: 'm', Name: "svc", Group: "wheel"},
	}, AccountIDs{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"group svc", "user svc", "member svc of wheel", "member svc of video", "group svcadm", "member svc of svcadm",
		"group helper", "user helper", "member helper of svcadm", "member svc of wheel"}
	if !reflect.DeepEqual(added, want) {
		t.Errorf("added %v\nwant  %v", added, want)
	}
	if got := readString(t, filepath.Join(tree, "usr/etc/group")); got != "root:x:0:\nwheel:x:10:root,svc\nvideo:x:44:svc\n" {
		t.Errorf("usr/etc/group:\n%s", got)
	}
	if got := readString(t, filepath.Join(tree, "usr/lib/group")); got != "svc:x:999:\nsvcadm:x:998:svc,helper\nhelper:x:997:\n" {
		t.Errorf("usr/lib/group:\n%s", got)
	}
	if got := readString(t, obj); got != "root:x:0:\nwheel:x:10:root\nvideo:x:44:\n" {
		t.Errorf("the hardlinked object was written: %q", got)
	}
}

// TestAddSysUsersStableIDs: an account the replaced deployment had keeps
// its id when it is free, whatever the allocation order would give now;
// an id taken in the new tree is allocated afresh.
func TestAddSysUsersStableIDs(t *testing.T) {
	prevRoot := t.TempDir()
	os.MkdirAll(filepath.Join(prevRoot, "etc"), 0o755)
	os.MkdirAll(filepath.Join(prevRoot, "usr/lib"), 0o755)
	os.WriteFile(filepath.Join(prevRoot, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nhostsvc:x:950:950::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(prevRoot, "etc/group"), []byte("root:x:0:\nhostsvc:x:950:\n"), 0o644)
	os.WriteFile(filepath.Join(prevRoot, "usr/lib/passwd"), []byte("svc:x:990:990::/:/usr/sbin/nologin\nclash:x:980:980::/:/usr/sbin/nologin\n"), 0o644)
	os.WriteFile(filepath.Join(prevRoot, "usr/lib/group"), []byte("svc:x:990:\nclash:x:980:\ndata:x:970:\n"), 0o644)
	prev, err := PreviousIDs(prevRoot)
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "usr/etc"), 0o755)
	os.MkdirAll(filepath.Join(tree, "usr/lib"), 0o755)
	// The new base took 980 for an account of its own.
	os.WriteFile(filepath.Join(tree, "usr/etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nbase:x:980:980::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "usr/etc/group"), []byte("root:x:0:\nbase:x:980:\n"), 0o644)
	if _, err := AddSysUsers(tree, []SysUser{{Type: 'g', Name: "data"}, {Type: 'u', Name: "svc"}, {Type: 'u', Name: "clash"}, {Type: 'u', Name: "hostsvc"}}, prev); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(tree, "usr/lib/passwd")); got != "svc:x:990:990::/:/usr/sbin/nologin\nclash:x:999:999::/:/usr/sbin/nologin\nhostsvc:x:950:950::/:/usr/sbin/nologin\n" {
		t.Errorf("usr/lib/passwd:\n%s", got)
	}
	if got := readString(t, filepath.Join(tree, "usr/lib/group")); got != "data:x:970:\nsvc:x:990:\nclash:x:999:\nhostsvc:x:950:\n" {
		t.Errorf("usr/lib/group:\n%s", got)
	}
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func FuzzParseSysusers(f *testing.F) {
	f.Add("g grp 950\nu usr - \"A user\" /var/lib/usr /bin/sh\nm usr grp\n")
	f.Add("u x 1:2 '' - -")
	f.Fuzz(func(t *testing.T, text string) {
		entries, err := ParseSysusers("fuzz.conf", strings.NewReader(text))
		if err != nil {
			return
		}
		for _, e := range entries {
			if !validAccountName(e.Name) || strings.ContainsAny(e.GECOS+e.Home+e.Shell, ":\n") {
				t.Fatalf("accepted an entry that would corrupt passwd: %+v", e)
			}
		}
	})
}

func FuzzPreScriptUsers(f *testing.F) {
	f.Add("getent group foo >/dev/null || groupadd -r foo\ngetent passwd foo >/dev/null || useradd -r -g foo -c 'Foo' foo\nexit 0\n")
	f.Add("echo hi")
	f.Fuzz(func(t *testing.T, body string) {
		entries, ok := PreScriptUsers(body)
		if !ok {
			return
		}
		for _, e := range entries {
			if !validAccountName(e.Name) || strings.ContainsAny(e.GECOS+e.Home+e.Shell, ":\n") || (e.Type != 'u' && e.Type != 'g') {
				t.Fatalf("accepted an entry that would corrupt passwd: %+v", e)
			}
		}
	})
}
