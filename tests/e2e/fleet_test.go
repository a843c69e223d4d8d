package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/fleet"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// fleetGroup is the group the test's hosts share.
const fleetGroup = "workers"

// TestFleetReboots boots three test hosts that stage updates automatically
// with RebootStrategy=fleet, two through etcd directly and one through
// the FleetLock protocol (a FleetLock server written here, on the same
// etcd semaphore), against Debian's etcd-server. With N=1 and then N=2 it
// watches the slots in etcd and checks that at no moment more than N hosts
// hold one, that every reboot happens while its host holds a slot, that the
// slot is given back once the host is up again, and that every host ends on
// the new version. Then: with etcd down a host with a staged update waits
// and never reboots, and goes on when etcd is back; a slot held by a host
// that died blocks the group until `hostctl fleet release ID` frees it.
func TestFleetReboots(t *testing.T) {
	if testing.Short() {
		t.Skip("boots three test hosts")
	}
	ctx := t.Context()
	etcd, err := fixture.StartEtcd(ctx, t.TempDir())
	if errors.Is(err, exec.ErrNotFound) {
		harness.Skip(t, "no etcd (apt-get install etcd-server): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Stop)
	admin, err := etcd.Client(0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { admin.Close() }() // the one in use at the end
	if err := admin.SetSlots(ctx, fleetGroup, 1); err != nil {
		t.Fatal(err)
	}
	tl := watchSlots(t, etcd.URL)
	fl := newFleetLockServer(t, etcd)

	start := time.Now()
	hosts := []*fleetHost{
		newFleetHost(t, "A", "Backend=etcd\nEndpoints="+etcd.URL+"\n"),
		newFleetHost(t, "B", "Backend=etcd\nEndpoints="+etcd.URL+"\n"),
		newFleetHost(t, "C", "Backend=fleetlock\nURL="+fl.srv.URL+"\n"),
	}
	t.Logf("three hosts up in %v: A %s, B %s, C %s (FleetLock)", time.Since(start).Round(time.Second), hosts[0].id, hosts[1].id, hosts[2].id)
	names := map[string]string{}
	for _, h := range hosts {
		names[h.id] = h.name
	}

	// N=1, then N=2: every host stages the new version at once.
	for _, phase := range []struct {
		n       int
		version string
	}{{1, "3"}, {2, "4"}} {
		if err := admin.SetSlots(ctx, fleetGroup, phase.n); err != nil {
			t.Fatal(err)
		}
		from := tl.mark()
		start := time.Now()
		var wg sync.WaitGroup
		for _, h := range hosts {
			h.e.publishCopy(phase.version)
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.trigger()
			}()
		}
		wg.Wait()
		for _, h := range hosts {
			h.awaitSettled(phase.version, 5*time.Minute)
		}
		events := tl.since(from)
		harness.Report(t, fmt.Sprintf("N=%d, version %s, all hosts on it in %v; slot holders", phase.n, phase.version,
			time.Since(start).Round(time.Second)), formatTimeline(events, names))
		if peak := tl.peak(from); peak > phase.n {
			t.Fatalf("N=%d: %d hosts held a slot at once", phase.n, peak)
		}
		for _, h := range hosts {
			h.expectRebootsHeld(tl, start, 1)
		}
	}
	if got := fl.requests(); !slices.Contains(got, "pre-reboot "+hosts[2].id) || !slices.Contains(got, "steady-state "+hosts[2].id) {
		t.Fatalf("the FleetLock server saw %q, want C's pre-reboot and steady-state", got)
	}

	// etcd down: A stages, waits, and does not reboot without a slot.
	a := hosts[0]
	etcd.Stop()
	a.e.publishCopy("5")
	a.trigger()
	a.awaitReboot("waiting-slot", "cannot be reached", time.Minute)
	rebootsBefore := a.rebootCount()
	time.Sleep(8 * time.Second) // eight attempts at RetryInterval=1
	if n := a.rebootCount(); n != rebootsBefore {
		t.Fatalf("A rebooted with etcd down")
	}
	if st := a.status(); bootedVersion(st) != "4" {
		t.Fatalf("A booted %s with etcd down, want 4 still", bootedVersion(st))
	}
	if err := etcd.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tl.restarted()
	back := time.Now()
	a.awaitSettled("5", 3*time.Minute)
	a.expectRebootsHeld(tl, back, 1)
	t.Logf("etcd down: A waited; back: A on 5 in %v", time.Since(back).Round(time.Second))

	// A host that died holding the only slot blocks the group. The
	// admin's own client may still be in gRPC's reconnect backoff after the
	// outage (the hosts connect afresh for each operation, through
	// hostd-etcd): the test talks to etcd through a new one.
	admin.Close()
	if admin, err = etcd.Client(0); err != nil {
		t.Fatal(err)
	}
	if err := admin.SetSlots(ctx, fleetGroup, 1); err != nil {
		t.Fatal(err)
	}
	dead := "00000000-0000-4000-8000-00000000dead"
	if _, err := admin.Acquire(ctx, fleetGroup, dead); err != nil {
		t.Fatal(err)
	}
	b := hosts[1]
	b.e.publishCopy("6")
	b.trigger()
	b.awaitReboot("waiting-slot", "1 of 1 taken by "+dead, time.Minute)
	if out := b.mustHostctl("status"); !strings.Contains(out, "Reboots: fleet (group "+fleetGroup) || !strings.Contains(out, "waiting for a fleet slot in group "+fleetGroup+": 1 of 1 taken by "+dead) {
		t.Fatalf("status while blocked:\n%s", out)
	}
	if out := b.mustHostctl("fleet", "status"); !strings.Contains(out, "Group: "+fleetGroup+" (etcd)") || !strings.Contains(out, "1. "+dead) || !strings.Contains(out, "Slots: 1") {
		t.Fatalf("fleet status:\n%s", out)
	}
	time.Sleep(4 * time.Second)
	if b.rebootCount() != 2 {
		t.Fatalf("B rebooted while the dead host held the only slot")
	}
	if r := b.hostctl(fixture.BootedUID, "fleet", "release", dead); r.Code == 0 || !strings.Contains(r.Stderr, "AccessDenied") {
		t.Fatalf("an unprivileged fleet release: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if out := b.mustHostctl("fleet", "release", dead); !strings.Contains(out, "Released the slot of "+dead) {
		t.Fatalf("fleet release:\n%s", out)
	}
	released := time.Now()
	b.awaitSettled("6", 3*time.Minute)
	b.expectRebootsHeld(tl, released, 1)
	if out := b.mustHostctl("fleet", "status"); !strings.Contains(out, "Holders: none") {
		t.Fatalf("fleet status after:\n%s", out)
	}

	// A finalization that does nothing at shutdown (ostree-finalize-staged's
	// stop made a no-op for this boot): A reboots holding a slot, comes up
	// on what it ran before, says so, and gives the slot back once healthy.
	a.mu.Lock()
	r := a.e.host.Run(a.e.ctx, 0, "sh", "-c", "mkdir -p /run/systemd/system/ostree-finalize-staged.service.d && "+
		"printf '[Service]\\nExecStop=\\nExecStop=/bin/true\\n' >/run/systemd/system/ostree-finalize-staged.service.d/skip.conf && systemctl daemon-reload")
	a.mu.Unlock()
	if r.Code != 0 {
		t.Fatalf("host A: make the finalization a no-op: %+v", r)
	}
	a.e.publishCopy("7")
	missed := time.Now()
	a.trigger()
	a.awaitReboot("error", "did its finalization fail?", 3*time.Minute)
	a.expectRebootsHeld(tl, missed, 1)
	if st := a.status(); bootedVersion(st) != "5" || st.Reboot.SlotHeld || st.Reboot.Pending != "" {
		t.Fatalf("A after a reboot whose finalization did nothing: booted %s, reboot state %+v", bootedVersion(st), st.Reboot)
	}
	if out := a.mustHostctl("fleet", "status"); !strings.Contains(out, "Holders: none") {
		t.Fatalf("fleet status after A's missed reboot:\n%s", out)
	}
	harness.Report(t, "slot holders over the whole test", formatTimeline(tl.since(0), names))
}

// TestPeriodicReboots: with RebootStrategy=periodic an automatically
// staged update waits, staged and locked, for the maintenance window
// (status names it) and the host does not reboot; once a window is open
// (hostd.conf changed, `hostctl reload`) hostd finalizes and reboots into it.
func TestPeriodicReboots(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a test host")
	}
	window := func(at time.Time) string {
		return fmt.Sprintf("[Daemon]\nAutomaticUpdatePolicy=stage\nRebootStrategy=periodic\n[Periodic]\nWindow=%s %s 30\nTimeZone=UTC\n",
			at.Weekday().String()[:3], at.Format("15:04"))
	}
	now := time.Now().UTC()
	later := now.Add(3 * 24 * time.Hour).Truncate(time.Minute)
	h := newRebootHost(t, "P", window(later))
	// Idle, the status names the next window all the same.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		out := h.mustHostctl("status")
		if strings.Contains(out, "next window "+later.Format(time.RFC3339)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of an idle periodic host:\n%s", out)
		}
	}
	h.e.publishCopy("3")
	h.trigger()
	h.awaitReboot("waiting-window", "waits for the maintenance window at "+later.Format(time.RFC3339), time.Minute)
	st := h.status()
	if st.Reboot.WindowStart != uint64(later.Unix()) || st.Reboot.Pending == "" {
		t.Fatalf("RebootState %+v, want the window at %s and the staged update pending", st.Reboot, later)
	}
	var staged dbus.Deployment
	for _, d := range st.Deployments {
		if d.Staged {
			staged = d
		}
	}
	if staged.Version != "3" || !staged.FinalizationLocked {
		t.Fatalf("the automatic stage under periodic: staged %+v, want version 3 with its finalization locked", staged)
	}
	if out := h.mustHostctl("status"); !strings.Contains(out, "Reboots: periodic (windows ") || !strings.Contains(out, "next window "+later.Format(time.RFC3339)) {
		t.Fatalf("status:\n%s", out)
	}
	time.Sleep(3 * time.Second)
	if h.rebootCount() != 0 || bootedVersion(h.status()) != "1" {
		t.Fatalf("rebooted outside the window")
	}
	opened := time.Now()
	h.configure(window(now.Add(-time.Minute)))
	h.awaitSettled("3", 2*time.Minute)
	if n := h.rebootCount(); n != 1 {
		t.Fatalf("%d reboots, want 1", n)
	}
	t.Logf("in the window: rebooted into 3 in %v", time.Since(opened).Round(time.Millisecond))

	// RebootStrategy=immediate: the automatic stage reboots at once.
	h.configure("[Daemon]\nAutomaticUpdatePolicy=stage\nRebootStrategy=immediate\n")
	h.e.publishCopy("4")
	asked := time.Now()
	h.trigger()
	h.awaitSettled("4", 2*time.Minute)
	if n := h.rebootCount(); n != 2 {
		t.Fatalf("%d reboots after the immediate one, want 2", n)
	}
	t.Logf("immediate: rebooted into 4 in %v", time.Since(asked).Round(time.Millisecond))
}

// fleetHost is one booted test host of the fleet test; a watcher boots its
// machine again whenever it goes down, as the firmware would.
type fleetHost struct {
	t    *testing.T
	name string
	e    *bootedEnv
	id   string

	mu       sync.Mutex // held while the machine boots again
	reboots  []time.Time
	stopping bool
}

func newFleetHost(t *testing.T, name, fleetConf string) *fleetHost {
	h := newRebootHost(t, name, "[Daemon]\nAutomaticUpdatePolicy=stage\nRebootStrategy=fleet\n[Fleet]\nGroup="+fleetGroup+"\nRetryInterval=1\n"+fleetConf)
	st := h.status()
	if st.Reboot == nil || st.Reboot.Strategy != "fleet" || st.Reboot.Group != fleetGroup || st.Reboot.HostID == "" {
		t.Fatalf("host %s: RebootState %+v", name, st.Reboot)
	}
	h.id = st.Reboot.HostID
	return h
}

// newRebootHost boots a test host with its own machine id, hostd.conf
// conf and hostd enabled at boot, watched for reboots.
func newRebootHost(t *testing.T, name, conf string) *fleetHost {
	e := newBootedEnv(t)
	h := &fleetHost{t: t, name: name, e: e}
	// Each host its own machine id (the image's is the same on all).
	id := make([]byte, 16)
	rand.Read(id)
	script := fmt.Sprintf("printf '%s\\n' >/etc/machine-id && systemctl enable hostd.service", hex.EncodeToString(id))
	if r := e.host.Run(e.ctx, 0, "sh", "-c", script); r.Code != 0 {
		t.Fatalf("host %s: configure: %+v", name, r)
	}
	h.configure(conf)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go h.watch(ctx, done)
	t.Cleanup(func() { // before the host is powered off (cleanups run last first)
		h.mu.Lock()
		h.stopping = true
		h.mu.Unlock()
		cancel()
		<-done
	})
	return h
}

// configure writes hostd.conf and makes hostd reread it.
func (h *fleetHost) configure(conf string) {
	h.t.Helper()
	script := fmt.Sprintf("mkdir -p /etc/hostctl && printf '%s' >/etc/hostctl/hostd.conf", strings.ReplaceAll(conf, "\n", `\n`))
	h.mu.Lock()
	r := h.e.host.Run(h.e.ctx, 0, "sh", "-c", script)
	h.mu.Unlock()
	if r.Code != 0 {
		h.t.Fatalf("host %s: write hostd.conf: %+v", h.name, r)
	}
	h.mustHostctl("reload")
}

func (h *fleetHost) watch(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		h.mu.Lock()
		m := h.e.host.Machine
		h.mu.Unlock()
		if m == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-m.Done():
		}
		h.mu.Lock()
		if h.stopping {
			h.mu.Unlock()
			return
		}
		h.reboots = append(h.reboots, time.Now())
		err := h.e.host.AwaitReboot(ctx, time.Second)
		h.mu.Unlock()
		if err != nil {
			h.t.Errorf("host %s: boot again: %v", h.name, err)
			return
		}
	}
}

