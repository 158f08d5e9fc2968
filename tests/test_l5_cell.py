"""The L5 cell on BMTK's channels (``L5PCtemplate`` in ``biophys_components/bmtk_channels``,
``params/L5NetParams_bmtk.json``, the option beside the default Hay-channel cell): morphology
totals, discretisation, Hay (2011) densities, behaviour.

The NEURON measurements run in one child process (one mechanism library per process) that
prints JSON; the tests then check the numbers.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cellprobe import check_apical_gradients, check_structure, run_probe

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.neuron

PROBE = textwrap.dedent(
    r"""
    import json, os, sys
    import numpy as np
    from builder.core.components import resolve_cell
    from builder.core.mechanisms import compiled_mechanisms
    from builder.recipes.l5_params import load_params

    os.chdir(sys.argv[1])  # the template must not depend on the working directory
    spec = resolve_cell(load_params(sys.argv[2]))
    lib = compiled_mechanisms(spec.mod_files)
    os.environ["NEURON_MODULE_OPTIONS"] = "-nogui"
    import neuron
    from neuron import h
    neuron.load_mechanisms(str(lib))
    h.load_file("stdrun.hoc"); h.load_file("import3d.hoc")
    h.load_file(str(spec.template_file))
    from builder.simulators.neuron.runner import _steady_state_init
    _steady_state_init(h)
    c = h.L5PCtemplate()
    out = structure(h, c)
    soma = c.soma[0](0.5)
    out["soma"] = {"NaTs": soma.gbar_NaTs, "K_T": soma.gbar_K_T, "Kv3_1": soma.gbar_Kv3_1,
                   "Ca_LVA": soma.gbar_Ca_LVA, "Ih": soma.gbar_Ih, "g_pas": soma.g_pas,
                   "decay": soma.decay_CaDynamics, "cm": soma.cm, "ek": soma.ek}
    probes = []
    for s in c.apical:
        for seg in s:
            probes.append((h.distance(seg), seg.gbar_Ih, seg.gbar_Ca_LVA, seg.gbar_Ca_HVA, seg.cm))
    out["apical"] = probes
    out["basal_Ih"] = sorted({round(seg.gbar_Ih, 12) for s in c.basal for seg in s})
    h.celsius = 34
    h.v_init = -80
    ic = h.IClamp(c.soma[0](0.5)); ic.delay = 100; ic.dur = 500
    v = h.Vector().record(c.soma[0](0.5)._ref_v); t = h.Vector().record(h._ref_t)
    res = {}
    for amp in (0.0, 0.5, 1.0, 2.0):
        ic.amp = amp
        h.dt = 0.1; h.tstop = 700; h.run()
        vv, tt = np.array(v), np.array(t)
        up = tt[1:][(vv[:-1] < -10) & (vv[1:] >= -10)]
        res[str(amp)] = {"spikes": int(up.size), "v_rest": float(vv[tt < 100].mean()),
                         "v_end": float(vv[-1]), "v_max_before": float(vv[tt < 100].max())}
    out["steps"] = res
    print("RESULT " + json.dumps(out))
    print("f-I (spikes in 0.5 s):", {a: r["spikes"] for a, r in res.items()}, file=sys.stderr)
    """
)


@pytest.fixture(scope="module")
def cell(tmp_path_factory) -> dict:
    where = tmp_path_factory.mktemp("elsewhere")
    args = [str(where), str(ROOT / "params" / "L5NetParams_bmtk.json")]
    return run_probe(PROBE, args, cwd=where, timeout=600)


def test_morphology_script_reproduces_the_committed_files():
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_l5_morphology.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_sections_lengths_and_axon_stubs(cell):
    check_structure(cell)


def test_hay_somatic_densities(cell):
    soma = cell["soma"]
    assert soma["NaTs"] == 2.04 and soma["K_T"] == 0.0812 and soma["Kv3_1"] == 0.693
    assert soma["Ca_LVA"] == 0.00343 and soma["Ih"] == 0.0002 and soma["g_pas"] == 3.38e-5
    assert soma["decay"] == 460 and soma["cm"] == 1 and soma["ek"] == -85


def test_apical_gradients_and_hot_zone(cell):
    check_apical_gradients(cell)


# The BMTK-channel option rests at -77 mV alone. On the first issue-13 refit (trunk 3.5 -> 1.8
# um) it rested at -83.8 mV: BMTK's K_T (the Allen-family variant: half-activation -47 mV, slope
# 29 mV, no junction shift; Hay's K_Tst half-activates at -10 mV) at Hay's somatic 0.0812 S/cm2
# is ~8x the somatic leak at rest and pulls the soma towards ek; the thicker trunk's apical Ih
# now offsets it.
def test_rests_and_fires_like_an_l5_cell(cell):
    steps = cell["steps"]
    rest = steps["0.0"]
    assert -80 < rest["v_rest"] < -74  # Hay's cell rests near -75..-78 mV
    assert rest["spikes"] == 0 and rest["v_max_before"] < -70  # no start-up transient spike
    assert abs(rest["v_end"] - rest["v_rest"]) < 1.0  # stays at rest
    counts = [steps[a]["spikes"] for a in ("0.5", "1.0", "2.0")]
    assert counts[1] >= 2  # fires repetitively at 1 nA over 0.5 s ...
    assert counts[0] <= counts[1] <= counts[2]  # ... more with more current
    assert counts[2] < 100  # and no depolarisation block / runaway
    assert all(steps[a]["v_end"] < -50 for a in steps)  # repolarises after the step
