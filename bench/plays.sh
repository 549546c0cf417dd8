#!/usr/bin/env bash
# Benchmark: plays against this machine's Docker engine, side by side:
# MaestroNG 0.8.3 (bench/.venv), docker compose and this project's maestro
# (release build). See bench/README.md, section "plays.sh".
#
#   (a) start of 50 independent containers
#   (b) start of a 5-level `requires` chain gated by tcp checks (compose:
#       depends_on: service_healthy with a health check), and by maestro's readiness
#       handshake (maestro-guest in the image); the engine's own start latency
#       (start call -> StartedAt of a created container) measured in the same run,
#       and for maestro's chains each level's own (its start call, from maestro's
#       `--json` events, to its StartedAt), on which their targets are judged
#   (c) status of 100 running containers
#   (d) restart --only-if-changed of those 100, nothing changed (compose: up -d)
#
# Usage: bash bench/plays.sh
#
# Environment knobs (all optional):
#   SKIP_BUILD=1        do not build maestro (release) and maestro-guest (musl)
#   GUEST_BIN=PATH      the static maestro-guest
#   MAESTRO_BIN=PATH    the maestro binary (default: target/release/maestro)
#   BENCH_OUT=DIR       where the generated files, logs and results.json go
#                       (default: a fresh mktemp -d directory)
#   RUNS=N              timed runs of (a) and (b) per tool (default 5)
#   STATUS_RUNS=N       timed runs of (c) per tool (default 10, after 1 warm-up)
#   RESTART_RUNS=N      timed runs of (d) per tool (default 5, after 1 warm-up)
#   PLAYS=abcd          which plays to run
#
# Only loopback: MaestroNG reaches the engine through socat listening on
# 127.0.0.1, the chain's apps (host networking) listen on 127.0.0.1 only, and
# every ship's ip is 127.0.0.1.
#
# Exit status: 0 when every target holds and nothing failed, 1 otherwise.
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
IMAGE="maestro-bench/busybox:1"   # explicit tag: MaestroNG pulls untagged images
GUEST_IMAGE="maestro-bench/guest:1"   # that image plus /bin/maestro-guest, for (b)'s handshake

# --- 1. tools ----------------------------------------------------------------
ensure_maestrong
ensure_socat
ensure_busybox
ensure_compose

docker version >/dev/null
API="$(docker version --format '{{.Server.APIVersion}}')"
log "engine $(docker version --format '{{.Server.Version}}'), API $API"

# --- 2. the image: Debian's static busybox, FROM scratch ---------------------
build_busybox_image "$IMAGE"

# --- 3. builds (before timing: the machine has 2 cores), the guest's image ---
build_guest
build_maestro
require_maestro
build_guest_image "$IMAGE" "$GUEST_IMAGE"

OUT="${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench-plays.XXXXXX")}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
log "output directory: $OUT"

# --- 4. cleanup on any exit, and the TCP bridge for MaestroNG ------------------
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    log "cleaning up (containers mb-*, compose projects mbcp*, socat)"
    "$PYTHON" "$ROOT/bench/plays.py" cleanup || true
    stop_socats
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PYTHON" "$ROOT/bench/plays.py" cleanup   # leftovers of an interrupted run

# MaestroNG 0.8.3 cannot use the unix socket: the engine on a loopback TCP port.
start_socat
NG_PORT="$SOCAT_PORT"

# --- 5. the plays ----------------------------------------------------------------
check_machine mb-

status=0
"$PYTHON" "$ROOT/bench/plays.py" run --out "$OUT" \
    --maestro "$MAESTRO" --maestrong "$MAESTRONG" \
    --compose "$COMPOSE" --compose-label "$COMPOSE_LABEL" \
    --ng-port "$NG_PORT" --ng-api "$API" --guest-image "$GUEST_IMAGE" \
    --runs "${RUNS:-5}" --status-runs "${STATUS_RUNS:-10}" \
    --restart-runs "${RESTART_RUNS:-5}" --plays "${PLAYS:-abcd}" \
    >"$OUT/table.md" || status=$?
echo
echo "Results ($(nproc) cores, engine $(docker version --format '{{.Server.Version}}'), $COMPOSE_LABEL; files, logs and results.json in $OUT):"
echo
cat "$OUT/table.md"
exit "$status"
