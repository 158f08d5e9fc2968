"""Connection rules, generated target block by target block with vectorised numpy.

A :class:`Projection` holds the selected source and target cells (indices into their
populations), their positions and the rule. Its targets are cut into fixed logical blocks whose
size depends only on the rule and the population sizes (never on an I/O chunk size), and each
block draws from its own stream ``(seed, "edges", projection, block)``; what has to be decided
across blocks (how a fixed total or each source's out-degree splits over the blocks) comes from
the stream ``(seed, "edges", projection, "split")``. So the same seed gives the same edges
whatever the chunking, and changing one projection leaves every other projection's edges alone.

Within a block the edges come sorted by target, then source. Rules (NEST's names and meaning):
``all_to_all``, ``one_to_one``, ``pairwise_bernoulli`` (constant p: per-target counts are
binomial and the sources a uniform subset, so the cost is proportional to the edges; p a
function of distance: evaluated on every pair of the block), ``fixed_indegree``,
``fixed_outdegree`` and ``fixed_total_number``; ``autapses`` (a cell onto itself) and
``multapses`` (a pair more than once) switch on and off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BuildError
from ..rng import stream

__all__ = ["Projection", "distance_p"]

#: Edges a block is sized for (expected), and pairs for rules that look at every pair.
EDGE_BUDGET = 1 << 21
PAIR_BUDGET = 1 << 22


@dataclass
class Projection:
    """One connection of a spec, resolved to cells.

    Attributes
    ----------
    name : str
        The connection's name (its stream key and edge population name).
    src, trg : (n,) int64 arrays
        Node ids (within their populations) of the selected sources and targets, ascending.
    rule : dict
        The spec's rule (scaled).
    self_src : (n_trg,) int64 array or None
        For autapse exclusion: per target, the index into ``src`` of the same cell, -1 when
        it is not a source (None when autapses are allowed or the populations differ).
    src_pos, trg_pos : (n, 3) arrays or None
        Soma positions of the selected cells.
    """

    name: str
    src: np.ndarray
    trg: np.ndarray
    rule: dict[str, Any]
    self_src: np.ndarray | None = None
    src_pos: np.ndarray | None = None
    trg_pos: np.ndarray | None = None
    _split: dict[str, Any] = field(default_factory=dict)

    @property
    def n_src(self) -> int:
        return len(self.src)

    @property
    def n_trg(self) -> int:
        return len(self.trg)

    @property
    def multapses(self) -> bool:
        return bool(self.rule.get("multapses", True))

    # -------------------------------------------------------------- blocks
    def block_size(self) -> int:
        """Targets per logical block (from the rule and sizes only)."""
        name = self.rule["name"]
        if name == "pairwise_bernoulli" and isinstance(self.rule["p"], Mapping):
            return max(1, PAIR_BUDGET // max(1, self.n_src))
        per_target = max(1.0, self.expected_edges() / max(1, self.n_trg))
        if name == "fixed_outdegree":  # per block: a sources x block matrix of counts
            per_target = max(per_target, self.n_src / 64)
        return int(min(1 << 16, max(1, EDGE_BUDGET // per_target)))

    def blocks(self) -> list[tuple[int, int]]:
        """``[(start, stop), ...]`` of target indices, one per logical block."""
        bs = self.block_size()
        return [(a, min(self.n_trg, a + bs)) for a in range(0, self.n_trg, bs)]

    def _eligible(self, lo: int, hi: int) -> np.ndarray:
        """Eligible sources of each target in [lo, hi)."""
        n = np.full(hi - lo, self.n_src, dtype=np.int64)
        if self.self_src is not None:
            n -= self.self_src[lo:hi] >= 0
        return n

    # -------------------------------------------------------------- counts
    def exact_total(self) -> int | None:
        """The number of edges when it is known before drawing (None: pairwise_bernoulli)."""
        name = self.rule["name"]
        if name == "fixed_total_number":
            return int(self.rule["n"])
        if name == "fixed_indegree":
            return int(self.rule["indegree"]) * self.n_trg
        if name == "fixed_outdegree":
            return int(self.rule["outdegree"]) * self.n_src
        if name == "all_to_all":
            return int(self._eligible(0, self.n_trg).sum())
        if name == "one_to_one":
            same = 0 if self.self_src is None else int(np.count_nonzero(self.self_src >= 0))
            return self.n_trg - same
        if name == "pairwise_bernoulli" and not isinstance(self.rule["p"], Mapping):
            return int(self._bernoulli_counts().sum())
        return None

    def expected_edges(self) -> float:
        """Expected number of edges (exact when known; distance rules: a sampled estimate)."""
        name = self.rule["name"]
        if name == "pairwise_bernoulli":
            p = self.rule["p"]
            pairs = float(self._eligible(0, self.n_trg).sum())
            if not isinstance(p, Mapping):
                return pairs * float(p)
            return pairs * self._mean_p_estimate()
        return float(self.exact_total() or 0)

    def _mean_p_estimate(self, n: int = 200_000) -> float:
        if self.n_src == 0 or self.n_trg == 0:
            return 0.0
        rng = np.random.Generator(np.random.PCG64(12345))
        s = rng.integers(0, self.n_src, n)
        t = rng.integers(0, self.n_trg, n)
        assert self.src_pos is not None and self.trg_pos is not None  # validated: regions
        return float(distance_p(self.rule["p"], self.src_pos[s], self.trg_pos[t]).mean())

    def _bernoulli_counts(self) -> np.ndarray:
        """Per-target edge counts of a constant-p rule (drawn once, from the split stream)."""
        if "bernoulli" not in self._split:
            rng = stream(self._seed, "edges", self.name, "split")
            self._split["bernoulli"] = rng.binomial(
                self._eligible(0, self.n_trg), float(self.rule["p"])
            ).astype(np.int64)
        return self._split["bernoulli"]

    _seed: int = 0

    def seeded(self, seed: int) -> Projection:
        """Bind the build's seed (the split draws depend on it)."""
        self._seed = int(seed)
        self._split = {}
        return self

    # -------------------------------------------------------------- generation
    def generate(self, b: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
        """Edges of block ``b``: (source index, target index) into ``src``/``trg``, sorted by
        (target, source), and the block's generator (continue drawing attributes from it)."""
        lo, hi = self.blocks()[b]
        rng = stream(self._seed, "edges", self.name, b)
        name = self.rule["name"]
        multi = self.multapses
        excl = None if self.self_src is None else self.self_src[lo:hi]
        if name == "all_to_all":
            t = np.repeat(np.arange(lo, hi, dtype=np.int64), self.n_src)
            s = np.tile(np.arange(self.n_src, dtype=np.int64), hi - lo)
            if excl is not None:
                keep = s != np.repeat(excl, self.n_src)
                s, t = s[keep], t[keep]
            return s, t, rng
        if name == "one_to_one":
            t = np.arange(lo, hi, dtype=np.int64)
            s = t.copy()
            if excl is not None:
                keep = excl != s
                s, t = s[keep], t[keep]
            return s, t, rng
        if name == "pairwise_bernoulli":
            p = self.rule["p"]
            if isinstance(p, Mapping):
                assert self.src_pos is not None and self.trg_pos is not None
                pm = distance_p(p, self.src_pos[None, :, :], self.trg_pos[lo:hi, None, :])
                hit = rng.random(pm.shape) < pm
                if excl is not None:
                    rows = np.flatnonzero(excl >= 0)
                    hit[rows, excl[rows]] = False
                tt, ss = np.nonzero(hit)
                return ss.astype(np.int64), tt.astype(np.int64) + lo, rng
            counts = self._bernoulli_counts()[lo:hi]
            return self._rows(rng, lo, counts, excl, unique=True)
        if name == "fixed_indegree":
            counts = np.full(hi - lo, int(self.rule["indegree"]), dtype=np.int64)
            return self._rows(rng, lo, counts, excl, unique=not multi)
        if name == "fixed_total_number":
            k = int(self._total_split()[b])
            elig = self._eligible(lo, hi)
            if multi:
                tot = elig.sum()
                counts = rng.multinomial(k, elig / tot) if tot else np.zeros(hi - lo, int)
            else:
                counts = rng.multivariate_hypergeometric(elig, k, method="marginals")
            return self._rows(rng, lo, counts.astype(np.int64), excl, unique=not multi)
        if name == "fixed_outdegree":
            return self._outdegree_block(rng, b, lo, hi)
        raise ValueError(f"unknown rule {name!r}")  # pragma: no cover - schema enum

    def _total_split(self) -> np.ndarray:
        """How a fixed total splits over the blocks (by eligible pairs)."""
        if "total" not in self._split:
            rng = stream(self._seed, "edges", self.name, "split")
            elig = np.array([self._eligible(a, z).sum() for a, z in self.blocks()], dtype=np.int64)
            n = int(self.rule["n"])
            if n and elig.sum() == 0:
                raise BuildError(f"connections.{self.name}: no pairs to connect")
            if self.multapses:
                split = rng.multinomial(n, elig / elig.sum()) if n else np.zeros(len(elig), int)
            else:
                split = rng.multivariate_hypergeometric(elig, n, method="marginals")
            self._split["total"] = split
        return self._split["total"]

    def _outdegree_split(self) -> np.ndarray:
        """(n_src, n_blocks) counts: how each source's out-degree splits over target blocks."""
        if "out" not in self._split:
            rng = stream(self._seed, "edges", self.name, "split")
            blocks = self.blocks()
            sizes = np.array([z - a for a, z in blocks], dtype=np.int64)
            k = int(self.rule["outdegree"])
            out = np.zeros((self.n_src, len(blocks)), dtype=np.int64)
            # a source that is also a target has one eligible target less in its own block
            own = np.full(self.n_src, -1, dtype=np.int64)
            if self.self_src is not None:
                tgt_idx = np.flatnonzero(self.self_src >= 0)
                own[self.self_src[tgt_idx]] = (
                    np.searchsorted([a for a, _ in blocks], tgt_idx, side="right") - 1
                )
            for blk in np.unique(own):
                rows = np.flatnonzero(own == blk)
                colors = sizes.copy()
                if blk >= 0:
                    colors[blk] -= 1
                if k == 0 or colors.sum() == 0:
                    continue
                if self.multapses:
                    out[rows] = rng.multinomial(k, colors / colors.sum(), size=len(rows))
                else:
                    out[rows] = rng.multivariate_hypergeometric(
                        colors, k, size=len(rows), method="marginals"
                    )
            self._split["out"] = out
        return self._split["out"]

    def _outdegree_block(
        self, rng: np.random.Generator, b: int, lo: int, hi: int
    ) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
        counts = self._outdegree_split()[:, b]
        excl = None
        if self.self_src is not None:
            excl = np.full(self.n_src, -1, dtype=np.int64)
            rows = np.flatnonzero(self.self_src[lo:hi] >= 0)
            excl[self.self_src[lo:hi][rows]] = rows
        rows_idx, cols = _sample_rows(rng, counts, hi - lo, excl, unique=not self.multapses)
        s, t = rows_idx, cols + lo
        return _sorted_pairs(s, t, self.n_src) + (rng,)

    def _rows(
        self,
        rng: np.random.Generator,
        lo: int,
        counts: np.ndarray,
        excl: np.ndarray | None,
        unique: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
        if not unique:  # with replacement: drawn in order, no sort; in uint32 when they fit
            cols = _sorted_draws(rng, counts, self.n_src, excl, _narrow(self.n_src))
            rows = np.repeat(
                np.arange(lo, lo + len(counts), dtype=_narrow(lo + len(counts))), counts
            )
            return cols, rows, rng
        rows, cols = _sample_rows(rng, counts, self.n_src, excl, unique)
        return _sorted_pairs(cols, rows + lo, self.n_src) + (rng,)


def _sorted_pairs(s: np.ndarray, t: np.ndarray, n_src: int) -> tuple[np.ndarray, np.ndarray]:
    """(s, t) sorted by t then s (one sort of a combined key)."""
    if len(s) == 0:
        return s.astype(np.int64), t.astype(np.int64)
    t0 = int(t.min())
    span = (int(t.max()) - t0 + 1) * n_src
    key = (t - t0) * n_src + s
    key = key.astype(np.uint32 if span < (1 << 32) else np.int64)
    key.sort()
    t_rel, s_out = np.divmod(key, key.dtype.type(n_src))
    return s_out.astype(np.int64), t_rel.astype(np.int64) + t0


def _narrow(n: int) -> type:
    """The integer dtype of indices in [0, n): uint32 when they fit (half the bytes to move
    and to write), else int64."""
    return np.uint32 if n < (1 << 32) else np.int64


def _sorted_draws(
    rng: np.random.Generator,
    counts: np.ndarray,
    n: int,
    excl: np.ndarray | None,
    dtype: Any = np.int64,
) -> np.ndarray:
    """For row i, ``counts[i]`` values uniform in [0, n) without ``excl[i]``, with replacement,
    each row's values in ascending order, as ``dtype`` (which must hold n - 1).

    The order statistics of k uniforms are the partial sums of k + 1 standard exponentials
    over their total (Rényi's representation), so sorted draws cost one exponential per value
    and a cumulative sum, not a sort. Values are ``floor(u * m)`` with m the row's number of
    candidates, shifted past the excluded one.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=dtype)
    m = np.full(len(counts), n, dtype=np.int64)
    if excl is not None:
        m -= excl >= 0
    if np.any(m[counts > 0] <= 0):
        raise BuildError("cannot draw connections from an empty population")
    psum = np.empty(total + 1)  # psum[j]: sum of the first j gaps
    psum[0] = 0.0
    rng.standard_exponential(out=psum[1:])  # the gaps, summed in place
    last = rng.standard_exponential(len(counts))  # the (k+1)-th gap of each row
    np.cumsum(psum[1:], out=psum[1:])
    ends = np.cumsum(counts)
    base = psum[ends - counts]
    span = psum[ends] - base + last
    csum = psum[1:]
    csum -= np.repeat(base, counts)
    csum *= np.repeat(m / span, counts)
    vals = csum.astype(dtype)  # floor of non-negative values: the same in any integer dtype
    if excl is None:
        np.minimum(vals, n - 1, out=vals)
        return vals
    np.minimum(vals, np.repeat((m - 1).astype(dtype), counts), out=vals)
    skip = np.repeat(np.where(excl >= 0, excl, n), counts)
    vals += vals >= skip
    return vals


def _sample_rows(
    rng: np.random.Generator,
    counts: np.ndarray,
    n: int,
    excl: np.ndarray | None,
    unique: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """For row i, ``counts[i]`` values in [0, n), never ``excl[i]``; distinct when ``unique``.

    Returns (row index, value) of every draw, grouped by row. Values are uniform (given the
    exclusions): drawn with replacement, then offending draws are redrawn; a row that needs
    nearly all of its candidates is drawn as a random subset instead.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    if total == 0:
        return rows, np.zeros(0, dtype=np.int64)
    if n <= 0:
        raise BuildError("cannot draw connections from an empty population")
    ex = None if excl is None else np.repeat(excl, counts)
    dense = np.zeros(len(counts), dtype=bool)
    if unique:
        dense = counts * 2 > n
    vals = rng.integers(0, n, total, dtype=np.int64)
    if dense.any():  # rows drawing most candidates: a random subset each
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        for i in np.flatnonzero(dense):
            c = int(counts[i])
            pool = np.arange(n, dtype=np.int64)
            if excl is not None and excl[i] >= 0:
                pool = np.delete(pool, excl[i])
            if c > len(pool):
                raise BuildError(f"cannot draw {c} distinct values from {len(pool)}")
            vals[starts[i] : starts[i] + c] = rng.choice(pool, c, replace=False)
    sparse = ~dense[rows]
    for _ in range(10_000):
        bad = np.zeros(total, dtype=bool)
        if ex is not None:
            bad |= (vals == ex) & sparse
        if unique:
            key = rows * n + vals
            order = np.argsort(key, kind="stable")
            dup = np.zeros(total, dtype=bool)
            dup[order[1:]] = key[order[1:]] == key[order[:-1]]
            bad |= dup & sparse
        if not bad.any():
            return rows, vals
        idx = np.flatnonzero(bad)
        vals[idx] = rng.integers(0, n, len(idx), dtype=np.int64)
    raise BuildError("connection sampling did not converge")  # pragma: no cover


def distance_p(p: Mapping[str, Any], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connection probability of a distance profile between positions ``a`` and ``b`` (um).

    ``a`` and ``b`` broadcast against each other (last axis: x, y, z).
    """
    p0 = float(p.get("p0", 1.0))
    prof = p["profile"]
    d = b - a
    if prof == "separable_gaussian":
        sx, sy = p.get("sigma_um") or [e / 3.0 for e in p["extent_um"]]
        ex, ey = p["extent_um"]
        dx, dy = d[..., 0], d[..., 1]
        out = p0 * np.exp(-(dx * dx) / (2 * sx * sx) - (dy * dy) / (2 * sy * sy))
        out = np.where((np.abs(dx) <= ex / 2) & (np.abs(dy) <= ey / 2), out, 0.0)
    else:
        dist = np.sqrt(np.einsum("...i,...i->...", d, d))
        if prof == "gaussian":
            s = float(p["sigma_um"])
            out = p0 * np.exp(-(dist * dist) / (2 * s * s))
        elif prof == "exponential":
            out = p0 * np.exp(-dist / float(p["lambda_um"]))
        else:  # step
            out = np.where(dist <= float(p["radius_um"]), p0, 0.0)
        if "cutoff_um" in p:
            out = np.where(dist <= float(p["cutoff_um"]), out, 0.0)
    return out


def pair_distance(a: np.ndarray, b: np.ndarray, in_sheet: bool) -> np.ndarray:
    """Euclidean distance between rows of ``a`` and ``b`` (x-y only when ``in_sheet``)."""
    d = (b - a)[:, :2] if in_sheet else b - a
    return np.sqrt(np.einsum("ij,ij->i", d, d))
