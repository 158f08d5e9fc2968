"""Read, validate and normalise a build's params file.

The params format is the legacy ``L5NetParams.json`` one (SPEC section 2) plus a few optional keys;
its JSON Schema ships with the package (``builder/schema/params.schema.json``). Validation reports
every problem at once, each as ``dotted.key: <value> <what is wrong and what would be valid>``,
first the schema's findings, then the cross-field checks the schema cannot express (min <= max,
rhythm depth in (0, 1), files that must exist, ...). A valid file is returned as a new, normalised
dict: the legacy ``"None"`` strings become ``None``, the optional keys get their documented
defaults, integer-valued counts become ``int`` and ``"_source"`` holds the file's absolute path.
Values keep the legacy units (``time`` in seconds) and relative paths stay as written; use
:func:`resolve_relative` to find a file the legacy way (next to the params file, then in the
working directory).
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from ..core.errors import ParamsError
from ..core.overrides import KeyPath, Problems, apply_overrides, given_as, problems_error
from ..core.schema_messages import dotted as _dotted
from ..core.schema_messages import message, nonfinite, resolve_ref
from ..core.schema_messages import show as _show
from ..core.schema_messages import sort_key as _sort_key

__all__ = [
    "LEGACY_NONE",
    "load_params",
    "resolve_relative",
    "schema",
    "schema_path",
    "validate_params",
]

LEGACY_NONE = "None"
"""The string legacy params files use where JSON null is meant."""

_SCHEMA_FILE = ("schema", "params.schema.json")


_EXC_BLOCK = "exc"
_INH_BLOCKS = ("peri_inh", "basal_inh", "apic_inh")
_AIBS_PROCESSING = ("aibs_perisomatic", "aibs_allactive")


# ----------------------------------------------------------------------------- the schema
def schema_path() -> Path:
    """Path of the params JSON Schema shipped with the package.

    Returns
    -------
    pathlib.Path
        ``<package>/schema/params.schema.json`` (the package is installed unzipped).
    """
    return Path(str(resources.files("builder").joinpath(*_SCHEMA_FILE)))


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files("builder").joinpath(*_SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema())


def schema() -> dict[str, Any]:
    """The params JSON Schema (draft 2020-12), read once from the package data.

    Returns
    -------
    dict
        A fresh copy; changing it does not affect validation.
    """
    return copy.deepcopy(_schema())


def _resolve_ref(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/...``); sibling keywords override the target's."""
    return resolve_ref(_schema(), node)


_UNIT = re.compile(r"\((Hz|ms|s|µm|um|mV|nA|uS|mM|degC|°C|count)\b[^)]*\)")


def key_unit(key: str) -> str:
    """The unit of a dotted params key, from its schema description (``"Hz"``), or ``""``.

    The first parenthesised unit of the description counts (``"Mean rate (Hz)..."``);
    keys the schema does not know, and keys without a unit, give ``""``.
    """
    node: Any = _schema()
    try:
        for part in key.split("."):
            node = _resolve_ref(node)["properties"][part]
        node = _resolve_ref(node)
    except (KeyError, TypeError):
        return ""
    m = _UNIT.search(str(node.get("description", "")))
    return m.group(1) if m else ""


