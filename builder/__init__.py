"""Build SONATA input networks, input spike rasters and BMTK simulation configs for detailed cells."""

from .errors import (
    BuildError,
    ComponentError,
    OutputError,
    ParamsError,
    PlacementError,
    RunError,
)
from .build import BuildResult, SimulationBuilder

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
