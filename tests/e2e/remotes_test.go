package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// remoteList is `hostctl remote list --json`.
func (e *env) remoteList() map[string]dbus.Remote {
	e.t.Helper()
	var rs []dbus.Remote
	out := e.mustHostctl("remote", "list", "--json")
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		e.t.Fatalf("remote list --json: %v\n%s", err, out)
	}
	m := map[string]dbus.Remote{}
	for _, r := range rs {
		m[r.Name] = r
	}
	return m
}

// gpgSign signs commit in the served repo with key, as `ostree gpg-sign` does for a release.
func (e *env) gpgSign(key *fixture.SigningKey, commit string) {
	e.t.Helper()
	if out, err := exec.Command("ostree", "gpg-sign", "--repo="+e.repo, "--gpg-homedir="+key.Home, commit, key.Name).CombinedOutput(); err != nil {
		e.t.Fatalf("ostree gpg-sign: %v\n%s", err, out)
	}
}

func newKey(t *testing.T, e *env, name string) *fixture.SigningKey {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		harness.Skip(t, "gpg is not installed (apt-get install gnupg): signed remotes cannot be tested")
	}
	k, err := fixture.NewSigningKey(e.ctx, t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSignedRemote: a remote added through hostd verifies signatures by
// default; an unsigned commit and a commit signed by another key are refused
// before anything is deployed, naming the remote; the commit signed with
// the imported key deploys. Unprivileged callers may list but not change.
func TestSignedRemote(t *testing.T) {
	e := newEnv(t)
	good := newKey(t, e, "HostOS Release <release@example.com>")
	bad := newKey(t, e, "Somebody Else <else@example.com>")
	keyFile := filepath.Join(t.TempDir(), "release.asc")
	if err := os.WriteFile(keyFile, good.Public, 0o644); err != nil {
		t.Fatal(err)
	}

	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "remote", "add", "evil", "http://127.0.0.1:1/"); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrAccessDenied) {
		t.Fatalf("remote add as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "remote", "delete", remote); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrAccessDenied) {
		t.Fatalf("remote delete as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := harness.Hostctl(e.ctx, hostctlBin, e.bus, 65534, "remote", "list"); r.Code != 0 || !strings.Contains(r.Stdout, remote) {
		t.Fatalf("remote list as nobody: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if _, ok := e.remoteList()["evil"]; ok {
		t.Fatal("a refused remote add left the remote")
	}

	// A remote of the same name is refused without --replace.
	if r := e.hostctl("remote", "add", remote, e.srv.URL()); r.Code != 1 || !strings.Contains(r.Stderr, "already exists") {
		t.Fatalf("remote add of an existing name: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// A bad URL and a bad name are refused.
	for _, args := range [][]string{{"x", "ftp://example.com/"}, {"a/b", e.srv.URL()}, {"x", "not a url"}} {
		if r := e.hostctl(append([]string{"remote", "add"}, args...)...); r.Code != 1 || !strings.Contains(r.Stderr, dbus.ErrInvalidArgument) {
			t.Fatalf("remote add %v: exit %d\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
	}

	out := e.mustHostctl("remote", "add", "--replace", remote, e.srv.URL(), "--gpg-import", keyFile)
	if !strings.Contains(out, "1 imported key") {
		t.Fatalf("remote add --gpg-import:\n%s", out)
	}
	if r := e.remoteList()[remote]; !r.GPGVerify || r.URL != e.srv.URL() {
		t.Fatalf("remote after add: %+v, want gpg-verify on and URL %s", r, e.srv.URL())
	}
	// Without --gpg-import or --no-gpg-verify a remote verifies too.
	e.mustHostctl("remote", "add", "plain", e.srv.URL())
	if r := e.remoteList()["plain"]; !r.GPGVerify {
		t.Fatalf("a remote added without options: %+v, want gpg-verify on", r)
	}
	e.mustHostctl("remote", "delete", "plain")
	// libostree's own config agrees.
	if out, err := exec.Command("ostree", "remote", "show-url", "--repo="+filepath.Join(e.sysroot, "ostree", "repo"), remote).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != e.srv.URL() {
		t.Fatalf("ostree remote show-url: %v %s", err, out)
	}

	before := e.hostSnapshot()
	e.publish("2")
	refusal := ""
	for _, signer := range []*fixture.SigningKey{nil, bad} {
		what := "unsigned"
		if signer != nil {
			what = "signed by another key"
			e.gpgSign(signer, e.os.Commit("2"))
		}
		r := e.hostctl("upgrade")
		if r.Code != 1 || !strings.Contains(r.Stderr, "remote '"+remote+"'") || !strings.Contains(r.Stderr, "gpg-verify") || !strings.Contains(r.Stderr, dbus.ErrSignatureInvalid) {
			t.Fatalf("upgrade to a commit %s: exit %d\n%s%s", what, r.Code, r.Stdout, r.Stderr)
		}
		refusal = r.Stderr
		if !strings.Contains(r.Stderr, "HostOS Release") {
			t.Fatalf("upgrade to a commit %s does not name the trusted key:\n%s", what, r.Stderr)
		}
		if after := e.hostSnapshot(); !slices.Equal(before, after) {
			t.Fatalf("a refused upgrade (%s) changed the host:\nbefore %v\nafter %v", what, before, after)
		}
	}
	e.gpgSign(good, e.os.Commit("2"))
	e.mustHostctl("upgrade")
	if got := versions(e.status()); !slices.Equal(got, []string{"2", "1"}) {
		t.Fatalf("after the signed upgrade: %v", got)
	}
	// libostree shows the good signature on the new default deployment.
	e.waitIdle()
	out2, _ := exec.Command("ostree", "admin", "status", "--sysroot="+e.sysroot).CombinedOutput()
	if !strings.Contains(string(out2), e.os.Commit("2")) || !strings.Contains(string(out2), `Good signature from "HostOS Release`) {
		t.Fatalf("ostree admin status does not show the signed deployment:\n%s", out2)
	}
	if st := e.status(); st.Deployments[0].Checksum != e.os.Commit("2") {
		t.Fatalf("default deployment %s, want %s", st.Deployments[0].Checksum, e.os.Commit("2"))
	}
	t.Logf("refusal of a commit signed by another key:\n%s", refusal)
}

// TestRemotesOutsideHostd: remotes added by `ostree remote add` or a file in
// /etc/ostree/remotes.d are seen by the next transaction without restarting
// hostd; a deleted remote shows in status and refuses upgrade.
func TestRemotesOutsideHostd(t *testing.T) {
	e := newEnv(t)
	repo := filepath.Join(e.sysroot, "ostree", "repo")
	if out, err := exec.Command("ostree", "remote", "add", "--repo="+repo, "--no-gpg-verify", "mirror", e.srv.URL()).CombinedOutput(); err != nil {
		t.Fatalf("ostree remote add: %v\n%s", err, out)
	}
	dir := filepath.Join(e.sysroot, "etc", "ostree", "remotes.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "[remote \"cockpit\"]\nurl=" + e.srv.URL() + "\ngpg-verify=false\n"
	if err := os.WriteFile(filepath.Join(dir, "cockpit.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := e.remoteList()
	for _, n := range []string{remote, "mirror", "cockpit"} {
		if _, ok := rs[n]; !ok {
			t.Fatalf("remote list lacks %s: %v", n, rs)
		}
	}
	e.publish("2")
	e.mustHostctl("rebase", "cockpit:"+fixture.StableRef)
	st := e.status()
	if got := versions(st); !slices.Equal(got, []string{"2", "1"}) || st.Deployments[0].Origin != "cockpit:"+fixture.StableRef || st.Deployments[0].RemoteError != "" {
		t.Fatalf("after rebase to a remotes.d remote: %v %+v", got, st.Deployments[0])
	}

	// Its URL changed behind hostd's back: the next transaction uses the
	// new one (a port nothing listens on), then the old one again.
	dead := "[remote \"cockpit\"]\nurl=http://127.0.0.1:1/\ngpg-verify=false\n"
	if err := os.WriteFile(filepath.Join(dir, "cockpit.conf"), []byte(dead), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.hostctl("upgrade", "--check"); r.Code != 1 || !strings.Contains(r.Stderr, "127.0.0.1:1") {
		t.Fatalf("upgrade --check after the remote's URL changed to a dead one: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, "cockpit.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.hostctl("upgrade", "--check"); r.Code != 77 {
		t.Fatalf("upgrade --check with the URL back: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// The remote goes away behind hostd's back: status says so, upgrade is refused.
	if err := os.Remove(filepath.Join(dir, "cockpit.conf")); err != nil {
		t.Fatal(err)
	}
	// hostd's status watch notices without any transaction.
	waitUntil(t, 10e9, "status to show the missing remote", func() bool {
		return e.status().Deployments[0].RemoteError == "Remote 'cockpit' not found"
	})
	before := e.hostSnapshot()
	r := e.hostctl("upgrade")
	if r.Code != 1 || !strings.Contains(r.Stderr, "Remote 'cockpit' not found") {
		t.Fatalf("upgrade with the remote gone: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if after := e.hostSnapshot(); !slices.Equal(before, after) {
		t.Fatalf("a refused upgrade changed the host:\nbefore %v\nafter %v", before, after)
	}
	if human := e.mustHostctl("status"); !strings.Contains(human, "Remote 'cockpit' not found") || !strings.Contains(human, "Version: 2") {
		t.Fatalf("status with the remote gone:\n%s", human)
	}
	if d := e.status().Deployments[1]; d.RemoteError != "" {
		t.Fatalf("the deployment following %s is marked: %q", remote, d.RemoteError)
	}

	// Deleting through hostd does the same; adding it back makes upgrade work again.
	e.mustHostctl("rebase", remote+":"+fixture.StableRef)
	e.mustHostctl("remote", "delete", "mirror")
	if _, ok := e.remoteList()["mirror"]; ok {
		t.Fatal("mirror still listed after remote delete")
	}
	if r := e.hostctl("remote", "delete", "mirror"); r.Code != 1 || !strings.Contains(r.Stderr, "Remote 'mirror' not found") {
		t.Fatalf("deleting a missing remote: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	e.mustHostctl("remote", "delete", remote)
	if d := e.status().Deployments[0]; d.RemoteError != "Remote '"+remote+"' not found" {
		t.Fatalf("status after remote delete: %+v", d)
	}
	if r := e.hostctl("upgrade"); r.Code != 1 || !strings.Contains(r.Stderr, "Remote '"+remote+"' not found") {
		t.Fatalf("upgrade after remote delete: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	e.mustHostctl("remote", "add", "--no-gpg-verify", remote, e.srv.URL())
	if d := e.status().Deployments[0]; d.RemoteError != "" {
		t.Fatalf("status after adding the remote back: %+v", d)
	}
	e.publish("3")
	e.mustHostctl("upgrade")
	if got := e.status().Deployments[0].Version; got != "3" {
		t.Fatalf("upgrade after adding the remote back: version %s", got)
	}
}

// TestCachedUpdate: `upgrade --check` records what it found as the
// CachedUpdate property; status shows it (also after hostd restarts) until
// it is deployed; a check that finds nothing clears it.
func TestCachedUpdate(t *testing.T) {
	e := newEnv(t)
	if st := e.status(); st.CachedUpdate != nil {
		t.Fatalf("a fresh host has a cached update: %+v", st.CachedUpdate)
	}
	if r := e.hostctl("upgrade", "--check"); r.Code != 77 {
		t.Fatalf("upgrade --check with nothing new: exit %d, want 77\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if st := e.status(); st.CachedUpdate != nil {
		t.Fatalf("a check that found nothing recorded %+v", st.CachedUpdate)
	}
	e.publish("2")
	before := e.hostSnapshot()
	e.mustHostctl("upgrade", "--check")
	if after := e.hostSnapshot(); !slices.Equal(before, after) {
		t.Fatalf("upgrade --check changed the host")
	}
	check := func(version string) {
		t.Helper()
		u := e.status().CachedUpdate
		if u == nil || u.Version != version || u.Checksum != e.os.Commit(version) || u.Refspec != refspec || u.Checked == 0 || u.Timestamp == 0 {
			t.Fatalf("cached update: %+v, want version %s (%s)", u, version, e.os.Commit(version))
		}
		want := "AvailableUpdate: " + version + " (" + e.os.Commit(version) + ")"
		if human := e.mustHostctl("status"); !strings.Contains(human, want) {
			t.Fatalf("status lacks %q:\n%s", want, human)
		}
		// The package diff, from the new commit's rpmdb: what rpm -qa of
		// the two commits says changed.
		from, to := e.rpmQAOfCommit(u.Base), e.rpmQAOfCommit(u.Checksum)
		var added, removed, changed int
		for k, evr := range to {
			if old, ok := from[k]; !ok {
				added++
			} else if old != evr {
				changed++
			}
		}
		for k := range from {
			if _, ok := to[k]; !ok {
				removed++
			}
		}
		if !u.HasDiff || len(u.Upgraded)+len(u.Downgraded) != changed || len(u.Added) != added || len(u.Removed) != removed || changed+added+removed == 0 {
			t.Fatalf("cached update's diff: upgraded %q downgraded %q added %q removed %q; rpm -qa: %d changed, %d added, %d removed",
				u.Upgraded, u.Downgraded, u.Added, u.Removed, changed, added, removed)
		}
		if human := e.mustHostctl("status"); !strings.Contains(human, "Diff: "+u.DiffSummary()) {
			t.Fatalf("status lacks the diff line %q:\n%s", u.DiffSummary(), human)
		}
	}
	check("2")
	e.hostd.Stop()
	e.startHostd()
	check("2")
	e.publish("3")
	e.mustHostctl("upgrade", "--check")
	check("3")
	e.mustHostctl("upgrade")
	if u := e.status().CachedUpdate; u != nil {
		t.Fatalf("cached update after deploying it: %+v\n%s\n%s", u, e.mustHostctl("status"), e.hostd.Log)
	}
	if human := e.mustHostctl("status"); strings.Contains(human, "AvailableUpdate") {
		t.Fatalf("status after deploying the update:\n%s", human)
	}
	// A check that finds nothing new clears a record left from before.
	e.publish("2")
	if r := e.hostctl("deploy", e.os.Commit("2")); r.Code != 0 {
		t.Fatalf("deploy 2: %d %s", r.Code, r.Stderr)
	}
	e.publish("3")
	e.mustHostctl("upgrade", "--check")
	check("3")
	e.publish("2")
	if r := e.hostctl("upgrade", "--check"); r.Code != 77 {
		t.Fatalf("upgrade --check with the default at the tip: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if u := e.status().CachedUpdate; u != nil {
		t.Fatalf("cached update after a check that found nothing: %+v", u)
	}
}
