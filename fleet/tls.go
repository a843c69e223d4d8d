package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hostctl/hostctl/errdefs"
)

// TLSFiles are the TLS files of a fleet lock configuration ([Fleet]
// CAFile=, CertFile=, KeyFile=), named in errors.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// TLSConfig builds a TLS configuration from PEM files: caFile verifies the
// server (system pool when empty), certFile and keyFile are a client
// certificate (none when both are empty). It returns nil when all three are
// empty. A file that cannot be read, holds no PEM, or a key that is not the
// certificate's is an errdefs.ErrInvalidArgument naming the file and its
// hostd.conf key; it reads the files only, it connects nowhere.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := readTLSFile("CAFile", caFile, "the PEM file of the CA that issued the server's certificate")
		if err != nil {
			return nil, err
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument,
				"fleet lock TLS: CAFile %s holds no PEM certificate (-----BEGIN CERTIFICATE-----): point CAFile= at the CA certificate that issued the server's certificate", caFile)
		}
	}
	switch {
	case certFile != "" && keyFile == "":
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument,
			"fleet lock TLS: CertFile %s without KeyFile: set KeyFile= to the client certificate's private key (or drop CertFile=)", certFile)
	case certFile == "" && keyFile != "":
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument,
			"fleet lock TLS: KeyFile %s without CertFile: set CertFile= to the client certificate of that key (or drop KeyFile=)", keyFile)
	case certFile != "":
		certPEM, err := readTLSFile("CertFile", certFile, "the PEM client certificate")
		if err != nil {
			return nil, err
		}
		keyPEM, err := readTLSFile("KeyFile", keyFile, "the PEM private key of CertFile")
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			if strings.Contains(err.Error(), "does not match") {
				return nil, errdefs.Errorf(errdefs.ErrInvalidArgument,
					"fleet lock TLS: KeyFile %s is not the key of CertFile %s (%w): set KeyFile= to the private key the certificate was issued for", keyFile, certFile, err)
			}
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument,
				"fleet lock TLS: CertFile %s, KeyFile %s: %w: CertFile= must be a PEM certificate and KeyFile= its PEM private key", certFile, keyFile, err)
		}
		if leaf := cert.Leaf; leaf != nil && time.Now().After(leaf.NotAfter) {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument,
				"fleet lock TLS: CertFile %s expired on %s: renew the client certificate (or check this host's clock)", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// readTLSFile reads the file of hostd.conf key key, whose content should
// be want.
func readTLSFile(key, path, want string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "fleet lock TLS: %s %s cannot be read: %w: point %s= at %s", key, path, err, key, want)
	}
	return b, nil
}

// TLSError is a TLS connection to a fleet lock server (etcd, FleetLock)
// that failed: what is wrong, and what to do about it.
type TLSError struct {
	// Endpoint is the server's URL.
	Endpoint string
	// Problem says what is wrong; Fix what the user can do.
	Problem, Fix string
	// Err is the cause (an x509 error, the server's TLS alert...).
	Err error
}

// Error implements error.
func (e *TLSError) Error() string {
	return fmt.Sprintf("TLS to %s: %s (%v); %s", e.Endpoint, e.Problem, e.Err, e.Fix)
}

// Unwrap gives the cause.
func (e *TLSError) Unwrap() error { return e.Err }

// httpToHTTPS is net/http's error for a plain HTTP server behind an
// https:// URL (it replaces the tls.RecordHeaderError).
const httpToHTTPS = "server gave HTTP response to HTTPS client"

