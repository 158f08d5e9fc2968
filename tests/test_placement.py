"""Placement building blocks: group sizes, clustered groups, ranged placement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.core.errors import PlacementError
from builder.core.placement import (
    feasible_centres,
    group_sizes,
    place_group,
    place_ranged,
)
from builder.recipes.l5 import clipped_normal_counts


@pytest.mark.parametrize(
    "n,per,expected",
    [
        (2008, 100, [101] * 8 + [100] * 12),
        (3214, 100, [101] * 14 + [100] * 18),
        (250, 100, [125, 125]),  # remainder 50 > ... spread, none dropped
        (399, 100, [133, 133, 133]),  # legacy dropped 96 cells here
        (40, 100, [40]),
        (0, 100, []),
    ],
)
def test_group_sizes(n, per, expected):
    assert group_sizes(n, per).tolist() == expected


@given(st.integers(0, 20000), st.integers(1, 500))
def test_group_sizes_never_drop_cells(n, per):
    sizes = group_sizes(n, per)
    assert sizes.sum() == n
    if n:
        assert sizes.size == max(n // per, 1)
        assert sizes.max() - sizes.min() <= 1


def _line_cell(n=400, spacing=2.0, seed=0):
    """Segments along a jittered 3-D line (a dendrite-like point cloud)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * spacing
    xyz = np.column_stack([t, np.sin(t / 40) * 30, rng.normal(0, 1, n)])
    return xyz


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_cells=st.integers(1, 150),
    n_clusters=st.integers(8, 25),
    cluster_radius=st.floats(2.0, 20.0),
    smin=st.integers(1, 4),
    extra=st.integers(0, 4),
)
def test_group_invariants(seed, n_cells, n_clusters, cluster_radius, smin, extra):
    xyz = _line_cell()
    eligible = np.arange(50, 400)
    smax = min(smin + extra, n_clusters)
    g = place_group(
        np.random.default_rng(seed),
        xyz,
        eligible,
        n_cells,
        n_clusters,
        group_radius_um=100.0,
        cluster_radius_um=cluster_radius,
        syns_min=smin,
        syns_max=smax,
    )
    # group members: eligible and within the group radius of the centre
    assert np.isin(g.members, eligible).all()
    assert np.all(np.linalg.norm(xyz[g.members] - xyz[g.centre], axis=1) <= 100.0)
    # distinct cluster centres, drawn from the members
    assert len(set(g.cluster_centres.tolist())) == n_clusters
    assert np.isin(g.cluster_centres, g.members).all()
    # every synapse: eligible segment, in the group, within cluster radius of its cluster centre
    assert np.isin(g.syn_row, eligible).all()
    assert np.isin(g.syn_row, g.members).all()
    d = np.linalg.norm(xyz[g.syn_row] - xyz[g.cluster_centres[g.syn_cluster]], axis=1)
    assert np.all(d <= cluster_radius + 1e-9)
    # per cell: count within bounds, distinct clusters
    counts = np.bincount(g.syn_cell, minlength=n_cells)
    assert counts.min() >= smin and counts.max() <= smax
    for c in range(n_cells):
        cl = g.syn_cluster[g.syn_cell == c]
        assert len(set(cl.tolist())) == cl.size


def test_group_synapse_counts_are_uniform():
    xyz = _line_cell()
    g = place_group(np.random.default_rng(1), xyz, np.arange(400), 20000, 23, 100.0, 10.0, 2, 8)
    counts = np.bincount(g.syn_cell)
    freq = np.bincount(counts, minlength=9)[2:9] / counts.size
    # each of 7 values has p = 1/7; 5-sigma binomial bound
    sigma = np.sqrt((1 / 7) * (6 / 7) / counts.size)
    assert np.all(np.abs(freq - 1 / 7) < 5 * sigma)


def test_group_too_few_segments():
    xyz = _line_cell()
    with pytest.raises(PlacementError, match="fewer than the 23 clusters"):
        place_group(
            np.random.default_rng(0),
            xyz,
            np.arange(400),
            10,
            23,
            5.0,
            2.0,
            2,
            8,
            label="functional group dend0",
        )


def test_group_more_synapses_than_clusters():
    with pytest.raises(PlacementError, match="distinct clusters"):
        place_group(np.random.default_rng(0), _line_cell(), np.arange(400), 10, 5, 100, 10, 2, 8)


def test_ranged_weights_follow_lengths():
    eligible = np.array([3, 7, 9, 11])
    w = np.array([1.0, 0.0, 3.0, 0.0])
    cell, row = place_ranged(np.random.default_rng(2), eligible, np.full(4000, 5), w)
    assert cell.size == 20000 and np.all(np.diff(cell) >= 0)
    assert set(row.tolist()) == {3, 9}  # zero-weight segments never chosen
    p = np.mean(row == 9)
    assert abs(p - 0.75) < 5 * np.sqrt(0.75 * 0.25 / row.size)


def test_ranged_uniform_and_empty():
    cell, row = place_ranged(np.random.default_rng(3), np.arange(10), np.array([0, 0]))
    assert cell.size == 0 and row.size == 0
    with pytest.raises(PlacementError, match="no eligible segments"):
        place_ranged(np.random.default_rng(3), np.array([], dtype=int), np.array([1]))


def test_clipped_normal_counts_legacy_rule():
    n = clipped_normal_counts(np.random.default_rng(4), 100000, 12, 3, 6, 18)
    assert n.min() >= 6 and n.max() <= 18
    ref = np.clip(np.random.default_rng(4).normal(12, 3, 100000), 6, 18).astype(int)
    assert np.array_equal(n, ref)


def test_feasible_centres_exclude_isolated_tips():
    # a dense line plus one isolated point far away
    xyz = np.vstack([_line_cell(200), [[5000.0, 0.0, 0.0]]])
    eligible = np.arange(201)
    ok = feasible_centres(xyz, eligible, 100.0, 23)
    assert 200 not in ok.tolist()
    brute = [
        r for r in eligible if np.sum(np.linalg.norm(xyz[eligible] - xyz[r], axis=1) <= 100) >= 23
    ]
    assert ok.tolist() == brute
    # every group drawn from the feasible centres has enough members
    for seed in range(30):
        g = place_group(
            np.random.default_rng(seed), xyz, eligible, 50, 23, 100.0, 10.0, 2, 8, centres=ok
        )
        assert g.members.size >= 23
    with pytest.raises(PlacementError, match="no segment has 23 eligible segments"):
        place_group(
            np.random.default_rng(0), xyz, eligible, 5, 23, 100.0, 10.0, 2, 8, centres=ok[:0]
        )
