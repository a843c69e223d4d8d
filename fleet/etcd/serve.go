package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/fleet"
)

// Serve answers one fleet.HelperRequest read from in with a
// fleet.HelperResponse written to out: the helper side of fleet.EtcdHelper.
// Errors of the operation travel in the response; Serve's own error is a
// response that could not be written.
func Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	resp := serve(ctx, in)
	return json.NewEncoder(out).Encode(resp)
}

func serve(ctx context.Context, in io.Reader) fleet.HelperResponse {
	var req fleet.HelperRequest
	fail := func(err error) fleet.HelperResponse {
		return fleet.HelperResponse{Error: fleet.NewHelperError(err)}
	}
	dec := json.NewDecoder(io.LimitReader(in, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fail(errdefs.Errorf(errdefs.ErrInvalidArgument, "fleet helper request: %w", err))
	}
	s, err := New(req.Config)
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	var resp fleet.HelperResponse
	switch req.Op {
	case fleet.OpAcquire:
		resp.Status, err = s.Acquire(ctx, req.Group, req.ID)
	case fleet.OpRelease:
		resp.Released, err = s.Release(ctx, req.Group, req.ID)
	case fleet.OpHolders:
		resp.Status, err = s.Holders(ctx, req.Group, req.ID)
	case fleet.OpSetSlots:
		err = s.SetSlots(ctx, req.Group, req.Slots)
	default:
		err = errdefs.Errorf(errdefs.ErrInvalidArgument, "fleet helper: unknown operation %q", req.Op)
	}
	if err != nil {
		resp.Error = fleet.NewHelperError(err)
	}
	return resp
}

// Main is the helper executable's main: one request on standard input, its
// answer on standard output. It returns the exit code.
func Main(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) int {
	if err := Serve(ctx, stdin, stdout); err != nil {
		fmt.Fprintln(stderr, "hostd-etcd:", err)
		return 1
	}
	return 0
}
