package dbus

import (
	"context"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/errdefs"
)

// Reboots: the RebootState property (hostd.conf's RebootStrategy and where
// hostd is in it), and the FleetStatus and FleetRelease methods behind
// `hostctl fleet status` and `hostctl fleet release ID`.

// fleetTimeout bounds one call to the fleet lock for FleetStatus and FleetRelease.
const fleetTimeout = 30 * time.Second

// RebootState is when hostd reboots into an automatically staged update
// and what it waits for.
type RebootState struct {
	// Strategy is RebootStrategy: off, immediate, periodic or fleet.
	Strategy string `json:"strategy"`
	// State is idle (nothing to reboot into), waiting-window,
	// waiting-slot, rebooting, waiting-healthy (booted, holding a slot
	// until the new deployment is healthy), waiting (RebootStrategy=off:
	// the next reboot anyone makes boots it) or error.
	State string `json:"state"`
	// Message says the same in words: "waiting for a fleet slot in group
	// G: 3 of 3 taken by A, B, C".
	Message string `json:"message,omitempty"`
	// Pending is the commit of the staged update hostd reboots into ("":
	// none).
	Pending string `json:"pending,omitempty"`
	// Windows are the maintenance windows (periodic), as hostd.conf gives them.
	Windows string `json:"windows,omitempty"`
	// WindowStart and WindowEnd are the current or next window (seconds
	// since the epoch; 0: none).
	WindowStart uint64 `json:"window-start,omitempty"`
	WindowEnd   uint64 `json:"window-end,omitempty"`
	// Group, Slots and Holders are the fleet group, its N (0: unknown)
	// and the host ids holding its slots, as last seen.
	Group   string   `json:"group,omitempty"`
	Slots   uint32   `json:"slots,omitempty"`
	Holders []string `json:"holders,omitempty"`
	// HostID is this host's id in the fleet; SlotHeld whether it holds a slot.
	HostID   string `json:"host-id,omitempty"`
	SlotHeld bool   `json:"slot-held,omitempty"`
}

func rebootStateToBus(r *RebootState) map[string]godbus.Variant {
	if r == nil {
		r = &RebootState{}
	}
	holders := r.Holders
	if holders == nil {
		holders = []string{}
	}
	return map[string]godbus.Variant{
		"strategy": godbus.MakeVariant(r.Strategy), "state": godbus.MakeVariant(r.State),
		"message": godbus.MakeVariant(r.Message), "pending": godbus.MakeVariant(r.Pending),
		"windows": godbus.MakeVariant(r.Windows), "window-start": godbus.MakeVariant(r.WindowStart),
		"window-end": godbus.MakeVariant(r.WindowEnd), "group": godbus.MakeVariant(r.Group),
		"slots": godbus.MakeVariant(r.Slots), "holders": godbus.MakeVariant(holders),
		"host-id": godbus.MakeVariant(r.HostID), "slot-held": godbus.MakeVariant(r.SlotHeld),
	}
}

func rebootStateFromBus(m map[string]godbus.Variant) *RebootState {
	o := Options(m)
	if o.String("strategy") == "" {
		return nil
	}
	r := &RebootState{Strategy: o.String("strategy"), State: o.String("state"), Message: o.String("message"),
		Pending: o.String("pending"), Windows: o.String("windows"), Group: o.String("group"),
		Holders: o.Strings("holders"), HostID: o.String("host-id"), SlotHeld: o.Bool("slot-held")}
	r.WindowStart, _ = m["window-start"].Value().(uint64)
	r.WindowEnd, _ = m["window-end"].Value().(uint64)
	r.Slots, _ = m["slots"].Value().(uint32)
	return r
}

// FleetGroup is a fleet group's slots as the fleet lock has them now.
type FleetGroup struct {
	// Backend is etcd or fleetlock; Group the group; Slots its N (0:
	// unknown, as through FleetLock, which tells no holders).
	Backend string `json:"backend"`
	Group   string `json:"group"`
	Slots   uint32 `json:"slots"`
	// Holders are the host ids holding a slot, in the order they took them.
	Holders []string `json:"holders"`
	// HostID is this host's id; Held whether it holds a slot.
	HostID string `json:"host-id"`
	Held   bool   `json:"held"`
}

// FleetEngine is what an Engine offers for fleet reboots; the server
// serves FleetStatus and FleetRelease only for an Engine that implements it.
type FleetEngine interface {
	// FleetStatus asks the configured fleet lock about this host's group.
	FleetStatus(ctx context.Context) (FleetGroup, error)
	// FleetRelease frees the slot host id holds in this host's group, on
	// behalf of caller (sender: its bus name): an operator's release of a
	// host that died holding one ("" is this host). It tells whether id
	// held one.
	FleetRelease(ctx context.Context, caller uint32, sender, id string) (bool, error)
}

func (s *Server) fleet() (FleetEngine, error) {
	f, ok := s.eng.(FleetEngine)
	if !ok {
		return nil, errdefs.Errorf(errdefs.ErrFailed, "this hostd has no fleet reboots")
	}
	return f, nil
}

// FleetStatus lists the slots of this host's fleet group.
func (h hostObject) FleetStatus() (map[string]godbus.Variant, *godbus.Error) {
	f, err := h.s.fleet()
	if err != nil {
		return nil, toBus(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	g, err := f.FleetStatus(ctx)
	if err != nil {
		return nil, toBus(err)
	}
	holders := g.Holders
	if holders == nil {
		holders = []string{}
	}
	return map[string]godbus.Variant{"backend": godbus.MakeVariant(g.Backend), "group": godbus.MakeVariant(g.Group),
		"slots": godbus.MakeVariant(g.Slots), "holders": godbus.MakeVariant(holders),
		"host-id": godbus.MakeVariant(g.HostID), "held": godbus.MakeVariant(g.Held)}, nil
}

// FleetRelease frees the slot of host id in this host's group.
func (h hostObject) FleetRelease(sender godbus.Sender, id string) (bool, *godbus.Error) {
	f, err := h.s.fleet()
	if err != nil {
		return false, toBus(err)
	}
	uid, err := h.s.callerUID(sender)
	if err != nil {
		return false, toBus(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	released, err := f.FleetRelease(ctx, uid, string(sender), id)
	return released, toBus(err)
}

// FleetStatus asks hostd for the slots of its fleet group.
func (c *Client) FleetStatus(ctx context.Context) (FleetGroup, error) {
	var m map[string]godbus.Variant
	if err := c.call(ctx, "FleetStatus", &m); err != nil {
		return FleetGroup{}, err
	}
	o := Options(m)
	g := FleetGroup{Backend: o.String("backend"), Group: o.String("group"), Holders: o.Strings("holders"),
		HostID: o.String("host-id"), Held: o.Bool("held")}
	g.Slots, _ = m["slots"].Value().(uint32)
	return g, nil
}

// FleetRelease asks hostd to free the slot host id holds in its group.
func (c *Client) FleetRelease(ctx context.Context, id string) (bool, error) {
	var released bool
	err := c.call(ctx, "FleetRelease", &released, id)
	return released, err
}
