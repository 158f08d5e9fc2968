"""Recurrent networks of biophysical cells in NEURON (issue 12, items 1, 3 and 5).

A small version of ``examples/lfpy_network.json`` (9 E + 3 I ball-and-stick cells connected to
each other, Poisson background through virtual cells, 200 ms) is built once; it runs serially
and under ``mpiexec -n 2`` / ``-n 4`` and must give byte-identical spikes and soma reports.
Removing the recurrent edges must change the spikes (so the rank test compares a network whose
recurrence matters). Cells are moved to their nodes' positions and rotations in NEURON, and bad
input (a rotation on a virtual population, a connection onto a section type the cells lack)
stops the build or the run with exit status 2 and a message naming the file and key.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lfpy_network.json"

pytestmark = pytest.mark.neuron


def _small_spec(recurrent: bool = True) -> dict:
    """The LFPy example shrunk to 12 cells and 200 ms, with a stronger drive so cells fire."""
    spec = json.loads(EXAMPLE.read_text())
    spec["populations"]["E"]["count"] = 9
    spec["populations"]["I"]["count"] = 3
    spec["populations"]["bgE"]["count"] = 9 * 16
    spec["populations"]["bgI"]["count"] = 3 * 16
    for t in "EI":
        spec["connections"][f"bg{t}_to_{t}"]["rule"]["indegree"] = 16
        spec["connections"][f"bg{t}_to_{t}"]["weight"] = 0.004
        spec["inputs"][f"bg{t}"]["train"]["rate_hz"] = 60.0
    for name in ("E_to_E", "E_to_I", "I_to_E", "I_to_I"):
        spec["connections"][name]["rule"]["p"] = 0.5
        if not recurrent:
            del spec["connections"][name]
    spec["run"]["duration_ms"] = 200.0
    spec["run"]["warmup_ms"] = 50.0
    spec["reports"].pop("electrodes", None)
    spec["reports"]["membrane"] = [{"cells": "E", "node_ids": [0, 4], "variables": ["v"]}]
    return spec


def _build(tmp: Path, spec: dict, name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(spec))
    comp = tmp / "components"
    if not comp.exists():
        shutil.copytree(ROOT / "examples" / "components", comp)
    return subprocess.run(
        [sys.executable, "-m", "builder.commands.cli", str(path), "-o", str(tmp / name), "-q"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def small_net(tmp_path_factory, sim_env) -> Path:
    tmp = tmp_path_factory.mktemp("recurrent")
    proc = _build(tmp, _small_spec(), "net", sim_env)
    assert proc.returncode == 0, proc.stderr
    return tmp / "net"


def _outputs(net: Path) -> dict[str, np.ndarray]:
    """Spikes (sorted by node, time) and every report's data, as arrays to compare exactly."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(net / "output" / "spikes.h5", "r") as f:
        for pop, g in f["spikes"].items():
            ids, ts = g["node_ids"][()], g["timestamps"][()]
            order = np.lexsort((ts, ids))
            out[f"spikes/{pop}/node_ids"] = ids[order]
            out[f"spikes/{pop}/timestamps"] = ts[order]
    for rep in sorted((net / "output").glob("v_*.h5")):
        with h5py.File(rep, "r") as f:
            for pop, g in f["report"].items():
                out[f"{rep.name}/{pop}/data"] = g["data"][()]
                out[f"{rep.name}/{pop}/node_ids"] = g["mapping/node_ids"][()]
    return out


def _run_copy(src: Path, dest: Path, run_network, np_: int | None):
    shutil.copytree(src, dest)
    res = run_network(dest, "-q", np=np_, timeout_s=120)
    assert res.returncode == 0, res.describe()
    return _outputs(dest)


@pytest.mark.mpi
def test_same_spikes_and_reports_on_1_2_and_4_ranks(small_net, run_network, tmp_path):
    serial = _run_copy(small_net, tmp_path / "n1", run_network, None)
    n_spikes = sum(v.size for k, v in serial.items() if k.endswith("timestamps"))
    assert n_spikes >= 20, f"the test network should fire ({n_spikes} spikes)"
    assert any(k.startswith("v_") for k in serial), "no membrane report was written"
    for n in (2, 4):
        merged = _run_copy(small_net, tmp_path / f"n{n}", run_network, n)
        assert merged.keys() == serial.keys()
        for key, ref in serial.items():
            np.testing.assert_array_equal(merged[key], ref, err_msg=f"{key} on {n} ranks")


def test_bulk_connections_equal_bmtks_edge_by_edge_path(small_net, run_network, tmp_path):
    """Connections between cells built in bulk (builder.simulators.neuron.recurrent) give the
    spikes and reports of BMTK's own per-edge construction (``--bmtk-inputs``)."""
    bulk = _run_copy(small_net, tmp_path / "bulk", run_network, None)
    shutil.copytree(small_net, tmp_path / "bmtk")
    res = run_network(tmp_path / "bmtk", "-q", "--bmtk-inputs", timeout_s=120)
    assert res.returncode == 0, res.describe()
    ref = _outputs(tmp_path / "bmtk")
    assert sum(v.size for k, v in ref.items() if k.endswith("timestamps")) >= 20
    assert bulk.keys() == ref.keys()
    for key, want in ref.items():
        np.testing.assert_array_equal(bulk[key], want, err_msg=key)


