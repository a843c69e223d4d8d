package rpmostree

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
)

// A transaction begun through this API is served on a peer-to-peer socket,
// as rpm-ostreed serves its transactions: the method returns the socket's
// address, the client connects without a bus, authenticates with SASL
// EXTERNAL, calls Start() on object "/" and receives the transaction's
// signals on that connection. The messages use godbus's encoding
// (DecodeMessage, Message.EncodeTo); godbus has no server side for
// authentication and no way to set a serial, so this file has the small
// handshake and writes the serial into the encoded header itself.

// Limits of the peer protocol.
const (
	authTimeout   = 30 * time.Second
	authMaxLine   = 4096
	authMaxLines  = 16
	keepFinished  = time.Minute
	maxPeers      = 16
	writeDeadline = 10 * time.Second
)

// peerTxn is one transaction on its socket.
type peerTxn struct {
	s   *Server
	txn dbus.Transaction
	// onFinish, when set, is told how the transaction ended before the
	// Finished signal goes out (so a client that calls on at Finished sees
	// what it recorded).
	onFinish func(*dbus.Result)
	method   string
	title    string
	sender   string
	caller   uint32
	addr     string
	ln       *net.UnixListener

	mu    sync.Mutex
	peers map[*peer]bool
	// task is the text of the open TaskBegin, progress whether a progress
	// signal was sent since the last ProgressEnd.
	task     string
	stage    string
	progress bool
	started  time.Time
	finished *dbus.Result
	closed   bool
	// foreign: begun through org.hostctl.Host1 (see openPeer).
	foreign bool
}

// servePeer opens txn's socket and returns its address.
func (s *Server) servePeer(txn dbus.Transaction, method, title, sender string, caller uint32, onFinish func(*dbus.Result)) (string, error) {
	pt, err := s.openPeer(txn, method, title, sender, caller, onFinish, false)
	if err != nil {
		return "", err
	}
	// A transaction never started is dropped by the engine; it then
	// finishes as cancelled and the socket closes after keepFinished.
	// The Sysroot names it (ActiveTransaction, ActiveTransactionPath)
	// before the method returns its address, as rpm-ostreed's does: a
	// client that reads the properties at the reply sees it.
	s.refresh()
	return pt.addr, nil
}

// openPeer opens txn's socket, unless one is open already (then it returns
// that one, unless that one was opened as foreign and this one is not: it
// then replaces it). A foreign transaction is one begun through another API
// (org.hostctl.Host1): its owner starts it, so Start on the socket answers
// false, as for a transaction another client started.
func (s *Server) openPeer(txn dbus.Transaction, method, title, sender string, caller uint32, onFinish func(*dbus.Result), foreign bool) (*peerTxn, error) {
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	name := "/org/hostctl/rpmostree1/txn/" + txn.ID() + "-" + hex.EncodeToString(nonce[:])
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@" + name, Net: "unix"})
	if err != nil {
		return nil, errdefs.Wrap(errdefs.ErrFailed, fmt.Errorf("open the transaction socket: %w", err))
	}
	pt := &peerTxn{s: s, txn: txn, onFinish: onFinish, method: method, title: title, sender: sender, caller: caller,
		addr: "unix:abstract=" + name, ln: ln, peers: map[*peer]bool{}, foreign: foreign}
	if foreign {
		pt.started = time.Now()
	}
	s.mu.Lock()
	old := s.txns[txn.ID()]
	if old != nil && (foreign || !old.foreign) {
		s.mu.Unlock()
		ln.Close()
		return old, nil
	}
	s.txns[txn.ID()] = pt
	s.mu.Unlock()
	if old != nil {
		// Begun through this API after all: a refresh that ran before
		// servePeer took it for a foreign one. This socket replaces it.
		old.close()
	}
	txn.Subscribe(pt.event)
	go pt.accept()
	return pt, nil
}

// attachForeign serves the engine's active transaction on a socket when it
// was begun through org.hostctl.Host1 (hostctl, the Cockpit page), so the
// Sysroot's ActiveTransactionPath names an address for it as rpm-ostreed's
// does for every transaction: an rpm-ostree client can follow its progress
// there and cancel it (rpm-ostree cancel). Only root may connect: the
// engine does not tell which uid began it.
func (s *Server) attachForeign(st dbus.Status) {
	ref := st.Transaction
	if ref == nil {
		return
	}
	s.mu.Lock()
	_, known := s.txns[ref.ID]
	s.mu.Unlock()
	if known {
		return
	}
	ae, ok := s.eng.(activeEngine)
	if !ok {
		return
	}
	txn := ae.Active()
	if txn == nil || txn.ID() != ref.ID {
		return // it ended meanwhile
	}
	pt, err := s.openPeer(txn, ref.Kind, ref.Kind+" (begun through "+dbus.BusName+")", "", 0, nil, true)
	if err != nil {
		s.log.Warn("serve a transaction begun through another API on a socket", "txn", ref.ID, "err", err)
		return
	}
	switch txn.State() {
	case "succeeded", "failed", "cancelled":
		// It may have finished before the subscription: close the socket
		// in any case (the Finished event, if it comes, does too).
		time.AfterFunc(keepFinished, pt.close)
	}
}

