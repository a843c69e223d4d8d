package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hostctl/hostctl/dbus"
)

// remoteCmd is `hostctl remote add|list|delete`: the OSTree remotes hostd
// pulls from.
func remoteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remote",
		Short: "Manage the OSTree remotes the host pulls its OS from",
	}
	cmd.AddCommand(withDetach(remoteAddCmd(), remoteDeleteCmd())...)
	cmd.AddCommand(remoteListCmd())
	return cmd
}

func remoteAddCmd() *cobra.Command {
	var keyFile string
	var noVerify, replace bool
	cmd := &cobra.Command{
		Use:   "add NAME URL",
		Short: "Add a remote; its commits must be signed by a key imported with --gpg-import unless --no-gpg-verify",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := map[string]any{"gpg-verify": !noVerify}
			if replace {
				opts["replace"] = true
			}
			if keyFile != "" {
				key, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("remote add: read the key file: %w", err)
				}
				opts["gpg-key"] = key
			}
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				txn, err := c.RemoteAdd(ctx, args[0], args[1], opts)
				if err != nil {
					return err
				}
				_, err = runTxn(ctx, cmd.OutOrStdout(), txn)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&keyFile, "gpg-import", "", "import the OpenPGP public keys in KEYFILE (armoured or binary, as `gpg --export` writes them) to verify the remote's commits")
	cmd.Flags().BoolVar(&noVerify, "no-gpg-verify", false, "do not verify signatures (gpg-verify=false): for test and development remotes only")
	cmd.Flags().BoolVar(&replace, "replace", false, "replace a remote of the same name")
	return cmd
}

func remoteDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a remote",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				txn, err := c.RemoteDelete(ctx, args[0], nil)
				if err != nil {
					return err
				}
				_, err = runTxn(ctx, cmd.OutOrStdout(), txn)
				return err
			})
		},
	}
}

func remoteListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the remotes (name, URL, whether signatures are verified)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				rs, err := c.ListRemotes(ctx)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					return enc.Encode(rs)
				}
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tURL\tGPG-VERIFY")
				for _, r := range rs {
					fmt.Fprintf(w, "%s\t%s\t%t\n", r.Name, r.URL, r.GPGVerify)
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
