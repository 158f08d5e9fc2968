"""Named, independent random streams derived from one seed.

Randomness is never global: each consumer asks for its own :class:`numpy.random.Generator`
keyed by what it draws for (``stream(seed, "edges", "exc_stim")``). Keys are hashed into the
``spawn_key`` of a :class:`numpy.random.SeedSequence`, so streams are independent of each
other, of the order in which they are requested and of the number of MPI ranks, and adding a
new consumer never changes the draws of an existing one.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["stream", "stream_key"]


def stream_key(*key: str | int) -> tuple[int, ...]:
    """Turn a key of strings and integers into a tuple of 32-bit words (stable across runs)."""
    words = []
    for k in key:
        if isinstance(k, bool) or not isinstance(k, (str, int, np.integer)):
            raise TypeError(f"stream key parts must be str or int, got {k!r}")
        if isinstance(k, str):
            words.append(zlib.crc32(k.encode("utf-8")))
        else:
            if k < 0:
                raise ValueError(f"stream key integers must be >= 0, got {k}")
            words.append(int(k))
    return tuple(words)


def stream(seed: int, *key: str | int) -> np.random.Generator:
    """Return the generator for ``key`` under ``seed``.

    Parameters
    ----------
    seed : int
        The build's seed (non-negative).
    *key : str or int
        What the stream draws for, e.g. ``("groups", "dend")``.

    Returns
    -------
    numpy.random.Generator
        A PCG64 generator; the same (seed, key) always gives the same stream.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=stream_key(*key)))
    )
