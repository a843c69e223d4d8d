package deploy

// #include <stdlib.h>
// #include <ostree.h>
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
import "C"

import (
	"context"
	"fmt"
	"sort"
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

// Remotes lists the configured remotes, sorted by name, as of the last
// ReloadConfig.
func (s *Sysroot) Remotes() ([]RemoteInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n C.guint
	names := C.ostree_repo_remote_list(s.repo, &n)
	defer C.g_strfreev(names)
	out := make([]RemoteInfo, 0, int(n))
	for i := C.guint(0); i < n; i++ {
		cname := C.hc_strv_at(names, i)
		r := RemoteInfo{Name: C.GoString(cname)}
		var curl *C.char
		var gerr *C.GError
		if C.ostree_repo_remote_get_url(s.repo, cname, &curl, &gerr) == 0 {
			return nil, fmt.Errorf("read remote %s: %w", r.Name, gerror(gerr))
		}
		r.URL = C.GoString(curl)
		C.g_free(C.gpointer(curl))
		var verify C.gboolean
		if C.ostree_repo_remote_get_gpg_verify(s.repo, cname, &verify, &gerr) == 0 {
			return nil, fmt.Errorf("read remote %s: %w", r.Name, gerror(gerr))
		}
		r.GPGVerify = verify != 0
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// HasRemote says whether a remote of that name is configured (as of the
// last ReloadConfig).
func (s *Sysroot) HasRemote(name string) (bool, error) {
	rs, err := s.Remotes()
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

// DeleteRemote removes a remote (its config section or its remotes.d file).
// A remote that does not exist gives ErrNotFound.
func (s *Sysroot) DeleteRemote(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cname := C.CString(name)
	defer cfree(cname)
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.hc_remote_delete(s.repo, cname, c.c, &gerr) == 0 {
		return fmt.Errorf("delete remote %s: %w", name, gerror(gerr))
	}
	return nil
}

// ImportRemoteKeys adds the OpenPGP public keys in key (armoured or binary)
// to the keyring libostree verifies the remote's commits with
// (ostree_repo_remote_gpg_import), and returns how many it imported.
func (s *Sysroot) ImportRemoteKeys(ctx context.Context, name string, key []byte) (int, error) {
	if len(key) == 0 {
		return 0, fmt.Errorf("import keys for remote %s: the key file is empty", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cname := C.CString(name)
	defer cfree(cname)
	data := C.CBytes(key)
	defer C.free(data)
	c := newCancellable(ctx)
	defer c.free()
	var n C.guint
	var gerr *C.GError
	if C.hc_remote_gpg_import(s.repo, cname, (*C.char)(data), C.gsize(len(key)), &n, c.c, &gerr) == 0 {
		return 0, fmt.Errorf("import keys for remote %s: %w", name, gerror(gerr))
	}
	return int(n), nil
}
