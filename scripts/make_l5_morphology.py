#!/usr/bin/env python
"""Generate the project's default thick-tufted layer-5b pyramidal-cell morphology.

The cell is synthetic and fully deterministic (fixed seed, one :class:`numpy.random.Generator`):
a 3-point soma, ten basal trees, an apical trunk with oblique branches and a tuft at its end
(the main bifurcation), and an axon initial stub. Its free parameters (:class:`Shape`: soma
size, basal, trunk and oblique diameters, the trunk's length, the obliques' number and stretch)
were searched with ``scripts/fit_l5_morphology.py`` so that Hay et al.'s (2011) channels and
densities (the default ``templates/L5PCtemplate.hoc``) fire like Hay's cell
(``scripts/hay_validation.py``: the F-I curve and BAC firing): a 12 um soma radius, a trunk of
4.0 -> 3.0 um that bifurcates at 780 um, in the middle of the 685-885 um Ca hot zone, into two
2 um tuft branches, and 1.1-1.6 um obliques. Branch lengths are
scaled so that the dendritic lengths NEURON measures (path distance from ``soma(0)``) match
the legacy params file: basal >= 50 µm 4649 µm, basal < 50 µm 483 µm, apical 7440 µm.  Every basal
tree branches exactly at 50 µm path distance, so the basal split is the same whether it is
taken continuously along the dendrite or per segment centre.

Two files are written:

* ``biophys_components/morphologies/L5PC.swc`` (SWC types 1 soma, 2 axon, 3 basal, 4 apical);
* the geometry block of ``biophys_components/templates/L5PCtemplate.hoc`` (the default cell,
  on the project's Hay channel NMODL) and of its twin on BMTK's channels,
  ``bmtk_channels/templates/L5PCtemplate.hoc``: each template's
  hand-written biophysics is kept, only the text between the ``BEGIN GENERATED GEOMETRY`` and
  ``END GENERATED GEOMETRY`` markers is replaced by ``pt3dadd`` calls that build exactly the
  sections NEURON's Import3d makes from the SWC (same names, order, points and connections), so
  ``L5PCtemplate()`` needs no file and ``L5PCtemplate("L5PC.swc")`` gives the same cell.

Usage::

    python scripts/make_l5_morphology.py            # (re)write the SWC and both templates
    python scripts/make_l5_morphology.py --check    # exit 1 if the committed files differ
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SEED = 20110523
REPO_ROOT = Path(__file__).resolve().parent.parent
SWC_PATH = REPO_ROOT / "biophys_components" / "morphologies" / "L5PC.swc"
HOC_PATHS = (
    REPO_ROOT / "biophys_components" / "templates" / "L5PCtemplate.hoc",
    REPO_ROOT / "biophys_components" / "bmtk_channels" / "templates" / "L5PCtemplate.hoc",
)
BEGIN_MARK = "// ---- BEGIN GENERATED GEOMETRY"
END_MARK = "// ---- END GENERATED GEOMETRY"

PROX_LIMIT_UM = 50.0  # basal "proximal" boundary, path distance from soma(0)
TARGET_BASAL_PROX_UM = 483.0
TARGET_BASAL_DIST_UM = 4649.0
TARGET_APICAL_UM = 7440.0
STEP_UM = 8.0  # nominal spacing of 3-D points
MIN_DIAM_UM = 0.45
AXON_LENGTH_UM = 40.0
AXON_DIAM_UM = (1.6, 1.2)

_KIND_TYPE = {"axon": 2, "dend": 3, "apic": 4}


@dataclass(frozen=True)
class Shape:
    """The free parameters of the morphology (the dendritic lengths are fixed by the targets).

    Attributes
    ----------
    soma_radius_um : float
        Radius of the 3-point soma (a cylinder as long as it is wide).
    n_basal_trees : int
        Basal trees leaving the soma.
    basal_diam_um : tuple of float
        Range of the basal primaries' starting diameter.
    trunk_length_um : float
        Path length of the apical trunk from the soma surface to the main bifurcation.
    trunk_diam_um : tuple of float
        Trunk diameter at the soma and at the bifurcation (linear taper).
    n_obliques : int
        Oblique branches, their branch points spread over ``oblique_zone_um``.
    oblique_diam_um : tuple of float
        Range of the obliques' starting diameter.
    oblique_zone_um : tuple of float
        Trunk stretch (distance from the soma surface) the obliques leave from.
    tuft_diam_um : float
        Diameter of the two first branches of the tuft.
    """

    soma_radius_um: float = 12.0
    n_basal_trees: int = 10
    basal_diam_um: tuple[float, float] = (1.2, 1.6)
    trunk_length_um: float = 780.0
    trunk_diam_um: tuple[float, float] = (4.0, 3.0)
    n_obliques: int = 24
    oblique_diam_um: tuple[float, float] = (1.1, 1.6)
    oblique_zone_um: tuple[float, float] = (35.0, 520.0)
    tuft_diam_um: float = 2.0


#: the committed cell (found with scripts/fit_l5_morphology.py; the shape before issue 13 was
#: Shape(20.0, 10, (2.1, 2.7), 1000.0, (3.0, 1.2), 12, (1.0, 1.4), (35.0, 520.0), 1.0), the
#: first issue-13 refit Shape(12.0, 10, (1.2, 1.6), 680.0, (3.5, 1.8), 24, (1.2, 1.8),
#: (35.0, 520.0), 1.0): its hot zone lay wholly in thin (1.5 -> 0.45 um) tuft branches, easy to
#: set off but too weak to drive a somatic burst through the thin trunk; the second,
#: Shape(..., oblique_diam_um=(0.8, 1.2), ...), let the lone 1.9 nA 5 ms somatic step set off the
#: hot zone at dt 0.025 ms and converged: its bAP grew into a slow Na wave along the lightly
#: loaded trunk; the 1.1-1.6 um obliques load the trunk enough to stop that, issue 13)
SHAPE = Shape()


@dataclass
class Branch:
    """One unbranched piece of the cell (one NEURON section).

    Attributes
    ----------
    kind : str
        ``"axon"``, ``"dend"`` or ``"apic"``.
    role : str
        What the length scaling treats it as: ``"axon"``, ``"prox"`` (basal below 50 µm),
        ``"basal"`` (basal beyond 50 µm), ``"trunk"``, ``"apic"`` (obliques and tuft).
    parent : int
        Index of the parent branch, -1 for the soma.
    length_um : float
        Unscaled arc length.
    direction : numpy.ndarray
        Unit vector the branch grows along.
    diam_um : tuple of float
        Diameter at the start and at the end.
    jitter : numpy.ndarray
        (n_steps, 3) standard-normal draws that make the path tortuous.
    tortuosity : float
        Scale of the jitter relative to the growth direction.
    children : list of int
        Indices of the child branches, in SWC order.
    """

    kind: str
    role: str
    parent: int
    length_um: float
    direction: np.ndarray
    diam_um: tuple[float, float]
    jitter: np.ndarray
    tortuosity: float
    children: list[int] = field(default_factory=list)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rotate_away(direction: np.ndarray, angle_rad: float, azimuth_rad: float) -> np.ndarray:
    """Return a unit vector at ``angle_rad`` from ``direction``, turned by ``azimuth_rad``."""
    d = _unit(direction)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    e1 = _unit(np.cross(d, helper))
    e2 = np.cross(d, e1)
    side = np.cos(azimuth_rad) * e1 + np.sin(azimuth_rad) * e2
    return _unit(np.cos(angle_rad) * d + np.sin(angle_rad) * side)


class _Tree:
    """Topology and random shape of the cell, before lengths are scaled."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.branches: list[Branch] = []

    def add(
        self,
        kind: str,
        role: str,
        parent: int,
        length_um: float,
        direction: np.ndarray,
        diam_um: tuple[float, float],
        tortuosity: float = 0.25,
    ) -> int:
        n_steps = max(2, int(np.ceil(length_um / STEP_UM)))
        jitter = self.rng.standard_normal((n_steps, 3))
        self.branches.append(
            Branch(kind, role, parent, length_um, _unit(direction), diam_um, jitter, tortuosity)
        )
        index = len(self.branches) - 1
        if parent >= 0:
            self.branches[parent].children.append(index)
        return index


