"""Tests of builder.core.rasters: the SPEC section 7 input rasters against scipy and the
definitions.

Statistical checks use fixed seeds and tolerances derived from the sampling distribution
(binomial / normal standard errors, 5 sigma; KS tests at p > 1e-3).
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from scipy import signal, stats

from builder.core import rasters
from builder.core.rasters import (
    levy_stable_rvs,
    lfilter_zero_state,
    pink_noise,
    poisson_bins,
    poisson_bins_direct,
    population_rate_hz,
    truncnorm_rates_hz,
)
from builder.recipes.l5_rasters import inh_profile_from_exc, rhythmic_profile

Z = 5.0  # sigma of every statistical bound below


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# IIR filter and pink noise
# --------------------------------------------------------------------------------------------


def test_module_does_not_import_scipy():
    code = "import sys, builder.core.rasters; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pink_filter_matches_scipy_lfilter():
    x = rng(1).normal(1.0, 0.5, size=(3, 40_000))
    ours = lfilter_zero_state(rasters.PINK_B, rasters.PINK_A, x)
    ref = signal.lfilter(rasters.PINK_B, rasters.PINK_A, x, axis=-1)
    assert np.max(np.abs(ours - ref)) <= 1e-9 * np.max(np.abs(ref))


@pytest.mark.parametrize("n", [1, 2, 7, 64, 65, 1000, 3001])
@pytest.mark.parametrize(
    "ba",
    [
        (rasters.PINK_B, rasters.PINK_A),
        signal.butter(4, 0.1),  # two complex-conjugate pole pairs
        signal.butter(3, 0.3, "high"),
        ([1.0], [1.0, -0.5]),
        ([0.5, 0.2, -0.1], [1.0]),  # FIR only
        ([2.0, 1.0], [2.0, 0.9]),  # a[0] != 1, negative pole
    ],
    ids=["pink", "butter4", "butter3hp", "onepole", "fir", "scaled"],
)
def test_lfilter_zero_state_general_filters(ba, n):
    b, a = ba
    x = rng(n).normal(size=(2, n))
    ours = lfilter_zero_state(b, a, x)
    ref = signal.lfilter(b, a, x, axis=-1)
    assert ours.shape == x.shape
    assert np.max(np.abs(ours - ref)) <= 1e-9 * max(1.0, np.max(np.abs(ref)))


def test_lfilter_is_deterministic_and_rejects_unstable():
    x = rng(2).normal(size=(4, 10_000))
    a1 = lfilter_zero_state(rasters.PINK_B, rasters.PINK_A, x)
    a2 = lfilter_zero_state(rasters.PINK_B, rasters.PINK_A, x.copy())
    assert np.array_equal(a1, a2)
    with pytest.raises(ValueError, match="unit circle"):
        lfilter_zero_state([1.0], [1.0, -1.5], x)
    with pytest.raises(ValueError, match="a\\[0\\]"):
        lfilter_zero_state([1.0], [0.0, 1.0], x)


def test_pink_noise_is_the_spec_pipeline():
    """Same draws through scipy's lfilter, burn-in dropped, min-max + 0.5: equal to 1e-9."""
    n, traces = 5000, 4
    ours = pink_noise(rng(7), n, traces)
    white = rng(7).normal(1.0, 0.5, size=(traces, n + 2000))
    y = signal.lfilter(rasters.PINK_B, rasters.PINK_A, white, axis=-1)[:, 2000:]
    lo, hi = y.min(axis=1, keepdims=True), y.max(axis=1, keepdims=True)
    ref = (y - lo) / (hi - lo) + 0.5
    assert ours.shape == (traces, n)
    assert np.max(np.abs(ours - ref)) <= 1e-9


def test_pink_noise_range_is_exactly_half_to_three_halves():
    noise = pink_noise(rng(3), 30_000, 5)
    assert np.all(noise.min(axis=1) == 0.5)
    assert np.all(noise.max(axis=1) == 1.5)
    # Independent traces: clearly different from one another.
    assert abs(np.corrcoef(noise)[0, 1]) < 0.5


