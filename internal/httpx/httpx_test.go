package httpx

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestStalls(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "hello")
		case "/no-headers":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/stalled-body":
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, "half")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	client := NewClient(Timeouts{ResponseHeader: 300 * time.Millisecond})
	cases := []struct {
		path    string
		want    string // substring of the error, "" for success
		stalled bool
	}{
		{path: "/ok"},
		{path: "/no-headers", want: "timeout awaiting response headers"},
		{path: "/stalled-body", want: "/stalled-body", stalled: true},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			start := time.Now()
			err := get(context.Background(), client, srv.URL+tc.path)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if errors.Is(err, ErrStalled) != tc.stalled {
				t.Fatalf("error %v: ErrStalled %v, want %v", err, errors.Is(err, ErrStalled), tc.stalled)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		err := get(ctx, NewClient(Timeouts{}), srv.URL+"/stalled-body")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled GET: %v", err)
		}
	})
}

func get(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body := IdleReader(resp.Body, url, 300*time.Millisecond)
	defer body.Close()
	_, err = io.ReadAll(body)
	return err
}

// TestClientTimeouts checks the transport carries the deadlines and that its
// dialer reports a refused connection.
func TestClientTimeouts(t *testing.T) {
	c := NewClient(Timeouts{Connect: time.Second})
	tr := c.Transport.(*http.Transport)
	if tr.TLSHandshakeTimeout != TLSHandshakeTimeout || tr.ResponseHeaderTimeout != ResponseHeaderTimeout || tr.DialContext == nil {
		t.Fatalf("transport timeouts not set: %+v", tr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := get(context.Background(), c, "http://"+addr+"/"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("GET of a closed port: %v", err)
	}
}
