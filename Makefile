# hostctl: build, test and demo. Every target installs what it needs on a fresh Debian 12 machine.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
TAGS := containers_image_openpgp containers_image_storage_stub containers_image_docker_daemon_stub
GOFLAGS_ALL := -tags "$(TAGS)"
TEST_TIMEOUT ?= 25m

# System packages the build, the tests and the demo use.
APT_PACKAGES := gcc make pkg-config libglib2.0-dev libostree-dev ostree rpm createrepo-c dbus dbus-daemon \
	bubblewrap libsolv-dev libsolvext-dev runc docker-registry skopeo dnf cpio busybox-static e2fsprogs libgpgme-dev systemd-container debootstrap curl util-linux polkitd etcd-server \
	cockpit-ws cockpit-bridge cockpit-system chromium
# The peers of the full benchmark run only.
BENCH_APT_PACKAGES := podman

.PHONY: all deps build test test-short demo fuzz bench bench-short vet fmt clean install

all: build

# deps installs the system packages that are missing (apt-get update first, as on a fresh machine).
deps:
	@missing=""; for p in $(APT_PACKAGES) $(EXTRA_APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	@mkdir -p bin
	$(GO) build $(GOFLAGS_ALL) -o bin/hostd ./cmd/hostd
	$(GO) build $(GOFLAGS_ALL) -o bin/hostctl ./cmd/hostctl
	$(GO) build $(GOFLAGS_ALL) -o bin/hostd-etcd ./cmd/hostd-etcd

vet:
	$(GO) vet $(GOFLAGS_ALL) ./...

test: build
	$(GO) vet $(GOFLAGS_ALL) ./...
	@# The output goes to the terminal and to test.log; when a test fails,
	@# its report is repeated at the end, where a truncated CI log still shows it.
	@# Tests leave what a passing run should still show (the fleet test's
	@# slot timeline, skips for want of something) in test-reports/.
	@rm -rf test-reports
	@set -o pipefail; HOSTCTL_TEST_REPORTS=$(CURDIR)/test-reports $(GO) test $(GOFLAGS_ALL) -timeout $(TEST_TIMEOUT) -count=1 ./... 2>&1 | tee test.log || { \
		echo "==== the failures again:"; grep -E -B2 -A40 -- '--- FAIL|^panic:|test timed out' test.log | tail -300; \
		echo "==== failed:" $$(grep -oE -- '--- FAIL: [^ ]+' test.log | cut -d' ' -f3 | sort -u); exit 1; }
	@if [ -d test-reports ]; then echo "==== reports of passing tests (test-reports/):"; cat test-reports/*.txt; fi
	# The engine, the API and the errors again under the race detector.
	$(GO) test $(GOFLAGS_ALL) -race -timeout 10m -count=1 ./daemon ./dbus ./errdefs ./internal/...

# test-short skips the end-to-end tests.
test-short: deps
	$(GO) test $(GOFLAGS_ALL) -short -count=1 ./...

demo: build
	$(GO) run $(GOFLAGS_ALL) ./tests/cmd/demo

# fuzz runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 30s
fuzz: deps
	@for pkg in $$($(GO) list $(GOFLAGS_ALL) ./...); do \
		for f in $$($(GO) test $(GOFLAGS_ALL) -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test $(GOFLAGS_ALL) -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

bench:
	$(MAKE) build EXTRA_APT_PACKAGES="$(BENCH_APT_PACKAGES)"
	./bench/run.sh

# bench-short runs every benchmark once, few runs and small sizes (about 30 s),
# so none rots; bench/short_test.go does the same under HOSTCTL_BENCH_SHORT=1
# (opt-in for now). No figure of it means anything.
bench-short:
	$(MAKE) build EXTRA_APT_PACKAGES="$(BENCH_APT_PACKAGES)"
	BENCH_SHORT=1 ./bench/run.sh

# install puts hostd (and hostd-etcd), hostctl, the systemd unit, the D-Bus files and the Cockpit page under DESTDIR.
DESTDIR ?=
install: build
	install -D -m 0755 bin/hostd $(DESTDIR)/usr/libexec/hostd
	install -D -m 0755 bin/hostd-etcd $(DESTDIR)/usr/libexec/hostd-etcd
	install -D -m 0755 bin/hostctl $(DESTDIR)/usr/bin/hostctl
	install -D -m 0644 packaging/hostd.service $(DESTDIR)/usr/lib/systemd/system/hostd.service
	install -D -m 0644 packaging/hostctl-automatic.service $(DESTDIR)/usr/lib/systemd/system/hostctl-automatic.service
	install -D -m 0644 packaging/hostctl-automatic.timer $(DESTDIR)/usr/lib/systemd/system/hostctl-automatic.timer
	install -D -m 0644 packaging/org.hostctl.Host1.conf $(DESTDIR)/usr/share/dbus-1/system.d/org.hostctl.Host1.conf
	install -D -m 0644 packaging/org.hostctl.Host1.service $(DESTDIR)/usr/share/dbus-1/system-services/org.hostctl.Host1.service
	@# rpm-ostree's own activation file, when there, stays: rpm-ostreed keeps its name.
	@f=$(DESTDIR)/usr/share/dbus-1/system-services/org.projectatomic.rpmostree1.service; \
	if [ -e "$$f" ] && ! grep -q '^SystemdService=hostd.service$$' "$$f"; then \
		echo "install: $$f is rpm-ostree's: left as it is (rpm-ostreed serves that name here)"; \
	else \
		install -D -m 0644 packaging/org.projectatomic.rpmostree1.service "$$f"; \
	fi
	install -D -m 0644 dbus/org.hostctl.Host1.xml $(DESTDIR)/usr/share/dbus-1/interfaces/org.hostctl.Host1.xml
	install -D -m 0644 dbus/org.hostctl.Transaction1.xml $(DESTDIR)/usr/share/dbus-1/interfaces/org.hostctl.Transaction1.xml
	install -D -m 0644 packaging/org.hostctl.host.policy $(DESTDIR)/usr/share/polkit-1/actions/org.hostctl.host.policy
	install -d $(DESTDIR)/usr/share/cockpit/hostctl
	install -m 0644 cockpit/hostctl/manifest.json cockpit/hostctl/index.html cockpit/hostctl/hostctl.js cockpit/hostctl/hostctl.css $(DESTDIR)/usr/share/cockpit/hostctl/

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	-chattr -i _demo/sysroot/ostree/deploy/*/deploy/* 2>/dev/null
	rm -rf bin _demo
