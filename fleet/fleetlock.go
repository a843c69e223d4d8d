package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/internal/httpx"
)

// FleetLockConfig configures a FleetLockClient.
type FleetLockConfig struct {
	// URL is the server's base URL (the paths /v1/pre-reboot and
	// /v1/steady-state are appended), as Zincati's fleet_lock.base_url.
	URL string
	// CAFile, CertFile, KeyFile: TLS, as in EtcdConfig.
	CAFile, CertFile, KeyFile string
	// Timeout bounds one request (30 s when zero).
	Timeout time.Duration
}

// FleetLockClient is the client side of Zincati's FleetLock protocol.
type FleetLockClient struct {
	base    string
	client  *http.Client
	timeout time.Duration
	files   TLSFiles
}

// RefusedError is a FleetLock server's refusal (a status other than 200),
// with the kind and value of its error body. Its kind is errdefs.ErrBusy.
type RefusedError struct {
	// Op is "pre-reboot" or "steady-state".
	Op string
	// Status is the HTTP status code.
	Status int
	// Kind and Value are the server's error body.
	Kind, Value string
}

// Error implements error.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("fleet lock server refused %s (HTTP %d): %s: %s", e.Op, e.Status, e.Kind, e.Value)
}

// Unwrap gives the kind.
func (e *RefusedError) Unwrap() error { return errdefs.ErrBusy }

// NewFleetLockClient makes a client of the FleetLock server of cfg. TLS
// files that cannot be used (TLSConfig) are an error here, before any
// connection.
func NewFleetLockClient(cfg FleetLockConfig) (*FleetLockClient, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "FleetLock URL %q: want http://HOST[:PORT][/PATH] or https://...", cfg.URL)
	}
	tlsc, err := TLSConfig(cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	c := httpx.NewClient(httpx.Timeouts{})
	if tlsc != nil {
		c.Transport.(*http.Transport).TLSClientConfig = tlsc
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &FleetLockClient{base: strings.TrimSuffix(cfg.URL, "/"), client: c, timeout: cfg.Timeout,
		files: TLSFiles{CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}}, nil
}

// Acquire asks the server for a slot (POST /v1/pre-reboot). The returned
// Status names the group and has Held set; the server tells no holders.
func (c *FleetLockClient) Acquire(ctx context.Context, group, id string) (Status, error) {
	st := Status{Group: group}
	if err := c.post(ctx, "pre-reboot", group, id); err != nil {
		return st, err
	}
	st.Held = true
	return st, nil
}

// Release gives the slot back (POST /v1/steady-state). The protocol does not
// tell whether id held one: the bool is always true on success.
func (c *FleetLockClient) Release(ctx context.Context, group, id string) (bool, error) {
	if err := c.post(ctx, "steady-state", group, id); err != nil {
		return false, err
	}
	return true, nil
}

func (c *FleetLockClient) post(ctx context.Context, op, group, id string) error {
	if err := CheckName("group", group); err != nil {
		return err
	}
	if err := CheckName("host id", id); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"client_params": map[string]string{"id": id, "group": group}})
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + "/v1/" + op
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "FleetLock %s: %w", op, err)
	}
	req.Header.Set("fleet-lock-protocol", "true")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		if te := ExplainTLS(u, err, c.files); te != nil {
			return fmt.Errorf("FleetLock %s: %w (hostd retries)", op, te)
		}
		return fmt.Errorf("FleetLock %s at %s: %w; check that the server runs and is reachable (hostd retries)", op, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	e := &RefusedError{Op: op, Status: resp.StatusCode}
	var eb struct{ Kind, Value string }
	if json.Unmarshal(b, &eb) == nil && eb.Kind != "" {
		e.Kind, e.Value = eb.Kind, eb.Value
	} else {
		e.Kind, e.Value = "unknown", strings.TrimSpace(string(b))
	}
	return e
}

// Locker is a fleet lock: EtcdHelper (etcd.Semaphore in its helper) or
// FleetLockClient.
type Locker interface {
	// Acquire takes (or confirms) id's slot in group before a reboot.
	Acquire(ctx context.Context, group, id string) (Status, error)
	// Release gives id's slot back once the host is healthy again.
	Release(ctx context.Context, group, id string) (bool, error)
}

var (
	_ Locker = (*EtcdHelper)(nil)
	_ Locker = (*FleetLockClient)(nil)
)
