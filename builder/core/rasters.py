"""Input spike rasters at 1 ms resolution (SPEC section 7), vectorised and numpy-only.

The pieces, each taking its own :class:`numpy.random.Generator`:

* :func:`pink_noise` -- the 1/f noise traces that modulate each functional group's rates
  (white normal noise through the legacy IIR 1/f filter, min-max normalised, + 0.5);
* :func:`exc_rates_hz` -- excitatory rates ``exp(X)``, ``X`` Levy-stable
  (:func:`levy_stable_rvs`, Chambers-Mallows-Stuck, scipy's default S1 parametrisation);
* :func:`truncnorm_rates_hz` -- inhibitory rates, normal truncated to ``[low, high]`` Hz;
* :func:`poisson_bins` -- which 1 ms bins hold a spike when a cell's rate is ``rate x profile``.
  The definition is per bin (``count ~ Poisson(rate * profile[k] * bin)``, a spike at the bin
  start when ``count > 0``); it is sampled by time rescaling, at a cost proportional to the
  number of spikes, and is equal in distribution to the per-bin draws of
  :func:`poisson_bins_direct` (the reference, used by the tests and the benchmark);
* :func:`population_rate_hz` -- a population's average rate per bin.

The L5 recipe's shared inhibitory rate profiles (shifted excitatory population average, or
sinusoidal) are the recipe's own: :mod:`builder.recipes.l5_rasters`.

Rates are carried as one rate per cell times one profile shared by many cells, so no
(cells x bins) matrix is ever built. scipy is deliberately not imported (import cost on the
build path): the IIR filter and the Levy-stable and truncated-normal draws are implemented here.
"""

from __future__ import annotations

import math
import operator

import numpy as np

__all__ = [
    "PINK_B",
    "PINK_A",
    "PINK_BURN_IN_SAMPLES",
    "PINK_WHITE_MEAN",
    "PINK_WHITE_SD",
    "EXC_LOG_RATE_ALPHA",
    "EXC_LOG_RATE_BETA",
    "EXC_LOG_RATE_LOC",
    "EXC_LOG_RATE_SCALE",
    "lfilter_zero_state",
    "pink_noise",
    "levy_stable_rvs",
    "exc_rates_hz",
    "truncnorm_rates_hz",
    "poisson_bins",
    "poisson_bins_direct",
    "population_rate_hz",
]

#: Numerator of the legacy IIR 1/f ("pink") filter, in powers of z^-1.
PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
#: Denominator of the legacy IIR 1/f filter, in powers of z^-1.
PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])
#: Filtered samples dropped at the start of each pink-noise trace (filter transient).
PINK_BURN_IN_SAMPLES = 2000
#: Mean and standard deviation of the white noise fed to the pink filter.
PINK_WHITE_MEAN = 1.0
PINK_WHITE_SD = 0.5

#: Levy-stable parameters (S1) of the natural log of an excitatory input rate in Hz:
#: ``rate_hz = exp(X)``, ``X ~ S(alpha, beta, scale; loc)``; the median rate is about 10.5 Hz.
EXC_LOG_RATE_ALPHA = 1.37
EXC_LOG_RATE_BETA = -1.0
EXC_LOG_RATE_LOC = 1.84
EXC_LOG_RATE_SCALE = 0.44

# Longest block of the blocked first-order recursion, and the largest natural log of the
# rescaling factor |pole|**-block allowed inside a block (exp(345) ~ 1e150, far from overflow).
_SCAN_BLOCK_MAX = 1024
_SCAN_LOG_RANGE = 345.0
# Upper bound on elements of one chunk of the direct per-bin reference sampler.
_DIRECT_CHUNK_ELEMENTS = 1 << 21
# Truncated-normal rejection: smallest acceptance rate accepted, largest draw per round.
_MIN_ACCEPTANCE = 1e-6
_MAX_ROUND_DRAWS = 1 << 22
_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# Linear filtering without scipy
# ---------------------------------------------------------------------------------------------


