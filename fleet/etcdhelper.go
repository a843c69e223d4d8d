package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"

	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/internal/proc"
)

// HelperName is the executable that runs the etcd fleet lock for hostd,
// installed beside it (/usr/libexec/hostd-etcd).
const HelperName = "hostd-etcd"

// The operations of a HelperRequest.
const (
	OpAcquire  = "acquire"
	OpRelease  = "release"
	OpHolders  = "holders"
	OpSetSlots = "set-slots"
)

// HelperRequest is what hostd writes to the helper's standard input: one
// operation on the etcd semaphore of Config.
type HelperRequest struct {
	Op     string     `json:"op"`
	Group  string     `json:"group"`
	ID     string     `json:"id,omitempty"`
	Slots  int        `json:"slots,omitempty"`
	Config EtcdConfig `json:"config"`
}

// HelperResponse is what the helper writes to its standard output.
type HelperResponse struct {
	Status   Status       `json:"status"`
	Released bool         `json:"released,omitempty"`
	Error    *HelperError `json:"error,omitempty"`
}

// HelperError is an error crossing the helper's pipe: its errdefs kind by
// name, its text, and whether it is a SlotsTakenError (Status says whose).
type HelperError struct {
	Kind       string `json:"kind"`
	Message    string `json:"message"`
	SlotsTaken bool   `json:"slots_taken,omitempty"`
}

// NewHelperError describes err for the pipe.
func NewHelperError(err error) *HelperError {
	var taken *SlotsTakenError
	return &HelperError{Kind: errdefs.Kind(err).Error(), Message: err.Error(), SlotsTaken: errors.As(err, &taken)}
}

// err is the error h describes, of its kind.
func (h *HelperError) err(st Status) error {
	if h.SlotsTaken {
		return &SlotsTakenError{Status: st}
	}
	kind := errdefs.ErrFailed
	for _, k := range errdefs.Kinds() {
		if k.Error() == h.Kind {
			kind = k
		}
	}
	return errdefs.Errorf(kind, "%s", h.Message)
}

// EtcdHelper is the etcd fleet lock as hostd uses it: each operation runs
// the helper executable at Path (etcd.Serve), which keeps the etcd client,
// with its gRPC and protobuf, out of hostd. Cancelling the context kills
// the helper.
type EtcdHelper struct {
	// Path is the helper executable; empty: HelperName looked up in $PATH.
	Path string
	// Config is the etcd cluster and semaphore.
	Config EtcdConfig
}

// Acquire implements Locker (etcd.Semaphore.Acquire).
func (h *EtcdHelper) Acquire(ctx context.Context, group, id string) (Status, error) {
	if err := CheckName("group", group); err != nil {
		return Status{}, err
	}
	if err := CheckName("host id", id); err != nil {
		return Status{}, err
	}
	r, err := h.run(ctx, HelperRequest{Op: OpAcquire, Group: group, ID: id})
	return r.Status, err
}

// Release implements Locker (etcd.Semaphore.Release).
func (h *EtcdHelper) Release(ctx context.Context, group, id string) (bool, error) {
	if err := CheckName("group", group); err != nil {
		return false, err
	}
	if err := CheckName("host id", id); err != nil {
		return false, err
	}
	r, err := h.run(ctx, HelperRequest{Op: OpRelease, Group: group, ID: id})
	return r.Released, err
}

// Holders returns the status of group; Held tells whether id (may be "")
// holds a slot.
func (h *EtcdHelper) Holders(ctx context.Context, group, id string) (Status, error) {
	if err := CheckName("group", group); err != nil {
		return Status{}, err
	}
	r, err := h.run(ctx, HelperRequest{Op: OpHolders, Group: group, ID: id})
	return r.Status, err
}

// SetSlots stores N for group (etcd.Semaphore.SetSlots).
func (h *EtcdHelper) SetSlots(ctx context.Context, group string, n int) error {
	if err := CheckName("group", group); err != nil {
		return err
	}
	_, err := h.run(ctx, HelperRequest{Op: OpSetSlots, Group: group, Slots: n})
	return err
}

// run runs one request through the helper.
func (h *EtcdHelper) run(ctx context.Context, req HelperRequest) (HelperResponse, error) {
	var resp HelperResponse
	req.Config = h.Config
	in, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	path := h.Path
	if path == "" { // hostd could not name its own directory: look in $PATH
		path = HelperName
	}
	cmd := proc.Command(ctx, path)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &stdout, &stderr
	runErr := cmd.Run()
	if err := ctx.Err(); err != nil {
		return resp, errdefs.Wrap(errdefs.ErrCancelled, fmt.Errorf("fleet lock: %s: %w", req.Op, err))
	}
	if errors.Is(runErr, exec.ErrNotFound) || errors.Is(runErr, fs.ErrNotExist) {
		return resp, errdefs.Errorf(errdefs.ErrFailed, "fleet lock: the etcd helper %s: %w: install it beside hostd (make install puts it in /usr/libexec)", path, runErr)
	}
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return resp, fmt.Errorf("fleet lock: the etcd helper %s gave no answer (%v: %s): %w", path, runErr, strings.TrimSpace(stderr.String()), err)
	}
	if resp.Error != nil {
		return resp, resp.Error.err(resp.Status)
	}
	return resp, nil
}
