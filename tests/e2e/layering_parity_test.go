package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hostctl/hostctl/tests/fixture"
)

// publishBaseWithout commits version 2 of the HostOS tree without package
// pkg (its files and its rpmdb entry) on the remote's stable ref, as a
// release that drops a package would, and returns the commit.
func (e *env) publishBaseWithout(pkg string, files ...string) string {
	e.t.Helper()
	tree := filepath.Join(e.t.TempDir(), "tree")
	if err := e.os.Checkout(e.ctx, "2", tree); err != nil {
		e.t.Fatal(err)
	}
	if out, err := exec.Command("rpm", "--root", tree, "--dbpath", fixture.RPMDBPath, "-e", "--justdb", "--nodeps", "--noscripts", pkg).CombinedOutput(); err != nil {
		e.t.Fatalf("rpm -e --justdb %s: %v\n%s", pkg, err, out)
	}
	for _, f := range files {
		if err := os.RemoveAll(filepath.Join(tree, f)); err != nil {
			e.t.Fatal(err)
		}
	}
	c, err := fixture.CommitTree(e.ctx, e.repo, tree, fixture.CommitOptions{Ref: fixture.StableRef, Version: "2-without-" + pkg})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := fixture.RegenerateSummary(e.repo); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// TestPkgInactiveRequest: a request the base already provides is refused,
// naming the package and its provider, with nothing changed; with
// --allow-inactive it is recorded as an inactive request (status shows it,
// nothing is layered) and becomes active, layered, on a base that drops it.
func TestPkgInactiveRequest(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	e.mustHostctl("refresh-md")

	for _, req := range [][]string{{"hostos-tools"}, {"hello-layer", "hostos-tools"}, {"filesystem"}} {
		before := e.snapshot()
		r := e.hostctl(append([]string{"pkg-add"}, req...)...)
		want := `"` + req[len(req)-1] + `" is already provided by the base`
		if r.Code == 0 || !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "--allow-inactive") {
			t.Fatalf("pkg-add %v: exit %d, want a refusal with %q:\n%s%s", req, r.Code, want, r.Stdout, r.Stderr)
		}
		provider := "hostos-tools-1-1.noarch"
		if req[0] == "filesystem" {
			provider = "hostos-filesystem-1-1.noarch"
		}
		if !strings.Contains(r.Stderr, provider) {
			t.Errorf("pkg-add %v: the refusal does not name the provider %s:\n%s", req, provider, r.Stderr)
		}
		if after := e.snapshot(); !slices.Equal(after.deployments, before.deployments) || after.refs != before.refs || len(after.scratch) > 0 {
			t.Fatalf("pkg-add %v: the refusal changed the sysroot:\nbefore %+v\nafter  %+v", req, before, after)
		}
		if h := e.lastHistory(); h.State != "failed" || !strings.Contains(h.Error, "already provided by the base") {
			t.Errorf("pkg-add %v: history %+v", req, h)
		}
	}

	out := e.mustHostctl("pkg-add", "--allow-inactive", "hostos-tools")
	if !strings.Contains(out, "Inactive requests (provided by the base): hostos-tools") {
		t.Errorf("pkg-add --allow-inactive output:\n%s", out)
	}
	d := e.status().Deployments[0]
	if !slices.Equal(d.Packages, []string{"hostos-tools"}) || !slices.Equal(d.Inactive, []string{"hostos-tools"}) || len(d.Layered) != 0 || len(d.Missing) != 0 {
		t.Fatalf("after pkg-add --allow-inactive: packages %v inactive %v layered %v missing %v", d.Packages, d.Inactive, d.Layered, d.Missing)
	}
	human := e.mustHostctl("status")
	if !strings.Contains(human, "InactiveRequests: hostos-tools") || strings.Contains(human, "LayeredPackages") {
		t.Errorf("status after pkg-add --allow-inactive:\n%s", human)
	}
	_, dep := e.defaultDeployment()
	if got := readFile(t, filepath.Join(dep, "usr/lib/hostos/hello.sh")); got != "HOSTOS_TOOLS_VERSION=1\n" {
		t.Errorf("the base's hostos-tools was changed: hello.sh %q", got)
	}
	if r := e.hostctl("pkg-add", "--allow-inactive", "hostos-tools"); r.Code == 0 || !strings.Contains(r.Stderr, "already requested") {
		t.Errorf("asking again: exit %d %s", r.Code, r.Stderr)
	}

	// A new base drops hostos-tools: the upgrade layers it from the repo.
	newBase := e.publishBaseWithout("hostos-tools", "usr/bin/hostos-hello", "usr/lib/hostos", "usr/share/doc/hostos-tools")
	e.mustHostctl("upgrade")
	d, dep = e.defaultDeployment()
	if d.BaseChecksum != newBase || !slices.Equal(d.Packages, []string{"hostos-tools"}) || len(d.Inactive) != 0 ||
		!slices.Equal(d.Layered, []string{"hostos-tools-99-1.noarch"}) || len(d.Missing) != 0 {
		t.Fatalf("after the base dropped hostos-tools: base %s (want %s) packages %v inactive %v layered %v missing %v",
			d.BaseChecksum, newBase, d.Packages, d.Inactive, d.Layered, d.Missing)
	}
	if q, err := e.rpmQuery(dep, "hostos-tools"); err != nil || !strings.Contains(q, "hostos-tools-99-1.noarch") {
		t.Fatalf("rpm -q hostos-tools in the new deployment: %v\n%s", err, q)
	}
	if human := e.mustHostctl("status"); !strings.Contains(human, "LayeredPackages: hostos-tools") || strings.Contains(strings.SplitN(human, "\n\n", 2)[0], "InactiveRequests") {
		t.Errorf("status after the request became active:\n%s", human)
	}
	e.fsck()
}