func (h *fleetHost) rebootCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.reboots)
}

// hostctl runs hostctl in the machine, not while it boots again.
func (h *fleetHost) hostctl(uid int, args ...string) fixture.RunResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.e.hostctl(uid, args...)
}

func (h *fleetHost) mustHostctl(args ...string) string {
	h.t.Helper()
	r := h.hostctl(0, args...)
	if r.Code != 0 {
		h.t.Fatalf("host %s: hostctl %s: exit %d\n%s%s", h.name, strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// trigger runs the automatic update as the timer does.
func (h *fleetHost) trigger() {
	h.mu.Lock()
	r := h.e.host.Run(h.e.ctx, 0, "systemctl", "start", "hostctl-automatic.service")
	h.mu.Unlock()
	if r.Code != 0 {
		h.t.Errorf("host %s: systemctl start hostctl-automatic.service: %+v", h.name, r)
	}
}

// status is hostd's status, or the zero Status while the machine is down
// or hostd not yet up.
func (h *fleetHost) status() dbus.Status {
	var st dbus.Status
	r := h.hostctl(0, "status", "--json")
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &st) != nil {
		return dbus.Status{}
	}
	return st
}

func bootedVersion(st dbus.Status) string {
	for _, d := range st.Deployments {
		if d.Booted {
			return d.Version
		}
	}
	return ""
}

// awaitSettled waits until the host booted version and its reboot loop
// has nothing left (slot given back).
func (h *fleetHost) awaitSettled(version string, d time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	var st dbus.Status
	for time.Now().Before(deadline) {
		st = h.status()
		if bootedVersion(st) == version && st.Reboot != nil && st.Reboot.State == "idle" {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	h.t.Fatalf("host %s: not settled on version %s after %v: booted %q, reboot state %+v\nhostd's journal:\n%s", h.name, version, d,
		bootedVersion(st), st.Reboot, h.journal())
}

// awaitReboot waits until the reboot loop is in state with msg in its message.
func (h *fleetHost) awaitReboot(state, msg string, d time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	var st dbus.Status
	for time.Now().Before(deadline) {
		st = h.status()
		if r := st.Reboot; r != nil && r.State == state && strings.Contains(r.Message, msg) {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	h.t.Fatalf("host %s: reboot state %+v, want %s with %q\nhostd's journal:\n%s", h.name, st.Reboot, state, msg, h.journal())
}

func (h *fleetHost) journal() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.e.host.Machine == nil {
		return "(machine down)"
	}
	return h.e.host.Machine.Journal(h.e.ctx, "hostd.service")
}

// expectRebootsHeld checks that the host rebooted want times since from,
// each time while holding a slot (taken before, given back after).
func (h *fleetHost) expectRebootsHeld(tl *slotTimeline, from time.Time, want int) {
	h.t.Helper()
	h.mu.Lock()
	var rs []time.Time
	for _, r := range h.reboots {
		if r.After(from) {
			rs = append(rs, r)
		}
	}
	h.mu.Unlock()
	if len(rs) != want {
		h.t.Fatalf("host %s rebooted %d times since %s, want %d", h.name, len(rs), from.Format(time.TimeOnly), want)
	}
	for _, r := range rs {
		if !tl.heldAt(h.id, r) {
			h.t.Fatalf("host %s (%s) rebooted at %s without holding a slot; slot holders:\n%s\nhostd's journal:\n%s", h.name, h.id,
				r.Format("15:04:05.000"), formatTimeline(tl.since(0), nil), h.journal())
		}
	}
}

// publishCopy publishes version: a new commit of version 2's tree with
// that version, newer than everything before.
func (e *bootedEnv) publishCopy(version string) {
	e.t.Helper()
	out, err := exec.CommandContext(e.ctx, "ostree", "--repo="+e.repo, "commit", "--branch="+fixture.StableRef,
		"--tree=ref="+e.os.Commits["2"], "--add-metadata-string=version="+version, "--subject=HostOS "+version).CombinedOutput()
	if err != nil {
		e.t.Fatalf("commit version %s: %v\n%s", version, err, out)
	}
	if err := fixture.RegenerateSummary(e.repo); err != nil {
		e.t.Fatal(err)
	}
}

// slotEvent is a change of the group's slots seen in etcd.
type slotEvent struct {
	at      time.Time
	take    bool
	id      string
	holders []string
}

// slotTimeline records the group's slot holders from an etcd watch.
type slotTimeline struct {
	mu        sync.Mutex
	events    []slotEvent
	reconnect chan struct{}
}

func watchSlots(t *testing.T, url string) *slotTimeline {
	ctx, cancel := context.WithCancel(t.Context())
	tl := &slotTimeline{reconnect: make(chan struct{}, 1)}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	prefix := fleet.DefaultPrefix + fleetGroup + "/slots/"
	go func() {
		defer close(done)
		held := map[string]bool{}
		next := int64(0) // the revision to go on from after a reconnect
		for ctx.Err() == nil {
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			wctx, wcancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-tl.reconnect:
					wcancel()
				case <-wctx.Done():
				}
			}()
			opts := []clientv3.OpOption{clientv3.WithPrefix()}
			if next > 0 {
				opts = append(opts, clientv3.WithRev(next))
			}
			for resp := range cli.Watch(wctx, prefix, opts...) {
				for _, ev := range resp.Events {
					next = ev.Kv.ModRevision + 1
					id := strings.TrimPrefix(string(ev.Kv.Key), prefix)
					take := ev.Type == clientv3.EventTypePut
					if take {
						held[id] = true
					} else {
						delete(held, id)
					}
					var hs []string
					for h := range held {
						hs = append(hs, h)
					}
					sort.Strings(hs)
					tl.mu.Lock()
					tl.events = append(tl.events, slotEvent{at: time.Now(), take: take, id: id, holders: hs})
					tl.mu.Unlock()
				}
			}
			wcancel()
			cli.Close()
		}
	}()
	return tl
}

// restarted makes the watch start again on a new connection, from where
// it stopped: call it when etcd is back after an outage (a watch does not
// come back by itself from a killed server).
func (tl *slotTimeline) restarted() {
	select {
	case tl.reconnect <- struct{}{}:
	default:
	}
}

func (tl *slotTimeline) mark() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.events)
}

func (tl *slotTimeline) since(i int) []slotEvent {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.events[i:])
}

