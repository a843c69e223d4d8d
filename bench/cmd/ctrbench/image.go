package main

import (
	"archive/tar"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/hostctl/hostctl/tests/fixture"
)

// benchImage is the image every benchmark pulls and installs: the hello
// image of the end-to-end tests (busybox-static, an HTTP service on $PORT,
// /exports) with more layers in the middle, the way real images stack a
// base, libraries, data and configuration.
type benchImage struct {
	layers     [][]byte // gzip'd tar layers, lowest first
	names      []string // what each layer holds, for the report
	entries    int      // tar entries over all layers
	compressed int64    // bytes of the layer blobs
	raw        int64    // bytes of the regular files in them
}

// buildImage makes the layers. The content is fixed by a seed, so the same
// flags give the same blobs (and digests) every run.
func buildImage(smallFiles, randomMiB int) (*benchImage, error) {
	img := &benchImage{}
	add := func(name string, ents []fixture.TarEntry) error {
		l, err := fixture.Layer(ents)
		if err != nil {
			return fmt.Errorf("layer %s: %w", name, err)
		}
		img.layers = append(img.layers, l)
		img.names = append(img.names, name)
		img.entries += len(ents)
		img.compressed += int64(len(l))
		for _, e := range ents {
			img.raw += int64(len(e.Body))
		}
		return nil
	}
	base, err := fixture.BusyboxLayer()
	if err != nil {
		return nil, err
	}
	img.layers = append(img.layers, base)
	img.names = append(img.names, "busybox-static and the root directories")
	img.entries += 8
	img.compressed += int64(len(base))
	if fi, err := os.Stat("/bin/busybox"); err == nil {
		img.raw += fi.Size()
	}

	rng := rand.New(rand.NewPCG(1, 2))
	libs := smallFiles * 2 / 3
	if err := add(fmt.Sprintf("%d library-like files (text, 1-8 KiB)", libs), textFiles(rng, "usr/lib/bench", libs, 1024, 8192)); err != nil {
		return nil, err
	}
	if err := add(fmt.Sprintf("%d MiB of incompressible data in 4 files", randomMiB), randomFiles(rng, "usr/share/bench/data", 4, randomMiB<<20)); err != nil {
		return nil, err
	}
	conf := smallFiles - libs
	ents := textFiles(rng, "etc/bench", conf, 64, 1024)
	// A whiteout of one library file, as an upper layer that removes
	// something does: hostd applies it at checkout.
	ents = append(ents, fixture.TarEntry{Name: "usr/lib/bench/d0/.wh.f0.so"})
	if err := add(fmt.Sprintf("%d configuration files (64 B-1 KiB) and a whiteout", conf), ents); err != nil {
		return nil, err
	}
	if err := add("/exports: config.json.template, manifest.json, hostfs", fixture.HelloExports(fixture.HelloConfigTemplate(true))); err != nil {
		return nil, err
	}
	return img, nil
}

// textFiles makes n text files of min..max bytes under dir, 50 per
// subdirectory, with their directories.
func textFiles(rng *rand.Rand, dir string, n, min, max int) []fixture.TarEntry {
	words := []string{"alpha", "beta", "gamma", "delta", "symbol", "version", "lib", "0x7f3a", "init", "=", "\n", "{", "}", "return", "struct"}
	var out []fixture.TarEntry
	parts := strings.Split(dir, "/")
	for i := range parts {
		out = append(out, fixture.TarEntry{Name: strings.Join(parts[:i+1], "/") + "/", Type: tar.TypeDir})
	}
	for i := 0; i < n; i++ {
		sub := fmt.Sprintf("%s/d%d", dir, i/50)
		if i%50 == 0 {
			out = append(out, fixture.TarEntry{Name: sub + "/", Type: tar.TypeDir})
		}
		size := min + rng.IntN(max-min+1)
		var b strings.Builder
		for b.Len() < size {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		out = append(out, fixture.TarEntry{Name: fmt.Sprintf("%s/f%d.so", sub, i%50), Body: b.String()[:size]})
	}
	return out
}

// randomFiles makes n files of incompressible bytes, total bytes in all.
func randomFiles(rng *rand.Rand, dir string, n, total int) []fixture.TarEntry {
	var out []fixture.TarEntry
	parts := strings.Split(dir, "/")
	for i := range parts {
		out = append(out, fixture.TarEntry{Name: strings.Join(parts[:i+1], "/") + "/", Type: tar.TypeDir})
	}
	for i := 0; i < n; i++ {
		b := make([]byte, total/n)
		for j := 0; j+8 <= len(b); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8; k++ {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		out = append(out, fixture.TarEntry{Name: fmt.Sprintf("%s/blob%d.bin", dir, i), Body: string(b)})
	}
	return out
}

// describe is the image's line in the report.
func (img *benchImage) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d layers, %s of gzip'd blobs, %s of file content, %d tar entries:", len(img.layers), mib(img.compressed), mib(img.raw), img.entries)
	for i, n := range img.names {
		fmt.Fprintf(&b, " (%d) %s, %s;", i+1, n, mib(int64(len(img.layers[i]))))
	}
	return strings.TrimSuffix(b.String(), ";") + "."
}
