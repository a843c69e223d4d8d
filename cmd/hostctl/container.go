package main

import "github.com/spf13/cobra"

// containerCommands are the image and system container commands.
func containerCommands() []*cobra.Command { return nil }
