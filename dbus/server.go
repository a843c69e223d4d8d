package dbus

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"

	"github.com/hostctl/hostctl/errdefs"
)

// Engine is the daemon side of the API: what the server exports.
type Engine interface {
	// Status answers from memory; it never waits for a transaction.
	Status() Status
	// History lists finished transactions, newest first (limit 0: all).
	History(limit int) ([]Record, error)
	// Begin checks that req's caller may act, reserves the engine and returns
	// the new transaction, pending until Start. While another transaction
	// exists it fails with ErrBusy naming it.
	Begin(req Request) (Transaction, error)
	// Cancel cancels the active transaction on behalf of caller.
	Cancel(caller uint32) error
	// Watch calls fn after every change of Status.
	Watch(fn func())
	// Images lists the pulled images.
	Images() ([]map[string]any, error)
	// Containers lists the installed system containers.
	Containers() ([]map[string]any, error)
	// Diff compares the packages of two deployments or commits ("": the defaults).
	Diff(from, to string) (PackageDiff, error)
	// ContainerExec runs args in the running container name on behalf of
	// caller, with the given stdio, and returns the exit status. The files
	// are the engine's to close.
	ContainerExec(caller uint32, name string, args []string, stdin, stdout, stderr *os.File) (int32, error)
}

// Request asks the engine for a transaction.
type Request struct {
	// Kind is the method: upgrade, deploy, rebase, rollback, cleanup...
	Kind string
	// Arg is the method's argument (a revision, a refspec), if it has one.
	Arg string
	// Options are the method's a{sv}.
	Options Options
	// Caller is the uid of the process that asked.
	Caller uint32
	// Sender is the caller's unique bus name (":1.42"). Unless the caller
	// passed the option detach, the server cancels the transaction when
	// this name leaves the bus before the transaction finished.
	Sender string
	// Files are the files the caller passed as descriptors (local RPMs),
	// opened by the caller with its own rights. Once Begin succeeds they
	// are the transaction's to close; when it fails, the server closes them.
	Files []*os.File
}

// Transaction is one transaction as the server drives it.
type Transaction interface {
	ID() string
	Kind() string
	State() string
	// Start begins the work; it is refused for another caller than the one
	// who began the transaction (unless root) and when already started.
	Start(caller uint32) error
	// Cancel stops the work; refused once the bootloader swap has begun.
	Cancel(caller uint32) error
	// Subscribe calls fn for every event from now on, in order, ending with the Finished one.
	Subscribe(fn func(Event))
}

// Event is what a transaction reports: exactly one field is set.
type Event struct {
	Progress *Progress
	Message  string
	State    string
	Finished *Result
}

// Progress is a transaction's progress.
type Progress struct {
	Stage              string
	Done, Total, Bytes uint64
	Text               string
}

// Result is how a transaction ended.
type Result struct {
	// Err is nil on success; its D-Bus name is ErrorName(Err).
	Err error
	// Data is the method's result (a{sv}).
	Data map[string]any
}

// Server exports an Engine on a bus connection.
type Server struct {
	conn  *godbus.Conn
	eng   Engine
	props *prop.Properties
	mu    sync.Mutex
	// KeepFinished is how long a finished transaction object stays on the bus.
	keepFinished time.Duration
	// txnMethods are the Transaction1 methods of the contract.
	txnMethods []contractMethod

	// clients are the live transactions of each caller that did not detach,
	// by unique bus name: when the name leaves the bus, they are cancelled.
	clientsMu sync.Mutex
	clients   map[string][]Transaction
}

// Serve exports eng at HostPath on conn and takes BusName. It fails when
// another process owns the name.
func Serve(conn *godbus.Conn, eng Engine) (*Server, error) {
	s := &Server{conn: conn, eng: eng, keepFinished: time.Minute, clients: map[string][]Transaction{}}
	hostMethods, err := contractMethods(HostXML, HostInterface)
	if err != nil {
		return nil, err
	}
	if s.txnMethods, err = contractMethods(TransactionXML, TransactionInterface); err != nil {
		return nil, err
	}
	table, err := methodTable(hostObject{s}, hostMethods, HostInterface)
	if err != nil {
		return nil, err
	}
	if err := conn.ExportMethodTable(table, HostPath, HostInterface); err != nil {
		return nil, fmt.Errorf("export %s: %w", HostPath, err)
	}
	sigs := make(chan *godbus.Signal, 64)
	conn.Signal(sigs)
	go s.watchClients(sigs)
	if err := conn.Export(introspect.Introspectable(HostXML), HostPath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return nil, fmt.Errorf("export introspection: %w", err)
	}
	st := eng.Status()
	props, err := prop.Export(conn, HostPath, prop.Map{HostInterface: s.propMap(st)})
	if err != nil {
		return nil, fmt.Errorf("export properties: %w", err)
	}
	s.props = props
	eng.Watch(s.refresh)
	reply, err := conn.RequestName(BusName, godbus.NameFlagDoNotQueue)
	if err != nil {
		return nil, fmt.Errorf("request bus name %s: %w", BusName, err)
	}
	if reply != godbus.RequestNameReplyPrimaryOwner {
		return nil, fmt.Errorf("bus name %s is owned by another process: is hostd already running?", BusName)
	}
	return s, nil
}

