// Package httpx is the HTTP client of hostd's downloads (rpm-md metadata,
// RPMs, keys): every stage of a request has a deadline (connect, TLS
// handshake, response headers) and a body that stops flowing fails after an
// idle timeout with an error naming the URL, so a server that accepts the
// connection and then says nothing cannot hold a transaction.
package httpx

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Timeouts of the default client.
const (
	ConnectTimeout        = 30 * time.Second
	TLSHandshakeTimeout   = 30 * time.Second
	ResponseHeaderTimeout = 60 * time.Second
	IdleConnTimeout       = 90 * time.Second
	// BodyIdleTimeout is how long a response body may send nothing.
	BodyIdleTimeout = 60 * time.Second
)

// ErrStalled is a response whose body stopped coming for longer than its idle timeout.
var ErrStalled = errors.New("the server stopped sending")

// Timeouts configure NewClient; a zero field takes the default above.
type Timeouts struct {
	Connect, TLSHandshake, ResponseHeader, IdleConn time.Duration
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// NewClient returns a client with t's timeouts (zero fields: the defaults)
// that also reads file:// URLs. It sets no overall deadline: a large
// download takes as long as it needs while data flows; wrap bodies with
// IdleReader to catch one that stops.
func NewClient(t Timeouts) *http.Client {
	dialer := &net.Dialer{Timeout: or(t.Connect, ConnectTimeout), KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		TLSHandshakeTimeout:   or(t.TLSHandshake, TLSHandshakeTimeout),
		ResponseHeaderTimeout: or(t.ResponseHeader, ResponseHeaderTimeout),
		IdleConnTimeout:       or(t.IdleConn, IdleConnTimeout),
		ExpectContinueTimeout: time.Second,
	}
	tr.RegisterProtocol("file", http.NewFileTransport(http.Dir("/")))
	return &http.Client{Transport: tr}
}

// idleReader fails a body that sends nothing for idle.
type idleReader struct {
	body  io.ReadCloser
	url   string
	idle  time.Duration
	timer *time.Timer

	mu      sync.Mutex
	stalled bool
}

// IdleReader wraps body (of a GET of url) so that a Read that waits more
// than idle for data closes the body and fails with an error that wraps
// ErrStalled and names url. Only the time spent waiting inside Read counts,
// not the time the caller takes between reads. idle <= 0 means
// BodyIdleTimeout.
func IdleReader(body io.ReadCloser, url string, idle time.Duration) io.ReadCloser {
	r := &idleReader{body: body, url: url, idle: or(idle, BodyIdleTimeout)}
	r.timer = time.AfterFunc(time.Hour, r.fire)
	r.timer.Stop()
	return r
}

func (r *idleReader) fire() {
	r.mu.Lock()
	r.stalled = true
	r.mu.Unlock()
	r.body.Close()
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.timer.Reset(r.idle)
	n, err := r.body.Read(p)
	r.timer.Stop()
	r.mu.Lock()
	stalled := r.stalled
	r.mu.Unlock()
	if stalled {
		return n, fmt.Errorf("GET %s: %w: nothing received for %v; check the network or the server, then retry", r.url, ErrStalled, r.idle)
	}
	return n, err
}

// Close stops the idle timer and closes the body.
func (r *idleReader) Close() error {
	r.timer.Stop()
	return r.body.Close()
}
