"""The default L5 cell (``L5PCtemplate`` in ``biophys_components/templates``,
``params/L5NetParams.json``) on the project's own Hay et al. (2011) channel NMODL: the NMODL,
which cells get it, densities, and behaviour against Hay's cell.

All NEURON measurements run once, in one child process (one mechanism library per process)
that prints JSON; the tests then check the numbers. The protocols are those of
``scripts/hay_validation.py`` (the full report: 1 s steps, dt 0.025 ms, figures), shortened
here where the quantity allows: rest, input resistance and the F-I curve (1 s steps, as the
legacy rates were measured: shorter steps miss the adaptation and read high) at the network's dt
of 0.1 ms, the millisecond-scale BAC and bAP protocols at dt 0.025 ms (the report's dt; at 0.05 ms
backward Euler under-resolves the dendritic ignition: issue 13, see test_bac_firing_converged).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cellprobe import check_apical_gradients, check_structure, run_probe

ROOT = Path(__file__).resolve().parent.parent
HAY_PARAMS = ROOT / "params" / "L5NetParams.json"  # the default cell
BMTK_PARAMS = ROOT / "params" / "L5NetParams_bmtk.json"  # the BMTK-channel option

pytestmark = pytest.mark.neuron

#: the legacy project's Hay cell, 1 s steps at 34 degC (Hz by nA); targets within 25 %
LEGACY_FI_HZ = {0.6: 8.5, 1.0: 13.5, 1.9: 19.0}
STEP_MS = 1000.0
FI_DT_MS = 0.1  # the network's dt: rest, input resistance, F-I
DT_MS = 0.025  # BAC, bAP (the report's dt)
BAC_SOMA_NA = 1.9  # Hay's somatic 5 ms step
BAC_DEND_NA = 0.5  # Hay's EPSP-shaped current at ~620 um

PROBE = textwrap.dedent(
    r"""
    import json, os, sys
    import numpy as np
    os.chdir(sys.argv[1])  # the template must not depend on the working directory
    sys.path.insert(0, sys.argv[2])
    import hay_validation as hv
    h, c = hv.load_cell(sys.argv[3])
    fi_dt, dt, step_ms = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    soma_nA, dend_nA = float(sys.argv[7]), float(sys.argv[8])
    out = structure(h, c)
    out["template"] = c.hname()
    soma = c.soma[0](0.5)
    out["soma"] = {"NaTa_t": soma.gNaTa_tbar_NaTa_t, "K_Tst": soma.gK_Tstbar_K_Tst,
                   "SKv3_1": soma.gSKv3_1bar_SKv3_1, "Ca_LVAst": soma.gCa_LVAstbar_Ca_LVAst,
                   "Ih": soma.gIhbar_Ih, "g_pas": soma.g_pas, "decay": soma.decay_CaDynamics_E2,
                   "cm": soma.cm, "ek": soma.ek}
    out["apical"] = [(h.distance(seg), seg.gIhbar_Ih, seg.gCa_LVAstbar_Ca_LVAst,
                      seg.gCa_HVAbar_Ca_HVA, seg.cm, seg.gNaTa_tbar_NaTa_t)
                     for s in c.apical for seg in s]
    out["basal_Ih"] = sorted({round(seg.gIhbar_Ih, 12) for s in c.basal for seg in s})
    out["passive"] = hv.passive(h, c, fi_dt, step_ms=250.0)
    out["fi"] = {str(k): v for k, v in hv.fi_curve(h, c, [0.3, 0.5, 0.6, 1.0, 1.9], step_ms,
                                                   fi_dt).items()}
    b = hv.bac(h, c, dt, soma_nA=soma_nA, dend_nA=dend_nA)
    out["bac"] = {k: {"spikes": b[k]["spikes"], "plateau_ms": b[k]["plateau_ms"]}
                  for k in ("soma", "dend", "both")}
    out["bac"]["site_um"] = b["site_um"]
    out["bac"]["both_spike_ms"] = b["both"]["spike_ms"]
    out["bac_varied"] = {}  # the burst under small changes of the EPSP and its site
    for key, kw in (("dend 0.4", {"dend_nA": 0.4}), ("dend 0.6", {"dend_nA": 0.6}),
                    ("site 590", {"dend_nA": dend_nA, "site_um": 590.0}),
                    ("site 650", {"dend_nA": dend_nA, "site_um": 650.0})):
        v = hv.bac(h, c, dt, soma_nA=soma_nA, **kw)
        out["bac_varied"][key] = {k: {"spikes": v[k]["spikes"], "plateau_ms": v[k]["plateau_ms"]}
                                  for k in ("dend", "both")}
    h.secondorder = 2  # Crank-Nicolson: second order in dt, the converged answer's stand-in
    v = hv.bac(h, c, dt, soma_nA=soma_nA, dend_nA=dend_nA)
    h.secondorder = 0
    out["bac_cn"] = {k: {"spikes": v[k]["spikes"], "plateau_ms": v[k]["plateau_ms"]}
                     for k in ("soma", "dend", "both")}
    v = hv.bac(h, c, dt, soma_nA=2.0, dend_nA=0.0)["soma"]  # the step's margin above 1.9 nA
    out["bac_soma_2_0"] = {"spikes": v["spikes"], "plateau_ms": v["plateau_ms"]}
    p = hv.bap(h, c, dt, soma_nA=soma_nA)
    out["bap"] = {"dist": p["dist_um"], "amp": p["amp_mV"], "ca_site_um": p["ca_site_um"],
                  "ca_plateau_ms": p["ca_plateau_ms"], "ca_peak_mV": p["ca_peak_mV"]}
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def cell(tmp_path_factory) -> dict:
    where = tmp_path_factory.mktemp("elsewhere")
    args = [str(where), str(ROOT / "scripts"), str(HAY_PARAMS), str(FI_DT_MS), str(DT_MS),
            str(STEP_MS), str(BAC_SOMA_NA), str(BAC_DEND_NA)]  # fmt: skip
    return run_probe(PROBE, args, cwd=where, timeout=900)


