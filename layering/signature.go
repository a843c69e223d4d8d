package layering

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hostctl/hostctl/internal/httpx"
	"github.com/hostctl/hostctl/internal/proc"
)

// SignatureError is a package whose signature is missing or does not verify
// against the keys of its repository (gpgcheck=1).
type SignatureError struct {
	NEVRA, Repo string
	// Detail is rpmkeys' verdict.
	Detail string
}

// Error names the package, the repository and what to do.
func (e *SignatureError) Error() string {
	return fmt.Sprintf("package %s from repo %s: bad or missing signature (%s): it is not signed by a key in the repository's gpgkey; refusing it (fix the repository or its gpgkey)",
		e.NEVRA, e.Repo, e.Detail)
}

// keyring is a throwaway rpmdb holding the keys of one repository.
type keyring struct {
	dbpath string
}

// newKeyring imports the repository's gpgkey URLs into a fresh rpmdb under
// tmp. file:// keys are read under root (the merge deployment), since they
// name the host's /etc/pki/rpm-gpg.
func newKeyring(ctx context.Context, client *http.Client, tmp, root string, repo Repo) (*keyring, error) {
	if len(repo.GPGKeys) == 0 {
		return nil, fmt.Errorf("repo %s has gpgcheck=1 but no gpgkey: add gpgkey= to its .repo file", repo.ID)
	}
	dir, err := os.MkdirTemp(tmp, "keyring-")
	if err != nil {
		return nil, err
	}
	k := &keyring{dbpath: dir}
	for i, url := range repo.GPGKeys {
		data, err := readKey(ctx, client, root, url)
		if err != nil {
			return nil, fmt.Errorf("repo %s: read gpgkey %s: %w", repo.ID, url, err)
		}
		kf := filepath.Join(dir, fmt.Sprintf("key-%d.asc", i))
		if err := os.WriteFile(kf, data, 0o600); err != nil {
			return nil, err
		}
		if out, err := proc.Command(ctx, "rpmkeys", "--dbpath", dir, "--import", kf).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("repo %s: import gpgkey %s: %v: %s", repo.ID, url, err, bytes.TrimSpace(out))
		}
	}
	return k, nil
}

func readKey(ctx context.Context, client *http.Client, root, url string) ([]byte, error) {
	if p, ok := strings.CutPrefix(url, "file://"); ok {
		return os.ReadFile(filepath.Join(root, filepath.Clean("/"+p)))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient(client).Do(req)
	if err != nil {
		return nil, err
	}
	body := httpx.IdleReader(resp.Body, url, 0)
	defer body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(body, 1<<20))
}

// verify checks the header and payload signatures of the RPM at path with
// `rpmkeys --checksig`: a valid signature by an imported key is required,
// digests alone are not enough.
func (k *keyring) verify(ctx context.Context, path string, pkg PackageFile, repoID string) error {
	out, err := proc.Command(ctx, "rpmkeys", "--dbpath", k.dbpath, "--checksig", path).CombinedOutput()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("check the signature of %s: %w", pkg.NEVRA(), err)
	}
	verdict := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), path+":"))
	if err != nil || !strings.Contains(verdict, "signatures OK") {
		if verdict == "" && err != nil {
			verdict = err.Error()
		}
		if !strings.Contains(verdict, "signature") && !strings.Contains(verdict, "SIGNATURE") {
			verdict += ": no signature"
		}
		return &SignatureError{NEVRA: pkg.NEVRA(), Repo: repoID, Detail: verdict}
	}
	return nil
}
