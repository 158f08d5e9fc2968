"""A dependency-free progress line for long loops, shown only on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["progress"]

T = TypeVar("T")


def progress(label: str, stream=None) -> Callable[[Iterable[T]], Iterator[T]]:
    """Return a wrapper that yields the items of an iterable while drawing ``label [###  ] i/n``.

    Nothing is drawn when ``stream`` (default stderr) is not a terminal.
    """
    out = stream or sys.stderr

    def wrap(items: Iterable[T]) -> Iterator[T]:
        items = list(items)
        n = len(items)
        tty = hasattr(out, "isatty") and out.isatty()
        t0 = time.perf_counter()
        for i, item in enumerate(items):
            if tty:
                done = int(30 * i / max(n, 1))
                out.write(f"\r{label} [{'#' * done:<30}] {i}/{n} {time.perf_counter() - t0:6.1f} s")
                out.flush()
            yield item
        if tty:
            out.write(f"\r{label} [{'#' * 30}] {n}/{n} {time.perf_counter() - t0:6.1f} s\n")
            out.flush()

    return wrap
