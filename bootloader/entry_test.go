package bootloader

import (
	"reflect"
	"strings"
	"testing"
)

// libostreeEntry is an entry as libostree 2022.7 writes it (copied from a
// sysroot made by `ostree admin deploy`).
const libostreeEntry = `title Test OS 2.0 (ostree:0)
version 2
options ostree=/ostree/boot.0/testos/5bd09162d87b9ade957638f4588896a9bb576e8bf5820e43eb9fa4ebc1de442e/0 foo="a b"
linux /ostree/testos-5bd09162d87b9ade957638f4588896a9bb576e8bf5820e43eb9fa4ebc1de442e/vmlinuz-5.0.0
initrd /ostree/testos-5bd09162d87b9ade957638f4588896a9bb576e8bf5820e43eb9fa4ebc1de442e/initramfs-5.0.0.img
`

func TestParseEntry(t *testing.T) {
	const csum = "5bd09162d87b9ade957638f4588896a9bb576e8bf5820e43eb9fa4ebc1de442e"
	tests := []struct {
		name    string
		file    string
		data    string
		want    Entry
		errText string
	}{
		{
			name: "libostree", file: "ostree-2-testos.conf", data: libostreeEntry,
			want: Entry{
				Name: "ostree-2-testos.conf", ID: "ostree-2-testos",
				Title: "Test OS 2.0 (ostree:0)", Version: "2",
				Options: "ostree=/ostree/boot.0/testos/" + csum + `/0 foo="a b"`,
				Linux:   "/ostree/testos-" + csum + "/vmlinuz-5.0.0",
				Initrd:  []string{"/ostree/testos-" + csum + "/initramfs-5.0.0.img"},
			},
		},
		{
			name: "comments blanks tabs crlf extras overlay initrds", file: "x+3-1.conf",
			data: "# written by hand\r\n\r\n  title\t\tMy OS  \r\nlinux /vmlinuz\r\ninitrd /a.img\r\ninitrd /b.img\r\n" +
				"options a=1\noptions b=2\nsort-key myos\nx-options-source-tuned skew_tick=1\nx-options-source-tuned two\ndevicetree /dtb\n",
			want: Entry{
				Name: "x+3-1.conf", ID: "x", Counting: true, TriesLeft: 3, TriesDone: 1,
				Title: "My OS", Linux: "/vmlinuz", Initrd: []string{"/a.img", "/b.img"},
				Options: "a=1 b=2", Devicetree: "/dtb",
				Extra: []Field{{"sort-key", "myos"}, {"x-options-source-tuned", "skew_tick=1"}, {"x-options-source-tuned", "two"}},
			},
		},
		{name: "no trailing newline", file: "a.conf", data: "linux /k", want: Entry{Name: "a.conf", ID: "a", Linux: "/k"}},
		{name: "missing linux", file: "a.conf", data: "title x\ninitrd /i\n", errText: "no linux key"},
		{name: "efi only", file: "a.conf", data: "title x\nefi /EFI/Linux/x.efi\n", errText: "unified kernel image"},
		{name: "empty", file: "a.conf", data: "", errText: "no linux key"},
		{name: "duplicate linux", file: "a.conf", data: "linux /a\nlinux /b\n", errText: `line 2: second "linux" line (first on line 1)`},
		{name: "duplicate version", file: "a.conf", data: "version 1\nlinux /a\nversion 2\n", errText: `second "version"`},
		{name: "duplicate title", file: "a.conf", data: "title 1\ntitle 2\nlinux /a\n", errText: `second "title"`},
		{name: "duplicate machine-id", file: "a.conf", data: "linux /a\nmachine-id 1\nmachine-id 2\n", errText: `second "machine-id"`},
		{name: "key without value", file: "a.conf", data: "linux /a\noptions\n", errText: `line 2: key "options" has no value`},
		{name: "key with only blanks", file: "a.conf", data: "linux /a\ntitle \t \n", errText: `key "title" has no value`},
		{name: "line without key", file: "a.conf", data: "linux /a\n= foo\n", errText: "line 2"},
		{name: "key starting with digit", file: "a.conf", data: "linux /a\n1title foo\n", errText: "not a KEY VALUE line"},
		{name: "key with odd char", file: "a.conf", data: "linux /a\nti=tle foo\n", errText: "not a KEY VALUE line"},
		{name: "NUL byte", file: "a.conf", data: "linux /a\x00\n", errText: "NUL byte at offset 8"},
		{name: "bad UTF-8", file: "a.conf", data: "linux /a\ntitle \xff\n", errText: "UTF-8"},
		{name: "too big", file: "a.conf", data: "linux /a\n" + strings.Repeat("#", MaxEntrySize), errText: "more than"},
		{name: "name without .conf", file: "a.txt", data: "linux /a\n", errText: "ending in .conf"},
		{name: "name with slash", file: "d/a.conf", data: "linux /a\n", errText: "base name"},
		{name: "name only .conf", file: ".conf", data: "linux /a\n", errText: "base name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEntry(tt.file, []byte(tt.data))
			if tt.errText != "" {
				if err == nil {
					t.Fatalf("no error, got %+v", got)
				}
				if !strings.Contains(err.Error(), tt.errText) || !strings.Contains(err.Error(), tt.file) {
					t.Fatalf("error %q does not contain %q and the file name", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			back, err := ParseEntry(tt.file, got.Marshal())
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Errorf("round trip: %v\n%+v\n%+v", err, back, got)
			}
		})
	}
}

func TestMarshalMatchesLibostree(t *testing.T) {
	e, err := ParseEntry("ostree-2-testos.conf", []byte(libostreeEntry))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(e.Marshal()); got != libostreeEntry {
		t.Errorf("Marshal:\n%s\nwant:\n%s", got, libostreeEntry)
	}
	if got := e.OstreeArg(); got != "/ostree/boot.0/testos/5bd09162d87b9ade957638f4588896a9bb576e8bf5820e43eb9fa4ebc1de442e/0" {
		t.Errorf("OstreeArg = %q", got)
	}
	if got := e.Kargs().Get("foo"); len(got) != 1 || got[0] != "a b" {
		t.Errorf("foo = %q", got)
	}
	bl, err := e.BootLink()
	if err != nil {
		t.Fatal(err)
	}
	if bl.BootVersion != 0 || bl.OSName != "testos" || bl.TreeSerial != 0 || bl.String() != e.OstreeArg() {
		t.Errorf("BootLink = %+v", bl)
	}
}

func TestEntryNameCounting(t *testing.T) {
	tests := []struct {
		name       string
		id         string
		counting   bool
		left, done uint64
		bad        bool
	}{
		{name: "ostree-1-testos.conf", id: "ostree-1-testos"},
		{name: "ostree-1.conf", id: "ostree-1"},
		{name: "ostree-1+3.conf", id: "ostree-1", counting: true, left: 3},
		{name: "ostree-1+2-1.conf", id: "ostree-1", counting: true, left: 2, done: 1},
		{name: "ostree-1+0-3.conf", id: "ostree-1", counting: true, left: 0, done: 3, bad: true},
		{name: "ostree-1+0.conf", id: "ostree-1", counting: true, bad: true},
		{name: "a+b+1.conf", id: "a+b", counting: true, left: 1},
		{name: "a+.conf", id: "a+"},
		{name: "a+-1.conf", id: "a+-1"},
		{name: "a+1-.conf", id: "a+1-"},
		{name: "a+1x.conf", id: "a+1x"},
		{name: "a+1-2-3.conf", id: "a+1-2-3"},
		{name: "a+ 1.conf", id: "a+ 1"},
		{name: "a+99999999999999999999.conf", id: "a+99999999999999999999"},
	}
	for _, tt := range tests {
		e, err := ParseEntry(tt.name, []byte("linux /k\n"))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if e.ID != tt.id || e.Counting != tt.counting || e.TriesLeft != tt.left || e.TriesDone != tt.done || e.Bad() != tt.bad {
			t.Errorf("%s: got id=%q counting=%v left=%d done=%d bad=%v", tt.name, e.ID, e.Counting, e.TriesLeft, e.TriesDone, e.Bad())
		}
	}
}

func TestParseBootLink(t *testing.T) {
	good := map[string]BootLink{
		"/ostree/boot.1/fedora/abc/0": {1, "fedora", "abc", 0},
		"/ostree/boot.0/os/c0ffee/12": {0, "os", "c0ffee", 12},
	}
	for s, want := range good {
		got, err := ParseBootLink(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("ParseBootLink(%q) = %+v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "/ostree/boot.2/os/c/0", "/ostree/boot.0/os/c", "/ostree/boot.0//c/0",
		"/ostree/boot.0/os/c/x", "/ostree/boot.0/os/c/0/", "ostree/boot.0/os/c/0", "/ostree/boot.0/os/c/-1"} {
		if _, err := ParseBootLink(s); err == nil || !strings.Contains(err.Error(), "OSNAME") {
			t.Errorf("ParseBootLink(%q) err = %v", s, err)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Entry{Name: "a.conf", Linux: "/k", Options: "a b"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{
		{Name: "a", Linux: "/k"},
		{Name: "a.conf"},
		{Name: "a.conf", Linux: "/k", Title: "x\ny"},
		{Name: "a.conf", Linux: "/k", Options: " lead"},
		{Name: "a.conf", Linux: "/k", Initrd: []string{""}},
		{Name: "a.conf", Linux: "/k", Extra: []Field{{"linux", "/x"}}},
		{Name: "a.conf", Linux: "/k", Extra: []Field{{"9", "/x"}}},
	} {
		if err := e.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", e)
		}
	}
	// Marshal never writes a second line for a value.
	bad := Entry{Name: "a.conf", Linux: "/k", Title: "x\nlinux /evil"}
	back, err := ParseEntry("a.conf", bad.Marshal())
	if err != nil || back.Linux != "/k" || back.Title != "x linux /evil" {
		t.Errorf("Marshal of a bad title: %+v %v", back, err)
	}
}
