"""The L5 recipe's inhibitory rate profiles (SPEC section 7), shared by all inhibitory cells.

Non-rhythmic: the excitatory population average, delayed (:func:`inh_profile_from_exc`);
rhythmic: a sinusoid (:func:`rhythmic_profile`). Each inhibitory cell's rate is its own rate
(:func:`builder.core.rasters.truncnorm_rates_hz`) times the profile, sampled in bins by
:func:`builder.core.rasters.poisson_bins`.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from ..core.rasters import _minmax_plus_half, population_rate_hz

__all__ = ["inh_profile_from_exc", "rhythmic_profile"]


def _whole_bins(value_ms: float, bin_ms: float, what: str) -> int:
    """``value_ms / bin_ms`` as a non-negative integer, or ValueError."""
    value_ms = float(value_ms)
    bin_ms = float(bin_ms)
    if not (bin_ms > 0 and math.isfinite(bin_ms)):
        raise ValueError(f"bin_ms must be a positive number, got {bin_ms}")
    if not math.isfinite(value_ms) or value_ms < 0:
        raise ValueError(f"{what} must be >= 0 ms, got {value_ms}")
    ratio = value_ms / bin_ms
    whole = round(ratio)
    if abs(ratio - whole) > 1e-9 * max(1.0, ratio):
        raise ValueError(f"{what} ({value_ms} ms) must be a whole number of {bin_ms} ms bins")
    return int(whole)


def inh_profile_from_exc(
    bin_idx: np.ndarray, n_cells: int, n_bins: int, shift_ms: float, bin_ms: float = 1.0
) -> np.ndarray:
    """Shared inhibitory rate profile from the excitatory spikes (SPEC 7, non-rhythmic case).

    The population-average excitatory rate per bin (:func:`population_rate_hz`) is shifted
    *later* by ``shift_ms`` -- ``out[k] = rate[k - s]`` with ``s = shift_ms / bin_ms``, and the
    first ``s`` bins (which have no earlier value) take ``rate[0]``; not circular -- then
    min-max normalised to [0, 1] and shifted by + 0.5, giving values in [0.5, 1.5]. If the
    shifted rate is constant (no spikes, a single bin, or a shift covering every bin) the
    normalisation is undefined and the profile is all 1.0 (the mid value).

    Parameters
    ----------
    bin_idx : numpy.ndarray
        Bin of every excitatory spike.
    n_cells : int
        Number of excitatory cells (> 0).
    n_bins : int
        Number of bins of the raster.
    shift_ms : float
        Lag of the profile behind the excitatory average; a whole number of bins, >= 0.
    bin_ms : float, optional
        Bin width in ms.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_bins,)``, float64.
    """
    rate = population_rate_hz(bin_idx, n_cells, n_bins, bin_ms)
    shift = _whole_bins(shift_ms, bin_ms, "inh_shift")
    shifted = np.empty_like(rate)
    if rate.size:
        s = min(shift, rate.size)
        shifted[:s] = rate[0]
        shifted[s:] = rate[: rate.size - s]
    return _minmax_plus_half(shifted) if shifted.size else shifted


def rhythmic_profile(
    n_bins: int, f_hz: float, mod: float, start_ms: float = 0.0, bin_ms: float = 1.0
) -> np.ndarray:
    """Shared shape of the rhythmic inhibitory rates (SPEC 7, rhythmic case).

    The legacy rate of cell ``i`` is ``r_i + A_i sin(2 pi f t)`` with
    ``A_i = r_i / (1/mod - 1)``, clipped at 0; that is ``r_i * s(t)`` with the shared shape
    ``s(t) = max(0, 1 + sin(2 pi f t) * mod / (1 - mod))``, which this function returns at
    each bin start ``t = (start_ms + k * bin_ms) / 1000`` s. For ``mod <= 0.5`` the shape stays
    in ``[1 - mod/(1-mod), 1 + mod/(1-mod)]``; above 0.5 its troughs are clipped to 0.

    Parameters
    ----------
    n_bins : int
        Number of bins (>= 0).
    f_hz : float
        Modulation frequency, Hz (> 0).
    mod : float
        Modulation depth, in the open interval (0, 1).
    start_ms : float, optional
        Time of the first bin start, ms (e.g. ``time.start`` converted to ms).
    bin_ms : float, optional
        Bin width in ms.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_bins,)``, float64, >= 0.
    """
    n_bins = operator.index(n_bins)
    f_hz, mod, start_ms, bin_ms = float(f_hz), float(mod), float(start_ms), float(bin_ms)
    if n_bins < 0:
        raise ValueError(f"n_bins must be >= 0, got {n_bins}")
    if not (0.0 < mod < 1.0):
        raise ValueError(f"rhythmicity mod must be in the open interval (0, 1), got {mod}")
    if not (f_hz > 0 and math.isfinite(f_hz)):
        raise ValueError(f"rhythmicity f must be a positive frequency in Hz, got {f_hz}")
    if not (bin_ms > 0 and math.isfinite(bin_ms)) or not math.isfinite(start_ms):
        raise ValueError(f"need finite start_ms and bin_ms > 0, got {start_ms}, {bin_ms}")
    t_s = (start_ms + np.arange(n_bins) * bin_ms) / 1000.0
    shape = 1.0 + np.sin(2.0 * np.pi * f_hz * t_s) * (mod / (1.0 - mod))
    return np.maximum(shape, 0.0)
