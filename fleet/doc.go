// Package fleet owns reboot coordination: what lets a fleet of hosts that
// stage updates automatically reboot a few at a time, and only when they may.
//
// It has four parts, each usable on its own; hostd composes them according
// to RebootStrategy in /etc/hostctl/hostd.conf:
//
//   - HostID: the stable id a host is known by in the fleet, derived from
//     /etc/machine-id with an app-specific hash (as systemd's
//     sd_id128_get_machine_app_specific does), never the raw machine id.
//   - Schedule: maintenance windows for RebootStrategy=periodic (days, start
//     time, length, in UTC or a named time zone), as Zincati's
//     [[updates.periodic.window]]. A staged update is finalized and
//     rebooted only inside one.
//   - etcd.Semaphore (package fleet/etcd): a semaphore of N slots per group
//     kept in etcd v3 for RebootStrategy=fleet. A host takes a slot before it finalizes a staged
//     deployment and gives it back once the new deployment booted and is
//     healthy. Slots are not tied to a lease: the holder keeps its slot
//     across the reboot, and a host that dies holding one blocks its group
//     until an operator releases it (Release with the dead host's id).
//     hostd does not link the etcd client (gRPC and its initialisation at
//     every start): EtcdHelper runs each operation in the helper executable
//     hostd-etcd, installed beside hostd.
//   - FleetLockClient: the same two steps through Zincati's FleetLock HTTP
//     protocol (POST /v1/pre-reboot, POST /v1/steady-state), for sites that
//     already run a FleetLock server such as airlock.
//
// EtcdHelper (and etcd.Semaphore) and FleetLockClient implement Locker. Acquiring is a single
// attempt: it either takes (or already holds) a slot, or returns an error;
// the caller waits and retries. A slot that is taken by others is a
// *SlotsTakenError (FleetLock: a *RefusedError), both of kind
// errdefs.ErrBusy; an unreachable server is an error of kind errdefs.ErrFailed
// wrapping the cause. No error ever means "acquired".
package fleet