# ------------------------------------------------------------------ structure and densities
def test_the_template_is_the_hay_cell(cell):
    assert cell["template"].startswith("L5PCtemplate[")
    assert cell["soma"]["NaTa_t"] > 0  # Hay's channel names: the Hay template, not BMTK's


def test_sections_lengths_and_axon_stubs(cell):
    check_structure(cell)


def test_hay_somatic_densities(cell):
    soma = cell["soma"]
    assert soma["NaTa_t"] == 2.04 and soma["K_Tst"] == 0.0812 and soma["SKv3_1"] == 0.693
    assert soma["Ca_LVAst"] == 0.00343 and soma["Ih"] == 0.0002 and soma["g_pas"] == 3.38e-5
    assert soma["decay"] == 460 and soma["cm"] == 1 and soma["ek"] == -85


def test_apical_gradients_and_hot_zone(cell):
    check_apical_gradients(cell)
    assert all(row[5] == 0.0213 for row in cell["apical"])  # apical NaTa_t


# ------------------------------------------------------------------ Hay et al. (2011) behaviour
def test_rest_and_input_resistance(cell):
    p = cell["passive"]
    assert -80 < p["rest_mV"] < -75  # Hay's cell rests near -75..-78 mV
    assert 25 < p["rin_MOhm"] < 45


def test_threshold_between_0_3_and_0_5_nA(cell):
    fi = cell["fi"]
    assert fi["0.3"] == 0 and fi["0.5"] > 0, fi


def test_fi_rises_with_current(cell):
    rates = [cell["fi"][a] for a in ("0.5", "0.6", "1.0", "1.9")]
    assert all(b > a for a, b in zip(rates, rates[1:], strict=False)), rates


def test_fi_within_25_percent_of_hays_cell(cell):
    # issue 13: the morphology (scripts/make_l5_morphology.py Shape, found with
    # scripts/fit_l5_morphology.py) gives 8, 13, 19 Hz at 0.6, 1.0, 1.9 nA (1 s steps,
    # dt 0.025 ms in scripts/hay_validation.py)
    for amp, ref in LEGACY_FI_HZ.items():
        assert cell["fi"][str(amp)] == pytest.approx(ref, rel=0.25), (amp, cell["fi"])


def _is_bac(b: dict) -> bool:
    return (
        b["soma"]["spikes"] == 1  # the 5 ms somatic step alone: one spike
        and b["soma"]["plateau_ms"] < 10  # ... and no Ca plateau
        and b["dend"]["spikes"] == 0  # the EPSP alone does not fire the soma
        and b["both"]["spikes"] >= 3  # together: a burst of >= 2 extra spikes ...
        and b["both"]["plateau_ms"] >= 10  # ... on a hot-zone Ca plateau
    )


def test_bac_firing(cell):
    # issue 13: Hay's protocol (1.9 nA 5 ms somatic step, 0.5 nA EPSP-shaped current at
    # ~620 um 5 ms later), dt 0.025 ms; measured 1 / 0 / 3 spikes, a 26 ms plateau, burst ISIs
    # 12 and 15 ms (Hay's 9.9 +- 0.9 ms)
    b = cell["bac"]
    assert 560 < b["site_um"] < 680  # on the trunk, ~620 um from the soma
    assert _is_bac(b), b
    isi = np.diff(b["both_spike_ms"])
    assert (isi > 5).all() and (isi < 25).all(), isi  # a burst, not a doublet or a pause


def test_bac_burst_survives_small_changes_of_the_epsp(cell):
    # the EPSP's amplitude by +-20 % and its site by +-30 um: still no spike alone, still the
    # burst on a plateau together
    for key, b in cell["bac_varied"].items():
        assert b["dend"]["spikes"] == 0, (key, b)
        assert b["both"]["spikes"] >= 3 and b["both"]["plateau_ms"] >= 10, (key, b)


