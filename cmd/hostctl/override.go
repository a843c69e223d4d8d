package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hostctl/hostctl/dbus"
)

// overrideCmd is `hostctl override`: base package overrides (rpm-ostree's
// `override remove` and `override reset`), applied by PkgChange.
func overrideCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "override",
		Short: "Remove or replace base packages in the tree, or undo that, in a new deployment",
	}
	cmd.AddCommand(overrideRemoveCmd(), overrideReplaceCmd(), overrideResetCmd())
	return cmd
}

func overrideRemoveCmd() *cobra.Command {
	var dryRun, idempotent bool
	cmd := &cobra.Command{
		Use:   "remove PKG...",
		Short: "Remove base packages (kept removed across upgrades until override reset)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := overrideOpts(dryRun, idempotent)
			opts["override-remove"] = args
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.PkgChange(ctx, nil, nil, opts)
			})
		},
	}
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "resolve and show what would change; write nothing")
	cmd.Flags().BoolVar(&idempotent, "idempotent", false, "do nothing for packages already removed")
	return cmd
}

func overrideReplaceCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "replace FILE.rpm|PKG...",
		Short: "Replace base packages by other builds: local RPM files, or packages of the enabled repositories (kept across upgrades until override reset)",
		Long: "Replace base packages by other builds of them. An argument that ends in .rpm and names a file is a\n" +
			"local RPM: hostctl opens it with your rights and passes it to hostd. Any other argument is a package\n" +
			"name (the best build the enabled repositories have) or NEVRA from those repositories.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pkgs []string
			var files []*os.File
			defer func() {
				for _, f := range files {
					f.Close()
				}
			}()
			for _, a := range args {
				if !strings.HasSuffix(a, ".rpm") {
					pkgs = append(pkgs, a)
					continue
				}
				f, err := os.Open(a)
				if err != nil {
					return fmt.Errorf("open local package: %w", err)
				}
				files = append(files, f)
				if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
					return fmt.Errorf("%s is not a regular file", a)
				}
			}
			opts := overrideOpts(dryRun, false)
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.OverrideReplace(ctx, pkgs, files, opts)
			})
		},
	}
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "resolve and show what would change; write nothing")
	return cmd
}

func overrideResetCmd() *cobra.Command {
	var dryRun, idempotent, all bool
	cmd := &cobra.Command{
		Use:   "reset PKG...|--all",
		Short: "Bring removed or replaced base packages back",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("name the packages to bring back, or pass --all (not both)")
			}
			opts := overrideOpts(dryRun, idempotent)
			if all {
				opts["override-reset-all"] = true
			} else {
				opts["override-reset"] = args
			}
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.PkgChange(ctx, nil, nil, opts)
			})
		},
	}
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "resolve and show what would change; write nothing")
	cmd.Flags().BoolVar(&idempotent, "idempotent", false, "do nothing for packages that have no override")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "undo every override")
	return cmd
}

func overrideOpts(dryRun, idempotent bool) map[string]any {
	opts := map[string]any{}
	if dryRun {
		opts["dry-run"] = true
	}
	if idempotent {
		opts["idempotent"] = true
	}
	return opts
}
