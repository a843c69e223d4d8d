package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hostctl/hostctl/errdefs"
)

// DefaultPrefix is the etcd key prefix of the semaphores.
const DefaultPrefix = "/hostctl/fleet/"

// DefaultOpTimeout bounds one etcd operation when the caller's context has
// no earlier deadline.
const DefaultOpTimeout = 10 * time.Second

// EtcdConfig configures an Etcd semaphore client.
type EtcdConfig struct {
	// Endpoints are the etcd client URLs (http://HOST:2379, https://...).
	Endpoints []string
	// Prefix is the key prefix (DefaultPrefix when empty). Group G's slots
	// are PREFIX G/slots/ID, the holder's id as value; its slot count, when
	// Slots is 0, is read from PREFIX G/config/slots.
	Prefix string
	// Slots is N, the number of hosts of a group that may hold a slot at
	// once. 0: the group's config/slots key, else 1.
	Slots int
	// CAFile, CertFile, KeyFile: TLS. CAFile verifies the servers (the
	// system pool when empty); CertFile and KeyFile are the client
	// certificate, for servers that require one.
	CAFile, CertFile, KeyFile string
	// Username and Password for etcd's authentication, if enabled.
	Username, Password string
	// DialTimeout bounds connecting (5 s when zero); OpTimeout bounds each
	// operation (DefaultOpTimeout when zero).
	DialTimeout, OpTimeout time.Duration
}

// Etcd is the fleet lock on an etcd v3 cluster: a semaphore of N slots per
// group. A slot is a key, taken in a transaction that fails if any key of
// the group changed since the slots were counted, so two hosts can never
// both take the last slot. Slots are not tied to a lease.
type Etcd struct {
	cli    *clientv3.Client
	cfg    EtcdConfig
	prefix string
}

// Status is the state of a group's semaphore.
type Status struct {
	// Group is the group's name.
	Group string
	// Slots is N (0 when unknown, as through FleetLock).
	Slots int
	// Holders are the ids holding a slot, in the order they took them.
	Holders []string
	// Held tells whether the id asked about holds a slot.
	Held bool
}

// SlotsTakenError is an acquire refused because every slot of the group is
// held by other hosts. Its kind is errdefs.ErrBusy: wait and retry.
type SlotsTakenError struct {
	Status Status
}

func (e *SlotsTakenError) Error() string {
	return fmt.Sprintf("waiting for a fleet slot in group %s: %d of %d taken by %s",
		e.Status.Group, len(e.Status.Holders), e.Status.Slots, strings.Join(e.Status.Holders, ", "))
}

// Unwrap gives the kind.
func (e *SlotsTakenError) Unwrap() error { return errdefs.ErrBusy }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func checkName(what, s string) error {
	if !nameRE.MatchString(s) {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "fleet %s %q: use letters, digits, '.', '_' and '-' (at most 128)", what, s)
	}
	return nil
}

// TLSConfig builds a TLS configuration from PEM files: caFile verifies the
// server (system pool when empty), certFile and keyFile are a client
// certificate (none when both are empty). It returns nil when all three are
// empty.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "reading the CA file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "CA file %s holds no PEM certificate", caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "client certificate %s, key %s: %w", certFile, keyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// NewEtcd makes a client of the etcd cluster of cfg. It does not wait for
// the cluster: an unreachable one makes the operations fail.
func NewEtcd(cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "no etcd endpoints configured")
	}
	if cfg.Slots < 0 {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "fleet slots %d: want a positive number", cfg.Slots)
	}
	tlsc, err := TLSConfig(cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         tlsc,
		Username:    cfg.Username,
		Password:    cfg.Password,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "etcd client for %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return &Etcd{cli: cli, cfg: cfg, prefix: prefix}, nil
}

// Close closes the connections.
func (e *Etcd) Close() error { return e.cli.Close() }

func (e *Etcd) slotsPrefix(group string) string { return e.prefix + group + "/slots/" }
func (e *Etcd) slotsKey(group string) string    { return e.prefix + group + "/config/slots" }

func (e *Etcd) unreachable(op string, err error) error {
	return fmt.Errorf("fleet lock: %s on etcd at %s: %w; check that etcd runs and is reachable (hostd retries)",
		op, strings.Join(e.cfg.Endpoints, ","), err)
}

