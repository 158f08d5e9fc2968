"""Extracellular potentials and current dipole moments (issue 12.2,
:mod:`builder.simulators.neuron.ecp`).

The NEURON tests run the tiny L5 network with its cell moved and rotated (node columns
``x, y, z`` and ``rotation_angle_*axis``), four electrodes around it, and a membrane report of
every segment's ``i_membrane_`` at every step. From those recorded currents and the segment
table the build wrote (``segments.csv``: each segment's centre in the cell's own coordinates),
the test computes the potentials (point-source formula), the dipole and the net current
itself, placing the cell with rotation matrices written here.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from builder.core.errors import RunError
from builder.simulators.neuron import ecp

SIGMA = 0.3
POSITION = np.array([30.0, -20.0, 50.0])
ANGLES = np.array([0.4, -0.3, 1.1])  # about x, y, z (rad)
#: electrodes in the world (um): beside the soma, along the apical trunk, below, far away
ELECTRODES = np.array(
    [[80.0, -20.0, 50.0], [30.0, 40.0, 250.0], [-60.0, -20.0, -150.0], [500.0, 500.0, 500.0]]
)


# ------------------------------------------------------------------ pure numpy / LFPykit
def _rot(a: np.ndarray) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (
        np.cos(a[0]),
        np.sin(a[0]),
        np.cos(a[1]),
        np.sin(a[1]),
        *(
            np.cos(a[2]),
            np.sin(a[2]),
        ),
    )
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def test_line_source_matrix_is_the_integral_of_point_sources():
    """LFPykit's line source against the closed-form integral of 1/r along the segment."""
    rng = np.random.default_rng(3)
    start = rng.uniform(-50, 50, size=(20, 3))
    end = start + rng.uniform(-30, 30, size=(20, 3))
    diam = np.full(20, 1.0)
    points = rng.uniform(-200, 200, size=(7, 3))
    m, dip = ecp.transfer_matrices(start, end, diam, points, SIGMA, "line_source")
    length = np.linalg.norm(end - start, axis=1)
    u = (end - start) / length[:, None]
    t0 = np.einsum("sj,csj->cs", u, start[None] - points[:, None])  # along the axis
    perp = np.linalg.norm(
        (start[None] - points[:, None]) - t0[..., None] * u[None], axis=2
    )  # distance from the axis
    assert perp.min() > 0.5  # outside every segment: no clipping at the radius
    expected = (np.arcsinh((t0 + length) / perp) - np.arcsinh(t0 / perp)) / (
        4 * np.pi * SIGMA * length
    )
    np.testing.assert_allclose(m, expected, rtol=1e-9)
    np.testing.assert_allclose(dip, ((start + end) / 2).T, rtol=1e-12)
    pm, _ = ecp.transfer_matrices(start, end, diam, points, SIGMA, "point_source")
    r = np.linalg.norm(points[:, None] - (start + end)[None] / 2, axis=2)
    np.testing.assert_allclose(pm, 1 / (4 * np.pi * SIGMA * r), rtol=1e-12)


def test_electrode_inside_a_segment_is_found():
    start = np.array([[0.0, 0.0, -10.0], [0.0, 0.0, 10.0]])
    end = np.array([[0.0, 0.0, 10.0], [0.0, 0.0, 500.0]])
    diam = np.array([20.0, 2.0])
    points = np.array([[5.0, 0.0, 0.0], [0.0, 0.5, 300.0], [0.0, 1.5, 300.0], [0.0, 0.0, 520.0]])
    found = ecp.electrode_problems(points, start, end, diam)
    assert [(ch, seg) for ch, seg, _ in found] == [(0, 0), (1, 1)]
    assert found[0][2] == pytest.approx(5.0)


def _config(tmp_path: Path, report: dict) -> tuple[dict, Path]:
    (tmp_path / "el.csv").write_text("channel x_pos y_pos z_pos\n0 1 2 3\n1 4 5 6\n")
    cfg = {
        "manifest": {"$BASE_DIR": "."},
        "reports": {
            "v": {"module": "membrane_report"},
            "lfp": {"module": "extracellular", "electrode_positions": "$BASE_DIR/el.csv", **report},
        },
    }
    return cfg, tmp_path / "simulation_config.json"


def test_reports_are_taken_from_the_config(tmp_path):
    cfg, path = _config(tmp_path, {"sigma": 0.5, "method": "point_source"})
    (rep,) = ecp.take_reports(cfg, path, tmp_path / "out")
    assert list(cfg["reports"]) == ["v"]  # BMTK never sees it
    assert rep.sigma == 0.5 and rep.method == "point_source"
    np.testing.assert_array_equal(rep.positions_um, [[1, 2, 3], [4, 5, 6]])
    assert rep.file_name == tmp_path / "out" / "lfp.h5"
    assert rep.dipole_file == tmp_path / "out" / "dipole.h5" and rep.contributions_dir is None