func (s *Server) propMap(st Status) map[string]*prop.Prop {
	p := func(v any) *prop.Prop { return &prop.Prop{Value: v, Emit: prop.EmitTrue} }
	m := map[string]*prop.Prop{}
	for k, v := range statusValues(st) {
		m[k] = p(v)
	}
	return m
}

func statusValues(st Status) map[string]any {
	deps := make([]map[string]godbus.Variant, 0, len(st.Deployments))
	var booted, def string
	for _, d := range st.Deployments {
		deps = append(deps, d.toBus())
		if d.Booted {
			booted = d.ID
		}
		if d.Default {
			def = d.ID
		}
	}
	active := activeValue{Path: "/"}
	if st.Transaction != nil {
		active = activeValue{ID: st.Transaction.ID, Kind: st.Transaction.Kind, Path: st.Transaction.Path}
	}
	return map[string]any{
		"Sysroot":               st.Sysroot,
		"Deployments":           deps,
		"BootedDeployment":      booted,
		"DefaultDeployment":     def,
		"ActiveTransaction":     active,
		"CachedUpdate":          cachedUpdateToBus(st.CachedUpdate),
		"AutomaticUpdatePolicy": st.AutomaticUpdatePolicy,
		"LastAutomaticCheck":    automaticCheckToBus(st.LastAutomaticCheck),
		"CleanupPending":        st.CleanupPending,
		"RebootState":           rebootStateToBus(st.Reboot),
	}
}

type activeValue struct {
	ID, Kind string
	Path     godbus.ObjectPath
}

func (s *Server) refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range statusValues(s.eng.Status()) {
		s.props.SetMust(HostInterface, k, v)
	}
}

// TransactionPath is the object path of the transaction with id.
func TransactionPath(id string) godbus.ObjectPath {
	return godbus.ObjectPath(transactionPrefix + id)
}

// callerUID asks the bus which uid the sender runs as.
func (s *Server) callerUID(sender godbus.Sender) (uint32, error) {
	var uid uint32
	err := s.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, string(sender)).Store(&uid)
	if err != nil {
		return 0, errdefs.Errorf(errdefs.ErrUnauthorized, "cannot tell who is calling (%v)", err)
	}
	return uid, nil
}

// detachOption is the option every changing method accepts: the server
// strips it before Begin; true starts a transaction that outlives its client.
const detachOption = "detach"

func (s *Server) begin(sender godbus.Sender, kind, arg string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return s.beginWith(sender, kind, arg, opts, nil)
}

// beginWith is begin with files the caller passed; they are closed here
// unless the transaction was made (then it owns them).
func (s *Server) beginWith(sender godbus.Sender, kind, arg string, opts map[string]godbus.Variant, files []*os.File) (path godbus.ObjectPath, berr *godbus.Error) {
	owned := false
	defer func() {
		if !owned {
			for _, f := range files {
				f.Close()
			}
		}
	}()
	uid, err := s.callerUID(sender)
	if err != nil {
		return "/", toBus(err)
	}
	o := make(Options, len(opts))
	for k, v := range opts {
		o[k] = v
	}
	detach := false
	if v, ok := o[detachOption]; ok {
		if err := (Options{detachOption: v}).Check(OptionSpec{detachOption: "b"}); err != nil {
			return "/", toBus(err)
		}
		detach = v.Value().(bool)
		delete(o, detachOption)
	}
	txn, err := s.eng.Begin(Request{Kind: kind, Arg: arg, Options: o, Caller: uid, Sender: string(sender), Files: files})
	if err != nil {
		return "/", toBus(err)
	}
	owned = true
	path = TransactionPath(txn.ID())
	watch := ""
	if !detach {
		watch = string(sender)
	}
	if err := s.exportTransaction(path, txn, watch); err != nil {
		txn.Cancel(0)
		return "/", toBus(err)
	}
	return path, nil
}