def _first_order_scan(u: np.ndarray, pole: complex | float) -> np.ndarray:
    """Zero-state first-order recursion ``y[n] = pole * y[n-1] + u[n]`` along the last axis.

    Blocked scan with only elementwise numpy operations and sequential cumulative sums, so
    the result does not depend on thread count or BLAS and the cost is a few passes over the
    data. Inside a block of length ``L``, ``y[m] = pole**m * cumsum(pole**-i * u[i])[m]``
    (``L`` is chosen per pole so that ``|pole|**-L`` stays far from overflow; the rounding
    error of ``y[m]`` stays of order ``eps * sum_i |pole|**(m-i) |y[i]|``, as for the plain
    recursion). The block-end states are then propagated by the same function recursively,
    with the pole raised to the block length, and each block receives its incoming state
    times ``pole ** (m + 1)``.
    """
    n = u.shape[-1]
    mag = abs(pole)
    if mag == 0.0 or n == 0:
        return u.copy()
    if not mag < 1.0:
        raise ValueError(f"filter pole {pole} is not inside the unit circle")
    block = int(min(_SCAN_BLOCK_MAX, _SCAN_LOG_RANGE // -math.log(mag), n))
    if block < 2:
        # |pole| < exp(-_SCAN_LOG_RANGE / 2): pole**2 terms are below double precision.
        y = u.astype(np.result_type(u, pole), copy=True)
        y[..., 1:] += pole * u[..., :-1]
        return y
    lead = u.shape[:-1]
    n_blocks = -(-n // block)
    idx = np.arange(block)
    down = pole ** (-idx.astype(float))
    up = pole ** idx.astype(float)
    blocks = np.zeros((*lead, n_blocks, block), dtype=np.result_type(u, down))
    flat = blocks.reshape(*lead, n_blocks * block)
    flat[..., :n] = u
    blocks *= down
    np.cumsum(blocks, axis=-1, out=blocks)
    blocks *= up
    if n_blocks > 1:
        # State at the end of each block (zero state before block 0).
        ends = _first_order_scan(blocks[..., -1], pole**block)
        blocks[..., 1:, :] += ends[..., :-1, None] * (up * pole)
    return flat[..., :n]


def _polished_roots(a: np.ndarray) -> np.ndarray:
    """Roots of the polynomial ``a`` (highest power first), refined by two Newton steps."""
    roots = np.roots(a).astype(complex)
    deriv = np.polyder(a)
    for _ in range(2):
        d = np.polyval(deriv, roots)
        ok = d != 0
        roots[ok] -= np.polyval(a, roots[ok]) / d[ok]
    return roots


def lfilter_zero_state(b: np.ndarray, a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply the rational filter ``B(z^-1) / A(z^-1)`` along the last axis, zero initial state.

    The same linear map as ``scipy.signal.lfilter(b, a, x)`` (up to rounding), computed as the
    FIR part ``b`` (shifted elementwise sums) followed by one first-order all-pole section per
    root of ``a`` (blocked parallel scans). Cost O(len(x) * (len(b) + len(a) * log)) with no
    Python loop over samples; deterministic bit for bit.

    Parameters
    ----------
    b, a : numpy.ndarray
        Numerator and denominator coefficients in powers of ``z^-1``; ``a[0]`` must be non-zero
        and the poles should lie inside the unit circle (stable filter) for a sound result.
    x : numpy.ndarray
        Input, filtered along its last axis (any leading shape).

    Returns
    -------
    numpy.ndarray
        Filtered signal, float64, same shape as ``x``.
    """
    b = np.atleast_1d(np.asarray(b, dtype=float))
    a = np.trim_zeros(np.atleast_1d(np.asarray(a, dtype=float)), "b")
    x = np.asarray(x, dtype=float)
    if a.size == 0 or a[0] == 0:
        raise ValueError("filter denominator a[0] must be non-zero")
    b = b / a[0]
    a = a / a[0]
    n = x.shape[-1]
    v = np.zeros_like(x)
    for k, bk in enumerate(b[:n]):
        if bk != 0:
            v[..., k:] += bk * x[..., : n - k]
    if a.size == 1 or n == 0:
        return v
    poles = _polished_roots(a)
    if np.all(np.abs(poles.imag) == 0):
        for p in np.sort(poles.real):
            v = _first_order_scan(v, float(p))
        return v
    vc = v.astype(complex)
    for p in poles:
        vc = _first_order_scan(vc, complex(p))
    return np.ascontiguousarray(vc.real)


def _minmax_plus_half(y: np.ndarray) -> np.ndarray:
    """Min-max normalise along the last axis to [0, 1] and add 0.5; constant rows become 1.0."""
    lo = y.min(axis=-1, keepdims=True)
    hi = y.max(axis=-1, keepdims=True)
    span = hi - lo
    flat = span == 0
    out = (y - lo) / np.where(flat, 1.0, span) + 0.5
    return np.where(flat, 1.0, out)


def pink_noise(rng: np.random.Generator, n_samples: int, n_traces: int = 1) -> np.ndarray:
    """1/f noise traces in [0.5, 1.5], one sample per ms (SPEC section 7).

    For each trace: white normal noise (mean 1, sd 0.5) of length
    ``n_samples + PINK_BURN_IN_SAMPLES`` is filtered with ``PINK_B / PINK_A`` (zero initial
    state), the first ``PINK_BURN_IN_SAMPLES`` samples are dropped, and the rest is min-max
    normalised to [0, 1] and shifted by + 0.5, so each trace's minimum is exactly 0.5 and its
    maximum exactly 1.5. (A trace of a single sample is constant and is returned as 1.0.)

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the white noise; drawn as one ``(n_traces, n_samples + 2000)`` block.
    n_samples : int
        Samples per trace (>= 0).
    n_traces : int, optional
        Number of independent traces (>= 0).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_traces, n_samples)``, float64.
    """
    n_samples = operator.index(n_samples)
    n_traces = operator.index(n_traces)
    if n_samples < 0 or n_traces < 0:
        raise ValueError(f"n_samples and n_traces must be >= 0, got {n_samples}, {n_traces}")
    white = rng.normal(
        PINK_WHITE_MEAN, PINK_WHITE_SD, size=(n_traces, n_samples + PINK_BURN_IN_SAMPLES)
    )
    if n_samples == 0 or n_traces == 0:
        return np.zeros((n_traces, n_samples))
    filtered = lfilter_zero_state(PINK_B, PINK_A, white)[:, PINK_BURN_IN_SAMPLES:]
    return _minmax_plus_half(filtered)


# ---------------------------------------------------------------------------------------------
# Rate distributions
# ---------------------------------------------------------------------------------------------


def levy_stable_rvs(
    rng: np.random.Generator,
    alpha: float,
    beta: float,
    loc: float = 0.0,
    scale: float = 1.0,
    size: int | tuple[int, ...] | None = None,
) -> np.ndarray:
    """Levy-stable draws in the S1 parametrisation (scipy.stats.levy_stable's default).

    Chambers-Mallows-Stuck method (Weron's form): with ``V ~ U(-pi/2, pi/2)`` and
    ``W ~ Exp(1)`` (drawn in that order, ``size`` each),

    * alpha != 1: ``Z = S sin(alpha (V + B)) / cos(V)^(1/alpha)
      * (cos(V - alpha (V + B)) / W)^((1 - alpha)/alpha)``, with
      ``B = arctan(beta tan(pi alpha/2)) / alpha`` and
      ``S = (1 + beta^2 tan^2(pi alpha/2))^(1/(2 alpha))``; ``X = scale Z + loc``;
    * alpha == 1: ``Z = (2/pi) ((pi/2 + beta V) tan V
      - beta ln((pi/2) W cos V / (pi/2 + beta V)))``;
      ``X = scale Z + (2/pi) beta scale ln(scale) + loc``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    alpha : float
        Stability index, in (0, 2].
    beta : float
        Skewness, in [-1, 1].
    loc, scale : float
        Location and scale (scale > 0) of the S1 parametrisation.
    size : int or tuple of int, optional
        Output shape.

    Returns
    -------
    numpy.ndarray
        The draws, float64.
    """
    alpha = float(alpha)
    beta = float(beta)
    loc = float(loc)
    scale = float(scale)
    if not (0.0 < alpha <= 2.0):
        raise ValueError(f"levy_stable alpha must be in (0, 2], got {alpha}")
    if not (-1.0 <= beta <= 1.0):
        raise ValueError(f"levy_stable beta must be in [-1, 1], got {beta}")
    if not (scale > 0.0 and math.isfinite(scale)) or not math.isfinite(loc):
        raise ValueError(f"levy_stable needs finite loc and scale > 0, got {loc}, {scale}")
    v = rng.uniform(-np.pi / 2, np.pi / 2, size=size)
    w = rng.standard_exponential(size=size)
    if alpha == 1.0:
        half_pi_bv = np.pi / 2 + beta * v
        z = (2 / np.pi) * (
            half_pi_bv * np.tan(v) - beta * np.log((np.pi / 2) * w * np.cos(v) / half_pi_bv)
        )
        return scale * z + (2 / np.pi) * beta * scale * math.log(scale) + loc
    tan_term = beta * math.tan(np.pi * alpha / 2)
    b_shift = math.atan(tan_term) / alpha
    s_factor = (1.0 + tan_term * tan_term) ** (1.0 / (2.0 * alpha))
    av = alpha * (v + b_shift)
    z = (
        s_factor
        * np.sin(av)
        / np.cos(v) ** (1.0 / alpha)
        * (np.cos(v - av) / w) ** ((1.0 - alpha) / alpha)
    )
    return scale * z + loc


def exc_rates_hz(rng: np.random.Generator, n: int) -> np.ndarray:
    """Firing rates (Hz) of ``n`` excitatory input cells: ``exp(X)``, X Levy-stable (SPEC 7).

    ``X ~ levy_stable(EXC_LOG_RATE_ALPHA, EXC_LOG_RATE_BETA, EXC_LOG_RATE_LOC,
    EXC_LOG_RATE_SCALE)`` in the S1 parametrisation; the median rate is about 10.5 Hz.
    """
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"number of cells must be >= 0, got {n}")
    x = levy_stable_rvs(
        rng, EXC_LOG_RATE_ALPHA, EXC_LOG_RATE_BETA, EXC_LOG_RATE_LOC, EXC_LOG_RATE_SCALE, size=n
    )
    return np.exp(x)


def _normal_mass(a: float, b: float) -> float:
    """P(a <= Z <= b) for a standard normal Z, accurate in either tail."""
    if a >= 0:
        return 0.5 * (math.erfc(a / _SQRT2) - math.erfc(b / _SQRT2))
    if b <= 0:
        return 0.5 * (math.erfc(-b / _SQRT2) - math.erfc(-a / _SQRT2))
    return 1.0 - 0.5 * (math.erfc(-a / _SQRT2) + math.erfc(b / _SQRT2))


def _std_truncnorm(rng: np.random.Generator, n: int, a: float, b: float) -> np.ndarray:
    """``n`` exact draws of a standard normal truncated to ``[a, b]``, ``a < b``, ``b > 0``.

    Vectorised rejection from whichever proposal accepts most often (Robert 1995): the
    normal itself (keep draws inside ``[a, b]``); a uniform on ``[a, b]`` (accept with
    probability ``exp((m^2 - z^2)/2)``, ``m`` the point of ``[a, b]`` nearest 0); or, for
    ``a >= 0``, an exponential of rate ``lam = (a + sqrt(a^2 + 4))/2`` shifted to ``a``
    (accept with probability ``exp(-(z - lam)^2/2)`` when ``z <= b``). Each round draws
    enough candidates for the expected acceptance and the missing values are redrawn until
    all ``n`` are accepted; accepted values are kept in draw order.
    """
    mass = _normal_mass(a, b)
    m = max(a, 0.0)
    lam = (a + math.sqrt(a * a + 4.0)) / 2.0
    rates = {  # acceptance probability of each proposal
        "normal": mass,
        "uniform": mass * _SQRT2PI * math.exp(min(m * m / 2.0, 700.0)) / (b - a),
        "exponential": (
            lam * math.exp(min(lam * a - lam * lam / 2.0, 700.0)) * _SQRT2PI * mass
            if a >= 0
            else 0.0
        ),
    }
    method = max(rates, key=rates.__getitem__)
    accept = rates[method]
    if not accept >= _MIN_ACCEPTANCE or not mass > 0:
        raise ValueError(
            f"truncation interval [{a}, {b}] (in sd from the mean) is too far in the tail"
        )
    out = np.empty(n)
    filled = 0
    while filled < n:
        missing = n - filled
        k = min(max(missing, math.ceil(1.1 * missing / accept) + 16), _MAX_ROUND_DRAWS)
        if method == "normal":
            z = rng.standard_normal(k)
            z = z[(z >= a) & (z <= b)]
        elif method == "uniform":
            z = rng.uniform(a, b, size=k)
            z = z[rng.random(k) <= np.exp((m * m - z * z) / 2.0)]
        else:
            z = a + rng.standard_exponential(k) / lam
            z = z[(z <= b) & (rng.random(k) <= np.exp(-((z - lam) ** 2) / 2.0))]
        z = z[:missing]
        out[filled : filled + z.size] = z
        filled += z.size
    return out


def truncnorm_rates_hz(
    rng: np.random.Generator,
    n: int,
    mean_hz: float,
    sd_hz: float,
    low_hz: float = 0.0,
    high_hz: float = 100.0,
) -> np.ndarray:
    """Draw ``n`` rates (Hz) from a normal(mean, sd) truncated to ``[low_hz, high_hz]``.

    Exact, by vectorised rejection (redrawing the rejected values): for the SPEC's
    inhibitory rates the proposal is the untruncated normal itself; intervals far in a tail
    or narrow switch to an exponential or uniform proposal so that sampling stays fast (see
    :func:`_std_truncnorm`). ``sd_hz == 0`` gives ``mean_hz`` for every cell (which must then
    lie in the interval).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    n : int
        Number of draws (>= 0).
    mean_hz, sd_hz : float
        Mean and standard deviation of the untruncated normal, Hz (``sd_hz >= 0``).
    low_hz, high_hz : float, optional
        Truncation interval, Hz (``low_hz < high_hz``).

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, float64, every value in ``[low_hz, high_hz]``.

    Raises
    ------
    ValueError
        For ``n < 0``, ``sd_hz < 0``, ``low_hz >= high_hz``, non-finite parameters, or an
        interval so far in the tail (tens of sd) that its probability underflows.
    """
    n = operator.index(n)
    params = (mean_hz, sd_hz, low_hz, high_hz)
    if n < 0:
        raise ValueError(f"number of cells must be >= 0, got {n}")
    if not all(math.isfinite(float(p)) for p in params):
        raise ValueError(f"truncated normal parameters must be finite, got {params}")
    mean_hz, sd_hz, low_hz, high_hz = (float(p) for p in params)
    if sd_hz < 0:
        raise ValueError(f"truncated normal sd must be >= 0, got {sd_hz}")
    if not low_hz < high_hz:
        raise ValueError(f"truncated normal needs low < high, got [{low_hz}, {high_hz}]")
    if sd_hz == 0:
        if not low_hz <= mean_hz <= high_hz:
            raise ValueError(f"sd is 0 and mean {mean_hz} lies outside [{low_hz}, {high_hz}]")
        return np.full(n, mean_hz)
    a = (low_hz - mean_hz) / sd_hz
    b = (high_hz - mean_hz) / sd_hz
    if b > 0:
        z = _std_truncnorm(rng, n, a, b)
    else:  # all of the interval below the mean: sample the mirror image
        z = -_std_truncnorm(rng, n, -b, -a)
    return np.clip(mean_hz + sd_hz * z, low_hz, high_hz)


# ---------------------------------------------------------------------------------------------
# Spike bins
# ---------------------------------------------------------------------------------------------


def _check_rates_profile(
    rates_hz: np.ndarray, profile: np.ndarray, bin_ms: float
) -> tuple[np.ndarray, np.ndarray, float]:
    rates = np.asarray(rates_hz, dtype=float)
    prof = np.asarray(profile, dtype=float)
    if rates.ndim != 1 or prof.ndim != 1:
        raise ValueError(
            f"rates_hz and profile must be 1-D, got shapes {rates.shape} and {prof.shape}"
        )
    if not np.all(np.isfinite(rates)) or np.any(rates < 0):
        raise ValueError("rates_hz must be finite and >= 0")
    if not np.all(np.isfinite(prof)) or np.any(prof < 0):
        raise ValueError("rate profile must be finite and >= 0")
    bin_ms = float(bin_ms)
    if not (bin_ms > 0 and math.isfinite(bin_ms)):
        raise ValueError(f"bin_ms must be a positive number, got {bin_ms}")
    return rates, prof, bin_ms


def poisson_bins(
    rng: np.random.Generator,
    rates_hz: np.ndarray,
    profile: np.ndarray,
    bin_ms: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Spike bins of cells firing at ``rates_hz[i] * profile[k]``, by time rescaling.

    Definition (SPEC 7): for cell ``i`` and bin ``k`` the count is
    ``Poisson(lam_ik)``, ``lam_ik = rates_hz[i] * profile[k] * bin_ms / 1000``, and the bin
    holds one spike (at its start) when the count is positive. Equivalently, cell ``i`` is an
    inhomogeneous Poisson process whose intensity is piecewise constant over the bins; bin
    ``k`` has at least one event with probability ``1 - exp(-lam_ik)``, independently of the
    other bins. That process is sampled exactly by time rescaling: its total number of events
    is ``Poisson(rates_hz[i] * sum(profile) * bin_ms / 1000)``, and given the total the events
    are independent and uniform in cumulative-profile space, whose map to bins (the
    cumulative profile) is the same for every cell. So the events of all cells are drawn as
    one pool, sorted and binned with one ``searchsorted`` (of the bin edges into the sorted
    events), and dealt to the cells in uniformly random order. Bins with several events are
    kept once. Cost: O(spikes * log(spikes) + n_bins), no (cells x bins) array.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    rates_hz : numpy.ndarray
        Shape ``(n_cells,)``, rates in Hz, finite and >= 0.
    profile : numpy.ndarray
        Shape ``(n_bins,)``, dimensionless rate profile shared by the cells, finite and >= 0.
    bin_ms : float, optional
        Bin width in ms.

    Returns
    -------
    cell_idx, bin_idx : numpy.ndarray
        int64 arrays of equal length, one entry per spike, sorted by cell then bin; a
        spike's time is ``bin_idx * bin_ms`` after the start of the raster.
    """
    rates, prof, bin_ms = _check_rates_profile(rates_hz, profile, bin_ms)
    n_bins = prof.size
    edges = np.empty(n_bins + 1)
    edges[0] = 0.0
    np.cumsum(prof, out=edges[1:])
    total = float(edges[-1])
    counts = rng.poisson(rates * (total * bin_ms / 1000.0))
    n_events = int(counts.sum())
    if n_events == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # All events of all cells, in cumulative-profile space: iid uniform on [0, total).
    u = rng.random(n_events)
    u *= total
    # Bin them in sorted order (a binary search per bin edge, not per event) ...
    u.sort()
    below = np.searchsorted(u, edges, side="left")  # events before each edge
    # random() <= 1 - 2**-53 makes u < total after rounding, so every event lies before the
    # last edge; pinning the edges after the last bin of positive width keeps that true even
    # if it were not.
    below[int(np.flatnonzero(prof)[-1]) + 1 :] = n_events
    bins = np.repeat(np.arange(n_bins, dtype=np.int64), np.diff(below))
    del u, below
    # ... and hand the sorted events to the cells in uniformly random order: a random
    # arrangement of the order statistics of iid uniforms is again iid uniform, so each cell
    # receives its own iid events exactly as if it had drawn them itself.
    labels = np.repeat(np.arange(rates.size, dtype=np.int64), counts)
    rng.shuffle(labels)
    keys = labels
    keys *= n_bins
    keys += bins
    del bins
    keys.sort()
    keep = np.empty(keys.size, dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    bin_idx = keys[keep]
    del keys, keep
    cell_idx = np.empty_like(bin_idx)
    np.divmod(bin_idx, n_bins, out=(cell_idx, bin_idx))
    return cell_idx, bin_idx


def poisson_bins_direct(
    rng: np.random.Generator,
    rates_hz: np.ndarray,
    profile: np.ndarray,
    bin_ms: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference sampler of :func:`poisson_bins`: one Poisson draw per cell and bin.

    Draws ``Poisson(rates_hz[i] * profile[k] * bin_ms / 1000)`` for the whole (cells x bins)
    matrix, in chunks of cells to bound memory, and keeps the bins with a positive count.
    Same inputs, checks and return format as :func:`poisson_bins`; cost O(cells x bins).
    """
    rates, prof, bin_ms = _check_rates_profile(rates_hz, profile, bin_ms)
    n_bins = prof.size
    if n_bins == 0 or rates.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    scaled = prof * (bin_ms / 1000.0)
    chunk = max(1, _DIRECT_CHUNK_ELEMENTS // n_bins)
    cells, bins = [], []
    for start in range(0, rates.size, chunk):
        lam = rates[start : start + chunk, None] * scaled[None, :]
        c, k = np.nonzero(rng.poisson(lam))
        cells.append(c.astype(np.int64) + start)
        bins.append(k.astype(np.int64))
    return np.concatenate(cells), np.concatenate(bins)


# ---------------------------------------------------------------------------------------------
# Inhibitory rate profiles
# ---------------------------------------------------------------------------------------------


def population_rate_hz(
    bin_idx: np.ndarray, n_cells: int, n_bins: int, bin_ms: float = 1.0
) -> np.ndarray:
    """Population-average rate (Hz) per bin: spikes in the bin / n_cells / bin duration.

    Parameters
    ----------
    bin_idx : numpy.ndarray
        Bin of every spike of the population (as returned by :func:`poisson_bins`).
    n_cells : int
        Number of cells in the population (> 0), including silent ones.
    n_bins : int
        Number of bins of the raster.
    bin_ms : float, optional
        Bin width in ms.
    """
    n_cells = operator.index(n_cells)
    n_bins = operator.index(n_bins)
    bin_ms = float(bin_ms)
    if n_cells <= 0:
        raise ValueError(f"n_cells must be > 0, got {n_cells}")
    if n_bins < 0:
        raise ValueError(f"n_bins must be >= 0, got {n_bins}")
    if not (bin_ms > 0 and math.isfinite(bin_ms)):
        raise ValueError(f"bin_ms must be a positive number, got {bin_ms}")
    bin_idx = np.asarray(bin_idx)
    if bin_idx.size and (
        not np.issubdtype(bin_idx.dtype, np.integer) or bin_idx.min() < 0 or bin_idx.max() >= n_bins
    ):
        raise ValueError(f"bin_idx must hold integers in [0, {n_bins})")
    counts = np.bincount(bin_idx.ravel().astype(np.intp, copy=False), minlength=n_bins)
    return counts / (n_cells * bin_ms / 1000.0)
