"""A built SONATA network as a runner sees it (core: no simulator import here).

Reads ``simulation_config.json`` and the circuit config it names, and gives a runner (NEST's,
or the NEURON runner's summary of a run) plain
Python objects: node populations (type table rows, node type ids, per-node columns), edge
populations (file, types, source and target), spike inputs, current clamps, the
simulator-side generators (``generators``: Poisson sources and rate pulses, which SONATA has no
input type for), membrane reports and node sets. Paths go through the configs' manifests, as
:mod:`builder.core.checks` resolves them; the generic checks (files exist, ids in range) are done
there, before this module reads anything.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .checks import PathResolver, merge_simulation_child
from .errors import RunError
from .runs import CONFIG_NAME

#: report modules that record a membrane variable (BMTK PointNet treats both the same)
MEMBRANE_REPORT_MODULES = ("membrane_report", "multimeter_report")
#: report modules every runner satisfies without a device (spikes are always recorded)
SPIKE_REPORT_MODULES = ("spikes_report",)

__all__ = [
    "MEMBRANE_REPORT_MODULES",
    "SPIKE_REPORT_MODULES",
    "NetworkConfig",
    "NodePopulation",
    "EdgePopulation",
    "read_config",
]


def _types(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [dict(r) for r in csv.DictReader(f, delimiter=" ")]


@dataclass
class NodePopulation:
    """One node population: ``type_ids[i]`` is the node type of node ``i``."""

    name: str
    file: Path
    types_file: Path | None
    types: dict[int, dict[str, str]]
    type_ids: np.ndarray
    columns: dict[str, np.ndarray]

    @property
    def size(self) -> int:
        return int(self.type_ids.size)

    @property
    def virtual(self) -> bool:
        kinds = {r.get("model_type", "") for r in self.types.values()}
        return kinds == {"virtual"}

    def column(self, name: str) -> np.ndarray | None:
        """A per-node column, or the type table's column expanded per node."""
        if name in self.columns:
            return self.columns[name]
        if self.types and all(name in r for r in self.types.values()):
            lut = {t: r[name] for t, r in self.types.items()}
            return np.asarray([lut[int(t)] for t in self.type_ids])
        return None


@dataclass
class EdgePopulation:
    name: str
    file: Path
    types_file: Path | None
    types: dict[int, dict[str, str]]
    source: str
    target: str
    size: int


