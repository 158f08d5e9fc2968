"""The L5 recipe as a model: legacy params -> populations, placement rules, rasters -> network."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from builder.commands.build import SimulationBuilder
from builder.core.spec.model import spec_schema
from builder.recipes.l5 import (
    BIO_POP,
    build_l5_network,
    clipped_normal_counts,
    eligible_rows,
    l5_model,
    mean_synapses,
)
from builder.recipes.l5_params import load_params

ROOT = Path(__file__).resolve().parent.parent
L5 = ROOT / "params" / "L5NetParams.json"


def _params(stop_s: float = 0.2) -> dict:
    return load_params(L5, overrides={"time.stop": stop_s})


def test_model_translates_the_legacy_params():
    p = _params()
    model = l5_model(p, {k: float(v) for k, v in p["lengths"].items()})
    # SPEC section 3 counts, as population parts
    parts = {(i.name, q.pop_name): q for i in model.inputs for q in i.parts}
    assert {k: q.count for k, q in parts.items()} == {
        ("exc_stim", "dend"): 2008,
        ("exc_stim", "apic"): 3214,
        ("prox_inh_stim", "on_soma"): 53,
        ("prox_inh_stim", "on_dend"): 37,
        ("dist_inh_stim", "dend"): 378,
        ("dist_inh_stim", "apic"): 136,
    }
    assert model.population_sizes() == {
        BIO_POP: 1,
        "exc_stim": 5222,
        "prox_inh_stim": 90,
        "dist_inh_stim": 514,
    }
    # placement rules in the spec's vocabulary
    dend = parts[("exc_stim", "dend")].placement
    assert dend == {
        "rule": "functional_groups",
        "cells_per_group": 100,
        "clusters_per_group": 23,
        "group_radius_um": 100.0,
        "cluster_radius_um": 10.0,
        "sections": ["dend"],
        "path_distance_um": [50.0, 1.0e9],
    }
    assert parts[("prox_inh_stim", "on_soma")].placement == {"sections": ["soma"]}
    assert parts[("prox_inh_stim", "on_dend")].placement["path_distance_um"] == [0.0, 50.0]
    assert parts[("dist_inh_stim", "apic")].placement == {
        "sections": ["apic"],
        "path_distance_um": [50.0, 2000.0],
    }
    assert parts[("exc_stim", "apic")].synapses == {
        "distribution": "uniform_int",
        "low": 2,
        "high": 8,
    }
    assert parts[("dist_inh_stim", "apic")].synapses == {
        "distribution": "clipped_normal",
        "mean": 12.0,
        "sd": 3.0,
        "min": 6,
        "max": 18,
    }
    rasters = {i.name: i.raster for i in model.inputs}
    assert rasters["exc_stim"]["kind"] == "l5_pink_levy"
    assert rasters["prox_inh_stim"] == {
        "kind": "l5_inhibition",
        "rate_hz": {"mean": 16.9, "sd": 14.3},
        "shift_ms": 2.0,
    }
    assert model.duration_ms == pytest.approx(200.0)


@pytest.mark.parametrize(
    "syn",
    [
        {"distribution": "clipped_normal", "mean": 2.8, "sd": 1.9, "min": 1, "max": 5},
        {"distribution": "clipped_normal", "mean": 12.0, "sd": 3.0, "min": 6, "max": 18},
        {"distribution": "clipped_normal", "mean": 0.5, "sd": 4.0, "min": 0, "max": 3},
        {"distribution": "uniform_int", "low": 2, "high": 8},
    ],
)
def test_mean_synapses_is_the_mean_of_the_legacy_rule(syn):
    rng = np.random.default_rng(11)
    n = 400_000
    if syn["distribution"] == "uniform_int":
        k = rng.integers(syn["low"], syn["high"] + 1, size=n)
    else:
        k = clipped_normal_counts(rng, n, syn["mean"], syn["sd"], syn["min"], syn["max"])
    # 5 standard errors of the sample mean
    assert mean_synapses(syn) == pytest.approx(k.mean(), abs=5 * k.std() / np.sqrt(n))


def test_model_speaks_the_spec_vocabulary():
    """Placements (and the synapse rules the spec has) validate against the spec schema."""
    schema = spec_schema()
    p = _params()
    model = l5_model(p, {k: float(v) for k, v in p["lengths"].items()})
    for inp in model.inputs:
        for part in inp.parts:
            sub = {"$defs": schema["$defs"], "$ref": "#/$defs/placement"}
            jsonschema.Draft202012Validator(sub).validate(part.placement)
            if part.synapses["distribution"] != "clipped_normal":  # the legacy rule: L5 only
                sub = {"$defs": schema["$defs"], "$ref": "#/$defs/distribution"}
                jsonschema.Draft202012Validator(sub).validate(part.synapses)


def _rows_of(table, edges) -> np.ndarray:
    """Segment-table row of every edge (by its sec_id and sec_x)."""
    pairs = zip(table.bmtk_id.tolist(), table.x.tolist(), strict=True)
    key = {(int(b), float(x)): i for i, (b, x) in enumerate(pairs)}
    cols = zip(edges.columns["sec_id"].tolist(), edges.columns["sec_x"].tolist(), strict=True)
    return np.array([key[(int(b), float(x))] for b, x in cols], dtype=np.int64)


@pytest.mark.neuron  # the default cell's segment table is derived with NEURON (then cached)
def test_every_synapse_lies_where_its_part_places_it():
    b = SimulationBuilder(copy.deepcopy(_params()), seed=3)
    model = b.model()
    built = b.network()
    table = b.segment_table
    sizes = {name: pop.size for name, pop in built.network.nodes.items()}
    assert sizes == model.population_sizes()
    for inp, edges in zip(model.inputs, built.network.edges, strict=True):
        assert edges.source == inp.name
        rows = _rows_of(table, edges)
        region = {t["edge_type_id"]: t["target_region"] for t in edges.edge_types}
        seen = set()
        for part in inp.parts:
            in_part = np.array([region[int(t)] == part.pop_name for t in edges.edge_type_ids])
            allowed = eligible_rows(table, part.placement)
            assert in_part.any()
            assert np.isin(rows[in_part], allowed).all(), (inp.name, part.pop_name)
            seen.add(part.pop_name)
        assert seen == set(region.values())


@pytest.mark.neuron
def test_a_changed_part_leaves_the_other_populations_identical():
    b = SimulationBuilder(copy.deepcopy(_params()), seed=5)
    model = b.model()
    dist = model.inputs[2]
    narrow = dataclasses.replace(
        dist.parts[0], placement={"sections": ["dend"], "path_distance_um": [100.0, 150.0]}
    )
    changed = dataclasses.replace(
        model, inputs=[*model.inputs[:2], dataclasses.replace(dist, parts=[narrow, dist.parts[1]])]
    )
    args = (b.segment_table, b.seed, b.synapse_models(), b.cell_node_type())
    a, c = build_l5_network(model, *args).network, build_l5_network(changed, *args).network
    for ea, ec in zip(a.edges[:2], c.edges[:2], strict=True):
        for k in ("sec_id", "sec_x"):
            assert np.array_equal(ea.columns[k], ec.columns[k])
        assert np.array_equal(ea.source_ids, ec.source_ids)
    for pop in ("exc_stim", "prox_inh_stim", "dist_inh_stim"):  # rasters do not depend on it
        assert np.array_equal(a.spikes[pop].timestamps_ms, c.spikes[pop].timestamps_ms)
    d = b.segment_table.distance_um[_rows_of(b.segment_table, c.edges[2])]
    dend = c.edges[2].edge_type_ids == c.edges[2].edge_types[0]["edge_type_id"]
    assert dend.any() and ((d[dend] >= 100.0) & (d[dend] < 150.0)).all()
    assert not np.array_equal(a.edges[2].columns["sec_x"], c.edges[2].columns["sec_x"])
