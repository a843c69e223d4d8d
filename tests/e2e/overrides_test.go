package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/dbus"
)

// checkRemoved fails unless the deployment lacks hostos-tools: its files are
// gone, rpm says it is not installed, and the rest of the base is there.
func (e *env) checkToolsRemoved(what string, d dbus.Deployment, dep string) {
	e.t.Helper()
	for _, f := range []string{"usr/bin/hostos-hello", "usr/lib/hostos/hello.sh", "usr/lib/hostos", "usr/share/doc/hostos-tools"} {
		if _, err := os.Lstat(filepath.Join(dep, f)); err == nil {
			e.t.Errorf("%s: %s of the removed hostos-tools is still in the deployment", what, f)
		}
	}
	if out, err := e.rpmQuery(dep, "hostos-tools"); err == nil || !strings.Contains(out, "not installed") {
		e.t.Errorf("%s: rpm -q hostos-tools: %v\n%s", what, err, out)
	}
	if out, err := e.rpmQuery(dep, "hostos-filesystem", "hostos-kernel"); err != nil {
		e.t.Errorf("%s: the rest of the base is gone: %v\n%s", what, err, out)
	}
	if _, err := os.Stat(filepath.Join(dep, "usr/bin")); err != nil {
		e.t.Errorf("%s: a directory other packages own was removed: %v", what, err)
	}
	if !slices.Equal(d.RemovedBasePackages, []string{"hostos-tools"}) {
		e.t.Errorf("%s: status removed-base-packages %v", what, d.RemovedBasePackages)
	}
}

// TestOverrideRemove: `override remove` takes a base package out of the
// tree (files and rpmdb), records it in the origin's [overrides], shows it
// in status, keeps it removed across an upgrade, refuses a removal another
// base package needs with nothing changed, and `override reset` and
// `reset --overrides` bring it back.
func TestOverrideRemove(t *testing.T) {
	e := newEnv(t)
	base1 := e.status().Deployments[0].Checksum

	out := e.mustHostctl("override", "remove", "hostos-tools")
	d, dep := e.defaultDeployment()
	e.checkToolsRemoved("override remove", d, dep)
	if d.BaseChecksum != base1 || d.Checksum == base1 {
		t.Errorf("override remove: commit %s base %s, want a local commit on %s\n%s", d.Checksum, d.BaseChecksum, base1, out)
	}
	if o := e.originOf(d); !strings.Contains(o, "[overrides]") || !strings.Contains(o, "remove=hostos-tools;") {
		t.Errorf("origin after override remove:\n%s", o)
	}
	if human := e.mustHostctl("status"); !strings.Contains(strings.SplitN(human, "\n\n", 2)[0], "RemovedBasePackages: hostos-tools") {
		t.Errorf("status after override remove:\n%s", human)
	}
	if js := e.mustHostctl("status", "--json"); !strings.Contains(js, `"removed-base-packages": [`) && !strings.Contains(js, `"removed-base-packages":["hostos-tools"]`) {
		t.Errorf("status --json lacks removed-base-packages:\n%s", js)
	}
	if r := e.hostctl("override", "remove", "hostos-tools"); r.Code == 0 || !strings.Contains(r.Stderr, "already removed") {
		t.Errorf("override remove again: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// An upgrade keeps it removed, on the new base.
	e.publish("2")
	e.mustHostctl("upgrade")
	d, dep = e.defaultDeployment()
	if d.Version != "2" {
		t.Fatalf("upgrade: version %q", d.Version)
	}
	e.checkToolsRemoved("upgrade", d, dep)
	if v := e.rpmQAOf(d)["hostos-filesystem.noarch"]; v != "2-1" {
		t.Errorf("upgrade: hostos-filesystem %q, want the new base's 2-1", v)
	}

	// A removal that breaks a base package's dependency is refused, naming both.
	before := e.snapshot()
	r := e.hostctl("override", "remove", "hostos-filesystem")
	if r.Code == 0 || !strings.Contains(r.Stderr, "hostos-filesystem") || !strings.Contains(r.Stderr, "hostos-kernel") {
		t.Fatalf("override remove hostos-filesystem: exit %d, want a refusal naming hostos-kernel:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if after := e.snapshot(); !slices.Equal(after.deployments, before.deployments) || after.refs != before.refs || len(after.scratch) > 0 {
		t.Fatalf("the refused removal changed the sysroot:\nbefore %+v\nafter  %+v", before, after)
	}
	if r := e.hostctl("override", "remove", "no-such-package"); r.Code == 0 || !strings.Contains(r.Stderr, "no-such-package") {
		t.Errorf("override remove of a package not in the base: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// override reset brings it back: the plain base again.
	e.mustHostctl("override", "reset", "hostos-tools")
	d, dep = e.defaultDeployment()
	if q, err := e.rpmQuery(dep, "hostos-tools"); err != nil || !strings.Contains(q, "hostos-tools-2-1") {
		t.Errorf("override reset: rpm -q hostos-tools: %v\n%s", err, q)
	}
	if _, err := os.Stat(filepath.Join(dep, "usr/bin/hostos-hello")); err != nil {
		t.Errorf("override reset: %v", err)
	}
	if len(d.RemovedBasePackages) != 0 || d.BaseChecksum != "" {
		t.Errorf("override reset: removed %v base %q, want the plain base", d.RemovedBasePackages, d.BaseChecksum)
	}
	if o := e.originOf(d); strings.Contains(o, "overrides") {
		t.Errorf("origin after override reset:\n%s", o)
	}

	// reset --overrides drops them too.
	e.mustHostctl("override", "remove", "hostos-tools")
	e.mustHostctl("reset", "--overrides")
	d, dep = e.defaultDeployment()
	if _, err := os.Stat(filepath.Join(dep, "usr/bin/hostos-hello")); err != nil || len(d.RemovedBasePackages) != 0 {
		t.Errorf("reset --overrides: removed %v, hostos-hello: %v", d.RemovedBasePackages, err)
	}
	e.fsck()
}
