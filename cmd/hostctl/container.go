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

// containerCommands are the image and system container commands.
func containerCommands() []*cobra.Command {
	image := &cobra.Command{Use: "image", Short: "Pull, list and remove container images"}
	image.AddCommand(withDetach(imagePullCmd(), imageDeleteCmd(), imagePruneCmd())...)
	image.AddCommand(imageListCmd())
	ctr := &cobra.Command{Use: "container", Short: "Install and manage system containers"}
	ctr.AddCommand(withDetach(containerInstallCmd(), containerUpdateCmd(), containerRollbackCmd(),
		containerUninstallCmd())...)
	ctr.AddCommand(containerListCmd(), containerExecCmd())
	return []*cobra.Command{image, ctr}
}

func imagePullCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pull IMAGE",
		Short: "Pull an image (docker:// by default; oci:, oci-archive:, docker-archive:) into the OSTree repo",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.ImagePull(ctx, args[0], nil)
			})
		},
	}
}

func imageDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete IMAGE",
		Short: "Forget an image's name; its layers go at the next prune",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.ImageDelete(ctx, args[0], nil)
			})
		},
	}
}

func imagePruneCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove images and layers no container and no deployment uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.ImagePrune(ctx, nil)
			})
		},
	}
}

func imageListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the pulled images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				imgs, err := c.ListImages(ctx)
				if err != nil {
					return err
				}
				return printList(cmd, imgs, asJSON, []string{"name", "digest", "layers"})
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func containerInstallCmd() *cobra.Command {
	var name string
	var set []string
	var follow bool
	cmd := &cobra.Command{
		Use:   "install [--name NAME] [--set KEY=VALUE]... [--follow] IMAGE",
		Short: "Install a system container from an image and start its service",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := map[string]any{}
			if name != "" {
				opts["name"] = name
			}
			if len(set) > 0 {
				opts["set"] = set
			}
			if follow {
				opts["follow"] = true
			}
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.ContainerInstall(ctx, args[0], opts)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "container name (default: the image's last path component)")
	cmd.Flags().StringArrayVar(&set, "set", nil, "template value KEY=VALUE (repeatable)")
	cmd.Flags().BoolVar(&follow, "follow", false, "follow the image's tag: `hostctl upgrade` moves the container to its newest image, in the same generation as the OS")
	return cmd
}

func containerUpdateCmd() *cobra.Command {
	var rebase string
	var set []string
	var pull bool
	cmd := &cobra.Command{
		Use:   "update [--pull] [--set KEY=VALUE]... [--rebase IMAGE] NAME",
		Short: "Update a system container to the latest pulled image (--pull: pull its tag first) or new values; rolls back by itself if it fails to start",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := map[string]any{}
			if rebase != "" {
				opts["rebase"] = rebase
			}
			if len(set) > 0 {
				opts["set"] = set
			}
			if pull {
				opts["pull"] = true
			}
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.ContainerUpdate(ctx, args[0], opts)
			})
		},
	}
	cmd.Flags().StringVar(&rebase, "rebase", "", "switch to another image")
	cmd.Flags().BoolVar(&pull, "pull", false, "pull the image (or the --rebase image) first, in the same transaction")
	cmd.Flags().StringArrayVar(&set, "set", nil, "template value KEY=VALUE (repeatable)")
	return cmd
}

func containerRollbackCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback NAME",
		Short: "Switch a system container back to its previous version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.ContainerRollback(ctx, args[0], nil)
			})
		},
	}
}

func containerUninstallCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "uninstall NAME",
		Short: "Stop a system container and remove its unit, files and slots",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.ContainerUninstall(ctx, args[0], nil)
			})
		},
	}
}

func containerListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the system containers: name, image, digest, slot, state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				list, err := c.ListContainers(ctx)
				if err != nil {
					return err
				}
				return printList(cmd, list, asJSON, []string{"name", "image", "digest", "slot", "state"})
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func containerExecCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec NAME CMD...",
		Short: "Run a command in a running system container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				code, err := c.ContainerExec(ctx, args[0], args[1:], os.Stdin, os.Stdout, os.Stderr)
				if err != nil {
					return err
				}
				if code != 0 {
					os.Exit(int(code))
				}
				return nil
			})
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func printList(cmd *cobra.Command, rows []map[string]any, asJSON bool, cols []string) error {
	out := cmd.OutOrStdout()
	if asJSON {
		if rows == nil {
			rows = []map[string]any{}
		}
		b, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(out, string(b))
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, upper(c))
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		for i, c := range cols {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			v := fmt.Sprint(r[c])
			if c == "digest" && len(v) > 19 {
				v = v[:19]
			}
			fmt.Fprint(tw, v)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
