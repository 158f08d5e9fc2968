"""Cells where the nodes file puts them: 3-D points in world coordinates, and segment geometry.

BMTK BioNet leaves every cell's ``pt3d`` points in the morphology's own coordinates and only
computes moved copies for its own modules. We move the points themselves (NEURON's
``pt3dchange``), with the one convention of :mod:`builder.core.geometry`
(``world = Rx Ry Rz (p - soma) + position``, ``soma`` the mean of the soma's 3-D points, as
BMTK takes it), so that every section coordinate NEURON reports is a world coordinate:
extracellular potentials, plots and any other code read positions straight from the cells.
Rotations and translations keep lengths and diameters, so the electrical model is unchanged.

:func:`segment_geometry` gives a cell's segments as line pieces (start, end, diameter) in the
order BMTK numbers segments (sections of ``all`` in order, segments along each).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.geometry import rotation_matrix

__all__ = ["soma_centre", "move_cell", "place_cells", "segment_geometry"]


def _hobj(cell: Any) -> Any:
    return getattr(cell, "hobj", cell)


def _sections(hobj: Any) -> list[Any]:
    return list(hobj.all)


def _soma_sections(hobj: Any) -> list[Any]:
    soma = hobj.soma
    return [soma] if not hasattr(soma, "__len__") else list(soma)


def _points(sec: Any) -> np.ndarray:
    n = int(sec.n3d())
    return np.array(
        [[sec.x3d(i), sec.y3d(i), sec.z3d(i)] for i in range(n)], dtype=np.float64
    ).reshape(n, 3)


def soma_centre(cell: Any) -> np.ndarray:
    """The mean of the soma sections' 3-D points (BMTK's soma position)."""
    pts = [_points(sec) for sec in _soma_sections(_hobj(cell))]
    pts = [p for p in pts if len(p)]
    if not pts:
        return np.zeros(3)
    return np.concatenate(pts).mean(axis=0)


def move_cell(cell: Any, position: np.ndarray, angles: np.ndarray | None) -> None:
    """Move a cell's 3-D points to ``R (p - soma) + position`` (``angles``: x, y, z in rad).

    A cell without 3-D points gets NEURON's default shape first (``define_shape``).
    """
    from neuron import h

    hobj = _hobj(cell)
    secs = _sections(hobj)
    if any(int(sec.n3d()) == 0 for sec in secs):
        h.define_shape()
    soma = soma_centre(hobj)
    rot = rotation_matrix(*(angles if angles is not None else (0.0, 0.0, 0.0)))
    pos = np.asarray(position, dtype=np.float64)
    for sec in secs:
        p = _points(sec)
        if not len(p):
            continue
        world = (p - soma) @ rot.T + pos
        for i, (x, y, z) in enumerate(world.tolist()):
            sec.pt3dchange(i, x, y, z, sec.diam3d(i))


def _node_placement(node: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(position, angles) of a BMTK node; None where its table has no such columns."""
    pos = None
    if all(k in node for k in ("x", "y", "z")):
        pos = np.array([float(node["x"]), float(node["y"]), float(node["z"])])
    keys = ("rotation_angle_xaxis", "rotation_angle_yaxis", "rotation_angle_zaxis")
    angles = None
    if any(k in node for k in keys):
        angles = np.array([float(node[k]) if k in node else 0.0 for k in keys])
    return pos, angles


def place_cells(graph: Any) -> int:
    """Move every local biophysical cell of a BMTK network to its node's position and rotation.

    Cells whose node has neither positions nor rotations stay as they are. Returns the number
    of cells moved.
    """
    moved = 0
    for cell in graph.get_local_cells().values():
        if not hasattr(cell, "hobj") or not hasattr(cell.hobj, "all"):
            continue
        node = cell._node
        pos, angles = _node_placement(node)
        if pos is None and angles is None:
            continue
        if pos is None:
            pos = soma_centre(cell)
        move_cell(cell, pos, angles)
        moved += 1
    return moved


def segment_geometry(cell: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every segment of a cell as a line piece: ``(p0, p1, diam)`` in world coordinates (um).

    ``p0``, ``p1`` are ``(n_seg, 3)`` start and end points, ``diam`` the segment diameters
    (``seg.diam``), segments in BMTK's order (sections of ``all``, then along each section).
    Start and end points are found along the section's 3-D points by arc length, at
    ``i / nseg`` and ``(i + 1) / nseg`` of the section.
    """
    p0s, p1s, diams = [], [], []
    for sec in _sections(_hobj(cell)):
        pts = _points(sec)
        nseg = int(sec.nseg)
        edges = np.linspace(0.0, 1.0, nseg + 1)
        if len(pts) >= 2:
            arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
            s = arc / arc[-1] if arc[-1] > 0 else np.linspace(0.0, 1.0, len(pts))
            at = np.column_stack([np.interp(edges, s, pts[:, k]) for k in range(3)])
        elif len(pts) == 1:
            at = np.repeat(pts, nseg + 1, axis=0)
        else:
            at = np.zeros((nseg + 1, 3))
        p0s.append(at[:-1])
        p1s.append(at[1:])
        diams.append([seg.diam for seg in sec])
    if not p0s:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(p0s), np.concatenate(p1s), np.concatenate(diams).astype(np.float64)
