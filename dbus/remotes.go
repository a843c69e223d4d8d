package dbus

import (
	"context"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/errdefs"
)

// Remote is an OSTree remote as ListRemotes gives it.
type Remote struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// GPGVerify says whether commits from it must carry a valid signature
	// by a key imported for it.
	GPGVerify bool `json:"gpg-verify"`
}

// RemoteLister is implemented by an Engine that lists the OSTree remotes;
// without it, ListRemotes fails.
type RemoteLister interface {
	// Remotes lists the configured remotes, sorted by name, as they are now
	// (remotes added by other tools included).
	Remotes() ([]Remote, error)
}

// RemoteAdd starts adding (or with the option replace, replacing) an OSTree remote.
func (h hostObject) RemoteAdd(sender godbus.Sender, name, url string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	o := map[string]godbus.Variant{}
	for k, v := range opts {
		if k == "url" {
			return "/", toBus(errdefs.Errorf(errdefs.ErrInvalidArgument, "option %q: give the URL in the url argument of RemoteAdd, not in its options", k))
		}
		o[k] = v
	}
	o["url"] = godbus.MakeVariant(url)
	return h.s.begin(sender, "remote-add", name, o)
}

// RemoteDelete starts removing an OSTree remote.
func (h hostObject) RemoteDelete(sender godbus.Sender, name string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "remote-delete", name, opts)
}

// ListRemotes lists the OSTree remotes (read-only, open to every caller).
func (h hostObject) ListRemotes() ([]map[string]godbus.Variant, *godbus.Error) {
	l, ok := h.s.eng.(RemoteLister)
	if !ok {
		return nil, toBus(errdefs.Errorf(errdefs.ErrFailed, "this hostd does not list remotes"))
	}
	rs, err := l.Remotes()
	if err != nil {
		return nil, toBus(err)
	}
	out := make([]map[string]godbus.Variant, 0, len(rs))
	for _, r := range rs {
		out = append(out, map[string]godbus.Variant{"name": godbus.MakeVariant(r.Name), "url": godbus.MakeVariant(r.URL),
			"gpg-verify": godbus.MakeVariant(r.GPGVerify)})
	}
	return out, nil
}

// RemoteAdd begins adding the remote name at url; opts: gpg-verify b
// (default true), gpg-key ay (OpenPGP public keys to trust for it),
// replace b.
func (c *Client) RemoteAdd(ctx context.Context, name, url string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "RemoteAdd", name, url, MakeOptions(opts))
}

// RemoteDelete begins removing the remote name.
func (c *Client) RemoteDelete(ctx context.Context, name string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "RemoteDelete", name, MakeOptions(opts))
}

// ListRemotes lists the OSTree remotes.
func (c *Client) ListRemotes(ctx context.Context) ([]Remote, error) {
	var raw []map[string]godbus.Variant
	if err := c.call(ctx, "ListRemotes", &raw); err != nil {
		return nil, err
	}
	out := make([]Remote, 0, len(raw))
	for _, m := range raw {
		o := Options(m)
		out = append(out, Remote{Name: o.String("name"), URL: o.String("url"), GPGVerify: o.Bool("gpg-verify")})
	}
	return out, nil
}
