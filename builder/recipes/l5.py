"""The L5 input-network recipe (SPEC sections 3, 5, 6, 7): legacy params -> model -> network.

One biophysical cell receives excitatory inputs in functional groups and clusters on its basal
(>= 50 um from the soma) and apical dendrites, perisomatic inhibition (soma and basal < 50 um)
and distal dendritic inhibition (basal and apical, 50-2000 um). Virtual input cells fire
inhomogeneous Poisson trains: excitatory rates follow a shared pink-noise profile per group;
inhibitory rates follow the population-average excitation, delayed, or a rhythm.

Two steps. :func:`l5_model` translates a legacy params file into an :class:`L5Model`, a
description in the general spec's vocabulary (:mod:`builder.core.spec`): populations (the cell and
three virtual input populations, each made of parts that become node types), one connection
per input population onto the cell whose parts carry their synapse counts and a ``placement``
as the spec writes it (``rule: functional_groups`` with ``cells_per_group``,
``clusters_per_group``, ``group_radius_um``, ``cluster_radius_um`` for excitation; ``sections``
and ``path_distance_um`` for inhibition), and the inputs (``l5_pink_levy`` rasters for
excitation, ``l5_inhibition`` rasters for inhibition). :func:`build_l5_network` then draws that
model into a :class:`~builder.core.network.Network`, which the general writers
(:func:`builder.core.network.write_network`) write. What stays L5-only lives here: the legacy count
formulas (SPEC section 3), the legacy rule for synapses per cell, the half-open distance
ranges (``[lo, hi)`` of the legacy code, so a segment at exactly 50 um is distal), the node and
edge types (one per group / part) and the inhibitory raster generator.

Random streams (see :mod:`builder.core.rng`) are keyed by what they draw for, so e.g. changing the
number of distal inhibitory cells leaves the excitatory network and rasters untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import rasters, simconfig
from ..core.errors import PlacementError
from ..core.network import EdgePopulation, Network, NodePopulation, SpikeTrains, Table, TypeIds
from ..core.placement import feasible_centres, group_sizes, place_group, place_ranged
from ..core.rng import stream
from ..core.segments import PROXIMAL_LIMIT_UM, SegmentTable
from . import l5_rasters

__all__ = [
    "L5Counts",
    "L5Model",
    "Part",
    "InputPopulation",
    "l5_counts",
    "clipped_normal_counts",
    "mean_synapses",
    "eligible_rows",
    "l5_model",
    "l5_run_settings",
    "l5_reports",
    "build_l5_network",
    "BIO_POP",
    "BIO_NODE_SET",
    "EXC_POP",
    "PROX_POP",
    "DIST_POP",
    "SYNAPSE_FILES",
]

BIO_POP = "biophysical"
EXC_POP = "exc_stim"
PROX_POP = "prox_inh_stim"
DIST_POP = "dist_inh_stim"
#: The cell's node set, as :func:`builder.core.simconfig.node_sets` writes it.
BIO_NODE_SET = "biophysical_nodes"

#: Distal inhibition targets segments in [50, 2000) um from the soma (legacy distance_range).
DIST_INH_RANGE_UM = (PROXIMAL_LIMIT_UM, 2000.0)
#: Upper path distance of a range open above (the spec layer's default range ends there too).
ANY_DISTANCE_UM = 1.0e9
SYN_DELAY_MS = 0.1
SYN_WEIGHT = 1.0
BIN_MS = 1.0

EXC_SYN = "PN2PN.json"
PERI_SYN = "PV2PN.json"
DIST_SYN = "SOM2PN.json"
#: The synaptic-model files the recipe names (checked and copied by the build).
SYNAPSE_FILES = (EXC_SYN, PERI_SYN, DIST_SYN)


@dataclass(frozen=True)
class L5Counts:
    """Derived counts of SPEC section 3."""

    avg_exc_div: float
    n_dend_exc: int
    n_apic_exc: int
    n_dend_inh: int
    n_apic_inh: int
    n_prox_dend_inh: int
    n_soma_inh: int
    clust_per_group: int

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def l5_counts(params: dict[str, Any], lengths_um: dict[str, float]) -> L5Counts:
    """Input-cell counts from dendritic lengths and synapse densities (legacy formulas)."""
    div = params["divergence"]
    dens = params["syn_density"]
    avg_exc_div = (div["exc"]["min"] + div["exc"]["max"]) / 2.0
    grp = params["groups"]
    return L5Counts(
        avg_exc_div=avg_exc_div,
        n_dend_exc=int(lengths_um["basal_dist"] * dens["exc"] / avg_exc_div),
        n_apic_exc=int(lengths_um["apic"] * dens["exc"] / avg_exc_div),
        n_dend_inh=int(lengths_um["basal_dist"] * dens["inh"] / div["basal_inh"]["m"]),
        n_apic_inh=int(lengths_um["apic"] * dens["inh"] / div["apic_inh"]["m"]),
        n_prox_dend_inh=int(lengths_um["basal_prox"] * dens["inh"] / div["peri_inh"]["m"]),
        n_soma_inh=int(params["n_soma_syns"] / div["peri_inh"]["m"]),
        clust_per_group=int((grp["cells_per_group"] * avg_exc_div) // (dens["exc"] * 10)),
    )


@dataclass(frozen=True)
class Part:
    """One part of an input population: a node type (or, for functional groups, one per group)
    and the edge type of its synapses.

    Attributes
    ----------
    pop_name : str
        Node-type ``pop_name`` (functional groups: the prefix of ``<pop_name><group>``) and the
        edge type's ``target_region``.
    count : int
        Input cells of this part.
    placement : dict
        Where its synapses go, in the spec's vocabulary (:mod:`builder.core.spec.placement`):
        ``sections`` (one section type) and optionally ``path_distance_um`` ``[lo, hi)``; with
        ``rule: functional_groups`` also the group keys.
    synapses : dict
        Synapses per input cell: a spec distribution (``{"distribution": "uniform_int", "low",
        "high"}``) or the legacy rule ``{"distribution": "clipped_normal", "mean", "sd", "min",
        "max"}``: ``int(clip(normal(mean, sd), min, max))``, which the spec has not.
    """

    pop_name: str
    count: int
    placement: dict[str, Any]
    synapses: dict[str, Any]


@dataclass(frozen=True)
class InputPopulation:
    """A virtual input population, its connection onto the cell and its raster."""

    name: str
    potential: str
    dynamics_params: str
    parts: list[Part]
    raster: dict[str, Any]

    @property
    def size(self) -> int:
        return sum(p.count for p in self.parts)


@dataclass(frozen=True)
class L5Model:
    """The L5 network as a model: what :func:`build_l5_network` draws (no randomness yet)."""

    counts: L5Counts
    cell: dict[str, Any]
    inputs: list[InputPopulation]
    start_ms: float
    duration_ms: float
    bin_ms: float = BIN_MS

    def population_sizes(self) -> dict[str, int]:
        return {BIO_POP: 1, **{p.name: p.size for p in self.inputs}}

    def expected_synapses(self) -> dict[str, float]:
        """Expected synapses (edges) of each input population onto the cell."""
        return {
            inp.name: sum(p.count * mean_synapses(p.synapses) for p in inp.parts)
            for inp in self.inputs
        }


def mean_synapses(syn: dict[str, Any]) -> float:
    """Mean synapses per input cell of a part's ``synapses`` rule.

    ``uniform_int``: ``(low + high) / 2``. ``clipped_normal`` (the legacy rule
    ``int(clip(normal(mean, sd), min, max))``, ``min >= 0``): ``sum_k k P(K = k)`` with
    ``P(K = k) = P(k <= X < k + 1)`` inside, the clipped tails at ``min`` and ``max``.
    """
    if syn["distribution"] == "uniform_int":
        return (syn["low"] + syn["high"]) / 2.0
    m, sd, lo, hi = syn["mean"], syn["sd"], int(syn["min"]), int(syn["max"])
    if sd <= 0:
        return float(int(min(max(m, lo), hi)))

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf((x - m) / (sd * math.sqrt(2.0))))

    # K = k for X in [k, k + 1) (k in [lo, hi)); K = lo also below lo; K = hi for X >= hi
    total = lo * cdf(lo)
    for k in range(lo, hi):
        total += k * (cdf(k + 1) - cdf(k))
    return total + hi * (1.0 - cdf(hi))


def _clipped(d: dict[str, float]) -> dict[str, Any]:
    return {
        "distribution": "clipped_normal",
        "mean": float(d["m"]),
        "sd": float(d["s"]),
        "min": int(d["min"]),
        "max": int(d["max"]),
    }


def l5_model(params: dict[str, Any], lengths_um: dict[str, float]) -> L5Model:
    """Translate normalised legacy params (:func:`~builder.recipes.l5_params.load_params`) into
    the model.

    Parameters
    ----------
    params : dict
        Normalised params.
    lengths_um : dict
        ``basal_dist``, ``basal_prox``, ``apic`` dendritic lengths used for the counts.
    """
    counts = l5_counts(params, lengths_um)
    div = params["divergence"]
    grp = params["groups"]
    groups = {
        "rule": "functional_groups",
        "cells_per_group": int(grp["cells_per_group"]),
        "clusters_per_group": counts.clust_per_group,
        "group_radius_um": float(grp["group_radius"]),
        "cluster_radius_um": float(grp["cluster_radius"]),
    }
    exc_syns = {
        "distribution": "uniform_int",
        "low": int(div["exc"]["min"]),
        "high": int(div["exc"]["max"]),
    }
    inh_frs = params["inh_frs"]

    def inh_raster(frs: dict[str, Any]) -> dict[str, Any]:
        rhythm = frs.get("rhythmicity") or {}
        out: dict[str, Any] = {
            "kind": "l5_inhibition",
            "rate_hz": {"mean": float(frs["m"]), "sd": float(frs["s"])},
            "shift_ms": float(params["inh_shift"]),
        }
        if rhythm.get("f") is not None:
            out["rhythm"] = {"f_hz": float(rhythm["f"]), "mod": float(rhythm["mod"])}
        return out

    dist = list(DIST_INH_RANGE_UM)
    inputs = [
        InputPopulation(
            EXC_POP,
            "exc",
            EXC_SYN,
            [
                Part(
                    "dend",
                    counts.n_dend_exc,
                    {
                        **groups,
                        "sections": ["dend"],
                        "path_distance_um": [PROXIMAL_LIMIT_UM, ANY_DISTANCE_UM],
                    },
                    exc_syns,
                ),
                Part("apic", counts.n_apic_exc, {**groups, "sections": ["apic"]}, exc_syns),
            ],
            {"kind": "l5_pink_levy", "group": "functional_groups"},
        ),
        InputPopulation(
            PROX_POP,
            "inh",
            PERI_SYN,
            [
                Part(
                    "on_soma", counts.n_soma_inh, {"sections": ["soma"]}, _clipped(div["peri_inh"])
                ),
                Part(
                    "on_dend",
                    counts.n_prox_dend_inh,
                    {"sections": ["dend"], "path_distance_um": [0.0, PROXIMAL_LIMIT_UM]},
                    _clipped(div["peri_inh"]),
                ),
            ],
            inh_raster(inh_frs["proximal"]),
        ),
        InputPopulation(
            DIST_POP,
            "inh",
            DIST_SYN,
            [
                Part(
                    "dend",
                    counts.n_dend_inh,
                    {"sections": ["dend"], "path_distance_um": dist},
                    _clipped(div["basal_inh"]),
                ),
                Part(
                    "apic",
                    counts.n_apic_inh,
                    {"sections": ["apic"], "path_distance_um": dist},
                    _clipped(div["apic_inh"]),
                ),
            ],
            inh_raster(inh_frs["distal"]),
        ),
    ]
    start_s, stop_s = float(params["time"]["start"]), float(params["time"]["stop"])
    return L5Model(
        counts=counts,
        cell={"pop_name": "Pyrc", "potential": "exc", "model_type": "biophysical"},
        inputs=inputs,
        start_ms=start_s * 1000.0,
        duration_ms=(stop_s - start_s) * 1000.0,
    )


def l5_run_settings(params: dict[str, Any], seed: int) -> simconfig.RunSettings:
    """The simulation's run and conditions from the legacy keys (``time`` in seconds)."""
    return simconfig.RunSettings(
        tstop_ms=float(params["time"]["stop"]) * 1000.0,
        dt_ms=float(params["dt"]),
        dL_um=float(params["dL"]),
        spike_threshold_mV=float(params["run"]["spike_threshold_mV"]),
        nsteps_block=int(params["run"]["nsteps_block"]),
        random_seed=int(seed),
        celsius=float(params["conditions"]["celsius"]),
        v_init_mV=float(params["conditions"]["v_init"]),
        input_start_ms=float(params["time"]["start"]) * 1000.0,
        warmup_ms=float(params["run"].get("warmup_ms", 0.0)),
    )


