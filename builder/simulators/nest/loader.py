"""Our SONATA loader for NEST: nodes by type, edges in chunks as arrays, inputs as devices.

The pip NEST wheel has no HDF5 (``nest.SonataNetwork`` cannot connect) and BMTK PointNet reads
every edge into pandas; here

* each node type becomes one ``nest.Create(model, n, params)`` with its dynamics JSON; per-node
  columns that are parameters of the model (``V_m``...) are set per node, in one call;
* each edge population is read from HDF5 (h5py's low-level API) in chunks of
  :data:`EDGE_CHUNK` edges into buffers reused for every chunk (NEST ids as int64, weight and
  delay as float64) and passed per edge type to NEST's array connect (what
  ``nest.Connect(src, tgt, "one_to_one", {"weight": array, "delay": array})`` calls, without
  PyNEST's copies of the arrays), after the kernel's threads are set (NEST connects the arrays
  on all threads, each its own targets); the weight is ``syn_weight`` (per edge, or the
  type's) times ``nsyns`` when present, as BMTK PointNet does. ``static_synapse`` edges
  without a receptor port are connected as NEST's ``static_synapse_hpc``
  (:data:`COMPACT_SYNAPSES`: the same spikes, 24 instead of 39 B per edge;
  ``run.nest_compact_synapses: false`` turns it off). NEST's own ``Connect`` is the floor: on
  the scale-0.1 microcircuit (3 M edges, 2 threads) it takes 0.43 s of the load's 0.57 s of
  CPU and 71 MB (117 MB as ``static_synapse``) of its 93 MB above the imports (85 MB); edges
  sorted by source instead of by target (as SONATA files are) take the same CPU in
  ``Connect`` and in ``Prepare`` and 6 MB less storage, not worth a sort;
* a virtual population becomes one ``spike_generator`` per node, with the spikes of the
  config's ``spikes`` inputs; NEST cannot emit at t <= 0, so such spikes are moved to the first
  time step (and counted in a note);
* the config's ``generators`` become Poisson generators (one per target population at
  ``rate_hz`` x ``indegree``, or one per distinct per-node rate with ``rate_property``), rate
  pulses (``pulse``) likewise, and ``current_clamp`` inputs ``dc_generator``s (nA -> pA).

Everything that draws is NEST's: the kernel is seeded from ``run.random_seed``, so the same
threads and seed give the same spikes.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...core.errors import RunError
from ...core.netconfig import NetworkConfig
from .config import strip_prefix

__all__ = ["EDGE_CHUNK", "Network", "import_nest", "iter_edge_chunks", "load", "params_path"]

log = logging.getLogger("builder.simulators.nest")

#: Edges read and connected per NEST connect call (each call costs about 0.5 ms beyond its
#: edges). The scale-0.1 microcircuit (3 M edges, 2 threads, best of 3 at load 12): 2^14,
#: 2^15, 2^16, 2^17, 2^18, 2^19 take 0.69, 0.62, 0.59, 0.58, 0.57, 0.59 s of load CPU at a
#: peak of 174, 174, 176, 178, 183, 190 MB; 2^17 against 2^18, 5 runs each alternating:
#: medians 0.596 and 0.567 s (scale 0.2: 2.07 and 1.94 s at 392 and 397 MB).
EDGE_CHUNK = 1 << 18


#: Optional imports of PyNEST that we use none of: pandas (``get(output="pandas")``) and
#: matplotlib (``nest.spatial`` plots). Importing NEST without them takes 83 instead of 142 MB
#: and 0.6 instead of 1.6 s (measured on NEST 3.10); they import normally afterwards.
NEST_OPTIONAL_IMPORTS = ("pandas", "matplotlib")


def import_nest() -> Any:
    """Import NEST quietly (no banner, errors only), without its optional pandas/matplotlib.

    PyNEST tries ``import pandas`` and ``import matplotlib`` at import time and does without
    when they fail; unless something imported them already, they are hidden while NEST is
    imported (``sys.modules[name] = None``) and put back afterwards, so a later ``import
    matplotlib`` (``--plot``) works as usual. (PyNEST's ``import scipy`` is kept: it works
    around a crash when scipy is imported after NEST.)
    """
    os.environ.setdefault("PYNEST_QUIET", "1")
    # OpenMP threads that spin while waiting at NEST's barriers make a busy (shared) machine
    # crawl: 2 threads on 2 loaded cores ran the microcircuit 5x slower than sleeping waits.
    # Set OMP_WAIT_POLICY=ACTIVE yourself on a dedicated node.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    hidden = [m for m in NEST_OPTIONAL_IMPORTS if m not in sys.modules]
    if "nest" in sys.modules:
        hidden = []
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
    try:
        import nest
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]

    try:
        nest.verbosity = nest.VerbosityLevel.ERROR
    except AttributeError:  # older NEST
        nest.set_verbosity("M_ERROR")
    return nest


@dataclass
class Network:
    """What the loader created: NEST node ids of every SONATA node, devices, counts."""

    gids: dict[str, np.ndarray]  # population -> NEST node id of each SONATA node id
    models: dict[str, np.ndarray]  # population -> NEST model name per node (virtual: "")
    n_cells: int = 0
    n_edges: int = 0
    n_input_spikes: int = 0
    generators: int = 0
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def cells(self) -> dict[str, np.ndarray]:
        """Non-virtual populations only."""
        return {p: g for p, g in self.gids.items() if (self.models[p] != "").all()}


def params_path(cfg: NetworkConfig, row: dict[str, str], components: str) -> Path | None:
    """The ``dynamics_params`` file a node or edge type row names (None for none), in the
    config's ``components`` directory (``point_neuron_models_dir``, ``synaptic_models_dir``)."""
    name = (row.get("dynamics_params") or "").strip()
    if not name or name == "NULL":
        return None
    folder = cfg.dirs.get(components)
    return folder / name if folder is not None else cfg.base / name