def test_pink_noise_edge_sizes_and_errors():
    assert pink_noise(rng(0), 0, 3).shape == (3, 0)
    assert pink_noise(rng(0), 10, 0).shape == (0, 10)
    assert np.array_equal(pink_noise(rng(0), 1, 2), np.ones((2, 1)))
    with pytest.raises(ValueError):
        pink_noise(rng(0), -1)
    with pytest.raises(TypeError):
        pink_noise(rng(0), 10.5)


# --------------------------------------------------------------------------------------------
# Rate distributions
# --------------------------------------------------------------------------------------------


def test_levy_stable_matches_scipy_cdf():
    params = (1.37, -1.0, 1.84, 0.44)
    x = levy_stable_rvs(rng(11), *params, size=3000)
    assert stats.kstest(x, stats.levy_stable(*params).cdf).pvalue > 1e-3


def test_levy_stable_ks_has_power_against_s0():
    """The same KS check rejects the S0 parametrisation (a shift of 0.69 here)."""
    params = (1.37, -1.0, 1.84, 0.44)
    x = levy_stable_rvs(rng(11), *params, size=3000)
    alpha, beta, loc, scale = params
    s0_as_s1_loc = loc - beta * scale * np.tan(np.pi * alpha / 2)  # S0 location in S1 terms
    assert stats.kstest(x, stats.levy_stable(alpha, beta, s0_as_s1_loc, scale).cdf).pvalue < 1e-6


@pytest.mark.parametrize("params", [(1.0, 0.5, 0.3, 2.0), (1.8, 0.3, -1.0, 1.5), (0.7, 1.0, 0, 1)])
def test_levy_stable_other_parameters_match_large_scipy_sample(params):
    x = levy_stable_rvs(rng(12), *params, size=20_000)
    ref = stats.levy_stable(*params).rvs(size=200_000, random_state=12)
    assert stats.ks_2samp(x, ref).pvalue > 1e-3


def test_levy_stable_errors():
    for bad in [
        (0.0, 0.0, 0, 1),
        (2.1, 0.0, 0, 1),
        (1.5, 1.2, 0, 1),
        (1.5, 0, 0, 0),
        (1.5, 0, 0, -1),
    ]:
        with pytest.raises(ValueError):
            levy_stable_rvs(rng(0), *bad, size=3)


def test_exc_rates_median_about_10_hz():
    n = 40_000
    rates = rasters.exc_rates_hz(rng(5), n)
    dist = stats.levy_stable(
        rasters.EXC_LOG_RATE_ALPHA,
        rasters.EXC_LOG_RATE_BETA,
        rasters.EXC_LOG_RATE_LOC,
        rasters.EXC_LOG_RATE_SCALE,
    )
    m = dist.median()
    assert 10.0 < np.exp(m) < 11.0  # SPEC: "median ~ 10 Hz"
    se_log_median = 1.0 / (2.0 * dist.pdf(m) * np.sqrt(n))  # asymptotic sd of a sample median
    assert abs(np.log(np.median(rates)) - m) <= Z * se_log_median
    # The log-rate has a heavy left tail (beta = -1), so a few rates underflow to 0 Hz.
    assert rates.shape == (n,) and np.all(np.isfinite(rates)) and np.all(rates >= 0)