def l5_reports(params: dict[str, Any]) -> list[simconfig.Report]:
    """One membrane report of the cell per ``record_cellvars`` variable, at its section group."""
    rc = params["record_cellvars"]
    return [
        simconfig.Report(var, loc, BIO_NODE_SET)
        for var, loc in zip(rc["vars"], rc["locs"], strict=True)
    ]


@dataclass
class L5Build:
    """What the recipe made, plus facts for the summary."""

    network: Network
    counts: L5Counts
    n_groups: dict[str, int] = field(default_factory=dict)
    duration_ms: float = 0.0


def _virtual_nodes(
    name: str, pop_names: list[str], sizes: list[int], potential: str, next_id: TypeIds
) -> NodePopulation:
    types = [
        {"node_type_id": next_id(), "pop_name": p, "potential": potential, "model_type": "virtual"}
        for p in pop_names
    ]
    ids = np.repeat(np.array([t["node_type_id"] for t in types], dtype=np.int64), sizes)
    return NodePopulation(name=name, node_type_ids=ids, node_types=types)


def _edge_type(
    next_id: TypeIds, dynamics: str, model_template: str, **extra: Any
) -> dict[str, Any]:
    return {
        "edge_type_id": next_id(),
        "syn_weight": SYN_WEIGHT,
        "delay": SYN_DELAY_MS,
        "dynamics_params": dynamics,
        "model_template": model_template,
        **extra,
    }


