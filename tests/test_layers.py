"""The import contract (core <- recipes <- simulators <- commands) holds, as pyproject states it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.is_file() and shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed (the 'dev' extra)")
    proc = subprocess.run(
        [str(exe) if exe.is_file() else "lint-imports", "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_core_imports_without_simulators() -> None:
    """Importing every core module loads neither NEURON, NEST nor BMTK's simulator."""
    code = (
        "import sys, builder.core.checks, builder.core.components, builder.core.spec.build, "
        "builder.core.sonata, builder.core.sonata_read, builder.core.synmodels, "
        "builder.core.runs, builder.core.mpienv, builder.recipes.l5, builder.analysis.rates;"
        "bad = [m for m in ('neuron', 'nest', 'bmtk.simulator') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: What may sit directly in builder/ besides the layer packages.
TOP_LEVEL = {"__init__", "__main__", "_version"}


def _layers() -> list[set[str]]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in conf["contracts"] if c["type"] == "layers"]
    assert contract["containers"] == ["builder"]
    return [{part.strip() for part in layer.split("|")} for layer in contract["layers"]]


def test_the_layers_are_core_recipes_simulators_commands() -> None:
    """The contract states the architecture, top to bottom."""
    assert _layers() == [{"commands"}, {"simulators"}, {"recipes", "analysis"}, {"core"}]


def test_every_module_belongs_to_a_layer() -> None:
    """builder/ holds the layer packages and nothing else, so the contract sees every module."""
    layers = set().union(*_layers())
    loose = []
    for path in sorted((ROOT / "builder").iterdir()):
        if path.name.startswith((".", "__pycache__", "_data")) or path.suffix not in {"", ".py"}:
            continue
        name = path.stem
        if path.suffix == ".py":
            if name not in TOP_LEVEL:
                loose.append(path.name)
        elif (path / "__init__.py").is_file():
            if name not in layers:
                loose.append(path.name + "/")
        elif any(path.rglob("*.py")):  # a data folder (schema/) holds no Python
            loose.append(path.name + "/")
    assert not loose, f"in builder/ but in no layer of pyproject's import contract: {loose}"
