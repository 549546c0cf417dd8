# Shared setup of the bench/*.sh scripts; sourced, not run. It defines the paths and
# the helpers every script used to carry a copy of: installing MaestroNG 0.8.3 in
# bench/.venv, apt-get installs, the busybox image FROM scratch, the release build,
# socat bridges to the engine and the machine's load.
#
# Sets: ROOT (the repository, also the working directory), PYTHON, VENV, MAESTRONG
# (the venv's MaestroNG executable, always called by this full path: it is also named
# `maestro`), TARGET_DIR, MAESTRO (the release binary, or $MAESTRO_BIN), GUEST (the
# static maestro-guest, or $GUEST_BIN).
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/bench/.venv"
MAESTRONG="$VENV/bin/maestro"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
MAESTRO="${MAESTRO_BIN:-$TARGET_DIR/release/maestro}"
GUEST="${GUEST_BIN:-$TARGET_DIR/x86_64-unknown-linux-musl/guest/maestro-guest}"

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

# MaestroNG 0.8.3 from PyPI into bench/.venv, with the measured versions pinned.
ensure_maestrong() {
    if [ -x "$MAESTRONG" ] && "$MAESTRONG" --version 2>/dev/null | grep -qx 'maestro-ng-0.8.3'; then
        log "MaestroNG 0.8.3 already installed in bench/.venv"
        return
    fi
    log "installing MaestroNG 0.8.3 into bench/.venv"
    "$PYTHON" -m venv --clear "$VENV"
    "$VENV/bin/pip" install --disable-pip-version-check -q \
        -c "$ROOT/bench/maestrong-constraints.txt" 'maestro-ng==0.8.3'
    "$MAESTRONG" --version | grep -qx 'maestro-ng-0.8.3'
}

ensure_hyperfine() { command -v hyperfine >/dev/null 2>&1 || apt_install hyperfine; }
ensure_socat() { command -v socat >/dev/null 2>&1 || apt_install socat; }
ensure_busybox() { [ -x /bin/busybox ] || apt_install busybox-static; }

# docker compose v2 (CLI plugin) when present, else Compose v1 (Debian's docker-compose
# package; bookworm has no v2). Sets COMPOSE (the command) and COMPOSE_LABEL.
# shellcheck disable=SC2034  # COMPOSE and COMPOSE_LABEL are for the caller
ensure_compose() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE="docker compose"
        COMPOSE_LABEL="docker compose $(docker compose version --short)"
    else
        command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
        COMPOSE="docker-compose"
        COMPOSE_LABEL="docker-compose $(docker-compose version --short)"
    fi
    log "compose: $COMPOSE_LABEL"
}

# build_busybox_image TAG: Debian's static busybox FROM scratch (no registry is
# reachable), its applets installed, a /tmp with mode 1777, PATH=/bin.
build_busybox_image() {
    local tag="$1" ctx
    ctx="$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench-image.XXXXXX")"
    cp /bin/busybox "$ctx/busybox"
    cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox","--install","-s","/bin"]
RUN ["/bin/busybox","mkdir","-m","1777","/tmp"]
ENV PATH=/bin
EOF
    docker_build "$tag" "$ctx"
}

# docker_build TAG CTX: builds the folder CTX (made by the caller) as TAG, then removes it.
docker_build() {
    local tag="$1" ctx="$2" out status=0
    log "docker build -t $tag"
    out="$(docker build -q -t "$tag" "$ctx" 2>&1)" || status=$?
    rm -rf "$ctx"
    if [ "$status" -ne 0 ]; then
        printf '%s\n' "$out" >&2
        return 1
    fi
}

# build_guest_image BASE TAG: image BASE (build_busybox_image's) plus the static guest as
# /bin/maestro-guest.
build_guest_image() {
    local base="$1" tag="$2" ctx
    [ -x "$GUEST" ] || { log "no static guest at $GUEST"; return 1; }
    ctx="$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench-image.XXXXXX")"
    cp "$GUEST" "$ctx/maestro-guest"
    printf 'FROM %s\nCOPY maestro-guest /bin/maestro-guest\n' "$base" >"$ctx/Dockerfile"
    docker_build "$tag" "$ctx"
}

# The static guest (musl, profile `guest`), before any timing; SKIP_BUILD=1 skips it.
build_guest() {
    if [ "${SKIP_BUILD:-0}" = 1 ]; then
        log "SKIP_BUILD=1: not building, using $GUEST"
        return
    fi
    rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl \
        || rustup target add x86_64-unknown-linux-musl
    log "cargo build -p maestro-guest --profile guest --target x86_64-unknown-linux-musl"
    cargo build -p maestro-guest --profile guest --target x86_64-unknown-linux-musl
}

# The release build, before any timing (the machine has 2 cores); SKIP_BUILD=1 skips it.
build_maestro() {
    if [ "${SKIP_BUILD:-0}" = 1 ]; then
        log "SKIP_BUILD=1: not building, using $MAESTRO"
    else
        log "cargo build --release -p maestro"
        cargo build --release -p maestro
    fi
}

require_maestro() {
    [ -x "$MAESTRO" ] || { log "no maestro binary at $MAESTRO"; return 1; }
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_socat: a TCP endpoint on 127.0.0.1 for this machine's engine, for MaestroNG
# (docker-py 1.10.6 with requests 2.34 cannot use the unix socket: "Not supported URL
# scheme http+docker") and for ships reached over TCP. Sets SOCAT_PORT and adds the
# process to SOCAT_PIDS, which stop_socats ends. `backlog=1024`: socat's default
# listen backlog of 5 drops bursts of connections (see README.md, ships.py).
SOCAT_PIDS=()
# shellcheck disable=SC2034  # SOCAT_PORT is for the caller
start_socat() {
    local port pid
    port="$(free_port)"
    socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork,backlog=1024" \
        UNIX-CONNECT:/var/run/docker.sock &
    pid=$!
    SOCAT_PIDS+=("$pid")
    for _ in $(seq 50); do
        if "$PYTHON" - "$port" <<'EOF' 2>/dev/null; then break; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
sys.exit(0 if b"OK" in s.recv(4096) else 1)
EOF
        sleep 0.1
    done
    log "socat: 127.0.0.1:$port -> /var/run/docker.sock (pid $pid)"
    SOCAT_PORT="$port"
}

stop_socats() {
    local pid
    for pid in "${SOCAT_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    SOCAT_PIDS=()
}

# Busy share of all CPUs over one second, from /proc/stat.
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

# Logs the machine's load before timing and warns when it is busy; sets BUSY (percent).
# With an argument, also warns when other containers than those whose names start with
# it run on the engine.
check_machine() {
    local own="${1:-}" others
    BUSY="$(cpu_busy_percent)"
    log "machine: $(nproc) cores, ${BUSY}% busy before timing"
    if [ "$BUSY" -gt 10 ]; then
        log "warning: something else is using the CPU; timings will be noisy"
    fi
    if [ -n "$own" ]; then
        others="$(docker ps --format '{{.Names}}' | grep -vc "^$own" || true)"
        if [ "$others" -gt 0 ]; then
            log "warning: $others other containers are running on this engine; timings will be noisy"
        fi
    fi
}
