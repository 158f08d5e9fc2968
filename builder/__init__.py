"""Build SONATA input networks, input rasters and BMTK configs for detailed NEURON cells."""

from ._version import __version__
from .core.errors import (
    BuildError,
    ComponentError,
    OutputError,
    ParamsError,
    PlacementError,
    RunError,
)

__all__ = [
    "BuildError",
    "ComponentError",
    "OutputError",
    "ParamsError",
    "PlacementError",
    "RunError",
    "SimulationBuilder",
    "BuildResult",
    "__version__",
]

_LAZY = {"SimulationBuilder": ".commands.build", "BuildResult": ".commands.build"}


def __getattr__(name: str) -> object:
    """The builder classes, imported on first use (the command line and the spec builder do
    not need the L5 recipe's modules)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
