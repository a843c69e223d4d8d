package solv

import (
	"errors"
	"strings"
	"testing"
)

// TestSolveChangeErase: removing an installed package nothing needs solves
// to no change to add; removing one that is not installed is a problem
// naming it.
func TestSolveChangeErase(t *testing.T) {
	f := newFixture(t)
	p, _ := f.pool(t, "")
	add, err := p.SolveChange(nil, []string{"base"})
	if err != nil || len(add) != 0 {
		t.Fatalf("erase base: %v %v", names(add), err)
	}
	p2, _ := f.pool(t, "")
	_, err = p2.SolveChange(nil, []string{"nosuch"})
	var pe *ProblemError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Fatalf("erase nosuch: %v", err)
	}
}
