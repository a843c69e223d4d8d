package layering

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hostctl/hostctl/internal/httpx"
	"github.com/hostctl/hostctl/layering/rpmmd"
	"github.com/hostctl/hostctl/layering/solv"
)

// maxPackageSize bounds one downloaded RPM.
const maxPackageSize = 4 << 30

// ChecksumError is a downloaded package whose digest is not the one the
// repository metadata names.
type ChecksumError struct {
	NEVRA, Repo, URL string
	Want, Got        string
}

// Error says which package, where from, and what to do.
func (e *ChecksumError) Error() string {
	return fmt.Sprintf("package %s from repo %s (%s): checksum mismatch: the metadata says %s, the download has %s; the repository is inconsistent or the download was altered: run refresh-md and try again, or tell the repository's owner",
		e.NEVRA, e.Repo, e.URL, e.Want, e.Got)
}

// PackageFile is a package the solver chose and its verified file in the
// package cache.
type PackageFile struct {
	solv.Package
	// Path is the RPM in the content-addressed cache (CacheDir/packages).
	Path string
	// Downloaded is true when this call fetched it.
	Downloaded bool
}

// httpClient returns c, or a client with connect, TLS handshake and
// response header deadlines that also reads file:// URLs.
func httpClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return httpx.NewClient(httpx.Timeouts{})
}

// fetchPackage returns the cached file of pkg, downloading it from repo's
// base URLs (in order) into dir when it is not there. The file's name is its
// metadata checksum, and it is renamed into place only once its digest
// matches: the cache never holds a file that is not what the metadata says.
func fetchPackage(ctx context.Context, client *http.Client, dir string, repo Repo, pkg solv.Package) (PackageFile, error) {
	out := PackageFile{Package: pkg}
	if pkg.Checksum == "" || pkg.ChecksumType == "" {
		return out, fmt.Errorf("package %s from repo %s has no checksum in the metadata: hostctl only installs packages it can verify", pkg.NEVRA(), repo.ID)
	}
	if strings.ContainsAny(pkg.Checksum, "/\x00") {
		return out, fmt.Errorf("package %s: invalid checksum %q in the metadata", pkg.NEVRA(), pkg.Checksum)
	}
	out.Path = filepath.Join(dir, pkg.ChecksumType+"-"+pkg.Checksum+".rpm")
	if _, err := os.Stat(out.Path); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return out, fmt.Errorf("download %s: %w", pkg.NEVRA(), err)
	}
	var errs []string
	for _, base := range repo.BaseURLs {
		url := strings.TrimRight(base, "/") + "/" + strings.TrimLeft(pkg.Location, "/")
		err := downloadVerified(ctx, httpClient(client), url, out.Path, pkg, repo.ID)
		if err == nil {
			out.Downloaded = true
			return out, nil
		}
		if _, ok := err.(*ChecksumError); ok || ctx.Err() != nil {
			return out, err
		}
		errs = append(errs, err.Error())
	}
	return out, fmt.Errorf("download package %s from repo %s: %s (check the repository's baseurl and the network, then retry)", pkg.NEVRA(), repo.ID, strings.Join(errs, "; "))
}

func downloadVerified(ctx context.Context, client *http.Client, url, dest string, pkg solv.Package, repoID string) (err error) {
	h, err := rpmmd.NewHash(pkg.ChecksumType)
	if err != nil {
		return fmt.Errorf("package %s: %w", pkg.NEVRA(), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body := httpx.IdleReader(resp.Body, url, 0)
	defer body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".download-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(body, maxPackageSize+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, httpx.ErrStalled) {
			return err
		}
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if n > maxPackageSize {
		return fmt.Errorf("GET %s: larger than %d bytes", url, int64(maxPackageSize))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(pkg.Checksum) {
		return &ChecksumError{NEVRA: pkg.NEVRA(), Repo: repoID, URL: url,
			Want: pkg.ChecksumType + ":" + pkg.Checksum, Got: pkg.ChecksumType + ":" + got}
	}
	return os.Rename(tmp.Name(), dest)
}
