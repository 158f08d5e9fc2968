"""Read the SONATA outputs of a run (spikes, membrane reports); put BMTK's reports in the layout.

Plots, ``collect`` and the runner read spikes and reports only through this module.

Membrane reports follow the SONATA report layout, which libsonata's ``ElementReportReader``
opens::

    /report/<population>/data                  float32 [time x element], attrs units, variable
    /report/<population>/mapping/node_ids      uint64 [cell], attr sorted
    /report/<population>/mapping/index_pointers  uint64 [cell + 1]: elements of cell i are
                                               columns index_pointers[i]:index_pointers[i+1]
    /report/<population>/mapping/element_ids   uint32 [element] (section index)
    /report/<population>/mapping/time          float64 [tstart, tstop, dt], attr units "ms"

BMTK writes float64 data and ``index_pointer``; :func:`sonata_report` rewrites such a file in
place (atomically). Reports in BMTK's layout are still read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .errors import RunError

__all__ = ["Report", "read_spikes", "spike_populations", "read_report", "sonata_report"]

_READ_ERRORS = (OSError, KeyError, ValueError, TypeError, IndexError)
_ROWS_PER_CHUNK = 65536


@contextmanager
def _open(path: Path, what: str) -> Iterator[h5py.File]:
    """Open an HDF5 file for reading; any failure becomes a RunError naming the file."""
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise RunError(f"{path}: {what} is missing") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot read {what} (damaged or not HDF5: {exc})") from None
    with f:
        yield f


def spike_populations(path: str | os.PathLike) -> list[str]:
    """Names of the populations of a SONATA spikes file."""
    path = Path(path)
    with _open(path, "the spikes file") as f:
        grp = f.get("spikes")
        if not isinstance(grp, h5py.Group):
            raise RunError(f"{path}: not a SONATA spikes file (no /spikes group)")
        return [k for k, g in grp.items() if isinstance(g, h5py.Group)]


def read_spikes(
    path: str | os.PathLike, population: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Node ids (int64) and times (ms, float64) of one population (all populations if None).

    Raises
    ------
    RunError
        The file is missing, damaged, not SONATA spikes, or lacks ``population``.
    """
    path = Path(path)
    with _open(path, "the spikes file") as f:
        grp = f.get("spikes")
        if not isinstance(grp, h5py.Group):
            raise RunError(f"{path}: not a SONATA spikes file (no /spikes group)")
        names = [population] if population is not None else list(grp)
        ids, ts = [], []
        try:
            for name in names:
                g = grp.get(name)
                if not isinstance(g, h5py.Group) or "timestamps" not in g:
                    if population is None:
                        continue
                    raise RunError(
                        f"{path}: no spikes population {name!r} (has: {', '.join(grp) or 'none'})"
                    )
                i = np.asarray(g["node_ids"][()], dtype=np.int64)
                t = np.asarray(g["timestamps"][()], dtype=np.float64)
                if i.shape != t.shape or i.ndim != 1:
                    raise RunError(
                        f"{path}: /spikes/{name}: node_ids {i.shape} and timestamps {t.shape} "
                        "differ in shape"
                    )
                ids.append(i)
                ts.append(t)
        except _READ_ERRORS as exc:
            raise RunError(f"{path}: cannot read spikes ({exc})") from None
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(ids), np.concatenate(ts)


@dataclass(frozen=True)
class Report:
    """One population of a membrane report: mapping and times; data read on demand."""

    path: Path
    population: str
    node_ids: np.ndarray
    index_pointers: np.ndarray
    element_ids: np.ndarray
    times_ms: np.ndarray
    units: str
    variable: str

    def trace(self, node_id: int | None = None, element: int = 0) -> np.ndarray:
        """One element's samples (float64) of ``node_id`` (default: the first cell)."""
        i = 0 if node_id is None else int(np.flatnonzero(self.node_ids == node_id)[0])
        col = int(self.index_pointers[i]) + element
        with _open(self.path, "the membrane report") as f:
            try:
                return np.asarray(f["report"][self.population]["data"][:, col], dtype=np.float64)
            except _READ_ERRORS as exc:
                raise RunError(f"{self.path}: cannot read the membrane report ({exc})") from None

    def data(self) -> np.ndarray:
        """All samples, [time x element], float64."""
        with _open(self.path, "the membrane report") as f:
            try:
                return np.asarray(f["report"][self.population]["data"][()], dtype=np.float64)
            except _READ_ERRORS as exc:
                raise RunError(f"{self.path}: cannot read the membrane report ({exc})") from None


