// Package dbus is hostctl's D-Bus API: the interface XML (the contract,
// checked in beside this file and served verbatim by introspection), the
// server side that the daemon exports, and the typed client that hostctl,
// Cockpit-style tools and the tests use.
package dbus

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/errdefs"
)

// Names of the API on the bus.
const (
	BusName              = "org.hostctl.Host1"
	HostPath             = godbus.ObjectPath("/org/hostctl/Host1")
	HostInterface        = "org.hostctl.Host1"
	TransactionInterface = "org.hostctl.Transaction1"
	transactionPrefix    = "/org/hostctl/Host1/Transaction/"
)

// HostXML and TransactionXML are the interface definitions, served as they are.
var (
	//go:embed org.hostctl.Host1.xml
	HostXML string
	//go:embed org.hostctl.Transaction1.xml
	TransactionXML string
)

// Deployment is one deployment as the API shows it.
type Deployment struct {
	ID           string   `json:"id"`
	OSName       string   `json:"osname"`
	Checksum     string   `json:"checksum"`
	Serial       int32    `json:"serial"`
	Version      string   `json:"version"`
	Timestamp    uint64   `json:"timestamp"`
	Origin       string   `json:"origin"`
	BaseChecksum string   `json:"base-checksum,omitempty"`
	Kargs        string   `json:"kargs"`
	Packages     []string `json:"packages"`
	// Layered are the NEVRAs its commit layers on the base (commit metadata),
	// Inactive the requests its base provided (nothing layered for them),
	// Missing the requests of the origin the commit carries neither way.
	Layered  []string `json:"layered,omitempty"`
	Inactive []string `json:"inactive,omitempty"`
	Missing  []string `json:"missing,omitempty"`
	// RemovedBasePackages are the base packages its origin's [overrides]
	// removes (override remove).
	RemovedBasePackages []string `json:"removed-base-packages"`
	// ReplacedBasePackages are the base packages its commit replaced
	// (override replace), "OLD-NEVRA -> NEW-NEVRA"; ReplaceRequests the
	// NEVRAs its origin's [overrides] asks to replace them with.
	ReplacedBasePackages []string `json:"replaced-base-packages"`
	ReplaceRequests      []string `json:"replace-requests"`
	// Containers are the generation's system containers, NAME=IMAGE@DIGEST.
	Containers []string `json:"containers"`
	Booted     bool     `json:"booted"`
	Default    bool     `json:"default"`
	Pinned     bool     `json:"pinned"`
	Staged     bool     `json:"staged"`
	// Rollback: it is the deployment a Rollback makes the default (the
	// booted one when a deployment is pending above it, else the next one
	// of its OS); at most one deployment is.
	Rollback bool `json:"rollback"`
	// FinalizationLocked: it is staged with its finalization locked, so a
	// shutdown drops it unless `hostctl finalize` unlocks it first.
	FinalizationLocked bool `json:"finalization-locked"`
	// RemoteError says why its origin cannot be followed, e.g. "Remote 'X' not found".
	RemoteError string `json:"remote-error,omitempty"`
}