// exportTransaction puts txn on the bus at path; with client set, the
// transaction is cancelled when that bus name leaves before it finished.
func (s *Server) exportTransaction(path godbus.ObjectPath, txn Transaction, client string) error {
	obj := &transactionObject{s: s, txn: txn}
	table, err := methodTable(obj, s.txnMethods, TransactionInterface)
	if err != nil {
		return err
	}
	if err := s.conn.ExportMethodTable(table, path, TransactionInterface); err != nil {
		return fmt.Errorf("export transaction: %w", err)
	}
	if err := s.conn.Export(introspect.Introspectable(TransactionXML), path, "org.freedesktop.DBus.Introspectable"); err != nil {
		return fmt.Errorf("export transaction: %w", err)
	}
	props, err := prop.Export(s.conn, path, prop.Map{TransactionInterface: {
		"Id":    {Value: txn.ID()},
		"Kind":  {Value: txn.Kind()},
		"State": {Value: txn.State(), Emit: prop.EmitTrue},
	}})
	if err != nil {
		return fmt.Errorf("export transaction properties: %w", err)
	}
	txn.Subscribe(func(ev Event) {
		switch {
		case ev.Progress != nil:
			p := ev.Progress
			s.conn.Emit(path, TransactionInterface+".Progress", p.Stage, p.Done, p.Total, p.Bytes, p.Text)
		case ev.Message != "":
			s.conn.Emit(path, TransactionInterface+".Message", ev.Message)
		case ev.State != "":
			props.SetMust(TransactionInterface, "State", ev.State)
		case ev.Finished != nil:
			r := ev.Finished
			name, msg := "", ""
			if r.Err != nil {
				name, msg = ErrorName(r.Err), r.Err.Error()
			}
			data := map[string]godbus.Variant{}
			for k, v := range r.Data {
				data[k] = godbus.MakeVariant(v)
			}
			s.conn.Emit(path, TransactionInterface+".Finished", r.Err == nil, name, msg, data)
			if client != "" {
				s.unwatchClient(client, txn)
			}
			time.AfterFunc(s.keepFinished, func() {
				s.conn.Export(nil, path, TransactionInterface)
				s.conn.Export(nil, path, "org.freedesktop.DBus.Introspectable")
				s.conn.Export(nil, path, "org.freedesktop.DBus.Properties")
			})
		}
	})
	if client != "" {
		s.watchClient(client, txn)
	}
	return nil
}

// nameOwnerChanged is the match rule for the bus telling that name changed owner.
func nameOwnerChanged(name string) []godbus.MatchOption {
	return []godbus.MatchOption{godbus.WithMatchSender("org.freedesktop.DBus"), godbus.WithMatchInterface("org.freedesktop.DBus"),
		godbus.WithMatchMember("NameOwnerChanged"), godbus.WithMatchArg(0, name)}
}

// watchClient cancels txn when client leaves the bus before txn finished:
// a client that was killed, or whose user pressed Ctrl-C, does not leave
// hostd busy.
func (s *Server) watchClient(client string, txn Transaction) {
	s.clientsMu.Lock()
	first := len(s.clients[client]) == 0
	s.clients[client] = append(s.clients[client], txn)
	s.clientsMu.Unlock()
	if first {
		if err := s.conn.AddMatchSignal(nameOwnerChanged(client)...); err != nil {
			fmt.Fprintf(os.Stderr, "hostd: cannot watch client %s (%v); its transaction %s will not be cancelled if it leaves\n", client, err, txn.ID())
		}
	}
	// The client may have left before the match rule was in place.
	var has bool
	if err := s.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, client).Store(&has); err == nil && !has {
		s.clientGone(client)
	}
}

