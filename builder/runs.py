"""What every simulator's runner shares: the config lookup, signals, and safe output replacement.

Simulator-independent (imports no simulator): the NEURON runner (:mod:`builder.nrn.runner`)
and the NEST runner (:mod:`builder.nest.runner`) both use it, so a run of either stops the same
way on SIGINT/SIGTERM and replaces its output the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import RunError

__all__ = [
    "CONFIG_NAME",
    "Interrupted",
    "Stop",
    "find_config",
    "replace_dir",
    "write_failure",
]

CONFIG_NAME = "simulation_config.json"


class Interrupted(BaseException):
    """SIGINT or SIGTERM stopped the run (raised outside the simulation loop, or after it)."""

    def __init__(self, signum: int, where: str = "", collective: bool = False):
        self.signum = signum
        self.where = where
        self.collective = collective  # raised on every rank together: no MPI abort needed
        super().__init__(f"interrupted{(' ' + where) if where else ''}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class Stop:
    """SIGINT / SIGTERM handling of a run.

    Outside the simulation loop a signal raises :class:`Interrupted` at once. Inside it (see
    :meth:`deferred`), a Python exception raised in NEURON's step callback would be printed and
    swallowed by NEURON, and the run would go on: there the handler only records the signal,
    and the loop stops itself at its next check (``h.stoprun``), on every rank together.
    """

    def __init__(self) -> None:
        self.signum = 0
        self._defer = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum:  # already stopping (e.g. Ctrl-C reaching us directly and forwarded)
            return
        self.signum = signum
        if not self._defer:
            raise Interrupted(signum, "before the simulation started")

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Only record signals inside this block (the caller checks :attr:`signum`)."""
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1

    def check(self, where: str = "") -> None:
        if self.signum:
            raise Interrupted(self.signum, where)


def find_config(arg: str | os.PathLike | None) -> Path:
    """The config to run: a file, or a directory holding ``simulation_config.json``."""
    p = Path(arg) if arg else Path.cwd() / CONFIG_NAME
    if p.is_dir():
        p = p / CONFIG_NAME
    if not p.is_file():
        raise RunError(f"{p}: simulation config not found (build the network first)")
    return p.resolve()


def write_failure(exc: OSError, where: Path) -> str:
    name = exc.filename or where
    return f"{name}: cannot write the run's output ({exc.strerror or exc}); previous output kept"


def replace_dir(new: Path, target: Path) -> None:
    """Put the finished ``new`` directory in place of ``target`` (the previous run's output)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        if old is not None:
            os.replace(old, target)  # put the previous output back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