def _taper(d_start_um: float, fraction: float) -> float:
    return max(MIN_DIAM_UM, d_start_um * fraction)


def _grow_basal_subtree(tree: _Tree, parent: int, order: int) -> None:
    """Two daughters at the end of ``parent``; each branches again with falling probability."""
    rng = tree.rng
    par = tree.branches[parent]
    d_child = max(MIN_DIAM_UM, par.diam_um[1] * 0.63)  # Rall's 3/2 rule for two equal daughters
    half_angle = rng.uniform(0.35, 0.6)
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    p_branch = 0.25 if order == 0 else 0.0
    for sign in (1.0, -1.0):
        direction = _rotate_away(par.direction, half_angle, azimuth + (0.0 if sign > 0 else np.pi))
        direction = _unit(direction + np.array([0.0, -0.15, 0.0]))  # basal trees droop a little
        branches = rng.random() < p_branch
        length = rng.uniform(30.0, 50.0) if branches else rng.uniform(100.0, 160.0)
        end_frac = 0.9 if branches else 0.7
        child = tree.add(
            "dend", "basal", parent, length, direction, (d_child, _taper(d_child, end_frac))
        )
        if branches:
            _grow_basal_subtree(tree, child, order + 1)


def _grow_oblique(tree: _Tree, parent: int, trunk_dir: np.ndarray, diam_um: float) -> None:
    rng = tree.rng
    direction = _rotate_away(trunk_dir, rng.uniform(0.9, 1.35), rng.uniform(0.0, 2.0 * np.pi))
    if rng.random() < 0.7:
        first = tree.add(
            "apic",
            "apic",
            parent,
            rng.uniform(40.0, 90.0),
            direction,
            (diam_um, _taper(diam_um, 0.85)),
        )
        _two_terminals(tree, first, (60.0, 140.0), 0.6)
    else:
        tree.add(
            "apic",
            "apic",
            parent,
            rng.uniform(120.0, 220.0),
            direction,
            (diam_um, _taper(diam_um, 0.5)),
        )


