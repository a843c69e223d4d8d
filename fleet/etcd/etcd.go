// Package etcd is the fleet lock kept in etcd v3 (go.etcd.io/etcd/client/v3):
// a semaphore of N slots per group. hostd does not link it: it runs in the
// helper executable hostd-etcd (Serve), so that the gRPC and protobuf the
// client brings cost nothing to a host that does not use an etcd fleet
// lock (fleet.EtcdHelper is hostd's side).
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/fleet"
)

// Semaphore is the fleet lock on an etcd v3 cluster: a semaphore of N slots per
// group. A slot is a key, taken in a transaction that fails if any key of
// the group changed since the slots were counted, so two hosts can never
// both take the last slot. Slots are not tied to a lease.
type Semaphore struct {
	cli    *clientv3.Client
	cfg    fleet.EtcdConfig
	tls    *tls.Config
	prefix string
}

// New makes a client of the etcd cluster of cfg. It does not wait for
// the cluster: an unreachable one makes the operations fail. TLS files that
// cannot be used (fleet.TLSConfig) are an error here, before any
// connection.
func New(cfg fleet.EtcdConfig) (*Semaphore, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "no etcd endpoints configured")
	}
	if cfg.Slots < 0 {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "fleet slots %d: want a positive number", cfg.Slots)
	}
	tlsc, err := fleet.TLSConfig(cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = fleet.DefaultOpTimeout
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = fleet.DefaultPrefix
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
	return &Semaphore{cli: cli, cfg: cfg, tls: tlsc, prefix: prefix}, nil
}

// Close closes the connections.
func (e *Semaphore) Close() error { return e.cli.Close() }

func (e *Semaphore) slotsPrefix(group string) string { return e.prefix + group + "/slots/" }
func (e *Semaphore) slotsKey(group string) string    { return e.prefix + group + "/config/slots" }

// unreachable is an operation etcd did not answer. Its own time limit
// running out is a failure to reach etcd, not a cancel: the deadline is
// kept as text only, so that the error's kind is failed. Unless the caller
// cancelled, the endpoints are probed (diagnose) so that the error says
// why: nothing listening, or what is wrong with TLS and how to fix it.
func (e *Semaphore) unreachable(ctx context.Context, op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.New(err.Error())
	}
	endpoints := strings.Join(e.cfg.Endpoints, ",")
	if !errors.Is(err, context.Canceled) && !errors.Is(ctx.Err(), context.Canceled) {
		why := e.diagnose(context.WithoutCancel(ctx))
		var te *fleet.TLSError
		if errors.As(why, &te) {
			return fmt.Errorf("fleet lock: %s on etcd: %w (hostd retries)", op, te)
		}
		if why != nil {
			return fmt.Errorf("fleet lock: %s on etcd at %s: %v (%v); check that etcd runs and is reachable (hostd retries)",
				op, endpoints, err, why)
		}
	}
	return fmt.Errorf("fleet lock: %s on etcd at %s: %w; check that etcd runs and is reachable (hostd retries)",
		op, endpoints, err)
}

// diagnose probes every endpoint at once (fleet.ProbeEndpoint), within the
// dial timeout, after an operation failed. It returns the first TLS error
// of an endpoint, else the first endpoint's error when none took the
// connection, else nil (the cause is elsewhere).
func (e *Semaphore) diagnose(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	files := fleet.TLSFiles{CAFile: e.cfg.CAFile, CertFile: e.cfg.CertFile, KeyFile: e.cfg.KeyFile}
	errs := make([]error, len(e.cfg.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range e.cfg.Endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fleet.ProbeEndpoint(ctx, ep, "2379", e.tls, files)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		var te *fleet.TLSError
		if errors.As(err, &te) {
			return err
		}
	}
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	return errs[0]
}

// state reads group's holders and N at one revision.
func (e *Semaphore) state(ctx context.Context, group, id string) (fleet.Status, int64, error) {
	st := fleet.Status{Group: group}
	resp, err := e.cli.Txn(ctx).Then(
		clientv3.OpGet(e.slotsPrefix(group), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)),
		clientv3.OpGet(e.slotsKey(group)),
	).Commit()
	if err != nil {
		return st, 0, e.unreachable(ctx, "reading group "+group, err)
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

func (e *Semaphore) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.cfg.OpTimeout)
}

