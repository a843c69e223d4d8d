package dbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// Client is the typed client of the API.
type Client struct {
	conn *godbus.Conn
	obj  godbus.BusObject
	// Detach makes the transactions this client begins outlive it: without
	// it, hostd cancels them when the client leaves the bus before they
	// finished, and Txn.Run cancels them when its context is done.
	Detach bool
}

// Connect reaches hostd on the system bus, or the bus DBUS_SYSTEM_BUS_ADDRESS
// names. ctx bounds the connecting only: the connection stays open until
// Close, so a client whose context is cancelled (Ctrl-C) can still tell hostd
// to cancel and hear how the transaction ended.
func Connect(ctx context.Context) (*Client, error) {
	type result struct {
		conn *godbus.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		conn, err := godbus.ConnectSystemBus()
		ch <- result{conn, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connect to the system bus: %w (is dbus running? DBUS_SYSTEM_BUS_ADDRESS names another bus)", r.err)
		}
		return NewClient(r.conn), nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("connect to the system bus: %w", ctx.Err())
	}
}

// NewClient uses an open connection.
func NewClient(conn *godbus.Conn) *Client {
	return &Client{conn: conn, obj: conn.Object(BusName, HostPath)}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) call(ctx context.Context, method string, out any, args ...any) error {
	call := c.obj.CallWithContext(ctx, HostInterface+"."+method, 0, args...)
	if call.Err != nil {
		return fromBus(wrapUnreachable(call.Err))
	}
	if out != nil {
		return call.Store(out)
	}
	return nil
}

func wrapUnreachable(err error) error {
	var de godbus.Error
	if errors.As(err, &de) && (de.Name == "org.freedesktop.DBus.Error.ServiceUnknown" || de.Name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
		return fmt.Errorf("hostd is not running (no owner of %s on this bus): start hostd.service: %w", BusName, err)
	}
	return err
}

// Status reads the host's state.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var props map[string]godbus.Variant
	call := c.obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, HostInterface)
	if call.Err != nil {
		return Status{}, fromBus(wrapUnreachable(call.Err))
	}
	if err := call.Store(&props); err != nil {
		return Status{}, fmt.Errorf("read status: %w", err)
	}
	st := Status{Deployments: []Deployment{}}
	st.Sysroot, _ = props["Sysroot"].Value().(string)
	var deps []map[string]godbus.Variant
	if err := props["Deployments"].Store(&deps); err != nil {
		return Status{}, fmt.Errorf("read deployments: %w", err)
	}
	for _, d := range deps {
		st.Deployments = append(st.Deployments, deploymentFromBus(d))
	}
	var active activeValue
	if err := props["ActiveTransaction"].Store(&active); err == nil && active.ID != "" {
		st.Transaction = &TransactionRef{ID: active.ID, Kind: active.Kind, Path: active.Path}
	}
	var cached map[string]godbus.Variant
	if err := props["CachedUpdate"].Store(&cached); err == nil {
		st.CachedUpdate = cachedUpdateFromBus(cached)
	}
	st.AutomaticUpdatePolicy, _ = props["AutomaticUpdatePolicy"].Value().(string)
	var last map[string]godbus.Variant
	if err := props["LastAutomaticCheck"].Store(&last); err == nil {
		st.LastAutomaticCheck = automaticCheckFromBus(last)
	}
	st.CleanupPending, _ = props["CleanupPending"].Value().(bool)
	var reboot map[string]godbus.Variant
	if err := props["RebootState"].Store(&reboot); err == nil {
		st.Reboot = rebootStateFromBus(reboot)
	}
	return st, nil
}

// History lists finished transactions, newest first.
func (c *Client) History(ctx context.Context, limit int) ([]Record, error) {
	var raw []map[string]godbus.Variant
	if err := c.call(ctx, "History", &raw, uint32(limit)); err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(raw))
	for _, r := range raw {
		out = append(out, recordFromBus(r))
	}
	return out, nil
}

// Cancel cancels the active transaction.
func (c *Client) Cancel(ctx context.Context) error { return c.call(ctx, "Cancel", nil) }

func (c *Client) begin(ctx context.Context, method string, args ...any) (*Txn, error) {
	if c.Detach && len(args) > 0 {
		if opts, ok := args[len(args)-1].(map[string]godbus.Variant); ok {
			opts[detachOption] = godbus.MakeVariant(true)
		}
	}
	var path godbus.ObjectPath
	if err := retryExiting(ctx, func() error { return c.call(ctx, method, &path, args...) }); err != nil {
		return nil, err
	}
	return &Txn{c: c, Path: path, Detached: c.Detach}, nil
}

// Upgrade begins an upgrade.
func (c *Client) Upgrade(ctx context.Context, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "Upgrade", MakeOptions(opts))
}

// Deploy begins deploying a revision (a checksum or a version).
func (c *Client) Deploy(ctx context.Context, revision string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "Deploy", revision, MakeOptions(opts))
}