def _two_terminals(
    tree: _Tree, parent: int, length_range: tuple[float, float], end_frac: float
) -> list[int]:
    rng = tree.rng
    par = tree.branches[parent]
    d_child = max(MIN_DIAM_UM, par.diam_um[1] * 0.63)
    half_angle = rng.uniform(0.3, 0.55)
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    return [
        tree.add(
            "apic",
            "apic",
            parent,
            rng.uniform(*length_range),
            _rotate_away(par.direction, half_angle, azimuth + off),
            (d_child, _taper(d_child, end_frac)),
        )
        for off in (0.0, np.pi)
    ]


def _grow_tuft(tree: _Tree, parent: int, order: int, tuft_diam_um: float) -> None:
    rng = tree.rng
    par = tree.branches[parent]
    if order == 0:
        d_child, half_angle = tuft_diam_um, rng.uniform(0.45, 0.6)
    else:
        d_child, half_angle = max(MIN_DIAM_UM, par.diam_um[1] * 0.7), rng.uniform(0.3, 0.5)
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    p_branch = (1.0, 0.9, 0.6, 0.25, 0.0)[min(order, 4)]
    for off in (0.0, np.pi):
        direction = _rotate_away(par.direction, half_angle, azimuth + off)
        direction = _unit(direction + np.array([0.0, 0.35, 0.0]))  # the tuft spreads upwards
        branches = rng.random() < p_branch
        length = rng.uniform(40.0, 90.0) if branches else rng.uniform(90.0, 200.0)
        child = tree.add(
            "apic",
            "apic",
            parent,
            length,
            direction,
            (d_child, _taper(d_child, 0.85 if branches else 0.55)),
        )
        if branches:
            _grow_tuft(tree, child, order + 1, tuft_diam_um)


