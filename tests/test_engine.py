"""The simulation engines: CoreNEURON gives the NEURON engine's spikes and reports.

One default L5 network (1 s of input) is run by ``run-network`` with ``--engine neuron`` and
``--engine coreneuron``; spike times must agree to 1e-9 ms and the soma report to 1e-4 mV.
Two threads (the cell cut by multisplit) give one thread's spikes and soma report; the cut
balances the pieces. The NEURON engine's chunked run (``psolve``, reports recorded and
replayed) equals BMTK's own per-step loop bit for bit. Bad engine settings and a mechanism
CoreNEURON cannot compile are clear errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import DEFAULT_PARAMS, ROOT

from builder.core import mechanisms
from builder.core.errors import ComponentError
from builder.core.mechanisms import (
    CORENEURON_CXXFLAGS,
    compiled_mechanisms,
    compiler_accepts,
    mechanisms_key,
    optimization_flags,
)
from builder.simulators.neuron.engine import plan_split

pytestmark = pytest.mark.neuron

STOP_S = 1.0
SEED = 7


@pytest.fixture(scope="module")
def default_network(tmp_path_factory, sim_env) -> Path:
    out = tmp_path_factory.mktemp("engine") / "net"
    cmd = [sys.executable, str(ROOT / "build_network.py"), str(DEFAULT_PARAMS), str(SEED)]
    cmd += ["-o", str(out), "-q", "--set", f"time.stop={STOP_S}"]
    proc = subprocess.run(cmd, env=sim_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def engine_runs(default_network, run_network, tmp_path_factory) -> dict[str, Path]:
    runs = {}
    root = tmp_path_factory.mktemp("engine_runs")
    for name, options in (
        ("neuron", ("--engine", "neuron")),
        ("coreneuron", ("--engine", "coreneuron")),
    ):
        net = root / name
        shutil.copytree(default_network, net)
        res = run_network(net, *options, timeout_s=900)
        assert res.returncode == 0, res.describe()
        runs[name] = net
    return runs


def _spikes(net: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(net / "output" / "spikes.h5", "r") as f:
        pops = list(f["spikes"])
        t = np.concatenate([f["spikes"][p]["timestamps"][()] for p in pops])
        ids = np.concatenate([f["spikes"][p]["node_ids"][()] for p in pops])
    order = np.lexsort((ids, t))
    return t[order], ids[order]


@pytest.mark.slow
def test_coreneuron_spikes_equal_the_neuron_engine(engine_runs):
    t_n, id_n = _spikes(engine_runs["neuron"])
    t_c, id_c = _spikes(engine_runs["coreneuron"])
    assert len(t_n) > 3  # the default network fires: the comparison means something
    assert len(t_c) == len(t_n)
    np.testing.assert_array_equal(id_c, id_n)
    np.testing.assert_allclose(t_c, t_n, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_coreneuron_soma_report_equals_the_neuron_engine(engine_runs):
    def report(net: Path) -> np.ndarray:
        with h5py.File(net / "output" / "v_soma.h5", "r") as f:
            pop = next(iter(f["report"]))
            return f["report"][pop]["data"][()]

    v_n, v_c = report(engine_runs["neuron"]), report(engine_runs["coreneuron"])
    assert v_n.shape == v_c.shape and v_n.shape[0] == round(STOP_S * 1e4)
    assert v_n.max() > 0  # includes action potentials
    # float32 reports: one unit in the last place is 1.9e-6 mV at +31 mV; the Hay channels'
    # exp() in CoreNEURON's generated code may round one step differently
    np.testing.assert_allclose(v_c, v_n, rtol=0, atol=1e-4)


def _with_run(net: Path, dest: Path, **run_keys) -> Path:
    shutil.copytree(net, dest)
    cfg = dest / "simulation_config.json"
    raw = json.loads(cfg.read_text())
    raw["run"].update(run_keys)
    cfg.write_text(json.dumps(raw, indent=2))
    return dest


@pytest.mark.parametrize(
    "keys,words",
    [
        ({"engine": "gpu"}, ["run.engine", "'gpu'", "coreneuron"]),
        ({"n_thread": 0}, ["run.n_thread", "0"]),
    ],
)
def test_bad_engine_settings_exit_2(tiny_network, run_network, tmp_path, keys, words):
    net = _with_run(tiny_network, tmp_path / "net", **keys)
    res = run_network(net)
    assert res.returncode == 2, res.describe()
    assert "Traceback" not in res.stderr
    assert str(net / "simulation_config.json") in res.stderr
    for word in words:
        assert word in res.stderr
    assert not (net / "output").exists()


def test_engine_option_overrides_the_config(tiny_network, run_network, tmp_path):
    # a config asking for an unknown engine is not read when the command line names one
    net = _with_run(tiny_network, tmp_path / "net", engine="gpu")
    res = run_network(net, "--engine", "neuron")
    assert res.returncode == 0, res.describe()


def _soma_report(net: Path) -> np.ndarray:
    with h5py.File(net / "output" / "v_soma.h5", "r") as f:
        pop = next(iter(f["report"]))
        return f["report"][pop]["data"][()]


def test_two_threads_equal_one_thread(tiny_network, run_network, tmp_path):
    # The cell is cut in two by multisplit (one piece per thread) and the inputs (delay 0.1 ms
    # = dt, below the two steps threads need) are played early into longer delays; inputs at
    # t = 0 (the tiny network has some) go through NetCon.event. Same spikes, same soma trace
    # up to round-off (float32 report: 1e-4 mV is ~50 ulp at -70 mV).
    one = tmp_path / "one"
    shutil.copytree(tiny_network, one)
    two = _with_run(tiny_network, tmp_path / "two", n_thread=2)  # the config's run.n_thread
    with h5py.File(one / "exc_stim_spikes.h5", "r") as f:
        pop = next(iter(f["spikes"]))
        assert f["spikes"][pop]["timestamps"][()].min() < 0.1  # the early path is exercised
    for net in (one, two):
        res = run_network(net)
        assert res.returncode == 0, res.describe()
    t1, id1 = _spikes(one)
    t2, id2 = _spikes(two)
    np.testing.assert_array_equal(id2, id1)
    np.testing.assert_allclose(t2, t1, rtol=0, atol=1e-9)
    v1, v2 = _soma_report(one), _soma_report(two)
    assert v1.shape == v2.shape and np.ptp(v1) > 1.0  # the inputs move the soma
    np.testing.assert_allclose(v2, v1, rtol=0, atol=1e-4)


# run-network with BMTK's own loop (fadvance and its per-step callback) instead of the chunks
_BMTK_LOOP = """
import sys
import builder.simulators.neuron.engine as engine
engine._replayable = lambda sim: False
import builder.simulators.neuron.runner as runner
sys.exit(runner.main(sys.argv[1:]))
"""


def test_chunked_run_equals_bmtks_loop(tiny_network, run_network, tmp_path):
    # The NEURON engine runs psolve in chunks with the reports recorded and replayed; BMTK's
    # sim.run samples them in its per-step callback: same spikes, same soma report, bit for bit.
    chunks, loop = tmp_path / "chunks", tmp_path / "loop"
    for net, command in ((chunks, None), (loop, [sys.executable, "-c", _BMTK_LOOP])):
        shutil.copytree(tiny_network, net)
        res = run_network(net, command=command)
        assert res.returncode == 0, res.describe()
    t1, id1 = _spikes(loop)
    t2, id2 = _spikes(chunks)
    np.testing.assert_array_equal(id2, id1)
    np.testing.assert_array_equal(t2, t1)
    v1, v2 = _soma_report(loop), _soma_report(chunks)
    assert np.ptp(v1) > 1.0
    np.testing.assert_array_equal(v2, v1)


class _Seg:
    def __init__(self, sec, x=1.0):
        self.sec, self.x = sec, x


class _Sec:
    """A section as plan_split reads it: name, parent segment, segments."""

    def __init__(self, name, nseg, parent=None):
        self._name, self.nseg, self._parent = name, nseg, parent

    def name(self):
        return self._name

    def parentseg(self):
        return None if self._parent is None else _Seg(self._parent)


def test_plan_split_balances_the_pieces():
    # soma(1) - trunk(10) - {tuft_a(30), tuft_b(20)}; basal(19) on the soma: total 80
    soma = _Sec("soma", 1)
    trunk = _Sec("trunk", 10, soma)
    secs = [
        soma,
        trunk,
        _Sec("tuft_a", 30, trunk),
        _Sec("tuft_b", 20, trunk),
        _Sec("basal", 19, soma),
    ]
    # two pieces: tuft_a's subtree (30) is closest to 40 (trunk's is 60, basal's 19)
    cut, costs = plan_split(secs, 2, cost=lambda s: s.nseg)
    assert [s.name() for s in cut] == ["tuft_a"] and costs == [50.0, 30.0]
    # three: tuft_a, then trunk (10 + tuft_b 20 = 30 in the remainder) for a target of 26.7
    cut, costs = plan_split(secs, 3, cost=lambda s: s.nseg)
    assert [s.name() for s in cut] == ["tuft_a", "trunk"] and costs == [20.0, 30.0, 30.0]
    assert plan_split(secs[:1], 4, cost=lambda s: s.nseg) == ([], [1.0])  # nothing to cut


LEGACY_RANDOM = """
NEURON { POINT_PROCESS LegacyNoise  RANGE x  POINTER donotuse }
ASSIGNED { x donotuse }
INITIAL { x = pick() }
FUNCTION pick() {
VERBATIM
    _lpick = nrn_random_pick(reinterpret_cast<Rand*>(_p_donotuse));
ENDVERBATIM
}
"""


def test_coreneuron_compile_error_names_the_file(tmp_path):
    mod = tmp_path / "LegacyNoise.mod"
    mod.write_text(LEGACY_RANDOM)
    assert mechanisms_key([mod], coreneuron=True) != mechanisms_key([mod])
    with pytest.raises(ComponentError) as info:
        compiled_mechanisms([mod], cache_dir=tmp_path / "cache", coreneuron=True)
    text = str(info.value)
    assert "did not compile for CoreNEURON" in text or "nrnivmodl failed" in text
    assert str(mod) in text or "LegacyNoise.mod" in text
    assert "--engine neuron" in text or "nrnivmodl failed" in text


# ------------------------------------------------------------------ compiler flags
# stands in for nrnivmodl: records its arguments; refuses any build with extra flags (a
# compiler that accepted them on the probe but fails on the real code)
FLAKY_NRNIVMODL = """#!/bin/sh
echo "$*" >> "{log}"
case "$*" in *-incflags*) echo "g++: error: unrecognized command-line option"; exit 1;; esac
mkdir -p x86_64 && : > x86_64/libnrnmech.so && : > x86_64/libcorenrnmech.so
"""


def _flaky_tool(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "calls.log"
    tool = tmp_path / "bin" / "nrnivmodl"
    tool.parent.mkdir(parents=True)
    tool.write_text(FLAKY_NRNIVMODL.format(log=log))
    tool.chmod(0o755)
    return tool, log


def test_refused_compiler_flags_are_left_out(monkeypatch):
    # the real C++ compiler (nrnivmodl needs one): a made-up flag fails the probe, -O3 passes
    monkeypatch.setenv("L5NET_MECH_CXXFLAGS", "-O3 -fl5net-no-such-flag")
    assert compiler_accepts("-O3") and not compiler_accepts("-fl5net-no-such-flag")
    assert optimization_flags() == ("-O3",) == optimization_flags(coreneuron=True)
    monkeypatch.setenv("L5NET_MECH_CXXFLAGS", "")
    assert optimization_flags(coreneuron=True) == ()
    monkeypatch.delenv("L5NET_MECH_CXXFLAGS")
    assert optimization_flags() == ()  # NEURON builds: nrnivmodl's own -O2 only
    assert optimization_flags(coreneuron=True) == tuple(
        f for f in CORENEURON_CXXFLAGS if compiler_accepts(f)
    )


def test_flags_the_build_refuses_fall_back_to_none(monkeypatch, tmp_path):
    tool, log = _flaky_tool(tmp_path)
    monkeypatch.setattr(mechanisms, "nrnivmodl_path", lambda: tool)
    monkeypatch.setattr(mechanisms, "compiler_accepts", lambda flag, cxx=None: True)
    monkeypatch.delenv("L5NET_MECH_CXXFLAGS", raising=False)
    mod = tmp_path / "src" / "a.mod"
    mod.parent.mkdir()
    mod.write_text("NEURON { SUFFIX a }\n")
    built = compiled_mechanisms([mod], cache_dir=tmp_path / "cache", coreneuron=True)
    calls = log.read_text().splitlines()
    assert calls == [
        f"-coreneuron -incflags {' '.join(CORENEURON_CXXFLAGS)} mod",
        "-coreneuron mod",
    ]
    assert (built / "cxxflags.txt").read_text() == "\n"  # built without the flags
    assert built.name == mechanisms_key(
        [mod], nrnivmodl=tool, coreneuron=True, flags=CORENEURON_CXXFLAGS
    )
    # the fallback is cached under the flags' key: the next call compiles nothing
    assert compiled_mechanisms([mod], cache_dir=tmp_path / "cache", coreneuron=True) == built
    assert len(log.read_text().splitlines()) == 2
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".build-")]


def test_coreneuron_flags_change_no_value():
    # speed only: no flag that lets the compiler reassociate, drop NaN/Inf handling or replace
    # a division (CoreNEURON must keep giving the NEURON engine's numbers)
    unsafe = {"-Ofast", "-ffast-math", "-funsafe-math-optimizations", "-ffinite-math-only"}
    unsafe |= {"-fassociative-math", "-freciprocal-math", "-fno-signed-zeros"}
    assert not unsafe & set(CORENEURON_CXXFLAGS)
    assert {"-fno-math-errno", "-fno-trapping-math"} <= set(CORENEURON_CXXFLAGS)


def test_native_builds_are_keyed_by_cpu(monkeypatch, tmp_path):
    mod = tmp_path / "a.mod"
    mod.write_text("NEURON { SUFFIX a }\n")
    tool = tmp_path / "nrnivmodl"
    plain = mechanisms_key([mod], nrnivmodl=tool, coreneuron=True)
    o3 = mechanisms_key([mod], nrnivmodl=tool, coreneuron=True, flags=("-O3",))
    native = mechanisms_key([mod], nrnivmodl=tool, coreneuron=True, flags=CORENEURON_CXXFLAGS)
    assert len({plain, o3, native}) == 3
    monkeypatch.setattr(mechanisms, "_cpu_model", lambda: "another CPU")
    assert mechanisms_key([mod], nrnivmodl=tool, coreneuron=True, flags=("-O3",)) == o3
    other = mechanisms_key([mod], nrnivmodl=tool, coreneuron=True, flags=CORENEURON_CXXFLAGS)
    assert other != native  # a shared cache never hands a native build to another CPU


# ------------------------------------------------------------------ conductances in the NMODL
# Our mechanisms hand NEURON and CoreNEURON their conductance di/dv (CONDUCTANCE statements), so
# each BREAKPOINT runs once per step instead of twice for a finite difference. Measured in one
# NEURON process (one mechanism library per process): the channels' and int2pyr's currents are
# linear in v and their named conductance is the slope; pyr2pyr (nonlinear through the Mg
# block) names the finite difference over 0.001 mV that NEURON would take, bit for bit.
CONDUCTANCE_SCRIPT = """
import json, sys
from pathlib import Path
import neuron
from neuron import h
from builder.core.mechanisms import compiled_mechanisms

