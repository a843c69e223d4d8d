package main

import "github.com/spf13/cobra"

// packageCommands are the package layering commands (pkg-add, pkg-remove, refresh-md).
func packageCommands() []*cobra.Command { return nil }
