package layering

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/layering/internal/testrpm"
)

// The seed corpora of FuzzExtractPayload and FuzzReadScripts are real RPMs
// built by rpmbuild, cut down and checked in under testdata/fuzz/FUZZER/seed-*.
// They are files rather than f.Add calls because the fuzzing engine runs the
// fuzz target's setup again in every worker process: building the RPMs there
// made each worker wait for rpmbuild. They are cut down (an empty signature
// header, only the tags the code under test reads, no payload for the script
// reader) because the engine minimizes every new input it finds, at a cost
// that grows with the square of its size: with whole 10 KiB RPMs (4 KiB of
// them signature padding) both workers spent the fuzzing time minimizing.
//
// Regenerate them after changing testdata/payload.spec or scripts.spec:
//
//	HOSTCTL_WRITE_FUZZ_SEEDS=1 go test -run '^TestWriteFuzzSeeds$' ./layering
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("HOSTCTL_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set HOSTCTL_WRITE_FUZZ_SEEDS=1 to rebuild the checked-in fuzz seeds")
	}
	// An uncompressed payload lets the fuzzer reach the cpio reader and the
	// extractor; the compressed ones cover each decompressor.
	payloads := map[string]string{"none": "w0.ufdio", "gzip": testrpm.Gzip, "zstd": testrpm.Zstd}
	for name, comp := range payloads {
		rpms := testrpm.BuildFile(t, "testdata/payload.spec", comp)
		writeSeed(t, "FuzzExtractPayload", "seed-payload-"+name, rpms[0], payloadTags, true)
	}
	// A stripped-cpio payload (rpm 6's form) built to rpm's spec.
	stripped := filepath.Join(t.TempDir(), "fx.rpm")
	files := fixtureFiles()
	files[11].body = "big file, made small for the seed\n"
	if err := os.WriteFile(stripped, encodeRPM(t, "fx", files, payloadForm{stripped: true, v6: true}), 0o644); err != nil {
		t.Fatal(err)
	}
	writeSeed(t, "FuzzExtractPayload", "seed-payload-stripped", stripped, payloadTags, true)
	for _, p := range testrpm.BuildFile(t, "testdata/scripts.spec", "w0.ufdio") {
		base := filepath.Base(p)
		for _, want := range []string{"multi", "luapost", "filetriggerin", "triggerin", "progpost", "post-"} {
			if strings.HasPrefix(base, "scripts-"+want) {
				writeSeed(t, "FuzzReadScripts", "seed-"+strings.TrimSuffix(base, ".noarch.rpm"), p, isScriptTag, false)
			}
		}
	}
}

// payloadTags are the header tags ExtractPayload reads.
func payloadTags(tag uint32) bool {
	switch tag {
	case 1000, 1001, 1002, 1022, // name, version, release, arch
		1030, 1037, 1039, 1040, // file modes, flags, user, group
		1116, 1117, 1118, 5010, // dir indexes, basenames, dir names, caps
		1028, 5008, 1036, // file sizes, long file sizes, symlink targets
		1095, 1096, 5114, // file devices, inodes, rpm format
		1124, 1125, 1126: // payload format, compressor, flags
		return true
	}
	return false
}

// isScriptTag keeps the name and every script and trigger tag.
func isScriptTag(tag uint32) bool {
	if tag == 1000 {
		return true
	}
	for _, k := range scriptKinds() {
		if k.family == plainScript && (uint32(k.tag) == tag || uint32(k.progTag) == tag) {
			return true
		}
	}
	switch tag {
	case tagTriggerScripts, tagTriggerFlags, tagTriggerIndex, tagTriggerScriptProg,
		1066, 1067, // trigger names and versions
		tagFileTriggerScripts, tagFileTriggerScriptProg, tagFileTriggerIndex, tagFileTriggerFlags,
		5069, 5071, 5073, // file trigger names, versions, priorities
		tagTransFileTriggerScripts, tagTransFileTriggerScriptProg, tagTransFileTriggerIndex, tagTransFileTriggerFlags,
		5079, 5081, 5083:
		return true
	}
	return false
}