// Rebase begins switching to refspec.
func (c *Client) Rebase(ctx context.Context, refspec string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "Rebase", refspec, MakeOptions(opts))
}

// Rollback begins a rollback.
func (c *Client) Rollback(ctx context.Context, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "Rollback", MakeOptions(opts))
}

// Cleanup begins a cleanup.
func (c *Client) Cleanup(ctx context.Context, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "Cleanup", MakeOptions(opts))
}

// PkgChange begins layering (add) and unlayering (remove) packages.
func (c *Client) PkgChange(ctx context.Context, add, remove []string, opts map[string]any) (*Txn, error) {
	if add == nil {
		add = []string{}
	}
	if remove == nil {
		remove = []string{}
	}
	return c.begin(ctx, "PkgChange", add, remove, MakeOptions(opts))
}

// OverrideReplace begins replacing base packages: by builds of the enabled
// repositories (packages: names or NEVRAs) and by local RPM files, passed
// to hostd as descriptors (it never opens a path for the caller) and named
// in its messages by the files' names.
func (c *Client) OverrideReplace(ctx context.Context, packages []string, files []*os.File, opts map[string]any) (*Txn, error) {
	if packages == nil {
		packages = []string{}
	}
	args := make([]FileArg, len(files))
	for i, f := range files {
		args[i] = FileArg{Name: filepath.Base(f.Name()), FD: godbus.UnixFD(f.Fd())}
	}
	o := MakeOptions(opts)
	return c.begin(ctx, "OverrideReplace", packages, args, o)
}

// Kargs begins editing the default deployment's kernel arguments; each
// edit is OP=ARG (append, append-if-missing, delete, delete-if-present,
// replace, set), applied in order.
func (c *Client) Kargs(ctx context.Context, edits []string, opts map[string]any) (*Txn, error) {
	if edits == nil {
		edits = []string{}
	}
	return c.begin(ctx, "Kargs", edits, MakeOptions(opts))
}

// Pin begins pinning the deployment with that id, or unpinning it when pinned is false.
func (c *Client) Pin(ctx context.Context, deployment string, pinned bool, opts map[string]any) (*Txn, error) {
	o := MakeOptions(opts)
	if !pinned {
		o["unpin"] = godbus.MakeVariant(true)
	}
	return c.begin(ctx, "Pin", deployment, o)
}

// FinalizeDeployment begins unlocking the finalization of the staged
// deployment; checksum, when not empty, must be its commit. Options: reboot b.
func (c *Client) FinalizeDeployment(ctx context.Context, checksum string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "FinalizeDeployment", checksum, MakeOptions(opts))
}

// RefreshMd begins refreshing repository metadata.
func (c *Client) RefreshMd(ctx context.Context, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "RefreshMd", MakeOptions(opts))
}

// ImagePull begins pulling an image.
func (c *Client) ImagePull(ctx context.Context, image string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "ImagePull", image, MakeOptions(opts))
}

// ImageDelete begins deleting an image.
func (c *Client) ImageDelete(ctx context.Context, image string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "ImageDelete", image, MakeOptions(opts))
}

// ImagePrune begins removing unused images.
func (c *Client) ImagePrune(ctx context.Context, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "ImagePrune", MakeOptions(opts))
}

// ContainerInstall begins installing a system container from image.
func (c *Client) ContainerInstall(ctx context.Context, image string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "ContainerInstall", image, MakeOptions(opts))
}

// ContainerUpdate begins updating a system container.
func (c *Client) ContainerUpdate(ctx context.Context, name string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "ContainerUpdate", name, MakeOptions(opts))
}

// ContainerRollback begins rolling a system container back to its other slot.
func (c *Client) ContainerRollback(ctx context.Context, name string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "ContainerRollback", name, MakeOptions(opts))
}

// ContainerUninstall begins uninstalling a system container.
func (c *Client) ContainerUninstall(ctx context.Context, name string, opts map[string]any) (*Txn, error) {
	return c.begin(ctx, "ContainerUninstall", name, MakeOptions(opts))
}

// ListImages lists the pulled images, each as plain values.
func (c *Client) ListImages(ctx context.Context) ([]map[string]any, error) {
	return c.list(ctx, "ListImages")
}

// ListContainers lists the installed system containers, each as plain values.
func (c *Client) ListContainers(ctx context.Context) ([]map[string]any, error) {
	return c.list(ctx, "ListContainers")
}

// ContainerExec runs args in the running system container name with the
// given files as its stdin, stdout and stderr, and returns the exit status.
func (c *Client) ContainerExec(ctx context.Context, name string, args []string, stdin, stdout, stderr *os.File) (int32, error) {
	var code int32
	err := c.call(ctx, "ContainerExec", &code, name, args,
		godbus.UnixFD(stdin.Fd()), godbus.UnixFD(stdout.Fd()), godbus.UnixFD(stderr.Fd()))
	return code, err
}

