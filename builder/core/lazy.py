"""Modules imported on first use, for imports that only some code paths need."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LazyModule"]


class LazyModule:
    """Stands for module ``name`` and imports it at the first attribute looked up.

    ``h5py = LazyModule("h5py")`` at the top of a module lets its functions use ``h5py.File``
    as usual while a process that never calls them never imports h5py (~20 ms and its
    extension modules): a network build writes its node and edge files without it.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"