def _params_file(cfg: NetworkConfig, row: dict[str, str], components: str) -> dict[str, Any]:
    """The JSON of :func:`params_path` (``{}`` for none; the checks have read it already)."""
    path = params_path(cfg, row, components)
    return json.loads(path.read_text()) if path is not None else {}


_MODEL_PARAMS: dict[str, set[str]] = {}


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of a 1-d array (``np.unique`` without its first-call import
    of ``numpy.ma``, 9 ms of CPU in a load that does not otherwise need it)."""
    v = np.sort(values, kind="stable")
    keep = np.ones(v.size, dtype=bool)
    np.not_equal(v[1:], v[:-1], out=keep[1:])
    return v[keep]


def model_params(nest: Any, model: str) -> set[str]:
    """Parameters a built-in NEST model has (its defaults' keys; asked once per model)."""
    if model not in _MODEL_PARAMS:
        _MODEL_PARAMS[model] = set(nest.GetDefaults(model).keys())
    return _MODEL_PARAMS[model]


def _node_ids(nodes: Any) -> np.ndarray:
    """NEST ids of a freshly created (contiguous) NodeCollection; ``tolist()`` asks NEST node by
    node (0.8 s for 20,000 nodes)."""
    first, last = nodes[0].global_id, nodes[-1].global_id
    if last - first + 1 == len(nodes):
        return np.arange(first, last + 1, dtype=np.int64)
    return np.asarray(nodes.tolist(), dtype=np.int64)


def _set_per_node(nodes: Any, values: dict[str, np.ndarray]) -> None:
    """Per-node parameters (``V_m``...) of a freshly created NodeCollection, in one call.

    ``NodeCollection.set`` first asks every node whether it is local (a status call per node:
    0.1 s of CPU for the 7,700 cells of the scale-0.1 microcircuit, 15x the setting itself).
    Our nodes are all local (one process, threads), so the per-node dicts go to the kernel's
    setter directly when this NEST has it (NEST 3.x ``nestkernel_api.llapi_set_nc_status``),
    else through ``set``."""
    keys = list(values)
    rows = zip(*(values[k].tolist() for k in keys), strict=True)
    status = [dict(zip(keys, row, strict=True)) for row in rows]
    try:
        setter = importlib.import_module("nest.nestkernel_api").llapi_set_nc_status
    except (ImportError, AttributeError):  # another NEST: the public way
        nodes.set(status)
        return
    setter(nodes._datum, status)


def _create_nodes(nest: Any, cfg: NetworkConfig, net: Network) -> None:
    for pop in cfg.nodes.values():
        gids = np.zeros(pop.size, dtype=np.int64)
        models = np.full(pop.size, "", dtype=object)
        for tid in _distinct(pop.type_ids).tolist():
            sel = np.flatnonzero(pop.type_ids == tid)
            row = pop.types.get(int(tid), {})
            if row.get("model_type") == "virtual":
                nodes = nest.Create(
                    "spike_generator", sel.size, params={"allow_offgrid_times": True}
                )
                gids[sel] = _node_ids(nodes)
                continue
            model = strip_prefix(row.get("model_template", ""))
            params = _params_file(cfg, row, "point_neuron_models_dir")
            if params:  # a copy with the type's defaults: 8x faster than Create(params=...)
                typed = f"l5net_{pop.name}_{tid}_{model}"
                nest.CopyModel(model, typed, params)
                nodes = nest.Create(typed, sel.size)
            else:
                nodes = nest.Create(model, sel.size)
            gids[sel] = _node_ids(nodes)
            models[sel] = model
            known = model_params(nest, model)
            per_node = {
                k: np.asarray(v[sel], dtype=float)
                for k, v in pop.columns.items()
                if k in known and v.dtype.kind in "fiu"
            }
            if per_node:
                _set_per_node(nodes, per_node)
            net.n_cells += sel.size
        net.gids[pop.name] = gids
        net.models[pop.name] = models


def _open(path: Path) -> h5py.h5f.FileID:
    """An HDF5 file opened read-only with h5py's low-level API: the high-level ``File`` costs
    1 ms per open and close (property lists, closing every object it may have opened), 0.05 s
    for the 55 edge files of the microcircuit."""
    return h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY)


