"""Virtual spike inputs built in bulk, instead of BMTK's per-edge construction.

BMTK BioNet builds a spike input edge by edge (an HDF5 row read and a spike-train lookup per
synapse: ~2 s for the default network's 29,000 synapses). For the inputs our builder writes —
SONATA spikes onto edges that carry ``sec_id``/``sec_x``/``syn_id`` and one of our synapse
models — this module reads every column once, gives every source cell one ``VecStim`` and
creates the synapses and NetCons directly, with the same placement, weights, delays and
release streams as BMTK's path followed by :func:`builder.simulators.neuron.runner._bind`. Inputs
of any other shape are left to BMTK.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...core.checks import PathResolver, read_circuit

__all__ = [
    "InputPlan",
    "plan_inputs",
    "build_inputs",
    "played_vecstims",
    "EdgeColumns",
    "read_edge_columns",
    "connect_edges",
]

_REQUIRED_COLUMNS = ("sec_id", "sec_x")
#: Needed only by our models (their release streams and weights are keyed by it).
_STREAM_COLUMN = "syn_id"


@dataclass
class InputPlan:
    """One spike input we build ourselves: its spike file and the edge files it drives."""

    name: str
    population: str
    spikes_file: Path
    edges: list[tuple[Path, str, Path]] = field(default_factory=list)  # (h5, edge pop, types csv)


def plan_inputs(raw: dict[str, Any], config: Path, models: tuple[str, ...]) -> list[InputPlan]:
    """The spike inputs of simulation config ``config`` (as ``raw``) that :func:`build_inputs`
    can build."""
    circuit, cres = read_circuit(config)
    res = PathResolver(raw.get("manifest"), config.parent, config)
    edge_files = [
        (cres(e["edges_file"]).resolve(), cres(e["edge_types_file"]).resolve())
        for e in circuit.get("networks", {}).get("edges", [])
    ]
    plans = []
    for name, inp in (raw.get("inputs") or {}).items():
        if inp.get("input_type") != "spikes" or inp.get("module") not in ("sonata", "h5"):
            continue
        pop = inp.get("node_set")
        if not isinstance(pop, str):
            continue
        spikes = res(str(inp["input_file"])).resolve()
        plan = InputPlan(name, pop, spikes)
        ok = True
        for h5, types in edge_files:
            with h5py.File(h5, "r") as f:
                for epop, g in f.get("edges", {}).items():
                    src = g["source_node_id"].attrs.get("node_population")
                    src = src.decode() if isinstance(src, bytes) else src
                    if src != pop:
                        continue
                    grp = g.get("0")
                    if grp is None or not all(c in grp for c in _REQUIRED_COLUMNS):
                        ok = False
                    elif _STREAM_COLUMN not in grp and _has_stream_models(types, models):
                        ok = False
                    elif set(np.unique(g["edge_group_id"][()]).tolist()) != {0}:
                        ok = False
                    plan.edges.append((h5, epop, types))
        if ok and plan.edges and _models_ok(plan, models):
            plans.append(plan)
    return plans


def _edge_types(path: Path) -> dict[int, dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=" ", quotechar='"'))
    header = rows[0]
    return {int(r[0]): dict(zip(header, r, strict=True)) for r in rows[1:] if r}


def _has_stream_models(types: Path, models: tuple[str, ...]) -> bool:
    """Whether an edge-types file names a model with per-edge streams (not a linear one)."""
    from .synapses import LINEAR_MODELS

    return any(
        t.get("model_template") in models and t.get("model_template") not in LINEAR_MODELS
        for t in _edge_types(types).values()
    )


def _models_ok(plan: InputPlan, models: tuple[str, ...]) -> bool:
    for _, _, types in plan.edges:
        if any(t.get("model_template") not in models for t in _edge_types(types).values()):
            return False
    return True


def _spike_trains(path: Path, population: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(node ids, start, stop) index and the times grouped by node, times sorted per node."""
    with h5py.File(path, "r") as f:
        g = f["spikes"][population]
        ids = g["node_ids"][()].astype(np.int64)
        ts = g["timestamps"][()].astype(np.float64)
    order = np.lexsort((ts, ids))
    ids, ts = ids[order], ts[order]
    nodes, start = np.unique(ids, return_index=True)
    stop = np.append(start[1:], ids.size) if start.size else start
    if ts.size and ts.min() < 0:
        from ...core.errors import RunError

        raise RunError(f"{path}: negative spike times in {population}; NEURON cannot play them")
    return nodes, np.stack([start, stop], axis=1), ts


