package daemon

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
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
