"""Spike trains of virtual populations, generated in blocks of cells and written as they come.

Kinds of train (times in ms, from ``start_ms`` to ``stop_ms``, default the run's duration):

* ``poisson`` -- homogeneous, one rate per cell (a number, or a distribution drawn per cell);
* ``inhomogeneous_poisson`` -- a piecewise-constant rate profile shared by the cells;
* ``l5_pink_levy`` -- the L5 recipe's excitatory rasters: a Levy-stable log-rate per cell
  (:func:`builder.core.rasters.exc_rates_hz`) times a 1/f noise profile shared by groups of
  ``group_size`` cells (:func:`builder.core.rasters.pink_noise`), in 1 ms bins
  (:func:`builder.core.rasters.poisson_bins`);
* ``file`` -- spikes the user gives: a SONATA spikes file or a CSV of ``node_id,timestamp_ms``.

For the Poisson kinds the number of spikes of every cell is drawn first (stream
``(seed, "spikes", input, "counts")``), so the file's size is known before any time is drawn;
the times of each block of :data:`CELL_BLOCK` cells come from ``(seed, "spikes", input, block)``.
Peak memory is one block's spikes.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import rasters
from ..errors import BuildError
from ..lazy import LazyModule
from ..rng import stream
from .distributions import draw

if TYPE_CHECKING:
    import h5py
else:  # only to read a spike file the user gives
    h5py = LazyModule("h5py")

__all__ = ["CELL_BLOCK", "SpikeTrains"]

#: Cells per logical block of spike generation.
CELL_BLOCK = 256


class SpikeTrains:
    """The trains of one ``spikes`` input for a population of ``n`` cells."""

    def __init__(
        self,
        name: str,
        spec: Mapping[str, Any],
        n: int,
        duration_ms: float,
        seed: int,
        base_dir: Path,
    ):
        self.name, self.n, self.seed = name, int(n), int(seed)
        self.train = spec["train"]
        self.start = float(spec.get("start_ms", 0.0))
        self.stop = float(spec.get("stop_ms", duration_ms))
        self.base_dir = base_dir
        self.kind = self.train["kind"]
        self._counts: np.ndarray | None = None
        self._whole: tuple[np.ndarray, np.ndarray] | None = None

    # ----------------------------------------------------------------- totals
    def _profile(self) -> tuple[np.ndarray, np.ndarray]:
        """Edges (ms) and rates (Hz) of the piecewise-constant profile within [start, stop)."""
        if self.kind == "poisson":
            return np.array([self.start, self.stop]), np.array([1.0])
        prof = self.train["profile"]
        t = np.asarray(prof["times_ms"], dtype=float)
        r = np.asarray(prof["rates_hz"], dtype=float)
        edges = np.r_[np.clip(t, self.start, self.stop), self.stop]
        if t[0] > self.start:
            edges = np.r_[self.start, edges]
            r = np.r_[0.0, r]
        return edges, r

    def rates_hz(self) -> np.ndarray:
        rng = stream(self.seed, "spikes", self.name, "rates")
        return draw(self.train["rate_hz"], rng, self.n, what=f"inputs.{self.name}.train.rate_hz")

    def counts(self) -> np.ndarray:
        """Spikes per cell."""
        if self._counts is None:
            if self.kind in ("poisson", "inhomogeneous_poisson"):
                edges, r = self._profile()
                mass_s = float(np.sum(np.diff(edges) * r)) / 1000.0
                lam = (
                    self.rates_hz() * mass_s if self.kind == "poisson" else np.full(self.n, mass_s)
                )
                if np.any(lam < 0):
                    raise BuildError(f"inputs.{self.name}.train.rate_hz: negative rate drawn")
                rng = stream(self.seed, "spikes", self.name, "counts")
                self._counts = rng.poisson(lam).astype(np.int64)
            else:
                ids, _ = self._all()
                self._counts = np.bincount(ids, minlength=self.n).astype(np.int64)
        return self._counts

    def total(self) -> int:
        return int(self.counts().sum())

    def expected_total(self) -> float:
        """Expected number of spikes (for --check, without drawing)."""
        if self.kind == "file":
            return float(len(self._all()[0]))
        edges, r = self._profile()
        if self.kind == "l5_pink_levy":
            return self.n * 5.0 * (self.stop - self.start) / 1000.0  # rough: ~5 Hz
        mass_s = float(np.sum(np.diff(edges) * r)) / 1000.0
        rate = self.train.get("rate_hz", 1.0)
        mean = rate if not isinstance(rate, Mapping) else _dist_mean(rate)
        return self.n * mass_s * (mean if self.kind == "poisson" else 1.0)

    # ----------------------------------------------------------------- blocks
    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(node ids, times) block by block, sorted by node id then time."""
        if self.kind not in ("poisson", "inhomogeneous_poisson"):
            yield self._all()
            return
        counts = self.counts()
        edges, r = self._profile()
        cum = np.r_[0.0, np.cumsum(np.diff(edges) * r)]
        for b, a in enumerate(range(0, self.n, CELL_BLOCK)):
            z = min(self.n, a + CELL_BLOCK)
            c = counts[a:z]
            k = int(c.sum())
            rng = stream(self.seed, "spikes", self.name, b)
            ids = np.repeat(np.arange(a, z, dtype=np.int64), c)
            u = rng.random(k) * cum[-1]
            seg = np.clip(np.searchsorted(cum, u, side="right") - 1, 0, len(r) - 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(r[seg] > 0, (u - cum[seg]) / np.where(r[seg] > 0, r[seg], 1), 0)
            times = edges[seg] + frac
            order = np.lexsort((times, ids))
            yield ids[order], times[order]

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        if self._whole is None:
            self._whole = self._file() if self.kind == "file" else self._pink_levy()
        return self._whole

    def _pink_levy(self) -> tuple[np.ndarray, np.ndarray]:
        n_bins = int(round(self.stop - self.start))
        group = int(self.train.get("group_size", 100))
        rates = rasters.exc_rates_hz(stream(self.seed, "spikes", self.name, "rates"), self.n)
        ids_all, t_all = [], []
        for g, a in enumerate(range(0, self.n, group)):
            z = min(self.n, a + group)
            rng = stream(self.seed, "spikes", self.name, g)
            profile = rasters.pink_noise(rng, n_bins, 1)[0]
            cell, k = rasters.poisson_bins(rng, rates[a:z], profile, 1.0)
            ids_all.append(np.asarray(cell, dtype=np.int64) + a)
            t_all.append(self.start + np.asarray(k, dtype=float))
        ids = np.concatenate(ids_all) if ids_all else np.zeros(0, np.int64)
        ts = np.concatenate(t_all) if t_all else np.zeros(0)
        order = np.lexsort((ts, ids))
        return ids[order], ts[order]

    def _file(self) -> tuple[np.ndarray, np.ndarray]:
        p = Path(self.train["path"]).expanduser()
        path = p if p.is_absolute() else self.base_dir / p
        where = f"inputs.{self.name}.train.path ({path})"
        try:
            if path.suffix.lower() in (".h5", ".hdf5", ".sonata"):
                with h5py.File(path, "r") as h5:
                    spikes = h5.get("spikes")
                    if spikes is None or not len(spikes):
                        raise BuildError(f"{where}: no /spikes group")
                    pop = self.train.get("spikes_population") or next(iter(spikes))
                    if pop not in spikes:
                        raise BuildError(f"{where}: no population {pop!r}; has {list(spikes)}")
                    ids = np.asarray(spikes[pop]["node_ids"][()], dtype=np.int64)
                    ts = np.asarray(spikes[pop]["timestamps"][()], dtype=np.float64)
            else:
                with open(path, newline="") as fh:
                    rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
                if rows and not _is_number(rows[0][0]):
                    rows = rows[1:]
                arr = np.array([[float(r[0]), float(r[1])] for r in rows]).reshape(-1, 2)
                ids, ts = arr[:, 0].astype(np.int64), arr[:, 1]
        except (OSError, KeyError, ValueError, IndexError) as exc:
            raise BuildError(f"{where}: cannot read spikes: {exc}") from None
        if len(ids) and (ids.min() < 0 or ids.max() >= self.n):
            raise BuildError(f"{where}: node id {int(ids.max())} out of range for {self.n} cells")
        if not np.all(np.isfinite(ts)):
            raise BuildError(f"{where}: non-finite spike times")
        order = np.lexsort((ts, ids))
        return ids[order], ts[order]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _dist_mean(d: Mapping[str, Any]) -> float:
    from .model import mean_of

    return mean_of(d)
