"""What a build would produce, without writing anything (``build-network SPEC --check``).

Counts are exact where the rule fixes them and expected values otherwise (a distance-dependent
probability is averaged over 200 000 random pairs). Disk size counts the edge columns and the
source index (the target index and type tables are small), node columns and spikes. Peak memory
is what the streaming build holds at once: the node tables and positions, the largest block of
edges with its attribute columns and sort workspace, one source-index bucket (at most 2^25
ranges of 16 bytes) and the chunk of runs being placed in it, plus the Python,
numpy and h5py baseline measured on this machine (about 120 MB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import _sel_pop

if TYPE_CHECKING:
    from .build import NetworkBuilder

__all__ = ["estimate"]

_BASELINE_BYTES = 120e6
_BLOCK_BYTES_PER_EDGE = 8 * 12  # ids, sort keys, weights, delays, nsyns, conversions
_INDEX_BUDGET_RANGES = 1 << 25  # EdgeStreamWriter's default index_budget
_CHUNK_EDGES = 1 << 22  # NetworkBuilder's default chunk_edges


def estimate(builder: NetworkBuilder) -> dict[str, Any]:
    """Nodes and edges per population and projection, expected disk size and peak memory."""
    from .build import _INDEX_BYTES, EDGE_COLUMN_BYTES
    from .inputs import SpikeTrains

    spec = builder.spec
    nodes = {name: builder.population_size(name) for name in spec.populations}
    edges: dict[str, float] = {}
    exact: dict[str, bool] = {}
    block_max = 0.0
    for cname in spec.connections:
        proj = builder.projection(cname)
        known = proj.exact_total()
        edges[cname] = float(known) if known is not None else proj.expected_edges()
        exact[cname] = known is not None
        n_blocks = max(1, len(proj.blocks()))
        block_max = max(block_max, edges[cname] / n_blocks * 1.2)
    spikes: dict[str, float] = {}
    duration = float(spec.data["run"]["duration_ms"])
    for iname, inp in spec.inputs.items():
        if inp["type"] == "spikes":
            tr = SpikeTrains(
                iname, inp, nodes[inp["population"]], duration, spec.seed, spec.base_dir
            )
            spikes[iname] = tr.expected_total()
    n_nodes = sum(nodes.values())
    disk = sum(
        e * (EDGE_COLUMN_BYTES + _INDEX_BYTES + (4 if _bio_target(spec, c) else 0))
        for c, e in edges.items()
    )
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
        "spikes": spikes,
        "total_nodes": n_nodes,
        "total_edges": total_edges,
        "disk_bytes": disk,
        "peak_memory_bytes": memory,
    }


def _bio_target(spec: Any, cname: str) -> bool:
    tname = _sel_pop(spec.connections[cname]["target"])
    return spec.populations[tname]["model"]["type"] == "biophysical"
