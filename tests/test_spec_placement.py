"""Spec synapse placement at build time (builder/core/spec/placement.py).

The builder gets the target cell's segment table from the command layer; these tests hand it a
table of the examples' ball-and-stick cell written out here (soma, a 550 um dendrite along +z,
BMTK's two-section axon stub), so they run without NEURON. One test at the end builds through
the command line with the table NEURON derives.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from builder.core.errors import BuildError, ComponentError, ParamsError
from builder.core.geometry import node_angles, to_world
from builder.core.segments import SegmentTable
from builder.core.spec import NetworkBuilder, load_spec

pytest.importorskip("bmtk", reason="the cell resolves BMTK's Biophys1 template")
scipy_stats = pytest.importorskip("scipy.stats")

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = REPO / "examples" / "components"
N_DEND = 27
DEND_L = 550.0


def stick_table(cell=None, dl=None) -> SegmentTable:
    """The ball-and-stick cell as BMTK discretises it at dL = 20 um (see the module doc)."""
    x = (np.arange(N_DEND) + 0.5) / N_DEND
    n = N_DEND + 3
    return SegmentTable(
        bmtk_id=np.r_[0, np.ones(N_DEND, int), 2, 3],
        x=np.r_[0.5, x, 0.5, 0.5],
        type=np.array(["soma"] + ["dend"] * N_DEND + ["axon", "axon"], dtype="U8"),
        type_index=np.r_[0, np.zeros(N_DEND, int), 0, 1],
        distance_um=np.r_[10.0, 20.0 + DEND_L * x, 25.0, 55.0],
        xyz_um=np.column_stack(
            [np.r_[0, np.zeros(N_DEND), 6, 18], np.zeros(n), np.r_[0.0, 60.0 + DEND_L * x, 0, 0]]
        ),
        length_um=np.r_[20.0, np.full(N_DEND, DEND_L / N_DEND), 30.0, 30.0],
    )


MODEL = {
    "type": "biophysical",
    "template": "ctdb:Biophys1.hoc",
    "morphology": "ball_and_stick.swc",
    "dynamics_params": "ball_and_stick.json",
    "model_processing": "aibs_perisomatic",
}

BASE = {
    "format": "l5net-spec/1",
    "seed": 11,
    "components_dir": str(COMPONENTS),
    "regions": {
        "box": {"shape": "box", "size_um": [300, 300, 200]},
        "sheet": {
            "shape": "layered",
            "size_um": [300, 300],
            "layers": [
                {"name": "A", "thickness_um": 100},
                {"name": "B", "thickness_um": 200},
                {"name": "C", "thickness_um": 400},
            ],
        },
    },
    "populations": {
        "T": {"count": 40, "region": "box", "model": MODEL},
        "S": {"count": 50, "model": {"type": "virtual"}},
    },
    "connections": {
        "ST": {
            "source": "S",
            "target": "T",
            "rule": {"name": "fixed_indegree", "indegree": 10, "multapses": False},
            "synapses_per_connection": 2,
            "weight": {"distribution": "normal", "mean": 0.001, "rel_sd": 0.2, "keep_sign": True},
            "delay_ms": {"distribution": "uniform", "low": 1.0, "high": 3.0},
            "synapse_model": "exp2syn",
            "dynamics_params": "exc_exp2syn.json",
            "placement": {"sections": ["dend"], "path_distance_um": [100.0, 300.0]},
        }
    },
    "run": {"duration_ms": 100, "simulator": "NEURON"},
}


def _spec(tmp_path: Path, data: dict, seed: int | None = None):
    p = tmp_path / "spec.json"
    p.write_text(json.dumps(data))
    return load_spec(p, seed)


def _build(tmp_path: Path, data: dict, name: str = "out", seed: int | None = None, **kw) -> Path:
    out = tmp_path / name
    kw.setdefault("segment_tables", stick_table)
    NetworkBuilder(_spec(tmp_path, data, seed), **kw).build(out)
    return out


def _edges(out: Path, name: str = "ST") -> dict[str, np.ndarray]:
    with h5py.File(out / "network" / f"{name}_edges.h5") as h5:
        g = h5["edges"][name]
        cols = {k: g["0"][k][()] for k in g["0"]}
        cols["source"] = g["source_node_id"][()]
        cols["target"] = g["target_node_id"][()]
    return cols


def _rows(e: dict[str, np.ndarray], table: SegmentTable) -> np.ndarray:
    """Segment-table row of every synapse, from its (sec_id, sec_x)."""
    key = {
        (int(s), round(float(x), 12)): i
        for i, (s, x) in enumerate(zip(table.bmtk_id, table.x, strict=True))
    }
    return np.array(
        [key[(int(s), round(float(x), 12))] for s, x in zip(e["sec_id"], e["sec_x"], strict=True)]
    )


def _runs(e: dict[str, np.ndarray]) -> np.ndarray:
    """Lengths of the runs of consecutive rows of one connection (source, target, weight)."""
    change = (
        (np.diff(e["source"]) != 0) | (np.diff(e["target"]) != 0) | (np.diff(e["syn_weight"]) != 0)
    )
    edges = np.r_[0, np.flatnonzero(change) + 1, len(e["source"])]
    return np.diff(edges)


# ------------------------------------------------------------------ where synapses go
def test_sections_and_path_distance_are_obeyed(tmp_path):
    e = _edges(_build(tmp_path, BASE))
    table = stick_table()
    rows = _rows(e, table)
    assert set(table.type[rows]) == {"dend"}
    d = table.distance_um[rows]
    assert d.min() >= 100.0 and d.max() <= 300.0
    # every eligible segment gets synapses (uniform by length): 400 connections x 2 synapses
    eligible = np.flatnonzero(
        table.mask("dend") & (table.distance_um >= 100) & (table.distance_um <= 300)
    )
    assert set(rows) == set(eligible)
    assert e["sec_id"].dtype == np.int32 and e["sec_x"].dtype == np.float64
    np.testing.assert_array_equal(e["afferent_section_id"], e["sec_id"])
    np.testing.assert_array_equal(e["afferent_section_pos"], e["sec_x"])
    assert "nsyns" not in e


def test_default_sections_leave_out_the_axon(tmp_path):
    data = copy.deepcopy(BASE)
    del data["connections"]["ST"]["placement"]
    e = _edges(_build(tmp_path, data))
    types = stick_table().type[_rows(e, stick_table())]
    assert "axon" not in set(types) and {"soma", "dend"} <= set(types)


def test_one_row_per_synapse_of_a_multapse(tmp_path):
    data = copy.deepcopy(BASE)
    e = _edges(_build(tmp_path, data, "two"))
    runs = _runs(e)
    assert len(runs) == 40 * 10 and np.all(runs == 2)
    data["connections"]["ST"]["synapses_per_connection"] = {
        "distribution": "normal",
        "mean": 4.0,
        "sd": 1.5,
        "min": 1.0,
    }
    e = _edges(_build(tmp_path, data, "many"))
    runs = _runs(e)
    assert len(runs) == 400 and len(e["source"]) == runs.sum()
    assert runs.min() >= 1 and len(set(runs.tolist())) > 3
    assert abs(runs.mean() - 4.0) < 4 * 1.5 / np.sqrt(400)
    # the synapses of one connection are drawn independently: not all on one segment
    starts = np.r_[0, np.cumsum(runs)[:-1]]
    spread = [len(set(e["sec_x"][a : a + n])) for a, n in zip(starts, runs, strict=True) if n >= 4]
    assert np.mean(np.array(spread) > 1) > 0.9
    # delay and weight are the connection's: one value per run
    for a, n in zip(starts, runs, strict=True):
        assert np.all(e["delay"][a : a + n] == e["delay"][a])


def test_depth_profile_on_a_rotated_population(tmp_path):
    """Synapse depths follow length x profile(world z), on cells rotated about every axis."""
    data = copy.deepcopy(BASE)
    data["populations"]["T"]["count"] = 120
    data["populations"]["T"]["rotations"] = {"x": "random", "y": "random", "z": "random"}
    data["connections"]["ST"]["rule"]["indegree"] = 25
    data["connections"]["ST"]["synapses_per_connection"] = 3
    profile = {"depth_um": [-700.0, -200.0, 300.0, 900.0], "density": [0.0, 1.0, 0.1, 1.0]}
    data["connections"]["ST"]["placement"] = {
        "sections": ["soma", "dend"],
        "depth_profile": profile,
    }
    out = _build(tmp_path, data)
    e = _edges(out)
    table = stick_table()
    rows = _rows(e, table)
    with h5py.File(out / "network" / "T_nodes.h5") as h5:
        g = h5["nodes"]["T"]["0"]
        cols = {k: g[k][()] for k in g}
    pos = np.column_stack((cols["x"], cols["y"], cols["z"]))
    ang = node_angles(cols, len(pos))
    assert ang is not None and np.ptp(ang[:, 0]) > 3  # really rotated about x
    soma = table.xyz_um[0]
    world_z = to_world(table.xyz_um, soma, pos, ang)[:, :, 2]  # (cells, segments)
    w = table.length_um * np.isin(table.type, ["soma", "dend"])
    w = w * np.interp(world_z, profile["depth_um"], profile["density"], left=0, right=0)
    p = w / w.sum(axis=1, keepdims=True)
    # no synapse where the density is 0
    assert np.all(w[e["target"], rows] > 0)
    # observed vs expected synapses per 100 um depth bin
    n_per_cell = np.bincount(e["target"], minlength=len(pos))
    bins = np.arange(-700.0, 1001.0, 100.0)
    which = np.clip(np.digitize(world_z, bins) - 1, 0, len(bins) - 2)
    expected = np.zeros(len(bins) - 1)
    for c in range(len(pos)):
        expected += np.bincount(which[c], weights=p[c] * n_per_cell[c], minlength=len(expected))
    observed = np.bincount(which[e["target"], rows], minlength=len(expected)).astype(float)
    keep = expected >= 5
    assert observed[~keep].sum() <= max(5.0, 3 * expected[~keep].sum())
    chi2 = float(np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep]))
    dof = int(keep.sum()) - 1
    assert dof >= 8
    assert scipy_stats.chi2.sf(chi2, dof) > 1e-3, (chi2, dof, observed, expected)
    # and the profile matters: the depth histogram is not the length-only one
    p0 = table.length_um * np.isin(table.type, ["soma", "dend"])
    p0 = p0 / p0.sum()
    flat = np.zeros(len(expected))
    for c in range(len(pos)):
        flat += np.bincount(which[c], weights=p0 * n_per_cell[c], minlength=len(expected))
    chi2_flat = float(np.sum((observed[keep] - flat[keep]) ** 2 / np.maximum(flat[keep], 1)))
    assert scipy_stats.chi2.sf(chi2_flat, dof) < 1e-6


def test_section_layer_density_puts_synapses_in_their_layers(tmp_path):
    data = copy.deepcopy(BASE)
    data["populations"]["T"].update(region="sheet", layers=["A"])
    data["connections"]["ST"]["placement"] = {
        "section_layer_density": {"soma": {"A": 1.0}, "dend": {"C": 2.0}}
    }
    out = _build(tmp_path, data)
    e = _edges(out)
    table = stick_table()
    rows = _rows(e, table)
    with h5py.File(out / "network" / "T_nodes.h5") as h5:
        z = h5["nodes/T/0/z"][()]
    depth = z[e["target"]] + table.xyz_um[rows, 2]  # no rotation: world z = soma z + local z
    kind = table.type[rows]
    assert set(kind) == {"soma", "dend"}
    assert np.all((depth[kind == "soma"] >= 0) & (depth[kind == "soma"] < 100))
    assert np.all((depth[kind == "dend"] >= 300) & (depth[kind == "dend"] < 700))


# ------------------------------------------------------------------ by membrane area
SOMA_DIAM = 20.0
DEND_DIAM = 2.0


def stick_table_diam(cell=None, dl=None) -> SegmentTable:
    """:func:`stick_table` with segment diameters: soma 20 um, dendrite 2 um, axon 1 um."""
    t = stick_table()
    diam = np.r_[SOMA_DIAM, np.full(N_DEND, DEND_DIAM), 1.0, 1.0]
    return SegmentTable(**{k: getattr(t, k) for k in _TABLE_FIELDS}, diam_um=diam)


_TABLE_FIELDS = ("bmtk_id", "x", "type", "type_index", "distance_um", "xyz_um", "length_um")


def test_weight_by_area_gives_the_soma_its_share_of_membrane(tmp_path):
    """soma 20 x 20 um vs a 550 x 2 um stick: 27 % of the area, 3.5 % of the length."""
    data = copy.deepcopy(BASE)
    data["connections"]["ST"]["placement"] = {"sections": ["soma", "dend"], "weight_by": "area"}
    e = _edges(_build(tmp_path, data, segment_tables=stick_table_diam))
    table = stick_table_diam()
    rows = _rows(e, table)
    assert set(table.type[rows]) == {"soma", "dend"}
    n = len(rows)
    assert n == 40 * 10 * 2
    area = np.pi * table.diam_um * table.length_um
    np.testing.assert_allclose(table.areas_um2(), area)
    p_soma = area[0] / area[:-2].sum()
    assert 0.26 < p_soma < 0.27
    k = int(np.sum(table.type[rows] == "soma"))
    sd = np.sqrt(n * p_soma * (1 - p_soma))
    assert abs(k - n * p_soma) < 4 * sd, (k, n * p_soma, sd)
    p_len = table.length_um[0] / table.length_um[:-2].sum()
    assert k > n * p_len + 10 * np.sqrt(n * p_len)  # far from the length share


def test_weight_by_length_is_the_default_and_ignores_diameters(tmp_path):
    """Default, explicit "length", and a table with or without diameters: the same bytes."""
    data = copy.deepcopy(BASE)
    data["connections"]["ST"]["placement"] = {"sections": ["soma", "dend"]}
    a = _build(tmp_path, data, "a")
    b = _build(tmp_path, data, "b", segment_tables=stick_table_diam)
    data["connections"]["ST"]["placement"]["weight_by"] = "length"
    c = _build(tmp_path, data, "c", segment_tables=stick_table_diam)
    data["connections"]["ST"]["placement"]["weight_by"] = "area"
    d = _build(tmp_path, data, "d", segment_tables=stick_table_diam)
    digests = [_digest(x / "network" / "ST_edges.h5") for x in (a, b, c, d)]
    assert digests[0] == digests[1] == digests[2] != digests[3]


def test_weight_by_area_without_diameters_is_a_clear_error(tmp_path):
    data = copy.deepcopy(BASE)
    data["connections"]["ST"]["placement"] = {"weight_by": "area"}
    spec = _spec(tmp_path, data)
    out = tmp_path / "out"
    with pytest.raises(BuildError) as exc:
        NetworkBuilder(spec, segment_tables=stick_table).build(out)
    msg = str(exc.value)
    assert msg.startswith(f"{spec.source}: connections.ST.placement.weight_by: "), msg
    assert '"area"' in msg and "Diam" in msg and "Length" not in msg, msg
    assert not out.exists()


def test_diameters_survive_a_csv_round_trip_and_are_optional(tmp_path):
    t = stick_table_diam()
    t.to_csv(tmp_path / "d.csv")
    back = SegmentTable.from_csv(tmp_path / "d.csv")
    assert back.has_diameters
    np.testing.assert_array_equal(back.diam_um, t.diam_um)
    np.testing.assert_array_equal(back.length_um, t.length_um)
    stick_table().to_csv(tmp_path / "n.csv")  # no diameters: no Diam column, as before
    assert "Diam" not in (tmp_path / "n.csv").read_text().splitlines()[0]
    plain = SegmentTable.from_csv(tmp_path / "n.csv")
    assert not plain.has_diameters and np.all(np.isnan(plain.diam_um))
    with pytest.raises(ComponentError, match="no 'Diam' column"):
        plain.areas_um2()


def test_depth_gaussians_by_area_follow_the_mixture(tmp_path):
    """LFPy's synapse position functions: P(segment) ~ area x sum w_i N(z; mu_i, sd_i)."""
    data = copy.deepcopy(BASE)
    data["populations"]["T"]["count"] = 60
    data["connections"]["ST"]["rule"]["indegree"] = 20
    mixture = [
        {"mean_um": 0.0, "sd_um": 100.0, "weight": 0.5},
        {"mean_um": 400.0, "sd_um": 60.0},
    ]
    data["connections"]["ST"]["placement"] = {
        "sections": ["soma", "dend"],
        "weight_by": "area",
        "depth_gaussians": mixture,
    }
    out = _build(tmp_path, data, segment_tables=stick_table_diam)
    e = _edges(out)
    table = stick_table_diam()
    rows = _rows(e, table)
    with h5py.File(out / "network" / "T_nodes.h5") as h5:
        z = h5["nodes/T/0/z"][()]
    world_z = z[:, None] + table.xyz_um[None, :, 2]  # no rotation
    dens = sum(
        g.get("weight", 1.0) * scipy_stats.norm(g["mean_um"], g["sd_um"]).pdf(world_z)
        for g in mixture
    )
    w = np.pi * table.diam_um * table.length_um * np.isin(table.type, ["soma", "dend"]) * dens
    p = w / w.sum(axis=1, keepdims=True)
    n_per_cell = np.bincount(e["target"], minlength=len(z))
    # expected vs observed synapses per segment (summed over cells; soma kept apart)
    expected = (p * n_per_cell[:, None]).sum(axis=0)[:-2]
    observed = np.bincount(rows, minlength=len(table)).astype(float)
    assert observed[-2:].sum() == 0  # the axon is not eligible
    observed = observed[:-2]
    keep = expected >= 5
    chi2 = float(np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep]))
    dof = int(keep.sum()) - 1
    assert dof >= 15
    assert scipy_stats.chi2.sf(chi2, dof) > 1e-3, (chi2, dof)
    assert observed[0] > 0.1 * len(rows)  # the soma term by area is real


