// Command hostd is the host update daemon: it owns the sysroot and serves
// org.hostctl.Host1 on the system bus (or the bus DBUS_SYSTEM_BUS_ADDRESS names).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/daemon"
	"github.com/hostctl/hostctl/dbus"
)

func main() {
	sysroot := flag.String("sysroot", "/", "sysroot to manage (a directory for a host that is not booted)")
	verbose := flag.Bool("verbose", false, "log debug messages")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(*sysroot, log); err != nil {
		fmt.Fprintln(os.Stderr, "hostd:", err)
		os.Exit(1)
	}
}

func run(sysroot string, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	eng, err := daemon.New(ctx, daemon.Config{Sysroot: sysroot, Logger: log})
	if err != nil {
		return err
	}
	defer eng.Close()
	conn, err := godbus.ConnectSystemBus()
	if err != nil {
		return fmt.Errorf("connect to the system bus: %w", err)
	}
	defer conn.Close()
	if _, err := dbus.Serve(conn, eng); err != nil {
		return err
	}
	log.Info("serving", "name", dbus.BusName, "sysroot", sysroot)
	<-ctx.Done()
	log.Info("stopping")
	return nil
}
