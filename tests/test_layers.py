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
        "import sys, builder.checks, builder.components, builder.spec.build, builder.sonata, "
        "builder.sonata_read, builder.synmodels, builder.runs, builder.mpienv, builder.recipes.l5;"
        "bad = [m for m in ('neuron', 'nest', 'bmtk.simulator') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: The command layer: modules the contracts forbid below them (they import everything).
COMMANDS = {"build", "cli", "sweep", "farm", "collect", "simulators", "run_cli"}


def test_every_module_belongs_to_a_layer() -> None:
    """A new top-level module must be named in a contract, or no contract checks it."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    core = set(conf["contracts"][0]["source_modules"])
    packages = {"builder.recipes", "builder.nrn", "builder.nest", "builder.spec", "builder.schema"}
    loose = []
    for path in sorted((ROOT / "builder").iterdir()):
        name = path.stem if path.suffix == ".py" else path.name
        if (
            name == "__init__"
            or name.startswith("__")
            or not (path.suffix == ".py" or (path / "__init__.py").is_file())
        ):
            continue
        module = f"builder.{name}"
        if module not in core and module not in packages and name not in COMMANDS:
            loose.append(module)
    assert not loose, f"modules in no layer of pyproject's import contracts: {loose}"
