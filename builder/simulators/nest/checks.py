"""NEST-specific checks of a built network, after the generic SONATA ones, before simulating.

* every node type names a NEST model (``nest:`` prefix optional) and its dynamics JSON holds
  only parameters that model has; every edge type names a NEST synapse model;
* weights have the sign the target's receptors accept (conductance models with receptor ports,
  such as ``aeif_cond_beta_multisynapse``, take positive weights only: the port's reversal
  potential sets the sign), synapses onto models with receptor ports name a port
  (``receptor_type``) and delays are at least the time step;
* every input reaches cells: a spikes input feeds a virtual population with outgoing edges, a
  generator or a current clamp targets a node set with cells, a generator's ``rate_property``
  is a numeric node column;
* report variables are recordables of the recorded cells' models.

All problems are collected and raised together (:class:`builder.core.checks.InputError`, exit 2).
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import h5py
import numpy as np

from ...core.checks import InputError
from ...core.errors import RunError
from ...core.netconfig import MEMBRANE_REPORT_MODULES, SPIKE_REPORT_MODULES, NetworkConfig
from .config import strip_prefix
from .loader import COMPACT_KEY, _edge_columns, import_nest, params_path

__all__ = ["check_nest_inputs"]

_GENERATOR_TYPES = ("poisson_generator", "pulse")


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


class _NestChecker:
    def __init__(self, cfg: NetworkConfig, nest: Any) -> None:
        self.cfg, self.nest = cfg, nest
        self.problems: list[str] = []
        self.node_models = list(nest.node_models)
        self.synapse_models = list(nest.synapse_models)
        self.defaults: dict[str, dict[str, Any]] = {}
        self.pop_models: dict[str, set[str]] = {}

    def _defaults(self, model: str) -> dict[str, Any]:
        if model not in self.defaults:
            self.defaults[model] = dict(self.nest.GetDefaults(model))
        return self.defaults[model]

    # ------------------------------------------------------------------ nodes
    def nodes(self) -> None:
        for pop in self.cfg.nodes.values():
            models: set[str] = set()
            for tid in np.unique(pop.type_ids).tolist():
                row = pop.types.get(int(tid), {})
                where = f"{pop.types_file}: node type {tid}"
                if row.get("model_type") == "virtual":
                    continue
                template = row.get("model_template", "")
                model = strip_prefix(template)
                if model not in self.node_models:
                    self.problems.append(
                        f"{where}: model_template {template!r}: NEST has no neuron model "
                        f"{model!r}{_suggest(model, self.node_models)}"
                    )
                    continue
                models.add(model)
                self._dynamics(row, model, where)
            self.pop_models[pop.name] = models

    def _dynamics(self, row: dict[str, str], model: str, where: str) -> None:
        path = params_path(self.cfg, row, "point_neuron_models_dir")
        if path is None:
            return
        name = str(row["dynamics_params"]).strip()
        try:
            params = json.loads(path.read_text())
        except FileNotFoundError:
            self.problems.append(f"{where}: dynamics_params {name!r} not found in {path.parent}")
            return
        except (OSError, ValueError) as exc:
            self.problems.append(f"{path}: cannot read the dynamics JSON ({exc})")
            return
        if not isinstance(params, dict):
            self.problems.append(f"{path}: the dynamics JSON is not an object")
            return
        known = self._defaults(model)
        for key, value in params.items():
            if key not in known:
                self.problems.append(
                    f"{path}: {key!r} is not a parameter of NEST model {model}"
                    f"{_suggest(key, sorted(known))}"
                )
            elif isinstance(known[key], float) and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                self.problems.append(f"{path}: {key}: {value!r} is not a number")

    def _positive_only(self, pop: str) -> str | None:
        """A model of ``pop`` whose receptor ports take positive weights only (conductance
        models with a reversal potential per port), if any."""
        for m in sorted(self.pop_models.get(pop, ())):
            if "E_rev" in self._defaults(m):
                return m
        return None

    def _ported(self, pop: str) -> str | None:
        """A model of ``pop`` with receptor ports (a synapse must name its port), if any."""
        for m in sorted(self.pop_models.get(pop, ())):
            d = self._defaults(m)
            if "n_receptors" in d or np.ndim(d.get("tau_syn", 0.0)) == 1:
                return m
        return None

    def _port(self, value: Any, pop: str, where: str) -> None:
        ported = self._ported(pop)
        try:
            port = int(float(value)) if value not in (None, "", "NULL") else 0
        except (TypeError, ValueError):
            self.problems.append(f"{where}: receptor_type {value!r} is not an integer")
            return
        if ported and port < 1:
            self.problems.append(
                f"{where}: target model {ported} has receptor ports: give receptor_type >= 1"
            )
        elif not ported and port > 0:
            self.problems.append(
                f"{where}: receptor_type {port}, but the target's model has no receptor ports"
            )

    # ------------------------------------------------------------------ edges
    def edges(self) -> None:
        dt = self.cfg.dt_ms
        for e in self.cfg.edges:
            for tid, row in e.types.items():
                syn = strip_prefix(row.get("model_template") or "static_synapse")
                if syn not in self.synapse_models:
                    self.problems.append(
                        f"{e.types_file}: edge type {tid}: model_template {syn!r}: NEST has no "
                        f"synapse model {syn!r}{_suggest(syn, self.synapse_models)}"
                    )
                self._port(row.get("receptor_type"), e.target, f"{e.types_file}: edge type {tid}")
            if self.cfg.nodes.get(e.target) is not None and self.cfg.nodes[e.target].virtual:
                self.problems.append(
                    f"{e.file}: /edges/{e.name}: target population {e.target!r} is virtual "
                    "(spike sources cannot receive connections)"
                )
            positive = self._positive_only(e.target)
            with h5py.File(e.file, "r") as f:
                cols = _edge_columns(f["edges"][e.name].id)  # the columns the loader reads
                wmin = dmin = np.inf
                for key in ("syn_weight", "delay"):
                    ds = h5py.Dataset(cols[key]) if key in cols else None
                    if ds is None:
                        vals = [
                            float(r[key])
                            for r in e.types.values()
                            if (r.get(key) or "NULL") != "NULL"
                        ]
                        if vals:
                            lo = min(vals)
                        elif key == "syn_weight":
                            self.problems.append(
                                f"{e.file}: /edges/{e.name}: no syn_weight (per edge or in "
                                f"{e.types_file})"
                            )
                            continue
                        else:
                            continue
                    else:
                        lo = np.inf
                        for a in range(0, ds.shape[0], 1 << 20):
                            c = ds[a : a + (1 << 20)]
                            if c.size:
                                if not np.all(np.isfinite(c)):
                                    self.problems.append(
                                        f"{e.file}: /edges/{e.name}/0/{key}: NaN or infinite"
                                    )
                                lo = min(lo, float(np.nanmin(c)))
                    if key == "syn_weight":
                        wmin = lo
                    else:
                        dmin = lo
            if positive and wmin < 0:
                self.problems.append(
                    f"{e.file}: /edges/{e.name}/0/syn_weight: {wmin:g} < 0, but target model "
                    f"{positive} takes positive weights only (the receptor port sets the sign)"
                )
            if dmin < dt - 1e-9:
                self.problems.append(
                    f"{e.file}: /edges/{e.name}/0/delay: {dmin:g} ms is shorter than the time "
                    f"step ({dt:g} ms); NEST needs delay >= dt"
                )

    # ------------------------------------------------------------------ inputs
    def _cells(self, spec: Any, key: str) -> dict[str, np.ndarray]:
        if spec is None:
            self.problems.append(f"{self.cfg.path}: {key}: missing (the input has no target)")
            return {}
        try:
            sel = self.cfg.node_set(spec, key)
        except RunError as exc:
            self.problems.append(f"{self.cfg.path}: {exc}")
            return {}
        cells = {p: ids for p, ids in sel.items() if ids.size and not self.cfg.nodes[p].virtual}
        if not cells:
            self.problems.append(
                f"{self.cfg.path}: {key}: {spec!r} selects no cell (the input has no target "
                "population)"
            )
        return cells

    def inputs(self) -> None:
        sources = {e.source for e in self.cfg.edges}
        for name, inp in self.cfg.inputs.items():
            key = f"inputs.{name}"
            kind = inp.get("input_type")
            if kind == "spikes":
                try:
                    sel = self.cfg.node_set(inp.get("node_set"), f"{key}.node_set")
                except RunError as exc:
                    self.problems.append(f"{self.cfg.path}: {exc}")
                    continue
                for pop in sel:
                    if not self.cfg.nodes[pop].virtual:
                        self.problems.append(
                            f"{self.cfg.path}: {key}.node_set: population {pop!r} is not virtual "
                            "(spike inputs drive virtual populations)"
                        )
                    elif pop not in sources:
                        self.problems.append(
                            f"{self.cfg.path}: {key}.node_set: population {pop!r} has no edges to "
                            "any cell (the input has no target population)"
                        )
            elif kind == "current_clamp":
                self._cells(inp.get("node_set"), f"{key}.node_set")
            else:
                self.problems.append(
                    f"{self.cfg.path}: {key}.input_type: {kind!r} is not supported by the NEST "
                    "runner (spikes, current_clamp; Poisson sources go under 'generators')"
                )
        for i, gen in enumerate(self.cfg.generators):
            key = f"generators[{i}]"
            if gen.get("type") not in _GENERATOR_TYPES:
                self.problems.append(
                    f"{self.cfg.path}: {key}.type: {gen.get('type')!r} is not one of "
                    f"{', '.join(_GENERATOR_TYPES)}"
                )
            cells = self._cells(gen.get("node_set"), f"{key}.node_set")
            w = gen.get("weight", 1.0)
            if isinstance(w, bool) or not isinstance(w, (int, float)):
                self.problems.append(f"{self.cfg.path}: {key}.weight: {w!r} is not a number")
                w = 0.0
            for pop in cells:
                self._port(gen.get("receptor_type"), pop, f"{self.cfg.path}: {key}")
                positive = self._positive_only(pop)
                if positive and w < 0:
                    self.problems.append(
                        f"{self.cfg.path}: {key}.weight: {w:g} < 0, but target model {positive} "
                        "takes positive weights only"
                    )
            if "rate_property" in gen:
                prop = gen["rate_property"]
                for pop in cells:
                    col = self.cfg.nodes[pop].column(prop)
                    if col is None or col.dtype.kind not in "fiu":
                        self.problems.append(
                            f"{self.cfg.path}: {key}.rate_property: {prop!r} is not a numeric "
                            f"column of population {pop!r}"
                        )
                    elif np.any(~np.isfinite(col)) or np.any(col < 0):
                        self.problems.append(
                            f"{self.cfg.path}: {key}.rate_property: {prop!r} of {pop!r} has "
                            "negative or non-finite rates"
                        )
            else:
                r = gen.get("rate_hz")
                if isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0:
                    self.problems.append(
                        f"{self.cfg.path}: {key}.rate_hz: {r!r} is not a rate >= 0 (Hz)"
                    )
            d = gen.get("delay_ms", self.cfg.dt_ms)
            if isinstance(d, (int, float)) and d < self.cfg.dt_ms - 1e-9:
                self.problems.append(
                    f"{self.cfg.path}: {key}.delay_ms: {d:g} is shorter than the time step "
                    f"({self.cfg.dt_ms:g} ms)"
                )

    def reports(self) -> None:
        wanted = self.cfg.membrane_reports()
        for name, rep in self.cfg.reports.items():
            module = rep.get("module", "membrane_report")
            if (
                rep.get("enabled", True)
                and name not in wanted
                and module not in (SPIKE_REPORT_MODULES)
            ):
                self.problems.append(
                    f"{self.cfg.path}: reports.{name}.module: {module!r} is not a report the "
                    f"NEST runner writes (it writes "
                    f"{', '.join(MEMBRANE_REPORT_MODULES + SPIKE_REPORT_MODULES)})"
                )
        for name, rep in wanted.items():
            key = f"reports.{name}"
            var = str(rep.get("variable_name", "V_m"))
            var = "V_m" if var == "v" else var
            for pop in self._cells(rep.get("cells", rep.get("node_set")), f"{key}.cells"):
                for m in sorted(self.pop_models.get(pop, ())):
                    rec = [str(r) for r in self._defaults(m).get("recordables", ())]
                    if var not in rec:
                        self.problems.append(
                            f"{self.cfg.path}: {key}.variable_name: {var!r} is not recordable in "
                            f"NEST model {m} (recordables: {', '.join(rec)})"
                        )


def check_nest_inputs(cfg: NetworkConfig) -> None:
    """Raise :class:`InputError` listing every NEST-specific problem of ``cfg``."""
    nest = import_nest()
    c = _NestChecker(cfg, nest)
    run = cfg.raw.get("run") if isinstance(cfg.raw.get("run"), dict) else {}
    if not isinstance(run.get(COMPACT_KEY, True), bool):
        c.problems.append(
            f"{cfg.path}: run.{COMPACT_KEY}: {run[COMPACT_KEY]!r} is not true or false"
        )
    c.nodes()
    c.edges()
    c.inputs()
    c.reports()
    if c.problems:
        raise InputError(str(cfg.path), c.problems)
