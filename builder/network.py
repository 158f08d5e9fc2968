"""In-memory description of a built network: node and edge populations, spike trains, tables.

A recipe (e.g. :mod:`builder.recipes.l5`) fills a :class:`Network`; :mod:`builder.writer` turns
it into SONATA files. Every column is one numpy array, so writing is one dataset per column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count
from typing import Any

import numpy as np

__all__ = ["NodePopulation", "EdgePopulation", "SpikeTrains", "Table", "Network", "TypeIds"]


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
    """Everything a recipe builds; written by :func:`builder.writer.write_network`."""

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
