package layering

import (
	"slices"
	"testing"

	"github.com/hostctl/hostctl/layering/solv"
)

func TestParseNEVRA(t *testing.T) {
	for _, tc := range []struct {
		in              string
		name, evr, arch string
		wantErr         bool
	}{
		{in: "hello-lib-1.0-1.noarch", name: "hello-lib", evr: "1.0-1", arch: "noarch"},
		{in: "bash-5.2.26-3.fc40.x86_64", name: "bash", evr: "5.2.26-3.fc40", arch: "x86_64"},
		{in: "perl-Foo-2:1.2~rc1-4.el9.aarch64", name: "perl-Foo", evr: "2:1.2~rc1-4.el9", arch: "aarch64"},
		{in: "a-1-1.x", name: "a", evr: "1-1", arch: "x"},
		{in: "noarch", wantErr: true},
		{in: "foo-1.0.noarch", wantErr: true},
		{in: "foo-1.0-.noarch", wantErr: true},
		{in: "-1.0-1.noarch", wantErr: true},
		{in: "foo-1.0-1.", wantErr: true},
		{in: "foo-x:1.0-1.noarch", wantErr: true},
		{in: "", wantErr: true},
	} {
		p, err := ParseNEVRA(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseNEVRA(%q) = %+v, want an error", tc.in, p)
			}
			continue
		}
		if err != nil || p.Name != tc.name || p.EVR != tc.evr || p.Arch != tc.arch {
			t.Errorf("ParseNEVRA(%q) = %+v, %v; want %s %s %s", tc.in, p, err, tc.name, tc.evr, tc.arch)
		}
		if p.NEVRA() != tc.in {
			t.Errorf("ParseNEVRA(%q).NEVRA() = %q", tc.in, p.NEVRA())
		}
	}
}

func FuzzParseNEVRA(f *testing.F) {
	for _, s := range []string{"hello-lib-1.0-1.noarch", "x-1:2-3.y", "--.-", "a-b-c.d", ":-:-.:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseNEVRA(s)
		if err != nil {
			return
		}
		if p.Name == "" || p.Arch == "" || p.NEVRA() != s {
			t.Fatalf("ParseNEVRA(%q) = %+v: does not give back its input", s, p)
		}
		if _, err := parseEVR(p.EVR); err != nil {
			t.Fatalf("ParseNEVRA(%q) accepted EVR %q: %v", s, p.EVR, err)
		}
	})
}

func TestDiffLayered(t *testing.T) {
	pkg := func(name, evr, sum string) solv.Package {
		return solv.Package{Name: name, EVR: evr, Arch: "noarch", ChecksumType: "sha256", Checksum: sum}
	}
	old := []LayeredPackage{
		{Name: "hello-layer", EVR: "1.0-1", Arch: "noarch", Checksum: "sha256:aa"},
		{Name: "hello-lib", EVR: "1.0-1", Arch: "noarch", Checksum: "sha256:bb"},
	}
	for _, tc := range []struct {
		name string
		old  []LayeredPackage
		new  []solv.Package
		want []string
	}{
		{name: "same", old: old, new: []solv.Package{pkg("hello-layer", "1.0-1", "aa"), pkg("hello-lib", "1.0-1", "BB")}},
		{name: "upgraded", old: old, new: []solv.Package{pkg("hello-layer", "1.0-1", "aa"), pkg("hello-lib", "1.1-1", "cc")},
			want: []string{"Upgraded: hello-lib 1.0-1 -> 1.1-1"}},
		{name: "release numbers compare as numbers", old: old, new: []solv.Package{pkg("hello-layer", "1.0-10", "aa"), pkg("hello-lib", "1.0-1", "bb")},
			want: []string{"Upgraded: hello-layer 1.0-1 -> 1.0-10"}},
		{name: "epoch beats version", old: old, new: []solv.Package{pkg("hello-layer", "1:0.1-1", "aa"), pkg("hello-lib", "0.9-1", "bb")},
			want: []string{"Upgraded: hello-layer 1.0-1 -> 1:0.1-1", "Downgraded: hello-lib 1.0-1 -> 0.9-1"}},
		{name: "rebuilt", old: old, new: []solv.Package{pkg("hello-layer", "1.0-1", "aa"), pkg("hello-lib", "1.0-1", "dd")},
			want: []string{"Rebuilt: hello-lib-1.0-1.noarch (same version, new package file)"}},
		{name: "unknown old checksum is no rebuild",
			old: []LayeredPackage{{Name: "hello-lib", EVR: "1.0-1", Arch: "noarch"}}, new: []solv.Package{pkg("hello-lib", "1.0-1", "dd")}},
		{name: "added and removed", old: old, new: []solv.Package{pkg("hello-layer", "1.0-1", "aa"), pkg("libother", "2-1", "ee")},
			want: []string{"Added: libother-2-1.noarch", "Removed: hello-lib-1.0-1.noarch"}},
		{name: "first layering", new: []solv.Package{pkg("hello-lib", "1.0-1", "bb")}, want: []string{"Added: hello-lib-1.0-1.noarch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := DiffLayered(tc.old, tc.new)
			if got := d.Lines(); !slices.Equal(got, tc.want) {
				t.Errorf("lines = %q, want %q", got, tc.want)
			}
			if d.Empty() != (len(tc.want) == 0) {
				t.Errorf("Empty() = %v for %q", d.Empty(), tc.want)
			}
		})
	}
}

func TestLayeredChecksumsRoundTrip(t *testing.T) {
	pkgs := []solv.Package{
		{Name: "hello-lib", EVR: "1.0-1", Arch: "noarch", ChecksumType: "sha256", Checksum: "bb"},
		{Name: "x", EVR: "1:2-3", Arch: "x86_64", ChecksumType: "sha512", Checksum: "cc"},
	}
	v := layeredChecksums(pkgs)
	if want := "hello-lib-1.0-1.noarch=sha256:bb;x-1:2-3.x86_64=sha512:cc"; v != want {
		t.Errorf("layeredChecksums = %q, want %q", v, want)
	}
	sums := parseLayeredChecksums(v)
	if len(sums) != 2 || sums["hello-lib-1.0-1.noarch"] != "sha256:bb" || sums["x-1:2-3.x86_64"] != "sha512:cc" {
		t.Errorf("parseLayeredChecksums(%q) = %v", v, sums)
	}
	if got := parseLayeredChecksums(""); len(got) != 0 {
		t.Errorf("parseLayeredChecksums(\"\") = %v", got)
	}
}