// state reads group's holders and N at one revision.
func (e *Etcd) state(ctx context.Context, group, id string) (Status, int64, error) {
	st := Status{Group: group}
	resp, err := e.cli.Txn(ctx).Then(
		clientv3.OpGet(e.slotsPrefix(group), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)),
		clientv3.OpGet(e.slotsKey(group)),
	).Commit()
	if err != nil {
		return st, 0, e.unreachable("reading group "+group, err)
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		h := strings.TrimPrefix(string(kv.Key), e.slotsPrefix(group))
		st.Holders = append(st.Holders, h)
		if h == id {
			st.Held = true
		}
	}
	st.Slots = e.cfg.Slots
	if st.Slots == 0 {
		st.Slots = 1
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			n, err := strconv.Atoi(strings.TrimSpace(string(kvs[0].Value)))
			if err != nil || n < 1 {
				return st, 0, errdefs.Errorf(errdefs.ErrInvalidArgument, "etcd key %s is %q: want a positive number of slots", e.slotsKey(group), kvs[0].Value)
			}
			st.Slots = n
		}
	}
	return st, resp.Header.Revision, nil
}

func (e *Etcd) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.cfg.OpTimeout)
}

// Acquire takes a slot of group for id, or confirms that id holds one
// (after its reboot, say). It returns the group's status with Held set, or
// a *SlotsTakenError when the other hosts hold every slot, or an error
// wrapping the cause when etcd cannot be reached. It never waits for a
// slot: the caller retries.
func (e *Etcd) Acquire(ctx context.Context, group, id string) (Status, error) {
	if err := checkName("group", group); err != nil {
		return Status{}, err
	}
	if err := checkName("host id", id); err != nil {
		return Status{}, err
	}
	ctx, cancel := e.opCtx(ctx)
	defer cancel()
	for {
		st, rev, err := e.state(ctx, group, id)
		if err != nil || st.Held {
			return st, err
		}
		if len(st.Holders) >= st.Slots {
			return st, &SlotsTakenError{Status: st}
		}
		key := e.slotsPrefix(group) + id
		resp, err := e.cli.Txn(ctx).If(
			// No slot and no setting changed since they were counted.
			clientv3.Compare(clientv3.ModRevision(e.slotsPrefix(group)), "<", rev+1).WithPrefix(),
			clientv3.Compare(clientv3.ModRevision(e.slotsKey(group)), "<", rev+1),
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		).Then(clientv3.OpPut(key, id)).Commit()
		if err != nil {
			return st, e.unreachable("taking a slot of group "+group, err)
		}
		if resp.Succeeded {
			st.Holders = append(st.Holders, id)
			st.Held = true
			return st, nil
		}
		// Another host changed the group in between: count again.
		if err := ctx.Err(); err != nil {
			return st, e.unreachable("taking a slot of group "+group, err)
		}
	}
}

// Release frees id's slot of group: a host's own after its new deployment
// proved healthy, or an operator's release of a host that died holding one.
// It tells whether id held a slot; releasing a slot not held is no error.
func (e *Etcd) Release(ctx context.Context, group, id string) (bool, error) {
	if err := checkName("group", group); err != nil {
		return false, err
	}
	if err := checkName("host id", id); err != nil {
		return false, err
	}
	ctx, cancel := e.opCtx(ctx)
	defer cancel()
	resp, err := e.cli.Delete(ctx, e.slotsPrefix(group)+id)
	if err != nil {
		return false, e.unreachable("releasing the slot of "+id+" in group "+group, err)
	}
	return resp.Deleted > 0, nil
}

// Holders returns the status of group; Held tells whether id (may be "")
// holds a slot.
func (e *Etcd) Holders(ctx context.Context, group, id string) (Status, error) {
	if err := checkName("group", group); err != nil {
		return Status{}, err
	}
	ctx, cancel := e.opCtx(ctx)
	defer cancel()
	st, _, err := e.state(ctx, group, id)
	return st, err
}

// SetSlots stores N for group in its config/slots key (used by hosts whose
// EtcdConfig.Slots is 0).
func (e *Etcd) SetSlots(ctx context.Context, group string, n int) error {
	if err := checkName("group", group); err != nil {
		return err
	}
	if n < 1 {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "fleet slots %d: want a positive number", n)
	}
	ctx, cancel := e.opCtx(ctx)
	defer cancel()
	if _, err := e.cli.Put(ctx, e.slotsKey(group), strconv.Itoa(n)); err != nil {
		return e.unreachable("setting the slots of group "+group, err)
	}
	return nil
}