# ----------------------------------------------------------------------------- public API
def load_params(
    path: str | os.PathLike[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Read, validate and normalise a params JSON file.

    Parameters
    ----------
    path : str or path-like
        The params file; a relative path is taken from `cwd`.
    cwd : str or path-like, optional
        The working directory of the legacy lookups (files not found next to the params file are
        looked for here). Default: the process's current directory.
    overrides : mapping, optional
        Dotted key -> value replacements applied to the file's content before validation
        (``{"time.stop": 2}``); see :func:`apply_overrides`.

    Returns
    -------
    dict
        A new, normalised dict (see :func:`validate_params`) with ``"_source"`` set to the file's
        absolute path.

    Raises
    ------
    ParamsError
        The file cannot be read, is not valid JSON (the message gives line and column) or does
        not validate (the message lists every problem).
    """
    name = os.fspath(path)
    base = Path(cwd) if cwd is not None else Path.cwd()
    file = Path(name).expanduser()
    if not file.is_absolute():
        file = base / file
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError(name, [f"cannot read the params file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ParamsError(
            name, [f"the params file is not UTF-8 text: {exc.reason} at byte {exc.start}"]
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParamsError(
            name, [f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"]
        ) from None
    if overrides:
        try:
            data = apply_overrides(data, overrides, name)
        except ParamsError as exc:
            given = " ".join(given_as(k, v) for k, v in overrides.items())
            raise ParamsError(f"{given} (on {name})", exc.problems) from None
    return _validate(data, name, os.path.abspath(file), base, overrides)


def validate_params(
    data: Mapping[str, Any], source: str, *, cwd: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Validate and normalise params already read into a dict.

    Parameters
    ----------
    data : mapping
        The params as read from JSON (legacy ``"None"`` strings allowed). A ``"_source"`` key, as
        :func:`load_params` adds, is ignored.
    source : str
        The file the params came from: named in error messages, and its directory is where
        relative file names are looked for first.
    cwd : str or path-like, optional
        The working directory of the legacy lookups (default: the current directory).

    Returns
    -------
    dict
        A new dict: ``"None"`` strings replaced by ``None``; defaults filled in for the optional
        keys (``seed``, ``cell.components_dir``, ``conditions``, ``run``, ...); integer-valued
        counts as ``int``; ``"_source"`` = absolute path of `source`. ``lengths`` stays absent
        when not given. Paths are kept as written.

    Raises
    ------
    ParamsError
        Listing every schema and cross-field problem, sorted by key path.
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    src = Path(source).expanduser()
    return _validate(data, source, os.path.abspath(src if src.is_absolute() else base / src), base)


def resolve_relative(
    params: Mapping[str, Any],
    value: str | os.PathLike[str] | None,
    cwd: str | os.PathLike[str] | None = None,
) -> Path | None:
    """Find a file named in the params the way the legacy code did.

    Parameters
    ----------
    params : mapping
        Normalised params; ``params["_source"]`` (when present) gives the params file's directory.
    value : str or path-like or None
        The file name as written in the params (absolute, or relative). ``None`` and the legacy
        ``"None"`` give ``None``.
    cwd : str or path-like, optional
        The working directory to fall back on (default: the current directory).

    Returns
    -------
    pathlib.Path or None
        The first existing candidate, absolute: the value itself if absolute, otherwise the params
        file's directory joined with it, then `cwd` joined with it. ``None`` if none exists.
    """
    if value is None or value == LEGACY_NONE:
        return None
    source = params.get("_source")
    base_dir = Path(source).parent if source else None
    for candidate in _candidates(value, base_dir, Path(cwd) if cwd is not None else Path.cwd()):
        if candidate.exists():
            return candidate
    return None


# ----------------------------------------------------------------------------- validation
def _validate(
    data: Any,
    name: str,
    abs_source: str,
    cwd: Path,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    if isinstance(data, Mapping):
        data = {k: v for k, v in data.items() if k != "_source"}
    problems = _schema_problems(data)
    problems += nonfinite(data)
    bad = [p for p, _ in problems]
    problems += _cross_field_problems(data, bad, Path(abs_source).parent, cwd)
    if problems:
        problems.sort(key=lambda pm: (_sort_key(pm[0]), pm[1]))
        raise problems_error(name, problems, overrides or {})
    out = copy.deepcopy(dict(data))
    _normalise(_schema(), out)
    out["_source"] = abs_source
    return out


def _schema_problems(data: Any) -> list[tuple[KeyPath, str]]:
    problems: list[tuple[KeyPath, str]] = []
    seen: set[tuple[str, KeyPath]] = set()
    for err in _validator().iter_errors(data):
        path: KeyPath = tuple(err.absolute_path)
        kind = err.validator
        if kind in ("required", "additionalProperties"):
            # one error per object, however many keys; report each key on its own line
            if (kind, path) in seen:
                continue
            seen.add((kind, path))
            inst, sch = err.instance, err.schema
            known = sch.get("properties", {})
            if kind == "required":
                problems += [
                    (path + (k,), "required key is missing")
                    for k in err.validator_value
                    if k not in inst
                ]
            else:
                where = f"in {_dotted(path)}" if path else "at the top level"
                valid = ", ".join(known)
                for key in (k for k in inst if k not in known):
                    near = difflib.get_close_matches(str(key), list(known), n=1)
                    hint = f' (did you mean "{near[0]}"?)' if near else ""
                    problems.append(
                        (path + (key,), f"unknown key{hint}; valid keys {where}: {valid}")
                    )
            continue
        problems.append((path, _message(err)))
    return problems


def _message(err: jsonschema.ValidationError) -> str:
    return message(err, _resolve_ref)


# ----------------------------------------------------------------------------- cross-field checks
class _Skip(Exception):
    """A value a check needs is missing or already reported by the schema."""


class _View:
    """Read-only access to params in which every path touching a schema problem is off limits."""

    _ABSENT = object()

    def __init__(self, data: Any, bad: list[KeyPath]):
        self.data, self.bad = data, bad

    def _clean(self, path: KeyPath) -> bool:
        return not any(b[: len(path)] == path or path[: len(b)] == b for b in self.bad)

    def get(self, *path: str, default: Any = _ABSENT) -> Any:
        """The value at `path`; `default` when absent (if given); raises _Skip otherwise."""
        if not self._clean(path):
            raise _Skip
        node = self.data
        for part in path:
            if not isinstance(node, Mapping):
                raise _Skip
            if part not in node:
                if default is self._ABSENT:
                    raise _Skip
                return default
            node = node[part]
        return node


def _is_null(value: Any) -> bool:
    return value is None or value == LEGACY_NONE


def _cross_field_problems(
    data: Any, bad: list[KeyPath], base_dir: Path, cwd: Path
) -> list[tuple[KeyPath, str]]:
    view = _View(data, bad)
    problems: list[tuple[KeyPath, str]] = []
    for check in _CHECKS:
        try:
            problems += check(view, base_dir, cwd)
        except _Skip:
            continue
    return problems


def _check_divergence_ranges(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    out: Problems = []
    for block in (_EXC_BLOCK, *_INH_BLOCKS):
        try:
            lo, hi = v.get("divergence", block, "min"), v.get("divergence", block, "max")
        except _Skip:
            continue
        if lo > hi:
            out.append(
                (
                    ("divergence", block, "min"),
                    f"{_show(lo)} is greater than divergence.{block}.max ({_show(hi)}); "
                    "min must be <= max",
                )
            )
    return out


def _check_divergence_means(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    out: Problems = []
    for block in _INH_BLOCKS:
        try:
            m = v.get("divergence", block, "m")
        except _Skip:
            continue
        if m <= 0:
            out.append(
                (
                    ("divergence", block, "m"),
                    f"{_show(m)} must be greater than 0 (the inhibitory cell counts are "
                    "synapses / m)",
                )
            )
    return out


def _check_exc_min(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    lo = v.get("divergence", _EXC_BLOCK, "min")
    if lo < 1:
        return [
            (
                ("divergence", _EXC_BLOCK, "min"),
                f"{_show(lo)} must be at least 1 (every excitatory input cell makes at least one "
                "synapse, and the excitatory cell counts divide by the mean divergence)",
            )
        ]
    return []


def _check_clusters(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    dens = v.get("syn_density", "exc")
    if dens <= 0:
        return [
            (
                ("syn_density", "exc"),
                f"{_show(dens)} must be greater than 0 (the clusters per group are "
                "cells_per_group * mean(divergence.exc) // (syn_density.exc * 10))",
            )
        ]
    lo, hi = v.get("divergence", _EXC_BLOCK, "min"), v.get("divergence", _EXC_BLOCK, "max")
    cells = v.get("groups", "cells_per_group")
    if lo > hi or lo < 1:
        return []  # reported by the divergence checks
    n_clusters = int((cells * (lo + hi) / 2) // (dens * 10))
    if n_clusters < hi:
        return [
            (
                ("groups", "cells_per_group"),
                f"{_show(cells)} gives {n_clusters} clusters per group (cells_per_group * "
                f"mean(divergence.exc) // (syn_density.exc * 10)), fewer than "
                f"divergence.exc.max ({hi}): each excitatory input cell needs that many distinct "
                "clusters; raise cells_per_group or lower syn_density.exc or divergence.exc.max",
            )
        ]
    return []


def _check_time(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    start, stop = v.get("time", "start"), v.get("time", "stop")
    if stop <= start:
        return [
            (
                ("time", "stop"),
                f"{_show(stop)} s must be greater than time.start ({_show(start)} s)",
            )
        ]
    return []


def _check_radii(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    cluster, group = v.get("groups", "cluster_radius"), v.get("groups", "group_radius")
    if group < cluster:
        return [
            (
                ("groups", "group_radius"),
                f"{_show(group)} µm is smaller than groups.cluster_radius ({_show(cluster)} µm); "
                "a group must be at least as wide as its clusters",
            )
        ]
    return []


def _check_rhythmicity(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    out: Problems = []
    for pop in ("proximal", "distal"):
        path = ("inh_frs", pop, "rhythmicity")
        try:
            f = v.get(*path, "f", default=None)
            mod = v.get(*path, "mod", default=None)
        except _Skip:
            continue
        if _is_null(f) != _is_null(mod):
            out.append(
                (
                    path,
                    f"f ({_show(f)}) and mod ({_show(mod)}) must be given together "
                    '(both numbers) or both null / "None" (no rhythm)',
                )
            )
            continue
        if not _is_null(f) and f <= 0:
            out.append((path + ("f",), f"{_show(f)} Hz must be greater than 0"))
        if not _is_null(mod) and not 0 < mod < 1:
            out.append(
                (
                    path + ("mod",),
                    f"{_show(mod)} must be in the open interval (0, 1) (the amplitude "
                    "r / (1/mod - 1) is infinite at 1 and negative above)",
                )
            )
    return out


def _check_recording(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    names, locs = v.get("record_cellvars", "vars"), v.get("record_cellvars", "locs")
    if len(names) != len(locs):
        return [
            (
                ("record_cellvars",),
                f"vars has {len(names)} entr{'y' if len(names) == 1 else 'ies'} "
                f"({_show(names)}) but locs has {len(locs)} ({_show(locs)}); give one section "
                "group per variable",
            )
        ]
    return []


def _check_steps(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    out: Problems = []
    try:
        shift = v.get("inh_shift")
        if not float(shift).is_integer():
            out.append(
                (
                    ("inh_shift",),
                    f"{_show(shift)} ms is not a whole number of ms (the "
                    "input rasters have 1 ms bins)",
                )
            )
    except _Skip:
        pass
    try:
        dt = v.get("dt")
        if dt > 1:
            out.append(
                (("dt",), f"{_show(dt)} ms is larger than 1 ms (the input rasters have 1 ms bins)")
            )
    except _Skip:
        pass
    return out


#: The smallest ``dL`` (µm) accepted. NEURON allows at most 32767 segments per section, so a
#: section longer than 32767 * dL cannot be discretised; at 0.1 µm that is 3.3 mm, longer than
#: any dendritic section. Finer segments are also far below a dendrite's length constant
#: (hundreds of µm) and only multiply the work (the default cell has ~125,000 segments at 0.1).
MIN_DL_UM = 0.1
_NSEG_MAX = 32767


def _check_dl(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    dl = v.get("dL")
    if 0 < dl < MIN_DL_UM:
        return [
            (
                ("dL",),
                f"{_show(dl)} µm is below the smallest segment length accepted, "
                f"{MIN_DL_UM:g} µm: NEURON allows at most {_NSEG_MAX} segments per section "
                f"(sections longer than {_NSEG_MAX * dl:.4g} µm would fail) and segments this "
                "short are far below any dendrite's length constant; use e.g. 5 (the legacy "
                "value) or at least 0.1",
            )
        ]
    return []


def _check_cell_model(v: _View, *_: Any) -> list[tuple[KeyPath, str]]:
    out: Problems = []
    template = v.get("cell", "model_template")
    try:
        morph = v.get("cell", "morphology", default=None)
        if template.startswith("ctdb:") and _is_null(morph):
            out.append(
                (
                    ("cell", "morphology"),
                    f"{_show(morph)}, but model_template {_show(template)} loads a morphology "
                    'file: name one (e.g. "Scnn1a_473845048_m.swc")',
                )
            )
    except _Skip:
        pass
    try:
        processing = v.get("cell", "model_processing", default=None)
        dyn = v.get("cell", "dynamic_params", default=None)
        if processing in _AIBS_PROCESSING and _is_null(dyn):
            out.append(
                (
                    ("cell", "dynamic_params"),
                    f"{_show(dyn)}, but model_processing {_show(processing)} reads the cell's "
                    "parameters from it: name a _fit.json file",
                )
            )
    except _Skip:
        pass
    return out


def _check_files(v: _View, base_dir: Path, cwd: Path) -> list[tuple[KeyPath, str]]:
    out: Problems = []
    for path in (("file_current_clamp", "input_file"), ("cell", "segments_file")):
        try:
            value = v.get(*path, default=None)
        except _Skip:
            continue
        if _is_null(value):
            continue
        places = _candidates(value, base_dir, cwd)
        found = [p for p in places if p.is_file()]
        if not found:
            out.append((path, f"{_show(value)} not found; looked for {_looked(value, places)}"))
        elif path[0] == "file_current_clamp":
            from ..core.clamp import clamp_problems

            out += [(path, problem) for problem in clamp_problems(found[0])]
    try:
        comp = v.get("cell", "components_dir", default=None)
    except _Skip:
        return out
    if comp is not None:
        where = Path(comp).expanduser()
        where = where if where.is_absolute() else base_dir / where
        if not where.is_dir():
            out.append(
                (
                    ("cell", "components_dir"),
                    f"{_show(comp)} is not a directory; looked for {where} (relative to the "
                    "params file)",
                )
            )
    return out


_CHECKS = (
    _check_divergence_ranges,
    _check_divergence_means,
    _check_exc_min,
    _check_clusters,
    _check_time,
    _check_radii,
    _check_rhythmicity,
    _check_recording,
    _check_steps,
    _check_dl,
    _check_cell_model,
    _check_files,
)


def _looked(value: str | os.PathLike[str], places: list[Path]) -> str:
    """Name the places a file was looked for, and why there."""
    if Path(value).expanduser().is_absolute():
        return str(places[0])
    if len(places) == 1:
        return f"{places[0]} (the params file's directory is the working directory)"
    return f"{places[0]} (next to the params file) and {places[1]} (working directory)"


def _candidates(value: str | os.PathLike[str], base_dir: Path | None, cwd: Path) -> list[Path]:
    """Where a relative file name is looked for: next to the params file, then in `cwd`."""
    rel = Path(value).expanduser()
    if rel.is_absolute():
        return [rel]
    places = [] if base_dir is None else [Path(os.path.abspath(base_dir / rel))]
    here = Path(os.path.abspath(cwd / rel))
    if here not in places:
        places.append(here)
    return places


# ----------------------------------------------------------------------------- normalisation
def _normalise(node: Mapping[str, Any], inst: Any) -> None:
    """Fill defaults, turn legacy "None" into None and integral floats into int, in place."""
    node = _resolve_ref(node)
    if isinstance(inst, dict):
        for key, sub in node.get("properties", {}).items():
            sub = _resolve_ref(sub)
            if key not in inst:
                if "default" not in sub:
                    continue
                inst[key] = copy.deepcopy(sub["default"])
            value = inst[key]
            if sub.get("x-legacy-none") and value == LEGACY_NONE:
                inst[key] = None
            elif _is_integer_schema(sub) and isinstance(value, float):
                inst[key] = int(value)
            else:
                _normalise(sub, value)
    elif isinstance(inst, list) and "items" in node:
        items = _resolve_ref(node["items"])
        for i, value in enumerate(inst):
            if _is_integer_schema(items) and isinstance(value, float):
                inst[i] = int(value)
            else:
                _normalise(items, value)


def _is_integer_schema(sub: Mapping[str, Any]) -> bool:
    kind = sub.get("type")
    return kind == "integer" or (isinstance(kind, list) and "integer" in kind)
