"""The NEST runner on small point-neuron networks: outputs, determinism, checks, signals.

``run-network DIR`` dispatches on the config's ``target_simulator``; these tests run it the
way users do (``run_network.py`` in a subprocess) where process behaviour matters (exit
statuses, signals, dispatch), and in-process otherwise (NEST resets its kernel per run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from nest_networks import write_point_network

pytest.importorskip("nest", reason="nest-simulator is not installed (pip install .[nest])")

from builder.core.sonata_read import read_report, read_spikes  # noqa: E402
from builder.simulators.nest.runner import main as nest_main  # noqa: E402

pytestmark = pytest.mark.nest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small network, run once (treat as read-only)."""
    d = write_point_network(tmp_path_factory.mktemp("nest") / "net")
    assert nest_main([str(d), "-q"]) == 0
    return d


def _fresh(tmp_path: Path, **kwargs) -> Path:
    return write_point_network(tmp_path / "net", **kwargs)


def test_outputs_have_the_neuron_path_layout(small: Path) -> None:
    libsonata = pytest.importorskip("libsonata")
    out = small / "output"
    reader = libsonata.SpikeReader(str(out / "spikes.h5"))
    assert reader.get_population_names() == ["cells"]
    ids, ts = read_spikes(out / "spikes.h5", "cells")
    assert ids.size > 100 and ids.min() >= 0 and ids.max() < 100
    assert np.all(np.diff(ts) >= 0) and ts.min() > 0 and ts.max() <= 500.0
    assert reader["cells"].sorting == "by_time"
    # the report: libsonata reads it, our reader too, 3 cells every 0.5 ms
    rep = libsonata.ElementReportReader(str(out / "v_report.h5"))["cells"]
    assert sorted(rep.get_node_ids()) == [0, 1, 99]
    ours = read_report(out / "v_report.h5")
    assert ours.variable == "V_m" and ours.units == "mV"
    assert ours.data().shape == (1000, 3)
    assert np.allclose(np.diff(ours.times_ms), 0.5)
    v = ours.data()
    assert -66.0 < v.min() and v.max() <= -50.0 + 1e-6  # reset .. threshold of the LIF
    # per-node V_m from the nodes file is the initial state of each cell
    with h5py.File(small / "network" / "cells_nodes.h5") as f:
        v0 = f["nodes/cells/0/V_m"][()]
    assert np.allclose(v[0], v0[[0, 1, 99]], atol=1.0)
    # rates.csv: the population and each pop_name
    rows = (out / "rates.csv").read_text().splitlines()
    assert rows[0] == "population,pop_name,cells,spikes,rate_hz,window_start_ms,window_stop_ms"
    table = {r.split(",")[1]: r.split(",") for r in rows[1:]}
    assert set(table) == {"*", "exc", "inh"}
    assert int(table["*"][3]) == ids.size == int(table["exc"][3]) + int(table["inh"][3])
    assert float(table["*"][4]) == pytest.approx(ids.size / 100 / 0.5, rel=1e-5)
    log = (out / "log.txt").read_text()
    assert "moved to t = 0.1 ms" in log and "connections" in log
    assert not (small / ".output-partial").exists()


def test_same_threads_same_spikes(tmp_path: Path) -> None:
    """NEST promises identical results for the same seed and threads (not across threads)."""
    d = _fresh(tmp_path, threads=2)
    files = []
    for i in range(2):
        assert nest_main([str(d), "-q"]) == 0
        files.append((d / "output" / "spikes.h5").read_bytes())
        shutil.copy(d / "output" / "spikes.h5", tmp_path / f"s{i}.h5")
    assert files[0] == files[1]
    # another seed changes the Poisson background, hence the spikes
    cfg = json.loads((d / "simulation_config.json").read_text())
    cfg["run"]["random_seed"] = 4
    (d / "simulation_config.json").write_text(json.dumps(cfg))
    assert nest_main([str(d), "-q"]) == 0
    assert (d / "output" / "spikes.h5").read_bytes() != files[0]
    # -t overrides the config's n_thread
    assert nest_main([str(d), "-q", "-t", "1"]) == 0
    assert "1 thread(s)" in (d / "output" / "log.txt").read_text()


