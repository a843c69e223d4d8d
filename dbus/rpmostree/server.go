// Package rpmostree serves rpm-ostree's D-Bus API (bus name
// org.projectatomic.rpmostree1) from hostd's engine, so clients written for
// rpm-ostreed (cockpit-ostree, GNOME Software, KDE Discover) work against
// hostd unchanged: the ObjectManager, the Sysroot object, one OS object per
// osname, and transactions on peer-to-peer sockets as rpm-ostree runs them.
// The interface is in org.projectatomic.rpmostree1.xml beside this file.
package rpmostree

import (
	_ "embed"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
)

// Names of the API on the bus.
const (
	BusName              = "org.projectatomic.rpmostree1"
	BasePath             = godbus.ObjectPath("/org/projectatomic/rpmostree1")
	SysrootPath          = godbus.ObjectPath("/org/projectatomic/rpmostree1/Sysroot")
	SysrootInterface     = "org.projectatomic.rpmostree1.Sysroot"
	OSInterface          = "org.projectatomic.rpmostree1.OS"
	TransactionInterface = "org.projectatomic.rpmostree1.Transaction"
	propsInterface       = "org.freedesktop.DBus.Properties"
	objectManager        = "org.freedesktop.DBus.ObjectManager"
	introspectable       = "org.freedesktop.DBus.Introspectable"
)

// XML is the interface definition, served by introspection.
//
//go:embed org.projectatomic.rpmostree1.xml
var XML string

// Server exports an engine as rpm-ostree's API on a bus connection.
type Server struct {
	conn *godbus.Conn
	eng  dbus.Engine
	log  *slog.Logger

	mu sync.Mutex
	// props are the current property values: path -> interface -> name.
	props map[godbus.ObjectPath]map[string]map[string]godbus.Variant
	// txns are the transactions begun through this API, by engine id.
	txns map[string]*peerTxn
	// rebaseDiffs are what DownloadRebaseRpmDiff found, by refspec.
	rebaseDiffs map[string]rebaseDiff
	// clients are the bus names that called RegisterClient and have not
	// unregistered: while one is on the bus, hostd does not exit when idle.
	clients map[string]bool
	// detailCache is what was read of the deployments' commits (details.go).
	detailCache map[string]commitDetails
}

type rebaseDiff struct {
	diff    []DiffEntry
	details map[string]godbus.Variant
}

// Serve exports eng on conn and requests BusName with DoNotQueue, so a
// running rpm-ostreed keeps it; it fails when another process owns it.
func Serve(conn *godbus.Conn, eng dbus.Engine, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{conn: conn, eng: eng, log: log, props: map[godbus.ObjectPath]map[string]map[string]godbus.Variant{},
		txns: map[string]*peerTxn{}, rebaseDiffs: map[string]rebaseDiff{}, clients: map[string]bool{}}
	if err := conn.ExportMethodTable(map[string]any{"GetManagedObjects": s.getManagedObjects}, BasePath, objectManager); err != nil {
		return nil, fmt.Errorf("export %s: %w", BasePath, err)
	}
	if err := conn.Export(&sysrootObject{s}, SysrootPath, SysrootInterface); err != nil {
		return nil, fmt.Errorf("export %s: %w", SysrootPath, err)
	}
	for _, p := range []godbus.ObjectPath{BasePath, SysrootPath} {
		if err := s.exportCommon(p); err != nil {
			return nil, err
		}
	}
	s.refresh()
	eng.Watch(s.refresh)
	reply, err := conn.RequestName(BusName, godbus.NameFlagDoNotQueue)
	if err != nil {
		return nil, fmt.Errorf("request bus name %s: %w", BusName, err)
	}
	if reply != godbus.RequestNameReplyPrimaryOwner {
		return nil, fmt.Errorf("bus name %s is owned by another process (rpm-ostreed?): stop it, or run hostd without -rpm-ostree-compat", BusName)
	}
	return s, nil
}

// exportCommon exports introspection and properties at path.
func (s *Server) exportCommon(path godbus.ObjectPath) error {
	if err := s.conn.Export(introspectXML(XML), path, introspectable); err != nil {
		return fmt.Errorf("export introspection at %s: %w", path, err)
	}
	if err := s.conn.Export(&propsObject{s: s, path: path}, path, propsInterface); err != nil {
		return fmt.Errorf("export properties at %s: %w", path, err)
	}
	return nil
}

type introspectXML string

// Introspect returns the interface XML.
func (x introspectXML) Introspect() (string, *godbus.Error) { return string(x), nil }

// busError turns an error into a D-Bus error reply with its hostctl name.
func busError(err error) *godbus.Error {
	if err == nil {
		return nil
	}
	return godbus.NewError(dbus.ErrorName(err), []any{err.Error()})
}

// osnames lists the osnames of the deployments, sorted.
func osnames(st dbus.Status) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range st.Deployments {
		if !seen[d.OSName] {
			seen[d.OSName] = true
			out = append(out, d.OSName)
		}
	}
	sort.Strings(out)
	return out
}

