"""Virtual spike inputs built in bulk, instead of BMTK's per-edge construction.

BMTK BioNet builds a spike input edge by edge (an HDF5 row read and a spike-train lookup per
synapse: ~2 s for the default network's 29,000 synapses). For the inputs our builder writes —
SONATA spikes onto edges that carry ``sec_id``/``sec_x``/``syn_id`` and one of our synapse
models — this module reads every column once, gives every source cell one ``VecStim`` and
creates the synapses and NetCons directly, with the same placement, weights, delays and
release streams as BMTK's path followed by :func:`builder.nrn.runner._bind`. Inputs of any
other shape are left to BMTK.
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

__all__ = ["InputPlan", "plan_inputs", "build_inputs", "played_vecstims"]

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


def _resolve(value: str, base: Path, manifest: dict[str, str]) -> Path:
    for _ in range(5):  # nested manifest variables, e.g. $NETWORK_DIR -> $BASE_DIR/network
        for key, val in manifest.items():
            value = value.replace(key, val)
    return (base / value).resolve()


def plan_inputs(raw: dict[str, Any], base: Path, models: tuple[str, ...]) -> list[InputPlan]:
    """The spike inputs of a simulation config that :func:`build_inputs` can build."""
    circuit = json.loads((base / "circuit_config.json").read_text())
    manifest = {k: v for k, v in circuit.get("manifest", {}).items()}
    manifest.setdefault("$BASE_DIR", ".")
    manifest["$BASE_DIR"] = "."
    edge_files = [
        (_resolve(e["edges_file"], base, manifest), _resolve(e["edge_types_file"], base, manifest))
        for e in circuit.get("networks", {}).get("edges", [])
    ]
    plans = []
    for name, inp in (raw.get("inputs") or {}).items():
        if inp.get("input_type") != "spikes" or inp.get("module") not in ("sonata", "h5"):
            continue
        pop = inp.get("node_set")
        if not isinstance(pop, str):
            continue
        spikes = _resolve(inp["input_file"], base, {"$BASE_DIR": "."})
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
        from ..errors import RunError

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

    from . import synapses

    keep: list[Any] = []
    pps: set[str] = set()
    n_syn = 0
    local = graph.get_local_cells()
    params_cache: dict[str, Any] = {}
    for plan in plans:
        stims = _VecStims(*_spike_trains(plan.spikes_file, plan.population), keep=keep)
        for h5, epop, types_csv in plan.edges:
            types = _edge_types(types_csv)
            with h5py.File(h5, "r") as f:
                g = f["edges"][epop]
                trg_pop = g["target_node_id"].attrs["node_population"]
                trg_pop = trg_pop.decode() if isinstance(trg_pop, bytes) else trg_pop
                src_pop = plan.population
                src = g["source_node_id"][()].astype(np.int64)
                trg = g["target_node_id"][()].astype(np.int64)
                etype = g["edge_type_id"][()].astype(np.int64)
                gi = g["edge_group_index"][()].astype(np.int64)
                sec_id = g["0/sec_id"][()][gi].astype(np.int64)
                sec_x = g["0/sec_x"][()][gi].astype(np.float64)
                # per-edge weights and delays (spec builds) take the edge type's place
                edge_w = (
                    g["0/syn_weight"][()][gi].astype(np.float64) if "0/syn_weight" in g else None
                )
                edge_d = g["0/delay"][()][gi].astype(np.float64) if "0/delay" in g else None
                if "0/syn_id" in g:
                    syn_id = g["0/syn_id"][()][gi].astype(np.int64)
                else:  # linear models only (checked by plan_inputs): the edge index
                    syn_id = np.arange(src.size, dtype=np.int64)
            pop_name = f"{src_pop}_to_{trg_pop}"
            gids = np.array([graph.gid_pool.get_gid(name=trg_pop, node_id=int(t)) for t in trg])
            mine = np.flatnonzero(np.isin(gids, np.fromiter(local.keys(), dtype=np.int64)))
            pending: dict[int, tuple[Any, list[Any], list[int]]] = {}
            for i in mine.tolist():
                t = types[int(etype[i])]
                fname = t["dynamics_params"]
                params = params_cache.get(fname)
                if params is None:
                    params = json.loads((components / fname).read_text())
                    params_cache[fname] = params
                model = t["model_template"]
                cell = local[int(gids[i])]
                section = cell.get_sections()[int(sec_id[i])]
                pp = make_synapse(model, params, float(sec_x[i]), section)
                nc = h.NetCon(stims.get(int(src[i])), pp)
                nc.weight[0] = (
                    float(edge_w[i]) if edge_w is not None else float(t.get("syn_weight", 1.0))
                )
                nc.delay = float(edge_d[i]) if edge_d is not None else float(t.get("delay", 0.0))
                eid = int(syn_id[i])
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
                n_syn += 1
            for params, ncs, ids in pending.values():
                weights = synapses.draw_weights(params, seed, pop_name, ids)
                for nc, w in zip(ncs, weights.tolist(), strict=True):
                    nc.weight[0] *= w
    return n_syn, pps, keep


def played_vecstims(keep: list[Any]) -> list[tuple[Any, Any]]:
    """The (times Vector, VecStim) pairs among the objects :func:`build_inputs` keeps alive."""
    return [x for x in keep if isinstance(x, tuple)]
