"""The NEURON runner end to end: ``run_network.py`` on a tiny network, in subprocesses.

Every simulation is a variant of the session's tiny network (``conftest.tiny_network``: the
default L5 cell, ~465 synapses, 0.3 s at dt 0.1 ms) copied into its own directory, with its
input spike files or synaptic-model JSONs rewritten, then run once (lazily, on first use) and
shared by the tests of this module. Dense inputs start at 50 ms, after the cell has settled
from ``v_init``; the input rasters come from fixed seeds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from builder.core.sonata import write_spikes

if importlib.util.find_spec("neuron") is None or importlib.util.find_spec("bmtk") is None:
    pytest.skip("NEURON and BMTK are needed to run networks", allow_module_level=True)

pytestmark = pytest.mark.neuron

DT_MS = 0.1
TSTOP_MS = 300.0  # conftest.TINY_OVERRIDES: time.stop=0.3 s
N_SAMPLES = round(TSTOP_MS / DT_MS)
INPUT_T0_MS = 50.0  # dense input rasters start here
EXC_RATE_HZ = 300.0  # "strong excitation": every excitatory input at this rate (100 Hz: 1 spike)
INH_RATE_HZ = 50.0
E_GABA_TEST_MV = -90.0  # see test_gaba_gbar_in_json_scales_the_ipsp
SYN_FILES = ("PN2PN.json", "PV2PN.json", "SOM2PN.json")
INPUT_POPS = ("exc_stim", "prox_inh_stim", "dist_inh_stim")
SUMMARY = re.compile(
    r"cells (\d+), synapses (\d+) on (\d+) point processes\s+output spikes (\d+)", re.S
)

# ------------------------------------------------------------------------------ variants
EMPTY = "empty"
DENSE = "dense"


@dataclass(frozen=True)
class Variant:
    """How a network differs from the tiny one: input rasters and JSON values.

    ``spikes`` maps an input population to ``EMPTY`` or ``(DENSE, rate_hz)`` (Poisson from
    ``INPUT_T0_MS`` to the end, one fixed seed per population); ``syn`` maps a synaptic-model
    file to values to set, a value ``("scale", k)`` multiplying the built file's value.
    """

    spikes: Mapping[str, Any]
    syn: Mapping[str, Mapping[str, Any]]


def _v(spikes: Mapping[str, Any] | None = None, syn: Mapping[str, Any] | None = None) -> Variant:
    return Variant(spikes or {}, syn or {})


_INH_DENSE = {
    "exc_stim": EMPTY,
    "prox_inh_stim": (DENSE, INH_RATE_HZ),
    "dist_inh_stim": (DENSE, INH_RATE_HZ),
}
VARIANTS: dict[str, Variant] = {
    "built": _v(),
    "no_input": _v({p: EMPTY for p in INPUT_POPS}),
    "release_off": _v(syn={f: {"P_0": 0.0} for f in SYN_FILES}),
    "strong_exc": _v({"exc_stim": (DENSE, EXC_RATE_HZ)}),
    "no_exc": _v({"exc_stim": EMPTY}),
    "inh_full": _v(
        _INH_DENSE, {f: {"e_GABA": E_GABA_TEST_MV} for f in ("PV2PN.json", "SOM2PN.json")}
    ),
    "inh_half": _v(
        _INH_DENSE,
        {
            f: {"e_GABA": E_GABA_TEST_MV, "gbar_GABA": ("scale", 0.5)}
            for f in ("PV2PN.json", "SOM2PN.json")
        },
    ),
}

#: run name -> (variant, extra command-line options, MPI ranks or None for a serial run)
RUNS: dict[str, tuple[str, tuple[str, ...], int | None]] = {
    "built": ("built", (), None),
    "no_input": ("no_input", (), None),
    "release_off": ("release_off", (), None),
    "strong_exc": ("strong_exc", (), None),
    "strong_exc_reference": ("strong_exc", ("--no-merge",), None),
    "strong_exc_bmtk_inputs": ("strong_exc", ("--bmtk-inputs",), None),
    "strong_exc_np2": ("strong_exc", (), 2),
    "no_exc": ("no_exc", (), None),
    "inh_full": ("inh_full", (), None),
    "inh_half": ("inh_half", (), None),
}

_SEEDS = {"exc_stim": 11, "prox_inh_stim": 12, "dist_inh_stim": 13}


def _n_nodes(net: Path, pop: str) -> int:
    with h5py.File(net / "network" / f"{pop}_nodes.h5", "r") as f:
        return int(f[f"nodes/{pop}/node_id"].shape[0])


def _poisson(
    n_nodes: int, rate_hz: float, t0_ms: float, t1_ms: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Homogeneous Poisson trains: (node ids, times in ms) for ``n_nodes`` inputs."""
    counts = rng.poisson(rate_hz * (t1_ms - t0_ms) / 1000.0, n_nodes)
    ids = np.repeat(np.arange(n_nodes, dtype=np.uint64), counts)
    return ids, rng.uniform(t0_ms, t1_ms, ids.size)


