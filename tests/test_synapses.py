"""Synapse models ``pyr2pyr`` / ``int2pyr`` (our NMODL) and their BMTK functions.

The first tests need no NEURON: JSON validation and the per-synapse weight draws. The NEURON
tests compile our modfiles together with BMTK's shipped channel modfiles (``nrnivmodl`` in a
session temporary directory), then run every scenario in ONE subprocess -- NEURON loads one
mechanism library per process -- which is this file run as a script; it writes its measurements
to JSON and each test checks its part. The scenarios use single-compartment passive cells
(``dt`` 0.025 ms).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_synmodels import LEGACY, LEGACY_PN2PN

from builder.core.errors import ParamsError
from builder.simulators.neuron import synapses

ROOT = Path(__file__).resolve().parents[1]
SYN_DIR = ROOT / "biophys_components" / "synaptic_models"
MOD_DIR = ROOT / "biophys_components" / "mechanisms" / "modfiles"
DT_MS = 0.025
N_TRAIN = 500  # presynaptic spikes in the release-statistics scenario
N_AGG = 20  # extra synapses pooled for the aggregate release rate


def _json(name: str) -> dict:
    return json.loads((SYN_DIR / name).read_text())


PN2PN, PV2PN, SOM2PN = _json("PN2PN.json"), _json("PV2PN.json"), _json("SOM2PN.json")


# ============================================================================ no NEURON
@pytest.mark.parametrize("name", ["PN2PN.json", "PV2PN.json", "SOM2PN.json"])
def test_shipped_jsons_are_valid_and_keep_spec_values(name):
    model = synapses.check_model_file(SYN_DIR / name)
    assert model == {"PN2PN.json": "pyr2pyr"}.get(name, "int2pyr")


def test_spec_values_in_jsons():
    assert PN2PN["tau_r_AMPA"] == 0.2 and PN2PN["tau_d_AMPA"] == 1.7
    assert PN2PN["tau_r_NMDA"] == 0.29 and PN2PN["tau_d_NMDA"] == 43.0
    assert (PN2PN["gbar_AMPA"], PN2PN["gbar_NMDA"], PN2PN["e"], PN2PN["mg"]) == (
        0.001,
        0.0005,
        0.0,
        1.0,
    )
    assert (PN2PN["tauD1"], PN2PN["d1"], PN2PN["tauD2"], PN2PN["d2"]) == (35.0, 0.95, 250.0, 0.8)
    assert (PN2PN["tauF"], PN2PN["f"], PN2PN["P_0"], PN2PN["initW"]) == (1.0, 1.0, 0.6, 5.0)
    assert PN2PN["weight_distribution"] == {
        "type": "lognormal",
        "mean": 0.45,
        "sd": 0.345,
        "min": 0.0,
        "max": 5.0,
    }
    for d, gbar in ((PV2PN, 1.0), (SOM2PN, 0.006)):
        assert (d["e_GABA"], d["gbar_GABA"], d["P_0"]) == (-75.0, gbar, 0.25)
        assert (d["AlphaTmax_GABA"], d["Beta_GABA"], d["Cdur_GABA"]) == (1.52, 0.14, 0.7254)
    assert (PV2PN["initW_soma"], PV2PN["initW_dend"]) == (0.06, 0.1)
    assert (PV2PN["tauD1"], PV2PN["d1"], PV2PN["tauD2"], PV2PN["d2"]) == (40.0, 0.7, 500.0, 0.7)
    assert (SOM2PN["tauD1"], SOM2PN["d1"], SOM2PN["tauD2"], SOM2PN["d2"]) == (200.0, 0.8, 1.0, 1.0)


def test_every_model_parameter_key_is_mapped():
    # every numeric JSON key of our files is a mapped NMODL parameter or a handled special key
    for d in (PN2PN, PV2PN, SOM2PN):
        table = synapses.PARAMETER_KEYS[d["level_of_detail"]]
        special = {"level_of_detail", "comment", "weight_distribution", "initW_soma", "initW_dend"}
        assert set(d) <= set(table) | special


def test_unknown_key_names_model_and_key():
    bad = dict(PN2PN, tau_r_ampa=0.3)
    with pytest.raises(ParamsError) as err:
        synapses.check_model_params(bad, "pyr2pyr")
    msg = str(err.value)
    assert "tau_r_ampa: unknown key for synapse model 'pyr2pyr'" in msg
    assert "did you mean 'tau_r_AMPA'" in msg


def test_unknown_key_in_file_names_the_file(tmp_path):
    path = tmp_path / "SOM2PN.json"
    path.write_text(json.dumps(dict(SOM2PN, gbar=0.1)))
    with pytest.raises(
        ParamsError,
        match=r"(?s)SOM2PN\.json: 1 problem.*gbar: unknown key for "
        r"synapse model 'int2pyr'",
    ) as err:
        synapses.check_model_file(path)
    assert err.value.source == str(path)


def test_all_problems_reported_at_once():
    bad = dict(SOM2PN, P_0=1.5, tauD1=0, level_of_detail="pyr2pyr", extra=1, comment=3)
    with pytest.raises(ParamsError) as err:
        synapses.check_model_params(bad, "int2pyr", source="SOM2PN.json")
    problems = err.value.problems
    assert len(problems) == 5, problems
    assert "P_0: 1.5 is not valid; use a number in [0, 1]" in problems
    assert "tauD1: 0 is not valid; use a number > 0" in problems
    assert any(p.startswith("level_of_detail: 'pyr2pyr' does not match") for p in problems)
    assert any(p.startswith("extra: unknown key") for p in problems)
    assert "comment: 3 is not a string" in problems


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"tau_r_AMPA": 2.0}, "tau_r_AMPA: 2.0 must be smaller than tau_d_AMPA (1.7)"),
        ({"d1": True}, "d1: True is not valid; use a number in [0, 1]"),
        ({"gbar_NMDA": float("nan")}, "gbar_NMDA: nan is not valid; use a number >= 0"),
        (
            {"weight_distribution": {"type": "normal", "mean": 1, "sd": 1}},
            "weight_distribution.type: 'normal' is not valid; use 'lognormal'",
        ),
        (
            {"weight_distribution": {"type": "lognormal", "mean": 1, "sd": 1, "mu": 0}},
            "weight_distribution.mu: unknown key",
        ),
        (
            {"weight_distribution": {"type": "lognormal", "mean": 1, "sd": 1, "min": 3, "max": 2}},
            "weight_distribution.min: 3 is greater than max 2",
        ),
        ({"initW_soma": 1.0}, "weight_distribution: cannot be combined with initW_soma"),
    ],
)
def test_bad_values(change, expected):
    with pytest.raises(ParamsError) as err:
        synapses.check_model_params({**PN2PN, **change}, "pyr2pyr")
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


def test_model_file_must_be_ours(tmp_path):
    path = tmp_path / "exp2syn.json"
    path.write_text(json.dumps({"level_of_detail": "exp2syn", "tau1": 1.0}))
    with pytest.raises(ParamsError, match="level_of_detail: 'exp2syn' is not valid"):
        synapses.check_model_file(path)


class _Sec:
    """A stand-in for a NEURON section: only ``name()`` is used."""

    def __init__(self, name):
        self._name = name

    def name(self):
        return self._name


@pytest.mark.parametrize(
    "name,expected",
    [
        ("L5PCtemplate[0].soma[0]", 0.06),
        ("Biophys1[3].soma[0]", 0.06),
        ("soma", 0.06),
        ("L5PCtemplate[0].dend[12]", 0.1),
        ("Biophys1[0].apic[3]", 0.1),
        ("somatic_like_dend", 0.1),
    ],
)
def test_pv_weight_by_section(name, expected):
    assert synapses.connection_weight(PV2PN, _Sec(name), 1, "prox_inh_stim", 0) == expected


def test_som_weight_is_init_w():
    assert synapses.connection_weight(SOM2PN, _Sec("x.soma[0]"), 1, "dist_inh_stim", 3) == 1.0


def test_pn_weights_are_keyed_by_seed_population_and_edge():
    ids = np.array([5, 900, 17, 5])
    w = synapses.draw_weights(PN2PN, 123, "exc_stim", ids)
    assert w[0] == w[3]
    # order and batch independent: each edge has its own stream
    single = [synapses.draw_weights(PN2PN, 123, "exc_stim", [i])[0] for i in ids[::-1]]
    assert np.array_equal(w, single[::-1])
    assert w[0] == synapses.connection_weight(PN2PN, _Sec("a.dend[0]"), 123, "exc_stim", 5)
    assert not np.array_equal(w, synapses.draw_weights(PN2PN, 124, "exc_stim", ids))
    assert not np.array_equal(w, synapses.draw_weights(PN2PN, 123, "other", ids))


def test_pn_weight_distribution_statistics():
    # lognormal with mean 0.45 and sd 0.345 of the variable itself, clipped to [0, 5]
    # (P(X > 5) ~ 1e-9: the clip does not move the moments)
    n = 20000
    w = synapses.draw_weights(PN2PN, 7, "exc_stim", np.arange(n))
    assert w.min() >= 0 and w.max() <= 5
    se_mean = 0.345 / math.sqrt(n)
    assert abs(w.mean() - 0.45) < 4 * se_mean
    # sd of log(w): sigma = sqrt(log(1 + (0.345/0.45)^2)); its estimate has se sigma/sqrt(2n)
    sigma = math.sqrt(math.log1p((0.345 / 0.45) ** 2))
    assert abs(np.log(w).std() - sigma) < 4 * sigma / math.sqrt(2 * n)
    mu = math.log(0.45) - sigma**2 / 2
    assert abs(np.log(w).mean() - mu) < 4 * sigma / math.sqrt(n)


def test_stream_ids():
    assert synapses.stream_ids(1, 7, 9) == (1, 7, 9)
    assert synapses.stream_ids(1, "exc_stim", 9)[1] == synapses.stream_ids(2, "exc_stim", 0)[1]
    with pytest.raises(ValueError, match="edge_id must be in"):
        synapses.stream_ids(1, 1, 2**32)
    with pytest.raises(TypeError):
        synapses.stream_ids(1.5, 1, 2)


# ============================================================================ NEURON
@pytest.fixture(scope="session")
def measured(tmp_path_factory):
    """Compile the mechanisms and run every NEURON scenario once; return the measurements."""
    work = tmp_path_factory.mktemp("synapse_mechs")
    bmtk_mods = _bmtk_modfiles()
    for mod in [*MOD_DIR.glob("*.mod"), *bmtk_mods.glob("*.mod")]:
        (work / mod.name).write_bytes(mod.read_bytes())
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    t0 = time.perf_counter()
    proc = subprocess.run(["nrnivmodl", "."], cwd=work, env=env, capture_output=True, text=True)
    compile_s = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lib = next(p for p in work.rglob("libnrnmech.*") if p.suffix in (".so", ".dylib"))
    run_dir = tmp_path_factory.mktemp("synapse_run")  # not `work`: NEURON autoloads ./x86_64
    out = run_dir / "measured.json"
    proc = subprocess.run(
        [sys.executable, __file__, str(lib), str(out)],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    result["compile_s"] = compile_s
    print(f"nrnivmodl: {compile_s:.1f} s; scenarios: {result['run_s']:.1f} s")
    return result


def _bmtk_modfiles() -> Path:
    import bmtk

    return Path(bmtk.__file__).parent / "utils" / "scripts" / "bionet" / "mechanisms" / "modfiles"


def _stp_factor(p: dict, isi_ms: float) -> float:
    """Amplitude of the 2nd of two releases isi_ms apart relative to the 1st (P_0 = 1)."""
    f = 1 + p["f"] * math.exp(-isi_ms / p["tauF"])
    d1 = 1 - (1 - p["d1"]) * math.exp(-isi_ms / p["tauD1"])
    d2 = 1 - (1 - p["d2"]) * math.exp(-isi_ms / p["tauD2"])
    return f * d1 * d2


def _mg_block(v_mV: float, mg_mM: float = 1.0) -> float:
    return 1 / (1 + math.exp(-0.08 * v_mV) * mg_mM / 3.57)


@pytest.mark.neuron
@pytest.mark.slow
def test_epsp_appears_with_p0_one(measured):
    m = measured["epsp"]
    assert m["n_release"] == 1
    assert m["epsp_mV"] > 0.5
    # one release of weight factor initW peaks at gbar_AMPA * initW (sampled at dt: 1e-3)
    assert m["g_AMPA_peak"] == pytest.approx(0.001 * m["initW"], rel=1e-3)
    assert m["initW"] == synapses.draw_weights(PN2PN, 1, "exc_stim", [0])[0]


@pytest.mark.neuron
@pytest.mark.slow
def test_p0_zero_gives_no_conductance(measured):
    m = measured["p0_zero"]
    assert m["n_spike"] == N_TRAIN and m["n_release"] == 0
    assert m["g_max"] == 0.0
    assert m["dv_max"] < 1e-12


@pytest.mark.neuron
@pytest.mark.slow
def test_release_rate_is_p0(measured):
    m = measured["release"]
    # one connection: Binomial(500, 0.6), sd 10.95; 4 sd
    sd = math.sqrt(N_TRAIN * 0.6 * 0.4)
    assert abs(sum(m["seq_a"]) - 0.6 * N_TRAIN) < 4 * sd
    # 20 more connections pooled: Binomial(10000, 0.6), sd 49; 4 sd
    n = N_AGG * N_TRAIN
    assert abs(m["pooled_releases"] - 0.6 * n) < 4 * math.sqrt(n * 0.6 * 0.4)
    # GABA: P_0 0.25
    assert abs(m["gaba_releases"] - 0.25 * N_TRAIN) < 4 * math.sqrt(N_TRAIN * 0.25 * 0.75)


@pytest.mark.neuron
@pytest.mark.slow
def test_release_streams_reproducible_and_distinct(measured):
    m = measured["release"]
    assert m["seq_a"] == m["seq_b"]  # same ids, another point process
    assert m["seq_a"] == m["seq_a_rerun"]  # same ids, after a new finitialize
    assert m["seq_a"] == m["seq_netcon"]  # same ids held by the NetCon instead
    assert m["seq_a"] != m["seq_c"]  # another edge id
    # independent streams agree on a spike with prob 0.6^2 + 0.4^2 = 0.52; 4 sd
    agree = np.mean(np.array(m["seq_a"]) == np.array(m["seq_c"]))
    assert abs(agree - 0.52) < 4 * math.sqrt(0.52 * 0.48 / N_TRAIN)


@pytest.mark.neuron
@pytest.mark.slow
def test_paired_pulse_depression(measured):
    m = measured["depression"]
    expected_pn = _stp_factor(PN2PN, 10.0)
    assert expected_pn == pytest.approx(0.777524, abs=1e-6)
    assert m["pn_g_ratio"] == pytest.approx(expected_pn, rel=1e-6)
    assert m["pn_gnmda_ratio"] == pytest.approx(expected_pn, rel=1e-6)
    # the 2nd EPSP (pair minus single) is smaller by the same factor up to the nonlinearity of
    # the driving force and the Mg block (EPSP of ~2 mV: a few per cent)
    assert m["pn_epsp_ratio"] == pytest.approx(expected_pn, rel=0.05)
    # GABA_A: the 2nd release (amplitude a2 = STP factor) drives the connection's open fraction
    # towards a2 * Rinf for Cdur, starting from the residual of the 1st pulse, so its peak over
    # the 1st peak Rinf (1 - E) is a2 + exp(-Beta (isi - Cdur)) E, with E = exp(-Cdur / Rtau)
    # (peaks sampled at dt: 1e-3)
    a2 = _stp_factor(PV2PN, 10.0)
    assert a2 == pytest.approx(0.54100, abs=1e-5)
    alpha, beta, cdur = PV2PN["AlphaTmax_GABA"], PV2PN["Beta_GABA"], PV2PN["Cdur_GABA"]
    e = math.exp(-cdur * (alpha + beta))
    expected_pv = a2 + math.exp(-beta * (10.0 - cdur)) * e
    assert m["pv_g_ratio"] == pytest.approx(expected_pv, rel=1e-3)


@pytest.mark.neuron
@pytest.mark.slow
def test_nmda_mg_block(measured):
    m = measured["mg_block"]
    assert m["v_-80"] == pytest.approx(-80, abs=1e-3)
    assert m["v_-20"] == pytest.approx(-20, abs=1e-3)
    assert m["block_-80"] == pytest.approx(_mg_block(m["v_-80"]), rel=1e-6)
    assert m["block_-20"] == pytest.approx(_mg_block(m["v_-20"]), rel=1e-6)
    expected = (_mg_block(-80) * -80) / (_mg_block(-20) * -20)
    assert expected == pytest.approx(0.0563, abs=1e-4)
    assert m["i_nmda_-80"] / m["i_nmda_-20"] == pytest.approx(expected, rel=1e-3)
    assert abs(m["i_nmda_-80"]) < 0.1 * abs(m["i_nmda_-20"])


@pytest.mark.neuron
@pytest.mark.slow
def test_gaba_gbar_changes_ipsp(measured):
    m = measured["gaba"]
    # conductance: gbar_GABA * initW * peak open fraction (same kinetics)
    assert m["g_pv_soma"] / m["g_som"] == pytest.approx(1.0 * 0.06 / (0.006 * 1.0), rel=1e-9)
    assert m["g_pv_dend"] / m["g_pv_soma"] == pytest.approx(0.1 / 0.06, rel=1e-9)
    # peak open fraction of one 0.7254 ms pulse: Rinf (1 - exp(-Cdur/Rtau))
    rinf, rtau = 1.52 / 1.66, 1 / 1.66
    assert m["g_som"] == pytest.approx(0.006 * rinf * (1 - math.exp(-0.7254 / rtau)), rel=2e-3)
    # voltage: IPSPs from -60 mV towards -75 mV; halving gbar_GABA halves the IPSP up to the
    # driving-force nonlinearity (IPSP / 15 mV)
    assert m["ipsp_som"] < 0 and m["ipsp_pv_soma"] < m["ipsp_som"]
    nonlin = abs(m["ipsp_som"]) / 15.0
    assert m["ipsp_som"] / m["ipsp_som_half"] == pytest.approx(2.0, rel=nonlin)
    assert m["ipsp_som"] / m["ipsp_som_half"] < 2.0


@pytest.mark.neuron
@pytest.mark.slow
def test_every_json_key_is_applied(measured):
    assert measured["applied"] == {"PN2PN.json": [], "PV2PN.json": [], "SOM2PN.json": []}


@pytest.mark.neuron
@pytest.mark.slow
def test_legacy_values_land_on_the_point_process(measured):
    m = measured["legacy_applied"]
    pn = m["PN2PN.json"]
    assert pn["kinetic"] == 1
    assert (pn["AlphaTmax_AMPA"], pn["Beta_AMPA"], pn["Cdur_AMPA"]) == (5.0, 0.5882, 0.2)
    assert (pn["AlphaTmax_NMDA"], pn["Beta_NMDA"], pn["Cdur_NMDA"]) == (3.4483, 0.0233, 0.29)
    assert (pn["gbar_AMPA"], pn["gbar_NMDA"], pn["e_AMPA"], pn["e_NMDA"]) == (0.001, 0.0005, 0, 0)
    assert (pn["tauD1"], pn["d1"], pn["tauD2"], pn["d2"], pn["tauF"], pn["f"]) == (
        35.0, 0.95, 250.0, 0.8, 1.0, 1.0)  # fmt: skip
    assert pn["P_0"] == 0.6  # the legacy fixed release probability (mechanism default)
    # the legacy weight: the lognormal draw for this edge, not initW's "5"
    assert pn["initW"] == synapses.draw_weights(PN2PN, 1, "pop", [0])[0] != 5.0
    for name, gbar, stp in (("PV2PN.json", 1.0, (40, 0.7, 500, 0.7)),
                            ("SOM2PN.json", 0.006, (200, 0.8, 1, 1))):  # fmt: skip
        g = m[name]
        assert (g["AlphaTmax_GABA"], g["Beta_GABA"], g["Cdur_GABA"]) == (1.52, 0.14, 0.7254)
        assert (g["gbar_GABA"], g["e_GABA"], g["P_0"]) == (gbar, -75.0, 0.25)
        assert (g["tauD1"], g["d1"], g["tauD2"], g["d2"], g["tauF"], g["f"]) == (*stp, 1, 1)
        assert g["initW"] == 0.06  # a somatic section: the legacy 0.06, not initW's "1"


def _kinetic_r(t, releases, alpha, beta, cdur):
    """Open fraction of one connection, amplitude 1, whose pulse starts at releases[0] and is
    extended by each later release (each before the pulse ends) to the last one + cdur."""
    t = np.asarray(t)
    t_on, t_off = releases[0], releases[-1] + cdur
    rinf, rtau = alpha / (alpha + beta), 1 / (alpha + beta)
    rise = rinf * (1 - np.exp(-(t - t_on) / rtau))
    at_off = rinf * (1 - math.exp(-(t_off - t_on) / rtau))
    decay = at_off * np.exp(-beta * (t - t_off))
    return np.where(t < t_on, 0.0, np.where(t <= t_off, rise, decay))


@pytest.mark.neuron
@pytest.mark.slow
@pytest.mark.parametrize("case,releases", [("single", [10.1]), ("extended", [10.1, 10.2])])
def test_kinetic_scheme_matches_the_analytic_open_fraction(measured, case, releases):
    # Destexhe-Mainen-Sejnowski two-state scheme, weight 1, P_0 = 1, v clamped at -40 mV.
    # cnexp integrates this linear scheme exactly over each step (the transmitter is constant
    # within a step: releases and pulse ends fall on step boundaries at dt = 0.01 ms), so the
    # only error is rounding: 1e-9 relative. NEURON computes the recorded conductance at the
    # start of each step, from the states of the previous time point: g[k] = gbar r(t[k-1]).
    m = measured["kinetic"][case]
    assert m["n_release"] == len(releases)
    t, v = np.array(m["t"]), np.array(m["v"])
    assert np.abs(v[t > 1] + 40).max() < 1e-3
    after = np.flatnonzero(t[:-1] > releases[0] + 1e-6) + 1  # k with t[k-1] after the release
    p = {k: float(v) for k, v in LEGACY_PN2PN.items() if k[0] in "ABC"}
    for rec, gbar, r in (("AMPA", 0.001, "ampa"), ("NMDA", 0.0005, "nmda")):
        g = np.array(m[f"g_{rec}"])
        if rec == "NMDA":
            block = np.array(m["mgblock"])
            assert block[after] == pytest.approx(_mg_block(-40.0), rel=1e-4)
            g = g / block
        want = gbar * _kinetic_r(
            t[after - 1], releases, p[f"AlphaTmax_{r}"], p[f"Beta_{r}"], p[f"Cdur_{r}"]
        )
        assert np.abs(g[after] / want - 1).max() < 1e-9, rec
        assert np.all(g[: after[0]] == 0)
        # sampled checks: the pulse end and well into the decay
        for tk in (releases[-1] + p[f"Cdur_{r}"], 15.0, 30.0):
            k = int(np.argmin(np.abs(t - tk))) + 1
            assert g[k] == pytest.approx(float(want[k - after[0]]), rel=1e-9)


@pytest.mark.neuron
@pytest.mark.slow
def test_kinetic_shared_point_process_equals_separate(measured):
    m = measured["kinetic_merged"]
    assert 0 < m["n_release"] < m["n_spike"] == 31
    assert m["n_release"] == m["n_release_sep"]
    assert len(set(m["weights"])) == 3  # legacy lognormal weights, one per edge
    assert m["dg_ampa"] < 1e-9 * m["g_ampa_max"]
    assert m["dg_nmda"] < 1e-9 * m["g_nmda_max"]
    assert m["dv"] < 1e-9


@pytest.mark.neuron
@pytest.mark.slow
def test_shared_point_process_equals_separate(measured):
    m = measured["merged"]
    assert 0 < m["n_release_pn"] < m["n_spike_pn"]
    assert 0 < m["n_release_gaba"] < m["n_spike_gaba"]
    assert m["n_release_pn"] == m["n_release_pn_sep"]
    assert m["dg_ampa"] < 1e-9 * m["g_ampa_max"]
    assert m["dg_nmda"] < 1e-9 * m["g_nmda_max"]
    assert m["dg_gaba"] < 1e-9 * m["g_gaba_max"]
    assert m["dv"] < 1e-9


@pytest.mark.neuron
@pytest.mark.slow
def test_missing_streams_and_weights_fail_at_finitialize(measured):
    m = measured["errors"]
    assert "pyr2pyr: a connection has no release stream" in m["no_stream"]
    assert "int2pyr: a connection has no release stream" in m["no_stream_gaba"]
    assert "several NetCons use the point process's release stream" in m["shared_stream"]
    assert "bind_edge" in m["pending_weight"]
    assert "tau_r_ampa: unknown key for synapse model 'pyr2pyr'" in m["factory_unknown_key"]


@pytest.mark.neuron
@pytest.mark.slow
def test_registered_with_bmtk(measured):
    m = measured["bmtk"]
    assert m["registered"] == {"pyr2pyr": True, "int2pyr": True}
    assert m["created"].startswith("pyr2pyr[")


# ============================================================================ the scenarios
def _scenarios(lib: str) -> dict:
    """Run every NEURON scenario (in a fresh process) and return the measurements."""
    from neuron import h

    h.nrn_load_dll(lib)
    h.load_file("stdrun.hoc")
    h.dt = DT_MS
    keep: list = []  # hoc objects that must outlive a scenario's setup

    def cell(name="soma", diam=20.0, e_pas=-70.0):
        sec = h.Section(name=name)
        sec.L = sec.diam = diam
        sec.insert("pas")
        sec.g_pas = 1e-4
        sec.e_pas = e_pas
        return sec

    def source(times):
        tv = h.Vector(list(times))
        vs = h.VecStim()
        vs.play(tv)
        keep.extend([tv, vs])
        return vs

    def connect(src, syn, weight=1.0):
        nc = h.NetCon(src, syn)
        nc.weight[0] = weight
        nc.delay = 0.1
        return nc

    def rec(ref):
        return h.Vector().record(ref)

    def run(tstop, v_init):
        h.finitialize(v_init)
        h.continuerun(tstop)

    def arr(vec):
        return np.array(vec)

    res: dict = {}
    t_start = time.perf_counter()

    # --- an EPSP for P_0 = 1 --------------------------------------------------------------
    p1 = dict(PN2PN, P_0=1.0)
    sec = cell()
    syn = synapses.pyr2pyr(p1, 0.5, sec)
    synapses.bind_edge(syn, p1, 1, "exc_stim", 0)
    nc = connect(source([5.0]), syn)
    v, ga = rec(sec(0.5)._ref_v), rec(syn._ref_g_AMPA)
    run(60, -70)
    res["epsp"] = {
        "epsp_mV": float(arr(v).max() + 70),
        "g_AMPA_peak": float(arr(ga).max()),
        "initW": syn.initW,
        "n_release": syn.n_release,
    }
    del sec, syn, nc, v, ga

    # --- P_0 = 0: nothing at all ----------------------------------------------------------
    p0 = dict(PN2PN, P_0=0.0)
    sec = cell()
    syn = synapses.pyr2pyr(p0, 0.5, sec)
    synapses.bind_edge(syn, p0, 1, "exc_stim", 0)
    train = 1.0 + 2.0 * np.arange(N_TRAIN)
    nc = connect(source(train), syn)
    v, ga, gn = rec(sec(0.5)._ref_v), rec(syn._ref_g_AMPA), rec(syn._ref_g_NMDA)
    run(train[-1] + 5, -70)
    res["p0_zero"] = {
        "n_spike": syn.n_spike,
        "n_release": syn.n_release,
        "g_max": float(max(np.abs(arr(ga)).max(), np.abs(arr(gn)).max())),
        "dv_max": float(np.abs(arr(v) + 70).max()),
    }
    del sec, syn, nc, v, ga, gn

    # --- release statistics and stream identity -------------------------------------------
    sec = cell()
    train = 2.0 + 4.0 * np.arange(N_TRAIN)
    src = source(train)
    sample = np.rint((train + 2.0) / DT_MS).astype(int)  # 2 ms after each spike (delay 0.1)

    def release_seq(vec):
        counts = arr(vec)[sample]
        return np.diff(np.concatenate([[0.0], counts])).astype(int).tolist()

    syn_a = synapses.pyr2pyr(PN2PN, 0.5, sec)
    syn_b = synapses.pyr2pyr(PN2PN, 0.5, sec)
    syn_c = synapses.pyr2pyr(PN2PN, 0.5, sec)
    syn_n = synapses.make_synapse("pyr2pyr", PN2PN, 0.5, sec, per_connection_weight=True)
    synapses.bind_edge(syn_a, PN2PN, 7, "exc_stim", 11)
    synapses.bind_edge(syn_b, PN2PN, 7, "exc_stim", 11)
    synapses.bind_edge(syn_c, PN2PN, 7, "exc_stim", 12)
    ncs = [connect(src, s) for s in (syn_a, syn_b, syn_c, syn_n)]
    synapses.set_release_stream(ncs[3], 7, "exc_stim", 11)
    pooled = []
    for k in range(N_AGG):
        s = synapses.pyr2pyr(PN2PN, 0.5, sec)
        synapses.bind_edge(s, PN2PN, 7, "exc_stim", 100 + k)
        pooled.append((s, connect(src, s)))
    gaba = synapses.int2pyr(SOM2PN, 0.5, sec)
    synapses.bind_edge(gaba, SOM2PN, 7, "dist_inh_stim", 3)
    ncs.append(connect(src, gaba))
    recs = {
        k: rec(s._ref_n_release) for k, s in zip("abcn", (syn_a, syn_b, syn_c, syn_n), strict=True)
    }
    run(train[-1] + 5, -70)
    first = release_seq(recs["a"])
    run(train[-1] + 5, -70)
    res["release"] = {
        "seq_a": release_seq(recs["a"]),
        "seq_b": release_seq(recs["b"]),
        "seq_c": release_seq(recs["c"]),
        "seq_netcon": release_seq(recs["n"]),
        "seq_a_rerun": first,
        "pooled_releases": int(sum(s.n_release for s, _ in pooled)),
        "gaba_releases": int(gaba.n_release),
    }
    del sec, src, syn_a, syn_b, syn_c, syn_n, ncs, pooled, gaba, recs, s

    # --- paired-pulse depression (single spike vs pair, P_0 = 1) --------------------------
    pv1 = dict(PV2PN, P_0=1.0)
    secs = [cell(), cell(), cell(), cell()]
    single, pair = source([10.0]), source([10.0, 20.0])
    pn = [synapses.pyr2pyr(p1, 0.5, secs[i]) for i in (0, 1)]
    pv = [synapses.int2pyr(pv1, 0.5, secs[i]) for i in (2, 3)]
    for s in pn:
        synapses.bind_edge(s, p1, 1, "exc_stim", 0)  # same weight on both
    ncs = [
        connect(single, pn[0]),
        connect(pair, pn[1]),
        connect(single, pv[0]),
        connect(pair, pv[1]),
    ]
    g1, g2 = rec(pn[0]._ref_g_AMPA), rec(pn[1]._ref_g_AMPA)
    n1, n2 = rec(pn[0]._ref_g_NMDA), rec(pn[1]._ref_g_NMDA)
    b1, b2 = rec(pn[0]._ref_mgblock), rec(pn[1]._ref_mgblock)
    v1, v2 = rec(secs[0](0.5)._ref_v), rec(secs[1](0.5)._ref_v)
    q1, q2 = rec(pv[0]._ref_g_GABA), rec(pv[1]._ref_g_GABA)
    run(100, -70)
    cut = int(round(20.0 / DT_MS))

    def second_over_first(x1, x2):
        x1, x2 = arr(x1), arr(x2)
        return float((x2 - x1)[cut:].max() / x1.max())

    raw1, raw2 = arr(n1) / arr(b1), arr(n2) / arr(b2)
    res["depression"] = {
        "pn_g_ratio": second_over_first(g1, g2),
        "pn_gnmda_ratio": second_over_first(raw1, raw2),
        "pn_epsp_ratio": float((arr(v2) - arr(v1))[cut:].max() / (arr(v1) + 70).max()),
        "pn_epsp_mV": float((arr(v1) + 70).max()),
        "pv_g_ratio": float(arr(q2)[cut:].max() / arr(q1).max()),
    }
    del secs, single, pair, pn, pv, ncs, g1, g2, n1, n2, b1, b2, v1, v2, q1, q2, s

    # --- NMDA Mg block under voltage clamp ------------------------------------------------
    out = {}
    for vc in (-80.0, -20.0):
        sec = cell()
        clamp = h.SEClamp(sec(0.5))
        clamp.dur1, clamp.amp1, clamp.rs = 200.0, vc, 1e-4
        syn = synapses.pyr2pyr(p1, 0.5, sec)
        synapses.bind_edge(syn, p1, 1, "exc_stim", 0)
        nc = connect(source([10.0]), syn)
        i_n, blk, v = rec(syn._ref_i_NMDA), rec(syn._ref_mgblock), rec(sec(0.5)._ref_v)
        run(150, vc)
        k = int(np.argmax(np.abs(arr(i_n))))
        out[f"i_nmda_{vc:.0f}"] = float(arr(i_n)[k])
        out[f"block_{vc:.0f}"] = float(arr(blk)[k])
        out[f"v_{vc:.0f}"] = float(arr(v)[k])
        del sec, clamp, syn, nc, i_n, blk, v
    res["mg_block"] = out

    # --- GABA: gbar from the JSON ---------------------------------------------------------
    som1 = dict(SOM2PN, P_0=1.0)
    som_half = dict(som1, gbar_GABA=0.003)
    cases = {
        "pv_soma": (pv1, "soma"),
        "pv_dend": (pv1, "dend"),
        "som": (som1, "soma"),
        "som_half": (som_half, "soma"),
    }
    src = source([10.0])
    objs, out = {}, {}
    for key, (params, name) in cases.items():
        sec = cell(name=name, diam=60.0, e_pas=-60.0)
        syn = synapses.int2pyr(params, 0.5, sec)
        objs[key] = (sec, syn, connect(src, syn), rec(syn._ref_g_GABA), rec(sec(0.5)._ref_v))
    run(80, -60)
    for key, (_sec, _syn, _nc, g, v) in objs.items():
        out[f"g_{key}"] = float(arr(g).max())
        out[f"ipsp_{key}"] = float(arr(v).min() + 60)
    res["gaba"] = out
    del src, objs, sec, syn, _sec, _syn, _nc, g, v

    # --- every JSON key reaches the point process -----------------------------------------
    applied = {}
    for fname, params in (("PN2PN.json", PN2PN), ("PV2PN.json", PV2PN), ("SOM2PN.json", SOM2PN)):
        model = params["level_of_detail"]
        sec = cell(name="soma")
        syn = synapses.make_synapse(model, params, 0.5, sec)
        synapses.bind_edge(syn, params, 1, "pop", 0)
        bad = []
        for key, (attrs, _check) in synapses.PARAMETER_KEYS[model].items():
            if key == "initW":
                continue
            if key in params and any(getattr(syn, a) != params[key] for a in attrs):
                bad.append(key)
        want_w = synapses.connection_weight(params, sec, 1, "pop", 0)
        if syn.initW != want_w:
            bad.append("initW")
        applied[fname] = bad
        del sec, syn
    res["applied"] = applied

    # --- legacy files: every value reaches the point process under our name --------------
    legacy = {}
    for fname, params in LEGACY.items():
        model = params["level_of_detail"]
        sec = cell(name="soma")
        syn = synapses.make_synapse(model, params, 0.5, sec)
        synapses.bind_edge(syn, params, 1, "pop", 0)
        names = [a for attrs, _c in synapses.PARAMETER_KEYS[model].values() for a in attrs]
        if model == "pyr2pyr":
            names.append("kinetic")
        legacy[fname] = {a: getattr(syn, a) for a in sorted(set(names))}
        del sec, syn
    res["legacy_applied"] = legacy

    # --- kinetic scheme: one release, and a release that extends the pulse ----------------
    # dt 0.01 ms puts the releases (10.1, 10.2 ms) and the pulse ends (Cdur 0.2, 0.29 ms) on
    # step boundaries, where cnexp is exact for this linear scheme
    h.dt = 0.01
    kin = dict(LEGACY_PN2PN, P_0="1")
    out = {}
    for key, times in (("single", [10.0]), ("extended", [10.0, 10.1])):
        sec = cell()
        clamp = h.SEClamp(sec(0.5))
        clamp.dur1, clamp.amp1, clamp.rs = 1e9, -40.0, 1e-4
        syn = synapses.make_synapse("pyr2pyr", kin, 0.5, sec, per_connection_weight=True)
        nc = connect(source(times), syn)
        recs = {
            "t": rec(h._ref_t),
            "g_AMPA": rec(syn._ref_g_AMPA),
            "g_NMDA": rec(syn._ref_g_NMDA),
            "mgblock": rec(syn._ref_mgblock),
            "v": rec(sec(0.5)._ref_v),
        }
        run(40, -40)
        out[key] = {k: arr(x).tolist() for k, x in recs.items()}
        out[key]["n_release"] = syn.n_release
        del sec, clamp, syn, nc, recs
    res["kinetic"] = out
    h.dt = DT_MS

    # --- kinetic scheme: shared point process vs one per connection -----------------------
    sec_a, sec_b = cell(), cell()
    # bursts with intervals shorter than Cdur: pulses of one connection extended, pulses of
    # different connections overlapping
    trains = [
        [3.0, 3.1, 3.15, 3.5, 3.55, 20.0, 20.12, 20.2, 40.0, 60.0, 60.1],
        [3.05, 3.2, 3.3, 20.1, 20.15, 20.4, 40.1, 40.2, 40.25, 61.0],
        [3.12, 20.05, 20.3, 20.31, 40.05, 40.15, 60.05, 60.2, 60.27, 60.33],
    ]
    srcs = [source(tr) for tr in trains]
    shared = synapses.make_synapse("pyr2pyr", LEGACY_PN2PN, 0.5, sec_a, per_connection_weight=True)
    objs, separate = [shared], []
    for edge, src in enumerate(srcs):
        w = synapses.connection_weight(LEGACY_PN2PN, sec_a, 3, "exc", edge, model="pyr2pyr")
        nc = connect(src, shared, weight=w)
        synapses.set_release_stream(nc, 3, "exc", edge)
        one = synapses.make_synapse("pyr2pyr", LEGACY_PN2PN, 0.5, sec_b)
        synapses.bind_edge(one, LEGACY_PN2PN, 3, "exc", edge)
        separate.append(one)
        objs.extend([nc, one, connect(src, one)])
    r = {
        "ga": rec(shared._ref_g_AMPA),
        "gn": rec(shared._ref_g_NMDA),
        "va": rec(sec_a(0.5)._ref_v),
        "vb": rec(sec_b(0.5)._ref_v),
    }
    for i, one in enumerate(separate):
        r[f"ga{i}"] = rec(one._ref_g_AMPA)
        r[f"gn{i}"] = rec(one._ref_g_NMDA)
    run(150, -70)
    r = {k: arr(x) for k, x in r.items()}
    n = len(separate)
    res["kinetic_merged"] = {
        "dg_ampa": float(np.abs(r["ga"] - sum(r[f"ga{i}"] for i in range(n))).max()),
        "dg_nmda": float(np.abs(r["gn"] - sum(r[f"gn{i}"] for i in range(n))).max()),
        "g_ampa_max": float(r["ga"].max()),
        "g_nmda_max": float(r["gn"].max()),
        "dv": float(np.abs(r["va"] - r["vb"]).max()),
        "n_spike": shared.n_spike,
        "n_release": shared.n_release,
        "n_release_sep": sum(s.n_release for s in separate),
        "weights": [one.initW for one in separate],
    }
    del sec_a, sec_b, srcs, shared, objs, separate, r, nc, one, src

    # --- shared point process vs one per connection ---------------------------------------
    sec_a, sec_b = cell(), cell()
    srcs = [source(3.0 + 7.0 * np.arange(70)), source(5.0 + 11.0 * np.arange(45))]
    objs = []
    stats = {}
    for model, params, pop in (("pyr2pyr", PN2PN, "exc_stim"), ("int2pyr", SOM2PN, "dist")):
        shared = synapses.make_synapse(model, params, 0.5, sec_a, per_connection_weight=True)
        objs.append(shared)
        separate = []
        for edge, src in enumerate(srcs):
            w = synapses.connection_weight(params, sec_a, 3, pop, edge, model=model)
            nc = connect(src, shared, weight=w)
            synapses.set_release_stream(nc, 3, pop, edge)
            one = synapses.make_synapse(model, params, 0.5, sec_b)
            synapses.bind_edge(one, params, 3, pop, edge)
            separate.append(one)
            objs.extend([nc, one, connect(src, one)])
        stats[model] = (shared, separate)
    pn_sh, pn_sep = stats["pyr2pyr"]
    gb_sh, gb_sep = stats["int2pyr"]
    r = {
        "ga": rec(pn_sh._ref_g_AMPA),
        "ga1": rec(pn_sep[0]._ref_g_AMPA),
        "ga2": rec(pn_sep[1]._ref_g_AMPA),
        "gn": rec(pn_sh._ref_g_NMDA),
        "gn1": rec(pn_sep[0]._ref_g_NMDA),
        "gn2": rec(pn_sep[1]._ref_g_NMDA),
        "gg": rec(gb_sh._ref_g_GABA),
        "gg1": rec(gb_sep[0]._ref_g_GABA),
        "gg2": rec(gb_sep[1]._ref_g_GABA),
        "va": rec(sec_a(0.5)._ref_v),
        "vb": rec(sec_b(0.5)._ref_v),
    }
    run(520, -70)
    r = {k: arr(x) for k, x in r.items()}
    res["merged"] = {
        "dg_ampa": float(np.abs(r["ga"] - r["ga1"] - r["ga2"]).max()),
        "dg_nmda": float(np.abs(r["gn"] - r["gn1"] - r["gn2"]).max()),
        "dg_gaba": float(np.abs(r["gg"] - r["gg1"] - r["gg2"]).max()),
        "g_ampa_max": float(r["ga"].max()),
        "g_nmda_max": float(r["gn"].max()),
        "g_gaba_max": float(r["gg"].max()),
        "dv": float(np.abs(r["va"] - r["vb"]).max()),
        "n_spike_pn": pn_sh.n_spike,
        "n_release_pn": pn_sh.n_release,
        "n_release_pn_sep": sum(s.n_release for s in pn_sep),
        "n_spike_gaba": gb_sh.n_spike,
        "n_release_gaba": gb_sh.n_release,
    }
    del sec_a, sec_b, srcs, objs, stats, pn_sh, pn_sep, gb_sh, gb_sep, r, shared, separate
    del nc, one, src

    # --- errors ---------------------------------------------------------------------------
    def finit_error():
        try:
            h.finitialize(-70)
        except RuntimeError as exc:
            return str(exc)
        return ""

    errs = {}
    sec = cell()
    syn = synapses.pyr2pyr(PN2PN, 0.5, sec)  # weight pending, no stream
    syn.initW = 1.0
    nc = connect(None, syn)
    errs["no_stream"] = finit_error()
    synapses.set_release_stream(syn, 1, 2, 3)
    nc2 = connect(None, syn)
    errs["shared_stream"] = finit_error()
    del syn, nc, nc2
    syn = synapses.pyr2pyr(p1, 0.5, sec)  # P_0 = 1 needs no stream, but a weight
    nc = connect(None, syn)
    errs["pending_weight"] = finit_error()
    del syn, nc
    syn = synapses.int2pyr(SOM2PN, 0.5, sec)
    nc = connect(None, syn)
    errs["no_stream_gaba"] = finit_error()
    del syn, nc
    try:
        synapses.pyr2pyr(dict(PN2PN, tau_r_ampa=0.3), 0.5, sec)
        errs["factory_unknown_key"] = ""
    except ParamsError as exc:
        errs["factory_unknown_key"] = str(exc)
    res["errors"] = errs

    # --- BMTK registration ----------------------------------------------------------------
    from bmtk.simulator.bionet.pyfunction_cache import py_modules

    models = synapses.register(5)
    fn = py_modules.synapse_model("pyr2pyr")
    created = fn(p1, 0.5, sec)
    models.bind(created, p1, "exc_stim", 0)
    res["bmtk"] = {
        "registered": {
            "pyr2pyr": fn is synapses.pyr2pyr,
            "int2pyr": py_modules.synapse_model("int2pyr") is synapses.int2pyr,
        },
        "created": created.hname(),
    }
    res["run_s"] = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    # subprocess entry: python test_synapses.py LIBNRNMECH OUT.json
    _lib, _out = sys.argv[1], sys.argv[2]
    Path(_out).write_text(json.dumps(_scenarios(_lib), indent=1))


def test_edge_normals_are_standard_normal_and_independent():
    # counter-based deviates: the KS test against N(0, 1) and neighbour correlation ~ 0
    from scipy import stats

    z = synapses.edge_normals(123, "exc_stim_to_biophysical", np.arange(100_000))
    assert stats.kstest(z, "norm").pvalue > 1e-3
    r = np.corrcoef(z[:-1], z[1:])[0, 1]
    assert abs(r) < 5 / np.sqrt(z.size)
    other = synapses.edge_normals(123, "prox_inh_stim_to_biophysical", np.arange(100_000))
    assert abs(np.corrcoef(z, other)[0, 1]) < 5 / np.sqrt(z.size)
