"""The import contract (core <- recipes <- simulators <- commands) holds, as pyproject states it."""

from __future__ import annotations

import shutil
import subprocess
import sys
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