// activeEngine is an engine that hands out its transaction in flight
// (daemon.Engine does), for attachForeign.
type activeEngine interface {
	// Active is the transaction in flight, nil when idle.
	Active() dbus.Transaction
}

func (pt *peerTxn) accept() {
	for {
		c, err := pt.ln.AcceptUnix()
		if err != nil {
			return
		}
		pt.mu.Lock()
		full := len(pt.peers) >= maxPeers || pt.closed
		pt.mu.Unlock()
		if full {
			c.Close()
			continue
		}
		go pt.servePeerConn(c)
	}
}

// peer is one client connection.
type peer struct {
	c      *net.UnixConn
	in     *bufio.Reader
	uid    uint32
	wmu    sync.Mutex
	serial uint32
}

func (pt *peerTxn) servePeerConn(c *net.UnixConn) {
	defer c.Close()
	uid, err := peerUID(c)
	if err != nil {
		pt.s.log.Warn("transaction socket: cannot read the peer's credentials", "err", err)
		return
	}
	if uid != 0 && uid != pt.caller {
		pt.s.log.Warn("transaction socket: refused a peer of another uid", "uid", uid, "txn", pt.txn.ID())
		return
	}
	c.SetDeadline(time.Now().Add(authTimeout))
	in := bufio.NewReaderSize(c, authMaxLine)
	if err := serverAuth(in, c, uid); err != nil {
		pt.s.log.Info("transaction socket: authentication failed", "err", err, "txn", pt.txn.ID())
		return
	}
	c.SetDeadline(time.Time{})
	p := &peer{c: c, in: in, uid: uid}
	pt.mu.Lock()
	pt.peers[p] = true
	pt.mu.Unlock()
	defer func() {
		pt.mu.Lock()
		delete(pt.peers, p)
		pt.mu.Unlock()
	}()
	for {
		msg, err := godbus.DecodeMessage(in)
		if err != nil {
			return
		}
		if msg.Type == godbus.TypeMethodCall {
			pt.call(p, msg)
		}
	}
}

// peerUID is the uid of the process at the other end (SO_PEERCRED).
func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Uid, nil
}

// serverAuth is the server side of the D-Bus SASL handshake with the
// EXTERNAL mechanism only: the identity the client claims must be the uid
// the kernel reports for it. It returns after BEGIN; the messages follow
// on in.
func serverAuth(in *bufio.Reader, out io.Writer, uid uint32) error {
	b, err := in.ReadByte()
	if err != nil {
		return err
	}
	if b != 0 {
		return errors.New("the client did not start with a NUL byte")
	}
	var guid [16]byte
	if _, err := rand.Read(guid[:]); err != nil {
		return err
	}
	send := func(s string) error { _, err := io.WriteString(out, s+"\r\n"); return err }
	authed, waitingData := false, false
	check := func(hexID string) error {
		if hexID == "" { // no identity claimed: the kernel's is the one
			authed = true
			return send("OK " + hex.EncodeToString(guid[:]))
		}
		id, err := hex.DecodeString(hexID)
		if err != nil || string(id) != strconv.FormatUint(uint64(uid), 10) {
			return send("REJECTED EXTERNAL")
		}
		authed = true
		return send("OK " + hex.EncodeToString(guid[:]))
	}
	for i := 0; i < authMaxLines; i++ {
		line, err := readAuthLine(in)
		if err != nil {
			return err
		}
		cmd, arg, _ := strings.Cut(line, " ")
		switch {
		case cmd == "AUTH" && !authed:
			mech, data, _ := strings.Cut(arg, " ")
			if mech != "EXTERNAL" {
				err = send("REJECTED EXTERNAL")
				break
			}
			if data == "" {
				waitingData = true
				err = send("DATA")
				break
			}
			err = check(data)
		case cmd == "DATA" && waitingData && !authed:
			waitingData = false
			err = check(strings.TrimSpace(arg))
		case cmd == "CANCEL" && !authed, cmd == "ERROR" && !authed:
			waitingData = false
			err = send("REJECTED EXTERNAL")
		case cmd == "NEGOTIATE_UNIX_FD" && authed:
			err = send("ERROR file descriptor passing is not supported on this socket")
		case cmd == "BEGIN" && authed:
			return nil
		default:
			err = send("ERROR unexpected command")
		}
		if err != nil {
			return err
		}
	}
	return errors.New("too many authentication lines")
}