// Acquire takes a slot of group for id, or confirms that id holds one
// (after its reboot, say). It returns the group's status with Held set, or
// a *SlotsTakenError when the other hosts hold every slot, or an error
// wrapping the cause when etcd cannot be reached. It never waits for a
// slot: the caller retries.
func (e *Semaphore) Acquire(ctx context.Context, group, id string) (fleet.Status, error) {
	if err := fleet.CheckName("group", group); err != nil {
		return fleet.Status{}, err
	}
	if err := fleet.CheckName("host id", id); err != nil {
		return fleet.Status{}, err
	}
	ctx, cancel := e.opCtx(ctx)
	defer cancel()
	for {
		st, rev, err := e.state(ctx, group, id)
		if err != nil || st.Held {
			return st, err
		}
		if len(st.Holders) >= st.Slots {
			return st, &fleet.SlotsTakenError{Status: st}
		}
		key := e.slotsPrefix(group) + id
		resp, err := e.cli.Txn(ctx).If(
			// No slot and no setting changed since they were counted.
			clientv3.Compare(clientv3.ModRevision(e.slotsPrefix(group)), "<", rev+1).WithPrefix(),
			clientv3.Compare(clientv3.ModRevision(e.slotsKey(group)), "<", rev+1),
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		).Then(clientv3.OpPut(key, id)).Commit()
		if err != nil {
			return st, e.unreachable(ctx, "taking a slot of group "+group, err)
		}
		if resp.Succeeded {
			st.Holders = append(st.Holders, id)
			st.Held = true
			return st, nil
		}
		// Another host changed the group in between: count again.
		if err := ctx.Err(); err != nil {
			return st, e.unreachable(ctx, "taking a slot of group "+group, err)
		}
	}
}

// Release frees id's slot of group: a host's own after its new deployment
// proved healthy, or an operator's release of a host that died holding one.
// It tells whether id held a slot; releasing a slot not held is no error.
func (e *Semaphore) Release(ctx context.Context, group, id string) (bool, error) {
	if err := fleet.CheckName("group", group); err != nil {
		return false, err
	}
	if err := fleet.CheckName("host id", id); err != nil {
		return false, err
	}
	ctx, cancel := e.opCtx(ctx)
	defer cancel()
	resp, err := e.cli.Delete(ctx, e.slotsPrefix(group)+id)
	if err != nil {
		return false, e.unreachable(ctx, "releasing the slot of "+id+" in group "+group, err)
	}
	return resp.Deleted > 0, nil
}

// Holders returns the status of group; Held tells whether id (may be "")
// holds a slot.
func (e *Semaphore) Holders(ctx context.Context, group, id string) (fleet.Status, error) {
	if err := fleet.CheckName("group", group); err != nil {
		return fleet.Status{}, err
	}
	ctx, cancel := e.opCtx(ctx)
	defer cancel()
	st, _, err := e.state(ctx, group, id)
	return st, err
}

// SetSlots stores N for group in its config/slots key (used by hosts whose
// EtcdConfig.Slots is 0).
func (e *Semaphore) SetSlots(ctx context.Context, group string, n int) error {
	if err := fleet.CheckName("group", group); err != nil {
		return err
	}
	if n < 1 {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "fleet slots %d: want a positive number", n)
	}
	ctx, cancel := e.opCtx(ctx)
	defer cancel()
	if _, err := e.cli.Put(ctx, e.slotsKey(group), strconv.Itoa(n)); err != nil {
		return e.unreachable(ctx, "setting the slots of group "+group, err)
	}
	return nil
}
