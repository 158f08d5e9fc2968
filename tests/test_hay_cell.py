"""The default L5 cell's twin on the project's own Hay et al. (2011) channel NMODL
(``L5PCHaytemplate``, ``params/L5NetParams_hay.json``): the NMODL, which cells get it,
densities, and behaviour against Hay's cell.

The NEURON measurements run in child processes (one mechanism library per process) that print
JSON; the tests then check the numbers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
HAY_PARAMS = ROOT / "params" / "L5NetParams_hay.json"

pytestmark = pytest.mark.neuron

#: Known gaps (issue 13, open), measured with Hay's published apical NaTa_t (0.0213): on our
#: synthetic morphology one somatic AP sets off a somatic doublet with a hot-zone plateau (20 ms
#: above -30 mV at 786 um); the Ca it brings in opens SK_E2 for a long pause (somatic Ca decay
#: 460 ms). 1 s steps: 5, 9, 11 Hz at 0.6, 1.0, 1.9 nA (Hay's cell 8.5, 13.5, 19). BMTK's
#: channels with the same densities (the default L5PCtemplate) behave alike, so the gap is the
#: morphology's, not our NMODL's: with the soma at 30 um and the trunk at 0.6x its diameter
#: (3 -> 1.2 um) the same channels give 8, 12, 17 Hz, one spike per 5 ms step and a decaying
#: bAP, but still no BAC burst.
FI_GAP = "burst + SK pause: 5, 9, 11 Hz at 0.6, 1.0, 1.9 nA in 1 s (Hay's cell 8.5, 13.5, 19)"
CA_GAP = "a 1 nA EPSP-shaped current at 885 um gives no hot-zone Ca spike (0 ms above -30 mV)"
BAC_GAP = "the somatic 2 nA step alone gives 2 spikes and a 20 ms plateau; together also 2"

PROBE = textwrap.dedent(
    r"""
    import json, os, sys
    import numpy as np
    from builder.components import resolve_cell
    from builder.mechanisms import compiled_mechanisms
    from builder.params import load_params

    os.chdir(sys.argv[1])  # the template must not depend on the working directory
    spec = resolve_cell(load_params(sys.argv[2]))
    lib = compiled_mechanisms(spec.mod_files)
    os.environ["NEURON_MODULE_OPTIONS"] = "-nogui"
    import neuron
    from neuron import h
    neuron.load_mechanisms(str(lib))
    h.load_file("stdrun.hoc"); h.load_file("import3d.hoc")
    h.load_file(str(spec.template_file))
    from builder.nrn.runner import _steady_state_init
    _steady_state_init(h)
    out = {}
    c = h.L5PCHaytemplate()
    secs = {k: len(list(getattr(c, k))) for k in ("somatic", "basal", "apical", "axonal")}
    out["sections"] = secs
    out["nseg_rule"] = all(s.nseg == 1 + 2 * int(s.L / 10) for s in c.all)
    out["axon_L"] = [s.L for s in c.axonal]
    h.distance(0, c.soma[0](0))
    lengths = {"basal_dist": 0.0, "basal_prox": 0.0, "apic": 0.0}
    for s in c.basal:
        for seg in s:
            key = "basal_dist" if h.distance(seg) >= 50 else "basal_prox"
            lengths[key] += s.L / s.nseg
    lengths["apic"] = sum(s.L for s in c.apical)
    out["lengths"] = lengths
    out["max_apic_dist"] = max(h.distance(s(1)) for s in c.apical)
    soma = c.soma[0](0.5)
    out["soma"] = {"NaTa_t": soma.gNaTa_tbar_NaTa_t, "K_Tst": soma.gK_Tstbar_K_Tst,
                   "SKv3_1": soma.gSKv3_1bar_SKv3_1, "Ca_LVAst": soma.gCa_LVAstbar_Ca_LVAst,
                   "Ih": soma.gIhbar_Ih, "g_pas": soma.g_pas, "decay": soma.decay_CaDynamics_E2,
                   "cm": soma.cm, "ek": soma.ek}
    probes = []
    for s in c.apical:
        for seg in s:
            probes.append((h.distance(seg), seg.gIhbar_Ih, seg.gCa_LVAstbar_Ca_LVAst,
                           seg.gCa_HVAbar_Ca_HVA, seg.cm))
    out["apical"] = probes
    out["basal_Ih"] = sorted({round(seg.gIhbar_Ih, 12) for s in c.basal for seg in s})
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
    r = subprocess.run(
        [sys.executable, "-c", PROBE, str(where), str(HAY_PARAMS)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=where,
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_sections_and_axon_stubs(cell):
    s = cell["sections"]
    assert s["somatic"] == 1 and s["basal"] >= 8 and s["apical"] >= 20
    assert cell["axon_L"] == pytest.approx([30.0, 30.0])
    assert cell["nseg_rule"]


def test_dendritic_lengths_match_the_legacy_params(cell):
    # SPEC section 2: 4649 / 483 / 7440 um
    assert cell["lengths"] == pytest.approx(
        {"basal_dist": 4649, "basal_prox": 483, "apic": 7440}, rel=0.03
    )


def test_hay_somatic_densities(cell):
    soma = cell["soma"]
    assert soma["NaTa_t"] == 2.04 and soma["K_Tst"] == 0.0812 and soma["SKv3_1"] == 0.693
    assert soma["Ca_LVAst"] == 0.00343 and soma["Ih"] == 0.0002 and soma["g_pas"] == 3.38e-5
    assert soma["decay"] == 460 and soma["cm"] == 1 and soma["ek"] == -85


def test_apical_gradients_and_hot_zone(cell):
    dmax = cell["max_apic_dist"]
    for dist, ih, lva, hva, cm in cell["apical"]:
        assert ih == pytest.approx(0.0002 * (-0.8696 + 2.0870 * math.exp(3.6161 * dist / dmax)))
        hot = 685 <= dist <= 885
        assert lva == pytest.approx(0.0187 if hot else 0.000187)
        assert hva == pytest.approx(0.000555 if hot else 0.0000555)
        assert cm == 2
    assert any(685 <= d <= 885 for d, *_ in cell["apical"])  # the trunk reaches the hot zone
    assert cell["basal_Ih"] == [0.0002]


@pytest.mark.xfail(strict=True, reason=FI_GAP)
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


# ------------------------------------------------------------------ our Hay channel NMODL
HAY_CHANNELS = {
    "NaTa_t", "Nap_Et2", "K_Pst", "K_Tst", "SKv3_1", "SK_E2", "Ca_HVA", "Ca_LVAst", "Ih", "Im",
    "CaDynamics_E2",
}  # fmt: skip


HAY_DIR = ROOT / "biophys_components" / "hay"


def _hay_mods() -> list[Path]:
    return sorted((HAY_DIR / "mechanisms" / "modfiles").glob("*.mod"))


def test_our_channel_nmodl_is_coreneuron_ready():
    from builder.components import mechanism_names

    files = _hay_mods()
    assert {n for f in files for n in mechanism_names(f)} == HAY_CHANNELS
    for f in files:
        text = f.read_text()
        assert "VERBATIM" not in text.upper(), f
        assert "POINTER" not in text, f  # nothing CoreNEURON cannot transfer
        assert f.stem == mechanism_names(f)[0]  # one mechanism per file, named after it


def test_only_the_hay_cell_gets_our_channels():
    from builder.components import bmtk_components_dir, resolve_cell
    from builder.params import load_params

    bmtk = bmtk_components_dir() / "mechanisms" / "modfiles"
    clashes = {bmtk / n for n in ("Ca_HVA.mod", "Ih.mod", "Im.mod")}  # same names as ours
    ours = {p.resolve() for p in _hay_mods()}
    hay = resolve_cell(load_params(HAY_PARAMS))
    assert hay.template_name == "L5PCHaytemplate"
    assert hay.template_file == (HAY_DIR / "templates" / "L5PCHaytemplate.hoc").resolve()
    assert ours <= set(hay.mod_files) and not clashes & set(hay.mod_files)
    # the default cell stays on BMTK's channels (its template sets gbar_NaTs, gbar_Ca_HVA, ...)
    # and its templates folder holds no template that would need ours (BMTK loads every .hoc
    # file of the folder)
    for params in ("L5NetParams.json", "L2-3NetParams.json"):
        mods = set(resolve_cell(load_params(ROOT / "params" / params)).mod_files)
        assert not ours & mods, params
        assert clashes | {bmtk / "NaTs.mod", bmtk / "SK.mod"} <= mods, params
    default_templates = ROOT / "biophys_components" / "templates"
    assert [p.name for p in default_templates.glob("*.hoc")] == ["L5PCtemplate.hoc"]


# ------------------------------------------------------------------ Hay et al. (2011) behaviour
#: the legacy project's Hay cell, 1 s steps at 34 degC (Hz by nA); targets within 25 %
LEGACY_FI_HZ = {0.6: 8.5, 1.0: 13.5, 1.9: 19.0}

BEHAVIOUR = textwrap.dedent(
    r"""
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import hay_validation as hv
    h, cell = hv.load_cell(sys.argv[2])
    out = {"passive": hv.passive(h, cell)}
    out["fi"] = {str(k): v for k, v in hv.fi_curve(h, cell, [0.3, 0.5, 0.6, 1.0, 1.9],
                                                   step_ms=500).items()}
    b = hv.bac(h, cell)
    out["bac"] = {k: {"spikes": b[k]["spikes"], "plateau_ms": b[k]["plateau_ms"]}
                  for k in ("soma", "dend", "both")}
    p = hv.bap(h, cell, soma_nA=b["soma_nA"])
    out["bap"] = {"dist": p["dist_um"], "amp": p["amp_mV"],
                  "ca_plateau_ms": p["ca_plateau_ms"], "ca_peak_mV": p["ca_peak_mV"]}
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def behaviour(tmp_path_factory) -> dict:
    where = tmp_path_factory.mktemp("hay")
    r = subprocess.run(
        [sys.executable, "-c", BEHAVIOUR, str(ROOT / "scripts"), str(HAY_PARAMS)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=where,
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.slow
def test_rest_and_input_resistance(behaviour):
    p = behaviour["passive"]
    assert p["rest_mV"] == pytest.approx(-77.1, abs=1.0)
    assert p["rin_MOhm"] == pytest.approx(28.8, rel=0.1)


@pytest.mark.slow
def test_threshold_between_0_3_and_0_5_nA(behaviour):
    fi = behaviour["fi"]
    assert fi["0.3"] == 0 and fi["0.5"] > 0, fi


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=FI_GAP)
def test_fi_rises_with_current(behaviour):
    rates = [behaviour["fi"][a] for a in ("0.5", "0.6", "1.0", "1.9")]
    assert all(b > a for a, b in zip(rates, rates[1:], strict=False)), rates


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=FI_GAP)
def test_fi_within_25_percent_of_hays_cell(behaviour):
    for amp, ref in LEGACY_FI_HZ.items():
        assert behaviour["fi"][str(amp)] == pytest.approx(ref, rel=0.25), (amp, behaviour["fi"])


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=BAC_GAP)
def test_bac_firing(behaviour):
    b = behaviour["bac"]
    assert b["dend"]["spikes"] == 0  # the EPSP alone does not fire the soma
    assert b["both"]["spikes"] >= b["soma"]["spikes"] + 2, b  # together: a burst ...
    assert b["both"]["plateau_ms"] >= 10 > b["soma"]["plateau_ms"], b  # ... on a Ca plateau


@pytest.mark.slow
def test_backpropagation_decays(behaviour):
    d = np.array(behaviour["bap"]["dist"])
    a = np.array(behaviour["bap"]["amp"])
    near, mid, far = a[d < 100].mean(), a[(d > 400) & (d < 600)].mean(), a[d > 900].mean()
    assert near > mid > far, (near, mid, far)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=CA_GAP)
def test_distal_input_fires_a_ca_spike(behaviour):
    assert behaviour["bap"]["ca_plateau_ms"] >= 10  # a regenerative hot-zone Ca spike
