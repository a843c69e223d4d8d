package dbus

import (
	"context"
	"fmt"
	"strings"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/errdefs"
)

// Automatic updates: the AutomaticUpdatePolicy and LastAutomaticCheck
// properties, and the ReloadConfig and AutomaticUpdateTrigger methods that
// hostctl-automatic.service (hostctl upgrade --trigger-automatic-update-policy)
// and `hostctl reload` call.

// AutomaticCheck is how the last automatic update run ended.
type AutomaticCheck struct {
	// Time is when it ran (seconds since the epoch); 0: never.
	Time uint64 `json:"time"`
	// Mode is the policy it ran (check or stage).
	Mode string `json:"mode"`
	// Result says what it found or did: "found v2", "no update", "staged v2".
	Result string `json:"result"`
	// Error is why it failed ("" when it did not).
	Error string `json:"error,omitempty"`
}

// AutomaticEngine is what an Engine offers for automatic updates; the
// server serves ReloadConfig and AutomaticUpdateTrigger only for an Engine
// that implements it (the others answer Failed).
type AutomaticEngine interface {
	// ReloadConfig rereads hostd's settings on behalf of caller (sender:
	// its bus name); a file it cannot use keeps the old settings.
	ReloadConfig(caller uint32, sender string) error
	// AutomaticPolicy is the policy a trigger of caller (sender: its bus
	// name) runs: mode when not "", else the configured one; an unknown mode
	// is ErrInvalidArgument, a caller who may not trigger updates
	// ErrUnauthorized, even under the policy none.
	AutomaticPolicy(caller uint32, sender, mode string) (string, error)
}

// ExitingMessage starts the ErrBusy refusal of a transaction that arrives
// while hostd exits for being idle; the client retries it (the next hostd,
// started by D-Bus activation, serves it).
const ExitingMessage = "hostd is exiting after being idle"

// exitingRetry bounds how long a client retries a call refused by an
// exiting hostd, and how often.
const (
	exitingRetry    = 30 * time.Second
	exitingInterval = 100 * time.Millisecond
)

// retryExiting runs call again while hostd refuses it for exiting.
func retryExiting(ctx context.Context, call func() error) error {
	deadline := time.Now().Add(exitingRetry)
	for {
		err := call()
		if err == nil || !errdefs.IsBusy(err) || !strings.Contains(err.Error(), ExitingMessage) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(exitingInterval):
		}
	}
}

// AutomaticUpdateKind is the transaction kind of AutomaticUpdateTrigger;
// its option mode is the policy (check or stage) it runs.
const AutomaticUpdateKind = "automatic-update"

func automaticCheckToBus(c *AutomaticCheck) map[string]godbus.Variant {
	if c == nil {
		c = &AutomaticCheck{}
	}
	return map[string]godbus.Variant{
		"time": godbus.MakeVariant(c.Time), "mode": godbus.MakeVariant(c.Mode),
		"result": godbus.MakeVariant(c.Result), "error": godbus.MakeVariant(c.Error),
	}
}

func automaticCheckFromBus(m map[string]godbus.Variant) *AutomaticCheck {
	o := Options(m)
	if o.Int64("time") == 0 {
		return nil
	}
	return &AutomaticCheck{Time: uint64(o.Int64("time")), Mode: o.String("mode"), Result: o.String("result"), Error: o.String("error")}
}

func (s *Server) automatic() (AutomaticEngine, error) {
	a, ok := s.eng.(AutomaticEngine)
	if !ok {
		return nil, fmt.Errorf("this hostd has no automatic updates")
	}
	return a, nil
}

// ReloadConfig rereads hostd.conf.
func (h hostObject) ReloadConfig(sender godbus.Sender) *godbus.Error {
	a, err := h.s.automatic()
	if err != nil {
		return toBus(err)
	}
	uid, err := h.s.callerUID(sender)
	if err != nil {
		return toBus(err)
	}
	return toBus(a.ReloadConfig(uid, string(sender)))
}

// AutomaticUpdateTrigger runs the automatic update policy (or the option
// mode) as a transaction: enabled is false and the path "" under the
// policy none; otherwise the transaction's object path, to Start.
func (h hostObject) AutomaticUpdateTrigger(sender godbus.Sender, opts map[string]godbus.Variant) (bool, string, *godbus.Error) {
	a, err := h.s.automatic()
	if err != nil {
		return false, "", toBus(err)
	}
	o := Options(opts)
	mode := ""
	if v, ok := o["mode"]; ok {
		if err := (Options{"mode": v}).Check(OptionSpec{"mode": "s"}); err != nil {
			return false, "", toBus(err)
		}
		mode = v.Value().(string)
	}
	uid, err := h.s.callerUID(sender)
	if err != nil {
		return false, "", toBus(err)
	}
	policy, err := a.AutomaticPolicy(uid, string(sender), mode)
	if err != nil {
		return false, "", toBus(err)
	}
	if policy == "none" {
		return false, "", nil
	}
	fixed := map[string]godbus.Variant{}
	for k, v := range opts {
		fixed[k] = v
	}
	fixed["mode"] = godbus.MakeVariant(policy)
	path, berr := h.s.begin(sender, AutomaticUpdateKind, "", fixed)
	if berr != nil {
		return false, "", berr
	}
	return true, string(path), nil
}

// ReloadConfig asks hostd to reread hostd.conf.
func (c *Client) ReloadConfig(ctx context.Context) error { return c.call(ctx, "ReloadConfig", nil) }

// AutomaticUpdateTrigger runs the automatic update policy (opts: mode s
// overrides it for this call). With the policy none it returns (nil, nil):
// nothing to do; otherwise the transaction, to Run.
func (c *Client) AutomaticUpdateTrigger(ctx context.Context, opts map[string]any) (*Txn, error) {
	o := MakeOptions(opts)
	if c.Detach {
		o[detachOption] = godbus.MakeVariant(true)
	}
	var enabled bool
	var path string
	err := retryExiting(ctx, func() error {
		call := c.obj.CallWithContext(ctx, HostInterface+".AutomaticUpdateTrigger", 0, o)
		if call.Err != nil {
			return fromBus(wrapUnreachable(call.Err))
		}
		if err := call.Store(&enabled, &path); err != nil {
			return fmt.Errorf("read AutomaticUpdateTrigger's answer: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !enabled {
		return nil, nil
	}
	return &Txn{c: c, Path: godbus.ObjectPath(path), Detached: c.Detach}, nil
}