// TestPkgStatusMatchesTree: status reports the packages a deployment's
// commit really layers, and names any request the commit lacks, whatever
// way the deployment was made (pkg-add, deploy VERSION).
func TestPkgStatusMatchesTree(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	e.mustHostctl("pkg-add", "hello-layer")
	d, dep := e.defaultDeployment()
	if !slices.Equal(d.Layered, []string{"hello-layer-1.0-1.noarch", "hello-lib-1.1-1.noarch"}) || len(d.Missing) != 0 || len(d.Inactive) != 0 {
		t.Fatalf("after pkg-add: layered %v missing %v inactive %v", d.Layered, d.Missing, d.Inactive)
	}
	if _, err := e.rpmQuery(dep, "hello-layer"); err != nil {
		t.Fatalf("hello-layer is not in the layered deployment's rpmdb: %v", err)
	}
	e.publish("2")
	e.mustHostctl("deploy", "2")
	d, dep = e.defaultDeployment()
	_, qerr := e.rpmQuery(dep, "hello-layer")
	inTree := qerr == nil
	missing := slices.Contains(d.Missing, "hello-layer")
	if inTree == missing {
		t.Fatalf("after deploy 2: hello-layer in the tree %v, but status says missing %v (layered %v)", inTree, missing, d.Layered)
	}
	human := e.mustHostctl("status")
	first := strings.SplitN(human, "\n\n", 2)[0]
	if missing && !strings.Contains(first, "NotLayered: hello-layer") {
		t.Errorf("status hides that the default deployment lacks hello-layer:\n%s", human)
	}
	if inTree && !slices.Contains(d.Layered, "hello-layer-1.0-1.noarch") {
		t.Errorf("after deploy 2: layered %v", d.Layered)
	}
	t.Logf("deploy 2: hello-layer in the tree: %v; status: layered %v missing %v", inTree, d.Layered, d.Missing)
}

