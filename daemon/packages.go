package daemon

import (
	"context"

	"github.com/hostctl/hostctl/dbus"
)

// validPkgChange checks a package change request before it becomes a transaction.
func validPkgChange(req dbus.Request) error {
	if len(req.Options.Strings("add")) == 0 && len(req.Options.Strings("remove")) == 0 {
		return dbus.Errorf(dbus.ErrInvalidArgument, "name at least one package to add or remove")
	}
	return nil
}

// pkgChange layers and unlayers packages. Not wired to the layering package yet.
func (e *Engine) pkgChange(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	return nil, dbus.Errorf(dbus.ErrFailed, "package layering is not available in this build yet")
}

// refreshMetadata refreshes the rpm-md metadata of the enabled repositories.
func (e *Engine) refreshMetadata(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	return nil, dbus.Errorf(dbus.ErrFailed, "package layering is not available in this build yet")
}
