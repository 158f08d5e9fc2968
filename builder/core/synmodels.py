"""Synaptic-model JSONs of our synapse models, as data: keys, legacy names, validation.

A synaptic-model JSON (``PN2PN.json``, ``PV2PN.json``, ``SOM2PN.json``) configures one of our
point processes (``pyr2pyr``, ``int2pyr``; NMODL in ``biophys_components/mechanisms/modfiles``).
This module reads one into a :class:`SynapsePlan` -- the NMODL parameters to set and the rule
for each synapse's weight factor -- without NEURON, so a build can check every file it uses
before writing anything; :mod:`builder.simulators.neuron.synapses` applies plans to point processes.

Keys
----
Every key is one of:

- a parameter key of the model (:data:`PARAMETER_KEYS`): its value, a number or a numeric
  string (``"0.5"``), is set on the point process;
- a legacy name of one (:data:`LEGACY_ALIASES`: ``AlphaTmax_ampa`` -> ``AlphaTmax_AMPA``,
  ``Erev_gaba`` -> ``e_GABA``...), read as that key; giving both names is an error;
- ``level_of_detail`` (the model's name), ``comment`` (text), ``initW_soma`` / ``initW_dend``
  and ``weight_distribution`` (the weight rules, see :mod:`builder.simulators.neuron.synapses`);
- ``delay``: read (must be a number) but not applied -- the simulation uses each edge's delay
  (the edge types' ``delay`` column, from the build params), as the legacy code did;
- a key of the legacy long-term plasticity / neuromodulation rules (:data:`UNMODELLED_KEYS`),
  which we do not model: accepted with any value and reported.

Anything else is an error with a did-you-mean hint.

``pyr2pyr`` receptor kinetics: with ``tau_r_*`` / ``tau_d_*`` keys (or none of the kinetic
keys) AMPA and NMDA are dual exponentials; with any of ``AlphaTmax_*``, ``Beta_*``, ``Cdur_*``
both use the two-state kinetic scheme (NMODL ``kinetic = 1``). Mixing the two sets is an error.

Legacy files
------------
A file is *legacy-style* when it uses any legacy name of one of our keys or gives any number
as a string (legacy projects wrote every value as a string). Such a file keeps the weight
meaning the legacy synapse functions gave it:

- ``pyr2pyr`` with ``initW`` and no ``weight_distribution``: each synapse's weight factor is
  drawn from a lognormal with mean 0.45 and sd 0.345 (of the variable itself) clipped to
  [0, 5]; ``initW``'s value only switched that on (:data:`LEGACY_PYR2PYR_WEIGHT`);
- ``int2pyr`` without ``initW_soma`` / ``initW_dend`` / ``weight_distribution``: 0.06 on
  somatic sections, 0.1 on all others (:data:`LEGACY_INT2PYR_WEIGHT`); ``initW`` is unused.

What was read differently from the file's face value (``delay``, the unmodelled keys with
their values, the ``initW`` interpretation) is collected into ONE warning per file
(:meth:`SynapsePlan.warning`), which the build and the runner print once per file.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ParamsError

__all__ = [
    "LEGACY_ALIASES",
    "LEGACY_INT2PYR_WEIGHT",
    "LEGACY_PYR2PYR_WEIGHT",
    "MODELS",
    "PARAMETER_KEYS",
    "UNMODELLED_KEYS",
    "Lognormal",
    "LegacySynapseWarning",
    "SynapsePlan",
    "build_plan",
    "check_model_file",
    "check_model_params",
    "is_soma",
    "load_model_file",
]

MODELS = ("pyr2pyr", "int2pyr")
"""The synapse models (BMTK ``model_template`` names = NMODL point-process names)."""

PENDING_WEIGHT = -1.0
"""``initW`` of a synapse whose weight is drawn per edge, until drawn (NMODL refuses it)."""


class LegacySynapseWarning(UserWarning):
    """A synaptic-model file was read with its legacy meaning, or has keys we do not model."""


# Value checks: name -> (test, what is valid)
_CHECKS: dict[str, tuple[Callable[[float], bool], str]] = {
    "positive": (lambda x: x > 0, "a number > 0"),
    "nonneg": (lambda x: x >= 0, "a number >= 0"),
    "fraction": (lambda x: 0 <= x <= 1, "a number in [0, 1]"),
    "any": (lambda x: True, "a finite number"),
}

_STP_KEYS = {
    "initW": (("initW",), "nonneg"),
    "tauD1": (("tauD1",), "positive"),
    "d1": (("d1",), "fraction"),
    "tauD2": (("tauD2",), "positive"),
    "d2": (("d2",), "fraction"),
    "tauF": (("tauF",), "positive"),
    "f": (("f",), "nonneg"),
    "P_0": (("P_0",), "fraction"),
}

_DUAL_EXP = {r: (f"tau_r_{r}", f"tau_d_{r}") for r in ("AMPA", "NMDA")}
_KINETIC = {r: (f"AlphaTmax_{r}", f"Beta_{r}", f"Cdur_{r}") for r in ("AMPA", "NMDA")}

PARAMETER_KEYS: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "pyr2pyr": {
        **{k: ((k,), "positive") for r in ("AMPA", "NMDA") for k in _DUAL_EXP[r]},
        **{k: ((k,), "positive") for r in ("AMPA", "NMDA") for k in _KINETIC[r]},
        "gbar_AMPA": (("gbar_AMPA",), "nonneg"),
        "gbar_NMDA": (("gbar_NMDA",), "nonneg"),
        "e": (("e_AMPA", "e_NMDA"), "any"),
        "e_AMPA": (("e_AMPA",), "any"),
        "e_NMDA": (("e_NMDA",), "any"),
        "mg": (("mg",), "nonneg"),
        **_STP_KEYS,
    },
    "int2pyr": {
        "e_GABA": (("e_GABA",), "any"),
        "gbar_GABA": (("gbar_GABA",), "nonneg"),
        "AlphaTmax_GABA": (("AlphaTmax_GABA",), "positive"),
        "Beta_GABA": (("Beta_GABA",), "positive"),
        "Cdur_GABA": (("Cdur_GABA",), "positive"),
        **_STP_KEYS,
    },
}
"""For each model: JSON key -> (NMODL parameters it sets, value check)."""


def _aliases(*receptors: str) -> dict[str, str]:
    out = {}
    for r in receptors:
        for stem in ("AlphaTmax", "Beta", "Cdur", "gbar"):
            out[f"{stem}_{r.lower()}"] = f"{stem}_{r}"
        out[f"Erev_{r.lower()}"] = f"e_{r}"
    return out


LEGACY_ALIASES: dict[str, dict[str, str]] = {
    "pyr2pyr": _aliases("AMPA", "NMDA"),
    "int2pyr": _aliases("GABA"),
}
"""For each model: legacy JSON key -> our key (a :data:`PARAMETER_KEYS` entry)."""

UNMODELLED_KEYS = (
    "Wmax",
    "Wmin",
    "con_pattern",
    "lambda1",
    "lambda2",
    "threshold1",
    "threshold2",
    "aACH",
    "bACH",
    "wACH",
    "aDA",
    "bDA",
    "wDA",
)
"""Legacy long-term plasticity and neuromodulation keys: accepted, not modelled, reported."""

_SPECIAL_KEYS = ("level_of_detail", "comment", "initW_soma", "initW_dend", "weight_distribution")
_DIST_KEYS = ("type", "mean", "sd", "min", "max")


@dataclass(frozen=True)
class Lognormal:
    """Per-synapse weight factor: clip(lognormal with mean ``mean``, sd ``sd``, lo, hi).

    ``mean`` and ``sd`` are those of the variable itself (the legacy parametrisation:
    ``sigma**2 = log(1 + sd**2/mean**2)``, ``mu = log(mean) - sigma**2/2``).
    """

    mean: float
    sd: float
    lo: float
    hi: float

    def draw(self, rng: np.random.Generator, n: int | None = None) -> Any:
        return self.from_normals(rng.standard_normal(n))

    def from_normals(self, z: Any) -> Any:
        """The weights for standard-normal deviates ``z`` (lognormal, then clipped)."""
        sigma2 = math.log1p((self.sd / self.mean) ** 2)
        mu = math.log(self.mean) - 0.5 * sigma2
        return np.clip(np.exp(mu + math.sqrt(sigma2) * np.asarray(z)), self.lo, self.hi)


LEGACY_PYR2PYR_WEIGHT = Lognormal(0.45, 0.345, 0.0, 5.0)
"""The weight factor the legacy pyr2pyr function drew whenever the JSON had ``initW``."""

LEGACY_INT2PYR_WEIGHT = (0.06, 0.1)
"""The legacy int2pyr weight factor: (somatic sections, all other sections)."""


def is_soma(section: Any) -> bool:
    """True for a somatic section: the last name component without index is ``soma``."""
    base = section.name().rsplit(".", 1)[-1].split("[", 1)[0]
    return base == "soma"


@dataclass(frozen=True)
class SynapsePlan:
    """A validated synaptic-model JSON, ready to apply.

    Attributes
    ----------
    model : str
        ``pyr2pyr`` or ``int2pyr``.
    settings : tuple of (str, float)
        NMODL parameter -> value, in order (``pyr2pyr`` always sets ``kinetic``).
    init_w, init_w_soma, init_w_dend : float or None
        Fixed weight factors (None: not given).
    distribution : Lognormal or None
        The per-synapse weight draw, when there is one.
    legacy : bool
        The file is legacy-style (legacy keys or string numbers).
    notes : tuple of str
        What was read differently from the file's face value (see :meth:`warning`).
    """

    model: str
    settings: tuple[tuple[str, float], ...]
    init_w: float | None
    init_w_soma: float | None
    init_w_dend: float | None
    distribution: Lognormal | None
    legacy: bool = False
    notes: tuple[str, ...] = ()

    def weight_for(self, section: Any) -> float | None:
        """The weight factor on ``section`` without a draw (None: keep the mechanism's).

        :data:`PENDING_WEIGHT` when each synapse draws its own.
        """
        if self.distribution is not None:
            return PENDING_WEIGHT
        if is_soma(section):
            if self.init_w_soma is not None:
                return self.init_w_soma
        elif self.init_w_dend is not None:
            return self.init_w_dend
        return self.init_w

    def warning(self, source: str) -> str | None:
        """The one warning for this file (None when nothing needs saying)."""
        if not self.notes:
            return None
        kind = "legacy-style " if self.legacy else ""
        return f"{source}: {kind}{self.model} synapse model: " + "; ".join(self.notes)


# ----------------------------------------------------------------------------- reading
def _as_number(value: Any) -> float | None:
    """A finite float from a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value)
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _number(key: str, value: Any, check: str, problems: list[str]) -> float | None:
    test, valid = _CHECKS[check]
    x = _as_number(value)
    if x is None or not test(x):
        problems.append(f"{key}: {value!r} is not valid; use {valid}")
        return None
    return x


