package containers

import (
	"context"
	"fmt"
	"strings"

	"github.com/hostctl/hostctl/internal/proc"
)

// DefaultUnitTemplate is the systemd unit of a container whose image has no
// /exports/service.template; it is atomic's SYSTEMD_UNIT_FILE_DEFAULT_TEMPLATE,
// byte for byte. Because it names both $EXEC_STOPPOST and $PIDFILE, a runtime
// with --pid-file gets the detached commands (see RuntimeDirectives).
const DefaultUnitTemplate = `
[Unit]
Description=$NAME

[Service]
ExecStartPre=$EXEC_STARTPRE
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=$EXEC_STOPPOST
Restart=on-failure
WorkingDirectory=$DESTDIR
PIDFile=$PIDFILE

[Install]
WantedBy=multi-user.target
`

// RuntimeFeatures are the options of the OCI runtime the EXEC_* commands use.
type RuntimeFeatures struct {
	PidFile       bool // "runc run" takes --pid-file
	SystemdCgroup bool // "runc" takes --systemd-cgroup
}

// ProbeRuntime asks the runtime which features it has, the way atomic does:
// "RUNTIME run --help" mentioning --pid-file and "RUNTIME --help" mentioning
// --systemd-cgroup. It fails when the runtime cannot be run.
func ProbeRuntime(ctx context.Context, runtime string) (RuntimeFeatures, error) {
	if runtime == "" {
		runtime = DefaultRuntime
	}
	help, err := proc.Command(ctx, runtime, "--help").CombinedOutput()
	if err != nil {
		return RuntimeFeatures{}, fmt.Errorf("run %s --help: %w: install runc or configure another OCI runtime", runtime, err)
	}
	runHelp, err := proc.Command(ctx, runtime, "run", "--help").CombinedOutput()
	if err != nil {
		return RuntimeFeatures{}, fmt.Errorf("run %s run --help: %w", runtime, err)
	}
	return RuntimeFeatures{
		PidFile:       strings.Contains(string(runHelp), "--pid-file"),
		SystemdCgroup: strings.Contains(string(help), "--systemd-cgroup"),
	}, nil
}

// Directives are the values of EXEC_START, EXEC_STOP, EXEC_STARTPRE and
// EXEC_STOPPOST.
type Directives struct {
	Start, Stop, StartPre, StopPost string
}

// TemplateSupportsPidfile reports whether a unit template can run the
// container detached: it names both $EXEC_STOPPOST and $PIDFILE, literally
// (atomic's _template_support_pidfile; ${PIDFILE} does not count).
func TemplateSupportsPidfile(unitTemplate string) bool {
	return strings.Contains(unitTemplate, "$EXEC_STOPPOST") && strings.Contains(unitTemplate, "$PIDFILE")
}

// RuntimeDirectives builds the EXEC_* commands exactly as atomic's
// _generate_systemd_runtime_startstop_directives does. With a template that
// supports a pid file and a runtime that takes --pid-file:
//
//	EXEC_START    RUNTIME  --systemd-cgroup run -d --pid-file PIDFILE 'NAME'
//	EXEC_STOPPOST RUNTIME delete 'NAME'
//
// (two spaces after RUNTIME: atomic's format string), EXEC_STOP and
// EXEC_STARTPRE empty. Otherwise:
//
//	EXEC_START RUNTIME --systemd-cgroup run 'NAME'
//	EXEC_STOP  RUNTIME --systemd-cgroup kill 'NAME'
//
// and the other two empty. " --systemd-cgroup" appears only when the runtime
// has it. name must have passed ValidateName (it is quoted with ').
func RuntimeDirectives(runtime, name, pidfile string, f RuntimeFeatures, templateSupportsPidfile bool) Directives {
	cg := ""
	if f.SystemdCgroup {
		cg = " --systemd-cgroup"
	}
	if templateSupportsPidfile && f.PidFile {
		return Directives{
			Start:    fmt.Sprintf("%s %s run -d --pid-file %s '%s'", runtime, cg, pidfile, name),
			StopPost: fmt.Sprintf("%s delete '%s'", runtime, name),
		}
	}
	return Directives{
		Start: fmt.Sprintf("%s%s run '%s'", runtime, cg, name),
		Stop:  fmt.Sprintf("%s%s kill '%s'", runtime, cg, name),
	}
}

