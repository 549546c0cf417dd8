#!/usr/bin/env bash
# Benchmark: maestro at scale — loading environment files of 2k to 200k instances, and
# start / status / stop -a / clean -a of 20,000 (then 200,000) instances on simulated
# ships (`simship`, tests/src/bin/simship.rs). See bench/README.md, section "scale.sh".
#
# Usage: bash bench/scale.sh [scale.py options, e.g. --quick or --parts load]
#
# Environment knobs (all optional):
#   SKIP_BUILD=1        do not build the release maestro and simship
#   MAESTRO_BIN=PATH    the maestro binary (default: target/release/maestro)
#   SIMSHIP_BIN=PATH    the simship binary (default: target/release/simship)
#
# No Docker engine is used; only loopback. Writes bench/out/scale.json and prints the
# Markdown results. Exit status: 0 when every target holds, 1 otherwise.
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

build_maestro
require_maestro
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release -p maestro-tests --bin simship"
    cargo build --release -p maestro-tests --bin simship
fi
export MAESTRO_BIN="$MAESTRO"
export SIMSHIP_BIN="${SIMSHIP_BIN:-$TARGET_DIR/release/simship}"

check_machine ""
"$PYTHON" "$ROOT/bench/scale.py" "$@"