// unwatchClient forgets a finished transaction of client.
func (s *Server) unwatchClient(client string, txn Transaction) {
	s.clientsMu.Lock()
	list := s.clients[client]
	for i, t := range list {
		if t == txn {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	last := len(list) == 0 && len(s.clients[client]) > 0
	if len(list) == 0 {
		delete(s.clients, client)
	} else {
		s.clients[client] = list
	}
	s.clientsMu.Unlock()
	if last {
		s.conn.RemoveMatchSignal(nameOwnerChanged(client)...)
	}
}

// watchClients reads the bus's NameOwnerChanged signals until the
// connection closes.
func (s *Server) watchClients(sigs <-chan *godbus.Signal) {
	for sig := range sigs {
		if sig.Name != "org.freedesktop.DBus.NameOwnerChanged" {
			continue
		}
		var name, oldOwner, newOwner string
		if godbus.Store(sig.Body, &name, &oldOwner, &newOwner) != nil || newOwner != "" || !strings.HasPrefix(name, ":") {
			continue
		}
		s.clientGone(name)
	}
}

// clientGone cancels the live transactions of a client that left the bus.
// A transaction past its point of no return refuses; it then finishes as
// it would have.
func (s *Server) clientGone(client string) {
	s.clientsMu.Lock()
	list := append([]Transaction(nil), s.clients[client]...)
	s.clientsMu.Unlock()
	for _, t := range list {
		go t.Cancel(0)
	}
}

// hostObject carries the org.hostctl.Host1 methods.
type hostObject struct{ s *Server }

// Upgrade starts an upgrade transaction.
func (h hostObject) Upgrade(sender godbus.Sender, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "upgrade", "", opts)
}

// Deploy starts a transaction deploying a revision.
func (h hostObject) Deploy(sender godbus.Sender, revision string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "deploy", revision, opts)
}

// Rebase starts a transaction switching to another refspec.
func (h hostObject) Rebase(sender godbus.Sender, refspec string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "rebase", refspec, opts)
}

// Rollback starts a rollback transaction.
func (h hostObject) Rollback(sender godbus.Sender, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "rollback", "", opts)
}

// Cleanup starts a cleanup transaction.
func (h hostObject) Cleanup(sender godbus.Sender, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "cleanup", "", opts)
}

// PkgChange starts a package layering transaction.
func (h hostObject) PkgChange(sender godbus.Sender, add, remove []string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	o := map[string]godbus.Variant{}
	for k, v := range opts {
		if k == "add" || k == "remove" {
			return "/", toBus(errdefs.Errorf(errdefs.ErrInvalidArgument, "option %q: name the packages in the %s argument of PkgChange, not in its options", k, k))
		}
		o[k] = v
	}
	if len(add) > 0 {
		o["add"] = godbus.MakeVariant(add)
	}
	if len(remove) > 0 {
		o["remove"] = godbus.MakeVariant(remove)
	}
	return h.s.begin(sender, "pkg-change", "", o)
}

// OverrideReplace starts replacing base packages by builds from the
// enabled repositories (packages) and by local RPMs the caller opened
// (files, each with its name for messages).
func (h hostObject) OverrideReplace(sender godbus.Sender, packages []string, files []FileArg, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	fs := make([]*os.File, len(files))
	names := make([]string, len(files))
	for i, f := range files {
		fs[i] = os.NewFile(uintptr(f.FD), f.Name)
		names[i] = f.Name
	}
	fail := func(err error) (godbus.ObjectPath, *godbus.Error) {
		for _, f := range fs {
			f.Close()
		}
		return "/", toBus(err)
	}
	o := map[string]godbus.Variant{}
	for k, v := range opts {
		if k == "override-replace" || k == "override-replace-local" {
			return fail(errdefs.Errorf(errdefs.ErrInvalidArgument, "option %q: give the packages and files in the arguments of OverrideReplace", k))
		}
		o[k] = v
	}
	if len(packages) == 0 && len(files) == 0 {
		return fail(errdefs.Errorf(errdefs.ErrInvalidArgument, "override replace needs packages or RPM files"))
	}
	if len(files) > 0 {
		o["override-replace-local"] = godbus.MakeVariant(names)
	}
	if len(packages) > 0 {
		o["override-replace"] = godbus.MakeVariant(packages)
	}
	return h.s.beginWith(sender, "pkg-change", "", o, fs)
}

// Kargs starts editing the default deployment's kernel arguments.
func (h hostObject) Kargs(sender godbus.Sender, edits []string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	o := map[string]godbus.Variant{}
	for k, v := range opts {
		if k == "edits" {
			return "/", toBus(errdefs.Errorf(errdefs.ErrInvalidArgument, "option %q: give the edits in the edits argument of Kargs, not in its options", k))
		}
		o[k] = v
	}
	o["edits"] = godbus.MakeVariant(edits)
	return h.s.begin(sender, "kargs", "", o)
}