def test_lone_step_has_a_margin_above_1_9_nA(cell):
    # issue 13: with the obliques of 0.8-1.2 um the lone step set off the hot zone from
    # ~1.75 nA (converged; 1.85 at dt 0.025): a slow Na wave along the trunk carried the bAP
    # into the hot zone. Now a 2.0 nA step still gives one spike and no plateau.
    b = cell["bac_soma_2_0"]
    assert b["spikes"] == 1 and b["plateau_ms"] < 10, b


def test_bac_firing_converged(cell):
    # the same protocol under Crank-Nicolson (second order; within 0.1 nA of CVODE, Hay's
    # integrator, on the lone step's ignition threshold): the result is not an artefact of dt
    assert _is_bac(cell["bac_cn"]), cell["bac_cn"]


def test_backpropagation_decays(cell):
    d = np.array(cell["bap"]["dist"])
    a = np.array(cell["bap"]["amp"])
    near, mid, far = a[d < 100].mean(), a[(d > 400) & (d < 600)].mean(), a[d > 900].mean()
    assert near > mid > far, (near, mid, far)


def test_distal_input_fires_a_ca_spike(cell):
    p = cell["bap"]
    assert 685 <= p["ca_site_um"] <= 900
    assert p["ca_plateau_ms"] >= 10 and p["ca_peak_mV"] > -10  # a regenerative hot-zone Ca spike


# ------------------------------------------------------------------ our Hay channel NMODL
HAY_CHANNELS = {
    "NaTa_t", "Nap_Et2", "K_Pst", "K_Tst", "SKv3_1", "SK_E2", "Ca_HVA", "Ca_LVAst", "Ih", "Im",
    "CaDynamics_E2",
}  # fmt: skip


COMPONENTS = ROOT / "biophys_components"


def _hay_mods() -> list[Path]:
    mods = sorted((COMPONENTS / "mechanisms" / "modfiles").glob("*.mod"))
    return [p for p in mods if p.stem not in ("pyr2pyr", "int2pyr")]  # our synapses


def test_our_channel_nmodl_is_coreneuron_ready():
    from builder.core.components import mechanism_names

    files = _hay_mods()
    assert {n for f in files for n in mechanism_names(f)} == HAY_CHANNELS
    for f in files:
        text = f.read_text()
        assert "VERBATIM" not in text.upper(), f
        assert "POINTER" not in text, f  # nothing CoreNEURON cannot transfer
        assert f.stem == mechanism_names(f)[0]  # one mechanism per file, named after it


def test_only_the_default_cell_gets_our_channels():
    from builder.core.components import bmtk_components_dir, resolve_cell
    from builder.recipes.l5_params import load_params

    bmtk = bmtk_components_dir() / "mechanisms" / "modfiles"
    clashes = {bmtk / n for n in ("Ca_HVA.mod", "Ih.mod", "Im.mod")}  # same names as ours
    ours = {p.resolve() for p in _hay_mods()}
    hay = resolve_cell(load_params(HAY_PARAMS))
    hay = resolve_cell(load_params(HAY_PARAMS), cwd=Path("/"))
    assert hay.template_name == "L5PCtemplate"
    assert hay.template_file == (COMPONENTS / "templates" / "L5PCtemplate.hoc").resolve()
    assert ours <= set(hay.mod_files) and not clashes & set(hay.mod_files)
    # the BMTK-channel option stays on BMTK's channels (its template sets gbar_NaTs,
    # gbar_Ca_HVA, ...); each templates folder holds one template (BMTK loads every .hoc file
    # of the folder, and each template needs its own channel set)
    for params in ("L5NetParams_bmtk.json", "L2-3NetParams.json"):
        spec = resolve_cell(load_params(ROOT / "params" / params), cwd=Path("/"))
        mods = set(spec.mod_files)
        assert not ours & mods, params
        assert clashes | {bmtk / "NaTs.mod", bmtk / "SK.mod"} <= mods, params
    bmtk_cell = resolve_cell(load_params(BMTK_PARAMS), cwd=Path("/"))
    assert (
        bmtk_cell.template_file
        == (COMPONENTS / "bmtk_channels" / "templates" / "L5PCtemplate.hoc").resolve()
    )
    for folder in (COMPONENTS / "templates", COMPONENTS / "bmtk_channels" / "templates"):
        assert [p.name for p in folder.glob("*.hoc")] == ["L5PCtemplate.hoc"], folder


def test_the_two_l5_params_differ_only_in_the_cell():
    default = json.loads(HAY_PARAMS.read_text())
    bmtk = json.loads(BMTK_PARAMS.read_text())
    assert default["cell"]["model_template"] == bmtk["cell"]["model_template"] == "hoc:L5PCtemplate"
    assert "components_dir" not in default["cell"]  # copies of the default params work anywhere
    assert bmtk["cell"]["components_dir"] == "../biophys_components/bmtk_channels"
    assert {k: v for k, v in default.items() if k != "cell"} == {
        k: v for k, v in bmtk.items() if k != "cell"
    }
