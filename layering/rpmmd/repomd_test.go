package rpmmd

import (
	"reflect"
	"strings"
	"testing"
)

const sampleRepoMD = `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1700000000</revision>
  <data type="primary">
    <checksum type="sha256">` + sha256hex + `</checksum>
    <open-checksum type="sha256">` + sha256hex2 + `</open-checksum>
    <location href="repodata/abc-primary.xml.zst"/>
    <timestamp>1700000001</timestamp>
    <size>1234</size>
    <open-size>5678</open-size>
  </data>
  <data type="filelists">
    <checksum type="sha">` + sha1hex + `</checksum>
    <location href="repodata/def-filelists.xml.gz"/>
    <timestamp>1700000002.5</timestamp>
  </data>
</repomd>`

const (
	sha256hex  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	sha256hex2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	sha1hex    = "0123456789abcdef0123456789abcdef01234567"
)

func TestParseRepoMD(t *testing.T) {
	md, err := ParseRepoMD(strings.NewReader(sampleRepoMD))
	if err != nil {
		t.Fatal(err)
	}
	want := &RepoMD{Revision: "1700000000", Data: []Data{
		{Type: "primary", Location: "repodata/abc-primary.xml.zst", Checksum: Checksum{"sha256", sha256hex},
			OpenChecksum: Checksum{"sha256", sha256hex2}, Timestamp: 1700000001, Size: 1234, OpenSize: 5678},
		{Type: "filelists", Location: "repodata/def-filelists.xml.gz", Checksum: Checksum{"sha1", sha1hex}, Timestamp: 1700000002},
	}}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("got  %+v\nwant %+v", md, want)
	}
	if d, ok := md.Find("filelists"); !ok || d.Location != "repodata/def-filelists.xml.gz" {
		t.Fatalf("Find = %+v %v", d, ok)
	}
	if _, ok := md.Find("other"); ok {
		t.Fatal("Find(other) found something")
	}
}

func TestParseRepoMDErrors(t *testing.T) {
	entry := func(typ, sum, loc string) string {
		return `<repomd><data type="` + typ + `">` + sum + `<location href="` + loc + `"/></data></repomd>`
	}
	good := `<checksum type="sha256">` + sha256hex + `</checksum>`
	tests := []struct{ name, xml, err string }{
		{"not xml", "garbage", "parse repomd.xml"},
		{"wrong root", "<foo/>", "expected element type <repomd>"},
		{"no type", entry("", good, "repodata/p.xml"), "no type attribute"},
		{"no checksum", entry("primary", "", "repodata/p.xml"), "no checksum"},
		{"md5", entry("primary", `<checksum type="md5">0123456789abcdef0123456789abcdef</checksum>`, "repodata/p.xml"), `unsupported checksum type "md5"`},
		{"short digest", entry("primary", `<checksum type="sha256">abc</checksum>`, "repodata/p.xml"), "is not 64 hex digits"},
		{"no location", entry("primary", good, ""), "no location href"},
		{"absolute", entry("primary", good, "/etc/passwd"), "not a relative path"},
		{"escape", entry("primary", good, "repodata/../../x"), "leaves the repository"},
		{"url", entry("primary", good, "http://evil/x"), "not a relative path"},
		{"bad timestamp", `<repomd><data type="p">` + good + `<location href="a"/><timestamp>x1</timestamp></data></repomd>`, `timestamp: "x1" is not a number`},
		{"twice", `<repomd><data type="p">` + good + `<location href="a"/></data><data type="p">` + good + `<location href="b"/></data></repomd>`, `data type "p" listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRepoMD(strings.NewReader(tt.xml))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error = %v, want containing %q", err, tt.err)
			}
		})
	}
}

func FuzzParseRepoMD(f *testing.F) {
	f.Add(sampleRepoMD)
	f.Add(`<repomd><data type="p"><checksum type="sha1">` + sha1hex + `</checksum><location href="a/../b"/></data></repomd>`)
	f.Add(`<repomd><revision>x</revision></repomd>`)
	f.Fuzz(func(t *testing.T, text string) {
		md, err := ParseRepoMD(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, d := range md.Data {
			if d.Type == "" || d.Location == "" || strings.HasPrefix(d.Location, "/") || strings.HasPrefix(d.Location, "..") {
				t.Fatalf("bad entry accepted: %+v", d)
			}
			if n, ok := digestHexLen(d.Checksum.Type); !ok || len(d.Checksum.Value) != n {
				t.Fatalf("bad checksum accepted: %+v", d.Checksum)
			}
		}
	})
}
