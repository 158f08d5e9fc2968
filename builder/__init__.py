"""Build SONATA input networks, input rasters and BMTK configs for detailed NEURON cells."""

from .build import BuildResult, SimulationBuilder
from .errors import (
    BuildError,
    ComponentError,
    OutputError,
    ParamsError,
    PlacementError,
    RunError,
)

__version__ = "0.1.0"

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
