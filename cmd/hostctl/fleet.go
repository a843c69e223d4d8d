package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostctl/hostctl/dbus"
)

func fleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Show or free the fleet slots of this host's group (RebootStrategy=fleet)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "List the hosts holding a slot of this host's fleet group",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				g, err := c.FleetStatus(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					enc := json.NewEncoder(w)
					enc.SetIndent("", "  ")
					return enc.Encode(g)
				}
				printFleetGroup(w, g)
				return nil
			})
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the group as JSON")
	release := &cobra.Command{
		Use:   "release [ID]",
		Short: "Free the slot a host holds (default: this host), e.g. of a host that died holding it",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				released, err := c.FleetRelease(ctx, id)
				if err != nil {
					return err
				}
				who := id
				if who == "" {
					who = "this host"
				}
				if released {
					fmt.Fprintf(cmd.OutOrStdout(), "Released the slot of %s.\n", who)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s held no slot. No change.\n", who)
				}
				return nil
			})
		},
	}
	cmd.AddCommand(status, release)
	return cmd
}

func printFleetGroup(w io.Writer, g dbus.FleetGroup) {
	slots := "unknown"
	if g.Slots > 0 {
		slots = fmt.Sprint(g.Slots)
	}
	fmt.Fprintf(w, "Group: %s (%s)\nSlots: %s\nThis host: %s", g.Group, g.Backend, slots, g.HostID)
	if g.Held {
		fmt.Fprint(w, " (holds a slot)")
	}
	fmt.Fprintln(w)
	if g.Backend == "fleetlock" {
		fmt.Fprintln(w, "Holders: not told by the FleetLock protocol")
		return
	}
	if len(g.Holders) == 0 {
		fmt.Fprintln(w, "Holders: none")
		return
	}
	fmt.Fprintln(w, "Holders:")
	for i, h := range g.Holders {
		mark := ""
		if h == g.HostID {
			mark = " (this host)"
		}
		fmt.Fprintf(w, "  %d. %s%s\n", i+1, h, mark)
	}
}

// printReboot is status's Reboots line: the strategy and what it waits for.
func printReboot(w io.Writer, st dbus.Status) {
	r := st.Reboot
	if r == nil {
		return
	}
	line := r.Strategy
	var extra []string
	switch r.Strategy {
	case "off":
		line = "off (the next reboot boots a staged update)"
	case "periodic":
		extra = append(extra, "windows "+r.Windows)
		if r.WindowStart != 0 {
			start := time.Unix(int64(r.WindowStart), 0).UTC()
			if time.Now().Before(start) {
				extra = append(extra, "next window "+start.Format(time.RFC3339))
			} else {
				extra = append(extra, "in a window until "+time.Unix(int64(r.WindowEnd), 0).UTC().Format(time.RFC3339))
			}
		}
	case "fleet":
		extra = append(extra, "group "+r.Group)
		if r.HostID != "" {
			extra = append(extra, "host "+r.HostID)
		}
	}
	if len(extra) > 0 {
		line += " (" + strings.Join(extra, ", ") + ")"
	}
	if r.Message != "" {
		line += "; " + r.Message
	}
	fmt.Fprintf(w, "Reboots: %s\n", line)
}
