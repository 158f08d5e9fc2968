"""The L5 input-network recipe (SPEC sections 3, 5, 6, 7).

One biophysical cell receives excitatory inputs in functional groups and clusters on its basal
(>= 50 um from the soma) and apical dendrites, perisomatic inhibition (soma and basal < 50 um)
and distal dendritic inhibition (basal and apical, 50-2000 um). Virtual input cells fire
inhomogeneous Poisson trains: excitatory rates follow a shared pink-noise profile per group;
inhibitory rates follow the population-average excitation, delayed, or a rhythm.

Random streams (see :mod:`builder.rng`) are keyed by what they draw for, so e.g. changing the
number of distal inhibitory cells leaves the excitatory network and rasters untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import rasters
from ..errors import PlacementError
from ..network import EdgePopulation, Network, NodePopulation, SpikeTrains, Table, TypeIds
from ..placement import (
    clipped_normal_counts,
    feasible_centres,
    group_sizes,
    place_group,
    place_ranged,
)
from ..rng import stream
from ..segments import PROXIMAL_LIMIT_UM, SegmentTable

__all__ = [
    "L5Counts",
    "l5_counts",
    "build_l5_network",
    "BIO_POP",
    "EXC_POP",
    "PROX_POP",
    "DIST_POP",
]

BIO_POP = "biophysical"
EXC_POP = "exc_stim"
PROX_POP = "prox_inh_stim"
DIST_POP = "dist_inh_stim"

#: Distal inhibition targets segments in [50, 2000) um from the soma (legacy distance_range).
DIST_INH_RANGE_UM = (PROXIMAL_LIMIT_UM, 2000.0)
SYN_DELAY_MS = 0.1
SYN_WEIGHT = 1.0
BIN_MS = 1.0

EXC_SYN = "PN2PN.json"
PERI_SYN = "PV2PN.json"
DIST_SYN = "SOM2PN.json"


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


def build_l5_network(
    params: dict[str, Any],
    table: SegmentTable,
    lengths_um: dict[str, float],
    seed: int,
    synapse_models: dict[str, str],
    cell_node_type: dict[str, Any],
) -> L5Build:
    """Build the L5 input network in memory.

    Parameters
    ----------
    params : dict
        Normalised params (see :func:`builder.params.load_params`).
    table : SegmentTable
        The cell's segments, as the simulator discretises it.
    lengths_um : dict
        ``basal_dist``, ``basal_prox``, ``apic`` dendritic lengths used for the counts.
    seed : int
        The build seed.
    synapse_models : dict
        Synaptic-model JSON name -> model_template it names (``{"PN2PN.json": "pyr2pyr"}``).
    cell_node_type : dict
        Node-type columns of the biophysical cell (model_template, morphology...).
    """
    counts = l5_counts(params, lengths_um)
    div = params["divergence"]
    grp = params["groups"]
    t0_ms = float(params["time"]["start"]) * 1000.0
    duration_ms = (float(params["time"]["stop"]) - float(params["time"]["start"])) * 1000.0
    n_bins = int(round(duration_ms / BIN_MS))

    type_id = TypeIds(100)
    edge_type_id = TypeIds(100)
    net = Network()

    bio_type = {"node_type_id": type_id(), "pop_name": "Pyrc", "potential": "exc"}
    bio_type.update({k: v for k, v in cell_node_type.items() if v is not None})
    bio_type["model_type"] = "biophysical"
    net.add_nodes(
        NodePopulation(BIO_POP, np.array([bio_type["node_type_id"]], dtype=np.int64), [bio_type])
    )

    # ---------------------------------------------------------------- excitation
    regions = [
        ("dend", table.rows("dend", min_distance_um=PROXIMAL_LIMIT_UM), counts.n_dend_exc),
        ("apic", table.rows("apic"), counts.n_apic_exc),
    ]
    pop_names: list[str] = []
    sizes: list[int] = []
    src, rows, group_of_node = [], [], []
    edge_types, edge_type_of = [], []
    start = 0
    n_groups: dict[str, int] = {}
    group_index = 0
    for region, eligible, n_cells in regions:
        gsizes = group_sizes(n_cells, grp["cells_per_group"])
        n_groups[region] = int(gsizes.size)
        if gsizes.size and eligible.size == 0:
            raise PlacementError(f"no eligible '{region}' segments for {n_cells} excitatory inputs")
        et = _edge_type(edge_type_id, EXC_SYN, synapse_models[EXC_SYN], target_region=region)
        edge_types.append(et)
        centres = (
            feasible_centres(table.xyz_um, eligible, grp["group_radius"], counts.clust_per_group)
            if gsizes.size
            else eligible
        )
        for g, n in enumerate(gsizes.tolist()):
            placed = place_group(
                stream(seed, "exc", region, "group", g),
                table.xyz_um,
                eligible,
                n_cells=n,
                n_clusters=counts.clust_per_group,
                group_radius_um=grp["group_radius"],
                cluster_radius_um=grp["cluster_radius"],
                syns_min=div["exc"]["min"],
                syns_max=div["exc"]["max"],
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
    exc_nodes = net.add_nodes(_virtual_nodes(EXC_POP, pop_names, sizes, "exc", type_id))
    exc_src = np.concatenate(src) if src else np.zeros(0, np.int64)
    exc_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    net.add_edges(
        _edges(
            EXC_POP,
            exc_src,
            exc_rows,
            np.concatenate(edge_type_of) if edge_type_of else exc_src,
            edge_types,
            table,
        )
    )
    groups_col = np.concatenate(group_of_node) if group_of_node else np.zeros(0, np.int64)
    net.tables["FunctionalGroups.csv"] = Table(
        ["Node ID", "Functional Group"], [np.arange(exc_nodes.size, dtype=np.int64), groups_col]
    )

    # ---------------------------------------------------------------- inhibition
    weights = table.length_um if table.has_lengths else None

    def ranged(pop: str, key: str, eligible: np.ndarray, n_cells: int, dv: dict[str, float]):
        rng = stream(seed, "inh", pop, key)
        n_syns = clipped_normal_counts(
            rng, n_cells, dv["m"], dv["s"], int(dv["min"]), int(dv["max"])
        )
        w = None if weights is None else weights[eligible]
        return place_ranged(rng, eligible, n_syns, w, label=f"{pop}/{key}")

    inh_specs = [
        (
            PROX_POP,
            PERI_SYN,
            [
                ("on_soma", table.rows("soma"), counts.n_soma_inh, div["peri_inh"]),
                (
                    "on_dend",
                    table.rows("dend", max_distance_um=PROXIMAL_LIMIT_UM),
                    counts.n_prox_dend_inh,
                    div["peri_inh"],
                ),
            ],
        ),
        (
            DIST_POP,
            DIST_SYN,
            [
                (
                    "dend",
                    table.rows("dend", *DIST_INH_RANGE_UM),
                    counts.n_dend_inh,
                    div["basal_inh"],
                ),
                (
                    "apic",
                    table.rows("apic", *DIST_INH_RANGE_UM),
                    counts.n_apic_inh,
                    div["apic_inh"],
                ),
            ],
        ),
    ]
    for pop, syn, parts in inh_specs:
        start = 0
        src, rows, etypes, ets = [], [], [], []
        for key, eligible, n_cells, dv in parts:
            syn_cell, syn_row = ranged(pop, key, eligible, n_cells, dv)
            et = _edge_type(edge_type_id, syn, synapse_models[syn], target_region=key)
            ets.append(et)
            src.append(syn_cell + start)
            rows.append(syn_row)
            etypes.append(np.full(syn_row.size, et["edge_type_id"], dtype=np.int64))
            start += n_cells
        net.add_nodes(
            _virtual_nodes(pop, [p[0] for p in parts], [p[2] for p in parts], "inh", type_id)
        )
        net.add_edges(
            _edges(
                pop, np.concatenate(src), np.concatenate(rows), np.concatenate(etypes), ets, table
            )
        )

    # ---------------------------------------------------------------- rasters
    exc_cells, exc_bins = [], []
    start = 0
    for g, n in enumerate(sizes):
        profile = rasters.pink_noise(stream(seed, "raster", EXC_POP, "noise", g), n_bins)[0]
        rates = rasters.exc_rates_hz(stream(seed, "raster", EXC_POP, "rates", g), n)
        cell, b = rasters.poisson_bins(
            stream(seed, "raster", EXC_POP, "spikes", g), rates, profile, bin_ms=BIN_MS
        )
        exc_cells.append(cell + start)
        exc_bins.append(b)
        start += n
    exc_cell = np.concatenate(exc_cells) if exc_cells else np.zeros(0, np.int64)
    exc_bin = np.concatenate(exc_bins) if exc_bins else np.zeros(0, np.int64)
    net.spikes[EXC_POP] = SpikeTrains(EXC_POP, exc_cell, exc_bin * BIN_MS + t0_ms)

    shared_inh_profile = None
    for pop, frs in (
        (PROX_POP, params["inh_frs"]["proximal"]),
        (DIST_POP, params["inh_frs"]["distal"]),
    ):
        n_cells = net.nodes[pop].size
        rates = rasters.truncnorm_rates_hz(
            stream(seed, "raster", pop, "rates"), n_cells, frs["m"], frs["s"]
        )
        rhythm = frs.get("rhythmicity") or {}
        if rhythm.get("f") is not None:
            profile = rasters.rhythmic_profile(
                n_bins, rhythm["f"], rhythm["mod"], start_ms=t0_ms, bin_ms=BIN_MS
            )
        else:
            if shared_inh_profile is None:
                shared_inh_profile = rasters.inh_profile_from_exc(
                    exc_bin,
                    max(exc_nodes.size, 1),
                    n_bins,
                    float(params["inh_shift"]),
                    bin_ms=BIN_MS,
                )
            profile = shared_inh_profile
        cell, b = rasters.poisson_bins(
            stream(seed, "raster", pop, "spikes"), rates, profile, BIN_MS
        )
        net.spikes[pop] = SpikeTrains(pop, cell, b * BIN_MS + t0_ms)

    return L5Build(network=net, counts=counts, n_groups=n_groups, duration_ms=duration_ms)


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
