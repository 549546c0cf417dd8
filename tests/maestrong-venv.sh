#!/usr/bin/env bash
# MaestroNG 0.8.3 in a Python virtual environment, for the tests that compare maestro
# with it (tests/parity, the conformance goldens). Idempotent: an existing venv with
# MaestroNG 0.8.3 is kept. Prints the venv's folder on stdout; its MaestroNG executable
# is DIR/bin/maestro (call it by that full path: a bare `maestro` may be this project's).
#
#   bash tests/maestrong-venv.sh [DIR]     # DIR defaults to target/maestrong-venv
#
# Installs from PyPI with the versions MaestroNG was measured with
# (bench/maestrong-constraints.txt): docker-py 1.10.6, PyYAML 6.0.3, Jinja2 3.1.6...
# Needs Python 3.11 (PYTHON=... to choose another interpreter) and PyPI. Without PyPI
# it fails and says so.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/target/maestrong-venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ -x "$VENV/bin/maestro" ] && "$VENV/bin/maestro" --version 2>/dev/null | grep -qx 'maestro-ng-0.8.3'; then
    echo "$VENV"
    exit 0
fi
echo "installing MaestroNG 0.8.3 into $VENV (PyPI, $("$PYTHON" --version 2>&1))" >&2
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv --clear "$VENV"
if ! "$VENV/bin/pip" install --disable-pip-version-check -q \
    -c "$ROOT/bench/maestrong-constraints.txt" 'maestro-ng==0.8.3' >&2; then
    echo "error: cannot install maestro-ng==0.8.3 from PyPI into $VENV (is PyPI reachable?)" >&2
    exit 1
fi
"$VENV/bin/maestro" --version | grep -qx 'maestro-ng-0.8.3' >&2
echo "$VENV"
