package etcd_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/fleet"
	"github.com/hostctl/hostctl/fleet/etcd"
	"github.com/hostctl/hostctl/tests/fixture"
)

// lock is what the TLS tests drive: an etcd.Semaphore, or the helper
// executable through fleet.EtcdHelper as hostd does.
type lock interface {
	Acquire(ctx context.Context, group, id string) (fleet.Status, error)
	Release(ctx context.Context, group, id string) (bool, error)
	Holders(ctx context.Context, group, id string) (fleet.Status, error)
}

// opener makes a lock of cfg; the Semaphore checks its TLS files here, the
// helper in each operation.
type opener struct {
	name string
	open func(t *testing.T, cfg fleet.EtcdConfig) (lock, error)
}

func openers(bin string) []opener {
	return []opener{
		{"semaphore", func(t *testing.T, cfg fleet.EtcdConfig) (lock, error) {
			s, err := etcd.New(cfg)
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { s.Close() })
			return s, nil
		}},
		{"helper", func(t *testing.T, cfg fleet.EtcdConfig) (lock, error) {
			return &fleet.EtcdHelper{Path: bin, Config: cfg}, nil
		}},
	}
}

// acquire opens a lock of cfg and asks for a slot: the error of either.
func acquire(t *testing.T, o opener, cfg fleet.EtcdConfig, group, id string) error {
	t.Helper()
	l, err := o.open(t, cfg)
	if err != nil {
		return err
	}
	st, err := l.Acquire(context.Background(), group, id)
	if err == nil || st.Held {
		return errors.Join(err, errors.New("got a slot"))
	}
	return err
}