func (c *Client) list(ctx context.Context, method string) ([]map[string]any, error) {
	var raw []map[string]godbus.Variant
	if err := c.call(ctx, method, &raw); err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(raw))
	for _, r := range raw {
		out = append(out, Options(r).Map())
	}
	return out, nil
}

// Txn is a transaction begun by this client.
type Txn struct {
	c    *Client
	Path godbus.ObjectPath
	// Detached is set when the transaction outlives its client.
	Detached bool
}

// ErrLeftRunning is returned (wrapped) by Run when its context was done
// while following a detached transaction: the transaction goes on in hostd.
var ErrLeftRunning = errors.New("left the transaction running")

// Run subscribes to the transaction's signals, starts it and waits for its
// end, passing every Progress and Message to onEvent (which may be nil).
// When ctx is cancelled, Run asks hostd to cancel and still waits for the
// end: the result is then an error for which errdefs.IsCancelled holds, or,
// when the cancel came too late (the bootloader swap had begun), how the
// transaction ended. A detached transaction is not cancelled: Run returns
// at once with ErrLeftRunning.
func (t *Txn) Run(ctx context.Context, onEvent func(Event)) (Result, error) {
	conn := t.c.conn
	match := []godbus.MatchOption{godbus.WithMatchObjectPath(t.Path), godbus.WithMatchInterface(TransactionInterface)}
	if err := conn.AddMatchSignalContext(ctx, match...); err != nil {
		return Result{}, fmt.Errorf("subscribe to %s: %w", t.Path, err)
	}
	defer conn.RemoveMatchSignal(match...)
	// hostd leaving the bus (a crash, a restart) ends the wait.
	owner := []godbus.MatchOption{godbus.WithMatchSender("org.freedesktop.DBus"), godbus.WithMatchMember("NameOwnerChanged"), godbus.WithMatchArg(0, BusName)}
	if err := conn.AddMatchSignalContext(ctx, owner...); err != nil {
		return Result{}, fmt.Errorf("watch %s: %w", BusName, err)
	}
	defer conn.RemoveMatchSignal(owner...)
	ch := make(chan *godbus.Signal, 256)
	conn.Signal(ch)
	defer conn.RemoveSignal(ch)
	var hostd string
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, BusName).Store(&hostd); err != nil {
		return Result{}, fromBus(wrapUnreachable(err))
	}

	obj := conn.Object(BusName, t.Path)
	if call := obj.CallWithContext(ctx, TransactionInterface+".Start", 0); call.Err != nil {
		return Result{}, fromBus(call.Err)
	}
	done := ctx.Done()
	for {
		select {
		case <-done:
			done = nil
			if t.Detached {
				return Result{}, fmt.Errorf("%w: transaction %s goes on in hostd (`hostctl status` and `hostctl history` tell how it ends): %w", ErrLeftRunning, t.Path, ctx.Err())
			}
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			call := obj.CallWithContext(cctx, TransactionInterface+".Cancel", 0)
			cancel()
			if call.Err != nil && onEvent != nil {
				onEvent(Event{Message: "Cannot cancel: " + fromBus(call.Err).Error()})
			}
		case sig, ok := <-ch:
			if !ok {
				return Result{}, errors.New("connection to hostd closed before the transaction finished")
			}
			if sig.Name == "org.freedesktop.DBus.NameOwnerChanged" {
				var name, old, nw string
				if godbus.Store(sig.Body, &name, &old, &nw) == nil && name == BusName && old == hostd {
					return Result{}, fmt.Errorf("hostd stopped before transaction %s finished: `hostctl history` tells how it ended once hostd is back", t.Path)
				}
				continue
			}
			if sig.Path != t.Path {
				continue
			}
			if r, finished := handleSignal(sig, onEvent); finished {
				return r, r.Err
			}
		}
	}
}

func handleSignal(sig *godbus.Signal, onEvent func(Event)) (Result, bool) {
	switch sig.Name {
	case TransactionInterface + ".Progress":
		var p Progress
		if err := godbus.Store(sig.Body, &p.Stage, &p.Done, &p.Total, &p.Bytes, &p.Text); err == nil && onEvent != nil {
			onEvent(Event{Progress: &p})
		}
	case TransactionInterface + ".Message":
		var m string
		if err := godbus.Store(sig.Body, &m); err == nil && onEvent != nil {
			onEvent(Event{Message: m})
		}
	case TransactionInterface + ".Finished":
		var ok bool
		var name, msg string
		var data map[string]godbus.Variant
		if err := godbus.Store(sig.Body, &ok, &name, &msg, &data); err != nil {
			return Result{Err: fmt.Errorf("malformed Finished signal: %w", err)}, true
		}
		r := Result{Data: Options(data).Map()}
		if !ok {
			r.Err = &Error{Name: name, Err: errors.New(msg)}
		}
		return r, true
	}
	return Result{}, false
}
