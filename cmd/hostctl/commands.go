package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostctl/hostctl/dbus"
)

func statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the deployments and the transaction in progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(st)
				}
				printStatus(cmd.OutOrStdout(), st)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(w interface{ Write([]byte) (int, error) }, st dbus.Status) {
	switch {
	case st.Transaction != nil:
		fmt.Fprintf(w, "State: busy\nTransaction: %s %s\n", st.Transaction.Kind, st.Transaction.ID)
	case st.CleanupPending:
		fmt.Fprintln(w, "State: busy\nCleanup: removing the deployment the last transaction replaced and pruning the repository (the next transaction waits for it)")
	default:
		fmt.Fprintln(w, "State: idle")
	}
	booted := false
	for _, d := range st.Deployments {
		booted = booted || d.Booted
	}
	if !booted && st.Sysroot != "/" {
		fmt.Fprintf(w, "Sysroot: %s (not booted; the first deployment is the default)\n", st.Sysroot)
	}
	fmt.Fprintln(w, "Deployments:")
	for i, d := range st.Deployments {
		if i > 0 {
			fmt.Fprintln(w)
		}
		mark := " "
		if d.Booted {
			mark = "●"
		}
		origin := d.Origin
		if origin == "" {
			origin = "(no origin)"
		}
		fmt.Fprintf(w, "%s %s\n", mark, origin)
		field := func(k, v string) { fmt.Fprintf(w, "%26s %s\n", k+":", v) }
		if d.RemoteError != "" {
			field("Warning", d.RemoteError)
		}
		ts := time.Unix(int64(d.Timestamp), 0).UTC().Format(time.RFC3339)
		if d.Version != "" {
			field("Version", fmt.Sprintf("%s (%s)", d.Version, ts))
		} else {
			field("Timestamp", ts)
		}
		if d.BaseChecksum != "" {
			field("BaseCommit", d.BaseChecksum)
			field("Commit", d.Checksum)
		} else {
			field("Commit", d.Checksum)
		}
		if active := without(d.Packages, d.Inactive); len(active) > 0 {
			field("LayeredPackages", strings.Join(active, " "))
		}
		if len(d.Inactive) > 0 {
			field("InactiveRequests", strings.Join(d.Inactive, " "))
		}
		if len(d.RemovedBasePackages) > 0 {
			field("RemovedBasePackages", strings.Join(d.RemovedBasePackages, " "))
		}
		if len(d.ReplacedBasePackages) > 0 {
			field("ReplacedBasePackages", strings.Join(d.ReplacedBasePackages, ", "))
		}
		if inactive := inactiveReplacements(d); len(inactive) > 0 {
			field("InactiveReplacements", strings.Join(inactive, " ")+" (the base has these builds)")
		}
		if len(d.Missing) > 0 {
			field("NotLayered", strings.Join(d.Missing, " ")+" (requested, but not in this deployment's commit)")
			field("CommitLayers", listOrNone(d.Layered))
		}
		for i, c := range d.Containers {
			if i == 0 {
				field("Containers", c)
			} else {
				fmt.Fprintf(w, "%26s %s\n", "", c)
			}
		}
		if d.Pinned {
			field("Pinned", "yes")
		}
		switch {
		case d.Staged && d.FinalizationLocked:
			field("Staged", "yes, finalization locked: `hostctl finalize` lets it boot, a reboot before that drops it")
		case d.Staged:
			field("Staged", "yes: it enters the boot entries at shutdown")
		}
	}
	if u := st.CachedUpdate; u != nil {
		fmt.Fprintln(w)
		v := u.Version
		if v == "" {
			v = "(no version)"
		}
		fmt.Fprintf(w, "AvailableUpdate: %s (%s), checked %s\n", v, u.Checksum, time.Unix(int64(u.Checked), 0).UTC().Format(time.RFC3339))
		if d := u.DiffSummary(); d != "" {
			fmt.Fprintf(w, "%16s %s\n", "Diff:", d)
		}
	}
	printAutomatic(w, st)
	printReboot(w, st)
}

func upgradeCmd() *cobra.Command {
	var check, preview, downloadOnly, allowDowngrade, trigger bool
	var sf stageFlags
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Pull the latest commit of the followed ref and deploy it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := sf.options()
			for k, v := range map[string]bool{"check": check, "preview": preview, "download-only": downloadOnly, "allow-downgrade": allowDowngrade} {
				if v {
					opts[k] = true
				}
			}
			if trigger {
				return triggerAutomatic(cmd, opts, preview || downloadOnly || allowDowngrade)
			}
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				txn, err := c.Upgrade(ctx, opts)
				if err != nil {
					return err
				}
				res, err := runTxn(ctx, cmd.OutOrStdout(), txn)
				if err != nil {
					return err
				}
				if check || preview {
					return printCheck(cmd, res)
				}
				printResultDiff(cmd.OutOrStdout(), res.Data)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&check, "check", false, "only tell whether an update is available and its package diff, recorded for status (exit 77 when not)")
	f.BoolVar(&preview, "preview", false, "like --check, and describe the update")
	f.BoolVar(&downloadOnly, "download-only", false, "pull the update without deploying it")
	f.BoolVar(&allowDowngrade, "allow-downgrade", false, "allow a target older than the current commit")
	f.BoolVar(&trigger, "trigger-automatic-update-policy", false, "run the automatic update policy of hostd.conf (none, check or stage), as hostctl-automatic.timer does; --check or --stage picks the mode for this run")
	sf.add(cmd)
	return cmd
}

// stageFlags are --stage and --lock-finalization of upgrade, deploy and rebase.
type stageFlags struct{ stage, lock bool }