def build_tree(rng: np.random.Generator, shape: Shape = SHAPE) -> _Tree:
    """Draw the cell's topology, unscaled lengths, directions, diameters and tortuosity.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    shape : Shape
        The free parameters.

    Returns
    -------
    _Tree
        Branches in SWC order (depth first: axon, basal trees, apical tree).
    """
    tree = _Tree(rng)
    tree.add("axon", "axon", -1, AXON_LENGTH_UM, np.array([0.0, -1.0, 0.0]), AXON_DIAM_UM, 0.1)

    # Basal trees: a primary that bifurcates, daughters that end exactly at 50 µm and branch.
    n_trees = shape.n_basal_trees
    azimuths = (np.arange(n_trees) + rng.uniform(-0.3, 0.3, n_trees)) * 2.0 * np.pi / n_trees
    elevations = rng.uniform(np.radians(-60.0), np.radians(15.0), n_trees)
    weights = rng.uniform(0.75, 1.25, n_trees)
    reach_um = PROX_LIMIT_UM - shape.soma_radius_um  # soma(0) -> soma(0.5) -> dendrite start
    # Each tree contributes primary + 2 * (reach - primary) below 50 µm.
    primary_um = weights / weights.sum() * (2 * reach_um * n_trees - TARGET_BASAL_PROX_UM)
    if not ((primary_um > 0) & (primary_um < reach_um)).all():
        raise SystemExit(
            f"{n_trees} basal trees cannot hold {TARGET_BASAL_PROX_UM} um within "
            f"{PROX_LIMIT_UM} um of soma(0) with a {shape.soma_radius_um} um soma radius"
        )
    d_primary = rng.uniform(*shape.basal_diam_um, n_trees)
    for az, el, p_um, d0 in zip(azimuths, elevations, primary_um, d_primary, strict=True):
        direction = np.array([np.cos(el) * np.cos(az), np.sin(el), np.cos(el) * np.sin(az)])
        primary = tree.add("dend", "prox", -1, float(p_um), direction, (float(d0), d0 * 0.85))
        d1 = float(d0 * 0.85 * 0.63)
        half_angle = rng.uniform(0.35, 0.6)
        azimuth = rng.uniform(0.0, 2.0 * np.pi)
        for off in (0.0, np.pi):
            first = tree.add(
                "dend",
                "prox",
                primary,
                reach_um - float(p_um),
                _rotate_away(direction, half_angle, azimuth + off),
                (d1, d1 * 0.95),
            )
            _grow_basal_subtree(tree, first, 0)

    # Apical trunk, split into pieces at the oblique branch points, then the tuft.
    gaps = rng.uniform(0.5, 1.5, shape.n_obliques)
    zone = shape.oblique_zone_um
    oblique_at = zone[0] + (zone[1] - zone[0]) * (np.cumsum(gaps) - gaps[0]) / (
        gaps.sum() - gaps[0]
    )
    trunk_um = shape.trunk_length_um
    if not 0 < zone[0] < zone[1] < trunk_um:
        raise SystemExit(f"oblique zone {zone} um must lie inside the {trunk_um} um trunk")
    cuts = np.concatenate([[0.0], np.unique(np.round(oblique_at, 1)), [trunk_um]])
    trunk_dir = np.array([0.0, 1.0, 0.0])
    parent = -1
    for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
        t0, t1 = shape.trunk_diam_um
        d0, d1 = (t0 + (t1 - t0) * s / trunk_um for s in (start, stop))
        piece = tree.add(
            "apic", "trunk", parent, float(stop - start), trunk_dir, (float(d0), float(d1)), 0.12
        )
        if stop < trunk_um:
            _grow_oblique(tree, piece, trunk_dir, float(rng.uniform(*shape.oblique_diam_um)))
        parent = piece
    _grow_tuft(tree, parent, 0, shape.tuft_diam_um)
    return tree


@dataclass
class Geometry:
    """The cell's 3-D points as SWC and hoc will write them (rounded), one entry per branch."""

    points: list[np.ndarray]  # (n, 3) own points of each branch (without the parent's point)
    radii: list[np.ndarray]  # (n,) radius at each own point
    lengths_um: np.ndarray  # NEURON's L of each branch (parent point prepended when not soma)
    start_dist_um: np.ndarray  # path distance from soma(0) to the branch start


def embed(tree: _Tree, scale: dict[str, float], soma_radius_um: float) -> Geometry:
    """Lay the branches out in space with the given length scale per role.

    Parameters
    ----------
    tree : _Tree
        Output of :func:`build_tree`.
    scale : dict
        Length factor per branch role (missing roles keep their length).
    soma_radius_um : float
        Where the soma's children start.

    Returns
    -------
    Geometry
    """
    n = len(tree.branches)
    points: list[np.ndarray] = [np.empty((0, 3))] * n
    radii: list[np.ndarray] = [np.empty(0)] * n
    lengths = np.zeros(n)
    start_dist = np.zeros(n)
    for i, b in enumerate(tree.branches):  # parents come before children
        length = b.length_um * scale.get(b.role, 1.0)
        n_steps = len(b.jitter)
        dirs = _unit(b.direction + b.tortuosity * b.jitter)
        steps = dirs * (length / n_steps)
        if b.parent < 0:
            start = soma_radius_um * b.direction
            own = start + np.vstack([np.zeros(3), np.cumsum(steps, axis=0)])
            arc = np.linspace(0.0, 1.0, n_steps + 1)
        else:
            start = points[b.parent][-1]
            own = start + np.cumsum(steps, axis=0)
            arc = np.linspace(0.0, 1.0, n_steps + 1)[1:]
        own = np.round(own, 3)
        rad = np.round(0.5 * (b.diam_um[0] + (b.diam_um[1] - b.diam_um[0]) * arc), 4)
        points[i], radii[i] = own, rad
        full = own if b.parent < 0 else np.vstack([points[b.parent][-1], own])
        full32 = full.astype(np.float32).astype(np.float64)  # NEURON stores 3-D points as float
        lengths[i] = np.sum(np.linalg.norm(np.diff(full32, axis=0), axis=1))
        start_dist[i] = soma_radius_um if b.parent < 0 else start_dist[b.parent] + lengths[b.parent]
    return Geometry(points, radii, lengths, start_dist)


