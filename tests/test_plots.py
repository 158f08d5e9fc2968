"""The figures of ``run-network plot``: files, valid non-trivial PNGs, what they show, the CLI.

A tiny network is built once per module (NEURON derives the default cell's segment table on
the first build); the run is faked with a SONATA spikes file and a somatic membrane report in
the layout BMTK 1.2 writes (``/report/<pop>/data`` steps x elements, ``/report/<pop>/mapping``
with ``node_ids``, ``element_ids``, ``element_pos``, ``index_pointer`` and ``time`` =
[tstart, tstop, dt]).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from builder.analysis import plots
from builder.commands.build import SimulationBuilder
from builder.core.errors import RunError
from builder.core.segments import SegmentTable
from builder.core.sonata import write_spikes

ROOT = Path(__file__).resolve().parents[1]
L5 = ROOT / "params" / "L5NetParams.json"
TINY = {
    "time.stop": 0.3,
    "lengths.apic": 100,
    "lengths.basal_dist": 100,
    "lengths.basal_prox": 50,
    "n_soma_syns": 10,
}
TSTOP_MS = 300.0
DT_MS = 0.1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_PNGS = ["inputs_raster.png", "soma_vm.png", "morphology_synapses.png"]
BUILD_PNGS = ["inputs_raster.png", "morphology_synapses.png"]
# matplotlib's tab:red / tab:blue / tab:green, the population colours
RED, BLUE, GREEN = (0.839, 0.153, 0.157), (0.122, 0.467, 0.706), (0.173, 0.627, 0.173)


# ------------------------------------------------------------------ fixtures and helpers
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny network right after the build (read-only: copy it to change it)."""
    out = tmp_path_factory.mktemp("plots") / "net"
    SimulationBuilder(L5, seed=3, overrides=TINY).build(out)
    return out


def copy_of(built: Path, tmp_path: Path) -> Path:
    target = tmp_path / "net"
    shutil.copytree(built, target)
    return target


def fake_run(outdir: Path, spikes_ms: list[float], report: bool = True) -> np.ndarray:
    """Write output/spikes.h5 and (optionally) output/v_soma.h5 as a run would; returns v."""
    (outdir / "output").mkdir(exist_ok=True)
    spikes = np.asarray(spikes_ms, dtype=float)
    write_spikes(
        outdir / "output" / "spikes.h5",
        "biophysical",
        np.zeros(spikes.size, dtype=np.uint64),
        spikes,
        sorting="by_time",
    )
    n = int(round(TSTOP_MS / DT_MS))
    t = np.arange(n) * DT_MS
    v = -70.0 + 3.0 * np.sin(2 * np.pi * t / 50.0)
    for s in spikes:
        v[int(s / DT_MS) : int(s / DT_MS) + 10] = 30.0
    if report:
        with h5py.File(outdir / "output" / "v_soma.h5", "w") as f:
            g = f.create_group("report/biophysical")
            d = g.create_dataset("data", data=v[:, None])
            d.attrs["variable"] = "v"
            m = g.create_group("mapping")
            m["node_ids"] = np.array([0], dtype=np.uint64)
            m["element_ids"] = np.array([0], dtype=np.uint64)
            m["element_pos"] = np.array([0.5])
            m["index_pointer"] = np.array([0, 1], dtype=np.uint64)
            m["time"] = np.array([0.0, TSTOP_MS, DT_MS])
    return v


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header (after checking the signature and IHDR)."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def pixels(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(path)[..., :3]


def n_pixels_near(img: np.ndarray, rgb: tuple[float, float, float], tol: float = 0.1) -> int:
    return int((np.abs(img - np.asarray(rgb)).max(axis=2) < tol).sum())


def assert_good_png(path: Path) -> np.ndarray:
    """A real, large, non-blank image; returns its RGB pixels."""
    assert path.is_file(), f"{path} missing"
    width, height = png_size(path)
    assert width > 200 and height > 200, f"{path.name}: {width} x {height}"
    img = pixels(path)
    assert img.shape[:2] == (height, width)
    assert img.std() > 0.01
    ink = (img < 0.9).any(axis=2).mean()  # not background (white)
    assert ink > 0.01, f"{path.name}: only {ink:.2%} of the pixels are drawn"
    return img


