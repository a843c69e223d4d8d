package fleet_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/fleet"
	"github.com/hostctl/hostctl/tests/fixture"
)

// tlsFleetLockServer is a FleetLock server over https that requires a
// client certificate of pki's CA and records the client certificate's
// name and the request of each call it answers.
type tlsFleetLockServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls []string
}

// newTLSFleetLockServer starts it on addr (127.0.0.1:0 when empty).
func newTLSFleetLockServer(t *testing.T, pki *fixture.TestPKI, addr string) *tlsFleetLockServer {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(pki.ServerCertFile, pki.ServerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	s := &tlsFleetLockServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			w.WriteHeader(http.StatusForbidden) // the TLS config makes this unreachable
			return
		}
		var body struct {
			ClientParams struct{ ID, Group string } `json:"client_params"`
		}
		if r.Method != http.MethodPost || r.Header.Get("fleet-lock-protocol") != "true" || json.NewDecoder(r.Body).Decode(&body) != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"kind": "bad_request", "value": "want a FleetLock request"})
			return
		}
		s.mu.Lock()
		s.calls = append(s.calls, r.TLS.PeerCertificates[0].Subject.CommonName+" "+r.URL.Path+" "+body.ClientParams.Group+"/"+body.ClientParams.ID)
		s.mu.Unlock()
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	if addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s.Listener.Close()
		s.Listener = l
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *tlsFleetLockServer) Calls() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.calls, "; ")
}

// TestFleetLockTLS: the FleetLock client over https with the CA and a
// client certificate works; a CA that did not issue the server's
// certificate, no client certificate, or one the server does not trust
// are refused with an error naming the URL and saying what to do; TLS
// files that cannot be used are refused before any request.
func TestFleetLockTLS(t *testing.T) {
	pki, err := fixture.NewTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := newTLSFleetLockServer(t, pki, "")
	ctx := context.Background()
	good := fleet.FleetLockConfig{URL: srv.URL, CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}
	c, err := fleet.NewFleetLockClient(good)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Acquire(ctx, "web", "host-a"); err != nil || !st.Held {
		t.Fatalf("pre-reboot over https with a client certificate: %+v, %v", st, err)
	}
	if _, err := c.Release(ctx, "web", "host-a"); err != nil {
		t.Fatalf("steady-state over https: %v", err)
	}
	want := "hostctl-test-client /v1/pre-reboot web/host-a; hostctl-test-client /v1/steady-state web/host-a"
	if got := srv.Calls(); got != want {
		t.Fatalf("the server saw %q, want %q", got, want)
	}

	for _, tc := range []struct {
		name string
		mod  func(*fleet.FleetLockConfig)
		want []string
	}{
		{"server CA not trusted", func(c *fleet.FleetLockConfig) { c.CAFile = pki.OtherCAFile },
			[]string{"certificate is not trusted", pki.OtherCAFile, "set CAFile="}},
		{"no CAFile", func(c *fleet.FleetLockConfig) { c.CAFile = "" },
			[]string{"certificate is not trusted", "CAFile= is not set"}},
		{"no client certificate", func(c *fleet.FleetLockConfig) { c.CertFile, c.KeyFile = "", "" },
			[]string{"requires a client certificate", "set CertFile= and KeyFile="}},
		{"client certificate of another CA", func(c *fleet.FleetLockConfig) {
			c.CertFile, c.KeyFile = pki.OtherClientCertFile, pki.OtherClientKeyFile
		}, []string{"refused the client certificate", pki.OtherClientCertFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.mod(&cfg)
			c, err := fleet.NewFleetLockClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			st, err := c.Acquire(ctx, "web", "intruder")
			t.Log(err)
			var refused *fleet.RefusedError
			if err == nil || st.Held || errors.As(err, &refused) || errdefs.IsBusy(err) {
				t.Fatalf("want a TLS failure, got %+v, %v", st, err)
			}
			if !errors.As(err, new(*fleet.TLSError)) {
				t.Errorf("not a *fleet.TLSError: %v", err)
			}
			for _, w := range append([]string{srv.URL + "/v1/pre-reboot", "TLS"}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q", w)
				}
			}
		})
	}
	if got := srv.Calls(); got != want {
		t.Errorf("after the refused clients the server saw %q, want only %q", got, want)
	}

	// A plain http server behind an https URL is no TLS server.
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	pc, err := fleet.NewFleetLockClient(fleet.FleetLockConfig{URL: strings.Replace(plain.URL, "http://", "https://", 1), CAFile: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Acquire(ctx, "web", "host-a"); err == nil || !strings.Contains(err.Error(), "does not speak TLS") {
		t.Errorf("https to a plain http server: %v, want it said that it does not speak TLS", err)
	}

	// An address the server's certificate does not name (it names
	// 127.0.0.1, ::1 and localhost).
	other := newTLSFleetLockServer(t, pki, "127.0.0.2:0")
	good.URL = other.URL
	oc, err := fleet.NewFleetLockClient(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Acquire(ctx, "web", "host-a"); err == nil || !strings.Contains(err.Error(), "not valid for this address") || !strings.Contains(err.Error(), other.URL) {
		t.Errorf("a certificate for another address: %v, want it said that it is not valid for this address", err)
	} else {
		t.Log(err)
	}

	missing := filepath.Join(t.TempDir(), "ca.pem")
	if _, err := fleet.NewFleetLockClient(fleet.FleetLockConfig{URL: srv.URL, CAFile: missing}); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "CAFile "+missing) {
		t.Errorf("a missing CAFile: %v, want invalid argument naming it", err)
	}
	if _, err := fleet.NewFleetLockClient(fleet.FleetLockConfig{URL: srv.URL, CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.OtherClientKeyFile}); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "is not the key of CertFile") {
		t.Errorf("a key of another certificate: %v, want invalid argument naming the files", err)
	}
}
