// Command demo runs hostctl's main job on a sandbox host under _demo/: it
// builds the test OS from real RPMs (cached), serves its OSTree repo on
// 127.0.0.1 with version 2 published and an RPM repository, makes a sysroot
// with version 1 deployed, starts a private dbus-daemon and hostd on that
// sysroot, then runs, as a user would: status, upgrade, pkg-add of a package
// from the demo repository, container install of a demo image (it answers on
// a port), status (one generation with both), rollback, status again (the
// container is gone at once), and prints what each printed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hostctl/hostctl/internal/testutil"
	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

func main() {
	dir := flag.String("dir", "_demo", "sandbox directory (recreated)")
	bin := flag.String("bin", "bin", "directory of hostd and hostctl")
	flag.Parse()
	if err := run(context.Background(), *dir, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, bin string) error {
	dir, _ = filepath.Abs(dir)
	bin, _ = filepath.Abs(bin)
	testutil.RemoveAll(filepath.Join(dir, "sysroot"))
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	step("Building the test OS (versions 1, 2, 3 from RPMs; cached after the first run)")
	o, err := fixture.BuildOS(ctx)
	if err != nil {
		return err
	}
	remote := filepath.Join(dir, "remote")
	if err := o.CopyRepo(remote); err != nil {
		return err
	}
	if err := fixture.SetRef(ctx, remote, fixture.StableRef, o.Commit("2")); err != nil {
		return err
	}
	srv, err := fixture.NewServer(remote)
	if err != nil {
		return err
	}
	defer srv.Stop()
	fmt.Printf("remote %s serves %s with version 2 published\n", srv.URL(), fixture.StableRef)

	step("Building the demo RPM repository and container image")
	rpms := filepath.Join(dir, "rpms")
	if _, err := fixture.BuildRPMRepo(ctx, rpms, fixture.LayerSpecs()...); err != nil {
		return err
	}
	rpmSrv, err := fixture.NewServer(rpms)
	if err != nil {
		return err
	}
	defer rpmSrv.Stop()
	image, err := demoImage(filepath.Join(dir, "image"))
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	fmt.Printf("rpm-md repository %s; OCI image %s\n", rpmSrv.URL(), image)

	sysroot := filepath.Join(dir, "sysroot")
	refspec := "hostos:" + fixture.StableRef
	if err := harness.NewSysroot(ctx, sysroot, fixture.OSName, srv.URL(), refspec, o.Commit("1")); err != nil {
		return err
	}
	fmt.Printf("sysroot %s has version 1 deployed\n", sysroot)
	if err := writeEtc(sysroot, "yum.repos.d/demo.repo", fixture.YumRepoFile("demo", rpmSrv.URL())); err != nil {
		return err
	}
	// The demo image is a local OCI layout with no signature: accept it.
	if err := writeEtc(sysroot, "containers/policy.json", `{"default":[{"type":"insecureAcceptAnything"}]}`); err != nil {
		return err
	}
	bus, err := harness.StartBus(ctx, filepath.Join(dir, "bus"), "packaging/org.hostctl.Host1.conf")
	if err != nil {
		return err
	}
	defer bus.Stop()
	// PID 1 here need not be systemd: hostd runs the containers itself.
	hostd, err := harness.StartHostd(ctx, filepath.Join(bin, "hostd"), sysroot, bus, "--service-manager", "direct")
	if err != nil {
		return err
	}
	defer hostd.Stop()
	fmt.Printf("hostd serves org.hostctl.Host1 on %s\n", bus.Address)

	defer stopContainers(sysroot)
	hostctl := func(args ...string) error {
		step("hostctl " + strings.Join(args, " "))
		r := harness.Hostctl(ctx, filepath.Join(bin, "hostctl"), bus, 0, args...)
		fmt.Print(r.Stdout)
		fmt.Fprint(os.Stderr, r.Stderr)
		if r.Code != 0 {
			return fmt.Errorf("hostctl %s exited %d", strings.Join(args, " "), r.Code)
		}
		return nil
	}
	for _, args := range [][]string{{"status"}, {"upgrade"}, {"pkg-add", "hello-layer"},
		{"container", "install", "--name", "hello", "--set", fmt.Sprintf("PORT=%d", port), image}} {
		if err := hostctl(args...); err != nil {
			return err
		}
	}
	step(fmt.Sprintf("curl http://127.0.0.1:%d/", port))
	fmt.Println(answer(port))
	for _, args := range [][]string{{"status"}, {"container", "list"}, {"rollback"}, {"status"}} {
		if err := hostctl(args...); err != nil {
			return err
		}
	}
	step(fmt.Sprintf("curl http://127.0.0.1:%d/", port))
	if a := answer(port); a != "" {
		return fmt.Errorf("the container still answers after the rollback: %q", a)
	}
	fmt.Println("(nothing answers: the container went with its generation)")
	return hostctl("history", "-n", "4")
}

func step(s string) { fmt.Printf("\n\033[1m$ %s\033[0m\n", s) }

// demoImage writes an OCI layout of busybox httpd answering "hello from
// $NAME" on $PORT, and returns its reference.
func demoImage(dir string) (string, error) {
	base, err := fixture.BusyboxLayer()
	if err != nil {
		return "", err
	}
	exports, err := fixture.Layer(fixture.HelloExports(fixture.HelloConfigTemplate(true)))
	if err != nil {
		return "", err
	}
	if _, err := fixture.OCILayout(dir, "1", [][]byte{base, exports}); err != nil {
		return "", err
	}
	return "oci:" + dir + ":1", nil
}

// writeEtc writes /etc/REL into the demo's deployment (there is one).
func writeEtc(sysroot, rel, text string) error {
	etcs, err := filepath.Glob(filepath.Join(sysroot, "ostree", "deploy", fixture.OSName, "deploy", "*", "etc"))
	if err != nil || len(etcs) == 0 {
		return fmt.Errorf("no /etc in the demo deployment: %v", err)
	}
	for _, etc := range etcs {
		p := filepath.Join(etc, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// answer is what http://127.0.0.1:port/ answers within a few seconds ("" if nothing).
func answer(port int) string {
	cl := http.Client{Timeout: time.Second}
	for i := 0; i < 10; i++ {
		if resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return strings.TrimSpace(string(b))
		}
		time.Sleep(300 * time.Millisecond)
	}
	return ""
}

// stopContainers stops what runc still runs for the demo (direct mode: the
// containers outlive hostd).
func stopContainers(sysroot string) {
	state := filepath.Join(sysroot, "run", "hostctl", "runc")
	ents, _ := os.ReadDir(state)
	for _, e := range ents {
		if e.IsDir() {
			exec.Command("runc", "--root", state, "delete", "--force", e.Name()).Run()
		}
	}
}