// TestPkgUsers: a %pre that only creates a user and group, and a sysusers.d
// file, give the new tree those users (in usr/lib/passwd and usr/lib/group,
// which the /etc merge does not touch) before the payloads are imported, so
// the files they own keep their owner; the base keeps its users.
func TestPkgUsers(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	_, baseDir := e.defaultDeployment()
	basePasswd := readFile(t, filepath.Join(baseDir, "usr/etc/passwd"))
	out := e.mustHostctl("pkg-add", "hello-users", "hello-sysusers")
	if !strings.Contains(out, "user hellod") || !strings.Contains(out, "user hellosys") {
		t.Errorf("pkg-add output does not name the users it created:\n%s", out)
	}
	_, dep := e.defaultDeployment()
	ids := func(file string) map[string][]string {
		m := map[string][]string{}
		for _, l := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dep, file))), "\n") {
			f := strings.Split(l, ":")
			m[f[0]] = f
		}
		return m
	}
	pw, gr := ids("usr/lib/passwd"), ids("usr/lib/group")
	for _, c := range []struct{ file, user, group string }{
		{"usr/share/hello-users/state", "hellod", "hellod"},
		{"usr/share/hello-sysusers/data", "hellosys", "hellosysgrp"},
	} {
		u, g := pw[c.user], gr[c.group]
		if len(u) != 7 || len(g) < 3 {
			t.Fatalf("%s/%s not in usr/lib/passwd and usr/lib/group:\n%v\n%v", c.user, c.group, pw, gr)
		}
		st, err := os.Lstat(filepath.Join(dep, c.file))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if fmt.Sprint(sys.Uid) != u[2] || fmt.Sprint(sys.Gid) != g[2] || st.Mode().Perm() != 0o640 {
			t.Errorf("/%s: owner %d:%d mode %v, want %s:%s (%s:%s) 0640", c.file, sys.Uid, sys.Gid, st.Mode().Perm(), u[2], g[2], c.user, c.group)
		}
	}
	if u := pw["hellod"]; u[4] != "Hello daemon" || u[5] != "/var/lib/hellod" || u[6] != "/sbin/nologin" || u[3] != gr["hellod"][2] {
		t.Errorf("hellod: %v", u)
	}
	if g := gr["hellosysgrp"]; g[2] != "950" {
		t.Errorf("hellosysgrp: %v, want gid 950 from the sysusers.d line", g)
	}
	if u := pw["hellosys"]; u[4] != "Hello sysusers" || u[5] != "/var/lib/hellosys" {
		t.Errorf("hellosys: %v", u)
	}
	if got := readFile(t, filepath.Join(dep, "usr/etc/passwd")); got != basePasswd {
		t.Errorf("usr/etc/passwd changed:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(baseDir, "usr/lib/passwd")); err == nil {
		t.Errorf("the base deployment got a usr/lib/passwd")
	}
	// Warm, from the package cache: the users are made again, the owners are the same.
	e.mustHostctl("pkg-remove", "hello-users")
	e.mustHostctl("pkg-add", "hello-users")
	_, dep = e.defaultDeployment()
	if got := ids("usr/lib/passwd")["hellod"]; len(got) != 7 {
		t.Errorf("re-layered from the cache: hellod missing from usr/lib/passwd")
	}
	e.fsck()
}

// TestPkgUsersKeepIDs: an account the host already has (here made by an
// administrator in /etc before the package arrives) keeps its uid and gid
// when a package creates it, so the files the package owns belong to the
// same user the host knows.
func TestPkgUsersKeepIDs(t *testing.T) {
	e := newEnv(t)
	srv := e.serveRPMs(nil, nil, nil)
	e.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	_, dep := e.defaultDeployment()
	for file, line := range map[string]string{"passwd": "hellod:x:1234:1235:Made by hand:/var/lib/hellod:/sbin/nologin", "group": "hellod:x:1235:"} {
		p := filepath.Join(dep, "etc", file)
		data := readFile(t, p) + line + "\n"
		if err := os.WriteFile(p+".new", []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
	}
	e.mustHostctl("pkg-add", "hello-users")
	_, dep = e.defaultDeployment()
	if pw := readFile(t, filepath.Join(dep, "usr/lib/passwd")); !strings.Contains(pw, "hellod:x:1234:1235:") {
		t.Fatalf("usr/lib/passwd does not keep the host's uid 1234 and gid 1235 of hellod:\n%s", pw)
	}
	st, err := os.Lstat(filepath.Join(dep, "usr/share/hello-users/state"))
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 1234 || sys.Gid != 1235 {
		t.Fatalf("/usr/share/hello-users/state is owned by %d:%d, want the host's hellod 1234:1235", sys.Uid, sys.Gid)
	}
}
