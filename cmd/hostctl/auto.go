package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
)

func reloadCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Make hostd reread its settings (/etc/hostctl/hostd.conf)",
		Long:  "Make hostd reread /etc/hostctl/hostd.conf (or the file of its --config). A file it cannot use is refused naming the line and key, and the settings in use stay.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				if err := c.ReloadConfig(ctx); err != nil {
					return err
				}
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Reloaded. AutomaticUpdatePolicy: %s\n", st.AutomaticUpdatePolicy)
				return nil
			})
		},
	}
}

// triggerAutomatic is `upgrade --trigger-automatic-update-policy`: it runs
// the configured policy, or with --check or --stage that mode; otherFlags
// says whether another upgrade flag was given (refused).
func triggerAutomatic(cmd *cobra.Command, opts map[string]any, otherFlags bool) error {
	stage, _ := opts["stage"].(bool)
	check, _ := cmd.Flags().GetBool("check")
	lock, _ := opts["lock-finalization"].(bool)
	if lock || otherFlags {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "--trigger-automatic-update-policy takes only --check or --stage (the mode of this run)")
	}
	topts := map[string]any{}
	switch {
	case check && stage:
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "--check and --stage: pick one mode")
	case check:
		topts["mode"] = "check"
	case stage:
		topts["mode"] = "stage"
	}
	return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
		txn, err := c.AutomaticUpdateTrigger(ctx, topts)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if txn == nil {
			fmt.Fprintln(w, "Automatic updates are disabled (AutomaticUpdatePolicy=none in hostd.conf).")
			return nil
		}
		res, err := runTxn(ctx, w, txn)
		if err != nil {
			return err
		}
		if r, _ := res.Data["automatic-result"].(string); r != "" {
			fmt.Fprintf(w, "Automatic update: %s\n", r)
		}
		return nil
	})
}

// printAutomatic is status's AutomaticUpdates line.
func printAutomatic(w io.Writer, st dbus.Status) {
	p := st.AutomaticUpdatePolicy
	if p == "" {
		return // a hostd without automatic updates
	}
	line := p
	if p == "none" {
		line = "disabled"
	}
	if c := st.LastAutomaticCheck; c != nil {
		what := c.Result
		if c.Error != "" {
			what = "failed: " + c.Error
		}
		line += fmt.Sprintf("; last run %s: %s", time.Unix(int64(c.Time), 0).UTC().Format(time.RFC3339), what)
	}
	fmt.Fprintf(w, "\nAutomaticUpdates: %s\n", line)
}