// osDeployments picks osname's booted, default and rollback deployments,
// as libostree's query_deployments_for does: the default is the first of
// osname's deployments; the rollback the one after the booted one (after the
// default one when nothing of osname is booted).
func osDeployments(st dbus.Status, osname string) (booted, def, rollback *dbus.Deployment) {
	var mine []dbus.Deployment
	for _, d := range st.Deployments {
		if d.OSName == osname {
			mine = append(mine, d)
		}
	}
	if len(mine) == 0 {
		return nil, nil, nil
	}
	def = &mine[0]
	at := 0
	for i := range mine {
		if mine[i].Booted {
			booted = &mine[i]
			at = i
		}
	}
	if at+1 < len(mine) {
		rollback = &mine[at+1]
	}
	return booted, def, rollback
}

func dictOrEmpty(d *dbus.Deployment, det map[string]commitDetails) map[string]godbus.Variant {
	if d == nil {
		return map[string]godbus.Variant{}
	}
	return deploymentDict(*d, det[d.ID])
}

// gpgEnabled tells whether the remote d follows verifies signatures.
func gpgEnabled(d *dbus.Deployment, det map[string]commitDetails) bool {
	if d == nil {
		return false
	}
	b, _ := det[d.ID]["gpg-enabled"].Value().(bool)
	return b
}

// activeTxn is the (method, sender, path) tuple of ActiveTransaction.
type activeTxn struct{ Method, Sender, Path string }

// values computes every object's properties from the engine's status.
func (s *Server) values(st dbus.Status, det map[string]commitDetails) map[godbus.ObjectPath]map[string]map[string]godbus.Variant {
	deps := make([]map[string]godbus.Variant, 0, len(st.Deployments))
	for _, d := range st.Deployments {
		deps = append(deps, deploymentDict(d, det[d.ID]))
	}
	bootedOS := godbus.ObjectPath("/")
	for _, d := range st.Deployments {
		if d.Booted {
			bootedOS = objectPath(d.OSName)
		}
	}
	if bootedOS == "/" && len(st.Deployments) > 0 {
		// Not booted (hostd -sysroot DIR): the default deployment plays its part.
		bootedOS = objectPath(st.Deployments[0].OSName)
	}
	active, addr := activeTxn{}, ""
	if t := st.Transaction; t != nil {
		switch pt := s.txns[t.ID]; {
		case pt != nil && !pt.foreign:
			active, addr = activeTxn{pt.method, pt.sender, "/"}, pt.addr
		case pt != nil:
			active, addr = activeTxn{t.Kind, "", string(t.Path)}, pt.addr
		default:
			active = activeTxn{t.Kind, "", string(t.Path)}
		}
	}
	out := map[godbus.ObjectPath]map[string]map[string]godbus.Variant{
		SysrootPath: {SysrootInterface: {
			"Booted":                godbus.MakeVariant(bootedOS),
			"Path":                  godbus.MakeVariant(st.Sysroot),
			"ActiveTransaction":     godbus.MakeVariant(active),
			"ActiveTransactionPath": godbus.MakeVariant(addr),
			"AutomaticUpdatePolicy": godbus.MakeVariant(policyOrNone(st.AutomaticUpdatePolicy)),
			"Deployments":           godbus.MakeVariant(deps),
		}},
	}
	for _, name := range osnames(st) {
		booted, def, rollback := osDeployments(st, name)
		var cached *dbus.CachedUpdate
		if st.CachedUpdate != nil && def != nil && st.CachedUpdate.Refspec == def.Origin {
			cached = st.CachedUpdate
		}
		out[objectPath(name)] = map[string]map[string]godbus.Variant{OSInterface: {
			"Name":                   godbus.MakeVariant(name),
			"BootedDeployment":       godbus.MakeVariant(dictOrEmpty(booted, det)),
			"DefaultDeployment":      godbus.MakeVariant(dictOrEmpty(def, det)),
			"RollbackDeployment":     godbus.MakeVariant(dictOrEmpty(rollback, det)),
			"CachedUpdate":           godbus.MakeVariant(cachedUpdateDict(cached, name, gpgEnabled(def, det))),
			"HasCachedUpdateRpmDiff": godbus.MakeVariant(cached != nil && cached.Checksum != cached.Base),
		}}
	}
	return out
}

// refresh recomputes the properties and announces what changed; OS objects
// of a new osname are exported (and announced with InterfacesAdded).
func (s *Server) refresh() {
	st := s.eng.Status()
	s.attachForeign(st)
	det := s.details(st)
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.values(st, det)
	for path, ifaces := range next {
		old, known := s.props[path]
		if !known && path != SysrootPath {
			name := ifaces[OSInterface]["Name"].Value().(string)
			if err := s.conn.Export(&osObject{s: s, name: name}, path, OSInterface); err != nil {
				s.log.Error("export OS object", "path", path, "err", err)
				continue
			}
			if err := s.exportCommon(path); err != nil {
				s.log.Error("export OS object", "path", path, "err", err)
				continue
			}
			s.props[path] = ifaces
			s.conn.Emit(BasePath, objectManager+".InterfacesAdded", path, ifaces)
			continue
		}
		s.props[path] = ifaces
		for iface, vals := range ifaces {
			changed := map[string]godbus.Variant{}
			for k, v := range vals {
				if !known || !reflect.DeepEqual(old[iface][k].Value(), v.Value()) {
					changed[k] = v
				}
			}
			if known && len(changed) > 0 {
				s.conn.Emit(path, propsInterface+".PropertiesChanged", iface, changed, []string{})
			}
		}
	}
}

