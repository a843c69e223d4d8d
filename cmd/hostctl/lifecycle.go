package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hostctl/hostctl/bootloader"
	"github.com/hostctl/hostctl/dbus"
)

// lifecycleCommands are the day-two commands: kargs, pin, unpin.
func lifecycleCommands() []*cobra.Command {
	return []*cobra.Command{kargsCmd(), pinCmd("pin", false), pinCmd("unpin", true), finalizeCmd()}
}

// finalizeCmd is `hostctl finalize [--reboot] [CHECKSUM]`: it lets the
// deployment staged with --lock-finalization boot.
func finalizeCmd() *cobra.Command {
	var reboot bool
	cmd := &cobra.Command{
		Use:   "finalize [--reboot] [CHECKSUM]",
		Short: "Let the staged deployment (upgrade --stage --lock-finalization) enter the boot entries at shutdown",
		Long: "Remove the finalization lock of the staged deployment, so that it is written into the boot entries when the\n" +
			"host shuts down, as `rpm-ostree finalize-deployment` does. With CHECKSUM (its Commit in `hostctl status`), refuse\n" +
			"if another deployment is staged now. With --reboot, reboot the host at once.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			checksum := ""
			if len(args) == 1 {
				checksum = args[0]
			}
			opts := map[string]any{}
			if reboot {
				opts["reboot"] = true
			}
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				txn, err := c.FinalizeDeployment(ctx, checksum, opts)
				if err != nil {
					return err
				}
				r := newRenderer(cmd.OutOrStdout())
				defer r.close()
				rebooting := false
				_, err = txn.Run(ctx, func(ev dbus.Event) {
					if ev.Progress != nil && ev.Progress.Stage == "reboot" {
						rebooting = true
					}
					r.event(ev)
				})
				var named *dbus.Error
				if err != nil && rebooting && !errors.As(err, &named) {
					// The reboot took hostd (or this connection) down first.
					fmt.Fprintln(cmd.OutOrStdout(), "The host is rebooting.")
					return nil
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot the host after unlocking")
	return cmd
}

// kargsEdits collects the edit flags of `hostctl kargs` in the order they
// were given: each flag appends OP=ARG to the same list.
type kargsEdits struct{ list []string }

// editFlag is one edit option (--append, --delete...) of `hostctl kargs`.
type editFlag struct {
	op    string
	edits *kargsEdits
}

func (f editFlag) String() string { return "" }

func (f editFlag) Set(v string) error {
	f.edits.list = append(f.edits.list, f.op+"="+v)
	return nil
}

func (f editFlag) Type() string { return "KARG" }

func kargsCmd() *cobra.Command {
	edits := &kargsEdits{}
	var editor bool
	cmd := &cobra.Command{
		Use:   "kargs [--append=K=V] [--delete=K] [--replace=K=V]...",
		Short: "Show the default deployment's kernel arguments, or change them in a new deployment",
		Long: "Without options, print the kernel arguments of the default deployment (without libostree's ostree=).\n" +
			"With options, edit them in the order given and write a new deployment of the same commit whose boot\n" +
			"entry carries them; later upgrades, deploys, rebases and package changes keep them. No repository is contacted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				list := edits.list
				if editor {
					if len(list) > 0 {
						return fmt.Errorf("--editor cannot be combined with other edits: give either")
					}
					cur, err := defaultKargs(ctx, c)
					if err != nil {
						return err
					}
					edited, err := editKargs(ctx, cur)
					if err != nil {
						return err
					}
					list = []string{"set=" + edited}
				}
				if len(list) == 0 {
					cur, err := defaultKargs(ctx, c)
					if err != nil {
						return err
					}
					fmt.Fprintln(cmd.OutOrStdout(), cur)
					return nil
				}
				txn, err := c.Kargs(ctx, list, nil)
				if err != nil {
					return err
				}
				_, err = runTxn(ctx, cmd.OutOrStdout(), txn)
				return err
			})
		},
	}
	f := cmd.Flags()
	for _, op := range []struct{ name, usage string }{
		{"append", "append KEY=VALUE (or KEY), even when KEY is already there"},
		{"append-if-missing", "append KEY=VALUE unless KEY is already there"},
		{"delete", "delete KEY (the only one of that name) or KEY=VALUE"},
		{"delete-if-present", "delete KEY or KEY=VALUE when KEY is there"},
		{"replace", "replace KEY=VALUE (the only KEY) or KEY=OLD=NEW"},
	} {
		f.Var(editFlag{op: op.name, edits: edits}, op.name, op.usage+" (repeatable; all edits apply in the order given)")
	}
	f.BoolVar(&editor, "editor", false, "edit the arguments in $EDITOR")
	return cmd
}

