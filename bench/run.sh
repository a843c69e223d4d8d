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
# BENCH_ONLY=hostbench, layerbench or ctrbench runs only that one.
# BENCH_OUT=FILE also writes the report (Markdown) to FILE.
# BENCH_SHORT=1 runs every benchmark once, with few runs and small sizes
# (`make bench-short`, and the CI test bench/short_test.go): it keeps the
# benchmarks from rotting; its figures mean nothing.
# BENCH_BIN=DIR takes hostd and hostctl from DIR instead of bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
TAGS="containers_image_openpgp containers_image_storage_stub containers_image_docker_daemon_stub"

if [ "$(id -u)" != 0 ]; then
	echo "bench/run.sh: run as root: the test OS is installed with rpm --root" >&2
	exit 1
fi
bin=${BENCH_BIN:-bin}
for f in "$bin/hostd" "$bin/hostctl"; do
	if [ ! -x "$f" ]; then
		echo "bench/run.sh: $f is missing: run \`make build\` first (or \`make bench\`)" >&2
		exit 1
	fi
done
for tool in ostree dbus-daemon dbus-send rpm rpmbuild createrepo_c dnf bwrap rofiles-fuse skopeo docker-registry runc podman; do
	if ! command -v "$tool" >/dev/null; then
		echo "bench/run.sh: $tool is missing: run \`make deps\` (it installs ostree, dbus, rpm, createrepo-c, dnf, bubblewrap, skopeo, docker-registry, runc, podman)" >&2
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
short_host=() short_layer=() short_ctr=()
if [ -n "${BENCH_SHORT:-}" ]; then
	short_host=(-deploy-runs 1 -status-calls 40 -rounds 2 -clients 1,4 -idle-calls 20 -process-runs 2)
	short_layer=(-files 200 -cold-runs 1 -warm-runs 1 -packages 300 -resolve-cold-runs 1 -resolve-warm-runs 1)
	short_ctr=(-pull-runs 1 -warm-runs 1 -install-runs 1 -small-files 30 -random-mib 1 -big-runs 1 -big-files 60 -big-random-mib 2)
fi
run_all() {
	if [ "$only" = all ] || [ "$only" = hostbench ]; then
		"$tmp/hostbench" -bin "$bin" -refhost "$tmp/refhost" -revision "$rev" "${short_host[@]}" "$@"
	fi
	if [ "$only" = all ] || [ "$only" = layerbench ]; then
		# shellcheck disable=SC2086 # LAYERBENCH_ARGS is a list of flags
		"$tmp/layerbench" -bin "$bin" -revision "$rev" "${short_layer[@]}" ${LAYERBENCH_ARGS:-}
	fi
	if [ "$only" = all ] || [ "$only" = ctrbench ]; then
		# shellcheck disable=SC2086 # CTRBENCH_ARGS is a list of flags
		"$tmp/ctrbench" -bin "$bin" -revision "$rev" "${short_ctr[@]}" ${CTRBENCH_ARGS:-}
	fi
}
if [ -n "${BENCH_OUT:-}" ]; then
	run_all "$@" | tee "$BENCH_OUT"
else
	run_all "$@"
fi
