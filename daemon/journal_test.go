package daemon

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hostctl/hostctl/dbus"
)

func TestJournalLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var/lib/hostctl/state.db")
	j, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := j.active(); err != nil || r != nil {
		t.Fatalf("fresh journal has an active record: %v %v", r, err)
	}
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"18a0000000000000", "18a0000000000001"} {
		r := &record{ID: id, Kind: "upgrade", State: stateRunning, Started: start.Add(time.Duration(i) * time.Minute)}
		if err := j.putActive(r); err != nil {
			t.Fatal(err)
		}
		r.Steps = append(r.Steps, "pull")
		r.Temp = []string{"/tmp/x"}
		if err := j.putActive(r); err != nil {
			t.Fatal(err)
		}
		r.State = stateSucceeded
		if err := j.finish(r); err != nil {
			t.Fatal(err)
		}
	}
	// A transaction in flight when the process dies stays in the journal.
	if err := j.putActive(&record{ID: "18a0000000000002", Kind: "deploy", State: stateRunning, Steps: []string{"pull", "deploy"}}); err != nil {
		t.Fatal(err)
	}
	j.close()

	j, err = openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	r, err := j.active()
	if err != nil || r == nil || r.ID != "18a0000000000002" || strings.Join(r.Steps, ",") != "pull,deploy" {
		t.Fatalf("unfinished record after reopen: %+v %v", r, err)
	}
	hist, err := j.history(0)
	if err != nil || len(hist) != 2 || hist[0].ID != "18a0000000000001" || hist[1].Steps[0] != "pull" {
		t.Fatalf("history newest first: %+v %v", hist, err)
	}
	if one, _ := j.history(1); len(one) != 1 {
		t.Fatalf("limit: %d", len(one))
	}
	// A second opener (another hostd) is refused with a clear error.
	if _, err := openJournal(path); err == nil || !strings.Contains(err.Error(), "another hostd") {
		t.Fatalf("second open: %v", err)
	}
}

// TestJournalSweepOwed: a transaction that reached its swap owes the
// cleanup after it from the moment its end is journalled (same database
// transaction), across a reopen, until swept; an interrupted one owes
// none (recovery cleans up itself), and a later transaction's sweep
// supersedes an earlier one's.
func TestJournalSweepOwed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	j, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	owed := func(want string) {
		t.Helper()
		if id, err := j.sweepOwed(); err != nil || id != want {
			t.Fatalf("sweep owed: %q %v, want %q", id, err, want)
		}
	}
	owed("")
	if err := j.finish(&record{ID: "a", Kind: "kargs", State: stateSucceeded}); err != nil {
		t.Fatal(err)
	}
	owed("") // no swap, no sweep
	if err := j.finish(&record{ID: "b", Kind: "upgrade", State: stateInterrupted, Sweep: true}); err != nil {
		t.Fatal(err)
	}
	owed("")
	if err := j.finish(&record{ID: "c", Kind: "upgrade", State: stateFailed, Sweep: true}); err != nil {
		t.Fatal(err)
	}
	owed("c") // failed after its swap: the swap's leftovers are owed all the same
	j.close()
	if j, err = openJournal(path); err != nil {
		t.Fatal(err)
	}
	defer j.close()
	owed("c")
	if err := j.finish(&record{ID: "d", Kind: "upgrade", State: stateSucceeded, Sweep: true}); err != nil {
		t.Fatal(err)
	}
	owed("d")
	if err := j.swept("c"); err != nil { // a stale sweep does not clear a newer one
		t.Fatal(err)
	}
	owed("d")
	if err := j.swept("d"); err != nil {
		t.Fatal(err)
	}
	owed("")
}

// TestJournalErrorName: a failed transaction's record keeps its error's
// D-Bus name across a reopen, and a record a hostd before error-name wrote
// (no such key) still reads, with no name.
func TestJournalErrorName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	j, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	old := `{"id":"18a0000000000000","kind":"pkg-change","caller":0,"state":"failed","error":"pkg-change: refused","started":"2026-11-23T10:00:00Z","ended":"2026-11-23T10:01:00Z","steps":["resolve"]}`
	if err := j.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHistory).Put([]byte("18a0000000000000"), []byte(old))
	}); err != nil {
		t.Fatal(err)
	}
	r := &record{ID: "18a0000000000001", Kind: "pkg-change", State: stateFailed, Error: "refused", ErrorName: dbus.ErrUnsupportedScript}
	if err := j.putActive(r); err != nil {
		t.Fatal(err)
	}
	if err := j.finish(r); err != nil {
		t.Fatal(err)
	}
	j.close()
	if j, err = openJournal(path); err != nil {
		t.Fatal(err)
	}
	defer j.close()
	hist, err := j.history(0)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history: %+v %v", hist, err)
	}
	if hist[0].ErrorName != dbus.ErrUnsupportedScript {
		t.Errorf("the new record's error name is %q, want %q", hist[0].ErrorName, dbus.ErrUnsupportedScript)
	}
	if hist[1].ID != "18a0000000000000" || hist[1].State != stateFailed || hist[1].Error != "pkg-change: refused" || hist[1].ErrorName != "" {
		t.Errorf("the old record reads as %+v", hist[1])
	}
}
