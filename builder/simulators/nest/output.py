"""Membrane reports of a NEST run in the SONATA layout (``rates.csv`` and other tables:
:mod:`builder.analysis.rates`).

Reports use the same layout as the NEURON runner's (:mod:`builder.core.sonata_read`), one element
per cell: ``/report/<pop>/data`` float32 [time x cell], ``mapping/node_ids``,
``mapping/index_pointers``, ``mapping/element_ids`` (0) and ``mapping/time``
[tstart, tstop, dt].
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ...core.sonata import _h5_create

__all__ = ["write_report"]


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
