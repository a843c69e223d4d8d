package daemon

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
)

// Remotes: remote-add and remote-delete transactions change the sysroot's
// OSTree remotes (libostree writes them to the sysroot's
// /etc/ostree/remotes.d, or the repo config of a sysroot that is not
// booted), ListRemotes reads them. Remotes are read and changed through a
// repo object opened for each call the way a pull opens its own, and the
// sysroot's repo object reloads its config before every transaction, so
// remotes that other tools add or remove are seen without restarting hostd. The polkit action is org.hostctl.host.upgrade:
// a remote decides what an upgrade deploys.

// validRemoteName checks a remote name before it reaches libostree or a path.
func validRemoteName(what, name string) error {
	if name == "" {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s needs a remote name", what)
	}
	if len(name) > 128 || strings.ContainsAny(name, "/:\\\x00 \t\n[]") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "-") {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s: %q is not a remote name: use letters, digits, '-', '_' and '.' (not first)", what, name)
	}
	return nil
}

// validRemoteAdd checks a remote-add request: the name, and a URL libostree can pull from.
func validRemoteAdd(req dbus.Request) error {
	if err := validRemoteName("remote add", req.Arg); err != nil {
		return err
	}
	raw := req.Options.String("url")
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "remote add %s: %q is not a repository URL: use http://, https:// or file:// URLs", req.Arg, raw)
	}
	return nil
}

func validRemoteDelete(req dbus.Request) error { return validRemoteName("remote delete", req.Arg) }

// remoteAdd adds the remote named by the transaction's argument, and
// imports the keys given for it. gpg-verify is on unless the caller turned
// it off. Nothing is left behind when the key import fails.
func (e *Engine) remoteAdd(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	name, u := t.rec.Arg, opts.String("url")
	verify := true
	if _, ok := opts["gpg-verify"]; ok {
		verify = opts.Bool("gpg-verify")
	}
	key, _ := opts["gpg-key"].Value().([]byte)
	existed, err := e.sr.HasRemote(ctx, name)
	if err != nil {
		return nil, err
	}
	if existed && !opts.Bool("replace") {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "remote %q already exists: delete it first (hostctl remote delete %s) or replace it (--replace)", name, name)
	}
	t.step("remote-add", fmt.Sprintf("Adding remote %s (%s)", name, u))
	if err := e.sr.SetRemote(ctx, deploy.Remote{Name: name, URL: u}, verify, existed); err != nil {
		return nil, err
	}
	imported := 0
	if len(key) > 0 {
		t.step("gpg-import", "Importing signing keys for "+name)
		if imported, err = e.sr.ImportRemoteKeys(ctx, name, key); err != nil {
			if !existed {
				if derr := e.sr.DeleteRemote(context.WithoutCancel(ctx), name); derr != nil {
					e.log.Error("remove the remote whose keys failed to import", "remote", name, "err", derr)
				}
			}
			return nil, errdefs.Wrap(errdefs.ErrInvalidArgument, fmt.Errorf("%w: give an OpenPGP public key file (gpg --armor --export KEYID)", err))
		}
	}
	switch {
	case !verify:
		t.message(fmt.Sprintf("Remote %s added without signature verification (gpg-verify=false): any commit it serves will deploy.", name))
	case imported == 0:
		t.message(fmt.Sprintf("Remote %s added with gpg-verify=true and no key imported: its commits are refused until a key is imported (hostctl remote add --replace --gpg-import KEYFILE).", name))
	default:
		t.message(fmt.Sprintf("Remote %s added; commits must be signed by one of the %d imported keys.", name, imported))
	}
	return map[string]any{"remote": name, "url": u, "gpg-verify": verify, "keys-imported": uint32(imported)}, nil
}

// remoteDelete removes the remote named by the transaction's argument.
func (e *Engine) remoteDelete(ctx context.Context, t *txn, _ dbus.Options) (map[string]any, error) {
	name := t.rec.Arg
	ok, err := e.sr.HasRemote(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errdefs.Errorf(errdefs.ErrNotFound, "Remote '%s' not found: `hostctl remote list` lists the remotes", name)
	}
	t.step("remote-delete", "Deleting remote "+name)
	if err := e.sr.DeleteRemote(ctx, name); err != nil {
		return nil, err
	}
	t.message(fmt.Sprintf("Remote %s deleted.", name))
	return map[string]any{"remote": name}, nil
}

// Remotes implements dbus.RemoteLister: the remotes as libostree reads them now.
func (e *Engine) Remotes() ([]dbus.Remote, error) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	rs, err := e.sr.Remotes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]dbus.Remote, 0, len(rs))
	for _, r := range rs {
		out = append(out, dbus.Remote{Name: r.Name, URL: r.URL, GPGVerify: r.GPGVerify})
	}
	return out, nil
}

// missingRemote says why a deployment's origin cannot be followed: its
// remote is not configured ("" when it is, or when the origin names none).
func missingRemote(d deploy.Deployment, remotes map[string]bool) string {
	if d.Origin == nil {
		return ""
	}
	remote, _, err := deploy.SplitRefspec(d.Refspec())
	if err != nil || remote == "" || remotes[remote] {
		return ""
	}
	return fmt.Sprintf("Remote '%s' not found", remote)
}

// markMissingRemotes fills RemoteError of each deployment in st whose
// origin names a remote that is not configured, as the next pull would
// see them (remotes other tools changed count).
func (e *Engine) markMissingRemotes(ctx context.Context, deps []deploy.Deployment, st *dbus.Status) {
	rs, err := e.sr.Remotes(ctx)
	if err != nil {
		e.log.Warn("list remotes", "err", err)
		return
	}
	have := map[string]bool{}
	for _, r := range rs {
		have[r.Name] = true
	}
	for i := range st.Deployments {
		if i < len(deps) {
			st.Deployments[i].RemoteError = missingRemote(deps[i], have)
		}
	}
}

// checkRemote refuses to follow the default deployment's origin when its
// remote is not configured, naming it and what to do.
func (e *Engine) checkRemote(ctx context.Context, d deploy.Deployment) error {
	remote, _, err := deploy.SplitRefspec(d.Refspec())
	if err != nil || remote == "" {
		return nil
	}
	ok, err := e.sr.HasRemote(ctx, remote)
	if err != nil {
		return err
	}
	if !ok {
		return errdefs.Errorf(errdefs.ErrNotFound, "Remote '%s' not found: the default deployment follows %s; add the remote back (hostctl remote add %s URL) or rebase to another (hostctl rebase REMOTE:REF)", remote, d.Refspec(), remote)
	}
	return nil
}

// remotesStamp sums up where libostree reads the remotes from (the repo
// config, the sysroot's etc/ostree/remotes.d and its files) by name, size
// and mtime, so the status watch sees remotes other tools add, change or
// remove and re-marks deployments whose remote is gone.
func remotesStamp(sr *deploy.Sysroot) string {
	var b strings.Builder
	stamp := func(p string) {
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", p, st.Size(), st.ModTime().UnixNano())
		}
	}
	stamp(filepath.Join(sr.RepoPath(), "config"))
	dir := filepath.Join(sr.Path(), "etc", "ostree", "remotes.d")
	stamp(dir)
	entries, _ := os.ReadDir(dir)
	for _, ent := range entries {
		stamp(filepath.Join(dir, ent.Name()))
	}
	return b.String()
}