// startTLSEtcd starts etcd with client certificate authentication, or
// skips when etcd is not installed.
func startTLSEtcd(t *testing.T) *fixture.EtcdServer {
	t.Helper()
	pki, err := fixture.NewTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := fixture.StartEtcdTLS(context.Background(), t.TempDir(), pki)
	if errors.Is(err, exec.ErrNotFound) {
		t.Skipf("skipping the TLS tests with a real etcd: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// TestEtcdTLS runs the etcd fleet lock against an etcd that requires
// client certificates (--client-cert-auth), through the Semaphore and
// through the helper executable: the right CA and client certificate
// work; no client certificate, one of a CA etcd does not trust, or a
// server certificate the client does not trust are refused with an error
// naming the endpoint and saying what to do, and never give a slot.
func TestEtcdTLS(t *testing.T) {
	s := startTLSEtcd(t)
	pki := s.PKI
	bin := etcd.BuildHelper(t)
	ctx := context.Background()
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("the TLS etcd's URL is %s", s.URL)
	}
	for _, o := range openers(bin) {
		t.Run(o.name, func(t *testing.T) {
			group := "tls-" + o.name
			good := s.Config(1)
			// The dial timeout also bounds the probe that explains a refusal.
			good.OpTimeout, good.DialTimeout = 2*time.Second, 3*time.Second
			a, err := o.open(t, good)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := a.Acquire(ctx, group, "host-a"); err != nil || !st.Held || strings.Join(st.Holders, ",") != "host-a" {
				t.Fatalf("acquire with the CA and a client certificate: %+v, %v", st, err)
			}
			_, err = a.Acquire(ctx, group, "host-b")
			if !errors.As(err, new(*fleet.SlotsTakenError)) {
				t.Fatalf("host-b while host-a holds the only slot: %v, want the slots taken", err)
			}
			if st, err := a.Holders(ctx, group, "host-a"); err != nil || !st.Held || strings.Join(st.Holders, ",") != "host-a" {
				t.Fatalf("holders: %+v, %v", st, err)
			}

			for _, tc := range []struct {
				name string
				mod  func(*fleet.EtcdConfig)
				want []string
			}{
				{"no client certificate", func(c *fleet.EtcdConfig) { c.CertFile, c.KeyFile = "", "" },
					[]string{"requires a client certificate", "set CertFile= and KeyFile="}},
				{"client certificate of another CA", func(c *fleet.EtcdConfig) { c.CertFile, c.KeyFile = pki.OtherClientCertFile, pki.OtherClientKeyFile },
					[]string{"refused the client certificate", pki.OtherClientCertFile, "--trusted-ca-file"}},
				{"server CA not trusted", func(c *fleet.EtcdConfig) { c.CAFile = pki.OtherCAFile },
					[]string{"certificate is not trusted", pki.OtherCAFile, "set CAFile="}},
				{"no CAFile, server CA not in the system pool", func(c *fleet.EtcdConfig) { c.CAFile = "" },
					[]string{"certificate is not trusted", "CAFile= is not set", "set CAFile="}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cfg := good
					cfg.OpTimeout = time.Second
					tc.mod(&cfg)
					start := time.Now()
					err := acquire(t, o, cfg, group, "intruder")
					t.Logf("%v (after %v)", err, time.Since(start).Round(time.Millisecond))
					if !errdefs.IsFailed(err) || errors.As(err, new(*fleet.SlotsTakenError)) {
						t.Errorf("want a failure to reach etcd, got %v (kind %v)", err, errdefs.Kind(err))
					}
					for _, w := range append([]string{s.URL, "TLS"}, tc.want...) {
						if err == nil || !strings.Contains(err.Error(), w) {
							t.Errorf("the error does not say %q", w)
						}
					}
				})
			}
			if st, err := a.Holders(ctx, group, ""); err != nil || strings.Join(st.Holders, ",") != "host-a" {
				t.Fatalf("holders after the refused clients: %+v, %v; want host-a alone", st, err)
			}
			if ok, err := a.Release(ctx, group, "host-a"); err != nil || !ok {
				t.Fatalf("release: %v, %v", ok, err)
			}
			if st, err := a.Holders(ctx, group, ""); err != nil || len(st.Holders) != 0 {
				t.Fatalf("holders after the release: %+v, %v", st, err)
			}
		})
	}
}

// countingListener accepts connections on 127.0.0.1 and counts them, never
// answering: an endpoint that tells whether a client connected at all.
func countingListener(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "https://" + ln.Addr().String(), &n
}

// TestEtcdTLSFiles: TLS files that cannot be used (missing, unreadable,
// not PEM, a key that is not the certificate's, a certificate without its
// key) are an invalid-argument error naming the file and its hostd.conf
// key, given before any connection to etcd.
func TestEtcdTLSFiles(t *testing.T) {
	pki, err := fixture.NewTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not-pem.pem")
	if err := os.WriteFile(notPEM, []byte("this is no certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	bin := etcd.BuildHelper(t)
	for _, o := range openers(bin) {
		t.Run(o.name, func(t *testing.T) {
			endpoint, conns := countingListener(t)
			base := fleet.EtcdConfig{Endpoints: []string{endpoint}, Slots: 1, OpTimeout: time.Second, DialTimeout: time.Second,
				CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile}
			for _, tc := range []struct {
				name string
				mod  func(*fleet.EtcdConfig)
				want []string
			}{
				{"missing CAFile", func(c *fleet.EtcdConfig) { c.CAFile = missing },
					[]string{"CAFile " + missing + " cannot be read", "no such file", "point CAFile= at"}},
				{"CAFile a directory", func(c *fleet.EtcdConfig) { c.CAFile = dir },
					[]string{"CAFile " + dir + " cannot be read", "is a directory"}},
				{"CAFile not PEM", func(c *fleet.EtcdConfig) { c.CAFile = notPEM },
					[]string{"CAFile " + notPEM + " holds no PEM certificate"}},
				{"missing CertFile", func(c *fleet.EtcdConfig) { c.CertFile = missing },
					[]string{"CertFile " + missing + " cannot be read"}},
				{"missing KeyFile", func(c *fleet.EtcdConfig) { c.KeyFile = missing },
					[]string{"KeyFile " + missing + " cannot be read"}},
				{"key of another certificate", func(c *fleet.EtcdConfig) { c.KeyFile = pki.OtherClientKeyFile },
					[]string{"KeyFile " + pki.OtherClientKeyFile + " is not the key of CertFile " + pki.ClientCertFile, "set KeyFile="}},
				{"certificate without key", func(c *fleet.EtcdConfig) { c.KeyFile = "" },
					[]string{"CertFile " + pki.ClientCertFile + " without KeyFile"}},
				{"key without certificate", func(c *fleet.EtcdConfig) { c.CertFile = "" },
					[]string{"KeyFile " + pki.ClientKeyFile + " without CertFile"}},
				{"CertFile not PEM", func(c *fleet.EtcdConfig) { c.CertFile = notPEM },
					[]string{"CertFile " + notPEM + ", KeyFile " + pki.ClientKeyFile}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cfg := base
					tc.mod(&cfg)
					err := acquire(t, o, cfg, "g", "host-a")
					t.Log(err)
					if !errdefs.IsInvalidArgument(err) {
						t.Errorf("want invalid argument, got %v (kind %v)", err, errdefs.Kind(err))
					}
					for _, w := range tc.want {
						if err == nil || !strings.Contains(err.Error(), w) {
							t.Errorf("the error does not say %q", w)
						}
					}
				})
			}
			if n := conns.Load(); n != 0 {
				t.Errorf("%d connections to etcd with unusable TLS files, want none", n)
			}
			// The same endpoint with usable files is connected to (and
			// does not answer): the count above can see a connection.
			err := acquire(t, o, base, "g", "host-a")
			if errdefs.IsInvalidArgument(err) || conns.Load() == 0 {
				t.Errorf("usable files: %v, %d connections; want a connection and a failure to reach etcd", err, conns.Load())
			}
		})
	}
}

// TestEtcdTLSToPlainEtcd: an https:// endpoint of an etcd without TLS is
// an error saying it may not speak TLS and to use http://.
func TestEtcdTLSToPlainEtcd(t *testing.T) {
	s, err := fixture.StartEtcd(context.Background(), t.TempDir())
	if errors.Is(err, exec.ErrNotFound) {
		t.Skipf("skipping the test with a real etcd: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	pki, err := fixture.NewTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	endpoint := strings.Replace(s.URL, "http://", "https://", 1)
	cfg := fleet.EtcdConfig{Endpoints: []string{endpoint}, Slots: 1, OpTimeout: time.Second, DialTimeout: 3 * time.Second, CAFile: pki.CAFile}
	for _, o := range openers(etcd.BuildHelper(t)) {
		t.Run(o.name, func(t *testing.T) {
			err := acquire(t, o, cfg, "g", "host-a")
			t.Log(err)
			for _, w := range []string{endpoint, "may not speak TLS", "use http://"} {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q", w)
				}
			}
		})
	}
}
