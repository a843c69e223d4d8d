package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// journal is hostd's state database: the transaction in flight (so a crash
// can be recovered from) and the history of finished ones.
type journal struct {
	db *bolt.DB
}

var (
	bucketJournal = []byte("journal")
	bucketHistory = []byte("history")
	keyActive     = []byte("active")
)

// record is one transaction as the journal keeps it.
type record struct {
	ID      string         `json:"id"`
	Kind    string         `json:"kind"`
	Arg     string         `json:"arg,omitempty"`
	Options map[string]any `json:"options,omitempty"`
	Caller  uint32         `json:"caller"`
	State   string         `json:"state"`
	Error   string         `json:"error,omitempty"`
	// ErrorName is the error's D-Bus name (dbus.ErrorName); records
	// written before it was kept have none.
	ErrorName string    `json:"error-name,omitempty"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended,omitzero"`
	Steps     []string  `json:"steps"`
	// Temp lists the temporary paths the transaction made, removed on recovery.
	Temp []string `json:"temp,omitempty"`
	// Before and After are the default deployment when it began and ended.
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
	// Sweep: the transaction reached the bootloader swap, so it owes the
	// cleanup that runs after its end (sweep.go).
	Sweep bool `json:"sweep,omitempty"`
}

func openJournal(path string) (*journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open state database: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open state database %s: held by another process: is another hostd running on this sysroot?", path)
		}
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketJournal, bucketHistory} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init state database %s: %w", path, err)
	}
	return &journal{db: db}, nil
}

func (j *journal) close() error { return j.db.Close() }

// begin, step: the record of the active transaction, rewritten at each step.
func (j *journal) putActive(r *record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return j.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJournal).Put(keyActive, data)
	})
}

// active returns the unfinished transaction, if any.
func (j *journal) active() (*record, error) {
	var r *record
	err := j.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketJournal).Get(keyActive)
		if data == nil {
			return nil
		}
		r = &record{}
		return json.Unmarshal(data, r)
	})
	return r, err
}

// finish moves the active record into the history, in one database transaction.
func (j *journal) finish(r *record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return j.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketHistory).Put([]byte(r.ID), data); err != nil {
			return err
		}
		if r.Sweep && r.State != stateInterrupted {
			if err := j.owesSweep(tx, r.ID); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketJournal).Delete(keyActive)
	})
}

// history lists finished transactions, newest first.
func (j *journal) history(limit int) ([]record, error) {
	var out []record
	err := j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("history entry %s: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