// ExplainTLS returns a *TLSError when err is a failure of the TLS
// connection to endpoint made with files: a server certificate that does
// not verify, a client certificate the server refused or did not get, a
// server that does not speak TLS. It returns nil for any other error.
func ExplainTLS(endpoint string, err error, files TLSFiles) *TLSError {
	if err == nil {
		return nil
	}
	e := &TLSError{Endpoint: endpoint}
	var (
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		record  tls.RecordHeaderError
		op      *net.OpError
	)
	switch {
	case errors.As(err, &unknown):
		e.Err = unknown
		e.Problem = "the server's certificate is not trusted: no CA in CAFile " + files.CAFile + " issued it"
		if files.CAFile == "" {
			e.Problem = "the server's certificate is not trusted: CAFile= is not set and no CA of the system's pool issued it"
		}
		e.Fix = "set CAFile= to the PEM file of the CA that issued the server's certificate (for etcd, the issuer of its --cert-file)"
	case errors.As(err, &host):
		e.Err = host
		e.Problem = "the server's certificate is not valid for this address"
		e.Fix = "write the server's address in the URL as its certificate names it (DNS names, IP addresses), or reissue the certificate for this address"
	case errors.As(err, &invalid):
		e.Err = invalid
		e.Problem = "the server's certificate is not valid"
		e.Fix = "renew the server's certificate (expired?) or check this host's clock"
	case errors.As(err, &record), strings.Contains(err.Error(), httpToHTTPS):
		e.Err = errors.New(httpToHTTPS)
		if record.Msg != "" {
			e.Err = errors.New("tls: " + record.Error())
		}
		e.Problem = "the server does not speak TLS"
		e.Fix = "use http:// for this endpoint, or enable TLS on the server (for etcd, --cert-file and --key-file)"
	case errors.As(err, &op) && op.Op == "remote error":
		e.Err = op.Err
		switch {
		case !strings.Contains(op.Err.Error(), "certificate"):
			e.Problem = "the server ended the TLS handshake"
			e.Fix = "check that the server accepts TLS 1.2 or later and a cipher Go offers"
		case files.CertFile == "":
			e.Problem = "the server requires a client certificate and this host sent none"
			e.Fix = "set CertFile= and KeyFile= to a client certificate issued by a CA the server trusts (for etcd, its --trusted-ca-file)"
		default:
			e.Problem = "the server refused the client certificate CertFile " + files.CertFile
			e.Fix = "use a client certificate issued by a CA the server trusts (for etcd, its --trusted-ca-file), and not expired"
		}
	default:
		return nil
	}
	return e
}

// probeReadWait is how long ProbeEndpoint waits after a TLS handshake for
// the server to refuse the client certificate (in TLS 1.3 that comes
// after the client's side of the handshake is done; a loaded machine may
// take a while to send it).
const probeReadWait = time.Second

// ProbeEndpoint connects to endpoint (an http:// or https:// URL; a port
// missing is defaultPort) as a client of cfg does and tells why that fails:
// the connection's error, a *TLSError when the TLS handshake fails or the
// server refuses this host's certificate, or nil when the server took the
// connection. For https, a nil cfg is the system's CAs and no client
// certificate. It sends nothing but the handshake.
func ProbeEndpoint(ctx context.Context, endpoint, defaultPort string, cfg *tls.Config, files TLSFiles) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return err
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if u.Scheme != "https" {
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg != nil {
		c = cfg.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = u.Hostname()
	}
	tc := tls.Client(conn, c)
	if err := tc.HandshakeContext(ctx); err != nil {
		if te := ExplainTLS(endpoint, err, files); te != nil {
			return te
		}
		// etcd without TLS closes on a ClientHello: an EOF, or a reset when
		// it closes with the hello unread.
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return &TLSError{Endpoint: endpoint, Err: err,
				Problem: "the server closed the connection during the TLS handshake: it may not speak TLS",
				Fix:     "use http:// if the server is plain (for etcd, one without --cert-file), else check its TLS settings and its log"}
		}
		return fmt.Errorf("TLS handshake with %s: %w", endpoint, err)
	}
	deadline := time.Now().Add(probeReadWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	tc.SetReadDeadline(deadline)
	var b [1]byte
	if _, err := tc.Read(b[:]); err != nil {
		if te := ExplainTLS(endpoint, err, files); te != nil {
			return te
		}
	}
	return nil
}
