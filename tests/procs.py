"""Shared test helper: run a command in its own process group, killing the group if it hangs."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

import pytest


def run_group(
    args: Sequence[str | os.PathLike],
    *,
    cwd: str | os.PathLike,
    env: Mapping[str, str],
    timeout_s: float,
) -> subprocess.CompletedProcess[str]:
    """Run ``args``; on timeout kill its whole process group and fail the test as "hung"."""
    cmd = [str(a) for a in args]
    proc = subprocess.Popen(
        cmd,
        cwd=str(cwd),
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(
            f"hung: {' '.join(cmd)} still running after {timeout_s:g} s (killed)\n"
            f"--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"
        )
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