func (tl *slotTimeline) peak(i int) int {
	peak := 0
	for _, ev := range tl.since(i) {
		peak = max(peak, len(ev.holders))
	}
	return peak
}

// heldAt tells whether id held a slot at t.
func (tl *slotTimeline) heldAt(id string, t time.Time) bool {
	held := false
	for _, ev := range tl.since(0) {
		if ev.at.After(t) {
			break
		}
		held = slices.Contains(ev.holders, id)
	}
	return held
}

func formatTimeline(evs []slotEvent, names map[string]string) string {
	var b strings.Builder
	name := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	for _, ev := range evs {
		verb := "gives back"
		if ev.take {
			verb = "takes"
		}
		var hs []string
		for _, h := range ev.holders {
			hs = append(hs, name(h))
		}
		fmt.Fprintf(&b, "  %s  %s %s a slot; holders: [%s]\n", ev.at.Format("15:04:05.000"), name(ev.id), verb, strings.Join(hs, " "))
	}
	return b.String()
}

// fleetLockServer is a FleetLock server (Zincati's protocol) on the
// test's etcd semaphore, as airlock is one on its own.
type fleetLockServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string
}

func newFleetLockServer(t *testing.T, etcd *fixture.EtcdServer) *fleetLockServer {
	sem, err := etcd.Client(0)
	if err != nil {
		t.Fatal(err)
	}
	s := &fleetLockServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := strings.TrimPrefix(r.URL.Path, "/v1/")
		var body struct {
			ClientParams struct{ ID, Group string } `json:"client_params"`
		}
		refuse := func(code int, kind, value string) {
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(map[string]string{"kind": kind, "value": value})
		}
		switch {
		case r.Method != http.MethodPost || (op != "pre-reboot" && op != "steady-state"):
			refuse(http.StatusNotFound, "not_found", r.Method+" "+r.URL.Path)
			return
		case r.Header.Get("fleet-lock-protocol") != "true":
			refuse(http.StatusBadRequest, "missing_header", "fleet-lock-protocol: true")
			return
		case json.NewDecoder(r.Body).Decode(&body) != nil || body.ClientParams.ID == "" || body.ClientParams.Group == "":
			refuse(http.StatusBadRequest, "bad_body", "want client_params with id and group")
			return
		}
		id, group := body.ClientParams.ID, body.ClientParams.Group
		var err error
		if op == "pre-reboot" {
			_, err = sem.Acquire(r.Context(), group, id)
		} else {
			_, err = sem.Release(r.Context(), group, id)
		}
		var taken *fleet.SlotsTakenError
		switch {
		case errors.As(err, &taken):
			refuse(http.StatusConflict, "failed_lock", err.Error())
			return
		case err != nil:
			refuse(http.StatusInternalServerError, "etcd", err.Error())
			return
		}
		s.mu.Lock()
		s.seen = append(s.seen, op+" "+id)
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() { s.srv.Close(); sem.Close() })
	return s
}

// requests are the granted requests, as "OP ID".
func (s *fleetLockServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}
