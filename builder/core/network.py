"""In-memory description of a built network: node and edge populations, spike trains, tables.

A recipe (e.g. :mod:`builder.recipes.l5`) fills a :class:`Network`; :func:`write_network` turns
it into SONATA files through the general layer's writers (:func:`builder.core.sonata.write_nodes`,
:class:`builder.core.sonata.EdgeStreamWriter`, :class:`builder.core.sonata.SpikeStreamWriter`, the
same ones :mod:`builder.core.spec.build` streams into). Every column is one numpy array.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np

from . import simconfig
from .sonata import EdgeStreamWriter, SpikeStreamWriter, write_csv_table, write_nodes

__all__ = [
    "NodePopulation",
    "EdgePopulation",
    "SpikeTrains",
    "Table",
    "Network",
    "TypeIds",
    "WrittenNetwork",
    "write_network",
]


class TypeIds:
    """Hands out node/edge type ids, unique within a network (BMTK starts at 100)."""

    def __init__(self, start: int = 100):
        self._next = count(start)

    def __call__(self) -> int:
        return next(self._next)


@dataclass
class NodePopulation:
    """A node population: one node type id per node plus the node-types table."""

    name: str
    node_type_ids: np.ndarray
    node_types: list[dict[str, Any]]
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.node_type_ids.size)

    def ids_of_type(self, **match: Any) -> np.ndarray:
        """Node ids whose node type has all the given key/values."""
        wanted = [
            t["node_type_id"]
            for t in self.node_types
            if all(t.get(k) == v for k, v in match.items())
        ]
        return np.flatnonzero(np.isin(self.node_type_ids, wanted))


@dataclass
class EdgePopulation:
    """Edges from ``source`` onto ``target``, one row per synapse."""

    source: str
    target: str
    source_ids: np.ndarray
    target_ids: np.ndarray
    edge_type_ids: np.ndarray
    edge_types: list[dict[str, Any]]
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.source}_to_{self.target}"

    @property
    def size(self) -> int:
        return int(self.source_ids.size)


@dataclass
class SpikeTrains:
    """Spike times (ms) of a virtual population, sorted by node id then time."""

    population: str
    node_ids: np.ndarray
    timestamps_ms: np.ndarray

    @property
    def size(self) -> int:
        return int(self.node_ids.size)


@dataclass
class Table:
    """A small CSV table written beside the network (e.g. FunctionalGroups.csv)."""

    header: list[str]
    columns: list[np.ndarray]


@dataclass
class Network:
    """Everything a recipe builds; written by :func:`write_network`."""

    nodes: dict[str, NodePopulation] = field(default_factory=dict)
    edges: list[EdgePopulation] = field(default_factory=list)
    spikes: dict[str, SpikeTrains] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)

    def add_nodes(self, pop: NodePopulation) -> NodePopulation:
        if pop.name in self.nodes:
            raise ValueError(f"node population {pop.name!r} defined twice")
        self.nodes[pop.name] = pop
        return pop

    def add_edges(self, edges: EdgePopulation) -> EdgePopulation:
        for name in (edges.source, edges.target):
            if name not in self.nodes:
                raise ValueError(f"edges refer to unknown node population {name!r}")
        self.edges.append(edges)
        return edges


@dataclass
class WrittenNetwork:
    """What :func:`write_network` wrote: the circuit's files and the spike inputs (relative)."""

    circuit: simconfig.CircuitFiles
    spike_inputs: list[simconfig.SpikeInput]


def write_network(
    net: Network, path: Callable[[str], Path], network_dir: str = "network"
) -> WrittenNetwork:
    """Write a network's SONATA files.

    Layout (relative to the output directory): ``<network_dir>/<pop>_nodes.h5`` and
    ``<pop>_node_types.csv`` per node population; ``<network_dir>/<source>_<target>_edges.h5``
    and ``_edge_types.csv`` per edge population (edge population ``<source>_to_<target>``),
    its edges in SONATA order (by target, then source; stable) with a ``syn_id`` column equal
    to the edge id; ``<pop>_spikes.h5`` per spike input (sorted by node id, then time); each
    table as ``<name>`` (CSV).

    Parameters
    ----------
    net : Network
    path : callable
        Relative path -> where to write it (e.g. :meth:`builder.core.output.Staging.path`).
    network_dir : str
        Folder of the node and edge files.
    """
    circuit = simconfig.CircuitFiles()
    for pop in net.nodes.values():
        h5, csv = f"{network_dir}/{pop.name}_nodes.h5", f"{network_dir}/{pop.name}_node_types.csv"
        write_nodes(
            path(h5), path(csv), pop.name, pop.node_type_ids, pop.node_types, pop.columns or None
        )
        circuit.nodes.append((h5, csv))
        kinds = {t.get("model_type", "virtual") for t in pop.node_types}
        circuit.node_populations.append({pop.name: kinds.pop() if len(kinds) == 1 else "virtual"})
    for e in net.edges:
        stem = f"{network_dir}/{e.source}_{e.target}"
        h5, csv = f"{stem}_edges.h5", f"{stem}_edge_types.csv"
        # SONATA order (by target, then source); 'syn_id' is then the edge id, which keys each
        # synapse's release and weight random streams at run time
        order = np.lexsort((e.source_ids, e.target_ids))
        columns = {k: np.asarray(v)[order] for k, v in e.columns.items()}
        columns["syn_id"] = np.arange(order.size, dtype=np.uint32)
        with EdgeStreamWriter(
            path(h5),
            path(csv),
            e.name,
            e.source,
            e.target,
            n_edges=e.size,
            n_source_nodes=net.nodes[e.source].size,
            n_target_nodes=net.nodes[e.target].size,
            edge_types=e.edge_types,
            columns={k: v.dtype for k, v in columns.items()},
        ) as w:
            w.append(e.source_ids[order], e.target_ids[order], e.edge_type_ids[order], columns)
        circuit.edges.append((h5, csv))
        circuit.edge_populations.append({e.name: "chemical"})
    spike_inputs = []
    for name, trains in net.spikes.items():
        rel = f"{name}_spikes.h5"
        order = np.lexsort((trains.timestamps_ms, trains.node_ids))
        with SpikeStreamWriter(path(rel), name, trains.size) as sw:
            sw.append(trains.node_ids[order], trains.timestamps_ms[order])
        spike_inputs.append(simconfig.SpikeInput(name, rel))
    for fname, table in net.tables.items():
        write_csv_table(path(fname), table.header, table.columns)
    return WrittenNetwork(circuit, spike_inputs)
