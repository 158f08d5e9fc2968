"""Build SONATA input networks, input rasters and BMTK configs for detailed NEURON cells."""

from ._version import __version__
from .build import BuildResult, SimulationBuilder
from .errors import (
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
