package deploy

// #include <stdlib.h>
// #include "helpers.h"
// #include <gio/gio.h>
//
// static gboolean
// hc_remote_delete (OstreeRepo *repo, const char *name, GCancellable *c, GError **error)
// {
//   return ostree_repo_remote_change (repo, NULL, OSTREE_REPO_REMOTE_CHANGE_DELETE,
//                                     name, NULL, NULL, c, error);
// }
//
// static gboolean
// hc_remote_gpg_import (OstreeRepo *repo, const char *name, const char *data, gsize len,
//                       guint *out_imported, GCancellable *c, GError **error)
// {
//   GInputStream *in = g_memory_input_stream_new_from_data (data, len, NULL);
//   gboolean ok = ostree_repo_remote_gpg_import (repo, name, in, NULL, out_imported, c, error);
//   g_object_unref (in);
//   return ok;
// }
//
// static char *
// hc_strv_at (char **v, guint i) { return v[i]; }
//
// /* hc_remote_trusted_keys lists the keys libostree trusts for NAME, each
//  * as "FINGERPRINT (USER ID)", NULL-terminated. */
// static char **
// hc_remote_trusted_keys (OstreeRepo *repo, const char *name, GCancellable *c, GError **error)
// {
//   GPtrArray *keys = NULL;
//   if (!ostree_repo_remote_get_gpg_keys (repo, name, NULL, &keys, c, error))
//     return NULL;
//   GPtrArray *out = g_ptr_array_new ();
//   for (guint i = 0; i < keys->len; i++)
//     {
//       GVariant *key = keys->pdata[i];
//       GVariant *subkeys = g_variant_get_child_value (key, 0);
//       GVariant *uids = g_variant_get_child_value (key, 1);
//       const char *fpr = "?", *uid = "";
//       if (g_variant_n_children (subkeys) > 0)
//         {
//           GVariant *sk = g_variant_get_child_value (subkeys, 0);
//           GVariantDict d;
//           g_variant_dict_init (&d, sk);
//           g_variant_dict_lookup (&d, "fingerprint", "&s", &fpr);
//           fpr = g_intern_string (fpr);
//           g_variant_dict_clear (&d);
//           g_variant_unref (sk);
//         }
//       if (g_variant_n_children (uids) > 0)
//         {
//           GVariant *u = g_variant_get_child_value (uids, 0);
//           GVariantDict d;
//           g_variant_dict_init (&d, u);
//           g_variant_dict_lookup (&d, "uid", "&s", &uid);
//           uid = g_intern_string (uid);
//           g_variant_dict_clear (&d);
//           g_variant_unref (u);
//         }
//       g_ptr_array_add (out, g_strdup_printf ("%s (%s)", fpr, uid));
//       g_variant_unref (subkeys);
//       g_variant_unref (uids);
//     }
//   g_ptr_array_add (out, NULL);
//   g_ptr_array_unref (keys);
//   return (char **) g_ptr_array_free (out, FALSE);
// }
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hostctl/hostctl/errdefs"
)

// RemoteInfo is a remote as libostree resolves it: from the repo's config or
// from a file in the sysroot's /etc/ostree/remotes.d.
type RemoteInfo struct {
	// Name is the remote's name, the REMOTE of REMOTE:REF.
	Name string
	// URL is where its commits are pulled from.
	URL string
	// GPGVerify says whether libostree refuses commits without a valid
	// signature from a key in the remote's keyring.
	GPGVerify bool
}

// ReloadConfig makes the sysroot's repo object read its config and the
// remotes again (ostree_repo_reload_config), so remotes added, changed or
// removed by other tools (`ostree remote add`, a file in
// /etc/ostree/remotes.d) are seen without restarting.
func (s *Sysroot) ReloadConfig(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.ostree_repo_reload_config(s.repo, c.c, &gerr) == 0 {
		return fmt.Errorf("reload the configuration of %s: %w", s.RepoPath(), gerror(gerr))
	}
	return nil
}

// withRemotesRepo runs fn on a repo object opened the way a pull opens it
// (for the sysroot's path: its repo config and its /etc/ostree/remotes.d),
// fresh for each call, so what it sees and changes is what the next pull
// uses, whichever tool changed the remotes last.
func (s *Sysroot) withRemotesRepo(ctx context.Context, fn func(repo *C.OstreeRepo, c *C.GCancellable) error) error {
	crepo, csysroot := C.CString(s.RepoPath()), C.CString(s.path)
	defer cfree(crepo)
	defer cfree(csysroot)
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	repo := C.hc_open_sysroot_repo(crepo, csysroot, c.c, &gerr)
	if repo == nil {
		return fmt.Errorf("open repo %s: %w", s.RepoPath(), gerror(gerr))
	}
	defer C.g_object_unref(C.gpointer(repo))
	return fn(repo, c.c)
}

