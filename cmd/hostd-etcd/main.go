// Command hostd-etcd is hostd's etcd fleet lock helper: it reads one
// request (JSON) on standard input, runs it on the etcd semaphore the
// request configures, and writes the answer (JSON) on standard output.
// hostd runs it for each fleet lock operation when [Fleet] Backend=etcd, so
// that the etcd client is not part of hostd itself. It is not meant to be
// run by hand.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hostctl/hostctl/fleet/etcd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := etcd.Main(ctx, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