@pytest.mark.parametrize(
    "mean, sd, low, high",
    [
        (16.9, 14.3, 0, 100),  # SPEC proximal: normal proposal
        (3.9, 4.9, 0, 100),  # SPEC distal: normal proposal
        (-20.0, 5.0, 0, 100),  # 4 sd above the mean: exponential proposal
        (150.0, 5.0, 0, 100),  # 10 sd below the mean: mirrored exponential proposal
        (50.0, 100.0, 10, 20),  # narrow, below the mean: mirrored uniform proposal
        (5.0, 20.0, 4.0, 6.0),  # narrow around the mean: uniform proposal
    ],
    ids=["proximal", "distal", "right-tail", "left-tail", "narrow-below", "narrow-centre"],
)
def test_truncnorm_moments_match_scipy(mean, sd, low, high):
    n = 200_000
    x = truncnorm_rates_hz(rng(21), n, mean, sd, low, high)
    ref = stats.truncnorm((low - mean) / sd, (high - mean) / sd, loc=mean, scale=sd)
    mu, var, _, kurt = (float(v) for v in ref.stats(moments="mvsk"))
    assert x.shape == (n,) and x.min() >= low and x.max() <= high
    assert abs(x.mean() - mu) <= Z * np.sqrt(var / n)
    var_of_sample_var = (kurt + 2.0) * var**2 / n  # (mu4 - sigma^4) / n
    assert abs(x.var(ddof=1) - var) <= Z * np.sqrt(var_of_sample_var)
    assert stats.kstest(x[:20_000], ref.cdf).pvalue > 1e-3