def _unknown_key(key: str, model: str, known: list[str], legacy: list[str] | None = None) -> str:
    lower: dict[str, str] = {}
    for k in [*(legacy or []), *known]:  # our spelling wins where they differ only in case
        lower[k.lower()] = k
    hint = difflib.get_close_matches(key.lower(), list(lower), n=1)
    did_you_mean = f"; did you mean {lower[hint[0]]!r}?" if hint else ""
    return (
        f"{key}: unknown key for synapse model {model!r}{did_you_mean} "
        f"(known keys: {', '.join(known)})"
    )


def _distribution(dist: Any, problems: list[str]) -> Lognormal | None:
    where = "weight_distribution"
    if not isinstance(dist, Mapping):
        problems.append(f"{where}: {dist!r} is not an object with keys {', '.join(_DIST_KEYS)}")
        return None
    n_before = len(problems)
    for key in dist:
        if key not in _DIST_KEYS:
            problems.append(_unknown_key(f"{where}.{key}", "weight_distribution", list(_DIST_KEYS)))
    if dist.get("type") != "lognormal":
        problems.append(f"{where}.type: {dist.get('type')!r} is not valid; use 'lognormal'")
    got: dict[str, float | None] = {}
    for key, check in (("mean", "positive"), ("sd", "nonneg")):
        if key not in dist:
            problems.append(f"{where}.{key}: missing; use {_CHECKS[check][1]}")
        else:
            got[key] = _number(f"{where}.{key}", dist[key], check, problems)
    got["min"] = _number(f"{where}.min", dist.get("min", 0.0), "nonneg", problems)
    hi = dist.get("max", math.inf)
    got["max"] = math.inf if hi == math.inf else _number(f"{where}.max", hi, "nonneg", problems)
    if len(problems) == n_before and got["min"] > got["max"]:
        problems.append(f"{where}.min: {dist.get('min')} is greater than max {dist.get('max')}")
    if len(problems) > n_before:
        return None
    return Lognormal(got["mean"], got["sd"], got["min"], got["max"])


