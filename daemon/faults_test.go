//go:build !faultpoints

package daemon

import (
	"strings"
	"testing"
)

// A production build has no fault points: an armed fault is refused, so a
// production hostd can never be told to crash or fail on purpose.
func TestFaultsRefusedInProduction(t *testing.T) {
	for _, spec := range []string{"upgrade/pull=kill", "*/*=error", "junk"} {
		f, err := ParseFaults(spec)
		if err == nil || f != nil || !strings.Contains(err.Error(), "-tags faultpoints") {
			t.Errorf("ParseFaults(%q) = %v, %v; want a refusal naming the build tag", spec, f, err)
		}
	}
	if f, err := ParseFaults(""); err != nil || f != nil {
		t.Errorf(`ParseFaults("") = %v, %v; want nil, nil`, f, err)
	}
	// The hooks of the production build change nothing.
	var f *Faults
	if err := f.finish(nil, nil); err != nil {
		t.Errorf("finish: %v", err)
	}
}
