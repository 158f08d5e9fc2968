"""Where a cell's points are in the network: its node's rotation and position.

One convention for the whole package (the builder placing synapses by depth, the NEURON
runner moving cells, the extracellular-potential code): a point ``p`` of a morphology, in the
morphology file's own coordinates, goes to

    world = R @ (p - soma) + position,      R = Rx(rotation_angle_xaxis) @ Ry(..yaxis) @ Rz(..zaxis)

with ``soma`` the soma centre in the file's coordinates, ``position`` the node's ``x, y, z``
(micrometres) and each R a counter-clockwise rotation (radians) about a fixed axis. This is the
order BMTK BioNet uses for its segment coordinates, so its reports and ours agree.

Pure numpy: no NEURON here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["rotation_matrix", "rotation_matrices", "to_world", "node_angles"]

_AXES = ("x", "y", "z")


def _axis_matrices(angle: np.ndarray, axis: str) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == "x":
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == "y":
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.moveaxis(np.array(rows, dtype=np.float64), (0, 1), (-2, -1))


def rotation_matrices(angles: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` rotation matrices for ``(n, 3)`` angles (x, y, z axes, radians)."""
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"angles must have shape (n, 3), not {a.shape}")
    rx, ry, rz = (_axis_matrices(a[:, i], ax) for i, ax in enumerate(_AXES))
    return rx @ ry @ rz


def rotation_matrix(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    """The ``(3, 3)`` matrix ``Rx(x) @ Ry(y) @ Rz(z)`` (radians)."""
    return rotation_matrices(np.array([[x, y, z]]))[0]


def to_world(
    points: np.ndarray,
    soma: np.ndarray,
    position: np.ndarray | None = None,
    angles: np.ndarray | None = None,
) -> np.ndarray:
    """World coordinates of a cell's ``(m, 3)`` points (see the module docstring).

    ``position`` and ``angles`` are one node's ``(3,)`` values, or ``(n, 3)`` for n nodes of
    the same morphology, which gives ``(n, m, 3)``.
    """
    p = np.asarray(points, dtype=np.float64) - np.asarray(soma, dtype=np.float64)
    single = position is None or np.ndim(position) == 1
    pos = np.zeros((1, 3)) if position is None else np.atleast_2d(position).astype(np.float64)
    if angles is None:
        out = p[None, :, :] + pos[:, None, :]
    else:
        rot = rotation_matrices(np.atleast_2d(angles))
        out = np.einsum("nij,mj->nmi", rot, p) + pos[:, None, :]
    return out[0] if single else out


def node_angles(columns: Mapping[str, np.ndarray], n: int) -> np.ndarray | None:
    """``(n, 3)`` rotation angles from a node table's ``rotation_angle_[xyz]axis`` columns.

    Missing columns are 0; None when the table has none of them.
    """
    keys = [f"rotation_angle_{ax}axis" for ax in _AXES]
    if not any(k in columns for k in keys):
        return None
    return np.stack(
        [np.asarray(columns[k], dtype=np.float64) if k in columns else np.zeros(n) for k in keys],
        axis=1,
    )