# ------------------------------------------------------------------ functional groups
def test_functional_groups_cluster_the_synapses_of_a_group(tmp_path):
    data = copy.deepcopy(BASE)
    data["populations"]["T"]["count"] = 5
    con = data["connections"]["ST"]
    con["synapses_per_connection"] = {"distribution": "uniform_int", "low": 1, "high": 3}
    con["placement"] = {
        "rule": "functional_groups",
        "sections": ["dend"],
        "cells_per_group": 10,
        "clusters_per_group": 3,
        "group_radius_um": 60.0,
        "cluster_radius_um": 10.0,
    }
    out = _build(tmp_path, data)
    e = _edges(out)
    table = stick_table()
    rows = _rows(e, table)
    assert set(table.type[rows]) == {"dend"}
    runs = _runs(e)
    assert runs.max() <= 3
    group = e["source"] // 10  # 50 sources in 5 groups of 10, in node order
    for t in range(5):
        for g in range(5):
            sel = (e["target"] == t) & (group == g)
            if sel.sum() < 2:
                continue
            z = table.xyz_um[rows[sel], 2]
            assert np.ptp(z) <= 2 * 60.0  # all within group_radius of one centre
    # groups on one target do not all share one place
    zs = [np.median(table.xyz_um[rows[(e["target"] == 0) & (group == g)], 2]) for g in range(5)]
    assert np.ptp(zs) > 60.0
    # the synapses of one connection lie in distinct clusters: with 3 clusters of radius 10
    # inside 60 um, a 3-synapse connection cannot sit on one segment
    starts = np.r_[0, np.cumsum(runs)[:-1]]
    for a, n in zip(starts, runs, strict=True):
        if n == 3:
            assert len(set(rows[a : a + n])) >= 2
    # same seed, same bytes
    again = _build(tmp_path, data, "again")
    assert _digest(out / "network" / "ST_edges.h5") == _digest(again / "network" / "ST_edges.h5")