// Remotes lists the configured remotes, sorted by name, as the next pull
// sees them.
func (s *Sysroot) Remotes(ctx context.Context) ([]RemoteInfo, error) {
	var out []RemoteInfo
	err := s.withRemotesRepo(ctx, func(repo *C.OstreeRepo, _ *C.GCancellable) error {
		var n C.guint
		names := C.ostree_repo_remote_list(repo, &n)
		defer C.g_strfreev(names)
		out = make([]RemoteInfo, 0, int(n))
		for i := C.guint(0); i < n; i++ {
			cname := C.hc_strv_at(names, i)
			r := RemoteInfo{Name: C.GoString(cname)}
			var curl *C.char
			var gerr *C.GError
			if C.ostree_repo_remote_get_url(repo, cname, &curl, &gerr) == 0 {
				return fmt.Errorf("read remote %s: %w", r.Name, gerror(gerr))
			}
			r.URL = C.GoString(curl)
			C.g_free(C.gpointer(curl))
			var verify C.gboolean
			if C.ostree_repo_remote_get_gpg_verify(repo, cname, &verify, &gerr) == 0 {
				return fmt.Errorf("read remote %s: %w", r.Name, gerror(gerr))
			}
			r.GPGVerify = verify != 0
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// HasRemote says whether a remote of that name is configured (as the next
// pull sees them).
func (s *Sysroot) HasRemote(ctx context.Context, name string) (bool, error) {
	rs, err := s.Remotes(ctx)
	if err != nil {
		return false, err
	}
	for _, r := range rs {
		if r.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// SetRemote adds a remote (or, with replace, adds or replaces it) where
// libostree keeps the sysroot's remotes: the deployment's
// /etc/ostree/remotes.d on a booted host, the repo config or the sysroot's
// etc/ostree/remotes.d otherwise. gpgVerify off is for test and development
// remotes only.
func (s *Sysroot) SetRemote(ctx context.Context, r Remote, gpgVerify, replace bool) error {
	return s.withRemotesRepo(ctx, func(repo *C.OstreeRepo, c *C.GCancellable) error {
		cname, curl := C.CString(r.Name), C.CString(r.URL)
		defer cfree(cname)
		defer cfree(curl)
		var gerr *C.GError
		if C.hc_remote_add(repo, cname, curl, cbool(gpgVerify), cbool(replace), c, &gerr) == 0 {
			return fmt.Errorf("add remote %s: %w", r.Name, gerror(gerr))
		}
		return nil
	})
}

// DeleteRemote removes a remote (its config section or its remotes.d file).
// A remote that does not exist gives ErrNotFound.
func (s *Sysroot) DeleteRemote(ctx context.Context, name string) error {
	return s.withRemotesRepo(ctx, func(repo *C.OstreeRepo, c *C.GCancellable) error {
		cname := C.CString(name)
		defer cfree(cname)
		var gerr *C.GError
		if C.hc_remote_delete(repo, cname, c, &gerr) == 0 {
			return fmt.Errorf("delete remote %s: %w", name, gerror(gerr))
		}
		return nil
	})
}

// ImportRemoteKeys adds the OpenPGP public keys in key (armoured or binary)
// to the keyring libostree verifies the remote's commits with
// (ostree_repo_remote_gpg_import), and returns how many it imported.
func (s *Sysroot) ImportRemoteKeys(ctx context.Context, name string, key []byte) (int, error) {
	if len(key) == 0 {
		return 0, fmt.Errorf("import keys for remote %s: the key file is empty", name)
	}
	var n C.guint
	err := s.withRemotesRepo(ctx, func(repo *C.OstreeRepo, c *C.GCancellable) error {
		cname := C.CString(name)
		defer cfree(cname)
		data := C.CBytes(key)
		defer C.free(data)
		var gerr *C.GError
		if C.hc_remote_gpg_import(repo, cname, (*C.char)(data), C.gsize(len(key)), &n, c, &gerr) == 0 {
			return fmt.Errorf("import keys for remote %s: %w", name, gerror(gerr))
		}
		return nil
	})
	return int(n), err
}

// TrustedKeys lists the keys libostree verifies the remote's commits with,
// each as "FINGERPRINT (USER ID)".
func (s *Sysroot) TrustedKeys(ctx context.Context, name string) ([]string, error) {
	var out []string
	err := s.withRemotesRepo(ctx, func(repo *C.OstreeRepo, c *C.GCancellable) error {
		cname := C.CString(name)
		defer cfree(cname)
		var gerr *C.GError
		keys := C.hc_remote_trusted_keys(repo, cname, c, &gerr)
		if keys == nil {
			return fmt.Errorf("list the keys of remote %s: %w", name, gerror(gerr))
		}
		defer C.g_strfreev(keys)
		for i := C.guint(0); C.hc_strv_at(keys, i) != nil; i++ {
			out = append(out, C.GoString(C.hc_strv_at(keys, i)))
		}
		return nil
	})
	return out, err
}

// signatureFailure tells a pull error that is libostree's GPG verification
// refusing the commit (gpg-verify=true on the remote).
func signatureFailure(msg string) bool {
	for _, m := range []string{"GPG verification enabled", "GPG signatures found, but none are in trusted keyring",
		"public key not found", "Signature expired", "Key expired", "signature is invalid", "BAD signature"} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// explainSignature turns libostree's refusal of an unsigned or wrongly
// signed commit into an error that names the remote, the keys it trusts
// and what to do; other errors pass unchanged.
func (s *Sysroot) explainSignature(ctx context.Context, remote string, err error) error {
	if err == nil || !signatureFailure(err.Error()) || errors.Is(err, context.Canceled) {
		return err
	}
	keys, kerr := s.TrustedKeys(context.WithoutCancel(ctx), remote)
	trusted := "no key is imported for it"
	switch {
	case kerr != nil:
		trusted = "its keys cannot be listed: " + kerr.Error()
	case len(keys) > 0:
		trusted = "it trusts " + strings.Join(keys, ", ")
	}
	return errdefs.Wrap(errdefs.ErrUntrusted, fmt.Errorf("refused: the commit is not validly signed for remote '%s' (gpg-verify=true, verified by libostree; %s); nothing was deployed. "+
		"Import the signing key (hostctl remote add --replace --gpg-import KEYFILE %s URL): %w", remote, trusted, remote, err))
}
