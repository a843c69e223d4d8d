package main

import (
	"context"
	"fmt"
	"github.com/hostctl/hostctl/bench/internal/report"
	"os"
	"path/filepath"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/harness"
)

// refName is the bus name refhost owns.
const refName = "org.hostctl.BenchRef1"

// watched is a process whose memory the benchmark reads.
type watched struct {
	label string
	pid   int
}

// memoryReadings are the memory of each watched process at named moments.
type memoryReadings struct {
	procs   []watched
	moments []string
	// at[moment][i] is procs[i]'s memory at that moment.
	at map[string][]memory
}

func (m *memoryReadings) read(moment string) error {
	row := make([]memory, len(m.procs))
	for i, p := range m.procs {
		mem, err := readMemory(p.pid)
		if err != nil {
			return fmt.Errorf("%s: %w", p.label, err)
		}
		row[i] = mem
	}
	m.moments = append(m.moments, moment)
	m.at[moment] = row
	return nil
}

// benchService runs the status and memory benchmarks on one hostd, serving a
// sysroot with two deployments (the usual state: the default and the
// rollback), beside refhost serving the same values.
func benchService(ctx context.Context, s *sandbox, cfg config) error {
	dir, err := s.newSysroot(ctx, "status")
	if err != nil {
		return err
	}
	if _, _, err := deployWithOstree(ctx, dir, s.os.Commit("2")); err != nil {
		return err
	}
	h, err := harness.StartHostd(ctx, filepath.Join(cfg.bin, "hostd"), dir, s.bus)
	if err != nil {
		return err
	}
	defer h.Stop()
	conn, err := s.connect()
	if err != nil {
		return err
	}
	defer conn.Close()

	hostdPID, err := pidOf(conn, dbus.BusName)
	if err != nil {
		return err
	}
	busPID, err := pidOf(conn, "org.freedesktop.DBus")
	if err != nil {
		return err
	}
	mem := &memoryReadings{at: map[string][]memory{}}
	mem.procs = []watched{{"hostd", hostdPID}}
	// hostd's first reading comes before refhost asks it for the values to copy.
	time.Sleep(idleSettle)
	hostdStart, err := readMemory(hostdPID)
	if err != nil {
		return err
	}

	ref, err := s.startReady(ctx, cfg.refhost, "-name", refName)
	if err != nil {
		return err
	}
	defer ref.stop()
	refPID, err := pidOf(conn, refName)
	if err != nil {
		return err
	}
	mem.procs = append(mem.procs, watched{"refhost (minimal godbus service, same properties)", refPID}, watched{"dbus-daemon (the bus)", busPID})
	time.Sleep(idleSettle)
	if err := mem.read("after start"); err != nil {
		return err
	}
	mem.at["after start"][0] = hostdStart

	hostdCall := statusCall(dbus.BusName)
	refCall := statusCall(refName)
	for _, call := range []func(*godbus.Conn) error{hostdCall, refCall} {
		for i := 0; i < cfg.idleCalls; i++ {
			if err := call(conn); err != nil {
				return err
			}
		}
	}
	time.Sleep(idleSettle)
	afterCalls := fmt.Sprintf("after %d status calls", cfg.idleCalls)
	if err := mem.read(afterCalls); err != nil {
		return err
	}
	report.Progress("memory: read after start and after %d status calls", cfg.idleCalls)

	if cfg.only["status"] {
		targets := []target{
			{"hostd: GetAll on org.hostctl.Host1", hostdCall, hostdPID},
			{"refhost: the same GetAll, same values", refCall, refPID},
			{"dbus-daemon: org.freedesktop.DBus.GetId", busGetID, busPID},
		}
		res, err := runLatency(s, targets, busPID, cfg)
		if err != nil {
			return err
		}
		proc, err := runProcesses(ctx, s, cfg)
		if err != nil {
			return err
		}
		time.Sleep(idleSettle)
		if err := mem.read("after the status benchmark"); err != nil {
			return err
		}
		printLatency(os.Stdout, targets, res, proc, cfg)
	}
	if cfg.only["memory"] {
		printMemory(os.Stdout, mem, afterCalls)
	}
	return nil
}

// idleSettle is how long a process is left alone before its memory is read.
const idleSettle = 2 * time.Second

// statusCall is the call `hostctl status` makes, on the service that owns name:
// Properties.GetAll of org.hostctl.Host1 at /org/hostctl/Host1, decoded.
func statusCall(name string) func(*godbus.Conn) error {
	return func(conn *godbus.Conn) error {
		var props map[string]godbus.Variant
		err := conn.Object(name, dbus.HostPath).Call("org.freedesktop.DBus.Properties.GetAll", 0, dbus.HostInterface).Store(&props)
		if err != nil {
			return fmt.Errorf("GetAll on %s: %w", name, err)
		}
		if _, ok := props["Deployments"]; !ok {
			return fmt.Errorf("GetAll on %s: no Deployments property in %v", name, props)
		}
		return nil
	}
}

// busGetID is the bus daemon answering a call itself: the floor of a round trip.
func busGetID(conn *godbus.Conn) error {
	var id string
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		return fmt.Errorf("GetId on the bus: %w", err)
	}
	return nil
}
