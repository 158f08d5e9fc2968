"""Build-time check: no electrode of a spec's ``reports.electrodes`` inside a cell's soma.

The extracellular potential of an electrode inside a cell is meaningless (the line-source
formula assumes the electrode in the extracellular medium), and the NEURON runner refuses such
a run before the simulation (:func:`builder.simulators.neuron.ecp.electrode_problems`, on the exact
segment cylinders). The builder finds the same mistake earlier, from what it already has: each
biophysical population's segment table (midpoints, lengths and diameters, derived once per
cell model) and every node's position and rotation (:mod:`builder.core.geometry`).

The table has no segment directions, so each soma segment is represented by the largest ball
that lies inside its cylinder whatever its orientation: centred on the segment's midpoint, of
radius ``min(diam, length) / 2``. An electrode within that ball is certainly inside the soma
(never a false refusal); an electrode inside the cylinder but outside the ball is left to the
runner's exact check. Pure numpy: no NEURON here.
"""

from __future__ import annotations

import numpy as np

from ..geometry import to_world
from ..segments import SegmentTable
from .placement import soma_centre

__all__ = ["SomaHit", "electrodes_in_somata"]

#: Cells compared with the electrodes per pass (bounded memory for large populations).
_CELLS_PER_PASS = 8192


class SomaHit(tuple):
    """``(node, electrode, distance_um, radius_um)``: electrode ``electrode`` lies
    ``distance_um`` from the midpoint of a soma segment of node ``node``, whose inscribed ball
    has radius ``radius_um``."""

    __slots__ = ()

    def __new__(cls, node: int, electrode: int, distance_um: float, radius_um: float):
        return super().__new__(cls, (node, electrode, distance_um, radius_um))

    node = property(lambda self: self[0])
    electrode = property(lambda self: self[1])
    distance_um = property(lambda self: self[2])
    radius_um = property(lambda self: self[3])


def electrodes_in_somata(
    table: SegmentTable,
    positions_um: np.ndarray,
    angles: np.ndarray | None,
    electrodes_um: np.ndarray,
) -> list[SomaHit]:
    """Electrodes inside the soma of any node of one population (see the module docstring).

    ``positions_um`` ``(n, 3)`` and ``angles`` ``(n, 3)`` (radians, or None) are the nodes';
    ``electrodes_um`` is ``(m, 3)``. Returns one hit per (node, electrode), ordered by node,
    then electrode; empty when the table lacks soma diameters or lengths.
    """
    soma = np.flatnonzero(table.type == "soma")
    if soma.size == 0:
        return []
    radius = np.minimum(table.diam_um[soma], table.length_um[soma]) / 2.0
    ok = np.isfinite(radius) & (radius > 0)
    if not ok.any():
        return []
    soma, radius = soma[ok], radius[ok]
    centre = soma_centre(table)
    elec = np.asarray(electrodes_um, dtype=np.float64).reshape(-1, 3)
    pos = np.asarray(positions_um, dtype=np.float64).reshape(-1, 3)
    hits: list[SomaHit] = []
    for lo in range(0, pos.shape[0], _CELLS_PER_PASS):
        hi = min(lo + _CELLS_PER_PASS, pos.shape[0])
        ang = None if angles is None else np.asarray(angles, dtype=np.float64)[lo:hi]
        mids = to_world(table.xyz_um[soma], centre, pos[lo:hi], ang).reshape(hi - lo, -1, 3)
        # (cells, soma segments, electrodes)
        dist = np.linalg.norm(mids[:, :, None, :] - elec[None, None, :, :], axis=3)
        inside = dist < radius[None, :, None]
        for c, s, e in zip(*np.nonzero(inside), strict=True):
            hits.append(SomaHit(lo + int(c), int(e), float(dist[c, s, e]), float(radius[s])))
    seen: set[tuple[int, int]] = set()
    out = []
    for hit in sorted(hits, key=lambda h: (h.node, h.electrode, h.distance_um)):
        if (hit.node, hit.electrode) not in seen:
            seen.add((hit.node, hit.electrode))
            out.append(hit)
    return out
