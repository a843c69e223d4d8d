package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/tests/fixture"
	"github.com/hostctl/hostctl/tests/harness"
)

// helloImage writes an OCI layout of the hello image whose manifest's
// default greeting is greeting, and returns its directory.
func helloImage(t *testing.T, tag, greeting string) string {
	t.Helper()
	base, err := fixture.BusyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	ents := fixture.HelloExports(fixture.HelloConfigTemplate(true))
	for i := range ents {
		if ents[i].Name == "exports/manifest.json" {
			ents[i].Body = strings.Replace(ents[i].Body, `"GREETING": "hello"`, fmt.Sprintf("%q: %q", "GREETING", greeting), 1)
		}
	}
	exports, err := fixture.Layer(ents)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout-"+tag)
	if _, err := fixture.OCILayout(dir, tag, [][]byte{base, exports}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBootedContainersFollowGenerations is issue 13's end-to-end case on the
// booted host, with hostd and the containers under the machine's systemd: a
// container-only change is live at once, survives a reboot, and rolling it
// back is live at once; an OS upgrade and a container update before the
// reboot make one generation; rolling back and rebooting brings the old OS
// and the old container back together.
func TestBootedContainersFollowGenerations(t *testing.T) {
	for _, bin := range []string{"skopeo", "docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil {
			harness.Skip(t, "%s is not installed: %v", bin, err)
		}
	}
	e := newBootedEnv(t)
	reg, err := fixture.StartRegistry(e.ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	image1, err := reg.Push(e.ctx, helloImage(t, "1", "hello"), "1", "hello")
	if err != nil {
		t.Fatal(err)
	}
	image2, err := reg.Push(e.ctx, helloImage(t, "2", "howdy"), "2", "hello")
	if err != nil {
		t.Fatal(err)
	}
	// The machine's /etc (the booted deployment's, carried into every new
	// one by libostree's /etc merge): the test registry is plain HTTP and
	// its images are not signed.
	setup := fmt.Sprintf(`mkdir -p /etc/containers &&
printf '%%s' '{"default":[{"type":"insecureAcceptAnything"}]}' > /etc/containers/policy.json &&
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' > /etc/containers/registries.conf`, reg.Addr)
	if r := e.host.Run(e.ctx, 0, "sh", "-c", setup); r.Code != 0 {
		t.Fatalf("configure /etc/containers in the machine: %s%s", r.Stdout, r.Stderr)
	}
	// The machine shares the host's network: its containers answer here.
	port := freePort(t)
	answers := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		got := ""
		for time.Now().Before(deadline) {
			if got = strings.TrimSpace(get(port)); got == want {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		diag := e.host.Run(e.ctx, 0, "sh", "-c", "systemctl status web.service --no-pager; ls -l /var/lib/containers/hostctl/; cat /etc/systemd/system/web.service")
		t.Fatalf("port %d answers %q, want %q\n%s%s\nweb.service's journal:\n%s\nhostd's journal:\n%s", port, got, want,
			diag.Stdout, diag.Stderr, e.host.Machine.Journal(e.ctx, "web.service"), e.host.Machine.Journal(e.ctx, "hostd.service"))
	}

	e.mustHostctl("container", "install", "--name", "web", "--set", fmt.Sprintf("PORT=%d", port), image1)
	answers("hello from web")
	if st, err := e.host.UnitActiveState(e.ctx, "web.service"); err != nil || st != "active" {
		t.Fatalf("web.service under the machine's systemd: %q, %v", st, err)
	}
	e.boot() // survives a reboot: systemd starts the generation's unit
	answers("hello from web")
	booted, _ := bootedAndDefault(t, e.status())
	if len(booted.Containers) != 1 || !strings.HasPrefix(booted.Containers[0], "web="+image1+"@sha256:") {
		t.Fatalf("the booted generation's containers: %q", booted.Containers)
	}

	// A container-only change is live at once; rolling it back too.
	if r := e.hostctl(0, "container", "update", "--set", "GREETING=hi", "web"); r.Code != 0 {
		t.Fatalf("hostctl container update: exit %d\n%s%s\nweb.service's journal:\n%s\nhostd's journal:\n%s", r.Code, r.Stdout, r.Stderr,
			e.host.Machine.Journal(e.ctx, "web.service"), e.host.Machine.Journal(e.ctx, "hostd.service"))
	}
	answers("hi from web")
	e.mustHostctl("rollback")
	answers("hello from web")
	e.boot()
	answers("hello from web")

	// The OS and the container in one pending generation.
	e.publish("2")
	e.mustHostctl("upgrade")
	e.mustHostctl("container", "update", "--rebase", image2, "web")
	answers("howdy from web") // live at once, on the old OS
	booted, def := bootedAndDefault(t, e.status())
	if booted.Version != "1" || def.Version != "2" || !strings.HasPrefix(def.Containers[0], "web="+image2+"@") {
		t.Fatalf("before the reboot: booted %s %q, default %s %q; want 1 and 2 with image 2", booted.Version, booted.Containers, def.Version, def.Containers)
	}
	e.boot()
	e.expectBooted("2")
	answers("howdy from web")

	// Back to version 1 with image 1 and its old values.
	e.mustHostctl("rollback")
	answers("hello from web")
	e.boot()
	e.expectBooted("1")
	answers("hello from web")
	if out := e.mustHostctl("history"); !strings.Contains(out, "container-update") || !strings.Contains(out, "generation") {
		t.Fatalf("history does not show the generations:\n%s", out)
	}

	// What systemd runs: the default unit is Type=forking around runc
	// detached, enabled, and its main PID is the container.
	unit := e.host.Run(e.ctx, 0, "cat", "/etc/systemd/system/web.service")
	for _, want := range []string{"Type=forking", "PIDFile=/run/container-web.pid", "[Install]"} {
		if !strings.Contains(unit.Stdout, want) {
			t.Fatalf("web.service has no %q:\n%s", want, unit.Stdout)
		}
	}
	if r := e.host.Run(e.ctx, 0, "systemctl", "is-enabled", "web.service"); strings.TrimSpace(r.Stdout) != "enabled" {
		t.Fatalf("web.service is %q, want enabled", r.Stdout)
	}

	// An update whose service dies at once is rolled back by hostd, and
	// makes no generation.
	before := e.status().Deployments[0].ID
	if r := e.hostctl(0, "container", "update", "--set", "PORT=notaport", "web"); r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "rolled back") {
		t.Fatalf("failing update: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	answers("hello from web")
	if after := e.status().Deployments[0].ID; after != before {
		t.Fatalf("a failed update made generation %s", after)
	}

	// Uninstall: systemd no longer has the unit, nothing answers, and the
	// next boot does not start it either.
	e.mustHostctl("container", "uninstall", "web")
	if st, _ := e.host.UnitActiveState(e.ctx, "web.service"); st == "active" {
		t.Fatalf("web.service is still active after uninstall")
	}
	if a := get(port); a != "" {
		t.Fatalf("port %d still answers %q after uninstall", port, a)
	}
	e.boot()
	if a := get(port); a != "" {
		t.Fatalf("port %d answers %q after uninstall and reboot", port, a)
	}
	if r := e.host.Run(e.ctx, 0, "test", "-e", "/etc/systemd/system/web.service"); r.Code == 0 {
		t.Fatalf("the booted generation after uninstall still has web.service in its /etc")
	}
}
