package rpmmd

import (
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// compressionExts are the file name endings of the compressions rpm-md uses.
var compressionExts = []string{".gz", ".xz", ".zst", ".bz2"}

// stripCompression returns name without its compression extension.
func stripCompression(name string) string {
	for _, ext := range compressionExts {
		if strings.HasSuffix(name, ext) {
			return strings.TrimSuffix(name, ext)
		}
	}
	return name
}

// decompressor returns a reader of the decompressed content of r, chosen by
// the ending of name; close releases its resources.
func decompressor(name string, r io.Reader) (rc io.Reader, closeFn func(), err error) {
	switch {
	case strings.HasSuffix(name, ".gz"):
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return z, func() { z.Close() }, nil
	case strings.HasSuffix(name, ".xz"):
		z, err := xz.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("xz: %w", err)
		}
		return z, func() {}, nil
	case strings.HasSuffix(name, ".zst"):
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return z, z.Close, nil
	case strings.HasSuffix(name, ".bz2"):
		return bzip2.NewReader(r), func() {}, nil
	}
	return r, func() {}, nil
}
