"""Tell a morphology file's format from its content: SWC, Neurolucida ASC or HDF5.

The file name's extension is not trusted (legacy projects hold ``.txt`` SWC files and ASC files
named ``.swc``); :func:`morphology_format` reads the head of the file instead:

HDF5 (``"h5"``)
    The HDF5 signature ``\\x89HDF\\r\\n\\x1a\\n`` at offset 0 (or 512, 1024, ... when the file has
    a user block). The BBP/MorphIO layout (``points``, ``structure``) is checked when the file
    is read.
Neurolucida ASC (``"asc"``)
    Text whose first item (after ``;`` comments) is an s-expression ``(`` and which tags a
    soma or a neurite: ``("CellBody"``, ``(CellBody)``, ``(Dendrite)``, ``(Axon)``,
    ``(Apical)``.
SWC (``"swc"``)
    Text whose non-comment (``#``) lines are rows of seven numbers: id, type, x, y, z, radius,
    parent.

Anything else raises :class:`~builder.core.errors.ComponentError` naming the file and what it holds.
Core module: no NEURON.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ComponentError

__all__ = ["MORPHOLOGY_FORMATS", "morphology_format"]

#: The formats :func:`morphology_format` recognises.
MORPHOLOGY_FORMATS = ("swc", "asc", "h5")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Bytes read to decide (the whole file when smaller).
_HEAD_BYTES = 1 << 16
_ASC_TAG = re.compile(r'\(\s*(?:"CellBody"|CellBody\b|Dendrite\b|Axon\b|Apical\b)')
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SWC_ROW = re.compile(rf"^\s*{_NUMBER}(?:\s+{_NUMBER}){{6}}\s*$")


def _hdf5_signature_at(head: bytes) -> bool:
    offset = 0
    while offset + len(_HDF5_SIGNATURE) <= len(head):
        if head[offset : offset + len(_HDF5_SIGNATURE)] == _HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


def _shorten(text: str, limit: int = 60) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def morphology_format(path: str | os.PathLike) -> str:
    """The format of the morphology file ``path``: ``"swc"``, ``"asc"`` or ``"h5"``.

    Parameters
    ----------
    path : path-like
        A morphology file.

    Returns
    -------
    str
        One of :data:`MORPHOLOGY_FORMATS`.

    Raises
    ------
    ComponentError
        If the file cannot be read or is none of the three formats; the message names the file
        and what was found instead.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
            truncated = bool(f.read(1))
    except OSError as exc:
        raise ComponentError(f"{path}: cannot read the morphology ({exc})") from None
    expected = "expected SWC, Neurolucida ASC or HDF5 (MorphIO h5)"
    if _hdf5_signature_at(head):
        return "h5"
    if not head.strip():
        raise ComponentError(f"{path}: the morphology file is empty; {expected}")
    if b"\0" in head:
        raise ComponentError(
            f"{path}: binary data that is not HDF5 (starts with {head[:8]!r}); {expected}"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end of the head
        if not truncated or exc.start < len(head) - 4:
            text = head.decode("latin-1")
        else:
            text = head[: exc.start].decode("utf-8")
    lines = text.splitlines()
    if truncated and lines:
        lines = lines[:-1]  # the last line may be cut

    uncommented = "\n".join(line.split(";", 1)[0] for line in lines)
    if uncommented.lstrip().startswith("(") and _ASC_TAG.search(uncommented):
        return "asc"

    rows = 0
    for number, line in enumerate(lines, start=1):
        content = line.split("#", 1)[0]
        if not content.strip():
            continue
        if not _SWC_ROW.match(content):
            if uncommented.lstrip().startswith("("):
                found = "s-expressions without a CellBody, Dendrite, Axon or Apical tag"
            else:
                found = f"line {number} is {_shorten(line)}, not an SWC row of 7 numbers"
            raise ComponentError(f"{path}: not a morphology file: {found}; {expected}")
        rows += 1
    if rows == 0:
        raise ComponentError(f"{path}: the morphology file holds only comments; {expected}")
    return "swc"
