"""The segment table: one row per NEURON segment of a cell, as the simulator discretises it.

This module is pure numpy: it reads and writes the table and answers placement queries. The
table is *derived* from a cell model with NEURON by :mod:`builder.simulators.neuron.celltable` (a
separate, optional layer); a user may also hand in a CSV with the legacy columns.

Columns (CSV header names in brackets):

``bmtk_id`` [BMTK ID]
    Index of the section in the cell's ``all`` SectionList (BMTK's ``sec_id``).
``x`` [X]
    Segment centre along its section, in (0, 1).
``type`` [Type]
    ``soma``, ``dend``, ``apic`` or ``axon``.
``type_index`` [Sec ID]
    Index of the section within its type (``dend[3]`` -> 3).
``distance_um`` [Distance]
    Path distance from soma(0), micrometres.
``xyz_um`` [Coord X, Coord Y, Coord Z]
    Segment midpoint, micrometres.
``length_um`` [Length]
    Segment length, micrometres (optional in user CSVs; NaN when unknown).
``diam_um`` [Diam]
    Segment diameter, micrometres (optional; NaN when unknown). With the length it gives the
    segment's lateral membrane area, ``pi * diam * length``, as NEURON's ``area()`` (for a
    segment whose diameter does not change along it).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ComponentError
from .output import atomic_path

__all__ = ["SegmentTable", "SECTION_TYPES", "PROXIMAL_LIMIT_UM"]

SECTION_TYPES = ("soma", "dend", "apic", "axon")

#: Basal dendrite closer than this to the soma is "proximal" (legacy constant, micrometres).
PROXIMAL_LIMIT_UM = 50.0

_REQUIRED = ["BMTK ID", "X", "Type", "Sec ID", "Distance", "Coord X", "Coord Y", "Coord Z"]
_OPTIONAL = ["Length", "Diam"]


@dataclass(frozen=True, eq=False)
class SegmentTable:
    """Column arrays describing every segment of one cell (see the module docstring)."""

    bmtk_id: np.ndarray
    x: np.ndarray
    type: np.ndarray
    type_index: np.ndarray
    distance_um: np.ndarray
    xyz_um: np.ndarray
    length_um: np.ndarray
    diam_um: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.bmtk_id)
        if self.diam_um is None:
            object.__setattr__(self, "diam_um", np.full(n, np.nan))
        for name in ("x", "type", "type_index", "distance_um", "length_um", "diam_um"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"segment table column {name!r} has the wrong length")
        if self.xyz_um.shape != (n, 3):
            raise ValueError("segment table coordinates must have shape (n, 3)")

    def __len__(self) -> int:
        return len(self.bmtk_id)

    # ------------------------------------------------------------------ queries
    def mask(
        self,
        types: str | tuple[str, ...],
        min_distance_um: float | None = None,
        max_distance_um: float | None = None,
    ) -> np.ndarray:
        """Boolean mask of segments of the given type(s) with ``min <= distance < max``."""
        if isinstance(types, str):
            types = (types,)
        m = np.isin(self.type, types)
        if min_distance_um is not None:
            m &= self.distance_um >= min_distance_um
        if max_distance_um is not None:
            m &= self.distance_um < max_distance_um
        return m

    def rows(self, *args, **kwargs) -> np.ndarray:
        """Row indices (int64) of :meth:`mask`."""
        return np.flatnonzero(self.mask(*args, **kwargs))

    @property
    def has_lengths(self) -> bool:
        return bool(np.all(np.isfinite(self.length_um)))

    @property
    def has_diameters(self) -> bool:
        return bool(np.all(np.isfinite(self.diam_um)))

    def areas_um2(self) -> np.ndarray:
        """Lateral membrane area of every segment, ``pi * diam * length`` (um2).

        Raises :class:`~builder.core.errors.ComponentError` when the table lacks lengths or
        diameters (a user CSV without the ``Length``/``Diam`` columns).
        """
        known = {"Length": self.has_lengths, "Diam": self.has_diameters}
        missing = [name for name, ok in known.items() if not ok]
        if missing:
            raise ComponentError(
                f"the segment table has no {' and no '.join(map(repr, missing))} column (or "
                "values missing in it), so segment membrane areas cannot be computed from it"
            )
        return np.pi * self.diam_um * self.length_um

    def dendritic_lengths(self) -> dict[str, float]:
        """Total length of basal dendrite >= 50 um and < 50 um from the soma, and of apical.

        Keys match the params' ``lengths`` block: ``basal_dist``, ``basal_prox``, ``apic``.
        """
        if not self.has_lengths:
            raise ComponentError(
                "the segment table has no 'Length' column, so dendritic lengths cannot be "
                "computed from it; give 'lengths' in the params"
            )
        basal = self.type == "dend"
        return {
            "basal_dist": float(
                self.length_um[basal & (self.distance_um >= PROXIMAL_LIMIT_UM)].sum()
            ),
            "basal_prox": float(
                self.length_um[basal & (self.distance_um < PROXIMAL_LIMIT_UM)].sum()
            ),
            "apic": float(self.length_um[self.type == "apic"].sum()),
        }

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> SegmentTable:
        """Read a segment table CSV (legacy columns; an unnamed index column is ignored)."""
        path = Path(path)
        try:
            with open(path, newline="") as f:
                reader = csv.reader(f)
                header = next(reader)
                body = list(reader)
        except FileNotFoundError:
            raise ComponentError(f"{path}: segment table not found") from None
        except (OSError, StopIteration, UnicodeDecodeError, csv.Error) as exc:
            raise ComponentError(f"{path}: cannot read segment table ({exc})") from None
        header = [h.strip() for h in header]
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise ComponentError(
                f"{path}: segment table lacks column(s) {', '.join(map(repr, missing))}; "
                f"expected {', '.join(_REQUIRED)}"
            )
        col = {name: header.index(name) for name in _REQUIRED + _OPTIONAL if name in header}
        body = [r for r in body if any(cell.strip() for cell in r)]
        if not body:
            raise ComponentError(f"{path}: segment table has no rows")

        def column(name: str, kind: type) -> np.ndarray:
            j = col[name]
            try:
                values = [r[j].strip() for r in body]
                if kind is str:
                    return np.array(values, dtype="U8")
                return np.array([kind(float(v)) if kind is int else float(v) for v in values])
            except (ValueError, IndexError) as exc:
                raise ComponentError(f"{path}: bad value in column {name!r} ({exc})") from None

        types = column("Type", str)
        bad = sorted(set(types.tolist()) - set(SECTION_TYPES))
        if bad:
            raise ComponentError(
                f"{path}: column 'Type' has unknown value(s) {bad}; valid: {list(SECTION_TYPES)}"
            )
        length = column("Length", float) if "Length" in col else np.full(len(body), np.nan)
        diam = column("Diam", float) if "Diam" in col else np.full(len(body), np.nan)
        return cls(
            bmtk_id=column("BMTK ID", int).astype(np.int64),
            x=column("X", float),
            type=types,
            type_index=column("Sec ID", int).astype(np.int64),
            distance_um=column("Distance", float),
            xyz_um=np.column_stack(
                [column("Coord X", float), column("Coord Y", float), column("Coord Z", float)]
            ),
            length_um=length,
            diam_um=diam,
        )

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the table as CSV (legacy columns plus ``Length``, and ``Diam`` when any
        diameter is known), atomically."""
        path = Path(path)
        with_diam = bool(np.any(np.isfinite(self.diam_um)))
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(_REQUIRED + _OPTIONAL[: 2 if with_diam else 1])
            for i in range(len(self)):
                w.writerow(
                    [
                        int(self.bmtk_id[i]),
                        repr(float(self.x[i])),
                        str(self.type[i]),
                        int(self.type_index[i]),
                        repr(float(self.distance_um[i])),
                        repr(float(self.xyz_um[i, 0])),
                        repr(float(self.xyz_um[i, 1])),
                        repr(float(self.xyz_um[i, 2])),
                        repr(float(self.length_um[i])),
                    ]
                    + ([repr(float(self.diam_um[i]))] if with_diam else [])
                )
