"""Check a built network's inputs before a simulation starts: one message listing every problem.

:func:`check_run_inputs` reads (and never writes) what ``run-network DIR`` would read:

* the simulation and circuit configs parse (errors give the file, line and column);
* every file and directory they name exists and opens;
* nodes, edges and input spikes files are readable SONATA with the populations the configs
  name, integer ids and numeric times within range; edges name existing source and target
  nodes;
* input spike times lie within the run (0 ms to ``tstop``) and are finite;
* a current-clamp waveform file has finite ``amplitudes`` and positive ``dts`` of agreeing
  lengths (:mod:`builder.core.clamp`);
* the node sets that inputs and reports use resolve to at least one node;
* node and edge type tables name dynamics and morphology files that exist; every JSON in the
  synaptic-models and dynamics directories parses, and our synapse models' JSONs validate.

Only ``json``, ``csv`` and ``h5py`` are used (no NEURON, no BMTK), so the check is fast and
runs on any rank or machine.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import ParamsError, RunError

__all__ = [
    "InputError",
    "PathResolver",
    "check_run_inputs",
    "merge_simulation_child",
    "read_circuit",
    "read_json",
]

_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_CHUNK = 1 << 20


class InputError(ParamsError, RunError):
    """A built network cannot be run: every problem found, one per line."""


def read_json(path: Path, problems: list[str], what: str = "JSON") -> Any:
    """Parse ``path``; on failure append a message with the line and column, return None."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        problems.append(f"{path}: {what} file is missing")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read the {what} file ({exc})")
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON in the {what} file: {exc.msg}"
        )
        return None


class PathResolver:
    """Expands a config's ``$VARIABLES`` and makes paths absolute (relative to its folder).

    Besides the manifest's own variables, BMTK's built-in ones are known (a manifest entry of
    the same name wins): ``${configdir}`` (the config file's folder), ``${configfname}`` (its
    path) and ``${workingdir}`` (the current directory).
    """

    def __init__(
        self, manifest: Mapping[str, Any] | None, folder: Path, config: Path | None = None
    ) -> None:
        self.folder = folder
        self.vars = {"configdir": str(folder), "workingdir": os.getcwd()}
        if config is not None:
            self.vars["configfname"] = str(config)
        self.vars.update({k.lstrip("$"): str(v) for k, v in (manifest or {}).items()})

    def expand(self, value: Any) -> Any:
        """``value`` with every variable in its strings expanded (lists and dicts walked)."""
        if isinstance(value, str):
            for _ in range(10):
                new = _VAR.sub(lambda m: self.vars.get(m.group(1), m.group(0)), value)
                if new == value:
                    break
                value = new
            return value
        if isinstance(value, list):
            return [self.expand(v) for v in value]
        if isinstance(value, dict):
            return {k: self.expand(v) for k, v in value.items()}
        return value

    def __call__(self, value: str) -> Path:
        p = Path(self.expand(value))
        return p if p.is_absolute() else self.folder / p


def read_circuit(config: Path) -> tuple[dict[str, Any], PathResolver]:
    """The circuit part of a simulation config and the resolver for its paths.

    The circuit is the file the config names by ``"network"`` (BMTK's split config) or the
    config itself; its paths resolve with its own manifest, relative to its own folder. The
    config has been checked (:func:`check_run_inputs`): a missing file raises ``OSError``.
    """
    cfg = merge_simulation_child(json.loads(config.read_text()), config, [])
    if isinstance(cfg.get("network"), str):
        net = PathResolver(cfg.get("manifest"), config.parent, config)(cfg["network"])
        circuit = json.loads(net.read_text())
        return circuit, PathResolver(circuit.get("manifest"), net.parent, net)
    return cfg, PathResolver(cfg.get("manifest"), config.parent, config)