func (d Deployment) toBus() map[string]godbus.Variant {
	pkgs := d.Packages
	if pkgs == nil {
		pkgs = []string{}
	}
	ctrs := d.Containers
	if ctrs == nil {
		ctrs = []string{}
	}
	m := map[string]godbus.Variant{
		"id":            godbus.MakeVariant(d.ID),
		"osname":        godbus.MakeVariant(d.OSName),
		"checksum":      godbus.MakeVariant(d.Checksum),
		"serial":        godbus.MakeVariant(d.Serial),
		"version":       godbus.MakeVariant(d.Version),
		"timestamp":     godbus.MakeVariant(d.Timestamp),
		"origin":        godbus.MakeVariant(d.Origin),
		"base-checksum": godbus.MakeVariant(d.BaseChecksum),
		"kargs":         godbus.MakeVariant(d.Kargs),
		"packages":      godbus.MakeVariant(pkgs),
		"containers":    godbus.MakeVariant(ctrs),
		"layered":       godbus.MakeVariant(nonNil(d.Layered)),
		"inactive":      godbus.MakeVariant(nonNil(d.Inactive)),
		"missing":       godbus.MakeVariant(nonNil(d.Missing)),
		"booted":        godbus.MakeVariant(d.Booted),
		"default":       godbus.MakeVariant(d.Default),
		"pinned":        godbus.MakeVariant(d.Pinned),
		"staged":        godbus.MakeVariant(d.Staged),
		"rollback":      godbus.MakeVariant(d.Rollback),
		"remote-error":  godbus.MakeVariant(d.RemoteError),
	}
	m["finalization-locked"] = godbus.MakeVariant(d.FinalizationLocked)
	m["removed-base-packages"] = godbus.MakeVariant(nonNil(d.RemovedBasePackages))
	m["replaced-base-packages"] = godbus.MakeVariant(nonNil(d.ReplacedBasePackages))
	m["replace-requests"] = godbus.MakeVariant(nonNil(d.ReplaceRequests))
	return m
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// DeploymentsFromBus decodes the Deployments property (aa{sv}), as a
// PropertiesChanged signal carries it.
func DeploymentsFromBus(l []map[string]godbus.Variant) []Deployment {
	out := make([]Deployment, 0, len(l))
	for _, m := range l {
		out = append(out, deploymentFromBus(m))
	}
	return out
}

func deploymentFromBus(m map[string]godbus.Variant) Deployment {
	o := Options(m)
	d := Deployment{
		ID:           o.String("id"),
		OSName:       o.String("osname"),
		Checksum:     o.String("checksum"),
		Serial:       int32(o.Int64("serial")),
		Version:      o.String("version"),
		Timestamp:    uint64(o.Int64("timestamp")),
		Origin:       o.String("origin"),
		BaseChecksum: o.String("base-checksum"),
		Kargs:        o.String("kargs"),
		Packages:     o.Strings("packages"),
		Containers:   o.Strings("containers"),
		Layered:      o.Strings("layered"),
		Inactive:     o.Strings("inactive"),
		Missing:      o.Strings("missing"),
		Booted:       o.Bool("booted"),
		Default:      o.Bool("default"),
		Pinned:       o.Bool("pinned"),
		Staged:       o.Bool("staged"),
		Rollback:     o.Bool("rollback"),
		RemoteError:  o.String("remote-error"),
	}
	d.RemovedBasePackages = o.Strings("removed-base-packages")
	d.ReplacedBasePackages = o.Strings("replaced-base-packages")
	d.ReplaceRequests = o.Strings("replace-requests")
	d.FinalizationLocked = o.Bool("finalization-locked")
	return d
}

// TransactionRef names a transaction.
type TransactionRef struct {
	ID   string            `json:"id"`
	Kind string            `json:"kind"`
	Path godbus.ObjectPath `json:"path"`
}

// Status is what hostd knows of the host.
type Status struct {
	Sysroot     string          `json:"sysroot"`
	Deployments []Deployment    `json:"deployments"`
	Transaction *TransactionRef `json:"transaction"`
	// CachedUpdate is what the last upgrade check found, until it is deployed or superseded.
	CachedUpdate *CachedUpdate `json:"cached-update,omitempty"`
	// AutomaticUpdatePolicy is hostd.conf's policy: none, check or stage.
	AutomaticUpdatePolicy string `json:"automatic-update-policy"`
	// LastAutomaticCheck is how the last automatic update run ended (nil: none ran).
	LastAutomaticCheck *AutomaticCheck `json:"last-automatic-check,omitempty"`
	// CleanupPending is true while the cleanup after the last transaction
	// runs (the removal of the deployment its swap replaced, the
	// repository prune): it runs after Finished, and the next transaction
	// waits for it.
	CleanupPending bool `json:"cleanup-pending"`
	// Reboot is the reboot strategy and what it waits for (nil: a hostd without one).
	Reboot *RebootState `json:"reboot,omitempty"`
}

// Record is a finished (or interrupted) transaction from the history.
type Record struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// ErrorName is the D-Bus name of the error (one of the Err* names) of
	// a failed or cancelled transaction; "" for a success, an interrupted
	// one and the records of a hostd that did not keep it.
	ErrorName string   `json:"error-name,omitempty"`
	Started   uint64   `json:"started"`
	Ended     uint64   `json:"ended"`
	Steps     []string `json:"steps"`
	// Before and After are the default deployment (generation) when the
	// transaction began and when it ended.
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

func (r Record) toBus() map[string]godbus.Variant {
	steps := r.Steps
	if steps == nil {
		steps = []string{}
	}
	return map[string]godbus.Variant{
		"id": godbus.MakeVariant(r.ID), "kind": godbus.MakeVariant(r.Kind),
		"state": godbus.MakeVariant(r.State), "error": godbus.MakeVariant(r.Error),
		"error-name": godbus.MakeVariant(r.ErrorName),
		"started":    godbus.MakeVariant(r.Started), "ended": godbus.MakeVariant(r.Ended),
		"steps":  godbus.MakeVariant(steps),
		"before": godbus.MakeVariant(r.Before), "after": godbus.MakeVariant(r.After),
	}
}

func recordFromBus(m map[string]godbus.Variant) Record {
	o := Options(m)
	return Record{ID: o.String("id"), Kind: o.String("kind"), State: o.String("state"), Error: o.String("error"),
		ErrorName: o.String("error-name"),
		Started:   uint64(o.Int64("started")), Ended: uint64(o.Int64("ended")), Steps: o.Strings("steps"),
		Before: o.String("before"), After: o.String("after")}
}

// Options is an a{sv} with typed accessors: a missing key reads as the zero
// value. Accessors forgive a value of another type (it reads as the zero
// value too), so a method checks its options with Check first.
type Options map[string]godbus.Variant

// Bool reads a boolean.
func (o Options) Bool(k string) bool { b, _ := o[k].Value().(bool); return b }

// String reads a string.
func (o Options) String(k string) string { s, _ := o[k].Value().(string); return s }

// Strings reads a string array.
func (o Options) Strings(k string) []string { s, _ := o[k].Value().([]string); return s }

// Int64 reads any integer type.
func (o Options) Int64(k string) int64 {
	switch v := o[k].Value().(type) {
	case int32:
		return int64(v)
	case int64:
		return v
	case uint32:
		return int64(v)
	case uint64:
		return int64(v)
	case int16:
		return int64(v)
	case uint16:
		return int64(v)
	case byte:
		return int64(v)
	}
	return 0
}

// Map returns the options as plain Go values.
func (o Options) Map() map[string]any {
	out := make(map[string]any, len(o))
	for k, v := range o {
		out[k] = v.Value()
	}
	return out
}

// OptionSpec names the options a method accepts and the D-Bus signature
// each must have: "b", "s", "as", "x", "t", "u", "i"...
type OptionSpec map[string]string

// With is spec with the options of more added (a new spec; a later one
// wins on a name both have).
func (spec OptionSpec) With(more ...OptionSpec) OptionSpec {
	out := OptionSpec{}
	for _, m := range append([]OptionSpec{spec}, more...) {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Check refuses an option that spec does not name and one whose value is
// not of the signature spec gives, naming the option, the type wanted and
// the type given (errdefs.ErrInvalidArgument). A typo or a mistyped value is
// an error rather than an option silently ignored or read as its zero value.
func (o Options) Check(spec OptionSpec) error {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		want, ok := spec[k]
		if !ok {
			if len(spec) == 0 {
				return errdefs.Errorf(errdefs.ErrInvalidArgument, "unknown option %q: this method takes no options", k)
			}
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "unknown option %q (known: %s)", k, spec.describe())
		}
		if got := o[k].Signature().String(); got != want {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "option %q must be %s, got %s", k, describeSignature(want), describeSignature(got))
		}
	}
	return nil
}