def test_run_network_dispatches_on_target_simulator(tmp_path: Path) -> None:
    d = _fresh(tmp_path, tstop_ms=100.0)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_network.py"), str(d), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "in NEST (1 thread)" in proc.stdout
    assert (d / "output" / "spikes.h5").is_file()
    cfg = json.loads((d / "simulation_config.json").read_text())
    cfg["target_simulator"] = "BRIAN"
    (d / "simulation_config.json").write_text(json.dumps(cfg))
    from builder.commands.run_cli import main as run_main

    assert run_main([str(d)]) == 2


def _edit(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _csv_replace(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def _bad_model(d: Path) -> tuple[str, str]:
    _csv_replace(d / "network" / "cells_node_types.csv", "nest:iaf_psc_exp", "nest:iaf_psc_xp")
    return "cells_node_types.csv", "NEST has no neuron model 'iaf_psc_xp' (did you mean"


def _bad_param(d: Path) -> tuple[str, str]:
    _edit(d / "components" / "point_neuron_models" / "lif.json", lambda p: p.update(tau_mem=10))
    return "lif.json", "'tau_mem' is not a parameter of NEST model iaf_psc_exp"


def _bad_sign(d: Path) -> tuple[str, str]:
    # conductance ports: each port's reversal potential sets the sign, weights must be > 0
    _csv_replace(
        d / "network" / "cells_node_types.csv",
        "nest:iaf_psc_exp",
        "nest:aeif_cond_beta_multisynapse",
    )
    ports = {"E_rev": [0.0, -80.0], "tau_rise": [0.2, 0.5], "tau_decay": [2.0, 5.0]}
    (d / "components" / "point_neuron_models" / "lif.json").write_text(json.dumps(ports))
    for name in ("cells_cells", "ext_cells"):
        path = d / "network" / f"{name}_edge_types.csv"
        head, *rows = path.read_text().splitlines()
        path.write_text("\n".join([f"{head} receptor_type"] + [f"{r} 1" for r in rows]) + "\n")
    _edit(d / "simulation_config.json", lambda c: c["generators"][0].update(receptor_type=1))
    return "cells_cells_edges.h5: /edges/cells_cells/0/syn_weight", "takes positive weights only"


def _no_port(d: Path) -> tuple[str, str]:
    _bad_sign(d)
    _edit(d / "simulation_config.json", lambda c: c["generators"][0].pop("receptor_type"))
    return "generators[0]", "has receptor ports: give receptor_type >= 1"


def _no_target(d: Path) -> tuple[str, str]:
    _edit(d / "node_sets.json", lambda s: s.update(cells={"population": "cells", "node_id": []}))
    return "generators[0].node_set", "selects no cell (the input has no target population)"


def _input_to_nowhere(d: Path) -> tuple[str, str]:
    def drop(c: dict) -> None:
        c["networks"]["edges"] = c["networks"]["edges"][:1]

    _edit(d / "circuit_config.json", drop)
    return "inputs.ext_spikes.node_set", "has no edges to any cell"


def _short_delay(d: Path) -> tuple[str, str]:
    _csv_replace(d / "network" / "ext_cells_edge_types.csv", " 1.0", " 0.01")
    return "ext_cells", "needs delay >= dt"


def _bad_compact_flag(d: Path) -> tuple[str, str]:
    _edit(d / "simulation_config.json", lambda c: c["run"].update(nest_compact_synapses="yes"))
    return "run.nest_compact_synapses", "'yes' is not true or false"


@pytest.mark.parametrize(
    "spoil",
    [
        _bad_model,
        _bad_param,
        _bad_sign,
        _no_port,
        _no_target,
        _input_to_nowhere,
        _short_delay,
        _bad_compact_flag,
    ],
)
def test_bad_input_exits_2_before_simulating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spoil
) -> None:
    d = _fresh(tmp_path, tstop_ms=100.0)
    where, what = spoil(d)
    assert nest_main([str(d), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("run-network: error: ") and "Traceback" not in err
    assert where in err and what in err, err
    assert not (d / "output").exists() and not (d / ".output-partial").exists()


def test_mpiexec_with_pip_nest_stops_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _fresh(tmp_path, tstop_ms=100.0)
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    assert nest_main([str(d)]) == 2
    err = capsys.readouterr().err
    assert "2 MPI ranks" in err and "run-network DIR -t N" in err
    assert not (d / "output").exists()


def test_sigterm_keeps_the_previous_output(tmp_path: Path) -> None:
    d = _fresh(tmp_path, tstop_ms=200_000.0, n_exc=400, n_inh=100)
    (d / "output").mkdir()
    (d / "output" / "spikes.h5").write_bytes(b"previous run")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run_network.py"), str(d), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (d / ".run.lock").is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(4.0)  # into the simulation (setup takes ~1-2 s)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "nothing was written" in err and "Traceback" not in err
    assert (d / "output" / "spikes.h5").read_bytes() == b"previous run"
    assert not (d / ".output-partial").exists()


def test_plots(small: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from builder.analysis.plots_network import plot_run

    pngs = plot_run(small, tmp_path / "plots")
    assert [p.name for p in pngs] == ["raster.png", "rate_histograms.png", "vm.png"]
    assert all(p.stat().st_size > 3_000 for p in pngs)


def test_receptor_ports_carry_the_sign(tmp_path: Path) -> None:
    """A conductance model with ports: inhibition is positive weights on the -80 mV port;
    sent to the 0 mV port instead, the same synapses excite."""
    params = {
        "E_rev": [0.0, -80.0],
        "tau_rise": [0.2, 0.5],
        "tau_decay": [2.0, 5.0],
        "V_peak": -40.0,
    }
    kwargs = dict(
        model="aeif_cond_beta_multisynapse",
        params=params,
        ports=True,
        exc_weight=1.0,
        inh_weight=4.0,
        ext_weight=0.5,
        bg_weight=0.5,
        tstop_ms=300.0,
    )
    d = write_point_network(tmp_path / "ports", **kwargs)
    assert nest_main([str(d), "-q"]) == 0
    n_inh_port = read_spikes(d / "output" / "spikes.h5", "cells")[0].size
    types = d / "network" / "cells_cells_edge_types.csv"
    types.write_text(types.read_text().replace("static.json 2", "static.json 1"))
    assert nest_main([str(d), "-q"]) == 0
    n_exc_port = read_spikes(d / "output" / "spikes.h5", "cells")[0].size
    assert 0 < n_inh_port < n_exc_port


def test_dc_clamp_gives_the_lif_steady_state(tmp_path: Path) -> None:
    """A SONATA current clamp (nA) becomes a NEST DC (pA) over [delay, delay + duration):
    V settles at E_L + I tau_m / C_m on the clamped cells only."""
    d = _fresh(tmp_path, tstop_ms=300.0, generator=False)

    def dc_only(c: dict) -> None:
        c["inputs"] = {
            "step": {
                "input_type": "current_clamp",
                "module": "IClamp",
                "amp": 0.2,
                "delay": 100.0,
                "duration": 200.0,
                "node_set": {"population": "cells", "node_id": [0, 1]},
            }
        }

    _edit(d / "simulation_config.json", dc_only)
    _edit(d / "circuit_config.json", lambda c: c["networks"].update(edges=[]))
    assert nest_main([str(d), "-q"]) == 0
    rep = read_report(d / "output" / "v_report.h5")
    v, t = rep.data(), rep.times_ms
    before, after = np.searchsorted(t, 99.0), -1
    assert np.allclose(v[before], -65.0, atol=0.01)  # relaxed to E_L from the initial V_m
    assert np.allclose(v[after, :2], -65.0 + 200.0 * 10.0 / 250.0, atol=0.01)
    assert v[after, 2] == pytest.approx(-65.0, abs=0.01)  # node 99 is not clamped
    assert read_spikes(d / "output" / "spikes.h5", "cells")[0].size == 0


# ------------------------------------------------------------------ the shared command line
@pytest.mark.parametrize(
    "option",
    [
        ["--engine", "coreneuron"],
        ["--engine", "neuron"],
        ["--no-merge"],
        ["--bmtk-inputs"],
        ["--no-settle"],
        ["-j", "2"],
    ],
)
def test_neuron_only_options_exit_2_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    """``run-network`` parses one command line (builder.core.runs.run_parser) for every backend;
    what only a NEURON run (or a sweep) has is refused for a NEST config, before NEST starts."""
    from builder.commands.run_cli import main as run_main

    d = _fresh(tmp_path, tstop_ms=100.0)
    assert run_main([str(d), "-q", *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"run-network: error: {option[0]}") and "Traceback" not in err, err
    assert str(d / "simulation_config.json") in err
    assert not (d / "output").exists() and not (d / ".output-partial").exists()


def test_threads_from_the_shared_parser(tmp_path: Path) -> None:
    """``-t N`` of the shared parser reaches NEST through the dispatch (and ``-t 0`` is bad)."""
    from builder.commands.run_cli import main as run_main

    d = _fresh(tmp_path, tstop_ms=50.0)
    assert run_main([str(d), "-q", "-t", "2"]) == 0
    assert "2 thread(s)" in (d / "output" / "log.txt").read_text()
    assert run_main([str(d), "-q", "-t", "0"]) == 2


# ------------------------------------------------------------------ the loader's pieces
def test_edge_chunks_map_ids_weights_and_delays(tmp_path: Path) -> None:
    """Chunks (smaller than the file, buffers refilled) give each edge's NEST ids, weight x
    nsyns and delay (per edge or the type's), by offset for a run of NEST ids and by lookup
    otherwise."""
    from builder.core.netconfig import read_config
    from builder.simulators.nest.loader import iter_edge_chunks

    d = _fresh(tmp_path)
    cfg = read_config(d / "simulation_config.json")
    rng = np.random.default_rng(0)
    for e in cfg.edges:
        n_src, n_trg = cfg.nodes[e.source].size, cfg.nodes[e.target].size
        src_gid = 1000 + rng.permutation(n_src)  # a lookup
        trg_gid = np.arange(5, 5 + n_trg)  # a run: an offset
        parts = [
            tuple(a.copy() for a in chunk) for chunk in iter_edge_chunks(e, src_gid, trg_gid, 7)
        ]
        src, trg, tid, w, dl = (np.concatenate(p) for p in zip(*parts, strict=True))
        assert all(p[0].dtype == np.int64 and p[3].dtype == np.float64 for p in parts)
        assert len(parts) == -(-e.size // 7) > 1
        with h5py.File(e.file, "r") as f:
            g = f["edges"][e.name]
            assert np.array_equal(src, src_gid[g["source_node_id"][()]])
            assert np.array_equal(trg, trg_gid[g["target_node_id"][()]])
            assert np.array_equal(tid, g["edge_type_id"][()])
            want_w = g["0/syn_weight"][()] * (g["0/nsyns"][()] if "nsyns" in g["0"] else 1)
            assert np.array_equal(w, want_w)
            if "delay" in g["0"]:
                assert np.array_equal(dl, g["0/delay"][()])
            else:
                assert np.all(dl == 1.0)  # ext_cells: the edge type's delay


def test_nest_is_imported_without_pandas_and_matplotlib() -> None:
    """import_nest hides PyNEST's optional pandas/matplotlib imports (60 MB, 1 s) and puts
    them back: both still import afterwards."""
    code = (
        "import sys\n"
        "from builder.simulators.nest.loader import import_nest\n"
        "nest = import_nest()\n"
        "assert 'pandas' not in sys.modules and 'matplotlib' not in sys.modules\n"
        "assert nest.Create('iaf_psc_exp', 2).get('V_m') == (-70.0, -70.0)\n"
        "import matplotlib, pandas\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def _synapse_models(d: Path, **run: object) -> tuple[dict[str, int], int]:
    """Load ``d`` (its run section updated with ``run``) in-process: connections per model,
    and the number of SONATA edges."""
    from builder.core.netconfig import read_config
    from builder.simulators.nest.loader import import_nest, load

    nest = import_nest()
    cfg = read_config(d)
    cfg.raw["run"].update(run)
    net = load(nest, cfg)
    conns = nest.GetConnections(synapse_model=None)
    models = [str(m) for m in conns.get("synapse_model")] if len(conns) else []
    return {m: models.count(m) for m in set(models)}, net.n_edges


def test_compact_synapses_give_the_same_spikes(tmp_path: Path) -> None:
    """static_synapse edges without a receptor port are connected as NEST's
    static_synapse_hpc (less memory), including those from spike generators, with the same
    spikes on 2 threads as static_synapse (``run.nest_compact_synapses: false``); edges onto
    receptor ports keep static_synapse."""
    d = _fresh(tmp_path, threads=2)
    compact, n_edges = _synapse_models(d)
    assert compact["static_synapse_hpc"] == n_edges > 0
    generators = compact["static_synapse"]  # the Poisson background keeps its model
    assert _synapse_models(d, nest_compact_synapses=False) == (
        {"static_synapse": n_edges + generators},
        n_edges,
    )
    assert nest_main([str(d), "-q"]) == 0
    spikes = (d / "output" / "spikes.h5").read_bytes()
    _edit(d / "simulation_config.json", lambda c: c["run"].update(nest_compact_synapses=False))
    assert nest_main([str(d), "-q"]) == 0
    assert (d / "output" / "spikes.h5").read_bytes() == spikes
    ports = write_point_network(
        tmp_path / "ports",
        model="aeif_cond_beta_multisynapse",
        params={"E_rev": [0.0, -80.0], "tau_rise": [0.2, 0.5], "tau_decay": [2.0, 5.0]},
        ports=True,
        exc_weight=1.0,
        inh_weight=4.0,
        ext_weight=0.5,
        bg_weight=0.5,
        tstop_ms=50.0,
    )
    assert "static_synapse_hpc" not in _synapse_models(ports)[0]


def test_compact_synapses_only_where_nest_can_address_the_targets() -> None:
    """NEST's _hpc synapses address at most 65,534 nodes per thread: cells are spread over
    the threads, every spike generator is on each; the config can turn them off."""
    from types import SimpleNamespace

    from builder.simulators.nest.loader import COMPACT_MAX_NODES, Network, use_compact_synapses

    def case(cells: int, generators: int, threads: int, **run: object) -> bool:
        net = Network({}, {"c": np.full(cells, "iaf_psc_exp"), "v": np.full(generators, "")})
        net.n_cells = cells
        cfg = SimpleNamespace(raw={"run": run}, threads=threads)
        return use_compact_synapses(cfg, net)  # type: ignore[arg-type]

    assert case(7717, 0, 2)
    assert not case(7717, 0, 2, nest_compact_synapses=False)
    assert case(2 * COMPACT_MAX_NODES - 2 * 100, 100, 2)
    assert not case(2 * COMPACT_MAX_NODES - 2 * 100, 101, 2)
    assert not case(COMPACT_MAX_NODES + 1, 0, 1) and case(COMPACT_MAX_NODES + 1, 0, 2)


def test_read_config_takes_fixed_and_variable_length_population_names(tmp_path: Path) -> None:
    """The edge files' ``node_population`` attributes (read with h5py's low-level API) as
    variable-length strings (ours) and as fixed-length bytes (other writers)."""
    from builder.core.netconfig import read_config

    d = _fresh(tmp_path)
    before = {(e.name, e.source, e.target, e.size) for e in read_config(d).edges}
    assert ("cells_cells", "cells", "cells") in {x[:3] for x in before}
    for path in (d / "network").glob("*_edges.h5"):
        with h5py.File(path, "r+") as f:
            for g in f["edges"].values():
                for key in ("source_node_id", "target_node_id"):
                    name = g[key].attrs["node_population"]
                    name = name.decode() if isinstance(name, bytes) else str(name)
                    del g[key].attrs["node_population"]
                    g[key].attrs["node_population"] = np.bytes_(name.encode())
    assert {(e.name, e.source, e.target, e.size) for e in read_config(d).edges} == before