def eligible_rows(table: SegmentTable, placement: dict[str, Any]) -> np.ndarray:
    """Segment-table rows a part's ``placement`` allows: its section types within its
    ``path_distance_um`` ``[lo, hi)`` (the legacy ranges: upper bound excluded, unlike the
    spec's density rule), in table order."""
    lo, hi = placement.get("path_distance_um", (None, None))
    return table.rows(tuple(placement["sections"]), lo, hi)


def clipped_normal_counts(
    rng: np.random.Generator, n_cells: int, mean: float, sd: float, low: int, high: int
) -> np.ndarray:
    """Synapses per cell: ``int(clip(normal(mean, sd), low, high))`` (legacy rule)."""
    draws = rng.normal(mean, sd, size=n_cells)
    return np.clip(draws, low, high).astype(np.int64)


def _synapse_counts(rng: np.random.Generator, n_cells: int, syn: dict[str, Any]) -> np.ndarray:
    """Synapses of each input cell of a ranged part (its ``synapses`` rule)."""
    if syn["distribution"] == "uniform_int":
        return rng.integers(int(syn["low"]), int(syn["high"]) + 1, size=n_cells)
    if syn["distribution"] == "clipped_normal":
        return clipped_normal_counts(rng, n_cells, syn["mean"], syn["sd"], syn["min"], syn["max"])
    raise ValueError(f"synapses per cell: no rule {syn['distribution']!r}")


