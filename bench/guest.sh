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

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/bench/.venv"
# The venv's MaestroNG executable is also called `maestro`: always use this full path.
MAESTRONG="$VENV/bin/maestro"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
MAESTRO="${MAESTRO_BIN:-$TARGET_DIR/release/maestro}"
GUEST="${GUEST_BIN:-$TARGET_DIR/x86_64-unknown-linux-musl/guest/maestro-guest}"
BUSYBOX_IMAGE="maestro-bench/busybox:1"   # as plays.sh builds it
GUEST_IMAGE="maestro-bench/guest:1"       # that image plus /bin/maestro-guest
PARTS="${PARTS:-size,latency,chain}"
NG_RUNS="${NG_RUNS:-3}"

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

# --- 1. tools ------------------------------------------------------------------------
if [ -x "$MAESTRONG" ] && "$MAESTRONG" --version 2>/dev/null | grep -qx 'maestro-ng-0.8.3'; then
    log "MaestroNG 0.8.3 already installed in bench/.venv"
else
    log "installing MaestroNG 0.8.3 into bench/.venv"
    "$PYTHON" -m venv --clear "$VENV"
    "$VENV/bin/pip" install --disable-pip-version-check -q \
        -c "$ROOT/bench/maestrong-constraints.txt" 'maestro-ng==0.8.3'
    "$MAESTRONG" --version | grep -qx 'maestro-ng-0.8.3'
fi
command -v hyperfine >/dev/null 2>&1 || apt_install hyperfine
[ -x /bin/busybox ] || apt_install busybox-static
if [ "$NG_RUNS" -gt 0 ]; then command -v socat >/dev/null 2>&1 || apt_install socat; fi

# --- 2. builds (before any timing: the machine has 2 cores) ----------------------------
if [ "${SKIP_BUILD:-0}" = 1 ]; then
    log "SKIP_BUILD=1: not building, using $MAESTRO and $GUEST"
else
    log "cargo build -p maestro-guest --profile guest --target x86_64-unknown-linux-musl"
    rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl \
        || rustup target add x86_64-unknown-linux-musl
    cargo build -p maestro-guest --profile guest --target x86_64-unknown-linux-musl
    log "cargo build --release -p maestro"
    cargo build --release -p maestro
fi
[ -x "$MAESTRO" ] || { log "no maestro binary at $MAESTRO"; exit 1; }
[ -x "$GUEST" ] || { log "no static guest at $GUEST"; exit 1; }

OUT="${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench-guest.XXXXXX")}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
log "output directory: $OUT"

# --- 3. images: Debian's static busybox FROM scratch, then the guest on top ----------
if [[ "$PARTS" == *chain* ]]; then
    docker version >/dev/null
    CTX="$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench-image.XXXXXX")"
    cp /bin/busybox "$CTX/busybox"
    cat >"$CTX/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox","--install","-s","/bin"]
RUN ["/bin/busybox","mkdir","-m","1777","/tmp"]
ENV PATH=/bin
EOF
    log "docker build -t $BUSYBOX_IMAGE"
    if ! out="$(docker build -q -t "$BUSYBOX_IMAGE" "$CTX" 2>&1)"; then
        printf '%s\n' "$out" >&2
        exit 1
    fi
    rm -rf "$CTX"
    CTX="$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench-image.XXXXXX")"
    cp "$GUEST" "$CTX/maestro-guest"
    printf 'FROM %s\nCOPY maestro-guest /bin/maestro-guest\n' "$BUSYBOX_IMAGE" >"$CTX/Dockerfile"
    log "docker build -t $GUEST_IMAGE"
    if ! out="$(docker build -q -t "$GUEST_IMAGE" "$CTX" 2>&1)"; then
        printf '%s\n' "$out" >&2
        exit 1
    fi
    rm -rf "$CTX"
fi

# --- 4. cleanup on any exit, and the TCP bridge for MaestroNG ---------------------------
SOCAT_PID=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ "$PARTS" == *chain* ]]; then
        log "cleaning up (containers mbg-*, socat)"
        "$PYTHON" "$ROOT/bench/guest.py" cleanup || true
    fi
    if [ -n "$SOCAT_PID" ]; then kill "$SOCAT_PID" 2>/dev/null || true; fi
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
        NG_PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        socat "TCP-LISTEN:$NG_PORT,bind=127.0.0.1,reuseaddr,fork" UNIX-CONNECT:/var/run/docker.sock &
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
    fi
fi

# --- 5. timing ------------------------------------------------------------------------------
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
