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
)

// Exit codes.
const (
	exitOK        = 0
	exitError     = 1
	exitNoChanges = 77 // upgrade --check: no update available
)

// exitError carries an exit code other than 1 without an error message.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit %d", int(c)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	os.Exit(exitStatus(err))
}

func exitStatus(err error) int {
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
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
	root.AddCommand(statusCmd(), upgradeCmd(), deployCmd(), rebaseCmd(), rollbackCmd(), cleanupCmd(), cancelCmd(), historyCmd())
	root.AddCommand(packageCommands()...)
	root.AddCommand(containerCommands()...)
	return root
}

// withClient connects to hostd for the length of fn.
func withClient(cmd *cobra.Command, fn func(ctx context.Context, c *dbus.Client) error) error {
	ctx := cmd.Context()
	c, err := dbus.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}