// defaultKargs reads the default deployment's kernel arguments without ostree=.
func defaultKargs(ctx context.Context, c *dbus.Client) (string, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	for _, d := range st.Deployments {
		if d.Default {
			return userKargs(d.Kargs), nil
		}
	}
	return "", fmt.Errorf("the sysroot %s has no deployment: deploy one first", st.Sysroot)
}

// userKargs drops libostree's ostree= argument from an options line.
func userKargs(options string) string {
	var parts []string
	for _, a := range bootloader.ParseKargs(options).Args() {
		if a.Key != "ostree" {
			parts = append(parts, a.String())
		}
	}
	return strings.Join(parts, " ")
}

// editKargs opens $EDITOR (else $VISUAL, else vi) on the arguments, one a
// line, and returns what was saved, lines starting with # left out.
func editKargs(ctx context.Context, cur string) (string, error) {
	ed := os.Getenv("EDITOR")
	if ed == "" {
		ed = os.Getenv("VISUAL")
	}
	if ed == "" {
		ed = "vi"
	}
	dir, err := os.MkdirTemp("", "hostctl-kargs-")
	if err != nil {
		return "", fmt.Errorf("kargs --editor: %w", err)
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "kargs")
	var b strings.Builder
	b.WriteString("# Kernel arguments of the default deployment, one or more a line.\n# Lines starting with # are ignored. Save and quit to apply; an unchanged file changes nothing.\n")
	for _, a := range bootloader.ParseKargs(cur).Args() {
		b.WriteString(a.String() + "\n")
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		return "", fmt.Errorf("kargs --editor: %w", err)
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", ed+` "$1"`, "sh", p)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kargs --editor: %s failed (%w); nothing was changed", ed, err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("kargs --editor: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, " "), nil
}

// pinCmd is `hostctl pin [--unpin] INDEX` (unpin false) or `hostctl unpin INDEX`.
func pinCmd(use string, unpinCommand bool) *cobra.Command {
	var unpin bool
	short := "Pin a deployment (by its index in `hostctl status`, 0 is the default) so that no upgrade or cleanup removes it"
	if unpinCommand {
		short = "Unpin a deployment (by its index in `hostctl status`)"
	}
	cmd := &cobra.Command{
		Use:   use + " INDEX",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			idx, err := strconv.Atoi(args[0])
			if err != nil || idx < 0 {
				return fmt.Errorf("%s: INDEX must be a deployment's position in `hostctl status` (0, 1, ...), not %q", use, args[0])
			}
			return withClient(cmd, func(ctx context.Context, c *dbus.Client) error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				if idx >= len(st.Deployments) {
					return fmt.Errorf("%s: no deployment at index %d: there are %d (0 to %d)", use, idx, len(st.Deployments), len(st.Deployments)-1)
				}
				txn, err := c.Pin(ctx, st.Deployments[idx].ID, !(unpin || unpinCommand), nil)
				if err != nil {
					return err
				}
				_, err = runTxn(ctx, cmd.OutOrStdout(), txn)
				return err
			})
		},
	}
	if !unpinCommand {
		cmd.Flags().BoolVarP(&unpin, "unpin", "u", false, "unpin the deployment instead")
	}
	return cmd
}
