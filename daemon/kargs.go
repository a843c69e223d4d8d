package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hostctl/hostctl/bootloader"
	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/errdefs"
)

// A kargs transaction edits the default deployment's kernel arguments and
// writes them into a new generation of the same commit (writeGeneration with
// a kargs override): no repository is contacted, layered packages and
// containers stay as they are. Later changes (upgrade, deploy, rebase,
// pkg-change, containers) carry the arguments over, because every change
// passes the default deployment's arguments to libostree.
//
// The edits come in order, each "OP=ARG" with OP one of the
// `rpm-ostree kargs` options (append, append-if-missing, delete,
// delete-if-present, replace) or set (the whole list, as `--editor` leaves
// it). They are applied one after the other; one that fails refuses the
// whole call and nothing changes.

// kargsOps are the edit operations a kargs transaction knows.
var kargsOps = map[string]func(*bootloader.Kargs, string) error{
	"append":            (*bootloader.Kargs).Append,
	"append-if-missing": (*bootloader.Kargs).AppendIfMissing,
	"delete":            (*bootloader.Kargs).Delete,
	"delete-if-present": (*bootloader.Kargs).DeleteIfPresent,
	"replace":           (*bootloader.Kargs).Replace,
	"set":               nil, // handled in applyKargsEdits
}

// ostreeKarg is the argument libostree writes and owns: it names the deployment.
const ostreeKarg = "ostree"

// kargsEdit is one parsed edit.
type kargsEdit struct{ op, arg string }

// parseKargsEdits parses the edits of a kargs request.
func parseKargsEdits(edits []string) ([]kargsEdit, error) {
	if len(edits) == 0 {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "kargs needs at least one edit (append=K=V, append-if-missing=K=V, delete=K, delete-if-present=K, replace=K=V, replace=K=OLD=NEW, set=ARGS); to read the arguments, read the kargs of the default deployment")
	}
	out := make([]kargsEdit, 0, len(edits))
	for _, e := range edits {
		op, arg, ok := strings.Cut(e, "=")
		if _, known := kargsOps[op]; !ok || !known {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "kargs edit %q: want OP=ARGUMENT with OP one of append, append-if-missing, delete, delete-if-present, replace, set", e)
		}
		if op != "set" && strings.TrimSpace(arg) == "" {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "kargs edit %q: %s needs a kernel argument (KEY or KEY=VALUE)", e, op)
		}
		if op != "set" {
			for _, a := range bootloader.ParseKargs(arg).Args() {
				if a.Key == ostreeKarg {
					return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "kargs edit %q: the %s= argument names the deployment and is written by libostree; it cannot be edited", e, ostreeKarg)
				}
			}
		}
		out = append(out, kargsEdit{op: op, arg: arg})
	}
	return out, nil
}

// applyKargsEdits applies edits in order to cur (a deployment's options
// line) and returns the new list. The ostree= argument is kept as it is.
func applyKargsEdits(cur string, edits []kargsEdit) (bootloader.Kargs, error) {
	k := bootloader.ParseKargs(cur)
	for _, e := range edits {
		if e.op == "set" {
			next, err := setKargs(k, e.arg)
			if err != nil {
				return k, err
			}
			k = next
			continue
		}
		if err := kargsOps[e.op](&k, e.arg); err != nil {
			return k, errdefs.Wrap(errdefs.ErrInvalidArgument, fmt.Errorf("--%s=%s: %w; nothing was changed", e.op, e.arg, err))
		}
	}
	return k, nil
}

// setKargs replaces the user's arguments of cur by line (the --editor
// edit), keeping libostree's ostree= where it was: last if it was last,
// else at the same index, so that an unchanged line is no change.
func setKargs(cur bootloader.Kargs, line string) (bootloader.Kargs, error) {
	var user []string
	for _, a := range bootloader.ParseKargs(line).Args() {
		if a.Key != ostreeKarg { // libostree's, kept from the deployment
			user = append(user, a.String())
		}
	}
	args := cur.Args()
	pos, own := -1, ""
	for i, a := range args {
		if a.Key == ostreeKarg {
			pos, own = i, a.String()
			break
		}
	}
	if pos >= 0 {
		if pos == len(args)-1 || pos > len(user) {
			pos = len(user)
		}
		user = append(user[:pos], append([]string{own}, user[pos:]...)...)
	}
	next := bootloader.ParseKargs("")
	for _, a := range user {
		if err := next.Append(a); err != nil {
			return cur, errdefs.Wrap(errdefs.ErrInvalidArgument, fmt.Errorf("kernel arguments: %w", err))
		}
	}
	return next, nil
}

// userKargs is a deployment's options line without libostree's ostree=
// argument: the kernel arguments a user sets.
func userKargs(options string) string {
	var parts []string
	for _, a := range bootloader.ParseKargs(options).Args() {
		if a.Key != ostreeKarg {
			parts = append(parts, a.String())
		}
	}
	return strings.Join(parts, " ")
}

// kargsBaseKey in the origin's [kargs] records the kernel arguments a
// deployment had before the first `hostctl kargs` change in its line.
const kargsBaseKey = "base"

func validKargs(req dbus.Request) error {
	_, err := parseKargsEdits(req.Options.Strings("edits"))
	return err
}

// kargs edits the default deployment's kernel arguments into a new
// generation; an edit that changes nothing makes no deployment.
func (e *Engine) kargs(ctx context.Context, t *txn, opts dbus.Options) (map[string]any, error) {
	edits, err := parseKargsEdits(opts.Strings("edits"))
	if err != nil {
		return nil, err
	}
	st, err := e.changeStart(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := opts["expect"]; ok && userKargs(opts.String("expect")) != userKargs(st.def.Kargs) {
		// The caller edits what it read (rpm-ostree's existing_kernel_arg_string),
		// and the arguments changed since: its edit would undo that change.
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "kargs: the kernel arguments of %s changed since they were read: they are %q, the caller expected %q; read them again and redo the edit",
			st.def.ID(), userKargs(st.def.Kargs), userKargs(opts.String("expect")))
	}
	next, err := applyKargsEdits(st.def.Kargs, edits)
	if err != nil {
		if errors.Is(err, bootloader.ErrKargAmbiguous) || errors.Is(err, bootloader.ErrKargNotFound) {
			return nil, errdefs.Wrap(errdefs.ErrInvalidArgument, err)
		}
		return nil, err
	}
	before := userKargs(st.def.Kargs)
	after := userKargs(next.String())
	res := map[string]any{"kargs": after, "previous-kargs": before}
	if next.String() == bootloader.ParseKargs(st.def.Kargs).String() {
		t.message("No change.")
		res["changed"] = false
		return res, nil
	}
	args := make([]string, 0, next.Len())
	for _, a := range next.Args() {
		args = append(args, a.String())
	}
	st.kargs = args
	d, err := e.writeGeneration(ctx, t, st, func(o *deploy.Origin) {
		// The arguments before hostctl first changed them: what
		// `hostctl reset --kargs` goes back to (the installer's root=,
		// console=... are not hostctl's to drop).
		if _, ok := o.Get(deploy.GroupKargs, kargsBaseKey); !ok {
			o.Set(deploy.GroupKargs, kargsBaseKey, before)
		}
	})
	if err != nil {
		return nil, err
	}
	res["deployment"], res["changed"] = d.ID(), true
	t.message(fmt.Sprintf("Kernel arguments: %s", orNoKargs(after)))
	t.message(fmt.Sprintf("Deployed %s with the new kernel arguments. Reboot to use them.", d.ID()))
	return res, nil
}

func orNoKargs(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
