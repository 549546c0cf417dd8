#!/usr/bin/env bash
# Benchmark: `maestro -f FILE config --json` (this project, release build)
# against MaestroNG 0.8.3's `maestro -f FILE deptree` on the same generated
# environment files, timed with hyperfine. See bench/README.md.
#
# Usage: bash bench/config.sh
#
# Environment knobs (all optional):
#   BENCH_OUT=DIR          where the generated files and hyperfine JSON go
#                          (default: a fresh mktemp -d directory)
#   SKIP_BUILD=1           do not run `cargo build --release -p maestro`
#   MAESTRO_BIN=PATH       the maestro binary (default: target/release/maestro)
#   SMALL="N S K"          small file shape (default "2000 100 10")
#   BIG="N S K"            big file shape   (default "20000 1000 100")
#   SEED=X                 generator seed (default 42)
#   LAYERS=L               dependency layers of the requires DAG (default 10)
#   WARMUP=N               hyperfine warmup runs (default 3)
#   MAESTRONG_TIMEOUT=S    skip MaestroNG on the big file when one run takes
#                          longer than S seconds (default 60)
#   BIG_MAESTRONG_RUNS=N   hyperfine runs of MaestroNG on the big file (default 5)
#
# Exit status: 0 when every target holds, 1 otherwise (or on any failure).
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

read -r SMALL_N SMALL_S SMALL_K <<<"${SMALL:-2000 100 10}"
read -r BIG_N BIG_S BIG_K <<<"${BIG:-20000 1000 100}"
SEED="${SEED:-42}"
LAYERS="${LAYERS:-10}"
WARMUP="${WARMUP:-3}"
MAESTRONG_TIMEOUT="${MAESTRONG_TIMEOUT:-60}"
BIG_MAESTRONG_RUNS="${BIG_MAESTRONG_RUNS:-5}"

# Quote one word for hyperfine's own command-line splitting (used with -N).
hq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Does maestro accept FILE? Prints why not on stderr.
maestro_ok() {
    local file="$1" err
    if [ ! -x "$MAESTRO" ]; then
        log "no maestro binary at $MAESTRO"
        return 1
    fi
    err="$(mktemp)"
    if "$MAESTRO" -f "$file" config --json >/dev/null 2>"$err"; then
        rm -f "$err"
        return 0
    fi
    log "maestro -f $file config --json failed:"
    tail -n 20 "$err" >&2
    rm -f "$err"
    return 1
}

ensure_maestrong
ensure_hyperfine
build_maestro

OUT="${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/maestro-bench.XXXXXX")}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
log "output directory: $OUT"

SMALL_FILE="$OUT/env-${SMALL_N}.yaml"
BIG_FILE="$OUT/env-${BIG_N}.yaml"
SMALL_LABEL="${SMALL_N} instances, ${SMALL_S} services, ${SMALL_K} ships"
BIG_LABEL="${BIG_N} instances, ${BIG_S} services, ${BIG_K} ships"

# --- 4. environment files ----------------------------------------------------
log "generating $SMALL_LABEL"
"$PYTHON" "$ROOT/bench/gen_env.py" --instances "$SMALL_N" --services "$SMALL_S" \
    --ships "$SMALL_K" --seed "$SEED" --layers "$LAYERS" >"$SMALL_FILE"
log "generating $BIG_LABEL"
"$PYTHON" "$ROOT/bench/gen_env.py" --instances "$BIG_N" --services "$BIG_S" \
    --ships "$BIG_K" --seed "$SEED" --layers "$LAYERS" >"$BIG_FILE"

# MaestroNG must accept the small file (the big one is checked when timed).
"$MAESTRONG" -f "$SMALL_FILE" deptree >/dev/null

check_machine ""

HF=(hyperfine -N --output=null --style basic)
REPORT_ARGS=(--ratio-target "$SMALL_LABEL:50" --time-target "$BIG_LABEL:1")
status=0

# --- 5. small file: maestro vs MaestroNG ---------------------------------------
cmds=()
if maestro_ok "$SMALL_FILE"; then
    cmds+=(-n maestro "$(hq "$MAESTRO") -f $(hq "$SMALL_FILE") config --json")
else
    status=1
fi
cmds+=(-n MaestroNG "$(hq "$MAESTRONG") -f $(hq "$SMALL_FILE") deptree")
log "timing: $SMALL_LABEL"
"${HF[@]}" --warmup "$WARMUP" --export-json "$OUT/small.json" "${cmds[@]}"
REPORT_ARGS+=("$SMALL_LABEL=$OUT/small.json")

# --- 6. big file: maestro (and MaestroNG when it is fast enough) ---------------
if maestro_ok "$BIG_FILE"; then
    log "timing: maestro on $BIG_LABEL"
    "${HF[@]}" --warmup "$WARMUP" --export-json "$OUT/big-maestro.json" \
        -n maestro "$(hq "$MAESTRO") -f $(hq "$BIG_FILE") config --json"
    REPORT_ARGS+=("$BIG_LABEL=$OUT/big-maestro.json")
else
    status=1
fi

log "one trial run of MaestroNG on $BIG_LABEL (limit ${MAESTRONG_TIMEOUT}s)"
start=$(date +%s.%N)
if timeout "$MAESTRONG_TIMEOUT" "$MAESTRONG" -f "$BIG_FILE" deptree >/dev/null; then
    log "trial run took $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s"
    log "timing: MaestroNG on $BIG_LABEL ($BIG_MAESTRONG_RUNS runs)"
    "${HF[@]}" --warmup 0 --runs "$BIG_MAESTRONG_RUNS" --export-json "$OUT/big-maestrong.json" \
        -n MaestroNG "$(hq "$MAESTRONG") -f $(hq "$BIG_FILE") deptree"
    REPORT_ARGS+=("$BIG_LABEL=$OUT/big-maestrong.json")
else
    rc=$?
    if [ "$rc" = 124 ]; then
        log "MaestroNG took over ${MAESTRONG_TIMEOUT}s on $BIG_LABEL: skipped"
        REPORT_ARGS+=(--note "$BIG_LABEL:skipped (> ${MAESTRONG_TIMEOUT} s a run)")
    else
        log "MaestroNG failed on $BIG_FILE (exit $rc)"
        exit 1
    fi
fi

# --- 7. table ------------------------------------------------------------------
echo
echo "Results ($(nproc) cores; hyperfine $(hyperfine --version | cut -d' ' -f2); files and JSON in $OUT):"
echo
"$PYTHON" "$ROOT/bench/report.py" "${REPORT_ARGS[@]}" || status=1
exit "$status"