@dataclass
class NetworkConfig:
    """Everything a runner reads from a built network's configs."""

    path: Path
    raw: dict[str, Any]
    tstop_ms: float
    dt_ms: float
    seed: int
    threads: int
    warmup_ms: float
    nodes: dict[str, NodePopulation]
    edges: list[EdgePopulation]
    inputs: dict[str, dict[str, Any]]
    generators: list[dict[str, Any]]
    reports: dict[str, dict[str, Any]]
    node_sets: dict[str, Any]
    node_sets_file: Path
    dirs: dict[str, Path] = field(default_factory=dict)
    resolve: Any = None

    @property
    def base(self) -> Path:
        return self.path.parent

    @property
    def simulator(self) -> str:
        return str(self.raw.get("target_simulator", "NEURON"))

    # ------------------------------------------------------------------ node sets
    def membrane_reports(self) -> dict[str, dict[str, Any]]:
        """The enabled membrane reports (BMTK's ``membrane_report`` or ``multimeter_report``)."""
        return {
            name: rep
            for name, rep in self.reports.items()
            if rep.get("enabled", True)
            and rep.get("module", "membrane_report") in MEMBRANE_REPORT_MODULES
        }

    def node_set(self, spec: Any, key: str = "node_set") -> dict[str, np.ndarray]:
        """Resolve a node set (name, population name, inline object or list): pop -> ids."""
        if isinstance(spec, str):
            if spec not in self.node_sets and spec in self.nodes:
                return {spec: np.arange(self.nodes[spec].size)}
            if spec not in self.node_sets:
                raise RunError(
                    f"{key}: node set {spec!r} is not defined in {self.node_sets_file} "
                    f"(defined: {', '.join(sorted(self.node_sets)) or 'none'})"
                )
            body: Any = self.node_sets[spec]
        else:
            body = spec
        if isinstance(body, list):
            out: dict[str, list[np.ndarray]] = {}
            for part in body:
                for pop, ids in self.node_set(part, key).items():
                    out.setdefault(pop, []).append(ids)
            return {p: np.unique(np.concatenate(v)) for p, v in out.items()}
        if not isinstance(body, Mapping):
            raise RunError(f"{key}: a node set is an object or a list of names, got {body!r}")
        pops = body.get("population", list(self.nodes))
        pops = [pops] if isinstance(pops, str) else list(pops)
        result = {}
        for pop in pops:
            if pop not in self.nodes:
                raise RunError(f"{key}: population {pop!r} does not exist")
            np_ = self.nodes[pop]
            mask = np.ones(np_.size, bool)
            for attr, value in body.items():
                if attr == "population":
                    continue
                values = value if isinstance(value, list) else [value]
                if attr == "node_id":
                    sel = np.zeros(np_.size, bool)
                    ids = np.asarray(values, dtype=np.int64)
                    sel[ids[(ids >= 0) & (ids < np_.size)]] = True
                    mask &= sel
                    continue
                col = np_.column(attr)
                if col is None:
                    raise RunError(f"{key}: attribute {attr!r} is not a column of {pop!r}")
                if col.dtype.kind in "SOU":
                    mask &= np.isin(col.astype(str), [str(v) for v in values])
                else:
                    mask &= np.isin(col, values)
            result[pop] = np.flatnonzero(mask)
        return result


def _read_nodes(entry: Mapping[str, Any], res: PathResolver) -> list[NodePopulation]:
    path = res(str(entry["nodes_file"]))
    tpath = res(str(entry["node_types_file"])) if "node_types_file" in entry else None
    rows = _types(tpath) if tpath is not None else []
    types = {int(r["node_type_id"]): r for r in rows if r.get("node_type_id", "").isdigit()}
    out = []
    with h5py.File(path, "r") as f:
        for pop in list(entry.get("populations") or f["nodes"]):
            g = f["nodes"][pop]
            tid = np.asarray(g["node_type_id"][()], dtype=np.int64)
            cols: dict[str, np.ndarray] = {}
            g0 = g.get("0")
            if isinstance(g0, h5py.Group):
                for k, ds in g0.items():
                    if isinstance(ds, h5py.Dataset) and ds.ndim == 1 and ds.shape[0] == tid.size:
                        v = ds[()]
                        cols[k] = v.astype(str) if v.dtype.kind in "SO" else v
            out.append(NodePopulation(pop, path, tpath, types, tid, cols))
    return out


def _read_edges(entry: Mapping[str, Any], res: PathResolver) -> list[EdgePopulation]:
    path = res(str(entry["edges_file"]))
    tpath = res(str(entry["edge_types_file"])) if "edge_types_file" in entry else None
    rows = _types(tpath) if tpath is not None else []
    types = {int(r["edge_type_id"]): r for r in rows if r.get("edge_type_id", "").isdigit()}
    out = []
    # h5py's low-level API: the high-level File, groups and attributes cost 0.7 ms per file
    # (0.04 s of a NEST load's 0.6 s for the 55 edge files of the microcircuit)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY)
    try:
        g = h5py.h5g.open(fid, b"edges")
        for pop in list(entry.get("populations") or (n.decode() for n in g)):
            src_ds = h5py.h5d.open(g, f"{pop}/source_node_id".encode())
            trg_ds = h5py.h5d.open(g, f"{pop}/target_node_id".encode())
            src, trg = _attr_str(src_ds, b"node_population"), _attr_str(trg_ds, b"node_population")
            out.append(EdgePopulation(pop, path, tpath, types, src, trg, int(src_ds.shape[0])))
    finally:
        fid.close()
    return out


