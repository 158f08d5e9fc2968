"""Connections between simulated cells built in bulk, instead of BMTK's per-edge construction.

BMTK BioNet builds a recurrent connection edge by edge: an HDF5 row read per edge and a
Python call chain per synapse (3.6 s of CPU for the 27,000 recurrent synapses of
``examples/lfpy_network.json``). For the edge populations our builder writes -- every edge
with ``sec_id``/``sec_x`` (and ``syn_id`` for our stochastic models), one edge group, models we
create ourselves, no weight functions or gap junctions -- this module reads every column once
and makes each synapse and its ``pc.gid_connect`` NetCon directly, with the placement, weight,
delay and release stream BMTK's path followed by :func:`builder.simulators.neuron.runner._bind`
gives (:func:`builder.simulators.neuron.inputs.connect_edges`, shared with the virtual inputs).
Other edge populations are left to BMTK.

As with the bulk inputs, these connections are not in BMTK's per-cell bookkeeping
(``BioCell._connections``), which only BMTK's synapse reports read (we write none);
``run-network --bmtk-inputs`` leaves them to BMTK.

Use: :func:`take_recurrent` after ``BioNetwork.from_config`` (it removes the populations it
takes from BMTK's list, so ``BioSimulator.from_config`` does not build them), then
:func:`build_recurrent` once the cells exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...core.checks import read_circuit
from .inputs import _edge_types, connect_edges, read_edge_columns

__all__ = ["RecurrentPlan", "take_recurrent", "build_recurrent"]


@dataclass
class RecurrentPlan:
    """One edge population between simulated cells that we build ourselves."""

    h5: Path
    population: str
    types_csv: Path


def _eligible(h5: Path, epop: str, types_csv: Path, models: tuple[str, ...]) -> bool:
    from .synapses import LINEAR_MODELS

    types = _edge_types(types_csv)
    for t in types.values():
        if t.get("model_template") not in models:
            return False
        if t.get("weight_function") not in (None, "", "NULL", "None"):
            return False
        if str(t.get("is_gap_junction", "")).lower() in ("true", "1"):
            return False
    stochastic = any(t["model_template"] not in LINEAR_MODELS for t in types.values())
    with h5py.File(h5, "r") as f:
        g = f["edges"][epop]
        grp = g.get("0")
        if grp is None or "sec_id" not in grp or "sec_x" not in grp:
            return False
        if stochastic and "syn_id" not in grp:
            return False
        return set(np.unique(g["edge_group_id"][()]).tolist()) <= {0}


def take_recurrent(graph: Any, config: Path, models: tuple[str, ...]) -> list[RecurrentPlan]:
    """The edge populations between simulated cells that :func:`build_recurrent` can build.

    They are removed from ``graph`` (a ``BioNetwork`` whose edges are loaded, cells not yet
    built), so that BMTK does not build them a second time.
    """
    circuit, cres = read_circuit(config)
    files: dict[str, tuple[Path, Path]] = {}
    for entry in circuit.get("networks", {}).get("edges", []):
        h5 = cres(str(entry["edges_file"])).resolve()
        types = cres(str(entry["edge_types_file"])).resolve()
        with h5py.File(h5, "r") as f:
            for epop in f.get("edges", {}):
                files[str(epop)] = (h5, types)
    node_pops = {p.name: p for p in graph.get_node_populations()}
    plans, kept = [], []
    for edge_pop in graph._edge_populations:
        src = node_pops.get(edge_pop.source_nodes)
        where = files.get(edge_pop.name)
        if (
            where is not None
            and src is not None
            and not src.virtual_nodes_only
            and edge_pop.recurrent_connections
            and _eligible(where[0], edge_pop.name, where[1], models)
        ):
            plans.append(RecurrentPlan(where[0], edge_pop.name, where[1]))
        else:
            kept.append(edge_pop)
    graph._edge_populations[:] = kept
    return plans


def build_recurrent(
    plans: list[RecurrentPlan],
    graph: Any,
    components: Path,
    seed: int,
    make_synapse: Callable[[str, Any, float, Any], Any],
    merge: bool,
) -> tuple[int, set[str], list[Any]]:
    """Synapses and ``pc.gid_connect`` NetCons for ``plans`` onto this rank's cells.

    Returns the number of synapses made, the names of their point processes and the objects
    to keep alive for the run (as :func:`builder.simulators.neuron.inputs.build_inputs`).
    """
    from neuron import h

    pc = h.ParallelContext()
    graph._init_connections()  # what BMTK's build_recurrent_edges does first (idempotent)
    keep: list[Any] = []
    pps: set[str] = set()
    params_cache: dict[str, Any] = {}
    n_syn = 0
    for plan in plans:
        cols = read_edge_columns(plan.h5, plan.population)
        src_gids = cols.src + int(graph.gid_pool.get_gid(name=cols.source_population, node_id=0))

        def connect(i: int, pp: Any, src_gids: np.ndarray = src_gids) -> Any:
            return pc.gid_connect(int(src_gids[i]), pp)

        n_syn += connect_edges(
            cols,
            _edge_types(plan.types_csv),
            graph,
            components,
            seed,
            make_synapse,
            connect,
            merge,
            keep,
            pps,
            params_cache,
        )
    return n_syn, pps, keep