def _dataset(group: Any, name: str) -> h5py.h5d.DatasetID | None:
    """The dataset ``name`` of a low-level group (None when absent or not a dataset)."""
    key = name.encode()
    if key not in group:
        return None
    obj = h5py.h5o.open(group, key)
    return obj if isinstance(obj, h5py.h5d.DatasetID) else None


def _edge_columns(g: Any) -> dict[str, h5py.h5d.DatasetID]:
    """The edge group ``0``'s columns the loader reads (of a low-level group)."""
    g0 = h5py.h5o.open(g, b"0") if b"0" in g else None
    if not isinstance(g0, h5py.h5g.GroupID):
        return {}
    cols = {k: _dataset(g0, k) for k in ("syn_weight", "nsyns", "delay")}
    return {k: ds for k, ds in cols.items() if ds is not None}


def _type_value(types: dict[int, dict[str, str]], key: str, tids: np.ndarray) -> np.ndarray:
    lut = {}
    for t, row in types.items():
        v = (row.get(key) or "").strip()
        lut[t] = float(v) if v and v != "NULL" else np.nan
    u = _distinct(tids)
    return np.asarray([lut.get(int(t), np.nan) for t in u.tolist()])[np.searchsorted(u, tids)]


class _Buffers:
    """Arrays of one chunk, allocated once per load and refilled chunk by chunk (pages that are
    never written, such as ``tid`` for files of one edge type, are never resident)."""

    def __init__(self, size: int):
        self.ids = np.empty(size, dtype=np.int64)  # SONATA ids as read, for a lookup
        self.src = np.empty(size, dtype=np.int64)  # NEST ids
        self.trg = np.empty(size, dtype=np.int64)
        self.tid = np.empty(size, dtype=np.int64)
        self.w = np.empty(size, dtype=np.float64)
        self.d = np.empty(size, dtype=np.float64)
        self.tmp = np.empty(size, dtype=np.float64)


