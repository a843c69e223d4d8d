package main

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// genRepo is a generated rpm-md repository: repodata/repomd.xml with
// primary, filelists and other, gzip-compressed, as createrepo_c lays them
// out. There are no package files: the benchmark only resolves.
type genRepo struct {
	dir string
	// packages is the number of packages; request is the package the
	// benchmark asks for and closure the number of packages installing it
	// takes (itself and everything it requires, transitively).
	packages int
	request  string
	closure  int
	// primarySize and primaryOpen are primary.xml's compressed and
	// uncompressed sizes.
	primarySize, primaryOpen int64
	took                     time.Duration
}

// Words to name packages with, so names look like a distribution's.
var (
	namePrefixes = []string{"", "lib", "python3-", "perl-", "golang-github-", "rust-", "ghc-", "nodejs-", "texlive-", "php-", "R-", "ocaml-", "mingw64-"}
	nameWords    = []string{"alpha", "bolt", "cairo", "delta", "echo", "flux", "glyph", "hydra", "ion", "jade", "kite", "lumen", "mango", "nova", "orbit", "pixel", "quartz", "raven", "sigma", "tango", "ultra", "vortex", "whale", "xenon", "yak", "zephyr"}
)

// genPkg is one generated package.
type genPkg struct {
	name, arch, ver, rel string
	soname               string // a library it provides, or ""
	binary               string // a /usr/bin file it ships, or ""
	requires             []genDep
	recommends           string
}

type genDep struct {
	name, flags, ver string // flags "" or "GE"
}

// generateRepo writes a repository of n packages to dir. Package 0 is a
// "glibc" everything links against; each later package requires two to
// five earlier ones, mostly low-numbered (libraries many depend on), by
// soname, by name with a version floor, or by a /usr/bin path, and one in
// ten recommends another. So installing a late package pulls in a chain of
// a few hundred, as a desktop application does on Fedora. The same seed
// gives the same repository.
func generateRepo(dir string, n int, seed uint64) (*genRepo, error) {
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, 0x686f737463746c))
	pkgs := make([]genPkg, n)
	for i := range pkgs {
		p := &pkgs[i]
		p.name = fmt.Sprintf("%s%s%d", namePrefixes[i%len(namePrefixes)], nameWords[(i/len(namePrefixes))%len(nameWords)], i)
		p.arch = "x86_64"
		if i%4 == 3 {
			p.arch = "noarch"
		}
		p.ver = fmt.Sprintf("%d.%d.%d", 1+i%7, i%13, i%5)
		p.rel = fmt.Sprintf("%d.fc40", 1+i%3)
		if i == 0 {
			p.name, p.soname = "glibc", "libc.so.6()(64bit)"
			continue
		}
		if p.arch == "x86_64" && i%3 == 0 {
			p.soname = fmt.Sprintf("lib%s.so.%d()(64bit)", strings.TrimPrefix(p.name, "lib"), 1+i%4)
		}
		if i%5 == 0 {
			p.binary = "/usr/bin/" + p.name
		}
		if p.arch == "x86_64" {
			p.requires = append(p.requires, genDep{name: "libc.so.6()(64bit)"})
		}
		for k := 2 + rng.IntN(4); k > 0; k-- {
			u := rng.Float64()
			j := int(float64(i) * u * u * u) // biased to low numbers
			q := &pkgs[j]
			switch {
			case q.soname != "":
				p.requires = append(p.requires, genDep{name: q.soname})
			case q.binary != "" && k%2 == 0:
				p.requires = append(p.requires, genDep{name: q.binary})
			default:
				p.requires = append(p.requires, genDep{name: q.name, flags: "GE", ver: q.ver})
			}
		}
		if i%10 == 0 {
			p.recommends = pkgs[rng.IntN(i)].name
		}
	}
	r := &genRepo{dir: dir, packages: n}
	// The request: the package with the largest closure among the last thousand.
	best := -1
	index := providerIndex(pkgs)
	for i := max(1, n-1000); i < n; i++ {
		if c := closureSize(pkgs, index, i); c > best {
			best, r.request = c, pkgs[i].name
		}
	}
	r.closure = best

	repodata := filepath.Join(dir, "repodata")
	if err := os.MkdirAll(repodata, 0o755); err != nil {
		return nil, err
	}
	ts := time.Now().Unix()
	var entries []repomdEntry
	for _, kind := range []string{"primary", "filelists", "other"} {
		e, err := writeMetadata(repodata, kind, ts, func(w io.Writer) error { return writeXML(w, kind, pkgs) })
		if err != nil {
			return nil, err
		}
		if kind == "primary" {
			r.primarySize, r.primaryOpen = e.size, e.openSize
		}
		entries = append(entries, e)
	}
	if err := writeRepomd(filepath.Join(repodata, "repomd.xml"), ts, entries); err != nil {
		return nil, err
	}
	r.took = time.Since(start)
	return r, nil
}

