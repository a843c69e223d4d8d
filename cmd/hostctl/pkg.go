package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/hostctl/hostctl/dbus"
)

// packageCommands are the package layering commands (pkg-add, pkg-remove, refresh-md).
func packageCommands() []*cobra.Command {
	return []*cobra.Command{
		pkgChangeCmd("pkg-add", "install", "Layer packages on the base in a new deployment", true),
		pkgChangeCmd("pkg-remove", "uninstall", "Remove layered packages in a new deployment", false),
		refreshMdCmd(),
	}
}

func pkgChangeCmd(use, alias, short string, add bool) *cobra.Command {
	var dryRun, idempotent, allowInactive bool
	cmd := &cobra.Command{
		Use:     use + " PKG...",
		Aliases: []string{alias},
		Short:   short,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := map[string]any{}
			if dryRun {
				opts["dry-run"] = true
			}
			if idempotent {
				opts["idempotent"] = true
			}
			if allowInactive {
				opts["allow-inactive"] = true
			}
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				if add {
					return c.PkgChange(ctx, args, nil, opts)
				}
				return c.PkgChange(ctx, nil, args, opts)
			})
		},
	}
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "resolve and show what would change; write nothing")
	cmd.Flags().BoolVar(&idempotent, "idempotent", false, "do nothing for packages already requested (or not layered)")
	if add {
		cmd.Flags().BoolVar(&allowInactive, "allow-inactive", false, "request a package the base already provides (layered once a base no longer does)")
	}
	return cmd
}

func refreshMdCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "refresh-md",
		Short: "Refresh the rpm-md metadata of the enabled repositories",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.RefreshMd(ctx, nil)
			})
		},
	}
}