def test_recurrent_edges_change_the_spikes(small_net, run_network, tmp_path, sim_env):
    with_edges = _run_copy(small_net, tmp_path / "rec", run_network, None)
    proc = _build(tmp_path, _small_spec(recurrent=False), "feedforward", sim_env)
    assert proc.returncode == 0, proc.stderr
    res = run_network(tmp_path / "feedforward", "-q", timeout_s=120)
    assert res.returncode == 0, res.describe()
    without = _outputs(tmp_path / "feedforward")
    key = "spikes/E/timestamps"
    assert with_edges[key].size > 0 and without[key].size > 0
    assert with_edges[key].size != without[key].size or not np.array_equal(
        with_edges[key], without[key]
    )


def test_rates_table_and_network_figures(small_net, run_network, tmp_path):
    """rates.csv counts the spikes per population in the window; plot draws the network."""
    import csv

    out = _run_copy(small_net, tmp_path / "r", run_network, None)
    with open(tmp_path / "r" / "output" / "rates.csv", newline="") as f:
        rows = {r["population"]: r for r in csv.DictReader(f) if r["pop_name"] == "*"}
    assert set(rows) == {"E", "I"}
    spec = _small_spec()
    for pop in ("E", "I"):
        n = spec["populations"][pop]["count"]
        assert int(rows[pop]["cells"]) == n
        ts = out[f"spikes/{pop}/timestamps"]
        counted = int((ts >= 50.0).sum())  # after the warm-up
        assert counted > 0
        assert int(rows[pop]["spikes"]) == counted
        expected = counted / n / ((spec["run"]["duration_ms"] - 50.0) / 1e3)
        assert float(rows[pop]["rate_hz"]) == pytest.approx(expected, rel=1e-5)
    res = subprocess.run(
        [sys.executable, str(ROOT / "run_network.py"), "plot", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    plots = tmp_path / "r" / "output" / "plots"
    assert {"raster.png", "rate_histograms.png", "vm.png"} <= {p.name for p in plots.glob("*.png")}


def test_cells_are_moved_to_their_node_position_and_rotation(sim_env, tmp_path):
    """segment_geometry after move_cell equals builder.core.geometry.to_world of the template."""
    driver = textwrap.dedent(
        f"""
        import json, numpy as np
        from neuron import h
        from builder.core.geometry import to_world
        from builder.simulators.neuron.cellgeom import move_cell, segment_geometry, soma_centre
        h.load_file({str(ROOT / "examples/components/templates/BallAndStick.hoc")!r})
        cell = h.BallAndStick()
        p0, p1, d = segment_geometry(cell)
        soma = soma_centre(cell)
        pos, ang = np.array([30.0, -40.0, 12.5]), np.array([0.3, -1.1, 2.0])
        L = [sec.L for sec in cell.all]
        move_cell(cell, pos, ang)
        q0, q1, e = segment_geometry(cell)
        print(json.dumps({{
            "n": len(p0), "d0": d.tolist(), "d1": e.tolist(),
            "err0": float(np.abs(q0 - to_world(p0, soma, pos, ang)).max()),
            "err1": float(np.abs(q1 - to_world(p1, soma, pos, ang)).max()),
            "dL": float(max(abs(a - sec.L) for a, sec in zip(L, cell.all))),
            "soma": soma_centre(cell).tolist(),
        }}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", driver],
        cwd=tmp_path,
        env=sim_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["n"] == 22  # soma 1 + apical stick 21
    # NEURON keeps 3-D points in single precision: 1e-3 um is far below any length scale here
    assert r["err0"] < 1e-3 and r["err1"] < 1e-3
    assert r["dL"] < 1e-3 and r["d0"] == r["d1"]
    np.testing.assert_allclose(r["soma"], [30.0, -40.0, 12.5], atol=1e-3)


def test_rotation_on_a_virtual_population_is_a_build_error(tmp_path, sim_env):
    spec = _small_spec()
    spec["populations"]["bgE"]["rotations"] = {"z": 1.0}
    spec["populations"]["bgE"]["region"] = "column"
    proc = _build(tmp_path, spec, "bad", sim_env)
    assert proc.returncode == 2, proc.stderr
    assert "bad.json" in proc.stderr and "populations.bgE.rotations" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_connection_onto_a_missing_section_type_stops_the_build(tmp_path, sim_env):
    spec = _small_spec()
    spec["connections"]["E_to_I"]["placement"] = {"sections": ["dend"]}  # no basal dendrite
    proc = _build(tmp_path, spec, "nodend", sim_env)
    assert proc.returncode == 2, proc.stderr
    assert "nodend.json: connections.E_to_I.placement.sections" in proc.stderr
    assert '"dend"' in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "nodend").exists()


def test_edge_types_naming_a_missing_section_type_stop_the_run(tmp_path, sim_env, run_network):
    """Outputs edited or written by other tools: the runner checks target_sections itself."""
    proc = _build(tmp_path, _small_spec(), "nodend", sim_env)
    assert proc.returncode == 0, proc.stderr
    types = tmp_path / "nodend" / "network" / "E_to_I_edge_types.csv"
    text = types.read_text()
    assert '""apical""' in text
    types.write_text(text.replace('""apical""', '""basal""'))
    res = run_network(tmp_path / "nodend", timeout_s=120)
    assert res.returncode == 2, res.describe()
    assert "E_to_I_edge_types.csv" in res.stderr and "target_sections" in res.stderr
    assert "basal" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "nodend" / "output").exists()
