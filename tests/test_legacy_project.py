"""A legacy project folder (``scripts/make_legacy_project.py``) builds and runs as it is.

The project has what users of the legacy pipeline bring: an active ``templates/`` set beside its
stored ``L5templates/`` copy (both claiming prefix L5, with different content), a Hay-style
template that loads its own Neurolucida morphology by a path relative to the working directory
and takes its biophysics from a sibling .hoc file, the user's own channel NMODL next to legacy
synapse NMODL that does not compile on NEURON 9, and kinetic-scheme synapse JSONs with every
value a string and long-term plasticity keys. It is built and run from inside its
``FullSimulation/`` folder with the legacy commands (no arguments).
"""

from __future__ import annotations

import hashlib
import os
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest

from builder.core.components import provided_mod_files
from builder.core.mechanisms import MIGRATION_GUIDE

ROOT = Path(__file__).resolve().parents[1]
_GEN = runpy.run_path(str(ROOT / "scripts" / "make_legacy_project.py"))
make_project = _GEN["make_project"]

pytestmark = [pytest.mark.neuron, pytest.mark.slow]


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _build(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "build_network.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def built_project(
    tmp_path_factory: pytest.TempPathFactory, sim_env: dict[str, str]
) -> tuple[Path, subprocess.CompletedProcess, dict[str, str]]:
    """The legacy project, built in place from its FullSimulation folder."""
    sim = make_project(tmp_path_factory.mktemp("legacy") / "project")
    components = sim.parent / "biophys_components"
    before = _snapshot(components)
    proc = _build(sim, sim_env)
    return sim, proc, before


def test_legacy_project_builds_in_place(built_project) -> None:
    sim, proc, before = built_project
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("simulation_config.json", "circuit_config.json", "FunctionalGroups.csv"):
        assert (sim / name).is_file()
    components = sim.parent / "biophys_components"
    # the active set, not the stored copy, with its sibling biophysics file
    copied = sim / "components" / "templates"
    active = components / "templates"
    assert (copied / "L5PCtemplate.hoc").read_bytes() == (active / "L5PCtemplate.hoc").read_bytes()
    assert (copied / "L5PCbiophys.hoc").read_bytes() == (active / "L5PCbiophys.hoc").read_bytes()
    # the user's channel with ours; their legacy synapse NMODL replaced by ours, said once each
    mods = {p.name: p for p in (sim / "components" / "mechanisms" / "modfiles").glob("*.mod")}
    ours = {p.name: p for p in provided_mod_files()}
    assert "kdr_user.mod" in mods
    for name in ("pyr2pyr", "int2pyr"):
        assert mods[f"{name}.mod"].read_bytes() == ours[f"{name}.mod"].read_bytes()
        legacy = components / "mechanisms" / "modfiles" / f"{name}.mod"
        assert proc.stderr.count(f"{legacy} defines {name}") == 1, proc.stderr
    # legacy synapse JSONs: the keys we do not model are named once per file, not per synapse
    for js in ("PV2PN.json", "SOM2PN.json"):
        lines = [ln for ln in proc.stderr.splitlines() if js in ln and "Wmax" in ln]
        assert len(lines) == 1, proc.stderr
        assert all(k in lines[0] for k in ("Wmin", "lambda1", "threshold2", "con_pattern"))
    # nothing in the user's components was renamed, moved, created or changed
    assert _snapshot(components) == before


def test_legacy_project_runs_in_place(
    built_project, run_network: Callable[..., object], sim_env: dict[str, str]
) -> None:
    sim, proc, _ = built_project
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = run_network(None, "-q", cwd=sim, timeout_s=400)
    assert result.returncode == 0, result.describe()
    assert "Traceback" not in result.stderr
    with h5py.File(sim / "output" / "spikes.h5", "r") as f:
        assert "biophysical" in f["spikes"]
    with h5py.File(next((sim / "output").glob("v*.h5")), "r") as f:
        v = f["report/biophysical/data"][()]
    assert v.shape[0] > 1000 and -90 < v.min() < v.max() < 70


def test_broken_user_mod_gets_one_clear_message(tmp_path: Path, sim_env: dict[str, str]) -> None:
    sim = make_project(tmp_path / "project", broken_mod=True)
    before = set(os.listdir(sim))
    proc = _build(sim, sim_env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    broken = sim.parent / "biophys_components" / "mechanisms" / "modfiles" / "legacy_rng.mod"
    assert str(broken) in proc.stderr and MIGRATION_GUIDE in proc.stderr
    assert "nrn_random_arg" in proc.stderr  # the first compiler error, quoted
    # the replaced legacy synapse files are not compiled, so they are not blamed
    assert "pyr2pyr.mod: line" not in proc.stderr
    assert set(os.listdir(sim)) == before  # nothing written