def measure(tree: _Tree, geom: Geometry) -> dict[str, float]:
    """Dendritic lengths as the project's segment table will measure them.

    Segments follow ``nseg = 1 + 2 * int(L / 10)``; a basal segment counts as distal when its
    centre lies at >= 50 µm path distance from ``soma(0)``.

    Returns
    -------
    dict
        ``basal_dist``, ``basal_prox``, ``apic``, ``trunk`` (µm) and ``max_apic_dist``.
    """
    out = {"basal_dist": 0.0, "basal_prox": 0.0, "apic": 0.0, "trunk": 0.0, "max_apic_dist": 0.0}
    for b, length, d0 in zip(tree.branches, geom.lengths_um, geom.start_dist_um, strict=True):
        nseg = 1 + 2 * int(length / 10.0)
        centres = d0 + (np.arange(nseg) + 0.5) * length / nseg
        if b.kind == "dend":
            distal = centres >= PROX_LIMIT_UM
            out["basal_dist"] += length / nseg * distal.sum()
            out["basal_prox"] += length / nseg * (~distal).sum()
        elif b.kind == "apic":
            out["apic"] += length
            out["max_apic_dist"] = max(out["max_apic_dist"], d0 + length)
            if b.role == "trunk":
                out["trunk"] += length
    return out


def make_geometry(
    seed: int = SEED, shape: Shape = SHAPE
) -> tuple[_Tree, Geometry, dict[str, float]]:
    """Draw the cell and scale basal-distal and apical (non-trunk) lengths onto the targets."""
    tree = build_tree(np.random.default_rng(seed), shape)
    r_um = shape.soma_radius_um
    scale = {"basal": 1.0, "apic": 1.0}
    for _ in range(3):  # linear in the scale factors; iterate only to absorb rounding
        m = measure(tree, embed(tree, scale, r_um))
        trunk = m["trunk"]
        scale["basal"] *= TARGET_BASAL_DIST_UM / m["basal_dist"]
        scale["apic"] *= (TARGET_APICAL_UM - trunk) / (m["apic"] - trunk)
    geom = embed(tree, scale, r_um)
    return tree, geom, measure(tree, geom)


def _names(tree: _Tree) -> list[str]:
    counts = {"axon": 0, "dend": 0, "apic": 0}
    names = []
    for b in tree.branches:
        names.append(f"{b.kind}[{counts[b.kind]}]")
        counts[b.kind] += 1
    return names


def swc_text(
    tree: _Tree, geom: Geometry, totals: dict[str, float], seed: int, shape: Shape = SHAPE
) -> str:
    """The SWC file: 3-point soma (NeuroMorpho convention), then each branch depth first."""
    r_um = shape.soma_radius_um
    lines = [
        "# L5PC.swc: synthetic thick-tufted layer-5b pyramidal cell "
        "(soma, basal, apical, axon stub)",
        f"# generated by scripts/make_l5_morphology.py (seed {seed}); do not edit by hand",
        f"# dendritic length (um, path distance from soma(0)): basal >= 50: "
        f"{totals['basal_dist']:.1f}, basal < 50: {totals['basal_prox']:.1f}, "
        f"apical: {totals['apic']:.1f} (trunk {totals['trunk']:.1f})",
        "# id type x y z radius parent",
        f"1 1 0.000 0.000 0.000 {r_um:.4f} -1",
        f"2 1 0.000 {-r_um:.3f} 0.000 {r_um:.4f} 1",
        f"3 1 0.000 {r_um:.3f} 0.000 {r_um:.4f} 1",
    ]
    last_id = np.zeros(len(tree.branches), dtype=int)
    next_id = 4
    order = _depth_first(tree)
    for i in order:
        b = tree.branches[i]
        parent_id = 1 if b.parent < 0 else last_id[b.parent]
        for p, r in zip(geom.points[i], geom.radii[i], strict=True):
            lines.append(
                f"{next_id} {_KIND_TYPE[b.kind]} {p[0]:.3f} {p[1]:.3f} {p[2]:.3f} "
                f"{r:.4f} {parent_id}"
            )
            parent_id = next_id
            next_id += 1
        last_id[i] = parent_id
    return "\n".join(lines) + "\n"


