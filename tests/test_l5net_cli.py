"""``l5net`` / ``python -m builder``: one command whose help lists every subcommand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builder.commands.cli import SUBCOMMANDS, l5net_main

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "builder", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_every_subcommand_and_the_command_it_is() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    for name, (_, command, prefix) in SUBCOMMANDS.items():
        line = next(x for x in proc.stdout.splitlines() if x.split()[:1] == [name])
        assert f"(= {' '.join((command, *prefix))})" in line
    assert set(SUBCOMMANDS) == {"build", "sweep", "run", "plot", "collect"}


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_is_its_command(name: str) -> None:
    _, command, prefix = SUBCOMMANDS[name]
    proc = _run(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"usage: {' '.join((command, *prefix))}" in proc.stdout


def test_build_check_gives_what_build_network_gives(tmp_path: Path) -> None:
    ours = _run("build", "--check", "params/L5NetParams.json", "7")
    theirs = subprocess.run(
        [sys.executable, "-m", "builder.commands.cli", "--check", "params/L5NetParams.json", "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout and "OK (seed 7)" in ours.stdout


def test_no_or_an_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    assert l5net_main([]) == 2
    assert l5net_main(["simulate"]) == 2
    assert "unknown subcommand 'simulate'" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_spec_builds_keep_freed_memory_for_reuse() -> None:
    # glibc accepts both settings (mmap threshold at its 32 MiB maximum, trim threshold 1 GiB);
    # the full-scale microcircuit's system time fell from 26 to 15 s with them
    from builder.commands.cli import _keep_freed_memory

    assert _keep_freed_memory() is True