// closureSize counts package i and everything it requires, transitively,
// resolving each dependency to the package the generator took it from.
func closureSize(pkgs []genPkg, index map[string]int, i int) int {
	seen := map[int]bool{}
	stack := []int{i}
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[k] {
			continue
		}
		seen[k] = true
		for _, d := range pkgs[k].requires {
			if j, ok := index[d.name]; ok && !seen[j] {
				stack = append(stack, j)
			}
		}
	}
	return len(seen)
}

// providerIndex maps every name, soname and file a package provides to it.
func providerIndex(pkgs []genPkg) map[string]int {
	providers := map[string]int{}
	for i, p := range pkgs {
		providers[p.name] = i
		if p.soname != "" {
			providers[p.soname] = i
		}
		if p.binary != "" {
			providers[p.binary] = i
		}
	}
	return providers
}

// checksum is a stable fake package checksum (there are no package files).
func checksum(p *genPkg) string {
	s := sha256.Sum256([]byte(p.name + "-" + p.ver + "-" + p.rel + "." + p.arch))
	return hex.EncodeToString(s[:])
}

func writeXML(w io.Writer, kind string, pkgs []genPkg) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	switch kind {
	case "primary":
		fmt.Fprintf(bw, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"%d\">\n", len(pkgs))
	case "filelists":
		fmt.Fprintf(bw, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"%d\">\n", len(pkgs))
	case "other":
		fmt.Fprintf(bw, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" packages=\"%d\">\n", len(pkgs))
	}
	for i := range pkgs {
		p := &pkgs[i]
		sum := checksum(p)
		version := fmt.Sprintf(`<version epoch="0" ver="%s" rel="%s"/>`, p.ver, p.rel)
		switch kind {
		case "primary":
			writePrimaryPackage(bw, p, sum, version, i)
		case "filelists":
			fmt.Fprintf(bw, "<package pkgid=\"%s\" name=\"%s\" arch=\"%s\">\n  %s\n", sum, p.name, p.arch, version)
			for _, f := range files(p) {
				fmt.Fprintf(bw, "  <file>%s</file>\n", f)
			}
			fmt.Fprintf(bw, "  <file type=\"dir\">/usr/share/doc/%s</file>\n</package>\n", p.name)
		case "other":
			fmt.Fprintf(bw, "<package pkgid=\"%s\" name=\"%s\" arch=\"%s\">\n  %s\n  <changelog author=\"Generated &lt;gen@example.org&gt; - %s-%s\" date=\"1700000000\">- Rebuilt</changelog>\n</package>\n", sum, p.name, p.arch, version, p.ver, p.rel)
		}
	}
	switch kind {
	case "primary":
		bw.WriteString("</metadata>\n")
	case "filelists":
		bw.WriteString("</filelists>\n")
	case "other":
		bw.WriteString("</otherdata>\n")
	}
	return bw.Flush()
}

// files are a package's files: its binary and library if any, and docs.
func files(p *genPkg) []string {
	var out []string
	if p.binary != "" {
		out = append(out, p.binary)
	}
	if p.soname != "" {
		lib, _, _ := strings.Cut(p.soname, "(")
		out = append(out, "/usr/lib64/"+lib)
	}
	return append(out, "/usr/share/doc/"+p.name+"/README", "/usr/share/licenses/"+p.name+"/LICENSE")
}

