package layering

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ReceivedRPM is a local RPM file hostd was given and put into the package
// cache.
type ReceivedRPM struct {
	LocalRPM
	// Name and NEVRA are from its header.
	Name, NEVRA string
	// Added is true when the cache did not hold it before.
	Added bool
}

// ReceiveLocalRPM copies an RPM read from r (a file descriptor the caller
// opened) into the package cache of cacheDir, named by its sha256 digest as
// downloaded packages are: it is written beside, its header read back, and
// only then renamed into place. A file that is not an RPM, or larger than
// the largest package hostd downloads, is refused, what names it being
// label (the file name the client gave).
func ReceiveLocalRPM(ctx context.Context, cacheDir, label string, r io.Reader) (ReceivedRPM, error) {
	var out ReceivedRPM
	dir := filepath.Join(cacheDir, "packages")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return out, fmt.Errorf("receive %s: %w", label, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-local-*.rpm")
	if err != nil {
		return out, fmt.Errorf("receive %s: %w", label, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(ctxReader{ctx, r}, maxPackageSize+1))
	if err != nil {
		return out, fmt.Errorf("receive %s: %w", label, err)
	}
	if n > maxPackageSize {
		return out, fmt.Errorf("receive %s: larger than %d bytes, the most hostd takes for one package", label, int64(maxPackageSize))
	}
	if err := tmp.Sync(); err != nil {
		return out, fmt.Errorf("receive %s: %w", label, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return out, fmt.Errorf("receive %s: %w", label, err)
	}
	pkg, err := ReadPackage(bufio.NewReader(tmp))
	if err != nil {
		return out, fmt.Errorf("%s is not an RPM package hostd can read: %w", label, err)
	}
	if pkg.SourceRPM() == "" {
		return out, fmt.Errorf("%s is a source RPM: give a binary package", label)
	}
	arch := pkg.Architecture()
	evr := pkg.Version() + "-" + pkg.Release()
	if pkg.Epoch() > 0 {
		evr = fmt.Sprintf("%d:%s", pkg.Epoch(), evr)
	}
	out.Name = pkg.Name()
	out.NEVRA = out.Name + "-" + evr + "." + arch
	if strings.ContainsAny(out.NEVRA, ";\n\x00 ") {
		return out, fmt.Errorf("%s: invalid package name %q in its header", label, out.NEVRA)
	}
	out.SHA256 = hex.EncodeToString(h.Sum(nil))
	out.Path = LocalRPMPath(cacheDir, out.SHA256)
	if _, err := os.Stat(out.Path); err == nil {
		return out, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return out, fmt.Errorf("receive %s: %w", label, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return out, fmt.Errorf("receive %s: %w", label, err)
	}
	if err := os.Rename(tmp.Name(), out.Path); err != nil {
		return out, fmt.Errorf("receive %s: %w", label, err)
	}
	out.Added = true
	return out, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