neuron.load_mechanisms(str(compiled_mechanisms(sorted(Path(sys.argv[1]).glob("*.mod")))))
h.load_file("stdrun.hoc")
# channel -> (its conductance variable, the segment's current it adds to)
CHANNELS = {
    "NaTa_t": ("gNaTa_t", "ina"), "Nap_Et2": ("gNap_Et2", "ina"), "Ca_HVA": ("gCa_HVA", "ica"),
    "Ca_LVAst": ("gCa_LVAst", "ica"), "Im": ("gIm", "ik"), "K_Pst": ("gK_Pst", "ik"),
    "K_Tst": ("gK_Tst", "ik"), "SK_E2": ("gSK_E2", "ik"), "SKv3_1": ("gSKv3_1", "ik"),
    "Ih": ("gIh", "ihcn_Ih"),
}
secs = {}
for name in CHANNELS:
    sec = h.Section(name=name)
    sec.L = sec.diam = 20
    sec.insert(name)
    setattr(sec(0.5), f"{CHANNELS[name][0]}bar_{name}", 0.01)
    if name == "SK_E2":
        sec.insert("CaDynamics_E2")
    secs[name] = sec
syn_sec = h.Section(name="syn")
syn_sec.L = syn_sec.diam = 20
exc, inh = h.pyr2pyr(syn_sec(0.5)), h.int2pyr(syn_sec(0.5))
exc.P_0 = inh.P_0 = 1  # every spike releases: no random stream needed
ncs = [h.NetCon(None, pp) for pp in (exc, inh)]
for nc in ncs:
    nc.weight[0] = 1