def _attr_str(obj: Any, name: bytes) -> str:
    """A scalar string attribute of a low-level HDF5 object."""
    a = h5py.h5a.open(obj, name)
    value = np.empty(a.shape, dtype=a.dtype)
    a.read(value)
    v = value[()]
    return v.decode() if isinstance(v, bytes) else str(v)


def _number(raw: Mapping[str, Any], key: str, default: float) -> float:
    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RunError(f"{key}: {v!r} is not a number")
    return float(v)


def read_config(
    config: str | os.PathLike, threads: int | None = None, *, check_run: bool = True
) -> NetworkConfig:
    """Read a simulation config (already checked by :func:`builder.core.checks.check_run_inputs`).

    ``threads`` (the ``-t`` option) overrides the config's ``run.n_thread`` / ``threads``.
    ``check_run=False`` reads the network only, without the run-section checks a runner
    needs (thread count, warm-up within the run): a summary of a finished run uses its own
    window.
    """
    path = Path(config)
    if path.is_dir():
        path = path / CONFIG_NAME
    path = path.resolve()
    raw = merge_simulation_child(json.loads(path.read_text()), path, [])
    res = PathResolver(raw.get("manifest"), path.parent, path)
    circuit, cres = raw, res
    if "network" in raw:
        net = res(str(raw["network"]))
        circuit = json.loads(net.read_text())
        cres = PathResolver(circuit.get("manifest"), net.parent, net)
    dirs = {k: cres(str(v)) for k, v in (circuit.get("components") or {}).items()}
    nodes: dict[str, NodePopulation] = {}
    for entry in (circuit.get("networks") or {}).get("nodes") or []:
        for p in _read_nodes(entry, cres):
            nodes[p.name] = p
    edges = []
    for entry in (circuit.get("networks") or {}).get("edges") or []:
        edges += _read_edges(entry, cres)
    run = raw.get("run") or {}
    where = f"{path}: run"
    try:
        tstop = _number(run, "tstop", 0.0)
        tstart = _number(run, "tstart", 0.0)
        dt = _number(run, "dt", 0.1)
        warmup = _number(run, "warmup_ms", tstart)
    except RunError as exc:
        raise RunError(f"{where}.{exc}") from None
    n_thread = threads or run.get("n_thread") or raw.get("threads") or 1
    if check_run and (isinstance(n_thread, bool) or not isinstance(n_thread, int) or n_thread < 1):
        raise RunError(f"{path}: run.n_thread: {n_thread!r} is not a positive integer")
    if check_run and not 0 <= warmup < tstop:
        raise RunError(f"{path}: run.warmup_ms: {warmup:g} is not within the run (0..{tstop:g})")
    ns_file = path
    node_sets: dict[str, Any] = {}
    if "node_sets_file" in raw:
        ns_file = res(str(raw["node_sets_file"]))
        node_sets = json.loads(ns_file.read_text())
    elif isinstance(raw.get("node_sets"), dict):
        node_sets = raw["node_sets"]
    seed = run.get("random_seed", raw.get("seed", 1))
    return NetworkConfig(
        path=path,
        raw=raw,
        tstop_ms=tstop,
        dt_ms=dt,
        seed=int(seed),
        threads=int(n_thread) if isinstance(n_thread, int) else 1,
        warmup_ms=warmup,
        nodes=nodes,
        edges=edges,
        inputs={k: v for k, v in (raw.get("inputs") or {}).items() if isinstance(v, dict)},
        generators=[g for g in raw.get("generators") or [] if isinstance(g, dict)],
        reports={k: v for k, v in (raw.get("reports") or {}).items() if isinstance(v, dict)},
        node_sets=node_sets,
        node_sets_file=ns_file,
        dirs=dirs,
        resolve=res,
    )