func writePrimaryPackage(w *bufio.Writer, p *genPkg, sum, version string, i int) {
	first := strings.ToLower(p.name[:1])
	fmt.Fprintf(w, `<package type="rpm">
  <name>%s</name>
  <arch>%s</arch>
  %s
  <checksum type="sha256" pkgid="YES">%s</checksum>
  <summary>Generated package %d</summary>
  <description>A generated package of the hostctl resolve benchmark, number %d.</description>
  <packager>Generated</packager>
  <url>https://example.org/%s</url>
  <time file="1700000000" build="1699990000"/>
  <size package="%d" installed="%d" archive="%d"/>
  <location href="Packages/%s/%s-%s-%s.%s.rpm"/>
  <format>
    <rpm:license>MIT</rpm:license>
    <rpm:vendor>Generated</rpm:vendor>
    <rpm:group>Unspecified</rpm:group>
    <rpm:buildhost>gen.example.org</rpm:buildhost>
    <rpm:sourcerpm>%s-%s-%s.src.rpm</rpm:sourcerpm>
    <rpm:header-range start="4504" end="%d"/>
    <rpm:provides>
      <rpm:entry name="%s" flags="EQ" epoch="0" ver="%s" rel="%s"/>
`, p.name, p.arch, version, sum, i, i, p.name, 20000+i%50000, 80000+i%200000, 81000+i%200000,
		first, p.name, p.ver, p.rel, p.arch, p.name, p.ver, p.rel, 9000+i%20000, p.name, p.ver, p.rel)
	if p.arch == "x86_64" {
		fmt.Fprintf(w, "      <rpm:entry name=\"%s(x86-64)\" flags=\"EQ\" epoch=\"0\" ver=\"%s\" rel=\"%s\"/>\n", p.name, p.ver, p.rel)
	}
	if p.soname != "" {
		fmt.Fprintf(w, "      <rpm:entry name=\"%s\"/>\n", p.soname)
	}
	w.WriteString("    </rpm:provides>\n")
	if len(p.requires) > 0 {
		w.WriteString("    <rpm:requires>\n")
		for _, d := range p.requires {
			if d.flags != "" {
				fmt.Fprintf(w, "      <rpm:entry name=\"%s\" flags=\"%s\" epoch=\"0\" ver=\"%s\"/>\n", d.name, d.flags, d.ver)
			} else {
				fmt.Fprintf(w, "      <rpm:entry name=\"%s\"/>\n", d.name)
			}
		}
		w.WriteString("    </rpm:requires>\n")
	}
	if p.recommends != "" {
		fmt.Fprintf(w, "    <rpm:recommends>\n      <rpm:entry name=\"%s\"/>\n    </rpm:recommends>\n", p.recommends)
	}
	// primary.xml lists the files under /usr/bin (and /etc, and *bin/):
	// the ones file dependencies name.
	if p.binary != "" {
		fmt.Fprintf(w, "    <file>%s</file>\n", p.binary)
	}
	w.WriteString("  </format>\n</package>\n")
}

// repomdEntry is one <data> element of repomd.xml.
type repomdEntry struct {
	kind, href, sum, openSum string
	size, openSize           int64
	ts                       int64
}

// writeMetadata writes one gzip-compressed metadata file named after its
// checksum, as createrepo_c does, and returns its repomd.xml entry.
func writeMetadata(repodata, kind string, ts int64, write func(io.Writer) error) (repomdEntry, error) {
	tmp, err := os.CreateTemp(repodata, ".tmp-"+kind)
	if err != nil {
		return repomdEntry{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	outer := sha256.New()
	zw, err := gzip.NewWriterLevel(io.MultiWriter(tmp, outer), gzip.BestSpeed)
	if err != nil {
		return repomdEntry{}, err
	}
	inner := sha256.New()
	cnt := &countWriter{h: inner}
	if err := write(io.MultiWriter(zw, cnt)); err != nil {
		return repomdEntry{}, err
	}
	if err := zw.Close(); err != nil {
		return repomdEntry{}, err
	}
	st, err := tmp.Stat()
	if err != nil {
		return repomdEntry{}, err
	}
	if err := tmp.Close(); err != nil {
		return repomdEntry{}, err
	}
	sum := hex.EncodeToString(outer.Sum(nil))
	href := "repodata/" + sum + "-" + kind + ".xml.gz"
	if err := os.Rename(tmp.Name(), filepath.Join(filepath.Dir(repodata), href)); err != nil {
		return repomdEntry{}, err
	}
	return repomdEntry{kind: kind, href: href, sum: sum, openSum: hex.EncodeToString(inner.Sum(nil)), size: st.Size(), openSize: cnt.n, ts: ts}, nil
}

type countWriter struct {
	h hash.Hash
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

func writeRepomd(path string, ts int64, entries []repomdEntry) error {
	var b strings.Builder
	fmt.Fprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n  <revision>%d</revision>\n", ts)
	for _, e := range entries {
		fmt.Fprintf(&b, `  <data type="%s">
    <checksum type="sha256">%s</checksum>
    <open-checksum type="sha256">%s</open-checksum>
    <location href="%s"/>
    <timestamp>%d</timestamp>
    <size>%d</size>
    <open-size>%d</open-size>
  </data>
`, e.kind, e.sum, e.openSum, e.href, e.ts, e.size, e.openSize)
	}
	b.WriteString("</repomd>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
