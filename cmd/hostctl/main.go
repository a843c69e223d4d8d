// Command hostctl is the client of hostd: it asks hostd for changes over
// D-Bus and renders the host's state and the progress of transactions.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
)

// Exit codes.
const (
	exitOK        = 0
	exitError     = 1
	exitNoChanges = 77  // upgrade --check: no update available
	exitCancelled = 130 // interrupted (SIGINT): the transaction was cancelled, or left running with --detach
)

// exitError carries an exit code other than 1 without an error message.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit %d", int(c)) }

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// The first Ctrl-C cancels the transaction being followed (hostctl
		// waits for hostd to confirm); a second one leaves at once, and hostd
		// still cancels the transaction of a client that left.
		<-sigs
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "Interrupted again: leaving; hostd cancels the transaction of a client that left (unless --detach).")
		os.Exit(exitCancelled)
	}()
	err := newRoot().ExecuteContext(ctx)
	signal.Stop(sigs)
	os.Exit(exitStatus(ctx, err))
}

func exitStatus(ctx context.Context, err error) int {
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	case ctx.Err() != nil && errors.Is(err, dbus.ErrLeftRunning):
		fmt.Fprintln(os.Stderr, err)
		return exitCancelled
	case ctx.Err() != nil && errdefs.IsCancelled(err):
		fmt.Println("Cancelled.")
		return exitCancelled
	}
	msg := err.Error()
	if name := dbus.ErrorName(err); name != dbus.ErrFailed {
		msg += " (" + name + ")"
	}
	fmt.Fprintln(os.Stderr, "error:", msg)
	return exitError
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "hostctl",
		Short:         "Manage an image-based host: OS updates, rollbacks, layered packages, system containers",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(statusCmd(), cancelCmd(), historyCmd())
	root.AddCommand(withDetach(upgradeCmd(), deployCmd(), rebaseCmd(), rollbackCmd(), cleanupCmd())...)
	root.AddCommand(withDetach(packageCommands()...)...)
	root.AddCommand(withDetach(overrideCmd())...)
	root.AddCommand(withDetach(lifecycleCommands()...)...)
	root.AddCommand(append(withDetach(resetCmd()), diffCmd())...)
	root.AddCommand(containerCommands()...)
	root.AddCommand(remoteCmd())
	root.AddCommand(reloadCmd(), fleetCmd())
	return root
}

// withClient connects to hostd for the length of fn. The transactions a
// command with --detach begins outlive hostctl.
func withClient(cmd *cobra.Command, fn func(ctx context.Context, c *dbus.Client) error) error {
	ctx := cmd.Context()
	c, err := dbus.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if f := cmd.Flags().Lookup("detach"); f != nil {
		c.Detach = f.Value.String() == "true"
	}
	return fn(ctx, c)
}

// withDetach adds --detach to commands that start transactions.
func withDetach(cmds ...*cobra.Command) []*cobra.Command {
	for _, c := range cmds {
		if c.RunE == nil {
			withDetach(c.Commands()...)
			continue
		}
		c.Flags().Bool("detach", false, "let the transaction go on when hostctl leaves (Ctrl-C, a closed terminal); without it hostd cancels it")
	}
	return cmds
}
