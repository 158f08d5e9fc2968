"""Connection rules and distributions of the spec layer: their statistics, with tolerances
derived from the distributions (fixed seeds), and their invariants (no autapses or multapses
when off, exact degrees)."""

from __future__ import annotations

import numpy as np
import pytest

from builder.core.spec.distributions import draw
from builder.core.spec.rules import Projection, distance_p


def _proj(rule, n_src=300, n_trg=200, same=False, pos=None, seed=7, name="p"):
    src = np.arange(n_src, dtype=np.int64)
    trg = np.arange(n_trg, dtype=np.int64)
    self_src = None
    if same and not rule.get("autapses", True):
        self_src = np.where(trg < n_src, trg, -1)
    sp, tp = (None, None) if pos is None else pos
    return Projection(name, src, trg, rule, self_src, sp, tp).seeded(seed)


def _edges(proj):
    s_all, t_all = [], []
    for b in range(len(proj.blocks())):
        s, t, _ = proj.generate(b)
        # sorted by target, then source, within and across blocks
        key = t * proj.n_src + s
        assert np.all(np.diff(key) >= 0)
        s_all.append(s)
        t_all.append(t)
    s, t = np.concatenate(s_all), np.concatenate(t_all)
    assert np.all(np.diff(t * proj.n_src + s) >= 0)
    return s, t


def _binomial_ok(k, n, p, z=4.5):
    return abs(k - n * p) <= z * np.sqrt(n * p * (1 - p)) + 1


def test_pairwise_bernoulli_count_is_binomial_and_simple():
    p = 0.08
    proj = _proj({"name": "pairwise_bernoulli", "p": p, "autapses": False}, 300, 300, same=True)
    s, t = _edges(proj)
    pairs = 300 * 299
    assert _binomial_ok(len(s), pairs, p)
    assert proj.exact_total() == len(s)
    assert not np.any(s == t)
    assert len(np.unique(t * 300 + s)) == len(s)  # never a pair twice
    # per-target counts are Binomial(299, p): their variance too
    counts = np.bincount(t, minlength=300)
    var = 299 * p * (1 - p)
    assert abs(counts.var() - var) < 0.35 * var


def test_fixed_indegree_exact_without_multapses_or_autapses():
    proj = _proj(
        {"name": "fixed_indegree", "indegree": 40, "autapses": False, "multapses": False},
        120,
        120,
        same=True,
    )
    s, t = _edges(proj)
    assert np.all(np.bincount(t, minlength=120) == 40)
    assert not np.any(s == t)
    assert len(np.unique(t * 120 + s)) == len(s)


def test_fixed_indegree_dense_rows_still_exact():
    proj = _proj({"name": "fixed_indegree", "indegree": 50, "multapses": False}, 55, 30)
    s, t = _edges(proj)
    assert np.all(np.bincount(t, minlength=30) == 50)
    assert len(np.unique(t * 55 + s)) == len(s)


def test_fixed_indegree_with_multapses_is_uniform():
    n_src, k = 50, 200
    proj = _proj({"name": "fixed_indegree", "indegree": k}, n_src, 100)
    s, t = _edges(proj)
    assert np.all(np.bincount(t) == k)
    counts = np.bincount(s, minlength=n_src)
    expected = len(s) / n_src
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < n_src - 1 + 5 * np.sqrt(2 * (n_src - 1))  # chi-square, 49 dof
    assert len(np.unique(t * n_src + s)) < len(s)  # multapses happen at this density


def test_fixed_outdegree_exact():
    proj = _proj(
        {"name": "fixed_outdegree", "outdegree": 25, "autapses": False, "multapses": False},
        150,
        150,
        same=True,
    )
    s, t = _edges(proj)
    assert np.all(np.bincount(s, minlength=150) == 25)
    assert not np.any(s == t)
    assert len(np.unique(t * 150 + s)) == len(s)


def test_fixed_total_number_exact_and_spread():
    n = 20_000
    proj = _proj({"name": "fixed_total_number", "n": n, "autapses": False}, 400, 400, same=True)
    s, t = _edges(proj)
    assert len(s) == n and not np.any(s == t)
    # targets are multinomial over the 400 cells: chi-square test
    counts = np.bincount(t, minlength=400)
    exp = n / 400
    chi2 = ((counts - exp) ** 2 / exp).sum()
    assert chi2 < 399 + 5 * np.sqrt(2 * 399)


def test_fixed_total_number_without_multapses():
    proj = _proj({"name": "fixed_total_number", "n": 5000, "multapses": False}, 80, 80)
    s, t = _edges(proj)
    assert len(s) == 5000 and len(np.unique(t * 80 + s)) == 5000


