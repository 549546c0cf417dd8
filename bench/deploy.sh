#!/usr/bin/env bash
# Benchmark: shipping a new version with zero outage. A service of 6 instances serving
# HTTP over 2 ships is moved from v1 to v2 by maestro `deploy --max-unavailable 2`,
# MaestroNG 0.8.3 `restart -c 1` and compose `up -d`, in the same run, while a probe
# hits every instance every 20 ms; then maestro deploys an image that crashes at start.
# See bench/README.md, section "deploy.sh".
#
# Usage: bash bench/deploy.sh
#
# Environment knobs (all optional):
#   SKIP_BUILD=1        do not run `cargo build --release -p maestro`
#   MAESTRO_BIN=PATH    the maestro binary (default: target/release/maestro)
#   BENCH_OUT=DIR       where the generated files, logs and results.json go
#                       (default: a fresh mktemp -d directory)
#   RUNS=N              runs (each: the three updates and the crash case; default 3)
#
# Only loopback: every instance publishes its port on 127.0.0.1, the ships' TCP
# endpoints are socat listeners on 127.0.0.1.
#
# Exit status: 0 when every target holds and nothing failed, 1 otherwise.
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
BASE_IMAGE="bench-deploy/busybox:1"

# --- 1. tools, the base image and maestro ------------------------------------------
ensure_maestrong
ensure_socat
ensure_busybox
ensure_compose
docker version >/dev/null
API="$(docker version --format '{{.Server.APIVersion}}')"
log "engine $(docker version --format '{{.Server.Version}}'), API $API"
build_maestro
require_maestro

OUT="${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench-deploy.XXXXXX")}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
log "output directory: $OUT"

# --- 2. cleanup on any exit ----------------------------------------------------------
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    log "cleaning up (containers bench-deploy-*, images bench-deploy/*, socat)"
    "$PYTHON" "$ROOT/bench/deploy.py" cleanup --base "$BASE_IMAGE" || true
    stop_socats
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PYTHON" "$ROOT/bench/deploy.py" cleanup   # leftovers of an interrupted run
build_busybox_image "$BASE_IMAGE"

# --- 3. the ships' TCP endpoints -------------------------------------------------------
# maestro: ship `local` on the unix socket, ship `tcp` through this endpoint.
start_socat
RS_TCP="$SOCAT_PORT"
# MaestroNG cannot use the unix socket (docker-py 1.10.6): both its ships are TCP.
start_socat
NG_1="$SOCAT_PORT"
start_socat
NG_2="$SOCAT_PORT"

# --- 4. the measurement -----------------------------------------------------------------
check_machine bench-deploy-

status=0
"$PYTHON" "$ROOT/bench/deploy.py" run --out "$OUT" \
    --maestro "$MAESTRO" --maestrong "$MAESTRONG" --compose "$COMPOSE" \
    --base "$BASE_IMAGE" --rs-tcp "$RS_TCP" --ng-ports "$NG_1,$NG_2" --api "$API" \
    --runs "${RUNS:-3}" >"$OUT/table.md" || status=$?
echo
echo "Results ($(nproc) cores, ${BUSY}% busy before timing, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end, engine $(docker version --format '{{.Server.Version}}'), $COMPOSE_LABEL, $("$VENV/bin/python" --version), MaestroNG 0.8.3; files, logs and results.json in $OUT):"
echo
cat "$OUT/table.md"
exit "$status"
