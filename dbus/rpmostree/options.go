package rpmostree

import (
	"fmt"
	"sort"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/errdefs"
)

// rpm-ostree's deployment methods (Upgrade, Deploy, Rebase, PkgChange,
// UpdateDeployment) share one set of options, which each client sends as it
// likes (`rpm-ostree install` sends UpdateDeployment with cache-only,
// no-pull-base, idempotent-layering, lock-finalization... all false unless
// asked for). Each becomes the hostctl option of the same meaning for the
// engine kind the call turns into, or is dropped where hostd does what it
// asks anyway; where hostd cannot do it, a value asking for it is refused
// with InvalidArgument naming the option and why. A false boolean asks for
// nothing and is never refused.

// optRule says what becomes of one rpm-ostree option.
type optRule struct {
	// sig is the D-Bus signature the option must have.
	sig string
	// to gives, for each engine kind that honours the option, the hostctl
	// options it sets to its value; an empty list drops it (hostd does
	// that anyway). A kind not listed cannot honour it.
	to map[string][]string
	// why says why a kind not in to cannot honour it (%s: the kind).
	why string
}

// optRules are the options of one method.
type optRules map[string]optRule

// Engine kinds rpm-ostree's methods become.
const (
	kindUpgrade   = "upgrade"
	kindDeploy    = "deploy"
	kindRebase    = "rebase"
	kindPkgChange = "pkg-change"
	kindReset     = "reset"
)

// every maps each of kinds to the hostctl options to.
func every(kinds []string, to ...string) map[string][]string {
	m := map[string][]string{}
	for _, k := range kinds {
		m[k] = to
	}
	return m
}

var deployKinds = []string{kindUpgrade, kindDeploy, kindRebase, kindPkgChange, kindReset}

// deployRules are the options of the deployment methods, from rpm-ostree's
// org.projectatomic.rpmostree1.xml (UpdateDeployment) and what its daemon
// reads.
var deployRules = optRules{
	"reboot": {sig: "b", to: every(deployKinds, "reboot")},
	// Deploy and rebase take older commits; package changes pull no base.
	"allow-downgrade": {sig: "b", to: map[string][]string{kindUpgrade: {"allow-downgrade"}, kindDeploy: nil, kindRebase: nil, kindPkgChange: nil, kindReset: nil}},
	// hostd never deletes the ref a rebase leaves.
	"skip-purge": {sig: "b", to: every(deployKinds)},
	// hostd deploys a checksum without looking for it in the ref's history.
	"skip-branch-check": {sig: "b", to: every(deployKinds)},
	"no-pull-base": {sig: "b", to: every([]string{kindPkgChange, kindReset}),
		why: "hostd's %s pulls the base from the remote: leave no-pull-base out, or change packages (PkgChange) without a new base"},
	"cache-only": {sig: "b", to: every([]string{kindReset}),
		why: "hostd's %s updates the ostree ref and the rpm-md metadata it needs; it has no cache-only mode"},
	"download-only": {sig: "b", to: map[string][]string{kindUpgrade: {"download-only"}},
		why: "hostd downloads without deploying only for an upgrade, not for %s"},
	"dry-run": {sig: "b", to: map[string][]string{kindUpgrade: {"check"}, kindPkgChange: {"dry-run"}, kindRebase: {"preview"}},
		why: "hostd has no dry run of %s"},
	// Without package requests there is nothing to be idempotent about,
	// nor a request to let be inactive.
	"idempotent-layering":     {sig: "b", to: map[string][]string{kindPkgChange: {"idempotent"}, kindUpgrade: nil, kindDeploy: nil, kindRebase: nil, kindReset: nil}},
	"allow-inactive":          {sig: "b", to: map[string][]string{kindPkgChange: {"allow-inactive"}, kindUpgrade: nil, kindDeploy: nil, kindRebase: nil, kindReset: nil}},
	"allow-inactive-requests": {sig: "b", to: map[string][]string{kindPkgChange: {"allow-inactive"}, kindUpgrade: nil, kindDeploy: nil, kindRebase: nil, kindReset: nil}},
	"lock-finalization": {sig: "b", to: every([]string{kindUpgrade, kindDeploy, kindRebase}, "stage", "lock-finalization"),
		why: "hostd stages (and so locks the finalization of) upgrades, deploys and rebases only, not %s"},
	// The transaction's title (Server.title).
	"initiating-command-line": {sig: "s", to: every(deployKinds)},
	// hostd never regenerates the initramfs.
	"no-initramfs": {sig: "b", to: every(deployKinds)},
}

// rebaseRules are Rebase's: the deployment options and revision.
var rebaseRules = withRules(deployRules, optRules{"revision": {sig: "s", to: every([]string{kindRebase}, "revision")}})

// kargsRules are KernelArgs' options but the edits (read by KernelArgs).
var kargsRules = optRules{
	"reboot":                  {sig: "b", to: every([]string{"kargs"}, "reboot")},
	"initiating-command-line": {sig: "s", to: every([]string{"kargs"})},
	"append-if-missing":       {sig: "as", to: every([]string{"kargs"})},
	"delete-if-present":       {sig: "as", to: every([]string{"kargs"})},
	"final-kernel-args":       {sig: "s", to: every([]string{"kargs"})},
	"lock-finalization": {sig: "b",
		why: "hostd writes a kernel argument change (%s) as the new default deployment at once, never staged, so there is no finalization to lock"},
}

// rollbackRules are Rollback's options.
var rollbackRules = optRules{"reboot": {sig: "b", to: every([]string{"rollback"}, "reboot")}}

func withRules(a, b optRules) optRules {
	out := optRules{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// translate checks rpm-ostree options against rules and turns them into
// the hostctl options of kind.
func translate(method, kind string, opts map[string]godbus.Variant, rules optRules) (map[string]godbus.Variant, error) {
	out := map[string]godbus.Variant{}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := opts[k]
		r, ok := rules[k]
		if !ok {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "%s: option %q is not supported by hostd (supported: %s)", method, k, rules.names())
		}
		if got := v.Signature().String(); got != r.sig {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "%s: option %q must have type %s, got %s", method, k, r.sig, got)
		}
		to, honoured := r.to[kind]
		if !honoured {
			if !asks(v) {
				continue
			}
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "%s: option %q is not supported here: %s", method, k, fmt.Sprintf(r.why, kind))
		}
		for _, name := range to {
			out[name] = v
		}
	}
	return out, nil
}

// asks tells whether an option's value asks for something: a true
// boolean, a string or list that is not empty.
func asks(v godbus.Variant) bool {
	switch x := v.Value().(type) {
	case bool:
		return x
	case string:
		return x != ""
	case []string:
		return len(x) > 0
	}
	return true
}

// names lists the options of rules, sorted.
func (rules optRules) names() string {
	out := make([]string, 0, len(rules))
	for k := range rules {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// titleOf is a transaction's title: the client's initiating-command-line
// when it gave one (rpm-ostree does the same), else the method and its
// argument.
func titleOf(method, arg string, opts map[string]godbus.Variant) string {
	if s, ok := opts["initiating-command-line"].Value().(string); ok && s != "" {
		return s
	}
	if arg != "" {
		return method + " " + arg
	}
	return method
}
