package rpmmd

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/hostctl/hostctl/internal/httpx"
)

// NeverExpire as Source.MetadataExpire means metadata never goes stale.
const NeverExpire time.Duration = -1

// maxOpenSize bounds a decompressed metadata file whose open-size is not given.
const maxOpenSize = 8 << 30

// Source is a repository whose metadata is cached.
type Source struct {
	// ID names the repository and its cache directory.
	ID string
	// BaseURLs are tried in order until one serves consistent metadata
	// (http, https or file URLs).
	BaseURLs []string
	// MetadataExpire is how long a fetched repomd.xml stays fresh; 0 means
	// always check, NeverExpire never.
	MetadataExpire time.Duration
}

// Cache keeps the verified, decompressed metadata of repositories under
// Dir/REPOID/. Its zero value is not usable: set Dir. Refresh one
// repository from one caller at a time (hostd runs one transaction at a time).
type Cache struct {
	// Dir is the cache root, e.g. /var/cache/hostctl/repos.
	Dir string
	// Client makes the requests; nil means a client that also reads file:// URLs.
	Client *http.Client
	// Types are the repomd data types to fetch; empty means only "primary".
	Types []string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// IdleTimeout fails a download whose body sends nothing for that long;
	// 0 means httpx.BodyIdleTimeout.
	IdleTimeout time.Duration
}

// Metadata is one repository's metadata as it is in the cache.
type Metadata struct {
	// RepoID is the repository id.
	RepoID string
	// RepoMD is the parsed repomd.xml.
	RepoMD *RepoMD
	// Files maps each fetched data type to its decompressed file in the cache.
	Files map[string]string
	// Checked is when the server last confirmed this repomd.xml.
	Checked time.Time
	// Downloaded lists the data types downloaded by the call that returned this
	// (empty when everything came from the cache).
	Downloaded []string
	// Contacted is true when the call asked the server for repomd.xml.
	Contacted bool
}

// Primary returns the path of the decompressed primary.xml.
func (m *Metadata) Primary() string { return m.Files["primary"] }

func (c *Cache) types() []string {
	if len(c.Types) == 0 {
		return []string{"primary"}
	}
	return c.Types
}

func (c *Cache) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c *Cache) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return httpx.NewClient(httpx.Timeouts{})
}

func (c *Cache) repoDir(id string) (string, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return "", fmt.Errorf("invalid repository id %q", id)
	}
	return filepath.Join(c.Dir, id), nil
}

// cachedName is the file name a data entry's decompressed content has in the
// cache: content-addressed, so a new repomd.xml never names a stale file.
func cachedName(d Data) string {
	return d.Type + "-" + d.Checksum.Value + "-" + stripCompression(path.Base(d.Location))
}

// Load returns the cached metadata of repository id without any network
// access. It fails when the cache has no complete metadata for it.
func (c *Cache) Load(id string) (*Metadata, error) {
	dir, err := c.repoDir(id)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "repomd.xml")
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("load cached metadata of repo %q: %w (run refresh-md)", id, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load cached metadata of repo %q: %w", id, err)
	}
	md, err := ParseRepoMD(f)
	if err != nil {
		return nil, fmt.Errorf("load cached metadata of repo %q: %w", id, err)
	}
	m := &Metadata{RepoID: id, RepoMD: md, Files: map[string]string{}, Checked: st.ModTime()}
	for _, typ := range c.types() {
		d, ok := md.Find(typ)
		if !ok {
			return nil, fmt.Errorf("load cached metadata of repo %q: repomd.xml has no %s data", id, typ)
		}
		fp := filepath.Join(dir, cachedName(d))
		if _, err := os.Stat(fp); err != nil {
			return nil, fmt.Errorf("load cached metadata of repo %q: %w (run refresh-md)", id, err)
		}
		m.Files[typ] = fp
	}
	return m, nil
}

// Refresh brings the cached metadata of src up to date and returns it. When
// the cached repomd.xml is younger than src.MetadataExpire (and force is
// false), nothing is fetched. Otherwise repomd.xml is fetched from the first
// base URL that answers, and each data file whose checksum changed is
// downloaded, verified against repomd.xml and decompressed. The new
// repomd.xml is renamed into place last: on any error the previous cache is
// left as it was.
func (c *Cache) Refresh(ctx context.Context, src Source, force bool) (*Metadata, error) {
	dir, err := c.repoDir(src.ID)
	if err != nil {
		return nil, err
	}
	cached, cacheErr := c.Load(src.ID)
	if cacheErr == nil && !force && c.fresh(cached, src.MetadataExpire) {
		return cached, nil
	}
	if len(src.BaseURLs) == 0 {
		return nil, fmt.Errorf("refresh metadata of repo %q: no baseurl", src.ID)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("refresh metadata of repo %q: %w", src.ID, err)
	}
	var errs []string
	for _, base := range src.BaseURLs {
		m, err := c.refreshFrom(ctx, dir, src.ID, base)
		if err == nil {
			return m, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("refresh metadata of repo %q: %w", src.ID, ctx.Err())
		}
		errs = append(errs, err.Error())
	}
	kept := "no metadata was cached before"
	if cacheErr == nil {
		kept = "the cached metadata checked at " + cached.Checked.UTC().Format(time.RFC3339) + " is kept"
	}
	return nil, fmt.Errorf("refresh metadata of repo %q: %s (%s; check the repository's baseurl and network, then run refresh-md)",
		src.ID, strings.Join(errs, "; "), kept)
}

func (c *Cache) fresh(m *Metadata, expire time.Duration) bool {
	switch {
	case expire == NeverExpire:
		return true
	case expire <= 0:
		return false
	}
	age := c.now().Sub(m.Checked)
	return age >= 0 && age < expire
}

