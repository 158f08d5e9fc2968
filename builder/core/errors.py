"""The builder's exception family.

Every error a user can cause derives from :class:`BuildError`; the command-line front end turns
any of them into one readable message on stderr and exit status 2.
"""

from __future__ import annotations

from collections.abc import Iterable


class BuildError(Exception):
    """Base class of every error the builder raises for bad input or an impossible build."""


class ParamsError(BuildError):
    """A params file failed validation.

    Parameters
    ----------
    source : str
        The file (or description of the object) that was validated.
    problems : iterable of str
        One human-readable line per problem, each starting with the dotted key path.
    """

    def __init__(self, source: str, problems: Iterable[str]):
        self.source = str(source)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"{self.source}: {n} problem{'s' if n != 1 else ''} found:\n{lines}")


class ComponentError(BuildError):
    """A cell component (template, morphology, mechanisms, segment table...) is missing or bad."""


class PlacementError(BuildError):
    """Synapses cannot be placed as the params ask (e.g. fewer segments than clusters)."""


class OutputError(BuildError):
    """The output directory cannot be written as asked (e.g. foreign files without --force)."""


class RunError(BuildError):
    """A built network cannot be simulated as configured (missing config, bad inputs...)."""