def test_all_to_all_and_one_to_one():
    s, t = _edges(_proj({"name": "all_to_all", "autapses": False}, 30, 30, same=True))
    assert len(s) == 30 * 29 and not np.any(s == t)
    s, t = _edges(_proj({"name": "one_to_one"}, 40, 40))
    assert np.array_equal(s, t) and len(s) == 40


def test_distance_dependent_p_follows_the_profile():
    rng = np.random.default_rng(3)
    n = 600
    pos_s = rng.uniform(0, 400, (n, 3))
    pos_t = rng.uniform(0, 400, (n, 3))
    prof = {"profile": "gaussian", "p0": 0.6, "sigma_um": 80.0}
    proj = _proj({"name": "pairwise_bernoulli", "p": prof}, n, n, pos=(pos_s, pos_t))
    s, t = _edges(proj)
    hit = np.zeros((n, n), dtype=bool)
    hit[t, s] = True
    d = np.linalg.norm(pos_t[:, None, :] - pos_s[None, :, :], axis=-1)
    edges = np.arange(0, 400, 40.0)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (d >= lo) & (d < hi)
        if sel.sum() < 500:
            continue
        p_mean = distance_p(prof, pos_s[None, :, :], pos_t[:, None, :])[sel].mean()
        assert _binomial_ok(hit[sel].sum(), sel.sum(), p_mean), (lo, hi)


def test_separable_gaussian_cuts_at_the_extent():
    a = np.zeros((1, 3))
    b = np.array([[419.0, 0, 0], [421.0, 0, 0], [0, 249.0, 0], [0, 251.0, 0], [0, 0, 900.0]])
    p = distance_p({"profile": "separable_gaussian", "p0": 1.0, "extent_um": [840.0, 500.0]}, a, b)
    assert p[1] == 0 and p[3] == 0 and p[0] > 0 and p[2] > 0
    assert p[4] == 1.0  # depth does not count: in-sheet distances only
    np.testing.assert_allclose(p[0], np.exp(-(419.0**2) / (2 * 280.0**2)))


def test_blocks_do_not_depend_on_anything_but_rule_and_sizes():
    r = {"name": "fixed_total_number", "n": 100_000}
    a, b = _proj(r, 5000, 5000, seed=1), _proj(r, 5000, 5000, seed=2)
    assert a.blocks() == b.blocks() and len(a.blocks()) >= 1


@pytest.mark.parametrize(
    "dist,check",
    [
        (
            {"distribution": "normal", "mean": -351.2, "rel_sd": 0.5, "keep_sign": True},
            lambda x: np.all(x < 0),
        ),
        ({"distribution": "normal", "mean": 1.5, "sd": 0.75, "min": 0.1}, lambda x: x.min() >= 0.1),
        (
            {"distribution": "uniform_int", "low": 2, "high": 5},
            lambda x: set(np.unique(x)) == {2, 3, 4, 5},
        ),
    ],
)
def test_truncated_distributions(dist, check):
    x = draw(dist, np.random.default_rng(0), 50_000)
    assert check(x)


def test_lognormal_by_mean_and_sd():
    x = draw(
        {"distribution": "lognormal", "mean": 2.0, "sd": 0.5}, np.random.default_rng(1), 200_000
    )
    assert abs(x.mean() - 2.0) < 4 * 0.5 / np.sqrt(len(x))
    assert abs(x.std() - 0.5) < 0.01


def test_normal_truncation_matches_the_truncated_mean():
    # mean of N(0, 1) truncated to x > 0 is sqrt(2 / pi)
    x = draw(
        {"distribution": "normal", "mean": 0.0, "sd": 1.0, "min": 0.0},
        np.random.default_rng(2),
        200_000,
    )
    assert abs(x.mean() - np.sqrt(2 / np.pi)) < 4 * 0.6 / np.sqrt(len(x))


def test_inhomogeneous_poisson_follows_the_profile(tmp_path):
    from builder.core.spec.inputs import SpikeTrains

    spec = {
        "type": "spikes",
        "population": "S",
        "train": {
            "kind": "inhomogeneous_poisson",
            "profile": {"times_ms": [100.0, 200.0, 300.0], "rates_hz": [5.0, 40.0, 10.0]},
        },
    }
    n = 2000
    tr = SpikeTrains("stim", spec, n, 500.0, 9, tmp_path)
    ids, ts = (np.concatenate(x) for x in zip(*tr.blocks(), strict=True))
    assert len(ids) == tr.total() and np.all(np.diff(ids) >= 0)
    assert ts.min() >= 100.0 and ts.max() < 500.0  # rate 0 before the profile starts
    for lo, hi, rate in ((100, 200, 5.0), (200, 300, 40.0), (300, 500, 10.0)):
        k = np.count_nonzero((ts >= lo) & (ts < hi))
        lam = n * rate * (hi - lo) / 1000.0
        assert abs(k - lam) < 4.5 * np.sqrt(lam), (lo, hi)
