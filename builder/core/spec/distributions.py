"""Random values per item from a spec's number-or-distribution, vectorised.

A value is a plain number (every item gets it) or ``{"distribution": name, ...}``:
``constant`` (value), ``normal`` (mean, sd or rel_sd = sd / |mean|), ``lognormal`` (mean and sd
of the value, or mu and sigma of its log), ``uniform`` (low, high), ``uniform_int`` (low, high,
both included), ``exponential`` (mean) and ``poisson`` (mean). Truncation redraws the offending
items (so the result follows the truncated distribution, as NEST's ``redraw`` does): ``min``,
``max``, and ``keep_sign`` (values must have the sign of the mean; zero is redrawn too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import BuildError

__all__ = ["draw", "is_random"]

_MAX_REDRAW_ROUNDS = 1000


def is_random(value: Any) -> bool:
    """Whether the value is a distribution that is not constant."""
    return isinstance(value, Mapping) and value["distribution"] != "constant"


def _raw(d: Mapping[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    name = d["distribution"]
    if name == "constant":
        return np.full(n, float(d["value"]))
    if name == "normal":
        sd = d["sd"] if "sd" in d else d["rel_sd"] * abs(d["mean"])
        return rng.normal(d["mean"], sd, n)
    if name == "lognormal":
        if "mu" in d:
            mu, sigma = d["mu"], d["sigma"]
        else:
            m, s = float(d["mean"]), float(d["sd"])
            sigma = math.sqrt(math.log1p((s / m) ** 2))
            mu = math.log(m) - sigma**2 / 2
        return rng.lognormal(mu, sigma, n)
    if name == "uniform":
        return rng.uniform(d["low"], d["high"], n)
    if name == "uniform_int":
        return rng.integers(int(math.ceil(d["low"])), int(math.floor(d["high"])) + 1, n).astype(
            np.float64
        )
    if name == "exponential":
        return rng.exponential(d["mean"], n)
    if name == "poisson":
        return rng.poisson(d["mean"], n).astype(np.float64)
    raise ValueError(f"unknown distribution {name!r}")  # pragma: no cover - schema enum


def _bad(d: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    masks = []
    if "min" in d:
        masks.append(x < d["min"])
    if "max" in d:
        masks.append(x > d["max"])
    if d.get("keep_sign"):
        masks.append((x <= 0) if _center(d) >= 0 else (x >= 0))
    if not masks:
        return np.zeros(len(x), dtype=bool)
    bad = masks[0]
    for m in masks[1:]:
        bad |= m
    return bad


def _center(d: Mapping[str, Any]) -> float:
    for k in ("mean", "value"):
        if k in d:
            return float(d[k])
    if "low" in d:
        return (d["low"] + d["high"]) / 2
    return 1.0


def draw(
    value: Any, rng: np.random.Generator, n: int, *, what: str = "value", dtype: Any = np.float64
) -> np.ndarray:
    """``n`` values of ``value`` (a number or a distribution), truncated by redrawing.

    Raises
    ------
    BuildError
        When truncation rejects nearly everything (bounds far in the tail), naming ``what``.
    """
    if not isinstance(value, Mapping):
        return np.full(n, value, dtype=dtype)
    x = _raw(value, rng, n)
    idx = np.flatnonzero(_bad(value, x))
    rounds = 0
    while idx.size:  # redraw the offending items, in order, until none is left
        x[idx] = _raw(value, rng, len(idx))
        idx = idx[_bad(value, x[idx])]
        rounds += 1
        if rounds > _MAX_REDRAW_ROUNDS:
            raise BuildError(
                f"{what}: truncation {dict(value)} rejects almost every draw; widen the bounds"
            )
    return x.astype(dtype, copy=False)
