package e2e

import (
	"strings"
	"testing"
)

// TestStageNeedsBootedHost is issue 15 item 7 on a sysroot that is not
// booted: upgrade, deploy and rebase with --stage are refused with a plain
// reason before anything is pulled, and nothing changes.
func TestStageNeedsBootedHost(t *testing.T) {
	e := newEnv(t)
	e.publish("2")
	deps, loader, entries := e.ostreeStatus(), e.loaderTarget(), e.bootEntries()
	for _, args := range [][]string{
		{"upgrade", "--stage"},
		{"upgrade", "--stage", "--lock-finalization"},
		{"deploy", "--stage", "version=2"},
		{"rebase", "--stage", refspec},
	} {
		r := e.hostctl(args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "staging needs a booted host") {
			t.Fatalf("hostctl %s on a sysroot that is not booted: exit %d, want the refusal \"staging needs a booted host\"\nstdout:\n%s\nstderr:\n%s",
				strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		}
		e.unchanged("hostctl "+strings.Join(args, " "), deps, loader, entries)
	}
	if r := e.hostctl("upgrade", "--lock-finalization"); r.Code == 0 || !strings.Contains(r.Stderr, "lock-finalization needs stage") {
		t.Fatalf("upgrade --lock-finalization without --stage: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	e.unchanged("upgrade --lock-finalization", deps, loader, entries)
	// Without --stage the same upgrade deploys.
	e.mustHostctl("upgrade")
	if st := e.status(); st.Deployments[0].Version != "2" || st.Deployments[0].Staged {
		t.Fatalf("upgrade after the refusals: default %+v, want version 2, not staged", st.Deployments[0])
	}
}