# ------------------------------------------------------------------ pure helpers (no NEURON)
def test_envelope_keeps_every_extreme_and_the_whole_time_range() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(10_000) * 0.1
    v = rng.normal(-70.0, 1.0, t.size)
    v[[17, 5_003, 9_999]] = [30.0, 25.0, 40.0]  # spikes, one in the very last sample
    v[8_888] = -95.0
    te, ve = plots._envelope(t, v, 4000)
    step = -(-t.size // 4000)  # 3 samples per bin
    assert te.size == ve.size == 2 * -(-t.size // step)
    assert ve.max() == 40.0 and ve.min() == -95.0
    assert {30.0, 25.0} <= set(ve.tolist())
    assert te[0] == 0.0 and te[-1] >= t[-1] - step * 0.1
    assert np.all(np.diff(te) >= 0)


def test_spread_cells_is_even_and_bounded() -> None:
    assert plots._spread_cells(90, 250).tolist() == list(range(90))
    shown = plots._spread_cells(5222, 250)
    assert shown.size == 250 and shown[0] == 0 and shown[-1] == 5221
    gaps = np.diff(shown)
    assert gaps.min() >= 20 and gaps.max() <= 21  # 5221 / 249 = 20.97


def test_importing_plots_or_building_does_not_import_matplotlib() -> None:
    code = (
        "import sys, builder.analysis.plots, builder.commands.build, builder.commands.cli; "
        "sys.exit('matplotlib' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_missing_directory_and_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert plots.main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope: no such directory" in err and "Traceback" not in err
    assert plots.main([str(tmp_path)]) == 2
    assert "missing simulation_config.json" in capsys.readouterr().err
    with pytest.raises(RunError, match="simulation_config.json"):
        plots.plot_run(tmp_path)


# ------------------------------------------------------------------ figures of a real build


@pytest.mark.neuron
def test_right_after_build_inputs_and_morphology_only(built: Path, tmp_path: Path) -> None:
    net = copy_of(built, tmp_path)
    notes: list[str] = []
    paths = plots.plot_run(net, notes=notes)
    plot_dir = net / "output" / "plots"
    assert paths == [plot_dir / name for name in BUILD_PNGS]
    assert sorted(p.name for p in plot_dir.iterdir()) == sorted(BUILD_PNGS)  # no temp files
    assert len(notes) == 1 and "soma_vm.png skipped" in notes[0] and "not been run" in notes[0]

    raster = assert_good_png(paths[0])
    # each population's colour is drawn (raster ticks and rate histogram)
    for colour in (RED, BLUE, GREEN):
        assert n_pixels_near(raster, colour) > 100

    morph = assert_good_png(paths[1])
    for colour in (RED, BLUE, GREEN):
        assert n_pixels_near(morph, colour) > 20


@pytest.mark.neuron
def test_with_a_run_all_three_figures(built: Path, tmp_path: Path) -> None:
    net = copy_of(built, tmp_path)
    fake_run(net, [40.0, 120.5, 250.0])
    notes: list[str] = []
    paths = plots.plot_run(net, notes=notes)
    assert [p.name for p in paths] == ALL_PNGS and notes == []
    vm = assert_good_png(paths[1])
    assert n_pixels_near(vm, RED) > 30  # the output-spike markers

    # the same run without output spikes: no markers
    fake_run(net, [])
    quiet = pixels(plots.plot_run(net)[1])
    assert n_pixels_near(quiet, RED) == 0


@pytest.mark.neuron
def test_run_without_membrane_report_skips_vm(built: Path, tmp_path: Path) -> None:
    net = copy_of(built, tmp_path)
    fake_run(net, [40.0], report=False)
    notes: list[str] = []
    paths = plots.plot_run(net, notes=notes)
    assert [p.name for p in paths] == BUILD_PNGS
    assert len(notes) == 1 and "v_soma.h5" in notes[0] and "soma_vm.png skipped" in notes[0]


@pytest.mark.neuron
def test_cli_plot_dir_and_output(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    net = copy_of(built, tmp_path)
    fake_run(net, [100.0])
    elsewhere = tmp_path / "figs" / "a"
    assert plots.main([str(net), "-o", str(elsewhere)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [str(elsewhere / name) for name in ALL_PNGS]
    assert err == ""
    assert not (net / "output" / "plots").exists()

    # before the run: exit 0, a note on stderr
    shutil.rmtree(net / "output")
    assert plots.main([str(net)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [str(net / "output" / "plots" / name) for name in BUILD_PNGS]
    assert "note: soma_vm.png skipped: the network has not been run yet" in err


@pytest.mark.neuron
def test_cli_via_the_runner_dispatch(built: Path, tmp_path: Path) -> None:
    from builder.commands import run_cli

    net = copy_of(built, tmp_path)
    assert run_cli.main(["plot", str(net), "-q"]) == 0
    assert sorted(p.name for p in (net / "output" / "plots").iterdir()) == sorted(BUILD_PNGS)


@pytest.mark.neuron
def test_incomplete_directory_names_every_missing_file(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    net = copy_of(built, tmp_path)
    (net / "segments.csv").unlink()
    (net / "exc_stim_spikes.h5").unlink()
    (net / "network" / "dist_inh_stim_biophysical_edges.h5").unlink()
    assert plots.main([str(net)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "incomplete network output directory" in err
    for name in (
        "segments.csv",
        "exc_stim_spikes.h5",
        "network/dist_inh_stim_biophysical_edges.h5",
    ):
        assert name in err
    assert not (net / "output" / "plots").exists()


@pytest.mark.neuron
def test_synapses_are_drawn_on_their_own_segment(built: Path) -> None:
    seg = SegmentTable.from_csv(built / "segments.csv")
    src, sec_id, sec_x = plots._read_edges(
        built / "network" / "exc_stim_biophysical_edges.h5", "exc_stim"
    )
    xy = plots._synapse_xy(seg, sec_id, sec_x, np.random.default_rng(0))
    assert np.isfinite(xy).all()
    # the segment row of each synapse: same section, X nearest to sec_x
    same = seg.bmtk_id[None, :] == sec_id[:, None]
    row = np.argmin(np.where(same, np.abs(seg.x[None, :] - sec_x[:, None]), np.inf), axis=1)
    assert np.allclose(seg.x[row], sec_x)
    off_um = np.hypot(*(xy - seg.xyz_um[row, :2]).T)
    # within half a segment of its midpoint (x-y projection of a straight-or-curved segment)
    assert np.all(off_um <= seg.length_um[row] / 2 + 1e-6)
    assert off_um.max() > 0  # and actually spread along the segment


@pytest.mark.neuron
def test_morphology_lines_join_sections_and_their_parents(built: Path) -> None:
    seg = SegmentTable.from_csv(built / "segments.csv")
    lines = plots._morphology_lines(seg)
    n_sections = np.unique(seg.bmtk_id).size
    n_soma_sections = np.unique(seg.bmtk_id[seg.type == "soma"]).size
    # consecutive segments within each section, plus one link per non-somatic section
    assert lines.shape == (len(seg) - n_sections + n_sections - n_soma_sections, 2, 2)
    assert np.isfinite(lines).all()


@pytest.mark.neuron
@pytest.mark.slow
def test_default_30_s_network_plots_fast(tmp_path: Path) -> None:
    """The default network (30 s, ~29k synapses, ~1.8M input spikes) plus a 30 s Vm trace."""
    net = tmp_path / "net"
    SimulationBuilder(L5, seed=5).build(net)
    (net / "output").mkdir()
    write_spikes(
        net / "output" / "spikes.h5",
        "biophysical",
        np.zeros(3, np.uint64),
        np.array([10.0, 15_000.0, 29_000.0]),
        sorting="by_time",
    )
    n = 300_000
    with h5py.File(net / "output" / "v_soma.h5", "w") as f:
        g = f.create_group("report/biophysical")
        g.create_dataset("data", data=np.full((n, 1), -70.0)).attrs["variable"] = "v"
        m = g.create_group("mapping")
        m["node_ids"] = np.array([0], dtype=np.uint64)
        m["element_ids"] = np.array([0], dtype=np.uint64)
        m["element_pos"] = np.array([0.5])
        m["index_pointer"] = np.array([0, 1], dtype=np.uint64)
        m["time"] = np.array([0.0, 30_000.0, 0.1])
    t0 = time.perf_counter()
    paths = plots.plot_run(net)
    elapsed_s = time.perf_counter() - t0
    assert [p.name for p in paths] == ALL_PNGS
    for p in paths:
        assert_good_png(p)
    # ~2.5 s measured on 2 cores; the bound catches drawing millions of points (tens of s)
    assert elapsed_s < 10.0, f"plotting took {elapsed_s:.1f} s"


@pytest.mark.neuron
@pytest.mark.slow
def test_real_run_with_plot_flag_reads_bmtk_report(built: Path, tmp_path: Path) -> None:
    """``run_network.py DIR --plot`` on the tiny network: the real membrane report is drawn."""
    net = copy_of(built, tmp_path)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_network.py"), str(net), "--no-progress", "--plot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    plot_dir = net / "output" / "plots"
    for name in ALL_PNGS:
        assert f"plot: {plot_dir / name}" in proc.stdout
        assert_good_png(plot_dir / name)
    t_ms, v, units, node = plots._read_vm(net / "output" / "v_soma.h5")
    assert node == 0 and units == "mV"
    assert t_ms.size == v.size == int(round(TSTOP_MS / DT_MS))
    assert t_ms[1] - t_ms[0] == pytest.approx(DT_MS)
    assert -100.0 < v.min() and v.max() < 80.0