func readAuthLine(in *bufio.Reader) (string, error) {
	line, err := in.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errors.New("authentication line too long")
	}
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(line, "\r\n")), nil
}

// send writes a message with the next serial.
func (p *peer) send(msg *godbus.Message) error {
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return err
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.serial++
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[8:12], p.serial) // the header's serial field
	p.c.SetWriteDeadline(time.Now().Add(writeDeadline))
	_, err := p.c.Write(b)
	return err
}

func (p *peer) reply(call *godbus.Message, body ...any) {
	if call.Flags&godbus.FlagNoReplyExpected != 0 {
		return
	}
	m := &godbus.Message{Type: godbus.TypeMethodReply, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldReplySerial: godbus.MakeVariant(call.Serial())}}
	if len(body) > 0 {
		m.Headers[godbus.FieldSignature] = godbus.MakeVariant(godbus.SignatureOf(body...))
		m.Body = body
	}
	p.send(m)
}

func (p *peer) replyError(call *godbus.Message, name, text string) {
	if call.Flags&godbus.FlagNoReplyExpected != 0 {
		return
	}
	p.send(&godbus.Message{Type: godbus.TypeError, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldReplySerial: godbus.MakeVariant(call.Serial()),
		godbus.FieldErrorName:   godbus.MakeVariant(name),
		godbus.FieldSignature:   godbus.MakeVariant(godbus.SignatureOf(text)),
	}, Body: []any{text}})
}

func (p *peer) signal(member string, body ...any) error {
	m := &godbus.Message{Type: godbus.TypeSignal, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldPath:      godbus.MakeVariant(godbus.ObjectPath("/")),
		godbus.FieldInterface: godbus.MakeVariant(TransactionInterface),
		godbus.FieldMember:    godbus.MakeVariant(member),
	}}
	if len(body) > 0 {
		m.Headers[godbus.FieldSignature] = godbus.MakeVariant(godbus.SignatureOf(body...))
		m.Body = body
	}
	return p.send(m)
}

func header(msg *godbus.Message, f godbus.HeaderField) string {
	v, ok := msg.Headers[f]
	if !ok {
		return ""
	}
	switch x := v.Value().(type) {
	case string:
		return x
	case godbus.ObjectPath:
		return string(x)
	}
	return ""
}

// call answers one method call of a peer.
func (pt *peerTxn) call(p *peer, msg *godbus.Message) {
	iface, member := header(msg, godbus.FieldInterface), header(msg, godbus.FieldMember)
	if header(msg, godbus.FieldPath) != "/" {
		p.replyError(msg, "org.freedesktop.DBus.Error.UnknownObject", "the transaction is object /")
		return
	}
	switch {
	case member == "Start" && (iface == TransactionInterface || iface == ""):
		pt.start(p, msg)
	case member == "Cancel" && (iface == TransactionInterface || iface == ""):
		if err := pt.txn.Cancel(p.uid); err != nil {
			p.replyError(msg, dbus.ErrorName(err), err.Error())
			return
		}
		p.reply(msg)
	case member == "Ping" && iface == "org.freedesktop.DBus.Peer":
		p.reply(msg)
	case member == "Introspect" && iface == introspectable:
		p.reply(msg, XML)
	case iface == propsInterface && member == "GetAll":
		p.reply(msg, pt.properties())
	case iface == propsInterface && member == "Get":
		var ifc, name string
		if godbus.Store(msg.Body, &ifc, &name) != nil {
			p.replyError(msg, "org.freedesktop.DBus.Error.InvalidArgs", "Get takes (interface, property)")
			return
		}
		v, ok := pt.properties()[name]
		if !ok || ifc != TransactionInterface {
			p.replyError(msg, "org.freedesktop.DBus.Error.UnknownProperty", "no property "+ifc+"."+name)
			return
		}
		p.reply(msg, v)
	default:
		p.replyError(msg, "org.freedesktop.DBus.Error.UnknownMethod", fmt.Sprintf("no method %s.%s on the transaction", iface, member))
	}
}

func (pt *peerTxn) properties() map[string]godbus.Variant {
	return map[string]godbus.Variant{"Title": godbus.MakeVariant(pt.title), "InitiatingClientDescription": godbus.MakeVariant(pt.sender)}
}

