"""Synaptic-model JSONs as data (:mod:`builder.core.synmodels`): legacy files and build-time checks.

Legacy project folders carry synapse JSONs with legacy key names and every value a string
(SPEC section 9a); they must be accepted, mean what they meant, and report once per file what
is read differently. No NEURON here (the NEURON side is in ``test_synapses.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_OVERRIDES, TINY_SEED

from builder.core import synmodels
from builder.core.errors import ParamsError
from builder.simulators.neuron import synapses

ROOT = Path(__file__).resolve().parents[1]
SYN_DIR = ROOT / "biophys_components" / "synaptic_models"
L5 = ROOT / "params" / "L5NetParams.json"

# Legacy files as users have them (SPEC section 9a): every value a string.
_STP = {"tauF": "1", "f": "1"}
LEGACY_PN2PN = {
    "level_of_detail": "pyr2pyr",
    "AlphaTmax_ampa": "5",
    "Beta_ampa": "0.5882",
    "Cdur_ampa": "0.2",
    "gbar_ampa": "0.001",
    "Erev_ampa": "0",
    "AlphaTmax_nmda": "3.4483",
    "Beta_nmda": "0.0233",
    "Cdur_nmda": "0.29",
    "gbar_nmda": "0.0005",
    "Erev_nmda": "0",
    "initW": "5",
    "delay": "0.9",
    "tauD1": "35",
    "d1": "0.95",
    "tauD2": "250",
    "d2": "0.8",
    **_STP,
}
_PLASTICITY = {
    "Wmax": "3",
    "Wmin": "0.25",
    "con_pattern": "1",
    "lambda1": "1",
    "lambda2": "0.01",
    "threshold1": "0.5",
    "threshold2": "0.6",
}
_GABA = {
    "level_of_detail": "int2pyr",
    "AlphaTmax_gaba": "1.52",
    "Beta_gaba": "0.14",
    "Cdur_gaba": "0.7254",
    "Erev_gaba": "-75",
    "initW": "1",
    "delay": "2",
}
LEGACY_PV2PN = {
    **_GABA,
    "gbar_gaba": "1",
    "tauD1": "40",
    "d1": "0.7",
    "tauD2": "500",
    "d2": "0.7",
    **_STP,
    **_PLASTICITY,
}
LEGACY_SOM2PN = {
    **_GABA,
    "gbar_gaba": "0.006",
    "tauD1": "200",
    "d1": "0.8",
    "tauD2": "1",
    "d2": "1",
    **_STP,
    **_PLASTICITY,
}
LEGACY = {"PN2PN.json": LEGACY_PN2PN, "PV2PN.json": LEGACY_PV2PN, "SOM2PN.json": LEGACY_SOM2PN}


def _ours(name: str) -> dict:
    return json.loads((SYN_DIR / name).read_text())


class _Sec:
    """A stand-in for a NEURON section: only ``name()`` is used."""

    def __init__(self, name):
        self._name = name

    def name(self):
        return self._name


def _check_file(path: Path) -> tuple[str, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = synmodels.check_model_file(path)
    return model, [w for w in caught if issubclass(w.category, synmodels.LegacySynapseWarning)]


# ============================================================================ legacy files
@pytest.mark.parametrize("name", sorted(LEGACY))
def test_legacy_file_accepted_with_one_warning(tmp_path, name):
    path = tmp_path / name
    path.write_text(json.dumps(LEGACY[name], indent=1))
    model, caught = _check_file(path)
    assert model == LEGACY[name]["level_of_detail"]
    assert len(caught) == 1, [str(w.message) for w in caught]
    msg = str(caught[0].message)
    assert msg.startswith(f"{path}: legacy-style {model} synapse model: ")
    # the edges' delay is what the simulation uses
    assert f"delay {LEGACY[name]['delay']!r} not applied" in msg
    assert "each edge's delay" in msg
    if model == "int2pyr":
        listed = ", ".join(f"{k}={v!r}" for k, v in _PLASTICITY.items())
        assert f"not modelled, ignored: {listed}" in msg
        assert "0.06 on somatic sections and 0.1 on all others (its initW '1' unused)" in msg
        assert "gbar_gaba" in msg and "applied" in msg  # the legacy defect, now fixed
    else:
        assert "not modelled" not in msg
        assert "initW '5' read as the legacy switch" in msg
        assert "mean 0.45 and sd 0.345, clipped to [0, 5]" in msg


def test_legacy_aliases_map_to_our_parameters():
    pn = synmodels.build_plan(LEGACY_PN2PN, "pyr2pyr")
    assert dict(pn.settings) == {
        "kinetic": 1.0,
        "AlphaTmax_AMPA": 5.0,
        "Beta_AMPA": 0.5882,
        "Cdur_AMPA": 0.2,
        "gbar_AMPA": 0.001,
        "e_AMPA": 0.0,
        "AlphaTmax_NMDA": 3.4483,
        "Beta_NMDA": 0.0233,
        "Cdur_NMDA": 0.29,
        "gbar_NMDA": 0.0005,
        "e_NMDA": 0.0,
        "tauD1": 35.0,
        "d1": 0.95,
        "tauD2": 250.0,
        "d2": 0.8,
        "tauF": 1.0,
        "f": 1.0,
    }
    assert pn.legacy and pn.init_w == 5.0
    for plan, gbar, stp in (
        (synmodels.build_plan(LEGACY_PV2PN, "int2pyr"), 1.0, (40.0, 0.7, 500.0, 0.7)),
        (synmodels.build_plan(LEGACY_SOM2PN, "int2pyr"), 0.006, (200.0, 0.8, 1.0, 1.0)),
    ):
        s = dict(plan.settings)
        assert s == {
            "AlphaTmax_GABA": 1.52,
            "Beta_GABA": 0.14,
            "Cdur_GABA": 0.7254,
            "gbar_GABA": gbar,
            "e_GABA": -75.0,
            "tauD1": stp[0],
            "d1": stp[1],
            "tauD2": stp[2],
            "d2": stp[3],
            "tauF": 1.0,
            "f": 1.0,
        }
        assert "kinetic" not in s and "delay" not in s and "Wmax" not in s


def test_legacy_pn2pn_draws_the_legacy_lognormal():
    # legacy meaning of initW in a pyr2pyr file: lognormal(0.45, 0.345) clipped to [0, 5] --
    # exactly what our PN2PN.json writes out as weight_distribution, so the same draws
    plan = synmodels.build_plan(LEGACY_PN2PN, "pyr2pyr")
    assert plan.distribution == synmodels.Lognormal(0.45, 0.345, 0.0, 5.0)
    ids = np.arange(1000)
    legacy = synapses.draw_weights(LEGACY_PN2PN, 9, "exc_stim", ids)
    ours = synapses.draw_weights(_ours("PN2PN.json"), 9, "exc_stim", ids)
    assert np.array_equal(legacy, ours)
    assert synapses.has_weight_distribution(LEGACY_PN2PN)


@pytest.mark.parametrize("params", [LEGACY_PV2PN, LEGACY_SOM2PN], ids=["PV2PN", "SOM2PN"])
@pytest.mark.parametrize(
    "section,expected", [("L5PCtemplate[0].soma[0]", 0.06), ("L5PCtemplate[0].dend[3]", 0.1)]
)
def test_legacy_int2pyr_weight_by_section(params, section, expected):
    # legacy int2pyr: 0.06 on somatic sections, 0.1 elsewhere, whatever initW says
    w = synapses.connection_weight({**params, "initW": "7"}, _Sec(section), 1, "inh", 0)
    assert w == expected


def test_legacy_weight_rules_yield_to_ours():
    # a legacy-style file that states the weight our way keeps it
    pn = synmodels.build_plan({**LEGACY_PN2PN, "weight_distribution": {
        "type": "lognormal", "mean": "1", "sd": "0.1", "max": "2"}}, "pyr2pyr")  # fmt: skip
    assert pn.distribution == synmodels.Lognormal(1.0, 0.1, 0.0, 2.0)
    assert not any("legacy switch" in n for n in pn.notes)
    pv = synmodels.build_plan({**LEGACY_PV2PN, "initW_soma": "0.5"}, "int2pyr")
    assert (pv.init_w_soma, pv.init_w_dend, pv.init_w) == (0.5, None, 1.0)
    assert pv.weight_for(_Sec("a.dend[0]")) == 1.0
    # numbers, our keys, no legacy key: our meaning (initW is the fixed factor), no warning
    plain = {k: v for k, v in _ours("PN2PN.json").items() if k != "weight_distribution"}
    plan = synmodels.build_plan(plain, "pyr2pyr")
    assert plan.distribution is None and plan.init_w == 5.0
    assert not plan.legacy and plan.warning("x") is None


def test_our_files_give_no_warning():
    for name in ("PN2PN.json", "PV2PN.json", "SOM2PN.json"):
        model, caught = _check_file(SYN_DIR / name)
        assert caught == []
        plan = synmodels.load_model_file(SYN_DIR / name)[1]
        assert not plan.legacy and plan.notes == ()
        assert dict(plan.settings).get("kinetic", 0.0) == 0.0  # dual exponentials by default


def test_numeric_strings_are_numbers_for_our_keys_too():
    pn = _ours("PN2PN.json")
    as_strings = {
        k: (str(v) if isinstance(v, float) else v) for k, v in pn.items() if k != "comment"
    }
    a = synmodels.build_plan(pn, "pyr2pyr")
    b = synmodels.build_plan(as_strings, "pyr2pyr")
    assert a.settings == b.settings and a.distribution == b.distribution
    assert b.legacy and not a.legacy


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"gbar_gaba": "one"}, "gbar_gaba: 'one' is not valid; use a number >= 0"),
        ({"d1": "0.7x"}, "d1: '0.7x' is not valid; use a number in [0, 1]"),
        ({"tauD1": "nan"}, "tauD1: 'nan' is not valid; use a number > 0"),
        ({"delay": "soon"}, "delay: 'soon' is not valid; use a number >= 0"),
        ({"gbar_GABA": 1.0}, "gbar_GABA: sets gbar_GABA, already set by gbar_gaba"),
        (
            {"Wmx": "3"},
            "Wmx: unknown key for synapse model 'int2pyr'; did you mean 'Wmax'?",
        ),
        (
            {"AlphaTmax_gabba": "1"},
            "AlphaTmax_gabba: unknown key for synapse model 'int2pyr'; did you mean "
            "'AlphaTmax_GABA'?",
        ),
    ],
)
def test_legacy_int2pyr_errors(change, expected):
    with pytest.raises(ParamsError) as err:
        synmodels.build_plan({**LEGACY_PV2PN, **change}, "int2pyr", "PV2PN.json")
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems
    assert len(err.value.problems) == 1


@pytest.mark.parametrize(
    "change,expected",
    [
        (
            {"tau_r_AMPA": 0.2},
            "tau_r_AMPA: dual-exponential keys in a file with kinetic-scheme keys "
            "(AlphaTmax_ampa, Beta_ampa, Cdur_ampa, AlphaTmax_nmda",
        ),
        ({"e": 0}, "e: sets e_AMPA, e_NMDA, already set by Erev_ampa, Erev_nmda"),
        ({"Cdur_ampa": "0"}, "Cdur_ampa: '0' is not valid; use a number > 0"),
    ],
)
def test_legacy_pyr2pyr_errors(change, expected):
    with pytest.raises(ParamsError) as err:
        synmodels.build_plan({**LEGACY_PN2PN, **change}, "pyr2pyr", "PN2PN.json")
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


def test_kinetic_keys_for_one_receptor_switch_both():
    # our names work as well; receptors without keys keep the mechanism's kinetic defaults
    plan = synmodels.build_plan({"level_of_detail": "pyr2pyr", "Cdur_NMDA": 0.5}, "pyr2pyr")
    assert dict(plan.settings) == {"Cdur_NMDA": 0.5, "kinetic": 1.0}
    with pytest.raises(ParamsError, match="tau_d_NMDA: dual-exponential keys"):
        synmodels.build_plan({"Cdur_AMPA": 0.5, "tau_d_NMDA": 40}, "pyr2pyr")


def test_e_sets_both_reversals():
    plan = synmodels.build_plan({"e": -5, "level_of_detail": "pyr2pyr"}, "pyr2pyr")
    assert dict(plan.settings) == {"e_AMPA": -5.0, "e_NMDA": -5.0, "kinetic": 0.0}
    plan = synmodels.build_plan({"e_NMDA": "-3"}, "pyr2pyr")
    assert dict(plan.settings)["e_NMDA"] == -3.0


def test_check_model_params_warns_once_with_source():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        synmodels.check_model_params(LEGACY_SOM2PN, "int2pyr", source="SOM2PN.json")
    assert len(caught) == 1 and caught[0].category is synmodels.LegacySynapseWarning
    assert str(caught[0].message).startswith("SOM2PN.json: legacy-style int2pyr")


def test_neuromodulation_keys_reported_not_errors():
    keys = {"aACH": 1, "bACH": 0, "wACH": 0.5, "aDA": 1, "bDA": 0, "wDA": 0.5}
    plan = synmodels.build_plan({**_ours("SOM2PN.json"), **keys}, "int2pyr")
    assert len(plan.notes) == 1
    assert plan.notes[0].endswith(
        "not modelled, ignored: aACH=1, bACH=0, wACH=0.5, aDA=1, bDA=0, wDA=0.5"
    )
    # reported only: a file in our names and numbers keeps our weight meaning
    assert not plan.legacy
    assert (plan.init_w_soma, plan.init_w_dend, plan.init_w) == (None, None, 1.0)
    assert plan.warning("SOM2PN.json").startswith("SOM2PN.json: int2pyr synapse model: long-term")


def test_core_module_does_not_import_neuron():
    code = (
        "import sys, builder.core.synmodels, builder.commands.build; "
        "bad = [m for m in sys.modules if m == 'neuron' or m.startswith('bmtk.simulator')]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# ============================================================================ at build time
def _project_copy(tmp_path: Path, files: dict[str, dict]) -> Path:
    """Params whose components_dir is a copy of ours with ``files`` as synaptic models."""
    comp = tmp_path / "components"
    shutil.copytree(ROOT / "biophys_components", comp)
    for name, content in files.items():
        (comp / "synaptic_models" / name).write_text(json.dumps(content, indent=1))
    data = json.loads(L5.read_text())
    data["cell"]["components_dir"] = str(comp)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(data))
    return params


def _build(params: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "build_network.py"), str(params), str(TINY_SEED)]
    cmd += ["-o", str(out), *extra]
    for item in TINY_OVERRIDES:
        cmd += ["--set", item]
    return subprocess.run(cmd, cwd=out.parent, capture_output=True, text=True, timeout=300)


def test_build_with_a_typo_exits_2_and_writes_nothing(tmp_path):
    typo = {**_ours("PV2PN.json"), "gbar_GABBA": 0.5}
    params = _project_copy(tmp_path, {"PV2PN.json": typo})
    work = tmp_path / "work"
    work.mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    res = _build(params, work / "net")
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("build-network: error: ")
    path = tmp_path / "components" / "synaptic_models" / "PV2PN.json"
    assert f"{path}: 1 problem found" in res.stderr
    assert "gbar_GABBA: unknown key for synapse model 'int2pyr'; did you mean 'gbar_GABA'" in (
        res.stderr
    )
    assert "Traceback" not in res.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.neuron  # builds the default cell's segment table
def test_build_check_reports_a_typo(tmp_path):
    typo = {**LEGACY_PN2PN, "Beta_ampx": "0.5"}
    params = _project_copy(tmp_path, {"PN2PN.json": typo})
    res = _build(params, tmp_path / "net", "--check")
    assert res.returncode == 2
    assert "PN2PN.json" in res.stderr and "Beta_ampx: unknown key" in res.stderr
    assert "did you mean 'Beta_AMPA'" in res.stderr


@pytest.mark.neuron  # builds the default cell's segment table
def test_build_with_legacy_files_warns_once_per_file(tmp_path):
    params = _project_copy(tmp_path, LEGACY)
    out = tmp_path / "net"
    res = _build(params, out, "-q")
    assert res.returncode == 0, res.stderr
    for name in LEGACY:
        path = tmp_path / "components" / "synaptic_models" / name
        assert res.stderr.count(f"{path}: legacy-style") == 1, res.stderr
        # the legacy file goes into the network unchanged, and names its model
        copied = out / "components" / "synaptic_models" / name
        assert json.loads(copied.read_text()) == LEGACY[name]
    assert res.stderr.count("legacy-style") == 3
    assert res.stderr.count("Wmax='3'") == 2  # PV2PN and SOM2PN
    types = (out / "network" / "exc_stim_biophysical_edge_types.csv").read_text()
    assert "pyr2pyr" in types and "PN2PN.json" in types


# ============================================================================ at run time
@pytest.mark.neuron
@pytest.mark.slow
@pytest.mark.parametrize("merge", [True, False], ids=["merged", "one-pp-per-edge"])
def test_network_with_legacy_files_runs_and_warns_once_per_file(
    tiny_network, run_network, tmp_path, merge
):
    net = tmp_path / "net"
    shutil.copytree(tiny_network, net, ignore=shutil.ignore_patterns("output"))
    for name, content in LEGACY.items():
        (net / "components" / "synaptic_models" / name).write_text(json.dumps(content))
    res = run_network(net, *([] if merge else ["--no-merge"]), timeout_s=300)
    assert res.returncode == 0, res.describe()
    for name in LEGACY:
        path = net / "components" / "synaptic_models" / name
        assert res.stderr.count(f"{path}: legacy-style") == 1, res.describe()
    assert res.stderr.count("legacy-style") == 3, res.describe()
    assert (net / "output" / "spikes.h5").is_file()
