package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/fleet"
)

// buildHelper builds cmd/hostd-etcd, the executable hostd runs.
func buildHelper(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), fleet.HelperName)
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/hostd-etcd").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hostd-etcd: %v\n%s", err, out)
	}
	return bin
}

// TestHelper drives the etcd semaphore the way hostd does: through the
// helper executable, one process per operation, errors of their kind.
func TestHelper(t *testing.T) {
	s := startEtcd(t)
	bin := buildHelper(t)
	ctx := context.Background()
	cfg := fleet.EtcdConfig{Endpoints: []string{s.client}, OpTimeout: 2 * time.Second, DialTimeout: time.Second}
	a := &fleet.EtcdHelper{Path: bin, Config: cfg}
	b := &fleet.EtcdHelper{Path: bin, Config: cfg}

	if err := a.SetSlots(ctx, "web", 1); err != nil {
		t.Fatalf("set slots: %v", err)
	}
	st, err := a.Acquire(ctx, "web", "host-a")
	if err != nil || !st.Held || st.Slots != 1 || strings.Join(st.Holders, ",") != "host-a" {
		t.Fatalf("A's acquire: %+v, %v", st, err)
	}
	_, err = b.Acquire(ctx, "web", "host-b")
	var taken *fleet.SlotsTakenError
	if !errors.As(err, &taken) || !errdefs.IsBusy(err) || strings.Join(taken.Status.Holders, ",") != "host-a" {
		t.Fatalf("B's acquire while A holds the only slot: %v, want the slots taken by host-a", err)
	}
	if st, err := b.Holders(ctx, "web", "host-b"); err != nil || st.Held || strings.Join(st.Holders, ",") != "host-a" {
		t.Fatalf("holders: %+v, %v", st, err)
	}
	if released, err := b.Release(ctx, "web", "host-a"); err != nil || !released {
		t.Fatalf("release of A's slot: %v, %v", released, err)
	}
	if st, err := b.Acquire(ctx, "web", "host-b"); err != nil || !st.Held {
		t.Fatalf("B's acquire after the release: %+v, %v", st, err)
	}

	// Bad input is refused before or by the helper, with its kind.
	if _, err := a.Acquire(ctx, "web", "../x"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a bad host id: %v, want invalid argument", err)
	}
	none := &fleet.EtcdHelper{Path: bin}
	if _, err := none.Holders(ctx, "web", ""); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "no etcd endpoints") {
		t.Errorf("no endpoints: %v, want invalid argument naming them", err)
	}
	// etcd down: an error of kind failed naming the endpoint, never a slot.
	s.stop()
	if _, err := a.Acquire(ctx, "web", "host-a"); err == nil || !errdefs.IsFailed(err) || !strings.Contains(err.Error(), s.client) {
		t.Errorf("acquire with etcd down: %v, want a failure naming %s", err, s.client)
	}
	// No helper: say what to install.
	missing := &fleet.EtcdHelper{Path: filepath.Join(t.TempDir(), fleet.HelperName), Config: cfg}
	if _, err := missing.Acquire(ctx, "web", "host-a"); err == nil || !strings.Contains(err.Error(), "install it beside hostd") {
		t.Errorf("a missing helper: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	unnamed := &fleet.EtcdHelper{Config: cfg}
	if _, err := unnamed.Acquire(ctx, "web", "host-a"); err == nil || !strings.Contains(err.Error(), fleet.HelperName+": ") || !strings.Contains(err.Error(), "install it beside hostd") {
		t.Errorf("no helper path and none in $PATH: %v", err)
	}
	// A cancelled caller stops the helper and reads as cancelled.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.Acquire(cctx, "web", "host-a"); !errdefs.IsCancelled(err) {
		t.Errorf("cancelled acquire: %v, want cancelled", err)
	}
}

// TestServeRefusesBadRequests: what the helper answers to input hostd
// would never send.
func TestServeRefusesBadRequests(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `{"op":"acquire","bogus":1}`, `{"op":"explode","group":"g","config":{"Endpoints":["http://127.0.0.1:1"]}}`} {
		var out bytes.Buffer
		if err := Serve(context.Background(), strings.NewReader(in), &out); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		var resp fleet.HelperResponse
		if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
			t.Fatalf("%q: answer %q: %v", in, out.String(), err)
		}
		if resp.Error == nil || resp.Error.Kind != errdefs.ErrInvalidArgument.Error() {
			t.Errorf("%q: %+v, want an invalid argument error", in, resp.Error)
		}
	}
}