func (c *Cache) refreshFrom(ctx context.Context, dir, id, base string) (*Metadata, error) {
	raw, err := c.get(ctx, base, "repodata/repomd.xml", maxRepoMD)
	if err != nil {
		return nil, err
	}
	md, err := ParseRepoMD(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", joinURL(base, "repodata/repomd.xml"), err)
	}
	m := &Metadata{RepoID: id, RepoMD: md, Files: map[string]string{}, Contacted: true}
	for _, typ := range c.types() {
		d, ok := md.Find(typ)
		if !ok {
			return nil, fmt.Errorf("%s: no %s data", joinURL(base, "repodata/repomd.xml"), typ)
		}
		dest := filepath.Join(dir, cachedName(d))
		if _, err := os.Stat(dest); err != nil {
			if err := c.download(ctx, base, d, dest); err != nil {
				return nil, err
			}
			m.Downloaded = append(m.Downloaded, typ)
		}
		m.Files[typ] = dest
	}
	// Commit: repomd.xml last, then its mtime records the check.
	repomdPath := filepath.Join(dir, "repomd.xml")
	if err := writeFileAtomic(repomdPath, raw); err != nil {
		return nil, err
	}
	m.Checked = c.now()
	if err := os.Chtimes(repomdPath, m.Checked, m.Checked); err != nil {
		return nil, fmt.Errorf("record check time: %w", err)
	}
	removeStale(dir, m.Files)
	return m, nil
}

// removeStale deletes the cache files no longer named by the committed
// repomd.xml, and the FILE.solv caches of those files.
func removeStale(dir string, keep map[string]string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	keepNames := map[string]bool{"repomd.xml": true}
	for _, p := range keep {
		keepNames[filepath.Base(p)] = true
	}
	for _, e := range entries {
		// A .solv cache (layering/solv) of a kept file stays with it.
		if !keepNames[e.Name()] && !keepNames[strings.TrimSuffix(e.Name(), ".solv")] {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

func joinURL(base, rel string) string {
	return strings.TrimSuffix(base, "/") + "/" + rel
}

// get fetches base/rel into memory, at most limit bytes.
func (c *Cache) get(ctx context.Context, base, rel string, limit int64) ([]byte, error) {
	body, closeFn, err := c.open(ctx, base, rel)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	raw, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", joinURL(base, rel), err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", joinURL(base, rel), limit)
	}
	return raw, nil
}

func (c *Cache) open(ctx context.Context, base, rel string) (io.Reader, func(), error) {
	u := joinURL(base, rel)
	if _, err := url.Parse(u); err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body := httpx.IdleReader(resp.Body, u, c.IdleTimeout)
	return body, func() { body.Close() }, nil
}

// NewHash returns the hash rpm-md names typ (sha1 or its old name sha,
// sha224, sha256, sha384, sha512).
func NewHash(typ string) (hash.Hash, error) {
	switch typ {
	case "sha1", "sha":
		return sha1.New(), nil
	case "sha224":
		return sha256.New224(), nil
	case "sha256":
		return sha256.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unsupported checksum type %q", typ)
}

// download fetches d from base, verifies its checksum and size, and writes
// its decompressed content to dest through a temporary file beside it.
func (c *Cache) download(ctx context.Context, base string, d Data, dest string) (err error) {
	u := joinURL(base, d.Location)
	body, closeFn, err := c.open(ctx, base, d.Location)
	if err != nil {
		return err
	}
	defer closeFn()
	sum, err := NewHash(d.Checksum.Type)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	var in io.Reader = io.TeeReader(body, sum)
	counted := &countingReader{r: in}
	plain, closeDec, err := decompressor(d.Location, counted)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	defer closeDec()
	var openSum hash.Hash
	if !d.OpenChecksum.IsZero() {
		if openSum, err = NewHash(d.OpenChecksum.Type); err != nil {
			return fmt.Errorf("%s: %w", u, err)
		}
		plain = io.TeeReader(plain, openSum)
	}
	limit := int64(maxOpenSize)
	if d.OpenSize > 0 {
		limit = d.OpenSize
	}

	tmp, err := os.CreateTemp(filepath.Dir(dest), ".tmp-"+d.Type+"-*")
	if err != nil {
		return fmt.Errorf("create cache file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, io.LimitReader(plain, limit+1))
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if n > limit {
		return fmt.Errorf("%s: decompressed content is larger than %d bytes", u, limit)
	}
	// Drain what the decompressor left, so the checksum covers the whole file.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != d.Checksum.Value {
		return fmt.Errorf("%s: %s checksum mismatch: got %s, repomd.xml says %s (the mirror may be out of sync; try again later)",
			u, d.Checksum.Type, got, d.Checksum.Value)
	}
	if d.Size > 0 && counted.n != d.Size {
		return fmt.Errorf("%s: size %d, repomd.xml says %d", u, counted.n, d.Size)
	}
	if openSum != nil {
		if got := hex.EncodeToString(openSum.Sum(nil)); got != d.OpenChecksum.Value {
			return fmt.Errorf("%s: decompressed %s checksum mismatch: got %s, repomd.xml says %s", u, d.OpenChecksum.Type, got, d.OpenChecksum.Value)
		}
	}
	if d.OpenSize > 0 && n != d.OpenSize {
		return fmt.Errorf("%s: decompressed size %d, repomd.xml says %d", u, n, d.OpenSize)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write cache file: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write cache file: %w", err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write cache file: %w", err)
	}
	if err = os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("commit cache file: %w", err)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// writeFileAtomic writes data to a temporary file beside name, syncs it and
// renames it over name, then syncs the directory.
func writeFileAtomic(name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if d, derr := os.Open(filepath.Dir(name)); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