def merge_simulation_child(cfg: dict[str, Any], path: Path, problems: list[str]) -> dict[str, Any]:
    """``cfg`` with the simulation config it names by ``"simulation"`` merged in, as BMTK does.

    A top-level config may split into ``"network": "circuit.json"`` and ``"simulation":
    "sim.json"``; the simulation file's keys (run, inputs, reports, output, ...) override the
    top level's. Its variables are expanded with its own manifest; relative paths stay
    relative to the top-level config's folder (as BMTK leaves them relative).
    """
    child = cfg.get("simulation")
    if not isinstance(child, str):
        return cfg
    top = PathResolver(cfg.get("manifest"), path.parent, path)
    sim_path = top(child)
    sim = read_json(sim_path, problems, "simulation config")
    if not isinstance(sim, dict):
        if sim is not None:
            problems.append(f"{sim_path}: the simulation config is not a JSON object")
        return cfg
    own = PathResolver(sim.get("manifest"), sim_path.parent, sim_path)
    merged = {k: v for k, v in cfg.items() if k != "simulation"}
    merged.update({k: own.expand(v) for k, v in sim.items() if k != "manifest"})
    return merged


def _h5(path: Path, problems: list[str], key: str) -> h5py.File | None:
    if not path.is_file():
        problems.append(f"{path}: missing (named by {key})")
        return None
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        problems.append(f"{path}: not a readable HDF5 file ({exc}; named by {key})")
        return None


def _is_int(ds: Any) -> bool:
    return isinstance(ds, h5py.Dataset) and ds.dtype.kind in "iu" and ds.ndim == 1


def _chunks(ds: h5py.Dataset) -> Iterator[np.ndarray]:
    for i in range(0, ds.shape[0], _CHUNK):
        yield ds[i : i + _CHUNK]


def _id_range(ds: h5py.Dataset) -> tuple[int, int] | None:
    lo, hi = None, None
    for c in _chunks(ds):
        if c.size:
            lo = int(c.min()) if lo is None else min(lo, int(c.min()))
            hi = int(c.max()) if hi is None else max(hi, int(c.max()))
    return None if lo is None else (lo, hi)


def _types_csv(path: Path, problems: list[str], key: str) -> list[dict[str, str]] | None:
    if not path.is_file():
        problems.append(f"{path}: missing (named by {key})")
        return None
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter=" "))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{path}: cannot read the type table ({exc})")
        return None
    if rows and not any(k.endswith("_type_id") for k in rows[0]):
        problems.append(f"{path}: not a SONATA type table (no *_type_id column)")
        return None
    return rows