# ------------------------------------------------------------------ determinism
def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_same_seed_same_bytes_whatever_the_chunks_other_seed_other_places(tmp_path):
    data = copy.deepcopy(BASE)
    data["populations"]["T"]["rotations"] = {"z": "random", "x": "random"}
    data["connections"]["ST"]["synapses_per_connection"] = {
        "distribution": "normal",
        "mean": 3.0,
        "sd": 1.0,
        "min": 1.0,
    }
    data["connections"]["ST"]["placement"] = {
        "depth_profile": {"depth_um": [-600.0, 0.0, 800.0], "density": [0.0, 1.0, 0.0]}
    }
    a = _build(tmp_path, data, "a")
    b = _build(tmp_path, data, "b", chunk_edges=13)
    assert _digest(a / "network" / "ST_edges.h5") == _digest(b / "network" / "ST_edges.h5")
    c = _build(tmp_path, data, "c", seed=12)
    ea, ec = _edges(a), _edges(c)
    assert len(ea["sec_x"]) != len(ec["sec_x"]) or not np.array_equal(ea["sec_x"], ec["sec_x"])


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "placement,key,words",
    [
        ({"sections": ["apic"]}, "placement.sections", ["apic", "has no apic sections"]),
        (
            {"sections": ["dend"], "path_distance_um": [2000.0, 3000.0]},
            "placement.path_distance_um",
            ["[2000.0, 3000.0]", "no dend segment"],
        ),
        (
            {"depth_profile": {"depth_um": [5000.0, 6000.0], "density": [1.0, 1.0]}},
            "placement.depth_profile",
            ["5000.0", "density is > 0", "node 0"],
        ),
        (
            {"depth_um": [-2000.0, -1000.0]},
            "placement.depth_um",
            ["[-2000.0, -1000.0]", "density is > 0"],
        ),
    ],
)
def test_bad_placement_names_file_key_and_value_and_writes_nothing(tmp_path, placement, key, words):
    data = copy.deepcopy(BASE)
    data["connections"]["ST"]["placement"] = placement
    spec = _spec(tmp_path, data)
    out = tmp_path / "out"
    with pytest.raises(BuildError) as exc:
        NetworkBuilder(spec, segment_tables=stick_table).build(out)
    msg = str(exc.value)
    assert msg.startswith(f"{spec.source}: connections.ST.{key}: "), msg
    for w in words:
        assert w in msg, msg
    assert not out.exists()