func (s *stageFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&s.stage, "stage", false, "write the new deployment staged: it enters the boot entries when the host shuts down (booted hosts only)")
	cmd.Flags().BoolVar(&s.lock, "lock-finalization", false, "with --stage: keep the staged deployment out of the boot entries until `hostctl finalize`")
}

func (s *stageFlags) options() map[string]any {
	opts := map[string]any{}
	if s.stage {
		opts["stage"] = true
	}
	if s.lock {
		opts["lock-finalization"] = true
	}
	return opts
}

func printCheck(cmd *cobra.Command, res dbus.Result) error {
	w := cmd.OutOrStdout()
	avail, _ := res.Data["update-available"].(bool)
	if !avail {
		fmt.Fprintln(w, "No updates available.")
		return exitCode(exitNoChanges)
	}
	fmt.Fprintln(w, "AvailableUpdate:")
	if v, _ := res.Data["version"].(string); v != "" {
		ts, _ := res.Data["timestamp"].(uint64)
		fmt.Fprintf(w, "%16s %s (%s)\n", "Version:", v, time.Unix(int64(ts), 0).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "%16s %v\n", "Commit:", res.Data["checksum"])
	if cv, _ := res.Data["current-version"].(string); cv != "" {
		fmt.Fprintf(w, "%16s %s\n", "Current:", cv)
	}
	for _, sec := range []struct{ key, title string }{{"upgraded", "Upgraded"}, {"downgraded", "Downgraded"}, {"removed", "Removed"}, {"added", "Added"}} {
		items, _ := res.Data[sec.key].([]string)
		if len(items) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s:\n", sec.title)
		for _, it := range items {
			fmt.Fprintf(w, "    %s\n", it)
		}
	}
	if items, _ := res.Data["layered-changes"].([]string); len(items) > 0 {
		fmt.Fprintln(w, "  Layered packages:")
		for _, it := range items {
			fmt.Fprintf(w, "    %s\n", it)
		}
	}
	return nil
}

// simpleTxn is a command whose work is one transaction with nothing to print but its messages.
func simpleTxn(cmd *cobra.Command, begin func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error)) error {
	return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
		txn, err := begin(ctx, c)
		if err != nil {
			return err
		}
		_, err = runTxn(ctx, cmd.OutOrStdout(), txn)
		return err
	})
}

func deployCmd() *cobra.Command {
	var sf stageFlags
	cmd := &cobra.Command{
		Use:   "deploy REVISION",
		Short: "Deploy a commit of the followed ref, by version or checksum (revision=CHECKSUM)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.Deploy(ctx, args[0], sf.options())
			})
		},
	}
	sf.add(cmd)
	return cmd
}

func rebaseCmd() *cobra.Command {
	var sf stageFlags
	var preview bool
	cmd := &cobra.Command{
		Use:   "rebase REMOTE:REF",
		Short: "Follow another ref and deploy its latest commit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !preview {
				return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
					return c.Rebase(ctx, args[0], sf.options())
				})
			}
			opts := sf.options()
			opts["preview"] = true
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				txn, err := c.Rebase(ctx, args[0], opts)
				if err != nil {
					return err
				}
				res, err := runTxn(ctx, cmd.OutOrStdout(), txn)
				if err != nil {
					return err
				}
				return printCheck(cmd, res)
			})
		},
	}
	cmd.Flags().BoolVar(&preview, "preview", false, "only fetch the ref's commit and package database, and print what the rebase would change")
	sf.add(cmd)
	return cmd
}

func rollbackCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback",
		Short: "Make the previous deployment the default again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.Rollback(ctx, nil)
			})
		},
	}
}

func cleanupCmd() *cobra.Command {
	var pending, rollback, repomd bool
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove the pending or rollback deployment, cached packages and metadata, and unreferenced objects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return simpleTxn(cmd, func(ctx context.Context, c *dbus.Client) (*dbus.Txn, error) {
				return c.Cleanup(ctx, map[string]any{"pending": pending, "rollback": rollback, "repomd": repomd})
			})
		},
	}
	cmd.Flags().BoolVarP(&pending, "pending", "p", false, "remove the pending deployment")
	cmd.Flags().BoolVarP(&rollback, "rollback", "r", false, "remove the rollback deployment")
	cmd.Flags().BoolVarP(&repomd, "repomd", "m", false, "remove cached packages no deployment layers, and the repository metadata")
	return cmd
}

func cancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel",
		Short: "Cancel the transaction in progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				if err := c.Cancel(ctx); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "Cancelled.")
				return nil
			})
		},
	}
}

func historyCmd() *cobra.Command {
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List finished and interrupted transactions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				recs, err := c.History(ctx, limit)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					enc := json.NewEncoder(w)
					enc.SetIndent("", "  ")
					return enc.Encode(recs)
				}
				for _, r := range recs {
					fmt.Fprintf(w, "%s  %-19s %-11s %s", time.Unix(int64(r.Started), 0).UTC().Format(time.RFC3339), r.Kind, r.State, r.ID)
					if r.Error != "" {
						fmt.Fprintf(w, "  %s", r.Error)
					}
					fmt.Fprintln(w)
					if r.Before != r.After && r.After != "" {
						fmt.Fprintf(w, "%22s generation %s -> %s\n", "", orNone(r.Before), r.After)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "how many to show (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// without returns the items of l not in drop, in order.
func without(l, drop []string) []string {
	var out []string
	for _, x := range l {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, " ")
}

// inactiveReplacements are the replacements a deployment's origin asks for
// that its commit did not make (its base has that very build).
func inactiveReplacements(d dbus.Deployment) []string {
	var out []string
	for _, r := range d.ReplaceRequests {
		made := false
		for _, line := range d.ReplacedBasePackages {
			if strings.HasSuffix(line, " -> "+r) {
				made = true
				break
			}
		}
		if !made {
			out = append(out, r)
		}
	}
	return out
}
