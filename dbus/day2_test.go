package dbus

import (
	"context"
	"reflect"
	"testing"

	"github.com/hostctl/hostctl/errdefs"
)

// recDiff is the test engine's Diff: a fixed diff between "0" and "1",
// NotFound for anything else.
func recDiff(from, to string) (PackageDiff, error) {
	if from != "0" || to != "1" {
		return PackageDiff{}, errdefs.Errorf(errdefs.ErrNotFound, "no deployment %q", from)
	}
	return PackageDiff{From: "os-aaa.0", To: "os-bbb.0", FromChecksum: "aaa", ToChecksum: "bbb",
		Added:      []DiffPackage{{Name: "hello-layer", EVR: "1.0-1", Arch: "x86_64", NEVRA: "hello-layer-1.0-1.x86_64"}},
		Removed:    []DiffPackage{},
		Upgraded:   []DiffChange{{Name: "base-files", Arch: "noarch", From: "1-1", To: "2-1"}, {Name: "lib", Arch: "x86_64", From: "1:1.0-1", To: "1:1.1-1"}},
		Downgraded: []DiffChange{}}, nil
}

// TestDiffRoundTrip checks that a diff crosses the bus intact (every field,
// every entry) and that the engine's errors keep their names.
func TestDiffRoundTrip(t *testing.T) {
	_, _, addr := serve(t)
	c := NewClient(dial(t, addr))
	ctx := context.Background()
	got, err := c.Diff(ctx, "0", "1")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := recDiff("0", "1")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff over the bus:\n got %+v\nwant %+v", got, want)
	}
	if _, err := c.Diff(ctx, "nope", ""); ErrorName(err) != ErrNotFound {
		t.Fatalf("Diff of an unknown deployment: %v (%s), want %s", err, ErrorName(err), ErrNotFound)
	}
	err = dial(t, addr).Object(BusName, HostPath).Call(HostInterface+".Diff", 0, uint32(0), "1").Err
	if busErrorName(err) != ErrInvalidArgument {
		t.Fatalf("Diff with a number: %v, want InvalidArgument", err)
	}
}

// TestResetReachesEngine checks that Reset begins a "reset" transaction
// with its options.
func TestResetReachesEngine(t *testing.T) {
	_, eng, addr := serve(t)
	c := NewClient(dial(t, addr))
	if _, err := c.Reset(context.Background(), map[string]any{"kargs": true}); err != nil {
		t.Fatal(err)
	}
	reqs := eng.requests()
	if len(reqs) != 1 || reqs[0].Kind != "reset" || !reqs[0].Options.Bool("kargs") {
		t.Fatalf("requests: %+v, want one reset with kargs", reqs)
	}
}
