"""Read, validate and normalise a network spec (JSON or YAML).

The format is described by ``builder/schema/spec.schema.json`` (reference: ``docs/spec.md``).
Validation reports every problem at once, each as ``dotted.key: value, what is wrong``: first
the schema's findings, then the checks the schema cannot express (unknown population in a
connection, an in-degree larger than the source population without multapses, missing files,
layers of a region that does not have them...). A valid spec becomes a :class:`Spec`: the data
with defaults filled in and ``scale`` applied (counts, in-degrees, weights, DC compensation),
plus where its files are.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ParamsError
from ..overrides import apply_overrides, given_as, problems_error, tree_copy
from ..schema_messages import dotted as _dotted
from ..schema_messages import message, nonfinite, resolve_ref
from ..schema_messages import or_join as _or_join
from ..schema_messages import show as _show
from ..schema_messages import sort_key as _sort_key
from .fastcheck import compile_check

if TYPE_CHECKING:
    import jsonschema

__all__ = [
    "SPEC_FORMAT",
    "Spec",
    "is_spec_data",
    "is_spec_file",
    "load_spec",
    "read_spec_file",
    "spec_schema",
    "spec_schema_path",
    "validate_spec",
]

#: Value of the top-level ``format`` key that marks a network spec.
SPEC_FORMAT = "l5net-spec/1"
_SCHEMA_FILE = ("schema", "spec.schema.json")
_YAML_SUFFIXES = (".yaml", ".yml")

KeyPath = tuple[str | int, ...]
Problems = list[tuple[KeyPath, str]]


# ----------------------------------------------------------------------------- the schema
def spec_schema_path() -> Path:
    """Path of the spec JSON Schema shipped with the package."""
    return Path(str(resources.files("builder").joinpath(*_SCHEMA_FILE)))


@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads(resources.files("builder").joinpath(*_SCHEMA_FILE).read_text("utf-8"))


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    import jsonschema  # only for a spec the fast check rejects (~45 ms of imports)

    return jsonschema.Draft202012Validator(_schema())


@functools.cache
def _fast_check() -> Callable[[Any], bool] | None:
    """A quick yes/no check of the schema (:mod:`.fastcheck`); jsonschema words the problems
    of a spec it rejects."""
    return compile_check(_schema())


def spec_schema() -> dict[str, Any]:
    """A copy of the spec JSON Schema (draft 2020-12)."""
    return copy.deepcopy(_schema())


def _resolve_ref(node: Mapping[str, Any]) -> Mapping[str, Any]:
    return resolve_ref(_schema(), node)


# ----------------------------------------------------------------------------- the result
@dataclass(frozen=True)
class Spec:
    """A validated, normalised spec.

    Attributes
    ----------
    data : dict
        The spec with defaults filled in and ``scale`` applied (counts, degrees, weights).
    source : str
        The file it came from (as given).
    base_dir : pathlib.Path
        The spec file's folder: relative paths in the spec are taken from here.
    components_dir : pathlib.Path
        Where cell and synapse files are looked for.
    seed : int
        The build's seed (command line, else the spec's ``seed``).
    """

    data: dict[str, Any]
    source: str
    base_dir: Path
    components_dir: Path
    seed: int

    @property
    def name(self) -> str:
        return str(self.data.get("name") or Path(self.source).stem)

    @property
    def populations(self) -> dict[str, dict[str, Any]]:
        return self.data["populations"]

    @property
    def connections(self) -> dict[str, dict[str, Any]]:
        return self.data.get("connections", {})

    @property
    def inputs(self) -> dict[str, dict[str, Any]]:
        return self.data.get("inputs", {})


# ----------------------------------------------------------------------------- reading
def read_spec_file(path: str | os.PathLike[str]) -> Any:
    """The content of a JSON or YAML (``.yaml``/``.yml``) file; ParamsError when unreadable."""
    name = os.fspath(path)
    file = Path(name)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError(name, [f"cannot read the spec file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ParamsError(name, [f"not UTF-8 text: {exc.reason} at byte {exc.start}"]) from None
    if file.suffix.lower() in _YAML_SUFFIXES:
        try:
            import yaml
        except ImportError:  # pragma: no cover - pyyaml is a base dependency
            raise ParamsError(name, ["YAML specs need PyYAML (pip install pyyaml)"]) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ParamsError(name, [f"{where}invalid YAML: {exc}"]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParamsError(
            name, [f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"]
        ) from None


def is_spec_data(data: Any) -> bool:
    """Whether already-read content is a network spec rather than a legacy params file."""
    return isinstance(data, Mapping) and (
        str(data.get("format", "")).startswith("l5net-spec") or "populations" in data
    )


def is_spec_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a network spec (a YAML file, or JSON marked as a spec).

    An unreadable or invalid file counts as a spec when its name ends in .yaml/.yml; otherwise
    as legacy params, whose loader then reports the problem.
    """
    p = Path(path)
    if p.suffix.lower() in _YAML_SUFFIXES:
        return True
    try:
        return is_spec_data(json.loads(p.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def load_spec(
    path: str | os.PathLike[str],
    seed: int | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    data: Any = None,
) -> Spec:
    """Read, validate and normalise a spec file.

    Parameters
    ----------
    path : str or path-like
        The spec (JSON, or YAML by suffix). Relative paths inside are relative to its folder.
    seed : int, optional
        Overrides the spec's ``seed``.
    overrides : mapping, optional
        Dotted key -> value replacements applied before validation (``{"scale": 0.1}``).
    data : optional
        The file's content, already read (then ``path`` only names it and locates files).

    Raises
    ------
    ParamsError
        Unreadable file, or every problem found (schema and cross-field).
    """
    name = os.fspath(path)
    if data is None:
        data = read_spec_file(path)
    if overrides:
        try:
            data = apply_overrides(data, overrides, name)
        except ParamsError as exc:
            given = " ".join(given_as(k, v) for k, v in overrides.items())
            raise ParamsError(f"{given} (on {name})", exc.problems) from None
    return validate_spec(data, name, seed=seed, overrides=overrides)


def validate_spec(
    data: Any,
    source: str,
    *,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Spec:
    """Validate spec content read from ``source``; see :func:`load_spec`."""
    base_dir = Path(os.path.abspath(source)).parent
    problems = _schema_problems(data)
    problems += nonfinite(data)
    if isinstance(data, Mapping) and isinstance(data.get("populations"), Mapping):
        comp = Path(str(data.get("components_dir", "."))).expanduser()
        comp_dir = comp if comp.is_absolute() else base_dir / comp
        bad = [p for p, _ in problems]
        problems += [
            (p, m)
            for p, m in _cross_checks(data, comp_dir, base_dir, bad)
            if not any(b[: len(p)] == p or p[: len(b)] == b for b in bad)
        ]
    if problems:
        problems.sort(key=lambda pm: (_sort_key(pm[0]), pm[1]))
        raise problems_error(source, problems, overrides or {})
    out = tree_copy(dict(data))
    _fill_defaults(_schema(), out)
    comp = Path(str(out.get("components_dir", "."))).expanduser()
    comp_dir = comp if comp.is_absolute() else base_dir / comp
    _inputs_as_dc(out)
    _apply_scale(out)
    if seed is not None:
        out["seed"] = int(seed)  # the resolved spec (spec.json of a build) names the seed used
    return Spec(out, source, base_dir, comp_dir, int(out["seed"]))


# ----------------------------------------------------------------------------- schema problems
def _schema_problems(data: Any) -> Problems:
    check = _fast_check()
    if check is not None and check(data):  # valid: nothing for jsonschema to word
        return []
    problems: Problems = []
    seen: set[tuple[str, KeyPath]] = set()
    for err in _validator().iter_errors(data):
        problems += _from_error(err, seen)
    return problems


def _from_error(err: jsonschema.ValidationError, seen: set[tuple[str, KeyPath]]) -> Problems:
    path: KeyPath = tuple(err.absolute_path)
    kind = err.validator
    if kind in ("anyOf", "oneOf") and err.context:
        # the alternative whose type fits the value explains best what is wrong with it
        fits = [
            i
            for i, sub in enumerate(err.validator_value)
            if _type_fits(_resolve_ref(sub), err.instance)
        ]
        if len(fits) == 1:
            errs = [e for e in err.context if e.schema_path and e.schema_path[0] == fits[0]]
            if errs:
                out: Problems = []
                for e in errs:
                    out += _from_error(e, seen)
                return out
    if kind in ("required", "additionalProperties"):
        if (kind, path) in seen:
            return []
        seen.add((kind, path))
        inst, sch = err.instance, err.schema
        if kind == "required":
            return [
                (path + (k,), "required key is missing")
                for k in err.validator_value
                if k not in inst
            ]
        known = list(sch.get("properties", {}))
        where = f"in {_dotted(path)}" if path else "at the top level"
        out = []
        for key in (k for k in inst if k not in known):
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f' (did you mean "{near[0]}"?)' if near else ""
            out.append(
                (path + (key,), f"unknown key{hint}; valid keys {where}: {', '.join(known)}")
            )
        return out
    if kind == "propertyNames":
        return [
            (
                path,
                f"{_show(err.instance)} is not a valid name (letters, digits, _ and -, "
                "not starting with a digit or -)",
            )
        ]
    return [(path, _message(err))]


_JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _type_fits(sub: Mapping[str, Any], value: Any) -> bool:
    """Whether a schema alternative is meant for this kind of value (by its type or const)."""
    if "const" in sub:
        return isinstance(value, type(sub["const"])) and not isinstance(value, bool)
    if "anyOf" in sub:
        return any(_type_fits(_resolve_ref(s), value) for s in sub["anyOf"])
    types = sub.get("type")
    if types is None:
        return False
    for t in [types] if isinstance(types, str) else types:
        if t in ("number", "integer"):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return True
        elif isinstance(value, _JSON_TYPES[t]):
            return True
    return False


def _message(err: jsonschema.ValidationError) -> str:
    return message(err, _resolve_ref)


# ----------------------------------------------------------------------------- cross checks
_DIST_NEEDS = {
    "constant": (("value",),),
    "normal": (("mean", "sd"), ("mean", "rel_sd")),
    "lognormal": (("mean", "sd"), ("mu", "sigma")),
    "uniform": (("low", "high"),),
    "uniform_int": (("low", "high"),),
    "exponential": (("mean",),),
    "poisson": (("mean",),),
}


def check_distribution(d: Any, path: KeyPath) -> Problems:
    """Problems of one number-or-distribution value (the schema checked its keys and types)."""
    if not isinstance(d, Mapping):
        return []
    name = d["distribution"]
    options = _DIST_NEEDS[name]
    if not any(all(k in d for k in opt) for opt in options):
        want = _or_join([" and ".join(opt) for opt in options])
        return [(path, f"distribution {_show(name)} needs {want}")]
    out: Problems = []
    if name in ("uniform", "uniform_int") and d["low"] > d["high"]:
        out.append((path + ("high",), f"{_show(d['high'])} is below low {_show(d['low'])}"))
    if name == "lognormal" and "mean" in d and d["mean"] <= 0:
        out.append((path + ("mean",), f"{_show(d['mean'])} must be > 0 for a lognormal"))
    if name in ("exponential", "poisson") and d["mean"] < 0:
        out.append((path + ("mean",), f"{_show(d['mean'])} must be >= 0"))
    if "min" in d and "max" in d and d["min"] >= d["max"]:
        out.append((path + ("max",), f"{_show(d['max'])} is not above min {_show(d['min'])}"))
    return out


def _region_layers(region: Mapping[str, Any]) -> list[str]:
    return [lay["name"] for lay in region.get("layers", [])]


def population_count(pop: Mapping[str, Any], regions: Mapping[str, Any]) -> int | None:
    """Cells of a population before scaling (None when it depends on an unknown region)."""
    if "count" in pop:
        return int(pop["count"])
    region = regions.get(pop.get("region", ""))
    if region is None:
        return None
    from .regions import expected_count

    return expected_count(region, pop["density_per_mm3"], 1.0)


def _sel_pop(sel: Any) -> str:
    return sel if isinstance(sel, str) else sel["population"]


def _find_file(comp_dir: Path, value: str, subdirs: tuple[str, ...]) -> Path | None:
    p = Path(value).expanduser()
    cands = [p] if p.is_absolute() else [comp_dir / p] + [comp_dir / s / p for s in subdirs]
    return next((c for c in cands if c.is_file()), None)


#: Where component files are looked for inside components_dir (BMTK's folder names).
COMPONENT_SUBDIRS = {
    "morphology": ("morphologies",),
    "dynamics_params": ("biophysical_neuron_models", "biophysical_neuron_templates"),
    "template": ("templates", "hoc_templates"),
    "synapse": ("synaptic_models",),
}


@contextmanager
def _tolerant() -> Iterator[None]:
    """Skip a check that trips over a value the schema already reported as wrong."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, ZeroDivisionError):
        pass


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _cross_checks(
    data: Mapping[str, Any], comp_dir: Path, base_dir: Path, bad: list[KeyPath]
) -> Problems:
    out: Problems = []
    regions = _mapping(data.get("regions"))
    pops = _mapping(data.get("populations"))
    scale = data.get("scale", 1.0)
    scale = float(scale) if isinstance(scale, (int, float)) and scale > 0 else 1.0
    for rname, reg in regions.items():
        with _tolerant():
            p = ("regions", rname)
            shape = reg["shape"]
            if shape == "box" and len(reg["size_um"]) != 3:
                out.append((p + ("size_um",), f"{_show(reg['size_um'])}: a box needs [x, y, z]"))
            if shape == "layered" and len(reg["size_um"]) != 2:
                out.append(
                    (p + ("size_um",), f"{_show(reg['size_um'])}: a layered slab needs [x, y]")
                )
            if shape != "layered" and "layers" in reg:
                out.append(
                    (p + ("layers",), f"only a layered region has layers (shape is {shape})")
                )
            names = _region_layers(reg)
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                out.append((p + ("layers",), f"layer name(s) {', '.join(dup)} given twice"))
    run = _mapping(data.get("run"))
    with _tolerant():
        warmup, duration = float(run["warmup_ms"]), float(run["duration_ms"])
        if warmup >= duration:
            out.append(
                (
                    ("run", "warmup_ms"),
                    f"{warmup:g}: the warm-up must end before the run does ({duration:g} ms): "
                    "rates would count nothing",
                )
            )
    sizes: dict[str, int | None] = {}
    for pname, pop in pops.items():
        with _tolerant():
            p = ("populations", pname)
            has_count, has_density = "count" in pop, "density_per_mm3" in pop
            if has_count == has_density:
                out.append((p, "give exactly one of count and density_per_mm3"))
            rname = pop.get("region")
            region = regions.get(rname) if rname is not None else None
            if rname is not None and region is None:
                out.append(
                    (
                        p + ("region",),
                        f"{_show(rname)} is not a region; regions: "
                        f"{', '.join(regions) or '(none)'}",
                    )
                )
            if has_density and rname is None:
                out.append(
                    (p + ("region",), "required key is missing (density_per_mm3 needs a region)")
                )
            layers = _region_layers(region) if region else []
            dens = pop.get("density_per_mm3")
            if isinstance(dens, Mapping) and region is not None:
                if region["shape"] != "layered":
                    out.append(
                        (
                            p + ("density_per_mm3",),
                            f"per-layer densities need a layered "
                            f"region; {rname} is a {region['shape']}",
                        )
                    )
                for lay in dens:
                    if lay not in layers:
                        out.append(
                            (
                                p + ("density_per_mm3", lay),
                                f"{_show(lay)} is not a layer of "
                                f"{rname}; layers: {', '.join(layers) or '(none)'}",
                            )
                        )
            for i, lay in enumerate(pop.get("layers", [])):
                if region is None or lay not in layers:
                    out.append(
                        (
                            p + ("layers", i),
                            f"{_show(lay)} is not a layer of "
                            f"{rname or '(no region)'}; layers: {', '.join(layers) or '(none)'}",
                        )
                    )
            if "rotations" in pop and _mapping(pop.get("model")).get("type") == "virtual":
                out.append((p + ("rotations",), "a virtual population has no cells to rotate"))
            if ("positions" in pop or "rotations" in pop) and region is None:
                out.append((p + ("region",), "required key is missing (positions need a region)"))
            depth = pop.get("positions", {}).get("depth_um")
            if depth is not None:
                out += check_distribution(depth, p + ("positions", "depth_um"))
            for k, v in pop.get("properties", {}).items():
                out += check_distribution(v, p + ("properties", k))
                if k in _RESERVED_NODE_COLUMNS:
                    out.append((p + ("properties", k), f"{k} is a reserved node column"))
            model = pop["model"]
            if model["type"] == "biophysical":
                for key in ("morphology", "dynamics_params"):
                    if (
                        key in model
                        and _find_file(comp_dir, model[key], COMPONENT_SUBDIRS[key]) is None
                    ):
                        out.append(
                            (
                                p + ("model", key),
                                f"{_show(model[key])} not found in "
                                f"{comp_dir} (or its {'/ '.join(COMPONENT_SUBDIRS[key])}/)",
                            )
                        )
                tmpl = model["template"]
                if tmpl.startswith("hoc:"):
                    hoc = tmpl[4:] + ".hoc"
                    if _find_file(comp_dir, hoc, COMPONENT_SUBDIRS["template"]) is None:
                        out.append(
                            (
                                p + ("model", "template"),
                                f"{_show(tmpl)}: {hoc} not found in {comp_dir} (or its templates/)",
                            )
                        )
            flawed = any(b[:2] == ("populations", pname) for b in bad) or any(
                q[:2] == ("populations", pname) for q, _ in out
            )
            sizes[pname] = None if flawed else population_count(pop, regions)
    for cname, con in data.get("connections", {}).items():
        with _tolerant():
            out += _check_connection(cname, con, pops, regions, sizes, scale, comp_dir)
    run = data.get("run", {})
    all_point = all(
        _mapping(_mapping(p).get("model")).get("type") != "biophysical" for p in pops.values()
    )
    if run.get("simulator") == "NEST" and not all_point:
        out.append((("run", "simulator"), '"NEST" cannot simulate biophysical populations'))
    for iname, inp in data.get("inputs", {}).items():
        with _tolerant():
            out += _check_input(iname, inp, pops, base_dir)
    rep = data.get("reports", {})
    for i, m in enumerate(rep.get("membrane", [])):
        with _tolerant():
            pn = _sel_pop(m["cells"])
            if pn not in pops:
                out.append(
                    (("reports", "membrane", i, "cells"), f"{_show(pn)} is not a population")
                )
            elif (size := sizes.get(pn)) is not None and "node_ids" in m:
                n = _scaled_count(size, scale)
                bad = [x for x in m["node_ids"] if x >= n]
                if bad:
                    out.append(
                        (
                            ("reports", "membrane", i, "node_ids"),
                            f"{_show(bad)} out of range for {pn} ({n} cells)",
                        )
                    )
    if "electrodes" in rep and all_point:
        out.append((("reports", "electrodes"), "extracellular electrodes need biophysical cells"))
    if "electrodes" in rep and not ({"positions_um", "probe"} & set(rep["electrodes"])):
        out.append((("reports", "electrodes"), "give positions_um or probe"))
    return out


_RESERVED_NODE_COLUMNS = {
    "x",
    "y",
    "z",
    "rotation_angle_xaxis",
    "rotation_angle_yaxis",
    "rotation_angle_zaxis",
    "layer",
}


def _scaled_count(n: int, scale: float) -> int:
    return int(round(n * scale))


def _check_connection(
    cname: str,
    con: Mapping[str, Any],
    pops: Mapping[str, Any],
    regions: Mapping[str, Any],
    sizes: Mapping[str, int | None],
    scale: float,
    comp_dir: Path,
) -> Problems:
    p: KeyPath = ("connections", cname)
    out: Problems = []
    ends = {}
    for end in ("source", "target"):
        pn = _sel_pop(con[end])
        at = p + (end,) if isinstance(con[end], str) else p + (end, "population")
        if pn not in pops:
            near = difflib.get_close_matches(pn, list(pops), n=1)
            hint = f' (did you mean "{near[0]}"?)' if near else ""
            out.append(
                (at, f"{_show(pn)} is not a population{hint}; populations: {', '.join(pops)}")
            )
        else:
            ends[end] = pn
            where = con[end].get("where", {}) if isinstance(con[end], Mapping) else {}
            props = pops[pn].get("properties", {})
            for k in where:
                if k not in props and k not in ("layer",):
                    out.append(
                        (
                            p + (end, "where", k),
                            f"{_show(k)} is not a property of {pn}; "
                            f"properties: {', '.join(props) or '(none)'}",
                        )
                    )
    if out:
        return out
    src, trg = ends["source"], ends["target"]
    tmodel = pops[trg]["model"]["type"]
    if tmodel == "virtual":
        out.append(
            (
                p + ("target",) if isinstance(con["target"], str) else p + ("target", "population"),
                f"{_show(trg)} is virtual; it cannot receive connections",
            )
        )
    rule = con["rule"]
    name = rule["name"]
    n_src = sizes.get(src)
    n_trg = sizes.get(trg)
    selective = any(
        isinstance(con[e], Mapping) and con[e].get("where") for e in ("source", "target")
    )
    same = src == trg and not selective
    auto = rule.get("autapses", True)
    multi = rule.get("multapses", True)
    if n_src is not None and n_trg is not None and not selective:
        ns, nt = _scaled_count(n_src, scale), _scaled_count(n_trg, scale)
        eligible = ns - (0 if auto or not same else 1)
        if name == "one_to_one" and ns != nt:
            out.append(
                (
                    p + ("rule", "name"),
                    f'"one_to_one" needs populations of one size; {src} has {ns}, {trg} has {nt}',
                )
            )
        if name == "fixed_indegree" and not multi:
            k = _scaled_count(rule["indegree"], scale)
            if k > eligible:
                out.append(
                    (
                        p + ("rule", "indegree"),
                        f"{k} is larger than the {eligible} "
                        f"eligible cells of {src} and multapses are off",
                    )
                )
        if name == "fixed_outdegree" and not multi:
            k = _scaled_count(rule["outdegree"], scale)
            elig_t = nt - (0 if auto or not same else 1)
            if k > elig_t:
                out.append(
                    (
                        p + ("rule", "outdegree"),
                        f"{k} is larger than the {elig_t} "
                        f"eligible cells of {trg} and multapses are off",
                    )
                )
        if name == "fixed_total_number" and not multi:
            k = int(round(rule["n"] * scale * scale))
            pairs = ns * nt - (nt if same and not auto else 0)
            if k > pairs:
                out.append(
                    (
                        p + ("rule", "n"),
                        f"{k} is larger than the {pairs} possible pairs and multapses are off",
                    )
                )
    pp = rule.get("p")
    if name != "pairwise_bernoulli" and pp is not None:
        out.append((p + ("rule", "p"), f"p is only used by pairwise_bernoulli, not {name}"))
    for key, rn in (
        ("indegree", "fixed_indegree"),
        ("outdegree", "fixed_outdegree"),
        ("n", "fixed_total_number"),
    ):
        if key in rule and name != rn:
            out.append((p + ("rule", key), f"{key} is only used by {rn}, not {name}"))
    spatial = isinstance(pp, Mapping) or (
        isinstance(con.get("delay_ms"), Mapping) and "velocity_um_per_ms" in con["delay_ms"]
    )
    if spatial:
        for end, pn in (("source", src), ("target", trg)):
            if "region" not in pops[pn]:
                out.append(
                    (
                        p + (end,),
                        f"{pn} has no region (positions); distance-dependent "
                        "rules and delays need positions",
                    )
                )
    if isinstance(pp, Mapping):
        if pp["profile"] == "separable_gaussian" and isinstance(pp.get("sigma_um"), (int, float)):
            out.append(
                (p + ("rule", "p", "sigma_um"), "separable_gaussian needs [sigma_x, sigma_y]")
            )
        if pp["profile"] == "gaussian" and isinstance(pp.get("sigma_um"), list):
            out.append((p + ("rule", "p", "sigma_um"), "gaussian needs one sigma (a number)"))
    for dkey in ("weight", "synapses_per_connection"):
        out += check_distribution(con.get(dkey), p + (dkey,))
    d = con.get("delay_ms")
    if isinstance(d, Mapping) and "distribution" in d:
        out += check_distribution(d, p + ("delay_ms",))
    if "placement" in con and tmodel != "biophysical":
        out.append(
            (p + ("placement",), f"synapse placement needs a biophysical target; {trg} is {tmodel}")
        )
    if tmodel in ("biophysical", "point") and "dynamics_params" in con:
        if _find_file(comp_dir, con["dynamics_params"], COMPONENT_SUBDIRS["synapse"]) is None:
            out.append(
                (
                    p + ("dynamics_params",),
                    f"{_show(con['dynamics_params'])} not found in "
                    f"{comp_dir} (or its synaptic_models/)",
                )
            )
    pl = con.get("placement", {})
    out += _check_placement_rule(p, pl, pops[trg], trg)
    if "depth_profile" in pl:
        dp = pl["depth_profile"]
        if len(dp["depth_um"]) != len(dp["density"]):
            out.append(
                (p + ("placement", "depth_profile"), "depth_um and density differ in length")
            )
        if any(b <= a for a, b in zip(dp["depth_um"], dp["depth_um"][1:], strict=False)):
            out.append((p + ("placement", "depth_profile", "depth_um"), "must increase"))
    for lkey in ("layer_density",):
        reg = regions.get(pops[trg].get("region", ""), {})
        for lay in pl.get(lkey, {}):
            if lay not in _region_layers(reg):
                out.append(
                    (p + ("placement", lkey, lay), f"{_show(lay)} is not a layer of {trg}'s region")
                )
    for sec, per in pl.get("section_layer_density", {}).items():
        reg = regions.get(pops[trg].get("region", ""), {})
        if sec not in ("soma", "dend", "apic", "axon", "basal"):
            out.append((p + ("placement", "section_layer_density", sec), "not a section type"))
        for lay in per:
            if lay not in _region_layers(reg):
                out.append(
                    (
                        p + ("placement", "section_layer_density", sec, lay),
                        f"{_show(lay)} is not a layer of {trg}'s region",
                    )
                )
    return out


_DEPTH_KEYS = (
    "depth_um",
    "depth_profile",
    "depth_gaussians",
    "layer_density",
    "section_layer_density",
)
_GROUP_KEYS = ("cells_per_group", "clusters_per_group", "group_radius_um", "cluster_radius_um")
#: Keys of the density rule that do not depend on depth.
_DENSITY_ONLY_KEYS = ("weight_by",)


def _check_placement_rule(
    p: KeyPath, pl: Mapping[str, Any], pop: Mapping[str, Any], trg: str
) -> Problems:
    """Keys of one placement rule given to the other; depth rules on cells without positions."""
    out: Problems = []
    groups = pl.get("rule") == "functional_groups"
    for key in _DEPTH_KEYS + _DENSITY_ONLY_KEYS if groups else _GROUP_KEYS:
        if key in pl:
            rule = "functional_groups" if groups else "density (the default)"
            out.append((p + ("placement", key), f"not a key of the placement rule {rule}"))
    if not groups and any(k in pl for k in _DEPTH_KEYS) and "region" not in pop:
        out.append(
            (
                p + ("placement",),
                f"depth-dependent placement needs positions; {trg} has no region",
            )
        )
    return out


def resolve_path(base_dir: Path, value: str) -> Path:
    """A path from the spec: absolute, or relative to the spec file's folder."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(os.path.abspath(base_dir / p))


def _check_input(
    iname: str, inp: Mapping[str, Any], pops: Mapping[str, Any], base_dir: Path
) -> Problems:
    p = ("inputs", iname)
    out: Problems = []
    kind = inp["type"]
    if kind == "spikes":
        pn = inp["population"]
        if pn not in pops:
            out.append((p + ("population",), f"{_show(pn)} is not a population"))
        elif pops[pn]["model"]["type"] != "virtual":
            out.append(
                (
                    p + ("population",),
                    f"{pn} is not virtual; spike inputs drive virtual populations",
                )
            )
        tr = inp["train"]
        out += check_distribution(tr.get("rate_hz"), p + ("train", "rate_hz"))
        prof = tr.get("profile")
        if prof is not None:
            if len(prof["times_ms"]) != len(prof["rates_hz"]):
                out.append((p + ("train", "profile"), "times_ms and rates_hz differ in length"))
            if any(b <= a for a, b in zip(prof["times_ms"], prof["times_ms"][1:], strict=False)):
                out.append((p + ("train", "profile", "times_ms"), "must increase"))
        if tr["kind"] == "file":
            f = resolve_path(base_dir, tr["path"])
            if not f.is_file():
                out.append(
                    (
                        p + ("train", "path"),
                        f"{_show(tr['path'])} not found; looked for "
                        f"{f} (relative to the spec file)",
                    )
                )
    else:
        pn = _sel_pop(inp["target"])
        if pn not in pops:
            out.append((p + ("target",), f"{_show(pn)} is not a population"))
        elif pops[pn]["model"]["type"] == "virtual":
            out.append((p + ("target",), f"{pn} is virtual; generators drive real cells"))
        elif "rate_property" in inp and inp["rate_property"] not in pops[pn].get("properties", {}):
            out.append(
                (p + ("rate_property",), f"{_show(inp['rate_property'])} is not a property of {pn}")
            )
        if kind == "poisson_generator" and ("rate_hz" in inp) == ("rate_property" in inp):
            out.append((p, "give exactly one of rate_hz and rate_property"))
        if kind != "poisson_generator" and "rate_property" in inp:
            out.append((p + ("rate_property",), "only a poisson_generator takes rate_property"))
        if inp.get("as_dc") and (kind != "poisson_generator" or "rate_hz" not in inp):
            out.append((p + ("as_dc",), "only a poisson_generator with rate_hz becomes a DC"))
        elif inp.get("as_dc") and pn in pops:
            tau = pops[pn]["model"].get("params", {}).get("tau_syn_ex")
            if not isinstance(tau, (int, float)) or isinstance(tau, bool):
                out.append((p + ("as_dc",), f"{pn} has no model.params.tau_syn_ex for the DC"))
    if "stop_ms" in inp and inp["stop_ms"] <= inp.get("start_ms", 0):
        out.append((p + ("stop_ms",), f"{_show(inp['stop_ms'])} is not after start_ms"))
    return out


# ----------------------------------------------------------------------------- normalisation
#: Optional keys left out of the normalised spec: read with ``.get(key, default)`` where used.
_READ_WITH_GET = frozenset(
    (
        "autapses",
        "multapses",
        "keep_sign",
        "constant_ms",
        "min_ms",
        "in_sheet",
        "delay_ms",
        "start_ms",
        "group_size",
        "kind",
        "p0",
        "axis",
        "sections",
        "sigma_S_per_m",
    )
)
_PLANS: dict[int, tuple[Any, ...]] = {}


def _fill_plan(node: Mapping[str, Any]) -> tuple[Any, ...]:
    """What :func:`_fill_defaults` does at a schema node, worked out once per node:
    ((key, subschema, fills, default), ...), the known keys, additionalProperties, items."""
    plan = _PLANS.get(id(node))
    if plan is None or plan[0] is not node:
        r = _resolve_ref(node)
        props = []
        for key, sub in r.get("properties", {}).items():
            sub_r = _resolve_ref(sub)
            fills = (
                key not in _READ_WITH_GET and "default" in sub_r and sub_r.get("type") != "object"
            )
            props.append((key, sub, fills, sub_r.get("default")))
        extra, items = r.get("additionalProperties"), r.get("items")
        plan = (
            node,
            tuple(props),
            frozenset(r.get("properties", {})),
            extra if isinstance(extra, Mapping) else None,
            items if isinstance(items, Mapping) else None,
        )
        _PLANS[id(node)] = plan
    return plan


def _fill_defaults(node: Mapping[str, Any], inst: Any) -> None:
    if isinstance(inst, dict):
        _, props, known, extra, _ = _fill_plan(node)
        for key, sub, fills, default in props:
            if key in inst:
                _fill_defaults(sub, inst[key])
            elif fills:
                inst[key] = copy.deepcopy(default)
                _fill_defaults(sub, inst[key])
        if extra is not None:
            for key, value in inst.items():
                if key not in known:
                    _fill_defaults(extra, value)
    elif isinstance(inst, list):
        items = _fill_plan(node)[4]
        if items is not None:
            for value in inst:
                _fill_defaults(items, value)


def scale_value(v: Any, factor: float) -> Any:
    """A number or distribution multiplied by ``factor`` (> 0)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v * factor
    d = dict(v)
    for k in ("value", "mean", "sd", "low", "high", "min", "max"):
        if k in d:
            d[k] = d[k] * factor
    if "mu" in d:
        d["mu"] = d["mu"] + math.log(factor)
    return d


def mean_of(v: Any) -> float:
    """Nominal mean of a number or distribution (truncation ignored)."""
    if isinstance(v, (int, float)):
        return float(v)
    name = v["distribution"]
    if name == "constant":
        return float(v["value"])
    if name in ("normal", "exponential", "poisson"):
        return float(v["mean"])
    if name == "lognormal":
        return float(v["mean"]) if "mean" in v else math.exp(v["mu"] + v["sigma"] ** 2 / 2)
    return (v["low"] + v["high"]) / 2.0


def _inputs_as_dc(out: dict[str, Any]) -> None:
    """``as_dc`` Poisson inputs replaced by their mean current (in place, before scaling)."""
    for name, inp in out.get("inputs", {}).items():
        if inp["type"] == "poisson_generator" and inp.get("as_dc"):
            params = out["populations"][_sel_pop(inp["target"])]["model"]["params"]
            amp = 0.001 * params["tau_syn_ex"] * inp["rate_hz"] * inp.get("indegree", 1)
            dc = {"type": "dc", "target": inp["target"], "amplitude_pA": amp * inp["weight"]}
            dc.update({k: inp[k] for k in ("start_ms", "stop_ms") if k in inp})
            out["inputs"][name] = dc


def _apply_scale(out: dict[str, Any]) -> None:
    """Counts, degrees, weights and DC compensation for ``scale`` (in place)."""
    s = float(out.get("scale", 1.0))
    regions = out.get("regions", {})
    pops = out["populations"]
    full_n = {name: population_count(p, regions) for name, p in pops.items()}
    for p in pops.values():
        if "count" in p:
            p["count"] = _scaled_count(p["count"], s)
        elif isinstance(p["density_per_mm3"], Mapping):
            p["density_per_mm3"] = {k: v * s for k, v in p["density_per_mm3"].items()}
        else:
            p["density_per_mm3"] = p["density_per_mm3"] * s
    inv_sqrt = out.get("scaling", {}).get("weights") == "inverse_sqrt" and s != 1.0
    dc = out.get("scaling", {}).get("dc_compensation")
    lost: dict[str, float] = {}
    for con in out.get("connections", {}).values():
        rule = con["rule"]
        src, trg = _sel_pop(con["source"]), _sel_pop(con["target"])
        w_full = mean_of(con.get("weight", 1.0)) * mean_of(con.get("synapses_per_connection", 1))
        k_full = _full_indegree(rule, full_n.get(src) or 0, full_n.get(trg) or 0)
        rate = float(pops[src].get("mean_rate_hz", 0.0))
        lost[trg] = lost.get(trg, 0.0) + w_full * k_full * rate
        if rule["name"] == "fixed_total_number":
            rule["n"] = int(round(rule["n"] * s * s))
        elif rule["name"] == "fixed_indegree":
            rule["indegree"] = _scaled_count(rule["indegree"], s)
        elif rule["name"] == "fixed_outdegree":
            rule["outdegree"] = _scaled_count(rule["outdegree"], s)
        if inv_sqrt and "weight" in con:
            con["weight"] = scale_value(con["weight"], 1.0 / math.sqrt(s))
    for inp in out.get("inputs", {}).values():
        if inp["type"] in ("poisson_generator", "pulse"):
            k = int(inp.get("indegree", 1))
            if inp["type"] == "poisson_generator" and "rate_hz" in inp:
                pn = _sel_pop(inp["target"])
                lost[pn] = lost.get(pn, 0.0) + inp["weight"] * k * inp["rate_hz"]
            inp["indegree"] = _scaled_count(k, s) if "indegree" in inp else 1
            if inv_sqrt:
                inp["weight"] = inp["weight"] / math.sqrt(s)
    if dc is not None and s != 1.0:
        for name, p in pops.items():
            if p["model"]["type"] == "point" and name in lost:
                extra = 0.001 * dc["tau_syn_ms"] * (1.0 - math.sqrt(s)) * lost[name]
                params = p["model"].setdefault("params", {})
                params["I_e"] = float(params.get("I_e", 0.0)) + extra


def _full_indegree(rule: Mapping[str, Any], n_src: int, n_trg: int) -> float:
    """Mean in-degree of a target cell at full scale (for the DC compensation)."""
    name = rule["name"]
    if n_trg == 0:
        return 0.0
    if name == "fixed_total_number":
        return rule["n"] / n_trg
    if name == "fixed_indegree":
        return float(rule["indegree"])
    if name == "fixed_outdegree":
        return rule["outdegree"] * n_src / n_trg
    if name == "all_to_all":
        return float(n_src)
    if name == "one_to_one":
        return 1.0
    p = rule["p"]
    return float(p) * n_src if isinstance(p, (int, float)) else 0.0
