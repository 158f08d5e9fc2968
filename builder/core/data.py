"""Where the project's shipped data lives: in the checkout, or inside an installed wheel.

The repository keeps its data in top-level folders (``biophys_components/``, ``params/``). A
wheel cannot install top-level data folders next to the package, so the build copies them into
the package as ``builder/_data/<folder>/`` (see ``setup.py``). :func:`project_data_dir` finds
either copy: the packaged one first (an installed wheel), then the folder beside the package
(a checkout, or an editable install of it).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_FOLDERS", "PACKAGED_DATA", "project_data_dir"]

#: Top-level folders of the repository that the wheel ships (as ``builder/_data/<name>``).
DATA_FOLDERS = ("biophys_components", "params")
#: The folder inside the package that holds the shipped copies.
PACKAGED_DATA = "_data"

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def project_data_dir(name: str) -> Path:
    """The shipped data folder ``name`` (one of :data:`DATA_FOLDERS`).

    Returns
    -------
    pathlib.Path
        ``<package>/_data/<name>`` when it exists (installed wheel), else
        ``<package>/../<name>`` (checkout); the latter is returned even if missing, so that
        messages can name where it was looked for.
    """
    if name not in DATA_FOLDERS:
        raise ValueError(f"{name!r} is not a shipped data folder; known: {DATA_FOLDERS}")
    packaged = _PACKAGE_DIR / PACKAGED_DATA / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent / name