def _read(ds: h5py.h5d.DatasetID, a: int, z: int, out: np.ndarray) -> np.ndarray:
    """``ds[a:z]`` into ``out[: z - a]``: HDF5 converts the type, no new array."""
    view = out[: z - a]
    file_space = ds.get_space()
    file_space.select_hyperslab((a,), (z - a,))
    ds.read(h5py.h5s.create_simple((z - a,)), file_space, view)
    return view


def _run_start(gids: np.ndarray) -> int | None:
    """The first NEST id when ``gids`` is one ascending run (a population of one node type:
    SONATA id i is NEST id first + i), else None."""
    if gids.size and bool((np.diff(gids) == 1).all()):
        return int(gids[0])
    return None


def _to_nest_ids(
    ds: h5py.h5d.DatasetID,
    a: int,
    z: int,
    gids: np.ndarray,
    first: int | None,
    buf: _Buffers,
    out: np.ndarray,
) -> np.ndarray:
    """NEST ids of the SONATA ids ``ds[a:z]`` into ``out``: read straight into ``out`` and
    offset in place when the population's NEST ids are one run (``first``), else looked up
    in ``gids``."""
    # SONATA ids are uint64 on disk: read as such into the int64 buffer (ids < 2^63 are the
    # same bits; the generic checks keep them within the populations), a copy for HDF5
    # instead of a checked conversion
    raw = ds.dtype == np.uint64
    if first is not None:
        view = out[: z - a]
        _read(ds, a, z, view.view(np.uint64) if raw else view)
        view += first
        return view
    ids = buf.ids[: z - a]
    _read(ds, a, z, ids.view(np.uint64) if raw else ids)
    view = out[: z - a]
    np.take(gids, ids, out=view)
    return view


def iter_edge_chunks(
    edges: Any,
    src_gid: np.ndarray,
    trg_gid: np.ndarray,
    chunk: int = 0,
    buffers: _Buffers | None = None,
):
    """(NEST source ids, NEST target ids, edge type ids, weight, delay) of one edge population,
    chunk by chunk, as int64 / float64 arrays in the layout ``nest.Connect`` takes without a
    copy. The arrays are views of ``buffers`` (of at least ``chunk`` edges; by default new
    ones), refilled for the next chunk: use them before asking for it."""
    n = edges.size
    chunk = min(chunk or EDGE_CHUNK, max(n, 1))
    buf = buffers if buffers is not None else _Buffers(chunk)
    chunk = min(chunk, buf.src.size)
    one_type = len(edges.types) == 1
    first = _run_start(src_gid), _run_start(trg_gid)
    fid = _open(edges.file)
    try:
        g = h5py.h5g.open(fid, f"edges/{edges.name}".encode())
        cols = _edge_columns(g)
        src_ds, trg_ds = _dataset(g, "source_node_id"), _dataset(g, "target_node_id")
        tid_ds = None if one_type else _dataset(g, "edge_type_id")
        for a in range(0, n, chunk):
            z = min(n, a + chunk)
            src = _to_nest_ids(src_ds, a, z, src_gid, first[0], buf, buf.src)
            trg = _to_nest_ids(trg_ds, a, z, trg_gid, first[1], buf, buf.trg)
            tid = buf.tid[: z - a]
            if tid_ds is None:  # the spec builder's files: one edge type each, no need to read it
                tid[:] = next(iter(edges.types))
            else:
                _read(tid_ds, a, z, buf.tid)
            if "syn_weight" in cols:
                w = _read(cols["syn_weight"], a, z, buf.w)
            else:
                w = buf.w[: z - a]
                w[:] = _type_value(edges.types, "syn_weight", tid)
            if "nsyns" in cols:
                w *= _read(cols["nsyns"], a, z, buf.tmp)
            if "delay" in cols:
                d = _read(cols["delay"], a, z, buf.d)
            else:
                d = buf.d[: z - a]
                d[:] = _type_value(edges.types, "delay", tid)
            yield src, trg, tid, w, d
    finally:
        fid.close()