def _depth_first(tree: _Tree) -> list[int]:
    order: list[int] = []
    stack = [i for i, b in enumerate(tree.branches) if b.parent < 0][::-1]
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(tree.branches[i].children[::-1])
    return order


def hoc_block(
    tree: _Tree, geom: Geometry, totals: dict[str, float], seed: int, shape: Shape = SHAPE
) -> str:
    """Geometry block of the template: section arrays, 3-D points and connections.

    Sections are numbered per type in SWC (depth-first) order, which is how Import3d numbers
    them; children of the soma hang from ``soma(0.5)`` without a soma point, other sections
    start with their parent's last point, as Import3d builds them.
    """
    order = _depth_first(tree)
    assert order == list(range(len(tree.branches))), "branches must be stored depth first"
    names = _names(tree)
    counts = {k: sum(b.kind == k for b in tree.branches) for k in ("dend", "apic", "axon")}
    r = shape.soma_radius_um
    d = 2.0 * r
    out = [
        BEGIN_MARK + f" (scripts/make_l5_morphology.py, seed {seed}; do not edit by hand)",
        f"// basal >= 50 um {totals['basal_dist']:.1f}, basal < 50 um {totals['basal_prox']:.1f},"
        f" apical {totals['apic']:.1f} um (trunk {totals['trunk']:.1f} um)",
        f"create soma[1], dend[{counts['dend']}], apic[{counts['apic']}], axon[{counts['axon']}]",
        "",
        "proc geometry() { local i",
        f"    soma[0] {{ pt3dclear() p({-r:.3f}, 0, 0, {d:.4f}) p(0, 0, 0, {d:.4f}) "
        f"p({r:.3f}, 0, 0, {d:.4f}) }}",
    ]
    for i, b in enumerate(tree.branches):
        pts, rad = geom.points[i], geom.radii[i]
        if b.parent >= 0:
            pts = np.vstack([geom.points[b.parent][-1], pts])
            rad = np.concatenate([[geom.radii[b.parent][-1]], rad])
        calls = [
            f"p({x:.3f}, {y:.3f}, {z:.3f}, {2 * rr:.4f})"
            for (x, y, z), rr in zip(pts, rad, strict=True)
        ]
        out.append(f"    {names[i]} {{ pt3dclear()")
        out.extend("        " + " ".join(calls[k : k + 3]) for k in range(0, len(calls), 3))
        out.append("    }")
    for i, b in enumerate(tree.branches):
        parent = "soma[0](0.5)" if b.parent < 0 else f"{names[b.parent]}(1)"
        out.append(f"    connect {names[i]}(0), {parent}")
    out.append("    soma[0] { somatic.append() }")
    for kind, lst in (("dend", "basal"), ("apic", "apical"), ("axon", "axonal")):
        out.append(f"    for i = 0, {counts[kind] - 1} {kind}[i] {{ {lst}.append() }}")
    out.append("}")
    out.append(END_MARK)
    return "\n".join(out) + "\n"


def render_template(current: str, block: str, path: Path) -> str:
    """Replace the generated block of the template text ``current`` (of ``path``) by
    ``block``."""
    try:
        head, rest = current.split(BEGIN_MARK, 1)
        _, tail = rest.split(END_MARK, 1)
    except ValueError as exc:
        raise SystemExit(f"{path}: geometry markers not found") from exc
    return head + block + tail.split("\n", 1)[1]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the committed files are not up to date",
    )
    args = parser.parse_args(argv)

    tree, geom, totals = make_geometry(SEED)
    swc = swc_text(tree, geom, totals, SEED)
    block = hoc_block(tree, geom, totals, SEED)
    outputs = {SWC_PATH: swc}
    for path in HOC_PATHS:
        outputs[path] = render_template(path.read_text(), block, path)
    summary = (
        f"basal>=50 {totals['basal_dist']:.1f} um, basal<50 {totals['basal_prox']:.1f} um, "
        f"apical {totals['apic']:.1f} um (trunk {totals['trunk']:.1f} um), "
        f"{len(tree.branches)} sections + soma"
    )
    if args.check:
        stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        for p in stale:
            print(f"out of date: {p.relative_to(REPO_ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    for p, text in outputs.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(p)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
