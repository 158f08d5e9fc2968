"""Network specs end to end: validation messages, the command line, determinism, the SONATA
files (libsonata and BMTK read them) and the four examples at a small scale."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from builder.commands.cli import main
from builder.core.errors import BuildError
from builder.core.sonata import edge_index
from builder.core.spec import NetworkBuilder, is_spec_file, load_spec

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

BASE = {
    "format": "l5net-spec/1",
    "seed": 3,
    "regions": {
        "box": {"shape": "box", "size_um": [200, 200, 200]},
        "sheet": {
            "shape": "layered",
            "size_um": [300, 300],
            "layers": [{"name": "A", "thickness_um": 50}, {"name": "B", "thickness_um": 100}],
        },
    },
    "populations": {
        "E": {
            "count": 300,
            "region": "box",
            "model": {"type": "point", "nest_model": "iaf_psc_exp", "params": {"C_m": 250.0}},
            "properties": {"kind": "e", "gain": {"distribution": "uniform", "low": 0, "high": 1}},
            "rotations": {"z": "random"},
        },
        "I": {
            "density_per_mm3": {"A": 20000, "B": 5000},
            "region": "sheet",
            "model": {"type": "point", "nest_model": "iaf_psc_exp"},
        },
        "S": {"count": 60, "model": {"type": "virtual"}},
    },
    "connections": {
        "EE": {
            "source": "E",
            "target": "E",
            "rule": {"name": "fixed_total_number", "n": 4000, "autapses": False},
            "weight": {"distribution": "normal", "mean": 87.8, "rel_sd": 0.1, "keep_sign": True},
            "delay_ms": {"distribution": "normal", "mean": 1.5, "rel_sd": 0.5, "min": 0.1},
        },
        "EI": {
            "source": "E",
            "target": "I",
            "rule": {"name": "pairwise_bernoulli", "p": 0.1},
            "weight": 10,
            "synapses_per_connection": 2,
        },
        "IE": {
            "source": "I",
            "target": {"population": "E", "where": {"gain": {"min": 0.5}}},
            "rule": {
                "name": "pairwise_bernoulli",
                "p": {"profile": "gaussian", "sigma_um": 60, "p0": 0.7},
            },
            "weight": -40,
            "delay_ms": {"velocity_um_per_ms": 300, "constant_ms": 0.5},
        },
        "SE": {
            "source": "S",
            "target": "E",
            "rule": {"name": "fixed_outdegree", "outdegree": 30, "multapses": False},
            "weight": 20,
        },
    },
    "inputs": {
        "bg": {
            "type": "spikes",
            "population": "S",
            "train": {
                "kind": "poisson",
                "rate_hz": {"distribution": "uniform", "low": 5, "high": 15},
            },
        },
        "pg": {
            "type": "poisson_generator",
            "target": "E",
            "rate_hz": 8,
            "indegree": 100,
            "weight": 87.8,
        },
        "dc": {"type": "dc", "target": "I", "amplitude_pA": 100},
    },
    "run": {"duration_ms": 400},
}


def _write(tmp_path: Path, data: dict, name: str = "net.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def _digests(outdir: Path) -> dict[str, str]:
    return {
        p.relative_to(outdir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(outdir.rglob("*"))
        if p.is_file() and not p.name.startswith(".l5net")
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("spec")
    spec_file = _write(d, BASE)
    out = d / "out"
    assert main([str(spec_file), "-o", str(out), "-q"]) == 0
    return spec_file, out


# ------------------------------------------------------------------ bad input
def _mod(path, value):
    def f(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        if value is _DEL:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return f


_DEL = object()

BAD = [
    (
        "unknown population",
        _mod(("connections", "EE", "source"), "Foo"),
        'connections.EE.source: "Foo" is not a population',
    ),
    (
        "p outside [0, 1]",
        _mod(("connections", "EI", "rule", "p"), 1.5),
        "connections.EI.rule.p: 1.5 is greater than the maximum of 1",
    ),
    (
        "in-degree too large",
        _mod(
            ("connections", "EE", "rule"),
            {"name": "fixed_indegree", "indegree": 300, "autapses": False, "multapses": False},
        ),
        "connections.EE.rule.indegree: 300 is larger than the 299 eligible cells of E",
    ),
    (
        "negative count",
        _mod(("populations", "E", "count"), -5),
        "populations.E.count: -5 is less than the minimum of 0",
    ),
    (
        "layer without thickness",
        _mod(("regions", "sheet", "layers", 1), {"name": "B"}),
        "regions.sheet.layers[1].thickness_um: required key is missing",
    ),
    (
        "unknown distribution",
        _mod(("connections", "EE", "weight"), {"distribution": "gauss", "mean": 1}),
        'connections.EE.weight.distribution: "gauss" is not one of',
    ),
    (
        "missing file",
        _mod(("inputs", "bg", "train"), {"kind": "file", "path": "nope.h5"}),
        'inputs.bg.train.path: "nope.h5" not found',
    ),
    (
        "missing morphology",
        _mod(
            ("populations", "E", "model"),
            {"type": "biophysical", "template": "ctdb:Biophys1.hoc", "morphology": "gone.swc"},
        ),
        'populations.E.model.morphology: "gone.swc" not found',
    ),
    ("unknown key", _mod(("populations", "E", "colour"), 1), "populations.E.colour: unknown key"),
    (
        "one_to_one sizes",
        _mod(("connections", "SE", "rule"), {"name": "one_to_one"}),
        "connections.SE.rule.name",
    ),
    (
        "density without region",
        _mod(("populations", "I", "region"), _DEL),
        "populations.I.region: required key is missing",
    ),
    (
        "warm-up as long as the run",
        _mod(("run", "warmup_ms"), 1e6),
        "run.warmup_ms: 1e+06: the warm-up must end before the run does",
    ),
    (
        "layer of no region",
        _mod(("populations", "E", "layers"), ["A"]),
        'populations.E.layers[0]: "A" is not a layer of box',
    ),
]


@pytest.mark.parametrize("name,mod,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_one_message_exit_2_nothing_written(tmp_path, capsys, name, mod, expected):
    data = copy.deepcopy(BASE)
    mod(data)
    spec_file = _write(tmp_path, data)
    out = tmp_path / "out"
    assert main([str(spec_file), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(spec_file) in err and expected in err, err
    assert "Traceback" not in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json"]


def test_every_problem_at_once(tmp_path, capsys):
    data = copy.deepcopy(BASE)
    data["populations"]["E"]["count"] = -1
    data["connections"]["EE"]["target"] = "Nope"
    data["connections"]["EI"]["rule"]["p"] = 2
    assert main([str(_write(tmp_path, data)), "--check"]) == 2
    err = capsys.readouterr().err
    assert "3 problems found" in err
    for key in ("populations.E.count", "connections.EE.target", "connections.EI.rule.p"):
        assert key in err


def test_override_is_blamed(tmp_path, capsys):
    spec_file = _write(tmp_path, BASE)
    assert main([str(spec_file), "--set", "connections.EI.rule.p=3", "--check"]) == 2
    err = capsys.readouterr().err
    assert "--set connections.EI.rule.p=3" in err and str(spec_file) in err


# ------------------------------------------------------------------ command line
def test_legacy_params_are_not_specs(tmp_path):
    assert not is_spec_file(REPO / "params" / "L5NetParams.json")
    assert is_spec_file(EXAMPLES / "microcircuit.json")
    assert is_spec_file(tmp_path / "anything.yaml")


def test_check_prints_counts_and_writes_nothing(tmp_path, capsys):
    spec_file = _write(tmp_path, BASE)
    assert main([str(spec_file), "--check", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "nodes E = 300" in out and "edges EE = 4000" in out
    assert "edges SE = 1800" in out and "disk =" in out and "peak memory =" in out
    assert not (tmp_path / "out").exists()


def test_yaml_spec(tmp_path):
    yaml = pytest.importorskip("yaml")
    data = copy.deepcopy(BASE)
    del data["connections"]["IE"]
    p = tmp_path / "net.yaml"
    p.write_text(yaml.safe_dump(data))
    assert main([str(p), "-o", str(tmp_path / "y"), "-q"]) == 0
    assert (tmp_path / "y" / "network" / "EE_edges.h5").is_file()


def test_output_refuses_foreign_files_without_force(tmp_path, capsys):
    spec_file = _write(tmp_path, BASE)
    out = tmp_path / "out"
    (out / "network").mkdir(parents=True)
    (out / "network" / "EE_edges.h5").write_text("mine")
    assert main([str(spec_file), "-o", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (out / "network" / "EE_edges.h5").read_text() == "mine"
    assert main([str(spec_file), "-o", str(out), "--force", "-q"]) == 0


# ------------------------------------------------------------------ the files
def test_files_are_valid_sonata(built):
    libsonata = pytest.importorskip("libsonata")
    _, out = built
    cc = libsonata.CircuitConfig.from_file(str(out / "circuit_config.json"))
    assert cc.node_populations == {"E", "I", "S"}
    assert cc.edge_populations == {"EE", "EI", "IE", "SE"}
    assert cc.node_population("I").size == round(20000 * 300 * 300 * 50 / 1e9) + round(
        5000 * 300 * 300 * 100 / 1e9
    )
    e = cc.edge_population("EE")
    assert e.size == 4000 and e.source == "E" and e.target == "E"
    src = e.source_nodes(e.select_all())
    trg = e.target_nodes(e.select_all())
    assert not np.any(src == trg)
    w = e.get_attribute("syn_weight", e.select_all())
    assert np.all(w > 0)
    d = e.get_attribute("delay", e.select_all())
    assert d.min() >= 0.1
    for t in (0, 7, 299):
        assert sorted(e.afferent_edges([t]).flatten()) == list(np.flatnonzero(trg == t))
    for s in (0, 5):
        assert sorted(e.efferent_edges([s]).flatten()) == list(np.flatnonzero(src == s))
    # nsyns folded into the weight of point targets
    ei = cc.edge_population("EI")
    assert np.all(ei.get_attribute("syn_weight", ei.select_all()) == 20.0)
    # the where-selection of IE: only targets with gain >= 0.5
    nodes = cc.node_population("E")
    gain = nodes.get_attribute("gain", nodes.select_all())
    ie = cc.edge_population("IE")
    assert np.all(gain[ie.target_nodes(ie.select_all())] >= 0.5)
    spikes = libsonata.SpikeReader(str(out / "inputs" / "bg_spikes.h5"))["S"]
    assert spikes.sorting == "by_id"
    ids, ts = np.array(spikes.get()).T
    assert ts.min() >= 0 and ts.max() < 400 and ids.max() < 60
    # the simulation config: BMTK's spike module name, libsonata's own
    sim = json.loads((out / "simulation_config.json").read_text())
    assert sim["target_simulator"] == "NEST"
    assert [g["name"] for g in sim["generators"]] == ["pg"]
    for inp in sim["inputs"].values():
        if inp["input_type"] == "spikes":
            inp["module"] = "synapse_replay"
    sim["target_simulator"] = "NEURON"  # libsonata knows NEURON and CORENEURON only
    cfg = libsonata.SimulationConfig(json.dumps(sim), str(out))
    assert set(cfg.list_input_names) == {"bg", "dc"} and cfg.run.tstop == 400


def test_indices_equal_the_in_memory_ones(built):
    _, out = built
    for name in ("EE", "EI", "IE", "SE"):
        with h5py.File(out / "network" / f"{name}_edges.h5") as h5:
            g = h5["edges"][name]
            for idx, col in (
                ("source_to_target", "source_node_id"),
                ("target_to_source", "target_node_id"),
            ):
                n = g["indices"][idx]["node_id_to_ranges"].shape[0]
                a, b = edge_index(g[col][()], n)
                assert np.array_equal(a, g["indices"][idx]["node_id_to_ranges"][()])
                assert np.array_equal(b, g["indices"][idx]["range_to_edge_id"][()])
            assert set(np.unique(g["edge_type_id"][()])) == {
                int(row.split()[0])
                for row in (out / "network" / f"{name}_edge_types.csv").read_text().splitlines()[1:]
            }


def test_bmtk_reads_the_files(built):
    pytest.importorskip("bmtk")
    from bmtk.utils.sonata import File

    _, out = built
    f = File(
        data_files=[str(out / "network" / "EE_edges.h5"), str(out / "network" / "E_nodes.h5")],
        data_type_files=[
            str(out / "network" / "EE_edge_types.csv"),
            str(out / "network" / "E_node_types.csv"),
        ],
    )
    edges = list(f.edges["EE"].get_target(3))
    assert edges and all(e.target_node_id == 3 for e in edges)
    assert edges[0]["model_template"] == "static_synapse"
    node = next(iter(f.nodes["E"]))
    assert node["model_template"] == "nest:iaf_psc_exp" and node["model_type"] == "point_neuron"


# ------------------------------------------------------------------ determinism
def test_chunk_size_does_not_change_a_byte(tmp_path):
    spec = load_spec(_write(tmp_path, BASE))
    NetworkBuilder(spec, chunk_edges=97).build(tmp_path / "a")
    NetworkBuilder(spec, chunk_edges=1 << 20).build(tmp_path / "b")
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_same_seed_same_files_other_seed_other_edges(tmp_path, built):
    spec_file, out = built
    assert main([str(spec_file), "-o", str(tmp_path / "again"), "-q"]) == 0
    assert _digests(out) == _digests(tmp_path / "again")
    assert main([str(spec_file), "4", "-o", str(tmp_path / "other"), "-q"]) == 0
    a, b = _digests(out), _digests(tmp_path / "other")
    for name in ("EE", "EI", "IE", "SE"):
        assert a[f"network/{name}_edges.h5"] != b[f"network/{name}_edges.h5"]
    # the resolved spec and the config both name the seed the build used
    assert json.loads((tmp_path / "other" / "spec.json").read_text())["seed"] == 4
    config = json.loads((tmp_path / "other" / "simulation_config.json").read_text())
    assert config["run"]["random_seed"] == 4


def test_changing_one_projection_leaves_the_others(tmp_path, built):
    spec_file, out = built
    assert (
        main(
            [str(spec_file), "-o", str(tmp_path / "x"), "-q", "--set", "connections.EI.rule.p=0.2"]
        )
        == 0
    )
    a, b = _digests(out), _digests(tmp_path / "x")
    assert a["network/EI_edges.h5"] != b["network/EI_edges.h5"]
    for name in ("EE", "IE", "SE"):
        assert a[f"network/{name}_edges.h5"] == b[f"network/{name}_edges.h5"]
    assert a["inputs/bg_spikes.h5"] == b["inputs/bg_spikes.h5"]


def test_sweep_with_a_spec_base(tmp_path):
    data = copy.deepcopy(BASE)
    del data["connections"]["IE"]
    _write(tmp_path, data)
    sweep = tmp_path / "sweep.json"
    sweep.write_text(
        json.dumps({"base": "net.json", "overrides": {"scale": [0.5, 1.0]}, "seeds": [1]})
    )
    assert main(["sweep", str(sweep), "-o", str(tmp_path / "sw"), "-q"]) == 0
    n = [
        json.loads((tmp_path / "sw" / r / "spec.json").read_text())["populations"]["E"]["count"]
        for r in ("r000", "r001")
    ]
    assert n == [150, 300]


# ------------------------------------------------------------------ scale and examples
_PD_N = [20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948]
_PD_P = [
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
    [0.0077, 0.0059, 0.0497, 0.135, 0.0067, 0.0003, 0.0453, 0.0],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.06, 0.3158, 0.0086, 0.0],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.001, 0.0034, 0.0005, 0.0277, 0.008, 0.0658, 0.1443],
]
_PD_POPS = ["L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I"]


def test_microcircuit_numbers_are_the_published_ones():
    spec = json.loads((EXAMPLES / "microcircuit.json").read_text())
    assert [spec["populations"][p]["count"] for p in _PD_POPS] == _PD_N
    total = 0
    for i, tp in enumerate(_PD_POPS):
        for j, sp in enumerate(_PD_POPS):
            p = _PD_P[i][j]
            name = f"{sp}_to_{tp}"
            if p == 0:
                assert name not in spec["connections"]
                continue
            c = spec["connections"][name]
            k = math.log(1 - p) / math.log(1 - 1 / (_PD_N[i] * _PD_N[j]))
            assert c["rule"] == {
                "name": "fixed_total_number",
                "n": round(k),
                "autapses": True,
                "multapses": True,
            }
            w = 87.8 * (2 if (sp, tp) == ("L4E", "L23E") else 1) * (1 if j % 2 == 0 else -4)
            assert c["weight"]["mean"] == pytest.approx(w) and c["weight"]["rel_sd"] == 0.1
            assert c["delay_ms"]["mean"] == (1.5 if j % 2 == 0 else 0.75)
            assert c["delay_ms"]["rel_sd"] == 0.5
            total += c["rule"]["n"]
    assert total == pytest.approx(2.99e8, rel=0.005)
    assert [spec["inputs"][f"bg_{p}"]["indegree"] for p in _PD_POPS] == [
        1600,
        1500,
        2100,
        1900,
        2000,
        1900,
        2900,
        2100,
    ]


def test_scale_scales_n_k_weights_and_compensates_dc():
    s = 0.1
    full = load_spec(EXAMPLES / "microcircuit.json")
    small = load_spec(EXAMPLES / "microcircuit.json", overrides={"scale": s})
    pops = full.populations
    assert small.populations["L4E"]["count"] == round(21915 * s)
    c_full, c_small = full.connections["L4E_to_L23E"], small.connections["L4E_to_L23E"]
    assert c_small["rule"]["n"] == round(c_full["rule"]["n"] * s * s)
    assert c_small["weight"]["mean"] == pytest.approx(2 * 87.8 / math.sqrt(s))
    assert small.inputs["bg_L23E"]["indegree"] == 160
    assert small.inputs["bg_L23E"]["weight"] == pytest.approx(87.8 / math.sqrt(s))
    # DC: 0.001 tau_syn (1 - sqrt(s)) (sum_j w_ij K_ij rate_j + w_ext K_ext bg_rate)
    lost = 0.0
    for c in full.connections.values():
        if c["target"] == "L23E":
            k_in = c["rule"]["n"] / pops["L23E"]["count"]
            lost += c["weight"]["mean"] * k_in * pops[c["source"]]["mean_rate_hz"]
    lost += 87.8 * 1600 * 8.0
    i_e = small.populations["L23E"]["model"]["params"]["I_e"]
    assert i_e == pytest.approx(0.001 * 0.5 * (1 - math.sqrt(s)) * lost)
    assert full.populations["L23E"]["model"]["params"]["I_e"] == 0.0


EXAMPLE_RUNS = {
    "microcircuit": ["--set", "scale=0.01"],
    "adexp_tf": [],
    "lfpy_network": [],
    "layered_volume": [],
}


#: Examples with biophysical cells: their synapses are placed on the segment table NEURON derives.
NEEDS_NEURON = {"lfpy_network", "layered_volume"}


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(e, marks=pytest.mark.neuron) if e in NEEDS_NEURON else e
        for e in sorted(EXAMPLE_RUNS)
    ],
)
def test_examples_build(tmp_path, example):
    libsonata = pytest.importorskip("libsonata")
    out = tmp_path / example
    assert (
        main([str(EXAMPLES / f"{example}.json"), "-o", str(out), "-q", *EXAMPLE_RUNS[example]]) == 0
    )
    cc = libsonata.CircuitConfig.from_file(str(out / "circuit_config.json"))
    spec = json.loads((out / "spec.json").read_text())
    assert cc.node_populations == set(spec["populations"])
    assert cc.edge_populations == set(spec.get("connections", {}))
    for name in cc.edge_populations:
        e = cc.edge_population(name)
        assert (
            len(e.afferent_edges(list(range(cc.node_population(e.target).size))).flatten())
            == e.size
        )
    for f in (out / "inputs").glob("*.h5") if (out / "inputs").is_dir() else []:
        libsonata.SpikeReader(str(f))


@pytest.mark.neuron
def test_layered_volume_places_somata_in_their_layers(tmp_path):
    out = tmp_path / "lv"
    assert main([str(EXAMPLES / "layered_volume.json"), "-o", str(out), "-q"]) == 0
    bounds = {"SO": (0, 100), "SP": (100, 150), "SR": (150, 350), "SLM": (350, 450)}
    want = {"PYR": ["SP"], "PVBC": ["SO", "SP"], "OLM": ["SO"], "STIM": ["SLM"]}
    counts = {"PYR": 80, "PVBC": 53, "OLM": 44, "STIM": 10}
    for pop, layers in want.items():
        with h5py.File(out / "network" / f"{pop}_nodes.h5") as h5:
            g = h5["nodes"][pop]["0"]
            z = g["z"][()]
            lay = g["layer"].asstr()[()]
            assert len(z) == counts[pop]
            assert set(lay) <= set(layers)
            for zi, li in zip(z, lay, strict=True):
                assert bounds[li][0] <= zi <= bounds[li][1]
    with (
        h5py.File(out / "network" / "OLM_to_PYR_edges.h5") as h5,
        h5py.File(out / "network" / "OLM_nodes.h5") as hs,
        h5py.File(out / "network" / "PYR_nodes.h5") as ht,
    ):
        g = h5["edges"]["OLM_to_PYR"]
        s, t = g["source_node_id"][()], g["target_node_id"][()]
        dx = np.abs(hs["nodes/OLM/0/x"][()][s] - ht["nodes/PYR/0/x"][()][t])
        dy = np.abs(hs["nodes/OLM/0/y"][()][s] - ht["nodes/PYR/0/y"][()][t])
        assert np.all(dx <= 420) and np.all(dy <= 250)
        d = g["0"]["delay"][()]
        assert np.all(d >= 0.05)
        np.testing.assert_allclose(d, np.maximum(np.hypot(dx, dy) / 250.0, 0.05))


def test_spec_reference_is_in_sync():
    spec = importlib.util.spec_from_file_location(
        "gen_spec_reference", REPO / "scripts" / "gen_spec_reference.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (REPO / "docs" / "spec.md").read_text(encoding="utf-8") == mod.render(), (
        "docs/spec.md is stale: run python scripts/gen_spec_reference.py"
    )


@pytest.mark.parametrize("chunk,budget", [(7, 13), (1000, 1 << 20)])
def test_stream_writer_matches_write_edges(tmp_path, chunk, budget):
    from builder.core.sonata import EdgeStreamWriter, write_edges

    rng = np.random.default_rng(5)
    n_src, n_trg, n = 40, 30, 900
    trg = np.sort(rng.integers(0, n_trg, n))
    src = rng.integers(0, n_src, n)
    order = np.lexsort((src, trg))
    src, trg = src[order], trg[order]  # with multapses (repeated pairs)
    w = rng.normal(size=n)
    types = [{"edge_type_id": 5, "model_template": "static_synapse"}]
    write_edges(
        tmp_path / "a.h5",
        tmp_path / "a.csv",
        "e",
        "s",
        "t",
        src,
        trg,
        np.full(n, 5),
        types,
        {"syn_weight": w},
        n_source_nodes=n_src,
        n_target_nodes=n_trg,
    )
    with EdgeStreamWriter(
        tmp_path / "b.h5",
        tmp_path / "b.csv",
        "e",
        "s",
        "t",
        n_edges=n,
        n_source_nodes=n_src,
        n_target_nodes=n_trg,
        edge_types=types,
        columns={"syn_weight": "f8"},
        chunk_edges=chunk,
        index_budget=budget,
    ) as wr:
        for a in range(0, n, 101):  # appends that split targets
            wr.append(src[a : a + 101], trg[a : a + 101], 5, {"syn_weight": w[a : a + 101]})
    with h5py.File(tmp_path / "a.h5") as ha, h5py.File(tmp_path / "b.h5") as hb:

        def walk(name, obj):
            if isinstance(obj, h5py.Dataset):
                assert np.array_equal(obj[()], hb[name][()]), name

        ha.visititems(walk)
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_stream_writer_rejects_unsorted_and_short(tmp_path):
    from builder.core.sonata import EdgeStreamWriter

    kw = dict(n_edges=3, n_source_nodes=5, n_target_nodes=5, edge_types=[{"edge_type_id": 1}])
    with pytest.raises(ValueError, match="sorted"):
        with EdgeStreamWriter(tmp_path / "x.h5", tmp_path / "x.csv", "e", "s", "t", **kw) as w:
            w.append(np.array([0, 1, 2]), np.array([3, 2, 4]), 1)
    with pytest.raises(ValueError, match="declared"):
        with EdgeStreamWriter(tmp_path / "x.h5", tmp_path / "x.csv", "e", "s", "t", **kw) as w:
            w.append(np.array([0, 1]), np.array([3, 4]), 1)
    assert not (tmp_path / "x.h5").exists() and list(tmp_path.iterdir()) == []


def test_electrode_clearance_redraws_only_the_cells_too_close(tmp_path):
    """Somata drawn within clearance_um of an electrode are drawn again; the rest stay put."""
    base = {
        "format": "l5net-spec/1",
        "seed": 5,
        "components_dir": str(REPO / "examples" / "components"),
        "regions": {"disc": {"shape": "cylinder", "radius_um": 60.0, "height_um": 40.0}},
        "populations": {
            "P": {
                "count": 300,
                "region": "disc",
                "model": {"type": "biophysical", "template": "hoc:BallAndStick"},
            }
        },
        "reports": {"electrodes": {"probe": {"n": 5, "pitch_um": 10.0, "origin_um": [0, 0, 0]}}},
    }

    def xyz(clearance: float) -> np.ndarray:
        data = copy.deepcopy(base)
        data["reports"]["electrodes"]["clearance_um"] = clearance
        spec = load_spec(tmp_path / "c.json", data=data)
        cols = NetworkBuilder(spec).nodes["P"].columns
        return np.stack([cols["x"], cols["y"], cols["z"]], axis=1)

    points = np.array([[0.0, 0.0, 10.0 * k] for k in range(5)])

    def nearest(p: np.ndarray) -> np.ndarray:
        return np.sqrt(((p[:, None] - points[None]) ** 2).sum(axis=2)).min(axis=1)

    free, cleared = xyz(0.0), xyz(15.0)
    moved = np.flatnonzero(np.any(free != cleared, axis=1))
    assert moved.size > 0 and np.all(nearest(free)[moved] < 15.0)
    np.testing.assert_array_equal(np.sort(moved), np.flatnonzero(nearest(free) < 15.0))
    assert nearest(cleared).min() >= 15.0
    radius = np.hypot(cleared[:, 0], cleared[:, 1])
    assert radius.max() <= 60.0 and cleared[:, 2].min() >= 0.0 and cleared[:, 2].max() <= 40.0
    np.testing.assert_array_equal(cleared, xyz(15.0))  # deterministic
    with pytest.raises(BuildError, match=r"reports\.electrodes\.clearance_um"):
        xyz(500.0)  # no place in the disc is that far from the probe