// start starts the transaction, or tells that another client did (false);
// a peer that comes after the end gets the Finished signal again.
func (pt *peerTxn) start(p *peer, msg *godbus.Message) {
	pt.mu.Lock()
	fin := pt.finished
	already := !pt.started.IsZero()
	if !already && fin == nil {
		pt.started = time.Now()
	}
	pt.mu.Unlock()
	if fin != nil {
		p.reply(msg, false)
		ok, text := finishedArgs(fin)
		p.signal("Finished", ok, text)
		return
	}
	if already {
		p.reply(msg, false)
		return
	}
	if err := pt.txn.Start(p.uid); err != nil {
		pt.mu.Lock()
		pt.started = time.Time{}
		pt.mu.Unlock()
		p.replyError(msg, dbus.ErrorName(err), err.Error())
		return
	}
	p.reply(msg, true)
}

func finishedArgs(r *dbus.Result) (bool, string) {
	if r.Err != nil {
		return false, r.Err.Error()
	}
	return true, ""
}

// broadcast sends a signal to every connected peer.
func (pt *peerTxn) broadcast(member string, body ...any) {
	pt.mu.Lock()
	peers := make([]*peer, 0, len(pt.peers))
	for p := range pt.peers {
		peers = append(peers, p)
	}
	pt.mu.Unlock()
	for _, p := range peers {
		if err := p.signal(member, body...); err != nil {
			p.c.Close() // a peer that does not read loses its connection, not the transaction
		}
	}
}

// Structs of DownloadProgress's arguments.
type (
	pair64  struct{ A, B uint64 }
	pair32  struct{ A, B uint32 }
	triple  struct{ A, B, C uint32 }
	deltaTy struct {
		Parts, Fetched, SuperBlocks uint32
		Size                        uint64
	}
)

// event turns an engine event into rpm-ostree's signals: a new stage (a
// journalled step) is a task (TaskEnd of the previous one, TaskBegin), pull progress is
// DownloadProgress, other counted progress PercentProgress, messages are
// Message (but not the one repeating a stage's text), and the end is
// ProgressEnd, TaskEnd and Finished.
func (pt *peerTxn) event(ev dbus.Event) {
	pt.mu.Lock()
	task, stage, progress, started := pt.task, pt.stage, pt.progress, pt.started
	pt.mu.Unlock()
	switch {
	case ev.Progress != nil:
		pr := ev.Progress
		if pr.Stage != stage {
			if progress {
				pt.broadcast("ProgressEnd")
			}
			if task != "" {
				pt.broadcast("TaskEnd", "done")
			}
			text := pr.Text
			if text == "" {
				text = pr.Stage
			}
			pt.broadcast("TaskBegin", text)
			pt.mu.Lock()
			pt.task, pt.stage, pt.progress = text, pr.Stage, false
			pt.mu.Unlock()
			return
		}
		if pr.Stage == "pull" {
			elapsed := uint64(time.Since(started).Seconds())
			rate := uint64(0)
			if elapsed > 0 {
				rate = pr.Bytes / elapsed
			}
			outstanding := uint32(0)
			if pr.Total > pr.Done {
				outstanding = uint32(pr.Total - pr.Done)
			}
			pt.broadcast("DownloadProgress", pair64{uint64(started.Unix()), elapsed}, pair32{outstanding, 0},
				triple{0, 0, 0}, deltaTy{}, pair32{uint32(pr.Done), uint32(pr.Total)}, pair64{pr.Bytes, rate})
		} else {
			pct := uint32(0)
			if pr.Total > 0 {
				pct = uint32(pr.Done * 100 / pr.Total)
			}
			pt.broadcast("PercentProgress", pr.Text, pct)
		}
		pt.mu.Lock()
		pt.progress = true
		pt.mu.Unlock()
	case ev.Message != "":
		if ev.Message != task {
			pt.broadcast("Message", ev.Message)
		}
	case ev.Finished != nil:
		if progress {
			pt.broadcast("ProgressEnd")
		}
		if task != "" {
			pt.broadcast("TaskEnd", "done")
		}
		if pt.onFinish != nil {
			pt.onFinish(ev.Finished)
		}
		ok, text := finishedArgs(ev.Finished)
		pt.broadcast("Finished", ok, text)
		pt.mu.Lock()
		pt.finished, pt.task, pt.progress = ev.Finished, "", false
		pt.mu.Unlock()
		time.AfterFunc(keepFinished, pt.close)
		go pt.s.refresh()
	}
}

// close shuts the socket and its connections and forgets the transaction.
func (pt *peerTxn) close() {
	pt.mu.Lock()
	if pt.closed {
		pt.mu.Unlock()
		return
	}
	pt.closed = true
	for p := range pt.peers {
		p.c.Close()
	}
	pt.mu.Unlock()
	pt.ln.Close()
	pt.s.mu.Lock()
	if pt.s.txns[pt.txn.ID()] == pt {
		delete(pt.s.txns, pt.txn.ID())
	}
	pt.s.mu.Unlock()
}
