"""What every simulator's runner shares: the config lookup, signals, and safe output replacement.

Simulator-independent (imports no simulator): the NEURON runner
(:mod:`builder.simulators.neuron.runner`) and the NEST runner
(:mod:`builder.simulators.nest.runner`) both use it, so a run of either stops the same way on
SIGINT/SIGTERM and replaces its output the same way.
"""

from __future__ import annotations

import argparse
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
    "run_parser",
    "write_failure",
]

CONFIG_NAME = "simulation_config.json"
#: The resolved spec a spec build keeps beside its config (it marks a spec build).
SPEC_COPY = "spec.json"


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

    def report(self, command: str = "run-network") -> str:
        """The one line a runner prints when a signal stopped it before its output landed."""
        name = signal.Signals(self.signum).name
        return (
            f"\n{command}: {name}: {self}; nothing was written "
            "(the previous output, if any, is as it was)"
        )


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


def run_parser() -> argparse.ArgumentParser:
    """The command line of ``run-network`` (every backend parses the same options)."""
    from .._version import __version__

    p = argparse.ArgumentParser(
        prog="run-network",
        description="Run a built network in NEURON (BMTK BioNet); serial or under mpiexec. "
        "A sweep directory (build-network sweep) runs all its pending runs.",
        epilog="Other commands:\n"
        "  run-network plot DIR [-o PLOTDIR]   figures of a built (and run) network\n"
        "  run-network collect SWEEPDIR        summary.csv + summary_rate.png of a sweep\n"
        "Examples:\n"
        "  run-network runs/7 --plot\n"
        "  mpiexec -n 2 python run_network.py runs/7\n"
        "  run-network sweeps/s1 -j 2 --plot && run-network collect sweeps/s1\n"
        "Output rates exclude the first run.warmup_ms of input (the start-up transient).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "config",
        nargs="?",
        help="simulation_config.json or its directory (default ./simulation_config.json)",
    )
    p.add_argument(
        "--no-merge",
        action="store_true",
        help="one point process per synapse (reference mode; slower)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress line")
    p.add_argument(
        "--bmtk-inputs",
        action="store_true",
        help="let BMTK build the spike inputs and the connections between cells edge by edge "
        "(slower; same network)",
    )
    p.add_argument(
        "--no-settle",
        action="store_true",
        help="start from v_init everywhere instead of the resting steady state "
        "(legacy behaviour: spurious spikes in the first ~50 ms)",
    )
    p.add_argument(
        "--engine",
        choices=("neuron", "coreneuron"),
        default=None,
        help="simulation engine (default: the config's run.engine, else neuron); coreneuron "
        "compiles the mechanisms with nrnivmodl -coreneuron and runs them in CoreNEURON, "
        "same spikes, faster",
    )
    p.add_argument(
        "-t",
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="threads per process (default: the config's run.n_thread, else 1): NEURON's "
        "pc.nthread (with fewer cells than threads each cell is cut into N pieces by "
        "multisplit) or NEST's local_num_threads",
    )
    p.add_argument(
        "--plot",
        action="store_true",
        help="write the PNG figures into OUTDIR/output/plots after the run "
        "(same as 'run-network plot DIR'); for a sweep, of every finished run",
    )
    s = p.add_argument_group("sweep directories (built by 'build-network sweep')")
    s.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run N runs at once (local child processes)",
    )
    s.add_argument(
        "--slurm",
        action="store_true",
        help="write DIR/slurm_array.sh (one array task per pending run); run nothing",
    )
    s.add_argument(
        "--no-rerun-failed", action="store_true", help="leave runs that failed before alone"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true")
    g.add_argument("-q", "--quiet", action="store_true")
    return p