// Pin starts pinning (or unpinning) a deployment.
func (h hostObject) Pin(sender godbus.Sender, deployment string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "pin", deployment, opts)
}

// FinalizeDeployment starts unlocking the staged deployment's finalization
// (and, with the option reboot, rebooting into it).
func (h hostObject) FinalizeDeployment(sender godbus.Sender, checksum string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "finalize", checksum, opts)
}

// RefreshMd starts a metadata refresh.
func (h hostObject) RefreshMd(sender godbus.Sender, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "refresh-md", "", opts)
}

// ImagePull starts pulling an image.
func (h hostObject) ImagePull(sender godbus.Sender, image string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "image-pull", image, opts)
}

// ImageDelete starts deleting an image.
func (h hostObject) ImageDelete(sender godbus.Sender, image string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "image-delete", image, opts)
}

// ImagePrune starts removing unused images.
func (h hostObject) ImagePrune(sender godbus.Sender, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "image-prune", "", opts)
}

// ListImages lists the pulled images.
func (h hostObject) ListImages() ([]map[string]godbus.Variant, *godbus.Error) {
	return listOf(h.s.eng.Images())
}

// ContainerInstall starts installing a system container.
func (h hostObject) ContainerInstall(sender godbus.Sender, image string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "container-install", image, opts)
}

// ContainerUpdate starts updating a system container.
func (h hostObject) ContainerUpdate(sender godbus.Sender, name string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "container-update", name, opts)
}

// ContainerRollback starts rolling a system container back.
func (h hostObject) ContainerRollback(sender godbus.Sender, name string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "container-rollback", name, opts)
}

// ContainerUninstall starts uninstalling a system container.
func (h hostObject) ContainerUninstall(sender godbus.Sender, name string, opts map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	return h.s.begin(sender, "container-uninstall", name, opts)
}

// ListContainers lists the installed system containers.
func (h hostObject) ListContainers() ([]map[string]godbus.Variant, *godbus.Error) {
	return listOf(h.s.eng.Containers())
}

// ContainerExec runs a command in a running system container with the
// caller's stdio.
func (h hostObject) ContainerExec(sender godbus.Sender, name string, args []string, stdin, stdout, stderr godbus.UnixFD) (int32, *godbus.Error) {
	files := []*os.File{os.NewFile(uintptr(stdin), "stdin"), os.NewFile(uintptr(stdout), "stdout"), os.NewFile(uintptr(stderr), "stderr")}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	uid, err := h.s.callerUID(sender)
	if err != nil {
		return -1, toBus(err)
	}
	code, err := h.s.eng.ContainerExec(uid, name, args, files[0], files[1], files[2])
	if err != nil {
		return -1, toBus(err)
	}
	return code, nil
}

func listOf(items []map[string]any, err error) ([]map[string]godbus.Variant, *godbus.Error) {
	if err != nil {
		return nil, toBus(err)
	}
	out := make([]map[string]godbus.Variant, 0, len(items))
	for _, it := range items {
		out = append(out, MakeOptions(it))
	}
	return out, nil
}

// Cancel cancels the active transaction.
func (h hostObject) Cancel(sender godbus.Sender) *godbus.Error {
	uid, err := h.s.callerUID(sender)
	if err != nil {
		return toBus(err)
	}
	return toBus(h.s.eng.Cancel(uid))
}

// History lists finished transactions.
func (h hostObject) History(limit uint32) ([]map[string]godbus.Variant, *godbus.Error) {
	recs, err := h.s.eng.History(int(limit))
	if err != nil {
		return nil, toBus(err)
	}
	out := make([]map[string]godbus.Variant, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.toBus())
	}
	return out, nil
}

// transactionObject carries the org.hostctl.Transaction1 methods.
type transactionObject struct {
	s   *Server
	txn Transaction
}

// Start begins the transaction's work.
func (t *transactionObject) Start(sender godbus.Sender) *godbus.Error {
	uid, err := t.s.callerUID(sender)
	if err != nil {
		return toBus(err)
	}
	return toBus(t.txn.Start(uid))
}

// Cancel cancels the transaction.
func (t *transactionObject) Cancel(sender godbus.Sender) *godbus.Error {
	uid, err := t.s.callerUID(sender)
	if err != nil {
		return toBus(err)
	}
	return toBus(t.txn.Cancel(uid))
}