def test_too_many_synapses_for_the_clusters(tmp_path):
    data = copy.deepcopy(BASE)
    data["connections"]["ST"]["synapses_per_connection"] = 4
    data["connections"]["ST"]["placement"] = {
        "rule": "functional_groups",
        "cells_per_group": 10,
        "clusters_per_group": 3,
        "group_radius_um": 60.0,
        "cluster_radius_um": 10.0,
    }
    spec = _spec(tmp_path, data)
    with pytest.raises(
        BuildError, match=r"connections\.ST\.synapses_per_connection: .*4 .*3 clusters"
    ):
        NetworkBuilder(spec, segment_tables=stick_table).build(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rules_keys_do_not_mix_and_depth_needs_positions(tmp_path):
    data = copy.deepcopy(BASE)
    data["connections"]["ST"]["placement"] = {
        "rule": "functional_groups",
        "cells_per_group": 10,
        "clusters_per_group": 3,
        "group_radius_um": 60.0,
        "cluster_radius_um": 10.0,
        "depth_um": [0, 100],
    }
    with pytest.raises(ParamsError, match=r"connections\.ST\.placement\.depth_um: not a key of"):
        _spec(tmp_path, data)
    del data["connections"]["ST"]["placement"]["depth_um"]
    data["connections"]["ST"]["placement"]["weight_by"] = "area"
    with pytest.raises(ParamsError, match=r"placement\.weight_by: not a key of .*functional_gr"):
        _spec(tmp_path, data)
    data["connections"]["ST"]["placement"] = {"rule": "functional_groups", "cells_per_group": 3}
    with pytest.raises(ParamsError, match="clusters_per_group"):
        _spec(tmp_path, data)
    data["connections"]["ST"]["placement"] = {"depth_um": [0, 100]}
    del data["populations"]["T"]["region"]
    with pytest.raises(ParamsError, match="needs positions; T has no region"):
        _spec(tmp_path, data)
    data["connections"]["ST"]["placement"] = {"depth_gaussians": [{"mean_um": 0, "sd_um": 9}]}
    with pytest.raises(ParamsError, match="needs positions; T has no region"):
        _spec(tmp_path, data)


def test_no_table_source_is_a_clear_error(tmp_path):
    spec = _spec(tmp_path, BASE)
    with pytest.raises(BuildError, match="populations.T: placing synapses .* NEURON"):
        NetworkBuilder(spec).build(tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ through the command line
@pytest.mark.neuron
def test_command_line_places_on_the_cell_neuron_derives(tmp_path, capsys):
    """build-network derives the table with NEURON; a section the cell lacks is exit 2."""
    from builder.commands.cli import main

    data = copy.deepcopy(BASE)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(data))
    out = tmp_path / "out"
    assert main([str(spec), "-o", str(out), "-q"]) == 0
    e = _edges(out)
    assert len(e["sec_id"]) == 40 * 10 * 2
    assert set(e["sec_id"].tolist()) == {1}  # the dendrite: section 1 of soma, dend, axon x2
    assert np.all((e["sec_x"] > 0) & (e["sec_x"] < 1))
    data["connections"]["ST"]["placement"] = {"sections": ["apic"]}
    spec.write_text(json.dumps(data))
    assert main([str(spec), "-o", str(tmp_path / "bad"), "-q"]) == 2
    err = capsys.readouterr().err
    assert 'connections.ST.placement.sections: "apic"' in err and "no apic sections" in err
    assert not (tmp_path / "bad").exists()


@pytest.mark.neuron
def test_neuron_derived_table_has_the_diameters_area_placement_needs(tmp_path):
    """The examples' BallAndStick (LFPy's cell): soma 30 x 30 um, 1000 x 3 um stick."""
    from builder.core.spec.placement import population_cell
    from builder.simulators.neuron.celltable import segment_table

    cell = population_cell({"template": "hoc:BallAndStick"}, COMPONENTS, "test")
    t = segment_table(cell, None, cache_dir=tmp_path / "cache")
    assert len(t) == 22 and t.has_diameters
    soma = t.type == "soma"
    np.testing.assert_allclose(t.diam_um[soma], 30.0)
    np.testing.assert_allclose(t.diam_um[~soma], 3.0)
    area = t.areas_um2()
    np.testing.assert_allclose(area.sum(), np.pi * (30 * 30 + 3 * 1000))
    assert 0.23 < area[soma].sum() / area.sum() < 0.231  # the soma's share of membrane


# ------------------------------------------------------------------ --check counts synapses
@pytest.mark.parametrize(
    "rule,per_conn",
    [
        ({"name": "fixed_indegree", "indegree": 10, "multapses": False}, 2),
        (
            {"name": "fixed_indegree", "indegree": 10, "multapses": False},
            {"distribution": "normal", "mean": 4.0, "sd": 1.5, "min": 1.0},
        ),
        (
            {"name": "pairwise_bernoulli", "p": {"profile": "gaussian", "sigma_um": 150.0}},
            {"distribution": "poisson", "mean": 3.0},
        ),
    ],
    ids=["constant", "random-count", "distance-random-count"],
)
def test_check_counts_the_synapse_rows_a_build_writes(tmp_path, monkeypatch, rule, per_conn):
    from builder.core.spec import estimate as est_mod

    data = copy.deepcopy(BASE)
    data["populations"]["S"] = {"count": 50, "region": "box", "model": {"type": "virtual"}}
    data["connections"]["ST"].update(rule=rule, synapses_per_connection=per_conn)
    builder = NetworkBuilder(_spec(tmp_path, data), segment_tables=stick_table)
    out = tmp_path / "out"
    builder.build(out)
    rows = len(_edges(out)["source"])
    connections = len(_runs(_edges(out)))
    assert rows > connections > 0 if per_conn != 1 else rows == connections
    est = NetworkBuilder(_spec(tmp_path, data), segment_tables=stick_table).estimate()
    assert est["edges"]["ST"] == rows and est["edges_exact"]["ST"]  # exact: the build's count
    if isinstance(per_conn, int):
        assert est["connections"]["ST"] == connections
    # a projection too big to count is expected: the mean synapse count times the connections
    monkeypatch.setattr(est_mod, "EXACT_COUNT_LIMIT", 0)
    est = NetworkBuilder(_spec(tmp_path, data), segment_tables=stick_table).estimate()
    exact_rule = rule["name"] == "fixed_indegree"
    assert est["edges_exact"]["ST"] is (exact_rule and isinstance(per_conn, int))
    if exact_rule:
        assert est["connections"]["ST"] == connections == 400
        # rows: a sum of 400 draws of max(1, rint(x)); 4 sd of that sum (sd <= 1.6 per draw)
        assert abs(est["edges"]["ST"] - rows) <= 4 * 1.6 * np.sqrt(400)
    else:  # the connections themselves are a sampled expectation: a loose bound
        assert 0.7 * rows < est["edges"]["ST"] < 1.3 * rows


def test_check_prints_synapses_and_connections(tmp_path, monkeypatch, capsys):
    from builder.commands.cli import main
    from builder.simulators.neuron import celltable

    monkeypatch.setattr(celltable, "segment_table", stick_table)
    p = tmp_path / "spec.json"
    p.write_text(json.dumps(BASE))
    assert main([str(p), "--check"]) == 0
    assert "edges ST = 800 synapses in 400 connections\n" in capsys.readouterr().out
