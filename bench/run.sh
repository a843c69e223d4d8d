#!/usr/bin/env bash
# bench/run.sh runs hostctl's benchmarks (`make bench`, after `make build`):
#   - hostbench: deploy of an already pulled commit through hostd against
#     `ostree admin deploy`, the status round trip over D-Bus with 1 and 50
#     clients against a minimal service and the bus itself, and hostd's
#     resident memory at idle (about a minute on two cores);
#   - layerbench: `hostctl pkg-add` of one small package onto a base of
#     20,000 files against `dnf --installroot install`, cold and warm, and
#     loading and resolving against a generated repository of 70,000
#     packages against `dnf --installroot install --assumeno` (about three
#     minutes on two cores).
# Every figure is quoted with its peer from the same run; see
# docs/performance.md. It needs root (the test OS is installed with rpm
# --root).
#
# Arguments go to hostbench (bench/cmd/hostbench -h lists them), e.g.
#   ./bench/run.sh -deploy-runs 15 -status-calls 5000
#   ./bench/run.sh -only status
# LAYERBENCH_ARGS go to layerbench (bench/cmd/layerbench -h), e.g.
#   LAYERBENCH_ARGS="-only resolve -packages 20000" ./bench/run.sh
# BENCH_ONLY=hostbench or BENCH_ONLY=layerbench runs only that one.
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
for tool in ostree dbus-daemon dbus-send rpm rpmbuild createrepo_c dnf bwrap rofiles-fuse; do
	if ! command -v "$tool" >/dev/null; then
		echo "bench/run.sh: $tool is missing: run \`make deps\` (it installs ostree, dbus, rpm, createrepo-c, dnf, bubblewrap)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -tags "$TAGS" -o "$tmp/hostbench" ./bench/cmd/hostbench
go build -tags "$TAGS" -o "$tmp/refhost" ./bench/cmd/refhost
go build -tags "$TAGS" -o "$tmp/layerbench" ./bench/cmd/layerbench
go build -tags "$TAGS" -o "$tmp/ctrbench" ./bench/cmd/ctrbench

rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
only=${BENCH_ONLY:-all}
case "$only" in
all | hostbench | layerbench | ctrbench) ;;
*)
	echo "bench/run.sh: BENCH_ONLY=$only: want hostbench, layerbench or ctrbench" >&2
	exit 1
	;;
esac
run_all() {
	if [ "$only" = all ] || [ "$only" = hostbench ]; then
		"$tmp/hostbench" -bin bin -refhost "$tmp/refhost" -revision "$rev" "$@"
	fi
	if [ "$only" = all ] || [ "$only" = layerbench ]; then
		# shellcheck disable=SC2086 # LAYERBENCH_ARGS is a list of flags
		"$tmp/layerbench" -bin bin -revision "$rev" ${LAYERBENCH_ARGS:-}
	fi
	if [ "$only" = all ] || [ "$only" = ctrbench ]; then
		"$tmp/ctrbench" -bin bin -revision "$rev"
	fi
}
if [ -n "${BENCH_OUT:-}" ]; then
	run_all "$@" | tee "$BENCH_OUT"
else
	run_all "$@"
fi