def build_plan(params: Mapping, model: str, source: str | None = None) -> SynapsePlan:
    """Validate a synaptic-model JSON for ``model`` and turn it into a :class:`SynapsePlan`.

    Parameters
    ----------
    params : mapping
        The parsed JSON.
    model : {"pyr2pyr", "int2pyr"}
        The model the edges using it name.
    source : str, optional
        What to call it in the error (e.g. the file's path).

    Raises
    ------
    builder.core.errors.ParamsError
        Listing every problem: unknown keys, bad values, a key given under both its names,
        a ``level_of_detail`` that names another model, rise >= decay, dual-exponential keys
        mixed with kinetic ones, a malformed ``weight_distribution``.
    ValueError
        ``model`` is not one of ours.
    """
    if model not in PARAMETER_KEYS:
        raise ValueError(f"unknown synapse model {model!r}; known: {', '.join(MODELS)}")
    name = source or f"synaptic model JSON for {model!r}"
    if not isinstance(params, Mapping):
        raise ParamsError(name, [f"dynamics_params is {type(params).__name__}, not a JSON object"])
    table, aliases = PARAMETER_KEYS[model], LEGACY_ALIASES[model]
    problems: list[str] = []
    values: dict[str, float] = {}  # our key -> value
    given_as: dict[str, str] = {}  # our key -> the JSON key that gave it
    set_by: dict[str, str] = {}  # NMODL parameter -> the JSON key that sets it
    legacy_keys: list[str] = []  # legacy names of our keys
    strings = False
    delay: Any = None
    unmodelled: list[tuple[str, Any]] = []
    for key, value in params.items():
        if key in ("level_of_detail", "comment", "weight_distribution"):
            continue
        if key in table or key in aliases:
            ours = aliases.get(key, key)
            attrs, check = table[ours]
        elif key in ("initW_soma", "initW_dend"):
            ours, attrs, check = key, (), "nonneg"
        elif key == "delay":
            if _number(key, value, "nonneg", problems) is not None:
                delay = value
                strings |= isinstance(value, str)
            continue
        elif key in UNMODELLED_KEYS:
            unmodelled.append((key, value))
            continue
        else:
            known = sorted(table) + list(_SPECIAL_KEYS)
            legacy_names = [*sorted(aliases), "delay", *UNMODELLED_KEYS]
            problems.append(_unknown_key(key, model, known, legacy_names))
            continue
        if ours != key:
            legacy_keys.append(key)
        clash = sorted({set_by[a] for a in attrs if a in set_by})
        if clash:
            problems.append(
                f"{key}: sets {', '.join(attrs)}, already set by {', '.join(clash)}; "
                "keep one of them"
            )
            continue
        x = _number(key, value, check, problems)
        if x is None:
            continue
        strings |= isinstance(value, str)
        values[ours] = x
        given_as[ours] = key
        for a in attrs:
            set_by[a] = key

    lod = params.get("level_of_detail", model)
    if lod != model:
        problems.append(
            f"level_of_detail: {lod!r} does not match the edge's model_template {model!r}"
        )
    if "comment" in params and not isinstance(params["comment"], str):
        problems.append(f"comment: {params['comment']!r} is not a string")

    kinetic = False
    if model == "pyr2pyr":
        kin = [given_as[k] for r in _KINETIC for k in _KINETIC[r] if k in values]
        dual = [given_as[k] for r in _DUAL_EXP for k in _DUAL_EXP[r] if k in values]
        kinetic = bool(kin)
        if kin and dual:
            problems.append(
                f"{', '.join(dual)}: dual-exponential keys in a file with kinetic-scheme keys "
                f"({', '.join(kin)}); pyr2pyr runs AMPA and NMDA with one receptor model: keep "
                "tau_r_*/tau_d_* or AlphaTmax_*/Beta_*/Cdur_*"
            )
        for rise, decay in _DUAL_EXP.values():
            r, d = values.get(rise), values.get(decay)
            if r is not None and d is not None and r >= d:
                problems.append(
                    f"{given_as[rise]}: {params[given_as[rise]]} must be smaller than "
                    f"{given_as[decay]} ({params[given_as[decay]]})"
                )

    distribution = None
    if "weight_distribution" in params:
        distribution = _distribution(params["weight_distribution"], problems)
        clash = [k for k in ("initW_soma", "initW_dend") if k in params]
        if clash:
            problems.append(
                f"weight_distribution: cannot be combined with {', '.join(clash)}; "
                "use one way of setting the weight"
            )
    if problems:
        raise ParamsError(name, problems)

    legacy = bool(legacy_keys) or strings
    init_w = values.get("initW")
    init_w_soma, init_w_dend = values.get("initW_soma"), values.get("initW_dend")
    notes: list[str] = []
    if legacy and "weight_distribution" not in params:
        if model == "pyr2pyr" and init_w is not None:
            distribution = LEGACY_PYR2PYR_WEIGHT
            d = distribution
            notes.append(
                f"initW {params[given_as['initW']]!r} read as the legacy switch: each synapse's "
                f"weight factor is drawn from a lognormal with mean {d.mean:g} and sd {d.sd:g}, "
                f"clipped to [{d.lo:g}, {d.hi:g}] (give weight_distribution to choose)"
            )
        elif model == "int2pyr" and init_w_soma is None and init_w_dend is None:
            init_w_soma, init_w_dend = LEGACY_INT2PYR_WEIGHT
            unused = (
                f" (its initW {params[given_as['initW']]!r} unused)" if init_w is not None else ""
            )
            notes.append(
                f"legacy weight factor {init_w_soma:g} on somatic sections and {init_w_dend:g} "
                f"on all others{unused} (give initW_soma / initW_dend to choose)"
            )
    gaba = [given_as[k] for k in table if k.endswith("_GABA") and k in values]
    if legacy and gaba:
        notes.append(
            f"{', '.join(gaba)} applied (the legacy int2pyr function left the mechanism's "
            "defaults in place)"
        )
    if delay is not None:
        notes.append(
            f"delay {delay!r} not applied: the simulation uses each edge's delay (the edge "
            "types' delay column, from the build params)"
        )
    if unmodelled:
        listed = ", ".join(f"{k}={v!r}" for k, v in unmodelled)
        notes.append(f"long-term plasticity / neuromodulation not modelled, ignored: {listed}")

    settings = [(a, values[k]) for k, (attrs, _c) in table.items() if k in values for a in attrs]
    settings = [(a, v) for a, v in settings if a != "initW"]
    if model == "pyr2pyr":
        settings.append(("kinetic", 1.0 if kinetic else 0.0))
    return SynapsePlan(
        model,
        tuple(settings),
        init_w,
        init_w_soma,
        init_w_dend,
        distribution,
        legacy,
        tuple(notes),
    )


