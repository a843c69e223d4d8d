package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/hostctl/hostctl/dbus"
)

// runTxn runs a begun transaction, rendering its messages and a progress bar
// for pulls when stdout is a terminal.
func runTxn(ctx context.Context, out io.Writer, txn *dbus.Txn) (dbus.Result, error) {
	r := newRenderer(out)
	defer r.close()
	return txn.Run(ctx, r.event)
}

type renderer struct {
	out   io.Writer
	tty   bool
	p     *mpb.Progress
	bar   *mpb.Bar
	stage string
	bytes uint64
}

func newRenderer(out io.Writer) *renderer {
	f, ok := out.(*os.File)
	return &renderer{out: out, tty: ok && isatty.IsTerminal(f.Fd())}
}

func (r *renderer) event(ev dbus.Event) {
	switch {
	case ev.Message != "":
		r.endBar()
		fmt.Fprintln(r.out, ev.Message)
	case ev.Progress != nil:
		p := ev.Progress
		if !r.tty || p.Total == 0 {
			return
		}
		if r.bar == nil || r.stage != p.Stage {
			r.endBar()
			r.stage = p.Stage
			r.p = mpb.New(mpb.WithOutput(r.out), mpb.WithWidth(40))
			r.bar = r.p.AddBar(int64(p.Total),
				mpb.PrependDecorators(decor.Name(p.Stage+" "), decor.CountersNoUnit("%d/%d objects")),
				mpb.AppendDecorators(decor.Percentage(), decor.Any(func(decor.Statistics) string {
					return fmt.Sprintf("  %.1f MiB", float64(r.bytes)/(1<<20))
				})))
		}
		r.bytes = p.Bytes
		r.bar.SetTotal(int64(p.Total), false)
		r.bar.SetCurrent(int64(p.Done))
	}
}

func (r *renderer) endBar() {
	if r.bar != nil {
		r.bar.SetTotal(-1, true)
		r.p.Wait()
		r.bar, r.p = nil, nil
	}
}

func (r *renderer) close() { r.endBar() }