func (s *Server) getManagedObjects() (map[godbus.ObjectPath]map[string]map[string]godbus.Variant, *godbus.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[godbus.ObjectPath]map[string]map[string]godbus.Variant, len(s.props))
	for p, v := range s.props {
		out[p] = v
	}
	return out, nil
}

// propsObject serves org.freedesktop.DBus.Properties for one object.
type propsObject struct {
	s    *Server
	path godbus.ObjectPath
}

// Get returns one property.
func (p *propsObject) Get(iface, name string) (godbus.Variant, *godbus.Error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	v, ok := p.s.props[p.path][iface][name]
	if !ok {
		return godbus.Variant{}, godbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{fmt.Sprintf("no property %s.%s at %s", iface, name, p.path)})
	}
	return v, nil
}

// GetAll returns the properties of an interface.
func (p *propsObject) GetAll(iface string) (map[string]godbus.Variant, *godbus.Error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	out := map[string]godbus.Variant{}
	for k, v := range p.s.props[p.path][iface] {
		out[k] = v
	}
	return out, nil
}

// Set refuses: every property is read-only.
func (p *propsObject) Set(iface, name string, _ godbus.Variant) *godbus.Error {
	return godbus.NewError("org.freedesktop.DBus.Error.PropertyReadOnly", []any{fmt.Sprintf("%s.%s is read-only", iface, name)})
}

// sysrootObject carries the Sysroot methods.
type sysrootObject struct{ s *Server }

// maxClients bounds the registered clients: a caller registering names
// without end cannot grow hostd's memory.
const maxClients = 256

// RegisterClient records the caller as a client, as rpm-ostreed does: while
// it is on the bus, hostd does not exit when idle (HasClients), so a client
// that only listens to signals keeps its subscription.
func (o *sysrootObject) RegisterClient(sender godbus.Sender, opts map[string]godbus.Variant) *godbus.Error {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	if !o.s.clients[string(sender)] && len(o.s.clients) >= maxClients {
		return busError(errdefs.Errorf(errdefs.ErrBusy, "RegisterClient: %d clients are registered already", maxClients))
	}
	o.s.clients[string(sender)] = true
	return nil
}

// UnregisterClient forgets the caller as a client.
func (o *sysrootObject) UnregisterClient(sender godbus.Sender, opts map[string]godbus.Variant) *godbus.Error {
	o.s.mu.Lock()
	delete(o.s.clients, string(sender))
	o.s.mu.Unlock()
	return nil
}

// HasClients says whether a registered client is still on the bus;
// clients that left without unregistering are forgotten.
func (s *Server) HasClients() bool {
	s.mu.Lock()
	names := make([]string, 0, len(s.clients))
	for n := range s.clients {
		names = append(names, n)
	}
	s.mu.Unlock()
	alive := false
	for _, n := range names {
		var has bool
		if err := s.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, n).Store(&has); err == nil && !has {
			s.mu.Lock()
			delete(s.clients, n)
			s.mu.Unlock()
			continue
		}
		alive = true
	}
	return alive
}

// Reload returns once the properties reflect the engine's status.
func (o *sysrootObject) Reload() *godbus.Error { o.s.refresh(); return nil }

// ReloadConfig makes hostd reread hostd.conf (root only, as Host1's
// ReloadConfig), then is Reload; hostd rereads its repository configuration
// before every transaction anyway.
func (o *sysrootObject) ReloadConfig(sender godbus.Sender) *godbus.Error {
	if a, ok := o.s.eng.(dbus.AutomaticEngine); ok {
		uid, err := o.s.callerUID(sender)
		if err != nil {
			return busError(err)
		}
		if err := a.ReloadConfig(uid, string(sender)); err != nil {
			return busError(err)
		}
	}
	o.s.refresh()
	return nil
}

// GetOS returns the OS object of name ("" for the booted one).
func (o *sysrootObject) GetOS(name string) (godbus.ObjectPath, *godbus.Error) {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	if name == "" {
		p := o.s.props[SysrootPath][SysrootInterface]["Booted"].Value().(godbus.ObjectPath)
		if p == "/" {
			return "/", busError(errdefs.Errorf(errdefs.ErrNotFound, "no deployment is booted or deployed: name an osname"))
		}
		return p, nil
	}
	p := objectPath(name)
	if _, ok := o.s.props[p]; !ok {
		return "/", busError(errdefs.Errorf(errdefs.ErrNotFound, "no deployment of osname %q", name))
	}
	return p, nil
}

// policyOrNone is the AutomaticUpdatePolicy property: an engine without
// automatic updates has none.
func policyOrNone(p string) string {
	if p == "" {
		return "none"
	}
	return p
}