#: NEST's compact twin of each synapse model (``static_synapse_hpc``: the target kept as a
#: 2-byte thread-local index instead of an 8-byte pointer, receptor port 0 only, otherwise the
#: same model: the same spikes). Used for the edges of a model listed here that name no
#: receptor port, unless the config's ``run.nest_compact_synapses`` is false or a thread would
#: hold more than :data:`COMPACT_MAX_NODES` nodes (NEST's limit). On the scale-0.1
#: microcircuit (3 M edges) NEST's connection storage shrinks from 117 to 71 MB and the load's
#: CPU by 0.03 s; the simulation takes about 6 % more CPU (the index is looked up per spike:
#: 11 alternating pairs of 1 s runs at load 8-12, +0.57 s on 8.9 s, 10 of 11 slower).
COMPACT_SYNAPSES = {"static_synapse": "static_synapse_hpc"}
#: Nodes per thread an ``_hpc`` synapse can address (NEST refuses to connect beyond).
COMPACT_MAX_NODES = 65534
COMPACT_KEY = "nest_compact_synapses"


def use_compact_synapses(cfg: NetworkConfig, net: Network) -> bool:
    """Whether the load may use :data:`COMPACT_SYNAPSES`: ``run.nest_compact_synapses`` (true
    by default) and every thread's nodes addressable (cells are spread over the threads, each
    spike generator is on every thread)."""
    if (cfg.raw.get("run") or {}).get(COMPACT_KEY, True) is not True:
        return False
    devices = sum(int((m == "").sum()) for m in net.models.values())
    return -(-net.n_cells // max(cfg.threads, 1)) + devices <= COMPACT_MAX_NODES


def _compact(spec: dict[str, Any], models: set[str]) -> dict[str, Any]:
    """``spec`` with NEST's compact twin of its synapse model where :data:`COMPACT_SYNAPSES`
    allows and this NEST has it (``models``; the kernel's node count is the caller's check)."""
    twin = COMPACT_SYNAPSES.get(spec["synapse_model"])
    # weight and delay come with each edge (a params file's values are replaced)
    if twin is None or set(spec) - {"synapse_model", "receptor_type", "weight", "delay"}:
        return spec
    if spec.get("receptor_type", 0) != 0 or twin not in models:
        return spec
    return {"synapse_model": twin}


def _array_connect(nest: Any) -> Any:
    """``connect(src, trg, syn)`` for int64 NEST ids and a synapse dict whose ``weight`` and
    ``delay`` are float64 arrays: ``nest.Connect(src, trg, "one_to_one", syn)`` without
    PyNEST's copies of the weight and delay arrays (2 x 1 MB and 0.02 s of CPU per 3 M edges)
    when this NEST has the kernel's ``llapi_connect_arrays`` (NEST 3.x), else that call."""
    try:
        kernel_connect = importlib.import_module("nest.nestkernel_api").llapi_connect_arrays
    except (ImportError, AttributeError):  # another NEST: the public way
        kernel_connect = None

    def connect(src: np.ndarray, trg: np.ndarray, syn: dict[str, Any]) -> None:
        if kernel_connect is None:
            nest.Connect(src, trg, "one_to_one", syn)
            return
        rest = {k: v for k, v in syn.items() if k not in ("synapse_model", "weight", "delay")}
        keys = values = None
        if rest:  # what PyNEST passes for the other parameters: one row of doubles each
            keys = np.asarray(list(rest))
            values = np.empty((len(rest), src.size), dtype=np.float64)
            for i, v in enumerate(rest.values()):
                values[i] = v
        kernel_connect(src, trg, syn["weight"], syn["delay"], syn["synapse_model"], keys, values)

    return connect


def _connect_edges(nest: Any, cfg: NetworkConfig, net: Network) -> None:
    # one set of chunk buffers for every edge population: its pages stay mapped
    buffers = _Buffers(min(EDGE_CHUNK, max([e.size for e in cfg.edges] + [1])))
    synapse_params: dict[Path | None, dict[str, Any]] = {}  # each params file read once
    compact = use_compact_synapses(cfg, net)
    models = set(nest.synapse_models) if compact else set()
    connect = _array_connect(nest)
    for edges in cfg.edges:
        spec_of: dict[int, dict[str, Any]] = {}
        for t, row in edges.types.items():
            spec = {"synapse_model": strip_prefix(row.get("model_template") or "static_synapse")}
            path = params_path(cfg, row, "synaptic_models_dir")
            if path not in synapse_params:
                synapse_params[path] = _params_file(cfg, row, "synaptic_models_dir")
            spec.update(synapse_params[path])
            port = (row.get("receptor_type") or "").strip()
            if port and port != "NULL":
                spec["receptor_type"] = int(float(port))
            spec_of[t] = _compact(spec, models) if compact else spec
        gids = net.gids[edges.source], net.gids[edges.target]
        for src, trg, tid, w, d in iter_edge_chunks(edges, *gids, buffers=buffers):
            # int64 ids, one_to_one: NEST's connect_arrays, threaded over targets
            if len(spec_of) == 1:
                connect(src, trg, dict(next(iter(spec_of.values())), weight=w, delay=d))
            else:
                for t in _distinct(tid).tolist():
                    sel = tid == t
                    base = spec_of.get(int(t), {"synapse_model": "static_synapse"})
                    connect(src[sel], trg[sel], dict(base, weight=w[sel], delay=d[sel]))
            net.n_edges += src.size


def _spike_inputs(nest: Any, cfg: NetworkConfig, net: Network) -> None:
    trains: dict[str, dict[int, list[np.ndarray]]] = {}
    for name, inp in cfg.inputs.items():
        if inp.get("input_type") != "spikes":
            continue
        path = cfg.resolve(str(inp.get("input_file", inp.get("spike_file"))))
        pops = cfg.node_set(inp.get("node_set"), f"inputs.{name}.node_set")
        with h5py.File(path, "r") as f:
            for pop, wanted in pops.items():
                g = f["spikes"][pop]
                ids = g["node_ids"][()].astype(np.int64)
                ts = g["timestamps"][()].astype(np.float64)
                keep = np.isin(ids, wanted)
                ids, ts = ids[keep], ts[keep]
                early = ts <= 0.0
                if early.any():
                    net.notes.append(
                        f"{path}: {int(early.sum())} spikes of {pop!r} at t <= 0 ms moved to "
                        f"t = {cfg.dt_ms:g} ms (NEST cannot emit a spike at 0)"
                    )
                    ts[early] = cfg.dt_ms
                late = ts > cfg.tstop_ms
                ids, ts = ids[~late], ts[~late]
                order = np.lexsort((ts, ids))
                ids, ts = ids[order], ts[order]
                bounds = np.searchsorted(ids, np.arange(cfg.nodes[pop].size + 1))
                per = trains.setdefault(pop, {})
                for i in np.flatnonzero(np.diff(bounds)).tolist():
                    per.setdefault(i, []).append(ts[bounds[i] : bounds[i + 1]])
                net.n_input_spikes += int(ts.size)
    for pop, per in trains.items():
        gids = net.gids[pop]
        ids = np.asarray(sorted(per), dtype=np.int64)
        order = np.argsort(gids[ids])  # a NodeCollection is sorted by NEST id
        status = [{"spike_times": np.sort(np.concatenate(per[i])).tolist()} for i in ids[order]]
        nest.NodeCollection(gids[ids][order].tolist()).set(status)


def _targets(cfg: NetworkConfig, net: Network, spec: Any, key: str) -> dict[str, np.ndarray]:
    return {p: ids for p, ids in cfg.node_set(spec, key).items() if ids.size}


def _generators(nest: Any, cfg: NetworkConfig, net: Network) -> None:
    for i, gen in enumerate(cfg.generators):
        key = f"generators[{i}] ({gen.get('name', '?')})"
        kind = gen.get("type")
        weight = float(gen.get("weight", 1.0))
        delay = max(float(gen.get("delay_ms", cfg.dt_ms)), cfg.dt_ms)
        k = int(gen.get("indegree", 1))
        start = float(gen.get("start_ms", 0.0))
        stop = float(gen.get("stop_ms", cfg.tstop_ms))
        syn = {
            "synapse_model": strip_prefix(gen.get("synapse_model", "static_synapse")),
            "weight": weight,
            "delay": delay,
        }
        if gen.get("receptor_type"):
            syn["receptor_type"] = int(gen["receptor_type"])
        for pop, ids in _targets(cfg, net, gen.get("node_set"), key).items():
            gids = net.gids[pop][ids]
            if "rate_property" in gen:
                rates = np.asarray(cfg.nodes[pop].column(gen["rate_property"]), float)[ids]
            else:
                rates = np.full(ids.size, float(gen.get("rate_hz", 0.0)))
            if kind not in ("poisson_generator", "pulse"):
                raise RunError(f"{cfg.path}: {key}.type: {kind!r} is not a generator we know")
            for rate in _distinct(rates).tolist():
                sel = gids[rates == rate]
                pg = nest.Create(
                    "poisson_generator",
                    params={"rate": rate * k, "start": start, "stop": stop},
                )
                nest.Connect(pg, nest.NodeCollection(sorted(sel.tolist())), "all_to_all", syn)
                net.generators += 1
    for name, inp in cfg.inputs.items():
        if inp.get("input_type") != "current_clamp":
            continue
        key = f"inputs.{name}"
        amp = float(inp.get("amp", inp.get("amp_start", 0.0))) * 1000.0  # nA -> pA
        start = float(inp.get("delay", 0.0))
        stop = start + float(inp.get("duration", cfg.tstop_ms))
        dc = nest.Create("dc_generator", params={"amplitude": amp, "start": start, "stop": stop})
        for pop, ids in _targets(cfg, net, inp.get("node_set"), f"{key}.node_set").items():
            nest.Connect(dc, nest.NodeCollection(sorted(net.gids[pop][ids].tolist())))
        net.generators += 1


def load(nest: Any, cfg: NetworkConfig) -> Network:
    """Reset the kernel and build ``cfg``'s network in NEST."""
    import time

    nest.ResetKernel()
    nest.SetKernelStatus(
        {
            "resolution": cfg.dt_ms,
            "local_num_threads": cfg.threads,
            "rng_seed": int(cfg.seed) % (2**31 - 2) + 1,
        }
    )
    net = Network({}, {})
    steps = (
        ("nodes_s", _create_nodes, "creating the nodes"),
        ("edges_s", _connect_edges, "connecting the edges"),
        ("inputs_s", _inputs, "creating the inputs"),
    )
    for key, step, what in steps:
        t = time.perf_counter()
        try:
            step(nest, cfg, net)
        except nest.NESTError as exc:  # what our checks did not foresee: still one message
            raise RunError(f"{cfg.path}: NEST refused {what}: {exc}") from None
        net.timings[key] = time.perf_counter() - t
    return net


def _inputs(nest: Any, cfg: NetworkConfig, net: Network) -> None:
    _spike_inputs(nest, cfg, net)
    _generators(nest, cfg, net)
