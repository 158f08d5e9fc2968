"""Outputs of a NEST run: membrane reports in the SONATA layout, ``rates.csv``, the
transfer-function table.

Reports use the same layout as the NEURON runner's (:mod:`builder.sonata_read`), one element
per cell: ``/report/<pop>/data`` float32 [time x cell], ``mapping/node_ids``,
``mapping/index_pointers``, ``mapping/element_ids`` (0) and ``mapping/time``
[tstart, tstop, dt].
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..sonata import _atomic_target, _h5_create

__all__ = ["write_report", "write_rates", "population_rates", "write_table"]


def write_report(
    path: Path,
    populations: Mapping[str, tuple[np.ndarray, np.ndarray]],
    times_ms: np.ndarray,
    variable: str,
    units: str,
) -> None:
    """Write a membrane report: per population (node ids, data [time x cell]), atomically."""
    times_ms = np.asarray(times_ms, dtype=np.float64)
    dt = float(times_ms[1] - times_ms[0]) if times_ms.size > 1 else 0.0
    t0 = float(times_ms[0]) if times_ms.size else 0.0
    with _h5_create(path) as h5:
        for name, (ids, data) in populations.items():
            g = h5.create_group(f"report/{name}")
            m = g.create_group("mapping")
            ids = np.asarray(ids, dtype=np.uint64)
            nodes = m.create_dataset("node_ids", data=ids)
            nodes.attrs["sorted"] = np.uint8(bool(np.all(np.diff(ids.astype(float)) > 0)))
            m.create_dataset("index_pointers", data=np.arange(ids.size + 1, dtype=np.uint64))
            m.create_dataset("element_ids", data=np.zeros(ids.size, dtype=np.uint32))
            t = m.create_dataset(
                "time", data=np.asarray([t0, t0 + dt * times_ms.size, dt], np.float64)
            )
            t.attrs["units"] = "ms"
            d = g.create_dataset("data", data=np.asarray(data, dtype=np.float32))
            d.attrs["units"] = units
            d.attrs["variable"] = variable


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
    with _atomic_target(path) as tmp, open(tmp, "w", newline="") as f:
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