// DetachedStopTimeout is the TimeoutStopSec= ForkingIfDetached gives the
// default unit. The container's process is PID 1 of its PID namespace, and
// such a process ignores the SIGTERM systemd sends on stop unless it
// handles it; systemd then waits TimeoutStopSec (90 s by default) before
// SIGKILL, and every update, rollback and uninstall would wait that long.
const DetachedStopTimeout = "10s"

// ForkingIfDetached adds Type=forking and TimeoutStopSec=DetachedStopTimeout
// to the [Service] section of a unit rendered from DefaultUnitTemplate
// whose ExecStart is the detached "run -d --pid-file" form. atomic's
// template lacks both. With the default Type=simple systemd takes runc's
// exit after detaching for the end of the service: it would kill the
// container's cgroup and run ExecStopPost (runc delete). With Type=forking
// systemd waits for runc to exit and reads the container's PID from
// PIDFile= (checked under systemd 252: the service stays active with the
// container's process as its main PID). A unit that already sets Type= is
// returned as it is.
func ForkingIfDetached(unit, execStart string) string {
	if !strings.Contains(execStart, " run -d ") || strings.Contains(unit, "\nType=") {
		return unit
	}
	add := "[Service]\nType=forking\n"
	if !strings.Contains(unit, "\nTimeoutStopSec=") {
		add += "TimeoutStopSec=" + DetachedStopTimeout + "\n"
	}
	return strings.Replace(unit, "[Service]\n", add, 1)
}

// UnitTemplate returns the service template to use: the image's
// /exports/service.template when it has one (ok true), else
// DefaultUnitTemplate.
func UnitTemplate(imageTemplate string, ok bool) string {
	if ok {
		return imageTemplate
	}
	return DefaultUnitTemplate
}

// RenderUnit renders a service template into the unit written to
// /etc/systemd/system/NAME.service.
func RenderUnit(unitTemplate string, values map[string]string) (string, error) {
	return Render("service.template", unitTemplate, values)
}

// RenderTmpfiles renders an image's /exports/tmpfiles.template into the
// /etc/tmpfiles.d/NAME.conf content.
func RenderTmpfiles(tmpfilesTemplate string, values map[string]string) (string, error) {
	return Render("tmpfiles.template", tmpfilesTemplate, values)
}

// DefaultTmpfiles is the tmpfiles.d content of an image without
// tmpfiles.template: one "d" line (mode 0700, owned by uid:gid) per bind
// mount source of config.json that does not exist on the host, so that
// systemd-tmpfiles creates it before the container starts (atomic's
// _generate_tmpfiles_data). It is empty when nothing is missing.
func DefaultTmpfiles(missingSources []string, uid, gid int) string {
	var b strings.Builder
	for _, p := range missingSources {
		fmt.Fprintf(&b, "d    %s   0700 %d %d - -\n", p, uid, gid)
	}
	return b.String()
}

// ValidateName checks a container name: 1 to 128 characters of letters,
// digits, "_", "-" and ".", starting with a letter or digit. The name becomes
// a directory, a unit name and a quoted word of ExecStart, so a slash, a
// quote or white space is refused.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("container name is empty")
	}
	if len(name) > 128 {
		return fmt.Errorf("container name %q is longer than 128 characters", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if i == 0 && !alnum {
			return fmt.Errorf("container name %q must start with a letter or digit", name)
		}
		if !alnum && c != '_' && c != '-' && c != '.' {
			return fmt.Errorf("container name %q has %q: use letters, digits, _, - and . only", name, c)
		}
	}
	return nil
}
