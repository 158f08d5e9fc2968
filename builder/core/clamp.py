"""Current-clamp waveform files (``file_current_clamp.input_file``): read and check.

The legacy format (SPEC section 2): an HDF5 file with two 1-D datasets,

* ``amplitudes``: the current of each sample (nA);
* ``dts``: the duration of each sample (ms), or one value for all samples.

Sample ``k`` holds from ``sum(dts[:k])`` until the next sample starts; after the last sample
the current is 0. The build checks the file (:func:`read_clamp`), ``run-network`` checks it
again before NEURON starts, and the run plays it with :mod:`builder.simulators.neuron.bionet_ext`.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

__all__ = ["read_clamp", "clamp_problems"]


def clamp_problems(path: str | os.PathLike) -> list[str]:
    """Everything wrong with a clamp file, one message each (empty when it is usable)."""
    try:
        read_clamp(path)
    except ValueError as exc:
        return [str(exc)]
    return []


def read_clamp(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Step times (ms) and amplitudes (nA) of a clamp file, the last step back to 0 nA.

    Raises
    ------
    ValueError
        Naming the file and what is wrong: missing or unreadable, a dataset missing or not
        1-D numeric, values not finite, a duration not > 0, or lengths that disagree.
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise ValueError(f"{path}: current-clamp file not found") from None
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 current-clamp file ({exc})") from None
    with f:
        arrays = {}
        for name, unit in (("amplitudes", "nA"), ("dts", "ms")):
            ds = f.get(name)
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu":
                raise ValueError(
                    f"{path}: needs a numeric dataset {name!r} ({unit}); the file has: "
                    f"{', '.join(f) or 'nothing'}"
                )
            arr = np.asarray(ds[()], dtype=np.float64)
            if arr.ndim > 1 and sum(s > 1 for s in arr.shape) <= 1:
                arr = arr.ravel()  # a (1, n) or (n, 1) array written by MATLAB or pandas
            if arr.ndim != 1 or arr.size == 0:
                raise ValueError(f"{path}: {name} must be a non-empty 1-D array, got {arr.shape}")
            if not np.isfinite(arr).all():
                bad = int(np.flatnonzero(~np.isfinite(arr))[0])
                raise ValueError(f"{path}: {name}[{bad}] is {arr[bad]} (values must be finite)")
            arrays[name] = arr
    amps, dts = arrays["amplitudes"], arrays["dts"]
    if (dts <= 0).any():
        bad = int(np.flatnonzero(dts <= 0)[0])
        raise ValueError(f"{path}: dts[{bad}] is {dts[bad]:g} ms; durations must be > 0")
    if dts.size == 1:
        dts = np.full(amps.size, dts[0])
    elif dts.size != amps.size:
        raise ValueError(
            f"{path}: {amps.size} amplitudes but {dts.size} dts (give one duration per "
            "amplitude, or a single one for all)"
        )
    times = np.concatenate([[0.0], np.cumsum(dts)])
    return times, np.concatenate([amps, [0.0]])
