// Command hostd is the host update daemon: it owns the sysroot and serves
// org.hostctl.Host1 on the system bus (or the bus DBUS_SYSTEM_BUS_ADDRESS names).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/daemon"
	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/dbus/rpmostree"
	"github.com/hostctl/hostctl/deploy"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == deploy.PullHelperArg {
		os.Exit(deploy.RunPullHelper(os.Stdin, os.Stdout))
	}
	sysroot := flag.String("sysroot", "/", "sysroot to manage (a directory for a host that is not booted)")
	verbose := flag.Bool("verbose", false, "log debug messages")
	var ctr daemon.ContainerConfig
	flag.StringVar(&ctr.ServiceManager, "service-manager", "systemd", "who runs system containers: systemd (over D-Bus), or direct: hostd runs runc itself and supervises it (hosts whose PID 1 is not systemd)")
	flag.StringVar(&ctr.SystemdAddress, "systemd-address", "", "D-Bus address of systemd (default: the system bus)")
	flag.StringVar(&ctr.Runtime, "runtime", "", "OCI runtime (default: runc from $PATH)")
	compat := flag.Bool("rpm-ostree-compat", false, "also serve rpm-ostree's D-Bus API (org.projectatomic.rpmostree1) for cockpit-ostree, GNOME Software and KDE Discover, as hostd.conf's [Daemon] RpmOstreeCompat=true does (its default, auto, serves it unless rpm-ostree is installed); skipped with a warning while rpm-ostreed owns the name")
	configPath := flag.String("config", daemon.DefaultConfigPath, "settings file (AutomaticUpdatePolicy=, IdleExitTimeout=, RebootStrategy= under [Daemon]; [Periodic], [Fleet]); a missing file means the defaults")
	pause := flag.String("debug-pause-before", "", "debugging: stop every transaction before the named step, or the cleanup after one (sweep) until hostd stops (the crash tests use it)")
	setFaults := faultFlags(flag.CommandLine)
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	settings, err := daemon.LoadSettings(*configPath)
	if err != nil {
		if ce := (*daemon.ConfigError)(nil); errors.As(err, &ce) {
			err = fmt.Errorf("%w: fix the file, or name another with --config", ce)
		}
		fmt.Fprintln(os.Stderr, "hostd: refusing to start:", err)
		os.Exit(2)
	}
	cfg := daemon.Config{Sysroot: *sysroot, Logger: log, Containers: ctr, PauseBefore: *pause, ConfigPath: *configPath, Settings: settings}
	if err := setFaults(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "hostd:", err)
		os.Exit(2)
	}
	if err := run(cfg, *compat || settings.ServeRpmOstree(rpmOstreeInstalled())); err != nil {
		fmt.Fprintln(os.Stderr, "hostd:", err)
		os.Exit(1)
	}
}

// rpmOstreeInstalled tells whether this host has rpm-ostree: then its
// rpm-ostreed, not hostd, answers to rpm-ostree's bus name by default.
func rpmOstreeInstalled() bool {
	for _, p := range []string{"/usr/bin/rpm-ostree", "/usr/libexec/rpm-ostreed"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

func run(cfg daemon.Config, compat bool) error {
	log := cfg.Logger
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	eng, err := daemon.New(ctx, cfg)
	if err != nil {
		return err
	}
	idle := newIdleClock()
	conn, err := godbus.ConnectSystemBus(godbus.WithIncomingInterceptor(idle.observe))
	if err != nil {
		eng.Close()
		return fmt.Errorf("connect to the system bus: %w", err)
	}
	// The engine stops first (the state database closed), then the bus
	// name goes: a hostd D-Bus activation starts next finds the database free.
	defer func() {
		if err := eng.Close(); err != nil {
			log.Error("stop the engine", "err", err)
		}
		conn.Close()
	}()
	if _, err := dbus.Serve(conn, eng); err != nil {
		return err
	}
	// hostd stays while its reboot strategy has work left, and while
	// rpm-ostree clients are registered.
	held := eng.RebootPending
	if compat {
		if rs, err := rpmostree.Serve(conn, eng, log); err != nil {
			log.Warn("not serving rpm-ostree's API", "err", err)
		} else {
			held = func() bool { return eng.RebootPending() || rs.HasClients() }
			log.Info("serving", "name", rpmostree.BusName)
		}
	}
	log.Info("serving", "name", dbus.BusName, "sysroot", cfg.Sysroot, "service-manager", cfg.Containers.ServiceManager)
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case <-idle.exit(ctx, eng, held):
		log.Info("exiting: idle", "idle-exit-timeout", eng.Settings().IdleExitTimeout)
	}
	return nil
}
