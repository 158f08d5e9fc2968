"""MPI set-up for the NEURON runner: must run before ``neuron`` or BMTK is imported.

Two traps this module closes for the user:

* NEURON finds the pip ``mpich`` library only through ``MPI_LIB_NRN_PATH``; we point it at the
  ``libmpi.so.12`` of the running environment when the variable is not set.
* ``mpi4py.MPI`` must be imported *before* NEURON, otherwise NEURON does not see MPI and every
  rank silently runs the whole simulation. We import it only when launched by ``mpiexec``, so a
  serial run needs no MPI at all.

A rank that raises would leave the others waiting forever in a collective call; :func:`guard`
turns any exception into a message and ``MPI_Abort`` so the whole job ends at once (a signal
on one rank aborts with 128 + the signal number). An exception that every rank raises together
(its ``collective`` attribute is true, e.g. a run interrupted at the same step on all ranks)
passes through, so the ranks end cleanly.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.mpienv import launched_by_mpi

__all__ = ["MPIContext", "launched_by_mpi", "setup_mpi", "guard"]


@dataclass(frozen=True)
class MPIContext:
    comm: Any | None
    rank: int
    size: int

    def barrier(self) -> None:
        if self.comm is not None and self.size > 1:
            self.comm.Barrier()


def _mpi_library() -> Path | None:
    for base in (Path(sys.prefix), Path(sys.executable).resolve().parent.parent):
        for name in ("libmpi.so.12", "libmpi.so"):
            p = base / "lib" / name
            if p.exists():
                return p
    return None


def setup_mpi() -> MPIContext:
    """Initialise MPI if launched by ``mpiexec`` (before NEURON is imported)."""
    if "neuron" in sys.modules and launched_by_mpi():
        raise RuntimeError("setup_mpi() must run before NEURON is imported")
    if not launched_by_mpi():
        return MPIContext(None, 0, 1)
    if "MPI_LIB_NRN_PATH" not in os.environ:
        lib = _mpi_library()
        if lib is not None:
            os.environ["MPI_LIB_NRN_PATH"] = str(lib)
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:  # mpi4py raises RuntimeError without libmpi
        print(
            f"run-network: error: launched by mpiexec but MPI is unusable: {exc}", file=sys.stderr
        )
        sys.exit(2)
    comm = MPI.COMM_WORLD
    return MPIContext(comm, comm.Get_rank(), comm.Get_size())


@contextlib.contextmanager
def guard(ctx: MPIContext, prog: str = "run-network") -> Iterator[None]:
    """Abort the whole MPI job if this rank raises (a serial run just re-raises)."""
    try:
        yield
    except SystemExit:
        raise
    except BaseException as exc:
        if ctx.size > 1 and not getattr(exc, "collective", False):
            status = getattr(exc, "exit_status", None)
            if status is not None:  # a signal on this rank while the others may be waiting
                print(f"{prog}: rank {ctx.rank} of {ctx.size}: {exc}", file=sys.stderr, flush=True)
                ctx.comm.Abort(status)
            detail = "" if _is_user_error(exc) else "\n" + traceback.format_exc()
            print(
                f"{prog}: error on rank {ctx.rank} of {ctx.size}: {exc}{detail}",
                file=sys.stderr,
                flush=True,
            )
            ctx.comm.Abort(2 if _is_user_error(exc) else 1)
        raise


def _is_user_error(exc: BaseException) -> bool:
    from ...core.errors import BuildError

    return isinstance(exc, BuildError)
