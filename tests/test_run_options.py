"""Every documented run-side option works (issue 9): one test per reproduced failure.

1. ``record_cellvars`` away from the soma (and at template section lists) records every
   segment, in the SONATA layout; an unknown variable or group fails the build (exit 2).
2. ``file_current_clamp`` runs: a waveform file makes the cell fire at known times; bad files
   fail the build and the run-side check.
3. Stock BMTK runs an output (``run_bionet.py``) and libsonata reads its config.
4. Rates exclude the start-up transient (``run.warmup_ms``), which follows the input onset.
5. ``run-network SWEEPDIR --plot`` plots every finished run; ``collect`` says why it wrote
   no figure; the summary figure has units and shows runs without a rate.
6. ``run-network --version`` / ``--help``; BMTK's NEURON 9 pointer warning is not printed.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import DEFAULT_PARAMS, ROOT, TINY_OVERRIDES, TINY_SEED
from procs import run_group

from builder.core.sonata import write_spikes

BUILD = ROOT / "build_network.py"
RUN = ROOT / "run_network.py"

neuron = pytest.mark.neuron


def _build(out: Path, env: dict[str, str], *sets: str, cwd: Path | None = None):
    cmd = [sys.executable, str(BUILD), str(DEFAULT_PARAMS), str(TINY_SEED), "-o", str(out), "-q"]
    for item in (*TINY_OVERRIDES, *sets):
        cmd += ["--set", item]
    return run_group(cmd, cwd=cwd or out.parent, env=env, timeout_s=300)


def _spikes(rundir: Path) -> np.ndarray:
    with h5py.File(rundir / "output" / "spikes.h5", "r") as f:
        return np.sort(f["spikes/biophysical/timestamps"][()])


def _clamp_file(path: Path, amplitudes, dts) -> Path:
    with h5py.File(path, "w") as f:
        f["amplitudes"] = np.asarray(amplitudes, dtype=float)
        f["dts"] = np.asarray(dts, dtype=float)
    return path


# ------------------------------------------------------------------ 1. recording sites
@neuron
def test_reports_at_dend_and_at_a_template_section_list(
    tmp_path: Path, sim_env: dict[str, str], run_network
) -> None:
    out = tmp_path / "rc"
    proc = _build(
        out,
        sim_env,
        'record_cellvars.vars=["v", "v", "v", "cai"]',
        'record_cellvars.locs=["soma", "dend", "somatic", "apic"]',
    )
    assert proc.returncode == 0, proc.stderr
    res = run_network(out)
    assert res.returncode == 0, res.describe()
    import libsonata

    with open(out / "segments.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for name, kind in (("v_dend", "dend"), ("cai_apic", "apic")):
        reader = libsonata.ElementReportReader(str(out / "output" / f"{name}.h5"))
        pop = reader["biophysical"]
        data = pop.get()
        ids = np.array(data.ids)  # (node, element) per column
        want = [int(r["BMTK ID"]) for r in rows if r["Type"] == kind]
        assert ids[:, 1].tolist() == want  # one column per segment, element id = section index
        assert np.array(data.data).shape == (round(300 / 0.1), len(want))
        assert pop.times == (0.0, 300.0, 0.1)
    # our module ('somatic', a template section list) samples exactly as BMTK's soma report
    soma = np.array(
        libsonata.ElementReportReader(str(out / "output/v_soma.h5"))["biophysical"].get().data
    )
    somatic = np.array(
        libsonata.ElementReportReader(str(out / "output/v_somatic.h5"))["biophysical"].get().data
    )
    # BMTK's soma report holds soma[0](0.5): the middle one of the soma's (odd) segments
    assert soma.shape[1] == 1 and somatic.shape[0] == soma.shape[0] and somatic.shape[1] % 2
    assert np.array_equal(somatic[:, somatic.shape[1] // 2], soma[:, 0])
    dend = np.array(
        libsonata.ElementReportReader(str(out / "output/v_dend.h5"))["biophysical"].get().data
    )
    assert dend.std(axis=0).min() > 0.1  # every dendritic segment's v moved under input


@neuron
@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (
            ['record_cellvars.vars=["foo"]', 'record_cellvars.locs=["dend"]'],
            ["record_cellvars.vars[0]", "'foo'", "'dend'", "valid:"],
        ),
        (
            ['record_cellvars.vars=["ina"]', 'record_cellvars.locs=["dend"]'],
            ["record_cellvars.vars[0]", "'ina'", "valid:"],  # basal dendrites have no Na
        ),
        (
            ['record_cellvars.vars=["v"]', 'record_cellvars.locs=["tuft"]'],
            ["record_cellvars.locs[0]", "'tuft'", "apical", "basal", "somatic"],
        ),
    ],
)
def test_unknown_recording_variable_or_group_fails_the_build(
    tmp_path: Path, sim_env: dict[str, str], sets: list[str], expected: list[str]
) -> None:
    out = tmp_path / "bad"
    proc = _build(out, sim_env, *sets)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for text in expected:
        assert text in proc.stderr, proc.stderr
    if "valid:" in expected:  # the valid variables are listed, v and i_cap among them
        listed = proc.stderr.split("valid:")[1].split("\n")[0].replace(",", " ").split()
        assert {"v", "i_cap"} <= set(listed) and "foo" not in listed
    assert not out.exists()


# ------------------------------------------------------------------ 2. file current clamp
#: Two 8 nA, 3 ms pulses at 100 and 200 ms: each fires the cell within ~2 ms of its onset.
PULSES = ([0.0, 8.0, 0.0, 8.0, 0.0], [100.0, 3.0, 97.0, 3.0, 10.0])


@neuron
def test_file_current_clamp_fires_the_cell_at_the_pulses(
    tmp_path: Path, sim_env: dict[str, str], run_network, tiny_network: Path
) -> None:
    clamp = _clamp_file(tmp_path / "pulses.h5", *PULSES)
    out = tmp_path / "clamped"
    proc = _build(out, sim_env, f"file_current_clamp.input_file={clamp}")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((out / "simulation_config.json").read_text())
    assert cfg["inputs"]["file_current_clamp"]["module"] == "FileIClamp"
    res = run_network(out)
    assert res.returncode == 0, res.describe()
    t = _spikes(out)
    for onset in (100.0, 200.0):
        assert ((t > onset) & (t < onset + 4.0)).sum() == 1, t
    # the same network without the clamp: no spike in those windows
    plain = tmp_path / "plain"
    shutil.copytree(tiny_network, plain)
    res = run_network(plain)
    assert res.returncode == 0, res.describe()
    t0 = _spikes(plain)
    for onset in (100.0, 200.0):
        assert not ((t0 > onset) & (t0 < onset + 4.0)).any(), t0


@pytest.mark.parametrize(
    ("amplitudes", "dts", "message"),
    [
        ([0.0, np.nan], [1.0, 1.0], "amplitudes[1] is nan"),
        ([0.0, 1.0, 0.0], [1.0, 1.0], "3 amplitudes but 2 dts"),
        ([0.0, 1.0], [1.0, 0.0], "dts[1] is 0 ms"),
        ([0.0, 1.0], None, "needs a numeric dataset 'dts'"),
    ],
)
def test_bad_clamp_file_fails_the_build(
    tmp_path: Path, sim_env: dict[str, str], amplitudes, dts, message: str
) -> None:
    path = tmp_path / "clamp.h5"
    with h5py.File(path, "w") as f:
        f["amplitudes"] = np.asarray(amplitudes)
        if dts is not None:
            f["dts"] = np.asarray(dts)
    out = tmp_path / "out"
    proc = _build(out, sim_env, f"file_current_clamp.input_file={path}")
    assert proc.returncode == 2, proc.stderr
    assert "file_current_clamp.input_file" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_run_side_check_reads_the_clamp_file(tmp_path: Path) -> None:
    from builder.core.checks import check_run_inputs

    base = tmp_path / "net"
    (base / "inputs").mkdir(parents=True)
    _clamp_file(base / "inputs" / "c.h5", [0.0, 1.0, 0.0], [1.0, 1.0])
    cfg = {
        "manifest": {"$BASE_DIR": "."},
        "run": {"tstop": 10.0, "dt": 0.1},
        "networks": {"nodes": []},
        "inputs": {
            "clamp": {
                "input_type": "current_clamp",
                "module": "FileIClamp",
                "input_file": "$BASE_DIR/inputs/c.h5",
            }
        },
    }
    (base / "simulation_config.json").write_text(json.dumps(cfg))
    with pytest.raises(Exception) as err:
        check_run_inputs(base / "simulation_config.json")
    assert "3 amplitudes but 2 dts" in str(err.value)
    assert "inputs.clamp.input_file" in str(err.value)


def test_read_clamp_steps_and_returns_to_zero(tmp_path: Path) -> None:
    from builder.core.clamp import read_clamp

    times, amps = read_clamp(_clamp_file(tmp_path / "c.h5", [0.5, 2.0], [10.0]))
    assert times.tolist() == [0.0, 10.0, 20.0] and amps.tolist() == [0.5, 2.0, 0.0]
    times, amps = read_clamp(_clamp_file(tmp_path / "d.h5", [[1.0, 3.0]], [[2.0, 4.0]]))
    assert times.tolist() == [0.0, 2.0, 6.0] and amps.tolist() == [1.0, 3.0, 0.0]


# ------------------------------------------------------------------ 3. stock BMTK, libsonata
@neuron
def test_stock_bmtk_flow_runs_an_output_like_run_network(
    tmp_path: Path, sim_env: dict[str, str], run_network
) -> None:
    clamp = _clamp_file(tmp_path / "pulses.h5", *PULSES)
    out = tmp_path / "net"
    proc = _build(
        out,
        sim_env,
        f"file_current_clamp.input_file={clamp}",
        'record_cellvars.vars=["v", "v"]',
        'record_cellvars.locs=["soma", "dend"]',
    )
    assert proc.returncode == 0, proc.stderr
    stock = tmp_path / "stock"
    shutil.copytree(out, stock)
    # what a BMTK user does: python run_bionet.py, inside the directory
    proc = run_group([sys.executable, "run_bionet.py"], cwd=stock, env=sim_env, timeout_s=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ptr_update_callback" not in proc.stdout + proc.stderr
    # the reference mode of run-network: one point process per synapse, BMTK's inputs and
    # BMTK's initialisation
    res = run_network(out, "--no-merge", "--bmtk-inputs", "--no-settle")
    assert res.returncode == 0, res.describe()
    t_stock, t_ours = _spikes(stock), _spikes(out)
    assert t_ours.size >= 2 and np.array_equal(t_stock, t_ours)
    with h5py.File(stock / "output" / "v_dend.h5", "r") as a:
        with h5py.File(out / "output" / "v_dend.h5", "r") as b:
            assert np.array_equal(
                a["report/biophysical/data"][()], b["report/biophysical/data"][()]
            )


@neuron
def test_libsonata_reads_the_simulation_config(tiny_network: Path) -> None:
    import libsonata

    cfg = libsonata.SimulationConfig.from_file(str(tiny_network / "simulation_config.json"))
    assert set(cfg.list_input_names) == {
        "exc_stim_spikes",
        "prox_inh_stim_spikes",
        "dist_inh_stim_spikes",
    }
    for name in cfg.list_input_names:
        inp = cfg.input(name)
        assert type(inp).__name__ == "SynapseReplay"
        assert Path(inp.spike_file).is_file()
    assert cfg.run.tstop == 300.0 and set(cfg.list_report_names) == {"v_soma"}


def test_bmtk_view_translates_only_what_bmtk_lacks() -> None:
    from builder.simulators.neuron.bionet_ext import bmtk_view

    raw = {
        "inputs": {
            "s": {"input_type": "spikes", "module": "synapse_replay", "spike_file": "a.h5"},
            "c": {"input_type": "current_clamp", "module": "FileIClamp", "input_file": "c.h5"},
            "i": {"input_type": "current_clamp", "module": "IClamp", "amp": 1.0},
        },
        "reports": {
            "v_soma": {"module": "membrane_report", "sections": "soma"},
            "v_dend": {"module": "membrane_report", "sections": "dend"},
        },
    }
    frozen = json.dumps(raw, sort_keys=True)
    view = bmtk_view(raw)
    assert json.dumps(raw, sort_keys=True) == frozen  # not changed
    assert view.config["inputs"]["s"]["module"] == "sonata"
    assert view.config["inputs"]["s"]["input_file"] == "a.h5"
    assert set(view.config["inputs"]) == {"s", "i"} and [c["input_file"] for c in view.clamps] == [
        "c.h5"
    ]
    assert set(view.config["reports"]) == {"v_soma"} and set(view.reports) == {"v_dend"}


# ------------------------------------------------------------------ 4. warm-up
def test_rate_window_starts_after_input_onset_plus_warmup() -> None:
    from builder.core.simconfig import rate_window_ms

    assert rate_window_ms({"run": {"tstop": 1000.0, "warmup_ms": 200.0}}) == (200.0, 1000.0)
    assert rate_window_ms(
        {"run": {"tstop": 1000.0, "input_start_ms": 500.0, "warmup_ms": 200.0}}
    ) == (700.0, 1000.0)
    assert rate_window_ms({"run": {"tstop": 100.0, "warmup_ms": 200.0}}) == (100.0, 100.0)
    assert rate_window_ms({"run": {"tstart": 0.0, "tstop": 300.0}}) == (0.0, 300.0)  # old config


def test_collect_metrics_count_only_the_window(tmp_path: Path) -> None:
    from builder.commands.collect import run_metrics

    run = tmp_path / "r"
    (run / "output").mkdir(parents=True)
    (run / "simulation_config.json").write_text(
        json.dumps({"run": {"tstop": 1000.0, "input_start_ms": 100.0, "warmup_ms": 200.0}})
    )
    t = np.array([4.0, 104.0, 250.0, 350.0, 400.0, 900.0])
    write_spikes(run / "output" / "spikes.h5", "biophysical", np.zeros(t.size, int), t)
    m = run_metrics(run)
    assert m["n_spikes"] == 3 and m["window_ms"] == "300-1000"
    assert m["rate_hz"] == pytest.approx(3 / 0.7, rel=1e-12)
    isi = np.diff([350.0, 400.0, 900.0])
    assert m["cv_isi"] == pytest.approx(isi.std() / isi.mean(), rel=1e-12)


@neuron
def test_start_up_transient_follows_the_input_onset_and_is_not_counted(
    tmp_path: Path, sim_env: dict[str, str], run_network
) -> None:
    """Inputs from 100 ms: nothing fires before them, and the summary counts from 300 ms."""
    out = tmp_path / "late"
    # the whole cell's synapses (the tiny lengths are too little drive for the Hay-channel cell)
    full = ("lengths.apic=7440", "lengths.basal_dist=4649", "lengths.basal_prox=483")
    proc = _build(out, sim_env, "time.start=0.1", "time.stop=0.4", *full)
    assert proc.returncode == 0, proc.stderr
    res = run_network(out)
    assert res.returncode == 0, res.describe()
    t = _spikes(out)
    assert t.size and t.min() > 100.0  # the settled cell is silent until the inputs start
    n = int(((t >= 300.0) & (t <= 400.0)).sum())
    assert f"{n / 0.1:.2f} Hz per cell over 300-400 ms" in res.stdout, res.stdout
    assert "ptr_update_callback" not in res.stdout + res.stderr


# ------------------------------------------------------------------ 5. sweeps: plots, collect
def _sweep(tmp_path: Path, env: dict[str, str]) -> Path:
    """A two-run sweep of the tiny network (TINY_OVERRIDES written into its base params)."""
    data = json.loads(DEFAULT_PARAMS.read_text())
    for item in TINY_OVERRIDES:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = data
        for k in parents:
            node = node[k]
        node[leaf] = json.loads(value)
    base = tmp_path / "params" / "tiny.json"
    base.parent.mkdir()
    base.write_text(json.dumps(data))
    spec = tmp_path / "s.json"
    spec.write_text(
        json.dumps(
            {"base": str(base), "overrides": {"inh_frs.distal.m": [2.0, 8.0]}, "seeds": [TINY_SEED]}
        )
    )
    out = tmp_path / "sweep"
    cmd = [sys.executable, str(BUILD), "sweep", str(spec), "-o", str(out), "-q"]
    proc = run_group(cmd, cwd=tmp_path, env=env, timeout_s=300)
    assert proc.returncode == 0, proc.stderr
    return out


@neuron
@pytest.mark.slow
def test_sweep_plot_plots_every_finished_run_and_collect_explains_no_figure(
    tmp_path: Path, sim_env: dict[str, str]
) -> None:
    out = _sweep(tmp_path, sim_env)
    # nothing run yet: collect writes the table, no figure, and says why
    proc = run_group(
        [sys.executable, str(RUN), "collect", str(out)], cwd=tmp_path, env=sim_env, timeout_s=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "summary_rate.png not written: none of the 2 runs has finished" in proc.stderr
    assert not (out / "summary_rate.png").exists()
    proc = run_group(
        [sys.executable, str(RUN), str(out), "--plot", "--no-progress"],
        cwd=tmp_path,
        env=sim_env,
        timeout_s=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rid in ("r000", "r001"):
        plots = out / rid / "output" / "plots"
        assert {p.name for p in plots.glob("*.png")} >= {
            "inputs_raster.png",
            "soma_vm.png",
            "morphology_synapses.png",
        }
    proc = run_group(
        [sys.executable, str(RUN), "collect", str(out)], cwd=tmp_path, env=sim_env, timeout_s=120
    )
    assert proc.returncode == 0 and (out / "summary_rate.png").is_file()


def test_summary_figure_has_units_and_marks_runs_without_a_rate(tmp_path: Path) -> None:
    from builder.commands.collect import _plots

    table = [
        {
            "inh_frs.distal.m": "2",
            "seed": 1,
            "status": "done",
            "rate_hz": 4.0,
            "window_ms": "200-300",
        },
        {"inh_frs.distal.m": "8", "seed": 1, "status": "failed", "rate_hz": "", "window_ms": ""},
    ]
    captured: dict[str, list] = {"xlabel": [], "plot": []}
    import matplotlib.axes

    real_label, real_plot = matplotlib.axes.Axes.set_xlabel, matplotlib.axes.Axes.plot

    def spy_label(self, label, *a, **k):
        captured["xlabel"].append(label)
        return real_label(self, label, *a, **k)

    def spy_plot(self, *a, **k):
        captured["plot"].append((a, k))
        return real_plot(self, *a, **k)

    matplotlib.axes.Axes.set_xlabel, matplotlib.axes.Axes.plot = spy_label, spy_plot
    try:
        notes: list[str] = []
        pngs = _plots(tmp_path, ["inh_frs.distal.m"], table, notes)
    finally:
        matplotlib.axes.Axes.set_xlabel, matplotlib.axes.Axes.plot = real_label, real_plot
    assert pngs == [tmp_path / "summary_rate.png"] and not notes
    assert captured["xlabel"] == ["inh_frs.distal.m (Hz)"]
    crosses = [(a, k) for a, k in captured["plot"] if str(k.get("label", "")).startswith("no rate")]
    assert len(crosses) == 1
    (xs, ys, *_), kw = crosses[0]
    assert list(xs) == [8] and list(ys) == [0.0] and "1: not finished or failed" in kw["label"]


# ------------------------------------------------------------------ 6. command line
def test_run_network_version_and_help(sim_env: dict[str, str], tmp_path: Path) -> None:
    from builder import __version__

    proc = subprocess.run(
        [sys.executable, str(RUN), "--version"], capture_output=True, text=True, env=sim_env
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"run-network {__version__}"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--help"], capture_output=True, text=True, env=sim_env
    )
    assert proc.returncode == 0
    assert "run-network plot DIR" in proc.stdout and "run-network collect SWEEPDIR" in proc.stdout
    assert "warmup_ms" in proc.stdout


def test_only_bmtks_ptr_update_warning_is_silenced(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from builder.simulators.neuron.bionet_ext import _neuron_major, quiet_known_warnings

    if _neuron_major() < 9:
        pytest.skip("the warning is silenced for NEURON >= 9 only")
    quiet_known_warnings()
    quiet_known_warnings()  # idempotent: one filter
    logger = logging.getLogger("NEURONIOUtils")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="NEURONIOUtils"):
        logger.warning('NEURON 9.0.2 is missing "ptr_update_callback" that may sometimes ...')
        logger.warning("Unrecognized module foo, skipping.")
    assert [r.getMessage() for r in caplog.records] == ["Unrecognized module foo, skipping."]