def build_l5_network(
    model: L5Model,
    table: SegmentTable,
    seed: int,
    synapse_models: dict[str, str],
    cell_node_type: dict[str, Any],
) -> L5Build:
    """Draw the L5 model into a network in memory (no files written).

    Parameters
    ----------
    model : L5Model
        The translated params (:func:`l5_model`).
    table : SegmentTable
        The cell's segments, as the simulator discretises it.
    seed : int
        The build seed.
    synapse_models : dict
        Synaptic-model JSON name -> model_template it names (``{"PN2PN.json": "pyr2pyr"}``).
    cell_node_type : dict
        Node-type columns of the biophysical cell (model_template, morphology...).
    """
    type_id = TypeIds(100)
    edge_type_id = TypeIds(100)
    net = Network()

    bio_type = {"node_type_id": type_id(), "pop_name": model.cell["pop_name"]}
    bio_type["potential"] = model.cell["potential"]
    bio_type.update({k: v for k, v in cell_node_type.items() if v is not None})
    bio_type["model_type"] = model.cell["model_type"]
    net.add_nodes(
        NodePopulation(BIO_POP, np.array([bio_type["node_type_id"]], dtype=np.int64), [bio_type])
    )
    n_groups: dict[str, int] = {}
    group_sizes_of: dict[str, list[int]] = {}
    for inp in model.inputs:
        if any(p.placement.get("rule") == "functional_groups" for p in inp.parts):
            _grouped_input(inp, net, table, seed, synapse_models, type_id, edge_type_id, n_groups)
            group_sizes_of[inp.name] = [
                int((net.nodes[inp.name].node_type_ids == t["node_type_id"]).sum())
                for t in net.nodes[inp.name].node_types
            ]
        else:
            _ranged_input(inp, net, table, seed, synapse_models, type_id, edge_type_id)
    _rasters(model, net, seed, group_sizes_of)
    return L5Build(
        network=net, counts=model.counts, n_groups=n_groups, duration_ms=model.duration_ms
    )


