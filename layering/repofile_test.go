package layering

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testVars = map[string]string{"basearch": "x86_64", "releasever": "40"}

func TestParseRepoFile(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []Repo
		err  string
	}{{
		name: "full",
		text: `# comment
[fedora]
name=Fedora $releasever - $basearch
baseurl=https://mirror.example/fedora/${releasever}/$basearch/os/
enabled=1
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-$releasever-$basearch
metadata_expire=6h
skip_if_unavailable=False
`,
		want: []Repo{{ID: "fedora", Name: "Fedora 40 - x86_64", BaseURLs: []string{"https://mirror.example/fedora/40/x86_64/os/"},
			Enabled: true, GPGCheck: true, GPGKeys: []string{"file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-40-x86_64"},
			MetadataExpire: 6 * time.Hour, File: "t.repo", Line: 2}},
	}, {
		name: "defaults and several baseurls on continuation lines",
		text: "[a]\nbaseurl=http://one/$basearch\n  http://two/\n\thttp://three/,http://four/\n",
		want: []Repo{{ID: "a", Name: "a", BaseURLs: []string{"http://one/x86_64", "http://two/", "http://three/", "http://four/"},
			Enabled: true, MetadataExpire: DefaultMetadataExpire, File: "t.repo", Line: 1}},
	}, {
		name: "two sections, disabled without baseurl, never expire, unknown var kept",
		text: "[a]\nbaseurl = file:///srv/$foo\nmetadata_expire=never\ngpgkey=k1, k2\n; c\n[b]\nenabled=0\nmetalink=https://m/\nmetadata_expire=-1\n",
		want: []Repo{
			{ID: "a", Name: "a", BaseURLs: []string{"file:///srv/$foo"}, Enabled: true, GPGKeys: []string{"k1", "k2"}, MetadataExpire: NeverExpire, File: "t.repo", Line: 1},
			{ID: "b", Name: "b", Metalink: "https://m/", MetadataExpire: NeverExpire, File: "t.repo", Line: 6},
		},
	}, {
		name: "units",
		text: "[s]\nbaseurl=http://x/\nmetadata_expire=90\n[m]\nbaseurl=http://x/\nmetadata_expire=5m\n[d]\nbaseurl=http://x/\nmetadata_expire=2d\n[z]\nbaseurl=http://x/\nmetadata_expire=0\n",
		want: []Repo{
			{ID: "s", Name: "s", BaseURLs: []string{"http://x/"}, Enabled: true, MetadataExpire: 90 * time.Second, File: "t.repo", Line: 1},
			{ID: "m", Name: "m", BaseURLs: []string{"http://x/"}, Enabled: true, MetadataExpire: 5 * time.Minute, File: "t.repo", Line: 4},
			{ID: "d", Name: "d", BaseURLs: []string{"http://x/"}, Enabled: true, MetadataExpire: 48 * time.Hour, File: "t.repo", Line: 7},
			{ID: "z", Name: "z", BaseURLs: []string{"http://x/"}, Enabled: true, MetadataExpire: 0, File: "t.repo", Line: 10},
		},
	}, {
		name: "empty file", text: "\n# nothing\n", want: nil,
	},
		{name: "key before section", text: "baseurl=http://x/\n", err: `t.repo:1: key "baseurl" before the first [section]`},
		{name: "unclosed section", text: "[a\n", err: `t.repo:1: section header "[a" has no closing ]`},
		{name: "bad id", text: "[a b]\n", err: `t.repo:1: repository id "a b" has invalid character ' '`},
		{name: "not key value", text: "[a]\nbaseurl=http://x/\njunk\n", err: `t.repo:3: expected key=value or [section], got "junk"`},
		{name: "duplicate section", text: "[a]\nbaseurl=http://x/\n[a]\n", err: `t.repo:3: repository "a" is already defined at line 1`},
		{name: "bad bool", text: "[a]\nbaseurl=http://x/\nenabled=maybe\n", err: `t.repo:3: repository "a": enabled: "maybe" is not a boolean`},
		{name: "bad expire", text: "[a]\nbaseurl=http://x/\n\nmetadata_expire=soon\n", err: `t.repo:4: repository "a": metadata_expire: "soon" is not a duration`},
		{name: "negative expire", text: "[a]\nbaseurl=http://x/\nmetadata_expire=-5\n", err: `t.repo:3: repository "a": metadata_expire: "-5" is not a duration`},
		{name: "no baseurl", text: "[a]\nname=x\n", err: `t.repo:1: repository "a": no baseurl; add baseurl= or set enabled=0`},
		{name: "metalink only", text: "[a]\nmetalink=https://m/\n", err: `metalink and mirrorlist are not supported`},
		{name: "baseurl not url", text: "[a]\nbaseurl=/srv/repo\n", err: `t.repo:2: repository "a": baseurl: "/srv/repo" is not a URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRepoFile("t.repo", strings.NewReader(tt.text), testVars)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadRepoDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.repo", "[b]\nbaseurl=http://b/$basearch/\n")
	write("a.repo", "[a]\nbaseurl=http://a/\n")
	write("ignored.txt", "[c]\nbaseurl=http://c/\n")
	repos, err := LoadRepoDir(dir, testVars)
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 2 || repos[0].ID != "a" || repos[1].ID != "b" || repos[1].BaseURLs[0] != "http://b/x86_64/" {
		t.Fatalf("repos = %+v", repos)
	}
	write("c.repo", "\n[a]\nbaseurl=http://a2/\n")
	_, err = LoadRepoDir(dir, testVars)
	want := filepath.Join(dir, "c.repo") + `:2: repository "a" is already defined at ` + filepath.Join(dir, "a.repo") + ":1"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want %q", err, want)
	}
	repos, err = LoadRepoDir(filepath.Join(dir, "missing"), nil)
	if err != nil || len(repos) != 0 {
		t.Fatalf("missing dir: %v %v", repos, err)
	}
}

func TestExpandVars(t *testing.T) {
	for in, want := range map[string]string{
		"$basearch":            "x86_64",
		"${basearch}x":         "x86_64x",
		"$basearchx":           "$basearchx",
		"$releasever/$unknown": "40/$unknown",
		"${unclosed":           "${unclosed",
		"$":                    "$",
		"a$$basearch":          "a$x86_64",
	} {
		if got := ExpandVars(in, testVars); got != want {
			t.Errorf("ExpandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseRepoFile(f *testing.F) {
	f.Add("[fedora]\nname=F $releasever\nbaseurl=http://x/$basearch\n  http://y/\nenabled=1\ngpgcheck=0\nmetadata_expire=1.5d\n")
	f.Add("[a]\nbaseurl=${basearch}\n[b]\nenabled=0\n")
	f.Add("x=y\n")
	f.Add("[a:b.c-d_e]\n\tcontinued\n;c\n#c\n")
	f.Fuzz(func(t *testing.T, text string) {
		repos, err := ParseRepoFile("f.repo", strings.NewReader(text), testVars)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.repo") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, r := range repos {
			if r.Enabled && len(r.BaseURLs) == 0 {
				t.Fatalf("enabled repo %q without baseurl accepted", r.ID)
			}
			if r.MetadataExpire < 0 && r.MetadataExpire != NeverExpire {
				t.Fatalf("negative expire %v", r.MetadataExpire)
			}
			if validRepoID(r.ID) != nil {
				t.Fatalf("invalid id %q accepted", r.ID)
			}
		}
	})
}
