// Package dbus is hostctl's D-Bus API: the interface XML (the contract,
// checked in beside this file and served verbatim by introspection), the
// server side that the daemon exports, and the typed client that hostctl,
// Cockpit-style tools and the tests use.
package dbus

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"

	godbus "github.com/godbus/dbus/v5"
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

// Error names that cross the bus.
const (
	ErrorPrefix          = "org.hostctl.Host1.Error."
	ErrBusy              = ErrorPrefix + "Busy"
	ErrAccessDenied      = ErrorPrefix + "AccessDenied"
	ErrInvalidArgument   = ErrorPrefix + "InvalidArgument"
	ErrNotFound          = ErrorPrefix + "NotFound"
	ErrCancelled         = ErrorPrefix + "Cancelled"
	ErrNotCancellable    = ErrorPrefix + "NotCancellable"
	ErrNoTransaction     = ErrorPrefix + "NoTransaction"
	ErrUnsupportedScript = ErrorPrefix + "UnsupportedScript"
	ErrFailed            = ErrorPrefix + "Failed"
)

// Error is an error with a D-Bus error name. The daemon returns it for
// everything a caller should tell apart; clients get it back from calls and
// from a transaction's Finished signal.
type Error struct {
	// Name is one of the Err* names.
	Name string
	// Err is the cause; its text is the message that crosses the bus.
	Err error
}

// NewError wraps err under a D-Bus error name.
func NewError(name string, err error) *Error { return &Error{Name: name, Err: err} }

// Errorf formats an error under a D-Bus error name.
func Errorf(name, format string, args ...any) *Error {
	return &Error{Name: name, Err: fmt.Errorf(format, args...)}
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrorName returns the D-Bus name of err: the name of the first *Error in
// its chain, or ErrFailed.
func ErrorName(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Name
	}
	return ErrFailed
}

// IsError tells whether err carries the D-Bus error name.
func IsError(err error, name string) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Name == name
	}
	var de godbus.Error
	if errors.As(err, &de) {
		return de.Name == name
	}
	var dp *godbus.Error
	if errors.As(err, &dp) {
		return dp.Name == name
	}
	return false
}

// toBus turns an error into the reply that crosses the bus.
func toBus(err error) *godbus.Error {
	if err == nil {
		return nil
	}
	return godbus.NewError(ErrorName(err), []any{err.Error()})
}

// fromBus turns a call's error back into an *Error with its name.
func fromBus(err error) error {
	if err == nil {
		return nil
	}
	var de godbus.Error
	if errors.As(err, &de) && strings.HasPrefix(de.Name, ErrorPrefix) {
		return &Error{Name: de.Name, Err: errors.New(busErrorText(de))}
	}
	var dp *godbus.Error
	if errors.As(err, &dp) && strings.HasPrefix(dp.Name, ErrorPrefix) {
		return &Error{Name: dp.Name, Err: errors.New(busErrorText(*dp))}
	}
	return err
}

func busErrorText(e godbus.Error) string {
	if len(e.Body) > 0 {
		if s, ok := e.Body[0].(string); ok {
			return s
		}
	}
	return e.Name
}

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
	// Containers are the generation's system containers, NAME=IMAGE@DIGEST.
	Containers []string `json:"containers"`
	Booted     bool     `json:"booted"`
	Default    bool     `json:"default"`
	Pinned     bool     `json:"pinned"`
	Staged     bool     `json:"staged"`
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
	return map[string]godbus.Variant{
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
		"booted":        godbus.MakeVariant(d.Booted),
		"default":       godbus.MakeVariant(d.Default),
		"pinned":        godbus.MakeVariant(d.Pinned),
		"staged":        godbus.MakeVariant(d.Staged),
	}
}

func deploymentFromBus(m map[string]godbus.Variant) Deployment {
	o := Options(m)
	return Deployment{
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
		Booted:       o.Bool("booted"),
		Default:      o.Bool("default"),
		Pinned:       o.Bool("pinned"),
		Staged:       o.Bool("staged"),
	}
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
}

// Record is a finished (or interrupted) transaction from the history.
type Record struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	State   string   `json:"state"`
	Error   string   `json:"error,omitempty"`
	Started uint64   `json:"started"`
	Ended   uint64   `json:"ended"`
	Steps   []string `json:"steps"`
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
		"started": godbus.MakeVariant(r.Started), "ended": godbus.MakeVariant(r.Ended),
		"steps":  godbus.MakeVariant(steps),
		"before": godbus.MakeVariant(r.Before), "after": godbus.MakeVariant(r.After),
	}
}

func recordFromBus(m map[string]godbus.Variant) Record {
	o := Options(m)
	return Record{ID: o.String("id"), Kind: o.String("kind"), State: o.String("state"), Error: o.String("error"),
		Started: uint64(o.Int64("started")), Ended: uint64(o.Int64("ended")), Steps: o.Strings("steps"),
		Before: o.String("before"), After: o.String("after")}
}

// Options is an a{sv} with typed, forgiving accessors: a missing key or a
// value of another type reads as the zero value.
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

// Check refuses keys that are not among known, so a typo is an error rather
// than an option silently ignored.
func (o Options) Check(known ...string) error {
	for k := range o {
		found := false
		for _, n := range known {
			if k == n {
				found = true
			}
		}
		if !found {
			return Errorf(ErrInvalidArgument, "unknown option %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	return nil
}

// MakeOptions builds an a{sv} from plain values.
func MakeOptions(m map[string]any) map[string]godbus.Variant {
	out := make(map[string]godbus.Variant, len(m))
	for k, v := range m {
		out[k] = godbus.MakeVariant(v)
	}
	return out
}