def _text(value: object, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def read_report(path: str | os.PathLike, population: str | None = None) -> Report:
    """The mapping of a membrane report (SONATA layout, or BMTK's older one).

    Raises
    ------
    RunError
        The file is missing, damaged or not a membrane report.
    """
    path = Path(path)
    with _open(path, "the membrane report") as f:
        try:
            pops = list(f.get("report") or {})
            if not pops:
                raise RunError(f"{path}: not a membrane report (no /report/<population>)")
            name = population if population is not None else pops[0]
            if name not in pops:
                raise RunError(f"{path}: no report population {name!r} (has: {', '.join(pops)})")
            grp = f["report"][name]
            m = grp["mapping"]
            node_ids = np.asarray(m["node_ids"][()], dtype=np.int64)
            ptr_name = "index_pointers" if "index_pointers" in m else "index_pointer"
            ptrs = np.asarray(m[ptr_name][()], dtype=np.int64)
            elements = np.asarray(m["element_ids"][()], dtype=np.int64)
            data = grp["data"]
            if data.ndim != 2 or ptrs.size != node_ids.size + 1 or ptrs[-1] > data.shape[1]:
                raise RunError(
                    f"{path}: /report/{name}: data {data.shape}, {node_ids.size} node ids and "
                    f"{ptrs.size} index pointers do not fit together"
                )
            time = np.asarray(m["time"][()], dtype=np.float64)
            n = data.shape[0]
            if time.size == 3 and n != 3:
                times = time[0] + np.arange(n) * time[2]
            elif time.size == n:
                times = time
            else:
                raise RunError(f"{path}: /report/{name}/mapping/time does not match the data")
            units = _text(data.attrs.get("units"), "mV")
            variable = _text(data.attrs.get("variable"), "")
        except _READ_ERRORS as exc:
            raise RunError(f"{path}: cannot read the membrane report ({exc})") from None
    return Report(path, name, node_ids, ptrs, elements, times, units, variable)


def sonata_report(path: str | os.PathLike, variable: str | None = None) -> None:
    """Rewrite a BMTK membrane report in the SONATA report layout (atomically, in place).

    Raises
    ------
    RunError
        The report cannot be read.
    builder.core.errors.OutputError
        The rewritten file cannot be written (the original is left as it was).
    """
    from .sonata import _h5_create

    path = Path(path)
    with _open(path, "the membrane report") as src:
        pops = list(src.get("report") or {})
        if not pops:
            raise RunError(f"{path}: BMTK wrote a membrane report without populations")
        with _h5_create(path) as dst:
            for name in pops:
                g = src["report"][name]
                m = g["mapping"]
                ptr = m["index_pointers"] if "index_pointers" in m else m["index_pointer"]
                data = g["data"]
                var = _text(data.attrs.get("variable"), variable or "")
                out = dst.create_group(f"report/{name}")
                mo = out.create_group("mapping")
                nodes = mo.create_dataset("node_ids", data=np.asarray(m["node_ids"][()], np.uint64))
                nodes.attrs["sorted"] = np.uint8(bool(np.all(np.diff(nodes[()].astype(float)) > 0)))
                mo.create_dataset("index_pointers", data=np.asarray(ptr[()], np.uint64))
                mo.create_dataset("element_ids", data=np.asarray(m["element_ids"][()], np.uint32))
                t = mo.create_dataset("time", data=np.asarray(m["time"][()], np.float64))
                t.attrs["units"] = "ms"
                d = out.create_dataset("data", shape=data.shape, dtype=np.float32)
                for r0 in range(0, data.shape[0], _ROWS_PER_CHUNK):
                    r1 = min(r0 + _ROWS_PER_CHUNK, data.shape[0])
                    d[r0:r1] = np.asarray(data[r0:r1], dtype=np.float32)
                d.attrs["units"] = _text(data.attrs.get("units"), "mV")
                if var:
                    d.attrs["variable"] = var
