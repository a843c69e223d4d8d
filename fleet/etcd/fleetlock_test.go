package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/fleet"
)

// fleetLockServer is a tiny FleetLock server on the etcd semaphore.
func fleetLockServer(t *testing.T, e *Semaphore) *httptest.Server {
	fail := func(w http.ResponseWriter, code int, kind, value string) {
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"kind": kind, "value": value})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("fleet-lock-protocol") != "true" {
			fail(w, http.StatusBadRequest, "bad_request", "want POST with fleet-lock-protocol: true")
			return
		}
		var body struct {
			ClientParams struct{ ID, Group string } `json:"client_params"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ClientParams.ID == "" {
			fail(w, http.StatusBadRequest, "bad_request", "missing client_params")
			return
		}
		p := body.ClientParams
		switch r.URL.Path {
		case "/v1/pre-reboot":
			if _, err := e.Acquire(r.Context(), p.Group, p.ID); err != nil {
				fail(w, http.StatusConflict, "failed_lock", err.Error())
				return
			}
		case "/v1/steady-state":
			if _, err := e.Release(r.Context(), p.Group, p.ID); err != nil {
				fail(w, http.StatusInternalServerError, "failed_unlock", err.Error())
				return
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFleetLockClient(t *testing.T) {
	s := startEtcd(t)
	srv := fleetLockServer(t, newEtcd(t, s, 1))
	a, err := fleet.NewFleetLockClient(fleet.FleetLockConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if st, err := a.Acquire(ctx, "web", "hostA"); err != nil || !st.Held {
		t.Fatalf("hostA pre-reboot: %+v, %v", st, err)
	}
	if _, err := a.Acquire(ctx, "web", "hostA"); err != nil {
		t.Fatalf("hostA pre-reboot again: %v", err)
	}
	_, err = a.Acquire(ctx, "web", "hostB")
	var refused *fleet.RefusedError
	if !errors.As(err, &refused) || refused.Kind != "failed_lock" || !strings.Contains(err.Error(), "1 of 1 taken by hostA") {
		t.Fatalf("hostB pre-reboot: %v; want the server's refusal shown", err)
	}
	t.Log(err)
	if _, err := a.Release(ctx, "web", "hostA"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, "web", "hostB"); err != nil {
		t.Fatalf("hostB after hostA's steady-state: %v", err)
	}
	// A server that is gone is an error, not a slot.
	srv.Close()
	if st, err := a.Acquire(ctx, "web", "hostC"); err == nil || st.Held || errors.As(err, &refused) {
		t.Fatalf("pre-reboot with the server gone: %+v, %v", st, err)
	}
	if _, err := fleet.NewFleetLockClient(fleet.FleetLockConfig{URL: "ftp://x"}); err == nil {
		t.Error("ftp URL accepted")
	}
}