def make_variant(src: Path, dst: Path, variant: Variant) -> Path:
    """Copy the built network ``src`` to ``dst`` (no outputs) and apply ``variant``."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("output"))
    for pop, how in variant.spikes.items():
        if how == EMPTY:
            ids, times = np.zeros(0, dtype=np.uint64), np.zeros(0)
        else:
            _, rate_hz = how
            rng = np.random.default_rng(_SEEDS[pop])
            ids, times = _poisson(_n_nodes(dst, pop), rate_hz, INPUT_T0_MS, TSTOP_MS, rng)
        write_spikes(dst / f"{pop}_spikes.h5", pop, ids, times)
    for name, values in variant.syn.items():
        path = dst / "components" / "synaptic_models" / name
        params = json.loads(path.read_text())
        for key, value in values.items():
            if isinstance(value, tuple):
                params[key] = params[key] * value[1]
            else:
                params[key] = value
        path.write_text(json.dumps(params, indent=2))
    return dst


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Sim:
    """A finished run: its network directory and what the process did."""

    net: Path
    result: Any  # conftest.RunResult

    def spikes_ms(self) -> np.ndarray:
        """Somatic spike times (population 'biophysical'; none if the file lacks it)."""
        with h5py.File(self.net / "output" / "spikes.h5", "r") as f:
            grp = f.get("spikes/biophysical")
            return np.zeros(0) if grp is None else np.asarray(grp["timestamps"][()], dtype=float)

    def soma_v(self) -> np.ndarray:
        """The somatic membrane potential (mV), one sample per dt."""
        path = self.net / "output" / "v_soma.h5"
        assert path.is_file(), f"{path}: no membrane report written\n{self.result.describe()}"
        with h5py.File(path, "r") as f:
            return np.asarray(f["report/biophysical/data"][:, 0], dtype=float)

    def summary(self) -> tuple[int, int, int, int]:
        """(cells, synapses, point processes, output spikes) from the printed summary."""
        m = SUMMARY.search(self.result.stdout)
        assert m, f"no summary printed\n{self.result.describe()}"
        return tuple(int(g) for g in m.groups())  # type: ignore[return-value]


@pytest.fixture(scope="module")
def sims(
    tmp_path_factory: pytest.TempPathFactory, tiny_network: Path, run_network: Callable
) -> Callable[[str], Sim]:
    """``sims(name)``: the run ``RUNS[name]``, made and run on first use."""
    root = tmp_path_factory.mktemp("runs")
    done: dict[str, Sim] = {}

    def get(name: str) -> Sim:
        if name not in done:
            variant, options, np_ranks = RUNS[name]
            net = make_variant(tiny_network, root / name, VARIANTS[variant])
            res = run_network(net, *options, np=np_ranks)
            assert res.returncode == 0, res.describe()
            done[name] = Sim(net, res)
        return done[name]

    return get


def _after(spikes_ms: np.ndarray, t_ms: float) -> np.ndarray:
    return spikes_ms[spikes_ms > t_ms]


# ------------------------------------------------------------------------------ the cell
def test_cell_rests_without_input(sims):
    # no input at all: the Hay L5 cell settles near its resting potential (about -78 mV)
    # and stays there; a depolarisation block or a spike here means a broken cell model
    sim = sims("no_input")
    v = sim.soma_v()
    assert v.shape == (N_SAMPLES,)
    late = v[round(100 / DT_MS) :]
    assert sim.spikes_ms().size == 0
    assert -85.0 < late.mean() < -65.0, f"resting Vm {late.mean():.2f} mV"
    assert np.ptp(late) < 1.0, f"Vm drifts by {np.ptp(late):.2f} mV at rest"


# ------------------------------------------------------------------------------ 1. drive
def test_strong_excitation_makes_somatic_spikes(sims):
    sim = sims("strong_exc")
    spikes = sim.spikes_ms()
    assert _after(spikes, INPUT_T0_MS).size >= 2, f"spikes {spikes} under strong excitation"
    assert sim.summary()[3] == spikes.size


def test_without_excitation_no_somatic_spikes(sims):
    sim = sims("no_exc")
    with h5py.File(sim.net / "prox_inh_stim_spikes.h5", "r") as f:
        assert f["spikes/prox_inh_stim/timestamps"].shape[0] > 0  # inhibition still runs
    spikes = sim.spikes_ms()
    assert _after(spikes, INPUT_T0_MS).size == 0, f"spikes {spikes} without excitation"


# ------------------------------------------------------------------------------ 2. P_0
def test_release_probability_zero_silences_synapses(sims, tiny_network):
    with h5py.File(tiny_network / "exc_stim_spikes.h5", "r") as f:
        assert f["spikes/exc_stim/timestamps"].shape[0] > 100  # the input is there
    quiet = sims("no_input").soma_v()
    silenced = sims("release_off").soma_v()
    driven = sims("built").soma_v()
    # P_0 = 0 in every JSON: no release, so the trace is that of the cell without input
    assert np.max(np.abs(silenced - quiet)) < 1e-9
    # the same input with the built P_0 moves the soma by millivolts
    assert np.max(np.abs(driven - quiet)) > 1.0


# ------------------------------------------------------------------------------ 3. GABA
def test_gaba_gbar_in_json_scales_the_ipsp(sims):
    # Only inhibitory input, dense. Both runs set e_GABA to -90 mV in PV2PN/SOM2PN (itself a
    # JSON value that must reach the mechanism): the shipped -75 mV lies within ~3 mV of the
    # cell's rest, where the IPSP is a small shunting deflection of either sign. The mean
    # hyperpolarisation dv = g R (V - E) / (1 + g R) of a conductance g grows sublinearly in
    # g, so halving gbar_GABA must shrink it to between 1/2 and 1 of the full value (measured
    # 0.70); the bounds below leave margin for the cell's active currents.
    rest = sims("no_input").soma_v()
    window = slice(round(100 / DT_MS), None)
    full = float(np.mean(rest[window] - sims("inh_full").soma_v()[window]))
    half = float(np.mean(rest[window] - sims("inh_half").soma_v()[window]))
    assert full > 1.0, f"mean hyperpolarisation {full:.3f} mV with the JSON's gbar_GABA"
    assert 0.45 * full < half < 0.9 * full, f"half gbar: {half:.3f} mV vs full {full:.3f} mV"


# ------------------------------------------------------------------------------ 4. merging
def test_bulk_inputs_build_the_same_network_as_bmtk(sims):
    # our bulk construction of the spike inputs vs BMTK's edge-by-edge one: the same synapses,
    # weights, delays and release streams, hence bit-identical results
    ours, bmtk = sims("strong_exc"), sims("strong_exc_bmtk_inputs")
    assert ours.summary()[1:3] == bmtk.summary()[1:3]
    np.testing.assert_array_equal(ours.spikes_ms(), bmtk.spikes_ms())
    np.testing.assert_array_equal(ours.soma_v(), bmtk.soma_v())


def test_merged_point_processes_match_the_reference_mode(sims):
    merged, reference = sims("strong_exc"), sims("strong_exc_reference")
    _, n_syn, n_pp, _ = merged.summary()
    _, n_syn_ref, n_pp_ref, _ = reference.summary()
    assert n_syn == n_syn_ref and n_pp_ref == n_syn_ref
    assert n_pp < n_syn / 2, "synapses were not merged"
    s_merged, s_ref = merged.spikes_ms(), reference.spikes_ms()
    np.testing.assert_array_equal(s_merged, s_ref)
    v_merged, v_ref = merged.soma_v(), reference.soma_v()
    n = round(s_ref[0] / DT_MS) if s_ref.size else N_SAMPLES
    assert n > round(INPUT_T0_MS / DT_MS)  # the compared stretch includes driven input
    assert np.max(np.abs(v_merged[:n] - v_ref[:n])) < 1e-6


# ------------------------------------------------------------------------------ 5. MPI
@pytest.mark.mpi
def test_two_ranks_give_the_same_run_and_one_summary(sims):
    one, two = sims("strong_exc"), sims("strong_exc_np2")
    assert two.spikes_ms().size > 0
    np.testing.assert_array_equal(two.spikes_ms(), one.spikes_ms())
    assert np.max(np.abs(two.soma_v() - one.soma_v())) < 1e-9
    assert two.result.stdout.count("simulated ") == 1, two.result.describe()
    assert two.summary() == one.summary()


# ------------------------------------------------------------------------------ 6. failures
def _with_bad_key(src: Path, dst: Path) -> Path:
    net = make_variant(src, dst, _v())
    path = net / "components" / "synaptic_models" / "SOM2PN.json"
    params = json.loads(path.read_text())
    params["gbar_GABBA"] = 0.006
    path.write_text(json.dumps(params))
    return net


def test_serial_config_error_exits_2_with_a_message(tiny_network, run_network, tmp_path):
    res = run_network(_with_bad_key(tiny_network, tmp_path / "net"))
    assert res.returncode == 2, res.describe()
    assert res.stderr.startswith("run-network: error:"), res.describe()
    assert "SOM2PN.json" in res.stderr and "gbar_GABBA" in res.stderr
    assert "gbar_GABA'" in res.stderr  # the suggestion
    assert "Traceback" not in res.stderr


@pytest.mark.mpi
def test_error_on_every_rank_ends_the_mpi_job(tiny_network, run_network, tmp_path):
    res = run_network(_with_bad_key(tiny_network, tmp_path / "net"), np=2)
    assert res.returncode != 0, res.describe()
    assert res.wall_s < 60.0
    assert "SOM2PN.json" in res.stderr and "gbar_GABBA" in res.stderr, res.describe()
    assert "Traceback" not in res.stderr


@pytest.mark.mpi
def test_rank_0_failing_while_rank_1_waits_ends_the_job(tiny_network, run_network, tmp_path):
    # rank 0 compiles the NMODL while the other ranks wait at a barrier: a .mod file with a
    # syntax error fails rank 0 only (own cache directory: nothing is left in the user's)
    net = make_variant(tiny_network, tmp_path / "net", _v())
    bad = net / "components" / "mechanisms" / "modfiles" / "broken.mod"
    bad.write_text("NEURON {\n    SUFFIX broken\n    RANGE x\n}\nPARAMETER { x = }\n")
    env = {"L5NET_CACHE_DIR": str(tmp_path / "cache")}
    res = run_network(net, np=2, env=env)
    assert res.returncode != 0, res.describe()
    assert res.wall_s < 60.0
    assert "rank 0 of 2" in res.stderr and "broken.mod" in res.stderr, res.describe()


# A driver that makes rank 1 raise after NEURON is set up, while rank 0 goes on into the
# set-up's collective calls (allreduce); only the launcher's rank variable is used.
_RANK1_RAISES = """
import os, sys
import builder.simulators.neuron.runner as runner
if not hasattr(runner, "_bind"):
    sys.exit("runner._bind is gone: update the driver in tests/test_run.py")