// writeSeed writes the RPM at rpmPath, cut down to its lead, an empty
// signature header, the header tags keep selects and (withPayload) the
// payload, as a corpus file of fuzzer.
func writeSeed(t *testing.T, fuzzer, name, rpmPath string, keep func(uint32) bool, withPayload bool) {
	t.Helper()
	data, err := os.ReadFile(rpmPath)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.Write(data[:leadSize])
	// The signature header: skipped, padded to 8 bytes.
	sigStore := int(binary.BigEndian.Uint32(data[leadSize+12:]))
	sigCount := int(binary.BigEndian.Uint32(data[leadSize+8:]))
	hdr := leadSize + headerIntroSize + 16*sigCount + sigStore + (8-sigStore%8)%8
	out.Write([]byte{0x8e, 0xad, 0xe8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	end := filterHeader(t, &out, data[hdr:], keep)
	if withPayload {
		out.Write(data[hdr+end:])
	}
	dir := filepath.Join("testdata", "fuzz", fuzzer)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", out.Bytes())
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// filterHeader writes the header at the start of h with only the entries
// keep selects (the immutable region tag goes too) and returns the length
// of the original header.
func filterHeader(t *testing.T, out *bytes.Buffer, h []byte, keep func(uint32) bool) int {
	t.Helper()
	count := int(binary.BigEndian.Uint32(h[8:]))
	size := int(binary.BigEndian.Uint32(h[12:]))
	store := h[headerIntroSize+16*count : headerIntroSize+16*count+size]
	var index, data bytes.Buffer
	n := 0
	for i := 0; i < count; i++ {
		e := h[headerIntroSize+16*i : headerIntroSize+16*i+16]
		tag, typ := binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:])
		off, cnt := int(binary.BigEndian.Uint32(e[8:])), int(binary.BigEndian.Uint32(e[12:]))
		if tag == 63 || !keep(tag) {
			continue
		}
		var length int
		switch w := tagTypeWidth(typ); {
		case typ == 6 || typ == 8 || typ == 9:
			for k := 0; k < cnt; k++ {
				length += bytes.IndexByte(store[off+length:], 0) + 1
			}
		default:
			length = cnt * int(w)
			if align := int(w); align > 1 {
				for data.Len()%align != 0 {
					data.WriteByte(0)
				}
			}
		}
		var ne [16]byte
		copy(ne[:8], e[:8])
		binary.BigEndian.PutUint32(ne[8:], uint32(data.Len()))
		binary.BigEndian.PutUint32(ne[12:], uint32(cnt))
		index.Write(ne[:])
		data.Write(store[off : off+length])
		n++
	}
	var intro [headerIntroSize]byte
	copy(intro[:8], h[:8])
	binary.BigEndian.PutUint32(intro[8:], uint32(n))
	binary.BigEndian.PutUint32(intro[12:], uint32(data.Len()))
	out.Write(intro[:])
	out.Write(index.Bytes())
	out.Write(data.Bytes())
	return headerIntroSize + 16*count + size
}

// TestFuzzSeedsParse checks that the checked-in seeds are still packages the
// code under test accepts, so the fuzzers start from inputs that reach deep.
func TestFuzzSeedsParse(t *testing.T) {
	for _, tc := range []struct {
		fuzzer string
		check  func(t *testing.T, data []byte)
	}{
		{"FuzzReadScripts", func(t *testing.T, data []byte) {
			pkg, err := ReadPackage(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			ps, err := ReadScripts(pkg)
			if err != nil || len(ps.Scripts) == 0 {
				t.Fatalf("scripts %+v, %v; want some", ps, err)
			}
		}},
		{"FuzzExtractPayload", func(t *testing.T, data []byte) {
			requireRoot(t)
			p := filepath.Join(t.TempDir(), "p.rpm")
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			dest := t.TempDir()
			if _, err := ExtractPayload(context.Background(), p, dest, testIDs(t)); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dest, "usr/bin/hello")); err != nil {
				if _, err2 := os.Stat(filepath.Join(dest, "usr/bin/fx")); err2 != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", tc.fuzzer, "seed-*"))
		if len(seeds) == 0 {
			t.Fatalf("no seeds for %s", tc.fuzzer)
		}
		for _, s := range seeds {
			t.Run(filepath.Base(s), func(t *testing.T) {
				text, err := os.ReadFile(s)
				if err != nil {
					t.Fatal(err)
				}
				_, lit, ok := strings.Cut(strings.TrimSpace(string(text)), "\n[]byte(")
				if !ok {
					t.Fatalf("%s is not a corpus file", s)
				}
				data, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, []byte(data))
			})
		}
	}
}

// boundMinimize caps how long the fuzzing engine minimizes each new input
// at limit, unless -fuzzminimizetime was given. Minimizing a []byte tries
// removing every range of it, so its cost grows with the square of the
// input's length: with the default of 60 s, both workers spent the whole
// fuzzing time minimizing RPMs of a few KiB instead of fuzzing. The
// coordinator reads the flag when the target calls f.Fuzz, after this.
func boundMinimize(f *testing.F, limit string) {
	set := false
	flag.Visit(func(fl *flag.Flag) { set = set || fl.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", limit); err != nil {
			f.Logf("cannot bound the minimization time: %v", err)
		}
	}
}
