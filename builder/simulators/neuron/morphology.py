"""Load a morphology file of any supported format into a NEURON cell with Import3d.

:func:`load_into` is what the project's ``L5PCtemplate`` calls (through NEURON's Python bridge)
when it is given a morphology path, so the same code reads the cell when the builder derives its
segment table and when BMTK instantiates it in the runner. The format is decided by content
(:func:`builder.core.morphology.morphology_format`), not by the file name:

* SWC -> ``Import3d_SWC_read``;
* Neurolucida ASC -> ``Import3d_Neurolucida3``;
* HDF5 (BBP/MorphIO h5) -> read with MorphIO and handed to Import3d as a temporary ASC file
  (contour soma, as h5 files converted from Neurolucida have) or SWC file (single-point or
  cylinder soma), which is then read as above.

Why h5 goes through a temporary file: NEURON's Import3d has no h5 reader, and building the
sections directly from MorphIO's arrays would re-implement what Import3d decides for us (the
soma centroid of a contour, which point a root neurite connects to, section naming and the
``somatic``/``basal``/``apical``/``axonal`` lists). Handing Import3d the same points in the
format that keeps the soma's meaning makes an h5 file give exactly the cell its ASC or SWC
source gives. MorphIO is imported only for h5 files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ...core.errors import ComponentError
from ...core.morphology import morphology_format

__all__ = ["load_into", "h5_to_import3d"]

_READERS = {"swc": "Import3d_SWC_read", "asc": "Import3d_Neurolucida3"}


def h5_to_import3d(path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Write the h5 morphology ``path`` as an ASC or SWC file in ``folder``; return its path.

    MorphIO reads every h5 soma as a contour. A soma whose points outline an area is written as
    Neurolucida ASC (SWC cannot hold a contour); one whose points lie on a line (an h5 made from
    an SWC: one point, the NeuroMorpho three points, or a stack of cylinders) is written back
    as SWC with that soma type, so the h5 gives the cell its SWC source gives.

    Raises
    ------
    ComponentError
        If MorphIO is missing or cannot read or convert the file.
    """
    try:
        import morphio
    except ImportError:
        raise ComponentError(
            f"{path}: reading HDF5 morphologies needs MorphIO (pip install morphio, part of "
            "the 'sim' extra)"
        ) from None
    try:
        morph = morphio.mut.Morphology(str(path))
        contour = _is_contour(morph.soma.points)
        if not contour:  # h5 somata are read as contours; a line of points is an SWC soma
            n = len(morph.soma.points)
            morph.soma.type = (
                morphio.SomaType.SOMA_SINGLE_POINT
                if n == 1
                else morphio.SomaType.SOMA_NEUROMORPHO_THREE_POINT_CYLINDERS
                if n == 3
                else morphio.SomaType.SOMA_CYLINDERS
            )
        out = Path(folder) / (Path(path).stem + (".asc" if contour else ".swc"))
        morph.write(str(out))
    except morphio.MorphioError as exc:  # covers RawDataError, UnknownFileType, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ComponentError(f"{path}: MorphIO cannot read this HDF5 morphology: {first}") from None
    return out


def _is_contour(points) -> bool:
    """Whether soma points outline an area (a contour) rather than lie on one line."""
    pts = np.asarray(points, dtype=float)
    if len(pts) < 3:
        return False
    rel = pts - pts.mean(axis=0)
    scale = float(np.abs(rel).max())
    if scale == 0.0:
        return False
    return bool(np.linalg.svd(rel / scale, compute_uv=False)[1] > 1e-6)


def _read(h, path: Path, fmt: str):
    reader = getattr(h, _READERS[fmt])()
    reader.quiet = 1
    try:
        reader.input(str(path))
    except RuntimeError:
        raise ComponentError(
            f"{path}: NEURON's {_READERS[fmt]} cannot read this {fmt.upper()} morphology "
            "(see NEURON's message above)"
        ) from None
    return reader


def load_into(cell, path: str) -> None:
    """Build the morphology ``path`` into the hoc object ``cell`` (its sections and lists).

    ``cell`` is a template instance with ``soma``, ``dend``, ``apic``, ``axon`` and the
    ``all``, ``somatic``, ``basal``, ``apical``, ``axonal`` section lists, as Import3d
    expects; sections it already holds should be deleted first.

    Parameters
    ----------
    cell : hoc object
        The cell being built (``this`` inside a template).
    path : str
        An SWC, Neurolucida ASC or h5 file.

    Raises
    ------
    ComponentError
        Naming the file, if its format is unknown or Import3d cannot read it.
    """
    from neuron import h

    h.load_file("stdlib.hoc")
    h.load_file("import3d.hoc")
    path = Path(str(path))
    fmt = morphology_format(path)
    with tempfile.TemporaryDirectory(prefix="l5net-morphology-") as tmp:
        source = path
        if fmt == "h5":
            source = h5_to_import3d(path, tmp)
            fmt = morphology_format(source)
        reader = _read(h, source, fmt)
        try:
            h.Import3d_GUI(reader, 0).instantiate(cell)
        except RuntimeError:
            raise ComponentError(
                f"{path}: NEURON's Import3d cannot build a cell from this morphology "
                "(see NEURON's message above)"
            ) from None