def _grouped_input(
    inp: InputPopulation,
    net: Network,
    table: SegmentTable,
    seed: int,
    synapse_models: dict[str, str],
    type_id: TypeIds,
    edge_type_id: TypeIds,
    n_groups: dict[str, int],
) -> None:
    """An input population placed by functional groups and clusters (SPEC section 5)."""
    pop_names: list[str] = []
    sizes: list[int] = []
    src, rows, group_of_node = [], [], []
    edge_types, edge_type_of = [], []
    start = 0
    group_index = 0
    for part in inp.parts:
        pl, syn = part.placement, part.synapses
        if syn["distribution"] != "uniform_int":  # drawn inside each group (place_group)
            raise ValueError(f"{inp.name}/{part.pop_name}: functional groups need uniform_int")
        region = part.pop_name
        eligible = eligible_rows(table, pl)
        gsizes = group_sizes(part.count, pl["cells_per_group"])
        n_groups[region] = int(gsizes.size)
        if gsizes.size and eligible.size == 0:
            raise PlacementError(
                f"no eligible '{region}' segments for {part.count} excitatory inputs"
            )
        et = _edge_type(
            edge_type_id,
            inp.dynamics_params,
            synapse_models[inp.dynamics_params],
            target_region=region,
        )
        edge_types.append(et)
        n_clusters = pl["clusters_per_group"]
        centres = (
            feasible_centres(table.xyz_um, eligible, pl["group_radius_um"], n_clusters)
            if gsizes.size
            else eligible
        )
        for g, n in enumerate(gsizes.tolist()):
            placed = place_group(
                stream(seed, "exc", region, "group", g),
                table.xyz_um,
                eligible,
                n_cells=n,
                n_clusters=n_clusters,
                group_radius_um=pl["group_radius_um"],
                cluster_radius_um=pl["cluster_radius_um"],
                syns_min=syn["low"],
                syns_max=syn["high"],
                centres=centres,
                label=f"functional group {region}{g}",
            )
            pop_names.append(f"{region}{g}")
            sizes.append(n)
            src.append(placed.syn_cell + start)
            rows.append(placed.syn_row)
            edge_type_of.append(np.full(placed.syn_row.size, et["edge_type_id"], dtype=np.int64))
            group_of_node.append(np.full(n, group_index, dtype=np.int64))
            start += n
            group_index += 1
    nodes = net.add_nodes(_virtual_nodes(inp.name, pop_names, sizes, inp.potential, type_id))
    all_src = np.concatenate(src) if src else np.zeros(0, np.int64)
    all_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    net.add_edges(
        _edges(
            inp.name,
            all_src,
            all_rows,
            np.concatenate(edge_type_of) if edge_type_of else all_src,
            edge_types,
            table,
        )
    )
    groups_col = np.concatenate(group_of_node) if group_of_node else np.zeros(0, np.int64)
    net.tables["FunctionalGroups.csv"] = Table(
        ["Node ID", "Functional Group"], [np.arange(nodes.size, dtype=np.int64), groups_col]
    )


