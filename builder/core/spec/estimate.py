"""What a build would produce, without writing anything (``build-network SPEC --check``).

Edges are the rows of each edge file: connections, or synapses for a biophysical target (one
row per synapse, ``synapses_per_connection`` of them per connection). Counts are exact where
the rule fixes them; otherwise exact by the build's own counting pass over the blocks' streams
when the projection is small (at most :data:`EXACT_COUNT_LIMIT` expected rows, or pairs of
cells for a distance-dependent rule), else expected
values (a distance-dependent probability is averaged over 200 000 random pairs, a synapse
count distribution over 100 000 draws). Disk size counts the edge columns (those of the
target's model) and the source index (the target index and type tables are small), node
columns and spikes. Peak memory is what the streaming build holds at once: the node tables
and positions, the largest block of edges with its attribute columns and sort workspace, one
source-index bucket (at most 2^25 ranges of 8-16 bytes) and the chunk of runs being placed in
it, plus the Python, numpy and h5py baseline measured on this machine (about 120 MB).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .model import _sel_pop

if TYPE_CHECKING:
    from .build import NetworkBuilder

__all__ = ["estimate"]

_BASELINE_BYTES = 120e6
_BLOCK_BYTES_PER_EDGE = 8 * 12  # ids, sort keys, weights, delays, nsyns, conversions
_INDEX_BUDGET_RANGES = 1 << 25  # EdgeStreamWriter's default index_budget
_CHUNK_EDGES = 1 << 22  # NetworkBuilder's default chunk_edges
#: Up to this many expected rows (pairs, for a distance-dependent rule), an inexact count is
#: made exact by a counting pass.
EXACT_COUNT_LIMIT = 2e7


def estimate(builder: NetworkBuilder) -> dict[str, Any]:
    """Nodes and edges per population and projection, expected disk size and peak memory."""
    from .build import _INDEX_BYTES, EDGE_COLUMN_BYTES
    from .distributions import is_random
    from .inputs import SpikeTrains
    from .placement import PLACEMENT_COLUMNS

    spec = builder.spec
    nodes = {name: builder.population_size(name) for name in spec.populations}
    edges: dict[str, float] = {}
    connections: dict[str, float] = {}
    exact: dict[str, bool] = {}
    row_bytes: dict[str, int] = {}
    block_max = 0.0
    placement_bytes = sum(np.dtype(t).itemsize for t in PLACEMENT_COLUMNS.values())
    for cname, con in spec.connections.items():
        proj = builder.projection(cname)
        known = proj.exact_total()
        connections[cname] = float(known) if known is not None else proj.expected_edges()
        tmodel = spec.populations[_sel_pop(con["target"])]["model"]["type"]
        bio = tmodel == "biophysical"
        fixed = known is not None and not (bio and is_random(con.get("synapses_per_connection")))
        rows = builder.row_count(cname, proj, exact=False)
        p = proj.rule.get("p")
        work = proj.n_src * proj.n_trg if isinstance(p, Mapping) else rows  # pairs looked at
        if not fixed and work <= EXACT_COUNT_LIMIT:
            rows, fixed = builder.row_count(cname, proj), True
        edges[cname], exact[cname] = float(rows), fixed
        row_bytes[cname] = EDGE_COLUMN_BYTES + _INDEX_BYTES
        row_bytes[cname] += placement_bytes if bio else 0 if tmodel == "point" else 4  # nsyns
        n_blocks = max(1, len(proj.blocks()))
        point_row = EDGE_COLUMN_BYTES + _INDEX_BYTES
        block_max = max(block_max, rows / n_blocks * 1.2 * row_bytes[cname] / point_row)
    spikes: dict[str, float] = {}
    duration = float(spec.data["run"]["duration_ms"])
    for iname, inp in spec.inputs.items():
        if inp["type"] == "spikes":
            tr = SpikeTrains(
                iname, inp, nodes[inp["population"]], duration, spec.seed, spec.base_dir
            )
            spikes[iname] = tr.expected_total()
    n_nodes = sum(nodes.values())
    disk = sum(e * row_bytes[c] for c, e in edges.items())
    disk += n_nodes * (8 * 4 + 8 * 3 + 8 * 3) + sum(spikes.values()) * 16
    disk += sum(
        16 * (nodes[_sel_pop(c["source"])] + nodes[_sel_pop(c["target"])])
        for c in spec.connections.values()
    )
    total_edges = sum(edges.values())
    biggest = max(edges.values(), default=0)
    # the source index: one bucket of ranges (16 B each) + one chunk of runs being placed
    index_bucket = min(_INDEX_BUDGET_RANGES, biggest) * 16 + min(_CHUNK_EDGES, biggest) * 48
    memory = (
        _BASELINE_BYTES
        + n_nodes * 8 * 12
        + block_max * _BLOCK_BYTES_PER_EDGE
        + index_bucket
        + max(spikes.values(), default=0) / 4 * 16  # one cell block of spikes, generously
    )
    memory += max(nodes.values(), default=0) * 8 * 4  # per-node counters of one projection
    return {
        "nodes": nodes,
        "edges": edges,
        "edges_exact": exact,
        "connections": connections,
        "spikes": spikes,
        "total_nodes": n_nodes,
        "total_edges": total_edges,
        "disk_bytes": disk,
        "peak_memory_bytes": memory,
    }
