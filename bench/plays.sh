#!/usr/bin/env bash
# Benchmark: plays against this machine's Docker engine, side by side:
# MaestroNG 0.8.3 (bench/.venv), docker compose and this project's maestro
# (release build). See bench/README.md, section "plays.sh".
#
#   (a) start of 50 independent containers
#   (b) start of a 5-level `requires` chain gated by tcp checks (compose:
#       depends_on: service_healthy with a health check)
#   (c) status of 100 running containers
#   (d) restart --only-if-changed of those 100, nothing changed (compose: up -d)
#
# Usage: bash bench/plays.sh
#
# Environment knobs (all optional):
#   SKIP_BUILD=1        do not run `cargo build --release -p maestro`
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

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/bench/.venv"
# The venv's MaestroNG executable is also called `maestro`: always use this
# full path for it, never a bare `maestro`.
MAESTRONG="$VENV/bin/maestro"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
MAESTRO="${MAESTRO_BIN:-$TARGET_DIR/release/maestro}"
IMAGE="maestro-bench/busybox:1"   # explicit tag: MaestroNG pulls untagged images

log() { printf '==> %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- 1. tools ----------------------------------------------------------------
if [ -x "$MAESTRONG" ] && "$MAESTRONG" --version 2>/dev/null | grep -qx 'maestro-ng-0.8.3'; then
    log "MaestroNG 0.8.3 already installed in bench/.venv"
else
    log "installing MaestroNG 0.8.3 into bench/.venv"
    "$PYTHON" -m venv --clear "$VENV"
    "$VENV/bin/pip" install --disable-pip-version-check -q \
        -c "$ROOT/bench/maestrong-constraints.txt" 'maestro-ng==0.8.3'
    "$MAESTRONG" --version | grep -qx 'maestro-ng-0.8.3'
fi
command -v socat >/dev/null 2>&1 || apt_install socat
[ -x /bin/busybox ] || apt_install busybox-static

# docker compose v2 (CLI plugin) when present, else Compose v1 (Debian's
# docker-compose package; bookworm has no v2).
if docker compose version >/dev/null 2>&1; then
    COMPOSE="docker compose"
    COMPOSE_LABEL="docker compose $(docker compose version --short)"
else
    command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
    COMPOSE="docker-compose"
    COMPOSE_LABEL="docker-compose $(docker-compose version --short)"
fi
log "compose: $COMPOSE_LABEL"

docker version >/dev/null
API="$(docker version --format '{{.Server.APIVersion}}')"
log "engine $(docker version --format '{{.Server.Version}}'), API $API"

# --- 2. the image: Debian's static busybox, FROM scratch ---------------------
CTX="$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench-image.XXXXXX")"
cp /bin/busybox "$CTX/busybox"
cat >"$CTX/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox","--install","-s","/bin"]
RUN ["/bin/busybox","mkdir","-m","1777","/tmp"]
ENV PATH=/bin
EOF
log "docker build -t $IMAGE"
if ! out="$(docker build -q -t "$IMAGE" "$CTX" 2>&1)"; then
    printf '%s\n' "$out" >&2
    exit 1
fi
rm -rf "$CTX"

# --- 3. maestro release build (before timing: the machine has 2 cores) --------
if [ "${SKIP_BUILD:-0}" = 1 ]; then
    log "SKIP_BUILD=1: not building, using $MAESTRO"
else
    log "cargo build --release -p maestro"
    cargo build --release -p maestro
fi
[ -x "$MAESTRO" ] || { log "no maestro binary at $MAESTRO"; exit 1; }

OUT="${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench-plays.XXXXXX")}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
log "output directory: $OUT"

# --- 4. cleanup on any exit, and the TCP bridge for MaestroNG ------------------
SOCAT_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    log "cleaning up (containers mb-*, compose projects mbcp*, socat)"
    "$PYTHON" "$ROOT/bench/plays.py" cleanup || true
    if [ -n "$SOCAT_PID" ]; then kill "$SOCAT_PID" 2>/dev/null || true; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PYTHON" "$ROOT/bench/plays.py" cleanup   # leftovers of an interrupted run

# MaestroNG 0.8.3 (docker-py 1.10.6 with requests 2.34) cannot use the unix
# socket ("Not supported URL scheme http+docker"): give it the engine on a
# loopback TCP port.
NG_PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
socat "TCP-LISTEN:$NG_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=1024" UNIX-CONNECT:/var/run/docker.sock &
SOCAT_PID=$!
for _ in $(seq 50); do
    if "$PYTHON" - "$NG_PORT" <<'EOF' 2>/dev/null; then break; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
sys.exit(0 if b"OK" in s.recv(4096) else 1)
EOF
    sleep 0.1
done
log "socat: 127.0.0.1:$NG_PORT -> /var/run/docker.sock (pid $SOCAT_PID)"

# --- 5. the plays ----------------------------------------------------------------
cpu_busy_percent() {
    local a b
    a="$(head -n 1 /proc/stat)"
    sleep 1
    b="$(head -n 1 /proc/stat)"
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y); total = 0
        for (i = 2; i <= n; i++) total += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        pct = 0
        if (total > 0) pct = 100 * (total - idle) / total
        printf "%d", pct }'
}
busy="$(cpu_busy_percent)"
log "machine: $(nproc) cores, ${busy}% busy before timing"
if [ "$busy" -gt 10 ]; then
    log "warning: something else is using the CPU; timings will be noisy"
fi
others="$(docker ps -q | wc -l)"
if [ "$others" -gt 0 ]; then
    log "warning: $others other containers are running on this engine; timings will be noisy"
fi

status=0
"$PYTHON" "$ROOT/bench/plays.py" run --out "$OUT" \
    --maestro "$MAESTRO" --maestrong "$MAESTRONG" \
    --compose "$COMPOSE" --compose-label "$COMPOSE_LABEL" \
    --ng-port "$NG_PORT" --ng-api "$API" \
    --runs "${RUNS:-5}" --status-runs "${STATUS_RUNS:-10}" \
    --restart-runs "${RESTART_RUNS:-5}" --plays "${PLAYS:-abcd}" \
    >"$OUT/table.md" || status=$?
echo
echo "Results ($(nproc) cores, engine $(docker version --format '{{.Server.Version}}'), $COMPOSE_LABEL; files, logs and results.json in $OUT):"
echo
cat "$OUT/table.md"
exit "$status"