def _ranged_input(
    inp: InputPopulation,
    net: Network,
    table: SegmentTable,
    seed: int,
    synapse_models: dict[str, str],
    type_id: TypeIds,
    edge_type_id: TypeIds,
) -> None:
    """An input population placed on sections within a distance range (SPEC section 6)."""
    weights = table.length_um if table.has_lengths else None
    start = 0
    src, rows, etypes, ets = [], [], [], []
    for part in inp.parts:
        eligible = eligible_rows(table, part.placement)
        rng = stream(seed, "inh", inp.name, part.pop_name)
        n_syns = _synapse_counts(rng, part.count, part.synapses)
        w = None if weights is None else weights[eligible]
        syn_cell, syn_row = place_ranged(
            rng, eligible, n_syns, w, label=f"{inp.name}/{part.pop_name}"
        )
        et = _edge_type(
            edge_type_id,
            inp.dynamics_params,
            synapse_models[inp.dynamics_params],
            target_region=part.pop_name,
        )
        ets.append(et)
        src.append(syn_cell + start)
        rows.append(syn_row)
        etypes.append(np.full(syn_row.size, et["edge_type_id"], dtype=np.int64))
        start += part.count
    net.add_nodes(
        _virtual_nodes(
            inp.name,
            [p.pop_name for p in inp.parts],
            [p.count for p in inp.parts],
            inp.potential,
            type_id,
        )
    )
    net.add_edges(
        _edges(
            inp.name, np.concatenate(src), np.concatenate(rows), np.concatenate(etypes), ets, table
        )
    )


def _rasters(model: L5Model, net: Network, seed: int, group_sizes_of: dict[str, list[int]]) -> None:
    """The input rasters (SPEC section 7): pink-noise/Levy excitation, then inhibition."""
    t0_ms, bin_ms = model.start_ms, model.bin_ms
    n_bins = int(round(model.duration_ms / bin_ms))
    exc_bin = np.zeros(0, np.int64)
    n_exc = 0
    for inp in model.inputs:
        if inp.raster["kind"] != "l5_pink_levy":
            continue
        cells, bins = [], []
        start = 0
        for g, n in enumerate(group_sizes_of[inp.name]):
            profile = rasters.pink_noise(stream(seed, "raster", inp.name, "noise", g), n_bins)[0]
            rates = rasters.exc_rates_hz(stream(seed, "raster", inp.name, "rates", g), n)
            cell, b = rasters.poisson_bins(
                stream(seed, "raster", inp.name, "spikes", g), rates, profile, bin_ms=bin_ms
            )
            cells.append(cell + start)
            bins.append(b)
            start += n
        cell_all = np.concatenate(cells) if cells else np.zeros(0, np.int64)
        exc_bin = np.concatenate(bins) if bins else np.zeros(0, np.int64)
        n_exc = net.nodes[inp.name].size
        net.spikes[inp.name] = SpikeTrains(inp.name, cell_all, exc_bin * bin_ms + t0_ms)

    shared_inh_profile = None
    for inp in model.inputs:
        r = inp.raster
        if r["kind"] != "l5_inhibition":
            continue
        n_cells = net.nodes[inp.name].size
        rates = rasters.truncnorm_rates_hz(
            stream(seed, "raster", inp.name, "rates"),
            n_cells,
            r["rate_hz"]["mean"],
            r["rate_hz"]["sd"],
        )
        if "rhythm" in r:
            profile = l5_rasters.rhythmic_profile(
                n_bins, r["rhythm"]["f_hz"], r["rhythm"]["mod"], start_ms=t0_ms, bin_ms=bin_ms
            )
        else:
            if shared_inh_profile is None:
                shared_inh_profile = l5_rasters.inh_profile_from_exc(
                    exc_bin, max(n_exc, 1), n_bins, r["shift_ms"], bin_ms=bin_ms
                )
            profile = shared_inh_profile
        cell, b = rasters.poisson_bins(
            stream(seed, "raster", inp.name, "spikes"), rates, profile, bin_ms
        )
        net.spikes[inp.name] = SpikeTrains(inp.name, cell, b * bin_ms + t0_ms)


def _edges(
    source: str,
    src_ids: np.ndarray,
    rows: np.ndarray,
    edge_type_ids: np.ndarray,
    edge_types: list[dict[str, Any]],
    table: SegmentTable,
) -> EdgePopulation:
    return EdgePopulation(
        source=source,
        target=BIO_POP,
        source_ids=src_ids.astype(np.int64),
        target_ids=np.zeros(src_ids.size, dtype=np.int64),
        edge_type_ids=edge_type_ids.astype(np.int64),
        edge_types=edge_types,
        columns={
            "sec_id": table.bmtk_id[rows].astype(np.int32),
            "sec_x": table.x[rows].astype(np.float64),
        },
    )
