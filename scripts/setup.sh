#!/usr/bin/env bash
# Create ./.venv (Python 3.11+) and install the project with everything it needs to build,
# simulate and test. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[sim,test,dev]"
echo "setup: $(.venv/bin/python --version) in $(pwd)/.venv ready"