class _VecStims:
    """One VecStim per source node, made on first use, playing that node's spike times."""

    def __init__(self, nodes: np.ndarray, ranges: np.ndarray, times: np.ndarray, keep: list):
        self.nodes, self.ranges, self.times, self.keep = nodes, ranges, times, keep
        self.made: dict[int, Any] = {}

    def get(self, node: int) -> Any:
        from neuron import h

        vs = self.made.get(node)
        if vs is None:
            k = int(np.searchsorted(self.nodes, node))
            found = k < self.nodes.size and self.nodes[k] == node
            t = self.times[self.ranges[k, 0] : self.ranges[k, 1]] if found else np.zeros(0)
            vec = h.Vector(t)
            vs = h.VecStim()
            vs.play(vec)
            self.keep.append((vec, vs))  # a pair: played_vecstims finds it
            self.made[node] = vs
        return vs


@dataclass
class EdgeColumns:
    """The columns of one edge population that synapse creation needs, read once."""

    source_population: str
    target_population: str
    src: np.ndarray
    trg: np.ndarray
    edge_type: np.ndarray
    sec_id: np.ndarray
    sec_x: np.ndarray
    syn_id: np.ndarray
    weight: np.ndarray | None  # per-edge (spec builds) or None: the edge type's
    delay: np.ndarray | None


def read_edge_columns(h5: Path, epop: str) -> EdgeColumns:
    """Every column of edge population ``epop`` of ``h5`` (group 0) that we build from."""

    def name(ds: Any) -> str:
        v = ds.attrs["node_population"]
        return v.decode() if isinstance(v, bytes) else str(v)

    with h5py.File(h5, "r") as f:
        g = f["edges"][epop]
        src = g["source_node_id"][()].astype(np.int64)
        gi = g["edge_group_index"][()].astype(np.int64)

        def col(key: str, dtype: Any) -> np.ndarray | None:
            return g[f"0/{key}"][()][gi].astype(dtype) if f"0/{key}" in g else None

        syn_id = col("syn_id", np.int64)
        return EdgeColumns(
            source_population=name(g["source_node_id"]),
            target_population=name(g["target_node_id"]),
            src=src,
            trg=g["target_node_id"][()].astype(np.int64),
            edge_type=g["edge_type_id"][()].astype(np.int64),
            sec_id=col("sec_id", np.int64),  # type: ignore[arg-type]
            sec_x=col("sec_x", np.float64),  # type: ignore[arg-type]
            # linear models only when absent (checked by the planners): the edge index
            syn_id=syn_id if syn_id is not None else np.arange(src.size, dtype=np.int64),
            weight=col("syn_weight", np.float64),
            delay=col("delay", np.float64),
        )


