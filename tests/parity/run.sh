#!/usr/bin/env bash
# Parity with MaestroNG 0.8.3 on this machine's Docker engine: the conformance cases'
# containers, created by MaestroNG and by maestro, compared field by field (compare.py
# says how). Installs MaestroNG 0.8.3 into a virtual environment first (PyPI).
#
#   bash tests/parity/run.sh [--maestro BIN] [--only CASE]... [-v]
#
# BIN defaults to target/release/maestro (cargo build --release -p maestro). Needs the
# Docker engine at /var/run/docker.sock, busybox-static, Python 3.11 and PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if ! VENV="$(bash "$ROOT/tests/maestrong-venv.sh")"; then
    cat >&2 <<'MSG'
error: the parity test needs MaestroNG 0.8.3 from PyPI, which cannot be installed here.
To run it where PyPI is reachable:
    bash tests/maestrong-venv.sh            # once: target/maestrong-venv
    cargo build --release -p maestro
    bash tests/parity/run.sh
MSG
    exit 1
fi
exec "$VENV/bin/python" "$ROOT/tests/parity/compare.py" "$@"
