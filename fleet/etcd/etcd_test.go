package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostctl/hostctl/errdefs"
	"github.com/hostctl/hostctl/fleet"
)

// etcdServer is Debian's etcd-server run by a test on 127.0.0.1.
type etcdServer struct {
	bin, dir, client, peer string
	cmd                    *exec.Cmd
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startEtcd(t *testing.T) *etcdServer {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (apt-get install etcd-server): skipping the tests with a real etcd")
	}
	s := &etcdServer{bin: bin, dir: t.TempDir(), client: "http://" + freePort(t), peer: "http://" + freePort(t)}
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

func (s *etcdServer) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "--name", "t", "--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", s.client, "--advertise-client-urls", s.client,
		"--listen-peer-urls", s.peer, "--initial-advertise-peer-urls", s.peer,
		"--initial-cluster", "t="+s.peer)
	logf, err := os.OpenFile(filepath.Join(s.dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := newEtcd(t, s, 1)
	deadline := time.Now().Add(60 * time.Second) // liveness bound
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.Holders(ctx, "probe", "")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
			t.Fatalf("etcd did not come up: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *etcdServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

func newEtcd(t *testing.T, s *etcdServer, slots int) *Semaphore {
	t.Helper()
	e, err := New(fleet.EtcdConfig{Endpoints: []string{s.client}, Slots: slots, OpTimeout: 2 * time.Second, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestEtcdSemaphore: hosts with their own clients take and give back slots
// many times; at no moment do more than N hold one.
func TestEtcdSemaphore(t *testing.T) {
	s := startEtcd(t)
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			group := fmt.Sprintf("g%d", n)
			var mu sync.Mutex
			var timeline []string
			holding, maxHolding := 0, 0
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for h := 0; h < 6; h++ {
				wg.Add(1)
				go func(id string) {
					defer wg.Done()
					e := newEtcd(t, s, n)
					ctx := context.Background()
					for round := 0; round < 3; round++ {
						for {
							st, err := e.Acquire(ctx, group, id)
							if err == nil {
								if !st.Held || len(st.Holders) > n {
									errs <- fmt.Errorf("%s acquired: %+v", id, st)
								}
								break
							}
							var taken *fleet.SlotsTakenError
							if !errors.As(err, &taken) || errdefs.Kind(err) != errdefs.ErrBusy {
								errs <- fmt.Errorf("%s: %w", id, err)
								return
							}
							time.Sleep(5 * time.Millisecond)
						}
						mu.Lock()
						holding++
						if holding > maxHolding {
							maxHolding = holding
						}
						timeline = append(timeline, fmt.Sprintf("%s acquire (%d holding)", id, holding))
						mu.Unlock()
						// Re-acquiring what it holds (as after its reboot) succeeds.
						if st, err := e.Acquire(ctx, group, id); err != nil || !st.Held {
							errs <- fmt.Errorf("%s re-acquire: %+v, %v", id, st, err)
						}
						time.Sleep(10 * time.Millisecond)
						mu.Lock()
						holding--
						timeline = append(timeline, fmt.Sprintf("%s release (%d holding)", id, holding))
						mu.Unlock()
						if ok, err := e.Release(ctx, group, id); err != nil || !ok {
							errs <- fmt.Errorf("%s release: %v, %v", id, ok, err)
						}
					}
				}(fmt.Sprintf("host%d", h))
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.Logf("timeline of slot holders, N=%d:\n%s", n, strings.Join(timeline, "\n"))
			if maxHolding > n {
				t.Errorf("%d hosts held a slot at once, N=%d", maxHolding, n)
			}
			if n == 2 && maxHolding < 2 {
				t.Logf("note: never two holders at once in this run")
			}
		})
	}
}

// TestEtcdOutageAndDeadHolder: an unreachable etcd is an error, never a
// slot; slots survive an etcd restart (no lease); a dead holder blocks its
// group until an operator releases it.
func TestEtcdOutageAndDeadHolder(t *testing.T) {
	s := startEtcd(t)
	a, b, op := newEtcd(t, s, 1), newEtcd(t, s, 1), newEtcd(t, s, 1)
	ctx := context.Background()
	if _, err := a.Acquire(ctx, "web", "hostA"); err != nil {
		t.Fatal(err)
	}
	s.stop()
	if st, err := b.Acquire(ctx, "web", "hostB"); err == nil || st.Held {
		t.Fatalf("acquire with etcd down: %+v, %v; want an error", st, err)
	} else if errors.As(err, new(*fleet.SlotsTakenError)) {
		t.Fatalf("acquire with etcd down: %v; want an unreachable error", err)
	} else {
		t.Logf("etcd down: %v", err)
	}
	s.start(t)
	// hostA "rebooted": a new client, same id; it still holds its slot.
	a2 := newEtcd(t, s, 1)
	if st, err := a2.Acquire(ctx, "web", "hostA"); err != nil || !st.Held || len(st.Holders) != 1 {
		t.Fatalf("hostA after the etcd restart: %+v, %v", st, err)
	}
	// hostA dies holding it: hostB waits...
	a.Close()
	a2.Close()
	_, err := b.Acquire(ctx, "web", "hostB")
	var taken *fleet.SlotsTakenError
	if !errors.As(err, &taken) || !strings.Contains(err.Error(), "1 of 1 taken by hostA") {
		t.Fatalf("hostB with hostA dead: %v", err)
	}
	t.Log(err)
	// ...until the operator releases hostA's slot.
	if ok, err := op.Release(ctx, "web", "hostA"); err != nil || !ok {
		t.Fatalf("operator release: %v, %v", ok, err)
	}
	if st, err := b.Acquire(ctx, "web", "hostB"); err != nil || !st.Held {
		t.Fatalf("hostB after the release: %+v, %v", st, err)
	}
	if st, err := op.Holders(ctx, "web", ""); err != nil || strings.Join(st.Holders, ",") != "hostB" || st.Slots != 1 {
		t.Fatalf("holders: %+v, %v", st, err)
	}
}