def connect_edges(
    cols: EdgeColumns,
    types: dict[int, dict[str, str]],
    graph: Any,
    components: Path,
    seed: int,
    make_synapse: Callable[[str, Any, float, Any], Any],
    connect: Callable[[int, Any], Any],
    merge: bool,
    keep: list[Any],
    pps: set[str],
    params_cache: dict[str, Any],
) -> int:
    """Synapses and NetCons for the edges of ``cols`` whose target cell is on this rank.

    ``connect(i, point_process)`` returns the NetCon of edge ``i`` (from a VecStim, or
    ``pc.gid_connect`` from a cell); weights, delays, release streams and weight draws are
    those of BMTK's path followed by :func:`builder.simulators.neuron.runner._bind`. Returns the
    number of synapses made; the point processes' names go into ``pps``, what must stay alive into
    ``keep``.
    """
    from . import synapses

    local = graph.get_local_cells()
    offset = int(graph.gid_pool.get_gid(name=cols.target_population, node_id=0))
    gids = cols.trg + offset
    mine = np.flatnonzero(np.isin(gids, np.fromiter(local.keys(), dtype=np.int64)))
    pop_name = f"{cols.source_population}_to_{cols.target_population}"
    pending: dict[int, tuple[Any, list[Any], list[int]]] = {}
    sections: dict[int, Any] = {}
    for i in mine.tolist():
        t = types[int(cols.edge_type[i])]
        fname = t["dynamics_params"]
        params = params_cache.get(fname)
        if params is None:
            params = json.loads((components / fname).read_text())
            params_cache[fname] = params
        model = t["model_template"]
        gid = int(gids[i])
        secs = sections.get(gid)
        if secs is None:
            secs = sections[gid] = local[gid].get_sections()
        section = secs[int(cols.sec_id[i])]
        pp = make_synapse(model, params, float(cols.sec_x[i]), section)
        nc = connect(i, pp)
        nc.weight[0] = (
            float(cols.weight[i]) if cols.weight is not None else float(t.get("syn_weight", 1.0))
        )
        nc.delay = float(cols.delay[i]) if cols.delay is not None else float(t.get("delay", 0.0))
        eid = int(cols.syn_id[i])
        if model in synapses.LINEAR_MODELS:
            pass  # BMTK's linear models: weight and delay only, nothing to bind
        elif merge:
            synapses.set_release_stream(nc, seed, pop_name, eid)
            if synapses.has_weight_distribution(params, model):
                entry = pending.setdefault(id(params), (params, [], []))
                entry[1].append(nc)
                entry[2].append(eid)
            else:
                nc.weight[0] *= synapses.connection_weight(
                    params, section, seed, pop_name, eid, model=model
                )
        else:
            synapses.bind_edge(pp, params, seed, pop_name, eid)
        keep.extend((pp, nc))
        pps.add(pp.hname())
    for params, ncs, ids in pending.values():
        weights = synapses.draw_weights(params, seed, pop_name, ids)
        for nc, w in zip(ncs, weights.tolist(), strict=True):
            nc.weight[0] *= w
    return int(mine.size)


def build_inputs(
    plans: list[InputPlan],
    graph: Any,
    components: Path,
    seed: int,
    make_synapse: Callable[[str, Any, float, Any], Any],
    merge: bool,
) -> tuple[int, set[str], list[Any]]:
    """Create VecStims, synapses and NetCons for ``plans`` on this rank's cells.

    ``make_synapse(model, params, sec_x, section)`` returns the point process for a synapse
    (shared in merged mode). Returns the number of synapses made, the names of their point
    processes and the objects to keep alive for the run.
    """
    from neuron import h

    keep: list[Any] = []
    pps: set[str] = set()
    n_syn = 0
    params_cache: dict[str, Any] = {}
    for plan in plans:
        stims = _VecStims(*_spike_trains(plan.spikes_file, plan.population), keep=keep)
        for h5, epop, types_csv in plan.edges:
            cols = read_edge_columns(h5, epop)
            cols.source_population = plan.population

            def connect(i: int, pp: Any, cols: EdgeColumns = cols, stims: _VecStims = stims) -> Any:
                return h.NetCon(stims.get(int(cols.src[i])), pp)

            n_syn += connect_edges(
                cols,
                _edge_types(types_csv),
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


def played_vecstims(keep: list[Any]) -> list[tuple[Any, Any]]:
    """The (times Vector, VecStim) pairs among the objects :func:`build_inputs` keeps alive."""
    return [x for x in keep if isinstance(x, tuple)]