rank = next((os.environ[k] for k in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK")
             if k in os.environ), None)
def fail(*args, **kwargs):
    raise RuntimeError("injected failure on rank 1")
if rank == "1":
    runner._bind = fail
sys.exit(runner.main(sys.argv[1:]))
"""


@pytest.mark.mpi
def test_rank_1_raising_in_the_middle_ends_the_job(sims, tiny_network, run_network, tmp_path):
    sims("built")  # the mechanisms are compiled: the wall time below is set-up plus abort
    net = make_variant(tiny_network, tmp_path / "net", _v())
    res = run_network(net, np=2, command=[sys.executable, "-c", _RANK1_RAISES])
    assert res.returncode != 0, res.describe()
    assert res.wall_s < 30.0
    assert "rank 1 of 2" in res.stderr and "injected failure on rank 1" in res.stderr
    assert not (net / "output" / "spikes.h5").exists()


# ------------------------------------------------------------------------------ 7. cwd
def test_runs_from_another_directory_with_a_relative_path(tiny_network, run_network, tmp_path):
    net = make_variant(tiny_network, tmp_path / "a" / "net", _v())
    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    res = run_network(os.path.relpath(net, elsewhere), cwd=elsewhere)
    assert res.returncode == 0, res.describe()
    assert (net / "output" / "spikes.h5").is_file()
    assert (net / "output" / "v_soma.h5").is_file()
    assert list(elsewhere.iterdir()) == []


def test_no_argument_uses_the_config_in_the_working_directory(tiny_network, run_network, tmp_path):
    net = make_variant(tiny_network, tmp_path / "net", _v())
    res = run_network(None, cwd=net)
    assert res.returncode == 0, res.describe()
    assert (net / "output" / "spikes.h5").is_file()
    assert str(net.resolve()) in res.stdout


def test_quiet_run_prints_nothing(tiny_network, run_network, tmp_path):
    net = make_variant(tiny_network, tmp_path / "net", _v())
    res = run_network(net, "-q")
    assert res.returncode == 0, res.describe()
    assert res.stdout == "", res.describe()
    assert (net / "output" / "spikes.h5").is_file()
    assert (net / "output" / "log.txt").stat().st_size > 0  # the log keeps everything


def test_no_argument_and_no_config_is_a_clear_error(run_network, tmp_path):
    res = run_network(None, cwd=tmp_path)
    assert res.returncode == 2, res.describe()
    assert "simulation_config.json" in res.stderr and "not found" in res.stderr
    assert "Traceback" not in res.stderr


# ------------------------------------------------------------------------------ 8. outputs
def test_spikes_file_is_sonata_sorted_by_time(sims):
    libsonata = pytest.importorskip("libsonata")
    sim = sims("strong_exc")
    reader = libsonata.SpikeReader(str(sim.net / "output" / "spikes.h5"))
    assert reader.get_population_names() == ["biophysical"]
    pop = reader["biophysical"]
    assert pop.sorting == "by_time"
    node_ids, times = (np.array(x) for x in zip(*pop.get(), strict=True))
    np.testing.assert_array_equal(node_ids, 0)
    np.testing.assert_array_equal(times, sim.spikes_ms())
    assert np.all(np.diff(times) > 0)


def test_silent_cell_still_has_its_spike_population(sims):
    libsonata = pytest.importorskip("libsonata")
    sim = sims("no_input")
    reader = libsonata.SpikeReader(str(sim.net / "output" / "spikes.h5"))
    assert reader.get_population_names() == ["biophysical"]
    assert reader["biophysical"].get() == []


def test_membrane_report_and_log(sims):
    sim = sims("strong_exc")
    with h5py.File(sim.net / "output" / "v_soma.h5", "r") as f:
        grp = f["report/biophysical"]
        assert grp["data"].shape == (N_SAMPLES, 1)  # tstop / dt samples, one soma element
        assert grp["data"].attrs["variable"] == "v"
        np.testing.assert_allclose(grp["mapping/time"][()], [0.0, TSTOP_MS, DT_MS])
        np.testing.assert_array_equal(grp["mapping/node_ids"][()], [0])
    v = sim.soma_v()
    assert v.max() > 0.0  # the spikes are in the trace
    log = sim.net / "output" / "log.txt"
    assert log.is_file() and log.stat().st_size > 0