def test_truncnorm_degenerate_and_errors():
    assert np.array_equal(truncnorm_rates_hz(rng(0), 4, 5.0, 0.0), np.full(4, 5.0))
    assert truncnorm_rates_hz(rng(0), 0, 5.0, 1.0).shape == (0,)
    bad = [
        dict(n=3, mean_hz=5, sd_hz=-1),
        dict(n=3, mean_hz=5, sd_hz=1, low_hz=10, high_hz=10),
        dict(n=3, mean_hz=5, sd_hz=0, low_hz=10, high_hz=20),
        dict(n=3, mean_hz=-1000, sd_hz=1),
        dict(n=3, mean_hz=float("nan"), sd_hz=1),
        dict(n=-1, mean_hz=5, sd_hz=1),
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            truncnorm_rates_hz(rng(0), **kw)


# --------------------------------------------------------------------------------------------
# Spike bins: time rescaling against the per-bin definition
# --------------------------------------------------------------------------------------------

PROFILES = {
    # zeros at both ends and inside, a ramp, and bins with p(spike) up to 1 - exp(-3)
    "ramp": np.concatenate([[0.0, 0.0], np.linspace(0.05, 5.0, 30), [0.0], [5.0], [0.0, 0.0]]),
    "spiky": np.array([0.0, 0.01, 0.0, 8.0, 0.0, 0.0, 0.3, 0.3, 0.0, 2.0, 0.02, 0.0]),
    "pink": pink_noise(rng(99), 40)[0] * 2.0,
}
RATE_CLASSES_HZ = np.array([40.0, 600.0])  # with profile values up to 8: lambda up to 4.8
CELLS_PER_CLASS = 10_000


def _spike_matrix(cell_idx, bin_idx, n_cells, n_bins):
    m = np.zeros((n_cells, n_bins), dtype=bool)
    m[cell_idx, bin_idx] = True
    return m


@pytest.fixture(scope="module", params=sorted(PROFILES))
def sampled(request):
    prof = PROFILES[request.param]
    rates = np.repeat(RATE_CLASSES_HZ, CELLS_PER_CLASS)
    out = {"profile": prof, "rates": rates}
    for name, fn, seed in [("fast", poisson_bins, 31), ("direct", poisson_bins_direct, 32)]:
        c, b = fn(rng(seed), rates, prof)
        out[name] = (c, b, _spike_matrix(c, b, rates.size, prof.size))
    return out


def _p_spike(rate_hz, prof):
    return -np.expm1(-rate_hz * prof / 1000.0)


@pytest.mark.parametrize("method", ["fast", "direct"])
def test_per_bin_spike_probability(sampled, method):
    prof = sampled["profile"]
    m = sampled[method][2]
    for j, rate in enumerate(RATE_CLASSES_HZ):
        rows = m[j * CELLS_PER_CLASS : (j + 1) * CELLS_PER_CLASS]
        p = _p_spike(rate, prof)
        freq = rows.mean(axis=0)
        bound = Z * np.sqrt(p * (1 - p) / CELLS_PER_CLASS) + 1e-12
        assert np.all(np.abs(freq - p) <= bound)
        assert not rows[:, prof == 0].any()  # exact: no spike where the rate is 0


def test_fast_and_direct_agree_bin_by_bin(sampled):
    prof = sampled["profile"]
    for j, rate in enumerate(RATE_CLASSES_HZ):
        sl = slice(j * CELLS_PER_CLASS, (j + 1) * CELLS_PER_CLASS)
        f1 = sampled["fast"][2][sl].mean(axis=0)
        f2 = sampled["direct"][2][sl].mean(axis=0)
        p = _p_spike(rate, prof)
        assert np.all(np.abs(f1 - f2) <= Z * np.sqrt(2 * p * (1 - p) / CELLS_PER_CLASS) + 1e-12)


@pytest.mark.parametrize("method", ["fast", "direct"])
def test_spike_count_mean_and_variance_per_cell(sampled, method):
    """Count per cell = sum of independent Bernoulli(p_k): exact mean and variance."""
    prof = sampled["profile"]
    m = sampled[method][2]
    for j, rate in enumerate(RATE_CLASSES_HZ):
        counts = m[j * CELLS_PER_CLASS : (j + 1) * CELLS_PER_CLASS].sum(axis=1)
        p = _p_spike(rate, prof)
        k2 = np.sum(p * (1 - p))  # variance (2nd cumulant)
        k4 = np.sum(p * (1 - p) * (1 - 6 * p * (1 - p)))  # 4th cumulant
        n = CELLS_PER_CLASS
        assert abs(counts.mean() - p.sum()) <= Z * np.sqrt(k2 / n)
        assert abs(counts.var(ddof=1) - k2) <= Z * np.sqrt((k4 + 2 * k2**2) / n)


@pytest.mark.parametrize("method", ["fast", "direct"])
def test_neighbouring_bins_are_independent(sampled, method):
    prof = sampled["profile"]
    m = sampled[method][2]
    for j, rate in enumerate(RATE_CLASSES_HZ):
        rows = m[j * CELLS_PER_CLASS : (j + 1) * CELLS_PER_CLASS]
        p = _p_spike(rate, prof)
        for lag in (1, 2):
            both = (rows[:, :-lag] & rows[:, lag:]).mean(axis=0)
            pp = p[:-lag] * p[lag:]
            assert np.all(np.abs(both - pp) <= Z * np.sqrt(pp * (1 - pp) / CELLS_PER_CLASS) + 1e-12)


def test_poisson_bins_output_format():
    rates = np.array([0.0, 50.0, 200.0, 0.0, 30.0])
    prof = np.abs(np.sin(np.arange(500) / 20.0))
    c, b = poisson_bins(rng(4), rates, prof)
    assert c.dtype == np.int64 and b.dtype == np.int64 and c.shape == b.shape
    key = c * prof.size + b
    assert np.all(np.diff(key) > 0)  # sorted by cell then bin, (cell, bin) pairs unique
    assert not np.isin(c, [0, 3]).any()  # zero-rate cells are silent
    assert c.min() >= 0 and c.max() < rates.size and b.min() >= 0 and b.max() < prof.size
    # bin_ms scales lambda: 2 ms bins at half the rate is the same per-bin distribution.
    c2, b2 = poisson_bins(rng(4), rates / 2, prof, bin_ms=2.0)
    assert np.array_equal(c, c2) and np.array_equal(b, b2)


def test_poisson_bins_empty_cases():
    for rates, prof in [
        (np.array([]), np.ones(10)),
        (np.ones(3), np.array([])),
        (np.zeros(3), np.ones(10)),
        (np.ones(3), np.zeros(10)),
    ]:
        for fn in (poisson_bins, poisson_bins_direct):
            c, b = fn(rng(0), rates, prof)
            assert c.size == 0 and b.size == 0 and c.dtype == np.int64


def test_poisson_bins_never_builds_the_cell_by_bin_matrix():
    """200,000 cells x 1,000,000 bins (2e11 entries) at low rate: memory ~ spikes + bins."""
    rates = np.full(200_000, 0.002)
    prof = np.ones(1_000_000)
    tracemalloc.start()
    try:
        c, _ = poisson_bins(rng(8), rates, prof)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected = 200_000 * 0.002 * 1000  # 400,000 spikes
    assert abs(c.size - expected) <= Z * np.sqrt(expected)
    assert peak < 80e6


@pytest.mark.parametrize("fn", [poisson_bins, poisson_bins_direct])
def test_poisson_bins_rejects_bad_input(fn):
    ok_r, ok_p = np.ones(3), np.ones(5)
    bad = [
        (np.array([1.0, -1.0]), ok_p, 1.0),
        (ok_r, np.array([1.0, -0.1]), 1.0),
        (np.array([np.nan]), ok_p, 1.0),
        (ok_r, np.array([np.inf]), 1.0),
        (np.ones((2, 2)), ok_p, 1.0),
        (ok_r, np.ones((2, 2)), 1.0),
        (ok_r, ok_p, 0.0),
    ]
    for rates, prof, bin_ms in bad:
        with pytest.raises(ValueError):
            fn(rng(0), rates, prof, bin_ms)


# --------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "draw",
    [
        lambda g: pink_noise(g, 3000, 3),
        lambda g: rasters.exc_rates_hz(g, 1000),
        lambda g: truncnorm_rates_hz(g, 1000, 3.9, 4.9),
        lambda g: np.concatenate(poisson_bins(g, np.full(50, 20.0), np.ones(2000))),
    ],
    ids=["pink", "exc_rates", "truncnorm", "poisson_bins"],
)
def test_same_seed_same_draws_other_seed_other_draws(draw):
    a, b, c = draw(rng(42)), draw(rng(42)), draw(rng(43))
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


