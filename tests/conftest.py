"""Shared fixtures: a tiny L5 network built once per session, and the runner in a subprocess.

The tiny network is the default L5 cell with its inputs shrunk through ``--set`` (a few hundred
synapses, 0.3 s); NEURON holds one mechanism library and BMTK keeps global state per process,
so every simulation runs ``run_network.py`` in its own subprocess (optionally under
``mpiexec``), in its own process group so that a hung job can be killed whole.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from procs import run_group

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = ROOT / "params" / "L5NetParams.json"

#: ``--set`` overrides of the tiny network: 0.3 s, ~465 synapses (86 excitatory inputs).
TINY_OVERRIDES = (
    "time.stop=0.3",
    "lengths.apic=100",
    "lengths.basal_dist=100",
    "lengths.basal_prox=50",
    "n_soma_syns=10",
)
TINY_SEED = 1
TINY_TSTOP_MS = 300.0


@dataclass(frozen=True)
class RunResult:
    """What a runner subprocess did."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float

    def describe(self) -> str:
        """The command, its status and its output, for assertion messages."""
        return (
            f"$ {' '.join(self.args)}\nexit {self.returncode} after {self.wall_s:.1f} s\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        )


@pytest.fixture(scope="session")
def sim_env() -> dict[str, str]:
    """Environment for runner subprocesses: this venv's ``bin`` (nrnivmodl, mpiexec) first."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    return env


@pytest.fixture(scope="session")
def tiny_network(tmp_path_factory: pytest.TempPathFactory, sim_env: dict[str, str]) -> Path:
    """A tiny network built once per session (treat as read-only; copy it to modify)."""
    out = tmp_path_factory.mktemp("tiny_network") / "net"
    cmd = [sys.executable, str(ROOT / "build_network.py"), str(DEFAULT_PARAMS), str(TINY_SEED)]
    cmd += ["-o", str(out), "-q"]
    for item in TINY_OVERRIDES:
        cmd += ["--set", item]
    proc = subprocess.run(
        cmd, cwd=out.parent, env=sim_env, capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        pytest.fail(f"building the tiny network failed:\n{proc.stdout}\n{proc.stderr}")
    return out


@pytest.fixture(scope="session")
def run_network(
    tmp_path_factory: pytest.TempPathFactory, sim_env: dict[str, str]
) -> Callable[..., RunResult]:
    """Run ``run_network.py`` in a subprocess; returns a :class:`RunResult`.

    Call as ``run_network(target, *options, np=None, cwd=None, timeout_s=120, env=None,
    command=None)``: ``target`` (a path or ``None`` for no argument) and ``options`` go on the
    command line; ``np`` runs under ``mpiexec -n np``; ``cwd`` defaults to an empty scratch
    directory (so nothing relies on the working directory); ``command`` replaces
    ``[python, run_network.py]`` (e.g. ``[python, "-c", driver]``). A run that outlives
    ``timeout_s`` has its whole process group killed and fails the test.
    """
    neutral = tmp_path_factory.mktemp("neutral_cwd")

    def run(
        target: str | os.PathLike | None,
        *options: str,
        np: int | None = None,
        cwd: str | os.PathLike | None = None,
        timeout_s: float = 120.0,
        env: dict[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> RunResult:
        args = list(command or [sys.executable, str(ROOT / "run_network.py")])
        if target is not None:
            args.append(str(target))
        args += ["--no-progress", *options]
        if np is not None:
            exe = shutil.which("mpiexec", path=sim_env["PATH"])
            if exe is None:
                pytest.skip("mpiexec not found (pip install mpich)")
            args = [exe, "-n", str(np), *args]
        t0 = time.perf_counter()
        proc = run_group(
            args, cwd=cwd or neutral, env={**sim_env, **(env or {})}, timeout_s=timeout_s
        )
        out, err = proc.stdout, proc.stderr
        return RunResult(args, proc.returncode, out, err, time.perf_counter() - t0)

    return run