class _Checker:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.problems: list[str] = []
        self.nodes: dict[str, dict[str, Any]] = {}  # population -> {size, file, types}
        self.dirs: dict[str, Path] = {}

    # ------------------------------------------------------------------ configs
    def run(self) -> None:
        cfg = read_json(self.config, self.problems, "simulation config")
        if not isinstance(cfg, dict):
            if cfg is not None:
                self.problems.append(f"{self.config}: the simulation config is not a JSON object")
            return
        cfg = merge_simulation_child(cfg, self.config, self.problems)
        res = PathResolver(cfg.get("manifest"), self.config.parent, self.config)
        run = cfg.get("run")
        self.tstop = None
        if not isinstance(run, dict):
            self.problems.append(f"{self.config}: run: missing (needs tstop and dt)")
        else:
            for key in ("tstop", "dt"):
                v = run.get(key)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                    self.problems.append(
                        f"{self.config}: run.{key}: {v!r} is not a positive number (ms)"
                    )
            tstop = run.get("tstop")
            if isinstance(tstop, (int, float)) and not isinstance(tstop, bool):
                self.tstop = float(tstop)
        circuit = cfg
        if "network" in cfg:
            net = res(str(cfg["network"]))
            circ = read_json(net, self.problems, "circuit config")
            if not isinstance(circ, dict):
                if circ is not None:
                    self.problems.append(f"{net}: the circuit config is not a JSON object")
                return
            circuit = circ
            cres = PathResolver(circ.get("manifest"), net.parent, net)
            csrc = net
        else:
            cres, csrc = res, self.config
        self._components(circuit.get("components") or {}, cres, csrc)
        networks = circuit.get("networks") or {}
        for i, entry in enumerate(networks.get("nodes") or []):
            self._nodes(entry, cres, f"{csrc.name}: networks.nodes[{i}]")
        if not self.nodes:
            self.problems.append(f"{csrc}: networks.nodes: no node populations")
        for i, entry in enumerate(networks.get("edges") or []):
            self._edges(entry, cres, f"{csrc.name}: networks.edges[{i}]")
        self.node_sets: dict[str, Any] = {}
        if "node_sets_file" in cfg:
            path = res(str(cfg["node_sets_file"]))
            ns = read_json(path, self.problems, "node sets")
            if ns is not None and not isinstance(ns, dict):
                self.problems.append(f"{path}: the node sets file is not a JSON object")
            self.node_sets = ns if isinstance(ns, dict) else {}
            self.node_sets_file = path
        elif isinstance(cfg.get("node_sets"), dict):
            self.node_sets = cfg["node_sets"]
            self.node_sets_file = self.config
        for name, inp in (cfg.get("inputs") or {}).items():
            if isinstance(inp, dict):
                self._input(name, inp, res)
        for name, rep in (cfg.get("reports") or {}).items():
            if isinstance(rep, dict) and rep.get("enabled", True):
                cells = rep.get("cells", rep.get("node_set"))
                if cells is not None:
                    self._node_set(cells, f"reports.{name}.cells")

    def _components(self, comps: Mapping[str, Any], res: PathResolver, src: Path) -> None:
        for key, value in comps.items():
            if not key.endswith("_dir"):
                continue
            path = res(str(value))
            self.dirs[key] = path
            if not path.is_dir():
                self.problems.append(f"{src.name}: components.{key}: {path} is not a directory")
        self._json_dir(self.dirs.get("synaptic_models_dir"), synapses=True)
        self._json_dir(self.dirs.get("biophysical_neuron_models_dir"), synapses=False)

    def _json_dir(self, folder: Path | None, synapses: bool) -> None:
        if folder is None or not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            data = read_json(path, self.problems, "synaptic model" if synapses else "dynamics")
            if data is None:
                continue
            if not isinstance(data, dict):
                self.problems.append(f"{path}: not a JSON object")
            elif synapses:
                self.problems += check_synapse_json(path, data)

    # ------------------------------------------------------------------ nodes and edges
    def _nodes(self, entry: Mapping[str, Any], res: PathResolver, key: str) -> None:
        if not isinstance(entry, dict) or "nodes_file" not in entry:
            self.problems.append(f"{key}: needs nodes_file")
            return
        path = res(str(entry["nodes_file"]))
        types = None
        if "node_types_file" in entry:
            types = _types_csv(res(str(entry["node_types_file"])), self.problems, key)
        f = _h5(path, self.problems, f"{key}.nodes_file")
        if f is None:
            return
        with f:
            grp = f.get("nodes")
            wanted = list(entry.get("populations") or (grp or {}))
            if not isinstance(grp, h5py.Group):
                self.problems.append(f"{path}: not a SONATA nodes file (no /nodes group)")
                return
            for pop in wanted:
                g = grp.get(pop)
                if not isinstance(g, h5py.Group):
                    self.problems.append(
                        f"{path}: no node population {pop!r} (named by {key}.populations; "
                        f"the file has: {', '.join(grp) or 'none'})"
                    )
                    continue
                tid = g.get("node_type_id")
                if not _is_int(tid):
                    self.problems.append(
                        f"{path}: /nodes/{pop}/node_type_id is missing or not a 1-D integer "
                        f"dataset ({getattr(tid, 'dtype', None)})"
                    )
                    continue
                n = int(tid.shape[0])
                for col in ("node_id", "node_group_id", "node_group_index"):
                    ds = g.get(col)
                    if ds is not None and (not _is_int(ds) or ds.shape[0] != n):
                        self.problems.append(
                            f"{path}: /nodes/{pop}/{col} is not {n} integers "
                            f"({ds.dtype}, shape {ds.shape})"
                        )
                used = set(np.unique(tid[()]).tolist())
                rows = [r for r in types or [] if r.get("node_type_id", "").isdigit()]
                known = {int(r["node_type_id"]) for r in rows}
                if types is not None and used - known:
                    self.problems.append(
                        f"{path}: /nodes/{pop}: node_type_id {sorted(used - known)[:5]} not in "
                        f"{entry['node_types_file']}"
                    )
                kind = (entry.get("populations") or {}).get(pop, {}) or {}
                if kind.get("type", "") == "biophysical" or any(
                    r.get("model_type") == "biophysical" for r in rows
                ):
                    self._cell_files(kind, res, rows, pop)
                attrs = {}
                g0 = g.get("0")
                if isinstance(g0, h5py.Group):
                    attrs = {k: g0[k] for k in g0 if isinstance(g0[k], h5py.Dataset)}
                self.nodes[pop] = {"size": n, "types": rows, "tid": tid[()], "attrs": attrs}

    def _cell_files(self, kind: Mapping[str, Any], res: PathResolver, rows: list, pop: str) -> None:
        morph = kind.get("morphologies_dir")
        models = kind.get("biophysical_neuron_models_dir")
        mdir = res(str(morph)) if morph else self.dirs.get("morphologies_dir")
        ddir = res(str(models)) if models else self.dirs.get("biophysical_neuron_models_dir")
        for r in rows:
            for col, folder in (("morphology", mdir), ("dynamics_params", ddir)):
                name = (r.get(col) or "").strip()
                if not name or name == "NULL" or folder is None:
                    continue
                if not (folder / name).is_file():
                    self.problems.append(
                        f"node type {r.get('node_type_id')} of {pop!r}: {col} {name!r} not found "
                        f"in {folder}"
                    )
                elif col == "dynamics_params" and name.endswith(".json"):
                    read_json(folder / name, self.problems, "dynamics")

    def _edges(self, entry: Mapping[str, Any], res: PathResolver, key: str) -> None:
        if not isinstance(entry, dict) or "edges_file" not in entry:
            self.problems.append(f"{key}: needs edges_file")
            return
        path = res(str(entry["edges_file"]))
        types = None
        if "edge_types_file" in entry:
            types = _types_csv(res(str(entry["edge_types_file"])), self.problems, key)
            syn_dir = self.dirs.get("synaptic_models_dir")
            for r in types or []:
                name = (r.get("dynamics_params") or "").strip()
                if name and name != "NULL" and syn_dir is not None:
                    if not (syn_dir / name).is_file():
                        self.problems.append(
                            f"{entry['edge_types_file']}: edge type {r.get('edge_type_id')}: "
                            f"dynamics_params {name!r} not found in {syn_dir}"
                        )
        f = _h5(path, self.problems, f"{key}.edges_file")
        if f is None:
            return
        with f:
            grp = f.get("edges")
            if not isinstance(grp, h5py.Group):
                self.problems.append(f"{path}: not a SONATA edges file (no /edges group)")
                return
            for pop in list(entry.get("populations") or grp):
                g = grp.get(pop)
                if not isinstance(g, h5py.Group):
                    self.problems.append(
                        f"{path}: no edge population {pop!r} (named by {key}.populations; "
                        f"the file has: {', '.join(grp) or 'none'})"
                    )
                    continue
                self._edge_population(path, pop, g, types)

    def _edge_population(self, path: Path, pop: str, g: h5py.Group, types: Any) -> None:
        cols = ("source_node_id", "target_node_id", "edge_type_id")
        bad = [c for c in cols if not _is_int(g.get(c))]
        if bad:
            self.problems.append(
                f"{path}: /edges/{pop}: {', '.join(bad)} missing or not 1-D integer datasets"
            )
            return
        n = g["source_node_id"].shape[0]
        if any(g[c].shape[0] != n for c in cols):
            self.problems.append(f"{path}: /edges/{pop}: columns of different lengths")
            return
        for col in ("source_node_id", "target_node_id"):
            ds = g[col]
            target = ds.attrs.get("node_population")
            target = target.decode() if isinstance(target, bytes) else target
            if target is None:
                self.problems.append(f"{path}: /edges/{pop}/{col} has no node_population attribute")
                continue
            if target not in self.nodes:
                self.problems.append(
                    f"{path}: /edges/{pop}/{col}: node population {target!r} is not in the "
                    "circuit config's nodes"
                )
                continue
            span = _id_range(ds)
            size = self.nodes[target]["size"]
            if span is not None and (span[0] < 0 or span[1] >= size):
                self.problems.append(
                    f"{path}: /edges/{pop}/{col}: ids {span[0]}..{span[1]} outside population "
                    f"{target!r} (0..{size - 1})"
                )
        if types is not None:
            known = {int(r["edge_type_id"]) for r in types if r.get("edge_type_id", "").isdigit()}
            used = set(np.unique(g["edge_type_id"][()]).tolist())
            if used - known:
                self.problems.append(
                    f"{path}: /edges/{pop}: edge_type_id {sorted(used - known)[:5]} not in the "
                    "edge type table"
                )

    # ------------------------------------------------------------------ node sets and inputs
    def _node_set(self, spec: Any, key: str) -> dict[str, int]:
        """Resolve a node set (name or inline object); returns population -> nodes selected."""
        source = getattr(self, "node_sets_file", self.config)
        if isinstance(spec, str):
            if spec not in self.node_sets and spec in self.nodes:
                return {spec: self.nodes[spec]["size"]}  # BMTK accepts a population name
            if spec not in self.node_sets:
                self.problems.append(
                    f"{key}: node set {spec!r} is not defined in {source} (defined: "
                    f"{', '.join(sorted(self.node_sets)) or 'none'})"
                )
                return {}
            body, where = self.node_sets[spec], f"{source}: {spec}"
        else:
            body, where = spec, key
        if isinstance(body, list):  # compound node set
            out: dict[str, int] = {}
            for part in body:
                for pop, n in self._node_set(part, key).items():
                    out[pop] = out.get(pop, 0) + n
            return out
        if not isinstance(body, dict):
            self.problems.append(f"{where}: a node set is an object or a list of names")
            return {}
        pops = body.get("population", list(self.nodes))
        pops = [pops] if isinstance(pops, str) else list(pops)
        out = {}
        for pop in pops:
            if pop not in self.nodes:
                self.problems.append(
                    f"{where}: population {pop!r} does not exist (populations: "
                    f"{', '.join(self.nodes) or 'none'})"
                )
                continue
            info = self.nodes[pop]
            mask = np.ones(info["size"], bool)
            for attr, value in body.items():
                if attr == "population":
                    continue
                values = value if isinstance(value, list) else [value]
                if attr == "node_id":
                    ids = np.asarray([v for v in values if isinstance(v, int)], dtype=np.int64)
                    sel = np.zeros(info["size"], bool)
                    sel[ids[(ids >= 0) & (ids < info["size"])]] = True
                    mask &= sel
                elif attr in info["attrs"]:
                    col = info["attrs"][attr][()]
                    if col.dtype.kind in "SO":
                        col = col.astype(str)
                    if col.shape[0] == info["size"]:
                        mask &= np.isin(col, values)
                elif info["types"] and attr in info["types"][0]:
                    wanted = {str(v) for v in values}
                    tids = {int(r["node_type_id"]) for r in info["types"] if r[attr] in wanted}
                    mask &= np.isin(info["tid"], list(tids))
                else:
                    self.problems.append(
                        f"{where}: attribute {attr!r} is not a column of population {pop!r}"
                    )
                    mask[:] = False
            out[pop] = int(mask.sum())
        if sum(out.values()) == 0 and not any(p not in self.nodes for p in pops):
            self.problems.append(f"{where}: the node set selects no node (used by {key})")
        return out

    def _input(self, name: str, inp: Mapping[str, Any], res: PathResolver) -> None:
        key = f"inputs.{name}"
        kind = inp.get("input_type")
        target = inp.get("node_set")
        selected = self._node_set(target, f"{key}.node_set") if target is not None else {}
        file_value = inp.get("input_file", inp.get("spike_file"))
        if kind == "spikes":
            if file_value is None:
                self.problems.append(f"{self.config}: {key}: needs input_file")
                return
            self._spikes(res(str(file_value)), key, list(selected))
        elif inp.get("module") == "FileIClamp":
            from .clamp import clamp_problems

            if file_value is None:
                self.problems.append(f"{self.config}: {key}: needs input_file")
                return
            path = res(str(file_value))
            if not path.is_file():
                self.problems.append(f"{path}: missing (named by {key}.input_file)")
                return
            self.problems += [f"{p} (named by {key}.input_file)" for p in clamp_problems(path)]

    def _spikes(self, path: Path, key: str, populations: list[str]) -> None:
        f = _h5(path, self.problems, f"{key}.input_file")
        if f is None:
            return
        with f:
            grp = f.get("spikes")
            if not isinstance(grp, h5py.Group):
                self.problems.append(f"{path}: not a SONATA spikes file (no /spikes group)")
                return
            for pop in populations:
                g = grp.get(pop)
                if not isinstance(g, h5py.Group):
                    self.problems.append(
                        f"{path}: no spikes population {pop!r} (needed by {key}; the file has: "
                        f"{', '.join(grp) or 'none'})"
                    )
                    continue
                ids, ts = g.get("node_ids"), g.get("timestamps")
                if not _is_int(ids):
                    self.problems.append(
                        f"{path}: /spikes/{pop}/node_ids is missing or not a 1-D integer dataset "
                        f"({getattr(ids, 'dtype', None)})"
                    )
                    continue
                if not (isinstance(ts, h5py.Dataset) and ts.dtype.kind in "fiu" and ts.ndim == 1):
                    self.problems.append(
                        f"{path}: /spikes/{pop}/timestamps is missing or not a 1-D numeric "
                        f"dataset ({getattr(ts, 'dtype', None)})"
                    )
                    continue
                if ids.shape != ts.shape:
                    self.problems.append(
                        f"{path}: /spikes/{pop}: {ids.shape[0]} node_ids but {ts.shape[0]} "
                        "timestamps"
                    )
                    continue
                span = _id_range(ids)
                size = self.nodes.get(pop, {}).get("size")
                if span is not None and size is not None and (span[0] < 0 or span[1] >= size):
                    self.problems.append(
                        f"{path}: /spikes/{pop}/node_ids: {span[0]}..{span[1]} outside population "
                        f"{pop!r} (0..{size - 1})"
                    )
                lo, hi, finite = np.inf, -np.inf, True
                for c in _chunks(ts):
                    c = np.asarray(c, dtype=np.float64)
                    if c.size:
                        finite &= bool(np.isfinite(c).all())
                        lo, hi = min(lo, float(np.nanmin(c))), max(hi, float(np.nanmax(c)))
                if not finite:
                    self.problems.append(f"{path}: /spikes/{pop}/timestamps: NaN or infinite times")
                if lo < 0 or (self.tstop is not None and hi > self.tstop):
                    self.problems.append(
                        f"{path}: /spikes/{pop}/timestamps: {lo:g}..{hi:g} ms is not within the "
                        f"run (0..{self.tstop:g} ms)"
                    )


def check_synapse_json(path: Path, data: Mapping[str, Any]) -> list[str]:
    """Problems of one synaptic-model JSON of our models (none for other models' files)."""
    from .synmodels import MODELS, load_model_file

    if data.get("level_of_detail") not in MODELS:
        return []
    try:
        load_model_file(path)  # the runner warns about legacy keys, once per file
    except ParamsError as exc:
        return [f"{exc.source}: {p}" for p in exc.problems]
    return []


def check_run_inputs(config: str | os.PathLike) -> None:
    """Check everything a run of ``config`` reads; raise :class:`InputError` listing problems."""
    config = Path(config)
    checker = _Checker(config)
    try:
        checker.run()
    except (OSError, KeyError, ValueError, TypeError) as exc:  # damaged beyond our checks
        checker.problems.append(f"{config}: cannot check the inputs ({type(exc).__name__}: {exc})")
    if checker.problems:
        raise InputError(str(config), checker.problems)