# --------------------------------------------------------------------------------------------
# Inhibitory profiles
# --------------------------------------------------------------------------------------------


def test_population_rate_hz_exact():
    bins = np.array([0, 0, 1, 3, 3, 3, 5])
    rate = population_rate_hz(bins, n_cells=2, n_bins=6)
    assert np.array_equal(rate, [1000.0, 500.0, 0.0, 1500.0, 0.0, 500.0])
    assert np.array_equal(population_rate_hz(bins, 2, 6, bin_ms=2.0), rate / 2)


def test_inh_profile_shift_semantics_exact():
    bins = np.array([0, 0, 1, 3, 3, 3, 5])  # rate (Hz) = [1000, 500, 0, 1500, 0, 500]
    # Unshifted: rate / 1500 + 0.5.
    assert inh_profile_from_exc(bins, 2, 6, shift_ms=0) == pytest.approx(
        [7 / 6, 5 / 6, 0.5, 1.5, 0.5, 5 / 6], abs=1e-15
    )
    # 2 ms later, the first 2 bins padded with the first value (not circular):
    # [1000, 1000, 1000, 500, 0, 1500] -> min-max + 0.5.
    assert inh_profile_from_exc(bins, 2, 6, shift_ms=2.0) == pytest.approx(
        [7 / 6, 7 / 6, 7 / 6, 5 / 6, 0.5, 1.5], abs=1e-15
    )
    # The same lag in 2 ms bins is 1 bin.
    assert inh_profile_from_exc(np.array([0, 1, 1, 2]), 1, 3, 2.0, bin_ms=2.0) == pytest.approx(
        [0.5, 0.5, 1.5], abs=1e-15
    )


def test_inh_profile_constant_cases_are_all_ones():
    assert np.array_equal(inh_profile_from_exc(np.array([], int), 5, 4, 2.0), np.ones(4))
    # A shift covering every bin leaves only the first value.
    assert np.array_equal(inh_profile_from_exc(np.array([0, 2]), 1, 3, 3.0), np.ones(3))
    assert np.array_equal(inh_profile_from_exc(np.array([0]), 1, 1, 0.0), np.ones(1))
    assert inh_profile_from_exc(np.array([], int), 1, 0, 2.0).shape == (0,)


