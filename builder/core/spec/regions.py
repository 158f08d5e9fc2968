"""Regions and soma placement: how many cells, where, and how they are rotated.

Regions (lengths in um): ``box`` (``size_um`` [x, y, z] from ``origin_um``), ``cylinder``
(``radius_um``, ``height_um`` along z, ``origin_um`` the centre of its base), ``disc`` (a
cylinder of height 0 by default) and ``layered`` (a slab ``size_um`` [x, y] whose ``layers`` are
stacked along z from the origin). A density (cells/mm3) gives ``round(density x volume)`` cells,
per layer for per-layer densities. Positions are uniform random or on a regular grid; with
``depth_um`` the z coordinate follows that distribution, truncated to the region (or to the
population's layers). Rotations are per axis: fixed angles, or uniform in [0, 2 pi).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import BuildError
from .distributions import draw

__all__ = ["expected_count", "layer_bounds", "place", "region_volume_mm3"]

_UM3_PER_MM3 = 1e9


def layer_bounds(region: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """``{layer: (z_low, z_high)}`` of a layered region, in um from its origin."""
    z0 = float(region.get("origin_um", [0, 0, 0])[2])
    out, z = {}, z0
    for lay in region.get("layers", []):
        out[lay["name"]] = (z, z + float(lay["thickness_um"]))
        z += float(lay["thickness_um"])
    return out


def _area_um2(region: Mapping[str, Any]) -> float:
    if region["shape"] in ("cylinder", "disc"):
        return math.pi * float(region["radius_um"]) ** 2
    return float(region["size_um"][0]) * float(region["size_um"][1])


def _height_um(region: Mapping[str, Any]) -> float:
    shape = region["shape"]
    if shape == "box":
        return float(region["size_um"][2])
    if shape in ("cylinder", "disc"):
        return float(region.get("height_um", 0.0))
    return sum(float(lay["thickness_um"]) for lay in region["layers"])


def region_volume_mm3(region: Mapping[str, Any], layers: list[str] | None = None) -> float:
    """Volume of the region (or of some of its layers) in mm3."""
    if layers is None:
        return _area_um2(region) * _height_um(region) / _UM3_PER_MM3
    b = layer_bounds(region)
    return _area_um2(region) * sum(b[n][1] - b[n][0] for n in layers) / _UM3_PER_MM3


def _layer_counts(region: Mapping[str, Any], density: Any) -> dict[str | None, int]:
    if isinstance(density, Mapping):
        return {
            lay: int(round(float(d) * region_volume_mm3(region, [lay])))
            for lay, d in density.items()
        }
    return {None: int(round(float(density) * region_volume_mm3(region)))}


def expected_count(region: Mapping[str, Any], density: Any, scale: float = 1.0) -> int:
    """Cells that a density (number or per-layer) gives in a region."""
    if isinstance(density, Mapping):
        density = {k: v * scale for k, v in density.items()}
    else:
        density = density * scale
    return sum(_layer_counts(region, density).values())


def _uniform_xy(region: Mapping[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    o = np.asarray(region.get("origin_um", [0, 0, 0]), dtype=float)
    if region["shape"] in ("cylinder", "disc"):
        r = float(region["radius_um"]) * np.sqrt(rng.random(n))
        phi = 2 * np.pi * rng.random(n)
        return np.column_stack((o[0] + r * np.cos(phi), o[1] + r * np.sin(phi)))
    sx, sy = float(region["size_um"][0]), float(region["size_um"][1])
    return np.column_stack((o[0] + sx * rng.random(n), o[1] + sy * rng.random(n)))


def _grid(region: Mapping[str, Any], n: int, zlo: float, zhi: float) -> np.ndarray:
    """``n`` points of a regular grid filling the region between zlo and zhi (row-major)."""
    if n == 0:
        return np.zeros((0, 3))
    o = np.asarray(region.get("origin_um", [0, 0, 0]), dtype=float)
    circular = region["shape"] in ("cylinder", "disc")
    if circular:
        rad = float(region["radius_um"])
        lo = np.array([o[0] - rad, o[1] - rad, zlo])
        size = np.array([2 * rad, 2 * rad, zhi - zlo])
    else:
        lo = np.array([o[0], o[1], zlo])
        size = np.array([float(region["size_um"][0]), float(region["size_um"][1]), zhi - zlo])
    flat = size <= 0
    dims = np.where(flat, 1.0, size)
    volume = float(np.prod(dims[~flat])) if (~flat).any() else 1.0
    k = int((~flat).sum()) or 1
    spacing = (volume / n) ** (1.0 / k)
    for _ in range(200):
        counts = np.where(flat, 1, np.maximum(1, np.floor(dims / spacing).astype(int)))
        axes = [
            lo[i] + (np.arange(c) + 0.5) * (size[i] / c) if not flat[i] else np.array([lo[i]])
            for i, c in enumerate(counts)
        ]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        if circular:
            d2 = (pts[:, 0] - o[0]) ** 2 + (pts[:, 1] - o[1]) ** 2
            pts = pts[d2 <= rad**2]
        if len(pts) >= n:
            return pts[:n]
        spacing *= 0.97
    raise BuildError(f"cannot lay {n} cells on a grid in a {region['shape']}")  # pragma: no cover


def place(
    pop: Mapping[str, Any], region: Mapping[str, Any] | None, rng: np.random.Generator, n: int
) -> dict[str, np.ndarray]:
    """Per-node placement columns: x, y, z, layer (layered regions) and rotation angles.

    Parameters
    ----------
    pop : mapping
        The population's spec (``density_per_mm3`` or ``count`` + ``layers``, ``positions``,
        ``rotations``).
    region : mapping or None
        Its region (None: no positions, only rotations if asked).
    rng : numpy.random.Generator
        The population's placement stream.
    n : int
        Number of cells.
    """
    cols: dict[str, np.ndarray] = {}
    if region is not None:
        pos = pop.get("positions", {})
        kind = pos.get("kind", "uniform")
        layered = region["shape"] == "layered"
        bounds = layer_bounds(region) if layered else {}
        if isinstance(pop.get("density_per_mm3"), Mapping):
            per_layer = _layer_counts(region, pop["density_per_mm3"])
            labels = np.repeat(np.array(list(per_layer), dtype=object), list(per_layer.values()))
        elif layered:
            names = list(pop.get("layers") or bounds)
            vols = np.array([bounds[lay][1] - bounds[lay][0] for lay in names], dtype=float)
            counts = rng.multinomial(n, vols / vols.sum()) if n else np.zeros(len(names), int)
            labels = np.repeat(np.array(names, dtype=object), counts)
        else:
            labels = np.array([None] * n, dtype=object)
        z0 = float(region.get("origin_um", [0, 0, 0])[2])
        xyz = np.zeros((n, 3))
        for lab in dict.fromkeys(labels.tolist()):
            idx = np.flatnonzero(labels == lab) if lab is not None else np.arange(n)
            zlo, zhi = bounds[lab] if lab is not None else (z0, z0 + _height_um(region))
            if lab is None and layered and pop.get("layers"):
                zlo = min(bounds[lay][0] for lay in pop["layers"])
                zhi = max(bounds[lay][1] for lay in pop["layers"])
            if kind == "grid":
                xyz[idx] = _grid(region, len(idx), zlo, zhi)
                continue
            xyz[idx, :2] = _uniform_xy(region, rng, len(idx))
            if "depth_um" in pos:
                dist = dict(pos["depth_um"])
                dist["min"] = max(dist.get("min", -math.inf), zlo)
                dist["max"] = min(dist.get("max", math.inf), zhi)
                xyz[idx, 2] = draw(dist, rng, len(idx), what="positions.depth_um")
            else:
                xyz[idx, 2] = zlo + (zhi - zlo) * rng.random(len(idx))
        cols["x"], cols["y"], cols["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        if layered:
            cols["layer"] = np.asarray(labels.astype(str), dtype=object)
    for axis in ("x", "y", "z"):
        angle = pop.get("rotations", {}).get(axis)
        if angle is None:
            continue
        if angle == "random":
            cols[f"rotation_angle_{axis}axis"] = 2 * np.pi * rng.random(n)
        else:
            cols[f"rotation_angle_{axis}axis"] = np.full(n, float(angle))
    return cols
