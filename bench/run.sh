#!/usr/bin/env bash
# bench/run.sh runs hostctl's benchmarks (`make bench`, after `make build`):
# deploy of an already pulled commit through hostd against `ostree admin
# deploy`, the status round trip over D-Bus with 1 and 50 clients against a
# minimal service and the bus itself, and hostd's resident memory at idle.
# Every figure is quoted with its peer from the same run; see
# docs/performance.md. It needs root (the test OS is installed with rpm
# --root), and takes about a minute on two cores.
#
# Arguments go to hostbench (bench/cmd/hostbench -h lists them), e.g.
#   ./bench/run.sh -deploy-runs 15 -status-calls 5000
#   ./bench/run.sh -only status
# BENCH_OUT=FILE also writes the report (Markdown) to FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
TAGS="containers_image_openpgp containers_image_storage_stub containers_image_docker_daemon_stub"

if [ "$(id -u)" != 0 ]; then
	echo "bench/run.sh: run as root: the test OS is installed with rpm --root" >&2
	exit 1
fi
for f in bin/hostd bin/hostctl; do
	if [ ! -x "$f" ]; then
		echo "bench/run.sh: $f is missing: run \`make build\` first (or \`make bench\`)" >&2
		exit 1
	fi
done
for tool in ostree dbus-daemon dbus-send rpm rpmbuild; do
	if ! command -v "$tool" >/dev/null; then
		echo "bench/run.sh: $tool is missing: run \`make deps\` (it installs ostree, dbus, rpm)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -tags "$TAGS" -o "$tmp/hostbench" ./bench/cmd/hostbench
go build -tags "$TAGS" -o "$tmp/refhost" ./bench/cmd/refhost

rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
if [ -n "${BENCH_OUT:-}" ]; then
	"$tmp/hostbench" -bin bin -refhost "$tmp/refhost" -revision "$rev" "$@" | tee "$BENCH_OUT"
else
	"$tmp/hostbench" -bin bin -refhost "$tmp/refhost" -revision "$rev" "$@"
fi
