package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// latencies collects the durations of one method's calls.
type latencies struct {
	mu    sync.Mutex
	d     []time.Duration
	nerrs int
	errs  []error // the first few
}

func (l *latencies) add(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
	if err != nil {
		l.nerrs++
		if len(l.errs) < 5 {
			l.errs = append(l.errs, err)
		}
	}
}

// quantile of sorted durations, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// TestLoad: 50 clients, each on its own bus connection, read the status
// (GetAll), the containers and the history in a loop while an upgrade, a
// pkg-add and a container update run one after another: every call is
// answered, without error, and the writes do what they should.
//
// That no read waits for a transaction is proven by an ordering, not by a
// clock: with an upgrade held in its pull by a remote that never answers
// (the sysroot lock, the repo and the engine all in use), every read is
// answered while that upgrade is still running. A read that waited would
// never be answered. The latencies under load are printed for the record
// (100 ms at p99 is the goal); the benchmarks under bench/ compare them with
// a peer, since a timed assertion here would measure the machine, not hostd.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short")
	}
	for _, bin := range []string{"runc", "skopeo", "docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil {
			harness.Skip(t, "%s is not installed (%v): the load test runs a container update", bin, err)
		}
	}
	c := newCtrEnv(t)
	srv := c.serveRPMs(nil, nil, nil)
	c.setRepoFile("layer", fixture.YumRepoFile("layer", srv.URL()))
	tpl := quickStopTemplate(t)
	img1, err := c.reg.Push(c.ctx, c.layout("1", fixture.HelloExports(tpl)), "1", "hello")
	if err != nil {
		t.Fatal(err)
	}
	img2, err := c.reg.Push(c.ctx, c.layout("2", fixture.HelloExports(tpl), []fixture.TarEntry{{Name: "etc/hello-version", Body: "2\n"}}), "2", "hello")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	c.mustHostctl("container", "install", "--name", "web", "--set", fmt.Sprintf("PORT=%d", port), img1)
	c.waitAnswer(port, "hello from web")
	c.publish("2")

	// Reads while a transaction is held: each is answered, and the
	// transaction is still running after all of them.
	rconn, err := godbus.Connect(c.bus.Address)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	reader := dbus.NewClient(rconn)
	defer reader.Close()
	c.srv.SetStall(fixture.StallAll(fixture.StallNoAnswer))
	wait := c.startHostctl("upgrade")
	waitUntil(t, 20*time.Second, "the upgrade to start", func() bool { return c.status().Transaction != nil })
	for _, m := range []string{"GetAll", "ListContainers", "History", "ListImages"} {
		if err := readOnce(c.ctx, reader, m); err != nil {
			t.Errorf("%s while an upgrade is held in its pull: %v", m, err)
		}
	}
	if c.status().Transaction == nil {
		t.Fatal("the held upgrade ended on its own: the ordering proves nothing")
	}
	c.cancelAndWaitIdle()
	if err, out := wait(); err == nil {
		t.Fatalf("the held upgrade was not cancelled:\n%s", out)
	}
	c.srv.SetStall(nil)

	const clients = 50
	// Each client pauses between rounds, as a status page polling does;
	// without a pause 50 clients measure how fast 2 cores route D-Bus
	// messages, not whether a read waits for a transaction.
	pause := 50 * time.Millisecond
	if p, err := time.ParseDuration(os.Getenv("HOSTCTL_LOAD_PAUSE")); err == nil {
		pause = p
	}
	methods := []string{"GetAll", "ListContainers", "History"}
	if m := os.Getenv("HOSTCTL_LOAD_METHODS"); m != "" {
		methods = strings.Split(m, ",") // to see one method's share
	}
	lat := map[string]*latencies{}
	for _, m := range methods {
		lat[m] = &latencies{}
	}
	ctx, stop := context.WithCancel(c.ctx)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		conn, err := godbus.Connect(c.bus.Address)
		if err != nil {
			t.Fatalf("client %d: connect: %v", i, err)
		}
		cl := dbus.NewClient(conn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.Close()
			for ctx.Err() == nil {
				time.Sleep(pause)
				for _, m := range methods {
					// A call that takes more than 10 s counts as unanswered.
					cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					start := time.Now()
					err := readOnce(cctx, cl, m)
					lat[m].add(time.Since(start), err)
					cancel()
				}
			}
		}()
	}
	// The writers, one after another, as a user would run them.
	phases := []struct {
		name string
		args []string
	}{
		{"upgrade", []string{"upgrade"}},
		{"pkg-add", []string{"pkg-add", "hello-layer"}},
		{"container update", []string{"container", "update", "--rebase", img2, "web"}},
	}
	begin := time.Now()
	for _, p := range phases {
		start := time.Now()
		c.mustHostctl(p.args...)
		t.Logf("%s under load: %v", p.name, time.Since(start).Round(time.Millisecond))
	}
	stop()
	wg.Wait()
	elapsed := time.Since(begin)

	var report strings.Builder
	fmt.Fprintf(&report, "%d clients (pause %v between rounds), %v of writes (upgrade, pkg-add, container update):\n", clients, pause, elapsed.Round(time.Millisecond))
	fmt.Fprintf(&report, "%-16s %8s %8s %8s %8s %6s\n", "method", "calls", "p50", "p99", "max", "errors")
	var bad []string
	for _, m := range methods {
		l := lat[m]
		sorted := slices.Clone(l.d)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		p50, p99, mx := quantile(sorted, 0.5), quantile(sorted, 0.99), quantile(sorted, 1)
		fmt.Fprintf(&report, "%-16s %8d %8v %8v %8v %6d\n", m, len(sorted), p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), mx.Round(time.Millisecond), l.nerrs)
		if l.nerrs > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d errors, first: %v", m, l.nerrs, l.errs))
		}
		if len(sorted) == 0 {
			bad = append(bad, m+": no call completed")
		}
	}
	t.Log(report.String())
	for _, b := range bad {
		t.Error(b)
	}
	// The writes did what they should.
	st := c.status()
	if len(st.Deployments) == 0 || st.Deployments[0].Version != "2" || !slices.Equal(st.Deployments[0].Packages, []string{"hello-layer"}) {
		t.Errorf("after the writes: %+v", st.Deployments)
	}
	if l := c.list()["web"]; l.Image != img2 {
		t.Errorf("container after the update: %+v", l)
	}
}

// readOnce calls one read method, bounded by 10 s: a read that waits for a
// transaction held forever would not come back at all.
func readOnce(ctx context.Context, cl *dbus.Client, method string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	switch method {
	case "GetAll":
		_, err = cl.Status(ctx)
	case "ListContainers":
		_, err = cl.ListContainers(ctx)
	case "History":
		_, err = cl.History(ctx, 20)
	case "ListImages":
		_, err = cl.ListImages(ctx)
	default:
		err = fmt.Errorf("unknown read method %q", method)
	}
	return err
}