def check_model_params(syn_params: Mapping, model: str, source: str | None = None) -> None:
    """Validate a synaptic-model JSON for ``model``; raise on any problem.

    Legacy readings and unmodelled keys are reported with one :class:`LegacySynapseWarning`.

    Parameters
    ----------
    syn_params : mapping
        The parsed JSON.
    model : {"pyr2pyr", "int2pyr"}
        The model the edges using it name.
    source : str, optional
        What to call it in the error and the warning (e.g. the file's path).

    Raises
    ------
    builder.core.errors.ParamsError
        See :func:`build_plan`.
    """
    plan = build_plan(syn_params, model, source)
    note = plan.warning(source or "synaptic model JSON")
    if note:
        warnings.warn(note, LegacySynapseWarning, stacklevel=2)


def load_model_file(path: str | os.PathLike) -> tuple[str, SynapsePlan]:
    """Read and validate a synaptic-model JSON file of one of our models (no warning).

    Parameters
    ----------
    path : path
        The JSON file; its ``level_of_detail`` names the model.

    Returns
    -------
    model : str
        The model name.
    plan : SynapsePlan
        The validated file; ``plan.warning(str(path))`` is what to report, if anything.

    Raises
    ------
    builder.core.errors.ParamsError
        The file cannot be read, is not one of our models, or has problems (all listed).
    """
    path = Path(path)
    try:
        params = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ParamsError(str(path), [f"cannot read the synaptic model: {exc}"]) from None
    model = params.get("level_of_detail") if isinstance(params, dict) else None
    if model not in MODELS:
        raise ParamsError(
            str(path), [f"level_of_detail: {model!r} is not valid; use one of {', '.join(MODELS)}"]
        )
    return model, build_plan(params, model, str(path))


def check_model_file(path: str | os.PathLike) -> str:
    """Validate a synaptic-model JSON file; warn once (:class:`LegacySynapseWarning`) if needed.

    Returns the model name; raises :class:`builder.core.errors.ParamsError` as
    :func:`load_model_file`.
    """
    model, plan = load_model_file(path)
    note = plan.warning(str(path))
    if note:
        warnings.warn(note, LegacySynapseWarning, stacklevel=2)
    return model
