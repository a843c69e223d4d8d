package solv

import (
	"errors"
	"testing"
)

// TestSolveOverridesReplace: a base package is replaced by a newer build
// from the repository (reported old -> new, not as a forbidden change);
// replacing a package the base lacks is refused naming it; replacing with
// the build the base has is inactive.
func TestSolveOverridesReplace(t *testing.T) {
	f := newFixture(t)
	p, _ := f.pool(t, "")
	add, rep, err := p.SolveOverrides(nil, nil, []Replace{{Spec: "base"}})
	if err != nil || len(rep) != 1 || rep[0].String() != "base-1.0-1.noarch -> base-2.0-1.noarch" || len(add) != 1 || add[0].NEVRA() != "base-2.0-1.noarch" {
		t.Fatalf("replace base: add %v replaced %v err %v", names(add), rep, err)
	}
	p2, _ := f.pool(t, "")
	_, _, err = p2.SolveOverrides(nil, nil, []Replace{{Spec: "applib"}})
	var nb *NotInBaseError
	if !errors.As(err, &nb) || nb.Name != "applib" {
		t.Fatalf("replace applib (not in the base): %v", err)
	}
	p3, _ := f.pool(t, "")
	add, rep, err = p3.SolveOverrides(nil, nil, []Replace{{Spec: "base-1.0-1.noarch"}})
	if err != nil || len(add) != 0 || len(rep) != 0 {
		t.Fatalf("replace with the base's own build: add %v replaced %v err %v", names(add), rep, err)
	}
}