@pytest.mark.parametrize(
    "report,key,words",
    [
        ({"sigma": -1}, "reports.lfp.sigma", "-1"),
        ({"method": "dipole"}, "reports.lfp.method", "line_source"),
        ({"electrode_positions": "$BASE_DIR/none.csv"}, "reports.lfp.electrode_positions", "none"),
    ],
)
def test_bad_report_names_file_and_key(tmp_path, report, key, words):
    cfg, path = _config(tmp_path, report)
    with pytest.raises(RunError) as err:
        ecp.take_reports(cfg, path, tmp_path)
    assert str(path) in str(err.value) and key in str(err.value) and words in str(err.value)


def test_spec_electrodes_reach_the_config(tmp_path):
    from builder.core.spec.simconfig import electrode_positions

    assert electrode_positions({"probe": {"n": 3, "pitch_um": 100.0, "axis": "x"}}) == [
        [0.0, 0.0, 0.0],
        [100.0, 0.0, 0.0],
        [200.0, 0.0, 0.0],
    ]
    import subprocess
    import sys

    from conftest import ROOT

    spec = json.loads((ROOT / "examples" / "lfpy_network.json").read_text())
    spec["components_dir"] = str(ROOT / "examples" / "components")
    spec["reports"]["electrodes"].update(method="point_source", contributions=True, dipole=False)
    (tmp_path / "s.json").write_text(json.dumps(spec))
    subprocess.run(
        [sys.executable, str(ROOT / "build_network.py"), str(tmp_path / "s.json"), "-o", "net"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    rep = json.loads((tmp_path / "net" / "simulation_config.json").read_text())["reports"]["ecp"]
    assert rep["method"] == "point_source" and rep["dipole_file"] is None
    assert rep["contributions_dir"] == "ecp_contributions"
    (parsed,) = ecp.take_reports({"reports": {"ecp": rep}}, tmp_path / "net" / "x.json", tmp_path)
    expected = np.array(electrode_positions(spec["reports"]["electrodes"]))
    assert expected.shape[0] > 1 and np.ptp(expected[:, 2]) > 0  # a probe along z
    np.testing.assert_array_equal(parsed.positions_um, expected)


# ------------------------------------------------------------------ NEURON runs
def _prepare(src: Path, dst: Path, electrodes: np.ndarray, method: str = "point_source") -> Path:
    shutil.copytree(src, dst)
    rows = "".join(f"{i} {x} {y} {z}\n" for i, (x, y, z) in enumerate(electrodes))
    (dst / "components" / "electrodes.csv").write_text("channel x_pos y_pos z_pos\n" + rows)
    cfg_path = dst / "simulation_config.json"
    cfg = json.loads(cfg_path.read_text())
    dt = float(cfg["run"]["dt"])
    cfg["reports"]["ecp"] = {
        "module": "extracellular",
        "electrode_positions": "$BASE_DIR/components/electrodes.csv",
        "sigma": SIGMA,
        "method": method,
        "file_name": "ecp.h5",
        "contributions_dir": "ecp_contributions",
        "cells": "biophysical_nodes",
    }
    cfg["reports"]["imem"] = {
        "type": "compartment",
        "cells": "biophysical_nodes",
        "variable_name": "i_membrane_",
        "module": "membrane_report",
        "sections": "all",
        "file_name": "imem.h5",
        "dt": dt,
        "enabled": True,
    }
    cfg_path.write_text(json.dumps(cfg, indent=1))
    with h5py.File(dst / "network" / "biophysical_nodes.h5", "r+") as f:
        g = f["nodes/biophysical/0"]
        for name, value in zip(("x", "y", "z"), POSITION, strict=True):
            g.create_dataset(name, data=[value])
        for ax, value in zip("xyz", ANGLES, strict=True):
            g.create_dataset(f"rotation_angle_{ax}axis", data=[value])
    return dst


def _segment_centres(net: Path, report: h5py.Group) -> np.ndarray:
    """World centres of the report's segments, from segments.csv and the node's placement."""
    with open(net / "segments.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    local = {
        (int(r["BMTK ID"]), round(float(r["X"]), 4)): [
            float(r["Coord X"]),
            float(r["Coord Y"]),
            float(r["Coord Z"]),
        ]
        for r in rows
    }
    sec = report["mapping/element_ids"][()]
    x = report["mapping/element_pos"][()]
    p = np.array([local[(int(s), round(float(v), 4))] for s, v in zip(sec, x, strict=True)])
    soma = np.array(local[(0, 0.5)])
    return (p - soma) @ _rot(ANGLES).T + POSITION


@pytest.fixture(scope="module")
def ecp_run(tiny_network, run_network, tmp_path_factory):
    net = _prepare(tiny_network, tmp_path_factory.mktemp("ecp") / "net", ELECTRODES)
    res = run_network(net, "-q", timeout_s=300)
    assert res.returncode == 0, res.describe()
    return net


@pytest.mark.neuron
def test_ecp_equals_point_sources_of_the_recorded_currents(ecp_run):
    with h5py.File(ecp_run / "output" / "imem.h5") as f:
        g = f["report/biophysical"]
        cur = g["data"][()].astype(np.float64)  # time x segment, nA
        centres = _segment_centres(ecp_run, g)
    with h5py.File(ecp_run / "output" / "ecp.h5") as f:
        v = f["ecp/data"][()]
        assert f["ecp/data"].attrs["units"] == "mV"
        np.testing.assert_array_equal(f["ecp/channel_id"][()], np.arange(len(ELECTRODES)))
        np.testing.assert_array_equal(f["ecp/positions"][()], ELECTRODES)
        t0, t1, dt = f["ecp/time"][()]
    assert v.shape == cur.shape[:1] + (len(ELECTRODES),)
    assert v.shape[0] == round((t1 - t0) / dt)
    dist = np.linalg.norm(ELECTRODES[:, None] - centres[None], axis=2)
    expected = cur @ (1.0 / (4 * np.pi * SIGMA * dist)).T
    # segments.csv holds each segment's centre on its 3-D path; the model takes the middle of
    # the chord between its ends (< 0.1 um apart for 5 um dendritic segments, but several um
    # for the 40 um soma traced by a contour of 3-D points); and the report is float32. An
    # error in the maps themselves (a wrong rotation, sign or unit) is off by O(1).
    scale = np.abs(expected).max(axis=0)
    assert (scale > 0).all()
    np.testing.assert_array_less(np.abs(v - expected).max(axis=0), 1e-2 * scale)
    with h5py.File(ecp_run / "output" / "ecp_contributions" / "biophysical.h5") as f:
        np.testing.assert_array_equal(f["ecp/data"][()], v)  # one population: all of it


@pytest.mark.neuron
def test_net_membrane_current_is_zero_and_dipole_is_sum_of_i_r(ecp_run):
    with h5py.File(ecp_run / "output" / "imem.h5") as f:
        g = f["report/biophysical"]
        cur = g["data"][()].astype(np.float64)
        centres = _segment_centres(ecp_run, g)
    peak = np.abs(cur).max()
    # the cell is driven: synaptic and spike currents of about a tenth of a nA and more
    # (0.095 nA on the issue-13 BAC morphology)
    assert peak > 0.05
    # float32 rounding of each stored current bounds the sum
    assert np.abs(cur.sum(axis=1)).max() < cur.shape[1] * peak * 2.0**-24
    with h5py.File(ecp_run / "output" / "dipole.h5") as f:
        p = f["dipole/biophysical/data"][()]
        assert f["dipole/biophysical/data"].attrs["units"] == "nA um"
    expected = cur @ centres
    # the same centre approximation as above (a few um on the soma, whose currents are largest)
    np.testing.assert_array_less(np.abs(p - expected).max(axis=0), 3e-2 * np.abs(expected).max())


@pytest.mark.neuron
@pytest.mark.mpi
def test_two_ranks_give_the_same_ecp(ecp_run, run_network, tmp_path):
    net = shutil.copytree(ecp_run, tmp_path / "net", ignore=shutil.ignore_patterns("output"))
    res = run_network(net, "-q", np=2, timeout_s=300)
    assert res.returncode == 0, res.describe()
    for name, key in (("ecp.h5", "ecp/data"), ("dipole.h5", "dipole/biophysical/data")):
        with h5py.File(ecp_run / "output" / name) as a, h5py.File(net / "output" / name) as b:
            np.testing.assert_allclose(b[key][()], a[key][()], rtol=1e-12, atol=1e-15)


@pytest.mark.neuron
def test_coreneuron_gives_the_neuron_engines_ecp_chunk_by_chunk(tmp_path, sim_env):
    """A recurrent network (lfpy_network, 20 cells, 200 ms): CoreNEURON runs chunk by chunk
    (blocks of 333 steps, which it ends a step short of when a block boundary falls inside
    a min-delay interval) and hands the recorded membrane currents to the same maps in
    between: the same ECP, dipole and spikes as the NEURON engine."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    spec = json.loads((root / "examples" / "lfpy_network.json").read_text())
    spec["components_dir"] = str(root / "examples" / "components")
    spec["populations"]["E"]["count"] = 16
    spec["populations"]["I"]["count"] = 4
    spec["run"]["duration_ms"] = 200.0
    spec["run"]["warmup_ms"] = 50.0
    (tmp_path / "s.json").write_text(json.dumps(spec))
    cmd = [
        sys.executable,
        "-m",
        "builder.commands.cli",
        str(tmp_path / "s.json"),
        "-o",
        "net",
        "-q",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=sim_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((tmp_path / "net" / "simulation_config.json").read_text())
    cfg["run"]["nsteps_block"] = 333
    (tmp_path / "net" / "simulation_config.json").write_text(json.dumps(cfg))
    shutil.copytree(tmp_path / "net", tmp_path / "core")
    for name, engine in (("net", "neuron"), ("core", "coreneuron")):
        run = [sys.executable, str(root / "run_network.py"), name, "-q", "--engine", engine]
        proc = subprocess.run(
            run, cwd=tmp_path, env=sim_env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = tmp_path / "net" / "output", tmp_path / "core" / "output"
    for name, key in (("ecp.h5", "ecp/data"), ("dipole.h5", "dipole/E/data")):
        with h5py.File(a / name) as fa, h5py.File(b / name) as fb:
            ref = fa[key][()]
            assert fb[key].shape == ref.shape == (3200, ref.shape[1]) and np.abs(ref).max() > 0
            np.testing.assert_allclose(fb[key][()], ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    with h5py.File(a / "spikes.h5") as fa, h5py.File(b / "spikes.h5") as fb:
        for pop in ("E", "I"):
            t_a = np.sort(fa[f"spikes/{pop}/timestamps"][()])
            np.testing.assert_allclose(np.sort(fb[f"spikes/{pop}/timestamps"][()]), t_a, atol=1e-9)


@pytest.mark.neuron
def test_threads_with_an_extracellular_report_are_refused(ecp_run, run_network, tmp_path):
    """NEURON 9 cannot record membrane currents on threads: one message, exit 2, no output."""
    net = shutil.copytree(ecp_run, tmp_path / "net", ignore=shutil.ignore_patterns("output"))
    res = run_network(net, "-t", "2", timeout_s=300)
    assert res.returncode == 2, res.describe()
    assert "reports.ecp" in res.stderr and "2 threads" in res.stderr and "mpiexec" in res.stderr
    assert "Traceback" not in res.stderr and not (net / "output").exists()


@pytest.mark.neuron
def test_electrode_inside_the_soma_fails_before_the_run(tiny_network, run_network, tmp_path):
    net = _prepare(tiny_network, tmp_path / "net", np.vstack([ELECTRODES[:1], [POSITION]]))
    res = run_network(net, timeout_s=300)
    assert res.returncode == 2, res.describe()
    assert "reports.ecp.electrode_positions" in res.stderr
    assert "simulation_config.json" in res.stderr and "channel 1" in res.stderr
    assert "soma" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (net / "output").exists()


def test_probe_axis_and_csd_of_a_known_potential():
    from builder.analysis.plots_ecp import csd, probe_axis

    z = np.array([300.0, 0.0, 100.0, 200.0, 400.0])
    pos = np.stack([np.full(5, 20.0), np.zeros(5), z], axis=1)
    order, along = probe_axis(pos)
    np.testing.assert_array_equal(order, [1, 2, 3, 0, 4])
    np.testing.assert_allclose(along, [0, 100, 200, 300, 400])
    assert (
        probe_axis(pos + np.array([[0, 0, 0], [0, 0, 0], [0, 5, 0], [0, 0, 0], [0, 0, 0]])) is None
    )
    # phi = a z^2 (mV, z in um): d2phi/dz2 = 2a everywhere, CSD = -sigma 2a (S/m mV/um2 -> uA/mm3)
    a = 1e-6
    phi = np.tile(a * along**2, (3, 1))
    np.testing.assert_allclose(csd(phi, 100.0, SIGMA), np.full((3, 3), -SIGMA * 2 * a * 1e6))


@pytest.mark.neuron
def test_plots_show_the_ecp(ecp_run, tmp_path):
    from builder.analysis.plots import plot_run

    notes: list[str] = []
    pngs = {p.name for p in plot_run(ecp_run, tmp_path, notes=notes)}
    assert {"ecp_traces.png", "ecp_layout.png"} <= pngs
    # the four electrodes are not on a line: no CSD, and the note says why
    assert "ecp_csd.png" not in pngs and any("constant pitch" in n for n in notes)


# ------------------------------------------------------------------ electrodes at build time
def _ball_and_stick_table():
    from builder.core.segments import SegmentTable

    # a 30 x 30 um soma centred at the origin and a 100 um apical stick along +z (2 segments)
    return SegmentTable(
        bmtk_id=np.array([0, 1, 1]),
        x=np.array([0.5, 0.25, 0.75]),
        type=np.array(["soma", "apic", "apic"]),
        type_index=np.array([0, 0, 0]),
        distance_um=np.array([15.0, 55.0, 105.0]),
        xyz_um=np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 40.0], [0.0, 0.0, 90.0]]),
        length_um=np.array([30.0, 50.0, 50.0]),
        diam_um=np.array([30.0, 2.0, 2.0]),
    )


def test_electrodes_in_somata_finds_the_inscribed_ball_of_each_placed_soma():
    from builder.core.spec.electrodes import electrodes_in_somata

    table = _ball_and_stick_table()
    positions = np.array([[100.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    angles = np.array([[np.pi / 2, 0.0, 0.0], [0.0, 0.0, 0.0]])  # node 0 lies along -y
    electrodes = np.array(
        [
            [100.0, 0.0, 14.0],  # 14 um from node 0's soma centre: inside its 15 um ball
            [100.0, 0.0, 16.0],  # outside the ball (still inside the cylinder: the runner's)
            [100.0, -40.0, 0.0],  # on node 0's rotated stick, not its soma
            [3.0, 4.0, 0.0],  # 5 um from node 1's soma centre
            [0.0, 0.0, 40.0],  # on node 1's stick
        ]
    )
    hits = electrodes_in_somata(table, positions, angles, electrodes)
    assert [(h.node, h.electrode) for h in hits] == [(0, 0), (1, 3)]
    assert hits[0].distance_um == pytest.approx(14.0) and hits[0].radius_um == 15.0
    assert hits[1].distance_um == pytest.approx(5.0)
    # the same cells shifted 20 um away along x: no electrode is in a soma any more
    assert electrodes_in_somata(table, positions + [20.0, 0.0, 0.0], angles, electrodes) == []
    # a table without diameters cannot be checked here (the runner still checks)
    nodiam = _ball_and_stick_table()
    object.__setattr__(nodiam, "diam_um", np.full(3, np.nan))
    assert electrodes_in_somata(nodiam, positions, angles, electrodes) == []


@pytest.mark.neuron
def test_electrode_inside_a_soma_is_a_build_error(tmp_path, sim_env):
    """The spec build refuses a probe contact inside a soma: exit 2, file, key and value,
    nothing written; 40 um away the same spec builds."""
    import subprocess
    import sys

    from builder.core.spec import NetworkBuilder, load_spec

    root = Path(__file__).resolve().parents[1]
    spec = json.loads((root / "examples" / "lfpy_network.json").read_text())
    spec["components_dir"] = str(root / "examples" / "components")
    spec["populations"]["E"]["count"] = 4
    spec["populations"]["I"]["count"] = 2
    spec["connections"] = {}
    spec["inputs"] = {}
    for pop in ("bgE", "bgI"):
        spec["populations"].pop(pop)
    spec["run"]["duration_ms"] = 50.0
    spec["run"]["warmup_ms"] = 10.0
    spec["reports"]["electrodes"]["clearance_um"] = 0.0
    cols = NetworkBuilder(load_spec(tmp_path / "x.json", data=spec)).nodes["I"].columns
    soma = np.array([cols["x"][1], cols["y"][1], cols["z"][1]])

    def build(name: str, points: list[list[float]]) -> subprocess.CompletedProcess:
        spec["reports"]["electrodes"] = {"positions_um": points, "clearance_um": 0.0}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(spec))
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "builder.commands.cli",
                str(path),
                "-o",
                str(tmp_path / name),
                "-q",
            ],
            env=sim_env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    far = [1000.0, 1000.0, 0.0]
    bad = build("bad", [far, (soma + [0.0, 0.0, 5.0]).tolist()])
    assert bad.returncode == 2, bad.stderr
    msg = bad.stderr
    assert "bad.json" in msg and "reports.electrodes.positions_um" in msg
    assert "electrode 1" in msg and "soma of I node 1" in msg and "Traceback" not in msg
    assert not (tmp_path / "bad").exists()
    good = build("good", [far, (soma + [40.0, 0.0, 0.0]).tolist()])
    assert good.returncode == 0, good.stderr
