#!/usr/bin/env bash
# The core without the simulation extras (no NEURON, BMTK or NEST): install the package with its
# test extra only into ./.venv-core and run the tests that need no simulator, which build every
# example network that does not need NEURON. Proves the core's import contract in practice.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv-core/bin/python ]; then
    "$PY" -m venv .venv-core
fi
.venv-core/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv-core/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
.venv-core/bin/python - <<'PY'
import importlib.util, sys
present = [m for m in ("neuron", "bmtk", "nest") if importlib.util.find_spec(m)]
sys.exit(f"core lane: {present} installed; the lane must run without them" if present else 0)
PY
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
L5NET_CACHE_DIR="$cache" .venv-core/bin/python -m pytest -q -p no:cacheprovider \
    -m "not neuron and not mpi and not nest and not bmtk" \
    tests/test_spec.py tests/test_spec_rules.py tests/test_params.py tests/test_rasters.py \
    tests/test_placement.py tests/test_output.py tests/test_options.py tests/test_layers.py \
    tests/test_sonata.py tests/test_synmodels.py tests/test_sweep.py