def test_inh_profile_errors():
    bins = np.array([0, 1])
    for kw in [
        dict(shift_ms=1.5),
        dict(shift_ms=-1.0),
        dict(shift_ms=float("nan")),
        dict(shift_ms=3.0, bin_ms=2.0),
        dict(shift_ms=2.0, bin_ms=0.0),
    ]:
        with pytest.raises(ValueError):
            inh_profile_from_exc(bins, 1, 4, **kw)
    with pytest.raises(ValueError):
        inh_profile_from_exc(bins, 0, 4, 2.0)  # no cells
    with pytest.raises(ValueError):
        inh_profile_from_exc(np.array([0, 4]), 1, 4, 2.0)  # spike outside the raster
    with pytest.raises(ValueError):
        inh_profile_from_exc(np.array([-1]), 1, 4, 2.0)


def test_rhythmic_profile_exact_values():
    mod, f_hz = 0.25, 10.0
    s = rhythmic_profile(101, f_hz, mod)
    gain = mod / (1 - mod)  # 1/3
    assert s[0] == 1.0
    assert s[25] == pytest.approx(1 + gain, abs=1e-12)  # t = 25 ms: sin = 1
    assert s[50] == pytest.approx(1.0, abs=1e-12)
    assert s[75] == pytest.approx(1 - gain, abs=1e-12)
    assert s[100] == pytest.approx(1.0, abs=1e-12)
    # start_ms shifts the clock; bin_ms spaces the samples.
    assert rhythmic_profile(2, f_hz, mod, start_ms=25.0) == pytest.approx(
        [1 + gain, 1 + gain * np.sin(2 * np.pi * f_hz * 0.026)], abs=1e-12
    )
    assert rhythmic_profile(3, f_hz, mod, bin_ms=25.0) == pytest.approx([1, 1 + gain, 1], abs=1e-12)
    # r_i * s(t) is the legacy A_i sin(2 pi f t) + r_i with A_i = r_i / (1/mod - 1).
    r_hz = 7.5
    t_s = np.arange(101) / 1000.0
    legacy = r_hz / (1 / mod - 1) * np.sin(2 * np.pi * f_hz * t_s) + r_hz
    assert r_hz * s == pytest.approx(legacy, abs=1e-12)


def test_rhythmic_profile_clips_negative_rates_when_mod_above_half():
    s = rhythmic_profile(1000, 5.0, 0.75)  # A = 3 r: rate r (1 + 3 sin) dips below 0
    assert s.min() == 0.0
    assert s[50] == pytest.approx(4.0, abs=1e-12)  # t = 50 ms, sin = 1
    assert s[150] == 0.0  # t = 150 ms, sin = -1: 1 - 3 clipped
    t_s = np.arange(1000) / 1000.0
    unclipped = 1 + 3.0 * np.sin(2 * np.pi * 5.0 * t_s)
    assert np.mean(unclipped < 0) > 0.3
    assert np.allclose(s, np.maximum(unclipped, 0.0), rtol=0, atol=1e-12)
    # mod = 0.5 (A = r) touches 0 at the troughs but is never negative.
    assert rhythmic_profile(1000, 5.0, 0.5).min() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "kw",
    [
        dict(mod=0.0),
        dict(mod=1.0),
        dict(mod=-0.2),
        dict(mod=1.5),
        dict(f_hz=0.0),
        dict(f_hz=-3.0),
        dict(f_hz=float("inf")),
        dict(bin_ms=0.0),
        dict(n_bins=-1),
    ],
)
def test_rhythmic_profile_errors(kw):
    args = dict(n_bins=10, f_hz=8.0, mod=0.3) | kw
    with pytest.raises(ValueError):
        rhythmic_profile(**args)
