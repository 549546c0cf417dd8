#!/usr/bin/env bash
# Benchmark: maestro-guest's targets. See bench/README.md, section "guest.sh".
#
#   1. the static guest's size (<= 2 MiB without TLS; it has no TLS client)
#   2. `nodes` and `render` latency against MaestroNG 0.8.3's Python guestutils on the
#      same variables (hyperfine -N), maestro-guest <= 2 ms a call
#   3. the 5-level chain of plays.sh (b) started by maestro with the readiness
#      handshake and with polling tcp checks (and by MaestroNG): total time and the
#      controller's delay from a dependency's READY to its dependent's start (< 50 ms)
#
# Usage: bash bench/guest.sh
#
# Environment knobs (all optional):
#   SKIP_BUILD=1        do not build (cargo) the guest and maestro
#   MAESTRO_BIN=PATH    the maestro binary (default: $CARGO_TARGET_DIR/release/maestro)
#   GUEST_BIN=PATH      the static guest (default:
#                       $CARGO_TARGET_DIR/x86_64-unknown-linux-musl/guest/maestro-guest)
#   BENCH_OUT=DIR       where the generated files, logs and results.json go
#                       (default: a fresh mktemp -d directory)
#   RUNS=N              maestro runs of the chain per variant (default 5)
#   NG_RUNS=N           MaestroNG runs of the chain (default 3; 0 skips MaestroNG)
#   WARMUP=N            hyperfine warmup runs (default 5)
#   PARTS=size,latency,chain   which parts to run
#
# Only loopback and the docker0 bridge: the chain's apps (host networking) listen on
# 127.0.0.1, the controller's readiness service on docker0's address, MaestroNG reaches
# the engine through socat on 127.0.0.1.
#
# Exit status: 0 when every target holds, 1 otherwise.
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
BUSYBOX_IMAGE="maestro-bench/busybox:1"   # as plays.sh builds it
GUEST_IMAGE="maestro-bench/guest:1"       # that image plus /bin/maestro-guest
PARTS="${PARTS:-size,latency,chain}"
NG_RUNS="${NG_RUNS:-3}"

# --- 1. tools ------------------------------------------------------------------------
ensure_maestrong
ensure_hyperfine
ensure_busybox
if [ "$NG_RUNS" -gt 0 ]; then ensure_socat; fi

# --- 2. builds (before any timing: the machine has 2 cores) ----------------------------
build_guest
build_maestro
require_maestro
[ -x "$GUEST" ] || { log "no static guest at $GUEST"; exit 1; }

OUT="${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench-guest.XXXXXX")}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
log "output directory: $OUT"

# --- 3. images: Debian's static busybox FROM scratch, then the guest on top ----------
if [[ "$PARTS" == *chain* ]]; then
    docker version >/dev/null
    build_busybox_image "$BUSYBOX_IMAGE"
    build_guest_image "$BUSYBOX_IMAGE" "$GUEST_IMAGE"
fi

# --- 4. cleanup on any exit, and the TCP bridge for MaestroNG ---------------------------
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ "$PARTS" == *chain* ]]; then
        log "cleaning up (containers mbg-*, socat)"
        "$PYTHON" "$ROOT/bench/guest.py" cleanup || true
    fi
    stop_socats
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NG_PORT=0
API="1.41"
if [[ "$PARTS" == *chain* ]]; then
    "$PYTHON" "$ROOT/bench/guest.py" cleanup   # leftovers of an interrupted run
    API="$(docker version --format '{{.Server.APIVersion}}')"
    if [ "$NG_RUNS" -gt 0 ]; then
        # MaestroNG 0.8.3 (docker-py 1.10.6 with requests 2.34) cannot use the unix
        # socket: give it the engine on a loopback TCP port, as plays.sh does.
        start_socat
        NG_PORT="$SOCAT_PORT"
    fi
fi

# --- 5. timing ------------------------------------------------------------------------------
check_machine ""
busy="$BUSY"

status=0
"$PYTHON" "$ROOT/bench/guest.py" run --out "$OUT" \
    --maestro "$MAESTRO" --guest "$GUEST" --python "$VENV/bin/python" \
    --maestrong "$MAESTRONG" --ng-port "$NG_PORT" --ng-api "$API" \
    --guest-image "$GUEST_IMAGE" --busybox-image "$BUSYBOX_IMAGE" \
    --runs "${RUNS:-5}" --ng-runs "$NG_RUNS" --warmup "${WARMUP:-5}" --parts "$PARTS" \
    >"$OUT/table.md" || status=$?
echo
engine=""
if [[ "$PARTS" == *chain* ]]; then
    engine=", engine $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
fi
echo "Results ($(nproc) cores, ${busy}% busy before timing, $(hyperfine --version), $("$VENV/bin/python" --version)$engine; files, logs and results.json in $OUT):"
echo
cat "$OUT/table.md"
exit "$status"
