package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hostctl/hostctl/dbus"
)

func diffCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff [FROM [TO]]",
		Short: "Show the packages added, removed, upgraded and downgraded between two deployments",
		Long: "Compare the packages of two deployments, read from their rpmdbs, as `rpm-ostree db diff` does.\n" +
			"FROM and TO are deployment indexes (as `hostctl status` lists them, 0 is the default), deployment ids\n" +
			"or commit checksums. Without TO: against the default deployment. Without FROM: from the booted\n" +
			"deployment (on a sysroot that is not booted, the previous default).",
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, to := "", ""
			if len(args) > 0 {
				from = args[0]
			}
			if len(args) > 1 {
				to = args[1]
			}
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				d, err := c.Diff(ctx, from, to)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(d)
				}
				printPackageDiff(cmd.OutOrStdout(), d)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printPackageDiff renders a diff as `rpm-ostree db diff` does.
func printPackageDiff(w io.Writer, d dbus.PackageDiff) {
	fmt.Fprintf(w, "From: %s\n  To: %s\n", d.From, d.To)
	if d.Empty() {
		fmt.Fprintln(w, "No package changes.")
		return
	}
	var up, down, removed, added []string
	for _, c := range d.Upgraded {
		up = append(up, fmt.Sprintf("%s %s -> %s", c.Name, c.From, c.To))
	}
	for _, c := range d.Downgraded {
		down = append(down, fmt.Sprintf("%s %s -> %s", c.Name, c.From, c.To))
	}
	for _, p := range d.Removed {
		removed = append(removed, p.NEVRA)
	}
	for _, p := range d.Added {
		added = append(added, p.NEVRA)
	}
	printSections(w, up, down, removed, added)
}

// printSections prints the non-empty sections of a package diff.
func printSections(w io.Writer, up, down, removed, added []string) {
	for _, sec := range []struct {
		title string
		items []string
	}{{"Upgraded", up}, {"Downgraded", down}, {"Removed", removed}, {"Added", added}} {
		if len(sec.items) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s:\n", sec.title)
		for _, it := range sec.items {
			fmt.Fprintf(w, "  %s\n", it)
		}
	}
}

// printResultDiff prints the package changes a transaction that deployed
// reports in its result (upgraded, downgraded, added, removed); nothing when
// it deployed nothing.
func printResultDiff(w io.Writer, data map[string]any) {
	if _, ok := data["upgraded"]; !ok {
		return
	}
	list := func(k string) []string { l, _ := data[k].([]string); return l }
	up, down, removed, added := list("upgraded"), list("downgraded"), list("removed"), list("added")
	if len(up)+len(down)+len(removed)+len(added) == 0 {
		fmt.Fprintln(w, "No package changes.")
		return
	}
	printSections(w, up, down, removed, added)
}

func resetCmd() *cobra.Command {
	var overlays, overrides, kargs bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Drop layered packages, overrides and extra kernel arguments: back to the plain base, in one new deployment",
		Long: "Write a new deployment of the plain base: without the layered packages (--overlays), the package\n" +
			"overrides (--overrides) and the kernel arguments beyond libostree's ostree= (--kargs); without any\n" +
			"of these options, all three. The followed ref and the system containers stay.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := map[string]any{}
			for k, v := range map[string]bool{"overlays": overlays, "overrides": overrides, "kargs": kargs} {
				if v {
					opts[k] = true
				}
			}
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				txn, err := c.Reset(ctx, opts)
				if err != nil {
					return err
				}
				res, err := runTxn(ctx, cmd.OutOrStdout(), txn)
				if err != nil {
					return err
				}
				printResultDiff(cmd.OutOrStdout(), res.Data)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&overlays, "overlays", "l", false, "drop only the layered packages")
	f.BoolVarP(&overrides, "overrides", "o", false, "drop only the package overrides")
	f.BoolVar(&kargs, "kargs", false, "drop only the extra kernel arguments")
	return cmd
}
