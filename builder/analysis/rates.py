"""Firing rates of a run per node population and ``pop_name``, and the CSV tables runs write.

``rates.csv`` has one row per population (``pop_name`` = ``*``) and, when a population's nodes
carry more than one ``pop_name``, one row per name: cells, spikes in the recording window
(``[window_start_ms, window_stop_ms)``, after the warm-up) and the mean rate in Hz.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..core.output import atomic_path

__all__ = ["population_rates", "write_rates", "write_table"]


def population_rates(
    spikes: Mapping[str, tuple[np.ndarray, np.ndarray]],
    sizes: Mapping[str, int],
    labels: Mapping[str, np.ndarray | None],
    window_ms: tuple[float, float],
) -> list[dict[str, object]]:
    """One row per population and per ``pop_name`` within it: cells, spikes, rate (Hz)."""
    t0, t1 = window_ms
    span_s = (t1 - t0) / 1000.0
    rows: list[dict[str, object]] = []
    for pop, n in sizes.items():
        ids, ts = spikes.get(pop, (np.zeros(0, np.int64), np.zeros(0)))
        inside = (ts >= t0) & (ts < t1)
        counts = np.bincount(np.asarray(ids)[inside].astype(np.int64), minlength=n)

        def row(
            group: str, sel: np.ndarray, pop: str = pop, counts: np.ndarray = counts
        ) -> dict[str, object]:
            k = int(sel.size)
            s = int(counts[sel].sum())
            return {
                "population": pop,
                "pop_name": group,
                "cells": k,
                "spikes": s,
                "rate_hz": round(s / k / span_s, 6) if k and span_s > 0 else 0.0,
            }

        rows.append(row("*", np.arange(n)))
        lab = labels.get(pop)
        if lab is not None:
            names = np.unique(lab)
            if names.size > 1 or names[0] != pop:
                for name in names.tolist():
                    rows.append(row(str(name), np.flatnonzero(lab == name)))
    for r in rows:
        r["window_start_ms"], r["window_stop_ms"] = t0, t1
    return rows


def write_table(path: Path, rows: list[dict[str, object]]) -> None:
    """A CSV with a header from the first row's keys, written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        if not rows:
            f.write("")
            return
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (_fmt(v)) for k, v in r.items()})


def write_rates(path: Path, rows: list[dict[str, object]]) -> None:
    write_table(path, rows)


def _fmt(v: object) -> object:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return v