// describe lists the options as "name (type)", sorted.
func (spec OptionSpec) describe() string {
	names := make([]string, 0, len(spec))
	for k, sig := range spec {
		names = append(names, fmt.Sprintf("%s %s", k, sig))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// describeSignature names a D-Bus signature for a person: "a boolean (b)".
func describeSignature(sig string) string {
	words := map[string]string{
		"b": "a boolean", "s": "a string", "as": "an array of strings", "o": "an object path",
		"x": "a 64-bit integer", "t": "an unsigned 64-bit integer", "i": "a 32-bit integer",
		"u": "an unsigned 32-bit integer", "n": "a 16-bit integer", "q": "an unsigned 16-bit integer",
		"y": "a byte", "d": "a double", "h": "a file descriptor", "v": "a variant",
		"a{sv}": "a dictionary of variants", "a{ss}": "a dictionary of strings",
	}
	if sig == "" {
		return "nothing"
	}
	if w, ok := words[sig]; ok {
		return fmt.Sprintf("%s (%s)", w, sig)
	}
	return "of type " + sig
}

// MakeOptions builds an a{sv} from plain values.
func MakeOptions(m map[string]any) map[string]godbus.Variant {
	out := make(map[string]godbus.Variant, len(m))
	for k, v := range m {
		out[k] = godbus.MakeVariant(v)
	}
	return out
}
