package fleet

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hostctl/hostctl/errdefs"
)

// DefaultPrefix is the etcd key prefix of the semaphores.
const DefaultPrefix = "/hostctl/fleet/"

// DefaultOpTimeout bounds one etcd operation when the caller's context has
// no earlier deadline.
const DefaultOpTimeout = 10 * time.Second

// EtcdConfig configures the etcd semaphore (etcd.Semaphore, EtcdHelper).
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

// Error implements error.
func (e *SlotsTakenError) Error() string {
	return fmt.Sprintf("waiting for a fleet slot in group %s: %d of %d taken by %s",
		e.Status.Group, len(e.Status.Holders), e.Status.Slots, strings.Join(e.Status.Holders, ", "))
}

// Unwrap gives the kind.
func (e *SlotsTakenError) Unwrap() error { return errdefs.ErrBusy }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckName checks a group name or a host id: what etcd keys and the
// FleetLock protocol carry.
func CheckName(what, s string) error {
	if !nameRE.MatchString(s) {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "fleet %s %q: use letters, digits, '.', '_' and '-' (at most 128)", what, s)
	}
	return nil
}
