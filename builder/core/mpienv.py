"""The one place that knows MPI launchers' environment variables (MPICH/Hydra, PMIx, Open MPI,
Slurm's PMI): whether we were started by ``mpiexec``, the job's size and our rank, and an
environment for a child process that must not join the job. Imports no MPI library.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["launched_by_mpi", "world_size", "world_rank", "without_launcher", "LAUNCHER_PREFIXES"]

#: Variables whose presence says a launcher started this process.
_LAUNCHED = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "HYDI_CONTROL_FD")
_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
_RANK = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
#: Prefixes of every launcher variable: a child that inherits them may try to join the job.
LAUNCHER_PREFIXES = (
    "PMI_", "PMIX_", "HYDI_", "HYDRA_", "OMPI_", "MPI_LOCAL", "MPIR_", "I_MPI_", "SLURM_PMI",
    "SLURM_STEP_",
)  # fmt: skip


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def launched_by_mpi(environ: Mapping[str, str] | None = None) -> bool:
    """Whether an MPI launcher started this process."""
    env = _env(environ)
    return any(v in env for v in _LAUNCHED)


def _first_int(env: Mapping[str, str], keys: tuple[str, ...], default: int) -> int:
    for key in keys:
        v = env.get(key)
        if v and v.isdigit():
            return int(v)
    return default


def world_size(environ: Mapping[str, str] | None = None) -> int:
    """Ranks of the MPI job we were launched in (1 when not under a launcher)."""
    env = _env(environ)
    return _first_int(env, _SIZE, 1) if launched_by_mpi(env) else 1


def world_rank(environ: Mapping[str, str] | None = None) -> int:
    """Our rank in the MPI job (0 when not under a launcher)."""
    return _first_int(_env(environ), _RANK, 0)


def without_launcher(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without any launcher variable (for child processes)."""
    return {k: v for k, v in _env(environ).items() if not k.startswith(LAUNCHER_PREFIXES)}