h.dt = 0.025
h.finitialize(-65)
for nc in ncs:
    nc.event(0.2)
h.continuerun(2.0)
out = []
for v in (-80.0, -61.3, -40.5, -3.25, 20.0):
    row = {"v": v}
    for dv in (0.0, 0.001):
        for sec in list(secs.values()) + [syn_sec]:
            sec(0.5).v = v + dv
        h.fcurrent()
        for name, (gname, cur) in CHANNELS.items():
            seg = secs[name](0.5)
            row[f"{name}_i{dv}"] = getattr(seg, cur)
            row[f"{name}_g"] = getattr(seg, f"{gname}_{name}")
        row[f"exc_i{dv}"], row[f"inh_i{dv}"] = exc.i, inh.i
        if dv == 0.0:
            row["exc_g"], row["inh_g"] = exc.g_syn, inh.g_GABA
    out.append(row)
print("rows " + json.dumps(out))
"""


def test_mechanisms_name_their_conductance(sim_env, tmp_path):
    script = tmp_path / "conductance.py"
    script.write_text(CONDUCTANCE_SCRIPT)
    mod_dir = ROOT / "biophys_components" / "mechanisms" / "modfiles"
    proc = subprocess.run(
        [sys.executable, str(script), str(mod_dir)],
        env=sim_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = [x for x in proc.stdout.splitlines() if x.startswith("rows ")][-1]
    rows = json.loads(line[len("rows ") :])
    names = ("NaTa_t", "Nap_Et2", "Ca_HVA", "Ca_LVAst", "Im", "K_Pst", "K_Tst", "SK_E2")
    for row in rows:
        for name in (*names, "SKv3_1", "Ih", "inh"):
            g = row[f"{name}_g"]
            slope = (row[f"{name}_i0.001"] - row[f"{name}_i0.0"]) / 0.001
            assert g > 0, (name, row["v"])
            # a linear current: the finite difference is the conductance up to its round-off
            assert slope == pytest.approx(g, rel=1e-7), (name, row["v"])
        # pyr2pyr: NEURON's own finite difference, same operations, the same number, which
        # the Mg block's slope sets apart from the chord conductance i / (v - e) (e = 0 mV)
        exc = (row["exc_i0.001"] - row["exc_i0.0"]) / 0.001
        assert row["exc_g"] == exc, row["v"]
        assert row["exc_g"] != pytest.approx(row["exc_i0.0"] / (row["v"] - 0.0), rel=1e-3)


def test_a_module_is_replayed_by_its_declared_role_not_its_class_name():
    # a user's BMTK module that happens to be called "Progress" needs the per-step loop; ours
    # declare their chunked-run role (engine.CHUNKED_ROLE)
    code = """
import types
from bmtk.simulator.bionet.modules.sim_module import SimulatorMod
from builder.simulators.neuron import engine
class Progress(SimulatorMod):
    pass
class Ours(SimulatorMod):
    chunked_role = "progress"
sim = types.SimpleNamespace(_sim_mods=[Progress(), Ours()])
print(engine._unreplayable(sim))
sim._sim_mods = [Ours()]
print(engine._unreplayable(sim), engine._replayable(sim))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("[")]  # BMTK logs to stdout
    assert lines == ["['Progress']", "[] True"]
