"""Synapse placement on a segment table: functional groups with clusters, and ranged placement.

General building blocks that know nothing about a particular cell or recipe. Every function
takes a :class:`numpy.random.Generator`; segments are referred to by their row in a
:class:`~builder.core.segments.SegmentTable`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import PlacementError

__all__ = [
    "ClusteredGroup",
    "feasible_centres",
    "group_sizes",
    "place_group",
    "place_ranged",
]


def group_sizes(n_cells: int, cells_per_group: int) -> np.ndarray:
    """Split ``n_cells`` into groups of ``cells_per_group``, spreading the remainder.

    ``n_cells // cells_per_group`` groups are made; the remainder cells are dealt one each to
    the first groups, going round again if the remainder exceeds the number of groups (the
    legacy code silently dropped those cells). With fewer cells than ``cells_per_group`` a
    single group holds them all; zero cells give zero groups.

    Examples
    --------
    >>> group_sizes(2008, 100).tolist()[:9]
    [101, 101, 101, 101, 101, 101, 101, 101, 100]
    """
    if n_cells < 0 or cells_per_group < 1:
        raise ValueError("n_cells must be >= 0 and cells_per_group >= 1")
    if n_cells == 0:
        return np.zeros(0, dtype=np.int64)
    n_groups = max(n_cells // cells_per_group, 1)
    base, extra = divmod(n_cells, n_groups)
    sizes = np.full(n_groups, base, dtype=np.int64)
    sizes[:extra] += 1
    return sizes


@dataclass(frozen=True)
class ClusteredGroup:
    """One functional group: its segments, its clusters and every synapse of its cells.

    Attributes
    ----------
    centre : int
        Segment-table row of the group centre.
    members : ndarray of int
        Rows within ``group_radius`` of the centre (sorted).
    cluster_centres : ndarray of int, shape (n_clusters,)
        Rows of the cluster centres (drawn without replacement from ``members``).
    cluster_offsets, cluster_members : ndarray of int
        CSR layout: the rows of cluster ``c`` are
        ``cluster_members[cluster_offsets[c]:cluster_offsets[c + 1]]``.
    syn_cell : ndarray of int
        For each synapse, the index of its input cell within the group (sorted).
    syn_cluster : ndarray of int
        For each synapse, its cluster (distinct within a cell).
    syn_row : ndarray of int
        For each synapse, its segment-table row.
    """

    centre: int
    members: np.ndarray
    cluster_centres: np.ndarray
    cluster_offsets: np.ndarray
    cluster_members: np.ndarray
    syn_cell: np.ndarray
    syn_cluster: np.ndarray
    syn_row: np.ndarray


def _within(
    xyz: np.ndarray, rows: np.ndarray, centre_xyz: np.ndarray, radius_um: float
) -> np.ndarray:
    d2 = np.sum((xyz[rows] - centre_xyz) ** 2, axis=1)
    return rows[d2 <= radius_um * radius_um]


def feasible_centres(
    xyz_um: np.ndarray, eligible: np.ndarray, radius_um: float, min_members: int
) -> np.ndarray:
    """Eligible rows with at least ``min_members`` eligible rows (itself included) within
    ``radius_um``: the segments that can be the centre of a functional group.

    Group centres are drawn from these rather than from all eligible rows, so a centre at the
    tip of an isolated branch is never drawn (the legacy code raised an error mid-build there,
    which made some seeds unusable).
    """
    eligible = np.asarray(eligible, dtype=np.int64)
    pts = xyz_um[eligible]
    counts = np.empty(eligible.size, dtype=np.int64)
    r2 = radius_um * radius_um
    step = 512
    for i in range(0, eligible.size, step):
        d2 = np.sum((pts[i : i + step, None, :] - pts[None, :, :]) ** 2, axis=2)
        counts[i : i + step] = np.count_nonzero(d2 <= r2, axis=1)
    return eligible[counts >= min_members]


def place_group(
    rng: np.random.Generator,
    xyz_um: np.ndarray,
    eligible: np.ndarray,
    n_cells: int,
    n_clusters: int,
    group_radius_um: float,
    cluster_radius_um: float,
    syns_min: int,
    syns_max: int,
    *,
    centres: np.ndarray | None = None,
    n_syns: np.ndarray | None = None,
    label: str = "group",
) -> ClusteredGroup:
    """Draw one functional group and the synapses of its input cells.

    The group centre is drawn uniformly from ``eligible``; the group's segments are the
    eligible segments within ``group_radius_um`` (Euclidean, segment midpoints) of it.
    ``n_clusters`` distinct cluster centres are drawn from those; each cluster holds the group's
    segments within ``cluster_radius_um`` of its centre. Each cell draws its synapse count
    uniformly in ``[syns_min, syns_max]``, picks that many *distinct* clusters and one segment
    uniformly inside each.

    Parameters
    ----------
    rng : numpy.random.Generator
    xyz_um : ndarray, shape (n_segments, 3)
        Segment midpoints of the whole table.
    eligible : ndarray of int
        Rows eligible for this group (non-empty).
    n_cells, n_clusters : int
    group_radius_um, cluster_radius_um : float
    syns_min, syns_max : int
        Inclusive bounds on synapses per input cell; ``syns_max <= n_clusters``.
    centres : ndarray of int, optional
        Rows the centre is drawn from (default ``eligible``); see :func:`feasible_centres`.
    n_syns : ndarray of int, optional
        Synapses of each cell, given instead of drawn (each in ``[syns_min, syns_max]``).
    label : str
        Names the group in error messages.

    Raises
    ------
    PlacementError
        If the group has fewer segments than clusters, or a cell would need more distinct
        clusters than exist.
    """
    eligible = np.asarray(eligible, dtype=np.int64)
    if eligible.size == 0:
        raise PlacementError(f"{label}: no eligible segments to place a functional group on")
    if not 1 <= syns_min <= syns_max:
        raise PlacementError(f"{label}: synapses per cell must satisfy 1 <= min <= max")
    if syns_max > n_clusters:
        raise PlacementError(
            f"{label}: cells may need up to {syns_max} synapses in distinct clusters but a group "
            f"has only {n_clusters} clusters (divergence.exc.max must be <= clusters per group)"
        )
    pool = eligible if centres is None else np.asarray(centres, dtype=np.int64)
    if pool.size == 0:
        raise PlacementError(
            f"{label}: no segment has {n_clusters} eligible segments within group_radius="
            f"{group_radius_um} um, so no functional group of {n_clusters} clusters fits; "
            "increase groups.group_radius or reduce groups.cells_per_group"
        )
    centre = int(pool[rng.integers(pool.size)])
    members = _within(xyz_um, eligible, xyz_um[centre], group_radius_um)
    if members.size < n_clusters:
        raise PlacementError(
            f"{label}: only {members.size} segments lie within group_radius="
            f"{group_radius_um} um of the group centre (segment row {centre}), fewer than the "
            f"{n_clusters} clusters per group; increase groups.group_radius or reduce "
            "groups.cells_per_group"
        )
    cluster_centres = rng.choice(members, size=n_clusters, replace=False)
    # Clusters: group members within cluster_radius of each centre (CSR layout).
    d2 = np.sum((xyz_um[members][None, :, :] - xyz_um[cluster_centres][:, None, :]) ** 2, axis=2)
    inside = d2 <= cluster_radius_um * cluster_radius_um  # (n_clusters, n_members)
    counts = inside.sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    cluster_members = np.broadcast_to(members, inside.shape)[inside].astype(np.int64)

    # Synapses of each cell: n_syns distinct clusters (first n of a random permutation).
    if n_syns is None:
        n_syns = rng.integers(syns_min, syns_max + 1, size=n_cells)
    else:
        n_syns = np.asarray(n_syns, dtype=np.int64)
        if n_syns.shape != (n_cells,) or np.any((n_syns < syns_min) | (n_syns > syns_max)):
            raise PlacementError(
                f"{label}: synapses per cell must be {n_cells} counts in [{syns_min}, {syns_max}]"
            )
    order = np.argsort(rng.random((n_cells, n_clusters)), axis=1, kind="stable")
    take = np.arange(n_clusters)[None, :] < n_syns[:, None]
    syn_cell = np.broadcast_to(np.arange(n_cells)[:, None], take.shape)[take].astype(np.int64)
    syn_cluster = order[take].astype(np.int64)
    pick = np.floor(rng.random(syn_cluster.size) * counts[syn_cluster]).astype(np.int64)
    syn_row = cluster_members[offsets[syn_cluster] + pick]
    return ClusteredGroup(
        centre=centre,
        members=members,
        cluster_centres=cluster_centres.astype(np.int64),
        cluster_offsets=offsets,
        cluster_members=cluster_members,
        syn_cell=syn_cell,
        syn_cluster=syn_cluster,
        syn_row=syn_row,
    )


def place_ranged(
    rng: np.random.Generator,
    eligible: np.ndarray,
    n_syns_per_cell: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    label: str = "population",
) -> tuple[np.ndarray, np.ndarray]:
    """Place each cell's synapses independently on eligible segments.

    Parameters
    ----------
    rng : numpy.random.Generator
    eligible : ndarray of int
        Candidate segment rows (e.g. basal dendrite 50-2000 um from the soma).
    n_syns_per_cell : ndarray of int
    weights : ndarray of float, optional
        Relative probability of each eligible row (e.g. segment length, which makes synapse
        density uniform along the dendrite, as BMTK's own run-time placement does). Uniform
        when omitted.
    label : str
        Names the population in error messages.

    Returns
    -------
    syn_cell, syn_row : ndarray of int
        For each synapse its cell index (sorted) and segment-table row.
    """
    eligible = np.asarray(eligible, dtype=np.int64)
    n_syns_per_cell = np.asarray(n_syns_per_cell, dtype=np.int64)
    total = int(n_syns_per_cell.sum())
    syn_cell = np.repeat(np.arange(n_syns_per_cell.size, dtype=np.int64), n_syns_per_cell)
    if total == 0:
        return syn_cell, np.zeros(0, dtype=np.int64)
    if eligible.size == 0:
        raise PlacementError(f"{label}: no eligible segments for {total} synapses")
    if weights is None:
        idx = rng.integers(eligible.size, size=total)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != eligible.shape or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise PlacementError(f"{label}: placement weights must be finite, >= 0, not all 0")
        cdf = np.cumsum(w)
        idx = np.searchsorted(cdf, rng.random(total) * cdf[-1], side="right")
        idx = np.minimum(idx, eligible.size - 1)
    return syn_cell, eligible[idx]
