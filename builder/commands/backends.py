"""Which runner runs a config: ``target_simulator`` -> the backend's command-line entry point.

``run-network`` reads the config's ``target_simulator`` (SONATA; default ``NEURON``) and hands
its arguments to the registered backend. Entry points are ``"module:function"`` strings,
imported only when used, so choosing a backend imports no simulator. A new simulator registers
here (:func:`register`) instead of adding a branch to a runner.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from ..core.runs import CONFIG_NAME

__all__ = ["register", "simulators", "target_simulator", "entry_point", "dispatch"]


_REGISTRY: dict[str, str] = {
    "NEURON": "builder.simulators.neuron.runner:main",
    "NEST": "builder.simulators.nest.runner:main",
}


#: other names configs use for the same runners: BMTK writes "BioNet" (its NEURON simulator)
#: and "PointNet"; SONATA also names CoreNEURON (our NEURON runner with ``--engine``)
_ALIASES = {"BIONET": "NEURON", "CORENEURON": "NEURON", "POINTNET": "NEST"}


def register(name: str, entry: str) -> None:
    """Make ``entry`` (``"package.module:function"``, taking argv, returning an exit status)
    run the configs whose ``target_simulator`` is ``name`` (case-insensitive)."""
    if ":" not in entry:
        raise ValueError(f"entry point {entry!r} is not 'module:function'")
    _REGISTRY[name.upper()] = entry


def simulators() -> list[str]:
    """Names of the registered simulators."""
    return sorted(_REGISTRY)


def target_simulator(config: str | os.PathLike) -> str | None:
    """The ``target_simulator`` of a config file or directory (upper case; ``NEURON`` when the
    key is absent), or None when there is no readable config there."""
    p = Path(config)
    if p.is_dir():
        p = p / CONFIG_NAME
    try:
        raw = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("simulation"), str):  # BMTK's split config: the simulation file says
        from ..core.checks import merge_simulation_child

        raw = merge_simulation_child(raw, p.resolve(), [])
    value = raw.get("target_simulator", "NEURON")
    if not isinstance(value, str):
        return None
    return _ALIASES.get(value.upper(), value.upper())


def entry_point(name: str) -> Callable[[list[str]], int]:
    """The registered entry point of simulator ``name``."""
    module, func = _REGISTRY[name.upper()].split(":")
    return getattr(importlib.import_module(module), func)


def _config_argument(argv: list[str]) -> str | None:
    """The config or directory named on the command line (the first existing path argument)."""
    for a in argv:
        if not a.startswith("-") and (Path(a).is_dir() or Path(a).is_file()):
            return a
    return None


def dispatch(argv: list[str], current: str = "NEURON") -> Callable[[list[str]], int] | None:
    """The entry point to hand ``argv`` to when its config is for another simulator than
    ``current``; None when ``current`` should run it (or there is no config to read)."""
    args = argv[1:] if argv and argv[0] == "plot" else argv
    target = _config_argument(args)
    name = target_simulator(target if target is not None else Path.cwd())
    if name is None or name == current.upper():
        return None
    if name not in _REGISTRY:
        where = Path(target) if target is not None else Path.cwd()

        def unknown(_argv: list[str]) -> int:
            import sys

            print(
                f"run-network: error: {where}: target_simulator {name!r} has no runner "
                f"(known: {', '.join(simulators())})",
                file=sys.stderr,
            )
            return 2

        return unknown
    return entry_point(name)
