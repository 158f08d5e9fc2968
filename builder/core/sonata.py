"""Writers for SONATA v0.1 network and spike files, from numpy column arrays.

This is part of the general layer: it knows populations, node and edge tables and spike trains,
nothing about any particular network recipe. Every writer

* takes one numpy array per column and writes each HDF5 dataset once, uncompressed and
  contiguous (libsonata's wheel cannot read gzip-compressed datasets);
* is atomic: it writes a temporary file next to the target and renames it into place with
  :func:`os.replace`, so a failure leaves neither a partial target nor the temporary file
  (inside a build's staging directory, :func:`builder.core.output.in_staging`, which is renamed
  into place whole, it writes the target directly and removes it on failure);
* is deterministic: object timestamps are off and the layout depends only on the input, so the
  same input gives byte-identical files.

Files stay readable by libsonata and by BMTK's own reader (``bmtk.utils.sonata``): HDF5 files are
in the format's original structures (node and edge files: written by :mod:`builder.core.h5write`
without the HDF5 library; spike files and :func:`write_edges`: through h5py with library-version
bounds ``earliest``..``v110``), readable by every HDF5 release since 1.8, and each
edge index holds ``node_id_to_ranges`` (the SONATA name) plus a hard link ``node_id_to_range``
(the name BMTK looks up) to the same dataset. Type tables are space-separated CSVs like BMTK's,
with the id column first and ``NULL`` for a missing value (which BMTK's reader turns into None).
"""

from __future__ import annotations

import csv
import functools
import numbers
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from .h5write import Dataset as _H5Dataset
from .h5write import H5Writer
from .lazy import LazyModule
from .output import atomic_path

if TYPE_CHECKING:
    import h5py
else:  # imported by the writers that need it (spikes, write_edges), not by a network build
    h5py = LazyModule("h5py")

__all__ = [
    "EdgeStreamWriter",
    "SpikeStreamWriter",
    "SONATA_MAGIC",
    "SONATA_VERSION",
    "SPIKE_SORTING",
    "edge_index",
    "write_csv_table",
    "write_edges",
    "write_nodes",
    "write_spikes",
    "write_spikes_multi",
]

#: Value of the root attribute ``magic`` of every SONATA HDF5 file.
SONATA_MAGIC = 0x0A7A
#: Value of the root attribute ``version`` ([major, minor]).
SONATA_VERSION = (0, 1)
#: Members of the HDF5 enum stored in the ``sorting`` attribute of a spikes population.
SPIKE_SORTING = {"none": 0, "by_id": 1, "by_time": 2}


@functools.cache
def _sorting_dtype() -> np.dtype:
    """The HDF5 enum of the spikes ``sorting`` attribute (what libsonata reads)."""
    return h5py.enum_dtype(SPIKE_SORTING, basetype=np.uint8)


_NULL = "NULL"

PathLike = str | os.PathLike


# ---------------------------------------------------------------------------------------------
# Atomic (:func:`builder.core.output.atomic_path`), deterministic file handling
# ---------------------------------------------------------------------------------------------


@contextmanager
def _h5_create(path: PathLike) -> Iterator[h5py.File]:
    """Create an HDF5 file atomically, without object timestamps, with SONATA root attributes."""
    with atomic_path(path) as tmp:
        fcpl, fapl = _file_plists()
        fid = h5py.h5f.create(os.fsencode(tmp), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl)
        with h5py.File(fid) as h5:
            root = h5py.h5g.open(fid, b"/")
            _attr(root, "magic", np.asarray(SONATA_MAGIC, dtype=np.uint32))
            _attr(root, "version", np.asarray(SONATA_VERSION, dtype=np.uint32))
            root.close()
            yield h5


@contextmanager
def _sonata_file(path: PathLike) -> Iterator[H5Writer]:
    """:func:`_h5_create` for our own writer (:mod:`builder.core.h5write`): the file is complete
    when the block ends, removed when it raises."""
    with atomic_path(path) as tmp:
        f = H5Writer(tmp)
        try:
            f.attr(f.root, "magic", np.uint32(SONATA_MAGIC))
            f.attr(f.root, "version", np.asarray(SONATA_VERSION, dtype=np.uint32))
            yield f
        except BaseException:
            f.abort()
            raise
        f.close()


def _put(f: H5Writer, group: Any, name: str, data: np.ndarray) -> _H5Dataset:
    """A dataset holding ``data`` (strings: variable-length UTF-8), written now."""
    if data.dtype.kind == "O":
        return f.strings(group, name, data.tolist())
    ds = f.dataset(group, name, data.shape, data.dtype)
    f.write(ds, 0, data)
    return ds


@functools.cache
def _file_plists() -> tuple[h5py.h5p.PropFCID, h5py.h5p.PropFAID]:
    """File creation (no timestamps on the root group) and access (HDF5 1.10 format) lists."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_V110)
    return fcpl, fapl


def _group(parent: h5py.Group, name: str) -> h5py.Group:
    """Create one child group without timestamps (independent of the h5py version's default)."""
    return h5py.Group(_gid(parent.id, name))


def _gid(parent: Any, name: str) -> h5py.h5g.GroupID:
    """:func:`_group` at the low level: the new group's id (no high-level wrapper)."""
    return h5py.h5g.create(parent, name.encode("utf-8"), gcpl=_gcpl())


def _attr(obj: Any, name: str, data: np.ndarray) -> None:
    """Attribute ``name`` = ``data`` on a low-level object: the calls of h5py's
    ``attrs.create`` for a new attribute (the same bytes), without its per-call overhead."""
    ftype, mtype = _attr_types(data.dtype)
    attr = h5py.h5a.create(obj, name.encode("ascii"), ftype, h5py.h5s.create_simple(data.shape))
    try:
        attr.write(data, mtype=mtype)
    finally:
        attr.close()


_ATTR_TYPES: dict[tuple[str, bool], tuple[Any, Any]] = {}


def _attr_types(dtype: np.dtype) -> tuple[Any, Any]:
    """(file type, memory type) of an attribute, as h5py makes them (``py_create`` logical
    and bit-for-bit); keyed by the dtype's string and whether it is h5py's string dtype, since
    numpy's equality ignores the tag that marks variable-length strings."""
    key = (dtype.str, h5py.check_string_dtype(dtype) is not None)
    types = _ATTR_TYPES.get(key)
    if types is None:
        types = _ATTR_TYPES[key] = (
            h5py.h5t.py_create(dtype, logical=True),
            h5py.h5t.py_create(dtype),
        )
    return types


@functools.cache
def _gcpl() -> h5py.h5p.PropGCID:
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return gcpl


def _dataset(group: h5py.Group, name: str, data: np.ndarray, dtype: Any = None) -> h5py.Dataset:
    """Write one contiguous, uncompressed dataset in a single call (objects: UTF-8 strings)."""
    data = np.asarray(data) if dtype is None else np.asarray(data, dtype=dtype)
    if data.dtype.kind == "O":
        data = data.astype(h5py.string_dtype("utf-8"))
    return group.create_dataset(name, data=data, track_times=False)


# ---------------------------------------------------------------------------------------------
# Input checks and conversions
# ---------------------------------------------------------------------------------------------


def _ids(values: Any, name: str, n: int | None = None, upper: int | None = None) -> np.ndarray:
    """Check a 1-D array of non-negative integers (optionally of length n, below upper)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name}: expected {n} values, got {len(arr)}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0:
        raise ValueError(f"{name}: ids must be >= 0, got {lo}")
    if upper is not None and hi >= upper:
        raise ValueError(f"{name}: id {hi} out of range for a population of {upper} nodes")
    return arr.astype(np.uint64, copy=False)


def _column(name: str, values: Any, n: int) -> np.ndarray:
    """Check one per-row column and convert it to a dtype libsonata and BMTK both read."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid column name {name!r}")
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"column {name!r}: expected a 1-D array of {n} values, got {arr.shape}")
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.uint8)  # numpy bool would become an HDF5 enum libsonata cannot read
    if kind in "iu" or arr.dtype in (np.float32, np.float64):
        return arr
    if kind == "f":
        return arr.astype(np.float64)
    if kind in "US" or (kind == "O" and all(isinstance(v, str) for v in arr.tolist())):
        text = arr.astype(str) if kind != "O" else arr
        return np.asarray(text, dtype=object)  # variable-length UTF-8 strings
    raise ValueError(f"column {name!r}: unsupported dtype {arr.dtype}")


def _write_columns(
    group: h5py.Group, columns: Mapping[str, Any] | None, n: int, order: np.ndarray | None = None
) -> None:
    for name, values in (columns or {}).items():
        arr = _column(name, values, n)
        _dataset(group, name, arr if order is None else arr[order])


def _type_ids(
    type_ids: Any, name: str, n: int | None, types: Sequence[Mapping[str, Any]], id_key: str
) -> tuple[np.ndarray, list[int]]:
    """Check the per-row type ids against the type table; return ids and the declared ids."""
    declared: list[int] = []
    for i, row in enumerate(types):
        if id_key not in row:
            raise ValueError(f"{name} table row {i} has no {id_key!r}")
        tid = row[id_key]
        if isinstance(tid, bool) or not isinstance(tid, numbers.Integral) or tid < 0:
            raise ValueError(f"{name} table row {i}: {id_key} must be an integer >= 0, got {tid!r}")
        declared.append(int(tid))
    if len(set(declared)) != len(declared):
        raise ValueError(f"{name} table: duplicate {id_key} values in {declared}")
    ids = _ids(type_ids, id_key, n)
    # isin, then unique of the offenders only: np.unique of every id costs a sort (and numpy
    # 2.4's unique imports numpy.ma, ~40 ms, on its first call)
    unknown = ids[~np.isin(ids, np.asarray(declared, dtype=np.uint64))]
    if unknown.size:
        missing = np.unique(unknown)
        raise ValueError(f"{id_key}: values {missing.tolist()} have no row in the {name} table")
    return ids, declared


def _cell(value: Any) -> str:
    """Format one type-table value; None and NaN become NULL."""
    if value is None:
        return _NULL
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return _NULL
    if isinstance(value, (str, int, float)):  # bool is an int
        return str(value)
    raise TypeError(
        f"type-table values must be scalars (str, int, float, bool, None), got {value!r}"
    )


def _types_table(id_key: str, types: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Rows of a type table: id column first, then keys in order of first appearance."""
    header = [id_key]
    for row in types:
        header.extend(k for k in row if k not in header)
    return [header] + [[_cell(row.get(k)) for k in header] for row in types]


_CSV_SPECIAL = frozenset(' "\n\r')


def _write_types_csv(path: PathLike, table: list[list[str]]) -> None:
    """Write a type table as a space-separated CSV, the format BMTK writes and reads.

    The bytes of :mod:`csv`'s writer (minimal quoting); a table without a value to quote (the
    usual case) is joined directly, ~5x cheaper than the writer and a text-mode file.
    """
    plain = all(
        cell and _CSV_SPECIAL.isdisjoint(cell) for row in table for cell in row
    )  # (an empty value alone on its row would be quoted)
    if plain:
        text = "".join(" ".join(row) + "\n" for row in table).encode("utf-8")
        with atomic_path(path) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                view = memoryview(text)
                while len(view):
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=" ", lineterminator="\n")
        writer.writerows(table)


# ---------------------------------------------------------------------------------------------
# Public writers
# ---------------------------------------------------------------------------------------------


def write_nodes(
    h5_path: PathLike,
    csv_path: PathLike,
    population: str,
    node_type_ids: np.ndarray,
    node_types: list[dict],
    columns: dict[str, np.ndarray] | None = None,
) -> None:
    """Write one node population (``<pop>_nodes.h5``) and its node-types CSV.

    Node ids are ``0..n-1`` in the order of ``node_type_ids``. All nodes belong to group ``0``
    (``node_group_id`` = 0, ``node_group_index`` = node id); the group holds the per-node
    ``columns`` and exists (empty) when there are none, as BMTK's builder writes it.

    Parameters
    ----------
    h5_path, csv_path : path-like
        Target files; each is replaced atomically.
    population : str
        Population name (``/nodes/<population>``).
    node_type_ids : (n,) int array
        Node type of every node; each must have a row in ``node_types``.
    node_types : list of dict
        One dict per node type with key ``node_type_id`` and any scalar properties
        (``model_type``, ``model_template``, ``morphology``...). Keys missing from a row are
        written as ``NULL``, as are None and NaN values.
    columns : dict of str to (n,) array, optional
        Per-node properties (numbers, bools stored as uint8, or strings).

    Raises
    ------
    ValueError
        Inconsistent input (lengths, unknown or duplicate type ids, bad dtypes).
    OutputError
        A file cannot be written.
    """
    _check_name(population)
    type_ids, _ = _type_ids(node_type_ids, "node types", None, node_types, "node_type_id")
    table = _types_table("node_type_id", node_types)
    n = len(type_ids)
    checked = {name: _column(name, v, n) for name, v in (columns or {}).items()}  # before any file
    with _sonata_file(h5_path) as f:
        pop = f.group(f.group(f.root, "nodes"), population)
        ids = np.arange(n, dtype=np.uint64)
        _put(f, pop, "node_id", ids)
        _put(f, pop, "node_type_id", type_ids.astype(np.uint64, copy=False))
        _put(f, pop, "node_group_id", np.zeros(n, dtype=np.uint32))
        _put(f, pop, "node_group_index", ids)
        grp = f.group(pop, "0")
        for name, arr in checked.items():
            _put(f, grp, name, arr)
    _write_types_csv(csv_path, table)


def write_edges(
    h5_path: PathLike,
    csv_path: PathLike,
    population: str,
    source_population: str,
    target_population: str,
    source_ids: np.ndarray,
    target_ids: np.ndarray,
    edge_type_ids: np.ndarray,
    edge_types: list[dict],
    columns: dict[str, np.ndarray] | None = None,
    *,
    n_source_nodes: int,
    n_target_nodes: int,
    sort: bool = True,
) -> np.ndarray:
    """Write one edge population (``<src>_<trg>_edges.h5``) with both indices, and its types CSV.

    With ``sort=True`` (default) edges are written sorted by target node id, then source node id;
    the sort is stable, so edges with the same (target, source) keep their input order. With
    ``sort=False`` they are written in the given order. Either way both indices are exact:
    ``indices/target_to_source`` and ``indices/source_to_target`` each hold

    * ``node_id_to_ranges`` (``n_nodes`` x 2, uint64): for node ``i`` the rows ``[start, end)``
      of ``range_to_edge_id`` listing its edges; ``[0, 0]`` for a node without edges;
    * ``range_to_edge_id`` (``n_ranges`` x 2, uint64): ``[start, end)`` edge ids, one row per
      maximal run of consecutive edges with the same node, ordered by node id;
    * ``node_id_to_range``: a hard link to ``node_id_to_ranges`` (the name BMTK reads).

    All edges belong to group ``0`` (``edge_group_index`` = edge id), which holds ``columns``.

    Parameters
    ----------
    h5_path, csv_path : path-like
        Target files; each is replaced atomically.
    population : str
        Edge population name (``/edges/<population>``).
    source_population, target_population : str
        Node populations, stored as the ``node_population`` attribute of the id datasets.
    source_ids, target_ids, edge_type_ids : (n_edges,) int arrays
        Per-edge source node, target node and edge type.
    edge_types : list of dict
        One dict per edge type with key ``edge_type_id`` and any scalar properties; missing
        keys, None and NaN are written as ``NULL``.
    columns : dict of str to (n_edges,) array, optional
        Per-edge properties (``sec_id``, ``sec_x``, ``syn_weight``, ``nsyns``...), in input order.
    n_source_nodes, n_target_nodes : int
        Sizes of the source and target node populations (rows of the two indices).
    sort : bool
        Sort edges by (target, source) before writing (see above).

    Returns
    -------
    numpy.ndarray
        ``order`` (int64): written edge ``k`` is input edge ``order[k]``.

    Raises
    ------
    ValueError
        Inconsistent input (lengths, ids out of range, unknown type ids, bad dtypes).
    OutputError
        A file cannot be written.
    """
    for name in (population, source_population, target_population):
        _check_name(name)
    n_src, n_trg = (
        _count(n_source_nodes, "n_source_nodes"),
        _count(n_target_nodes, "n_target_nodes"),
    )
    src = _ids(source_ids, "source_ids", None, n_src)
    n_edges = len(src)
    trg = _ids(target_ids, "target_ids", n_edges, n_trg)
    type_ids, _ = _type_ids(edge_type_ids, "edge types", n_edges, edge_types, "edge_type_id")
    if type_ids.size and int(type_ids.max()) > np.iinfo(np.uint32).max:
        raise ValueError("edge_type_id values must fit in uint32")
    table = _types_table("edge_type_id", edge_types)
    for name, values in (columns or {}).items():
        _column(name, values, n_edges)

    order = np.lexsort((src, trg)) if sort else np.arange(n_edges)
    order = order.astype(np.int64, copy=False)
    src, trg, type_ids = src[order], trg[order], type_ids[order]

    with _h5_create(h5_path) as h5:
        pop = _group(_group(h5, "edges"), population)
        ds = _dataset(pop, "source_node_id", src, np.uint64)
        ds.attrs["node_population"] = source_population
        ds = _dataset(pop, "target_node_id", trg, np.uint64)
        ds.attrs["node_population"] = target_population
        _dataset(pop, "edge_type_id", type_ids, np.uint32)
        _dataset(pop, "edge_group_id", np.zeros(n_edges, dtype=np.uint32))
        _dataset(pop, "edge_group_index", np.arange(n_edges, dtype=np.uint64))
        _write_columns(_group(pop, "0"), columns, n_edges, order)
        indices = _group(pop, "indices")
        for name, keys, n_nodes in (
            ("source_to_target", src, n_src),
            ("target_to_source", trg, n_trg),
        ):
            node_to_ranges, range_to_edges = edge_index(keys, n_nodes)
            grp = _group(indices, name)
            _dataset(grp, "node_id_to_ranges", node_to_ranges)
            grp["node_id_to_range"] = grp["node_id_to_ranges"]  # hard link for BMTK
            _dataset(grp, "range_to_edge_id", range_to_edges)
    _write_types_csv(csv_path, table)
    return order


def edge_index(node_ids: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Build a SONATA edge index over the node ids of the edges, in edge order.

    Parameters
    ----------
    node_ids : (n_edges,) int array
        Node id of every edge (its source or its target), all below ``n_nodes``.
    n_nodes : int
        Size of the node population.

    Returns
    -------
    node_id_to_ranges : (n_nodes, 2) uint64 array
        Rows ``[start, end)`` of ``range_to_edge_id`` for each node; ``[0, 0]`` without edges.
    range_to_edge_id : (n_ranges, 2) uint64 array
        ``[start, end)`` edge ids of each maximal run of one node, grouped by node id (stable).
    """
    keys = np.asarray(node_ids, dtype=np.int64)
    n_edges = len(keys)
    if n_edges:
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    else:
        starts = np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], n_edges].astype(np.int64)
    run_node = keys[starts]
    by_node = np.argsort(run_node, kind="stable")
    range_to_edge_id = np.column_stack((starts[by_node], ends[by_node])).astype(np.uint64)
    counts = np.bincount(run_node, minlength=n_nodes)
    stop = np.cumsum(counts)
    node_id_to_ranges = np.column_stack((stop - counts, stop)).astype(np.uint64)
    node_id_to_ranges[counts == 0] = 0
    return node_id_to_ranges, range_to_edge_id.reshape(-1, 2)


def write_spikes_multi(
    path: PathLike,
    populations: Mapping[str, tuple[np.ndarray, np.ndarray]],
    sorting: str = "by_id",
) -> None:
    """Write a SONATA spikes file holding one or more populations.

    Each population gets ``/spikes/<pop>/timestamps`` (float64, attribute ``units`` = "ms"),
    ``/spikes/<pop>/node_ids`` (uint64) and the group attribute ``sorting``, an HDF5 enum
    {none: 0, by_id: 1, by_time: 2} (uint8 base) as libsonata reads it. The spikes are sorted to
    match: ``by_id`` by node id then time, ``by_time`` by time then node id, ``none`` keeps the
    given order.

    Parameters
    ----------
    path : path-like
        Target file; replaced atomically.
    populations : mapping of str to (node_ids, timestamps_ms)
        Per population: integer node ids and spike times in milliseconds, same length.
    sorting : {"by_id", "by_time", "none"}
        Order of the written spikes, declared in the ``sorting`` attribute.

    Raises
    ------
    ValueError
        Unknown sorting, mismatched lengths, negative ids or non-finite times.
    OutputError
        The file cannot be written.
    """
    if sorting not in SPIKE_SORTING:
        raise ValueError(f"sorting must be one of {sorted(SPIKE_SORTING)}, got {sorting!r}")
    prepared = []
    for pop_name, (node_ids, timestamps_ms) in populations.items():
        _check_name(pop_name)
        ts = np.asarray(timestamps_ms, dtype=np.float64)
        if ts.ndim != 1:
            raise ValueError(f"{pop_name}: timestamps must be 1-D, got shape {ts.shape}")
        if not np.all(np.isfinite(ts)):
            raise ValueError(f"{pop_name}: timestamps must be finite")
        ids = _ids(node_ids, f"{pop_name}: node_ids", len(ts))
        if sorting == "by_id":
            order = _sort_order(ids, ts)
        elif sorting == "by_time":
            order = _sort_order(ts, ids)
        else:
            order = None
        if order is not None:
            ids, ts = ids[order], ts[order]
        prepared.append((pop_name, ids, ts))
    with _h5_create(path) as h5:
        spikes = _group(h5, "spikes")
        for pop_name, ids, ts in prepared:
            grp = _group(spikes, pop_name)
            grp.attrs.create("sorting", SPIKE_SORTING[sorting], dtype=_sorting_dtype())
            _dataset(grp, "timestamps", ts).attrs["units"] = "ms"
            _dataset(grp, "node_ids", ids, np.uint64)


def write_spikes(
    path: PathLike,
    population: str,
    node_ids: np.ndarray,
    timestamps_ms: np.ndarray,
    sorting: str = "by_id",
) -> None:
    """Write a SONATA spikes file with one population (see :func:`write_spikes_multi`)."""
    write_spikes_multi(path, {population: (node_ids, timestamps_ms)}, sorting=sorting)


def write_csv_table(
    path: PathLike,
    header: list[str],
    columns: list[np.ndarray],
    sep: str = ",",
) -> None:
    """Write a plain CSV table (e.g. ``FunctionalGroups.csv``) atomically.

    Parameters
    ----------
    path : path-like
        Target file; replaced atomically.
    header : list of str
        Column names (first line).
    columns : list of 1-D arrays
        One array per header entry, all the same length. Numbers are written in their shortest
        round-trip form.
    sep : str
        One-character field separator.

    Raises
    ------
    ValueError
        Header and columns do not match.
    OutputError
        The file cannot be written.
    """
    if len(header) != len(columns):
        raise ValueError(f"{len(header)} header names for {len(columns)} columns")
    cols = [np.asarray(c) for c in columns]
    lengths = {c.shape for c in cols}
    if any(c.ndim != 1 for c in cols) or len(lengths) > 1:
        raise ValueError(f"columns must be 1-D and of equal length, got shapes {sorted(lengths)}")
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=sep, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(zip(*(c.tolist() for c in cols), strict=True))


def _sort_order(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray | None:
    """Stable order by ``primary`` then ``secondary``; None when already in that order.

    Equal to ``np.lexsort((secondary, primary))``; done as two stable passes, with integer keys
    narrowed to the smallest unsigned dtype (numpy radix-sorts keys of 16 bits or less).
    """
    if len(primary) < 2:
        return None
    up, same = primary[1:] > primary[:-1], primary[1:] == primary[:-1]
    sec_ok = secondary[1:] >= secondary[:-1]
    if np.all(up | (same & sec_ok)):
        return None
    order = np.argsort(_narrow(secondary), kind="stable")
    return order[np.argsort(_narrow(primary)[order], kind="stable")]


def _narrow(keys: np.ndarray) -> np.ndarray:
    """Unsigned integer keys in the smallest dtype that holds them (others unchanged)."""
    if keys.dtype.kind != "u" or keys.size == 0:
        return keys
    return keys.astype(np.min_scalar_type(int(keys.max())), copy=False)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid population name {name!r}")


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Streaming writers: edges and spikes appended in chunks, memory bounded by the chunk size
# ---------------------------------------------------------------------------------------------


def _write_rows(ds: h5py.Dataset, lo: int, data: np.ndarray) -> None:
    """``ds[lo:lo + len(data)] = data`` through the low-level API (the high-level selection
    machinery costs more than a small write itself; the bytes are the same)."""
    data = np.ascontiguousarray(data)
    if data.shape[0] == 0:
        return
    fspace = ds.id.get_space()
    fspace.select_hyperslab((lo,) + (0,) * (data.ndim - 1), data.shape)
    ds.id.write(h5py.h5s.create_simple(data.shape), fspace, data)


@functools.cache
def _dcpl(fill: Any, dtype: np.dtype) -> h5py.h5p.PropDCID:
    """The dataset creation property list of :func:`_dataset_empty` (made once per kind)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    if fill is not None:
        dcpl.set_fill_value(np.array(fill, dtype=dtype))
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_LATE)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_IFSET)
    else:
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


@functools.cache
def _file_type(dtype: np.dtype) -> h5py.h5t.TypeID:
    return h5py.h5t.py_create(dtype, logical=True)


def _dataset_empty(
    group: h5py.Group, name: str, n: int, dtype: Any, shape2: int = 0, fill: Any = None
) -> h5py.Dataset:
    """A contiguous dataset of ``n`` rows, allocated at creation, never filled (we write it all).

    Early allocation in creation order makes the file layout independent of how the data is
    later written (in one call or in chunks of any size). With ``fill``, the dataset is a
    constant instead: never allocated nor written, every read returns ``fill`` (no disk space).
    """
    return h5py.Dataset(_dsid_empty(group.id, name, n, dtype, shape2, fill))


def _dsid_empty(
    group: Any, name: str, n: int, dtype: Any, shape2: int = 0, fill: Any = None
) -> h5py.h5d.DatasetID:
    """:func:`_dataset_empty` at the low level: the new dataset's id (no high-level wrapper)."""
    shape = (n, shape2) if shape2 else (n,)
    dt = np.dtype(dtype)
    space = h5py.h5s.create_simple(shape, shape)
    return h5py.h5d.create(group, name.encode("utf-8"), _file_type(dt), space, dcpl=_dcpl(fill, dt))


def _id_dtype(n_values: int, compact: bool) -> np.dtype:
    """The unsigned dtype of ids in ``[0, n_values)``: uint32 when ``compact`` and they fit,
    else uint64."""
    return np.dtype(np.uint32 if compact and n_values <= (1 << 32) else np.uint64)


class EdgeStreamWriter:
    """Write one edge population of a known number of edges, appended in target order.

    The edges must come sorted by target node id, then source node id (as
    :func:`write_edges` with ``sort=True`` writes them); :meth:`append` checks that. Columns go
    straight to preallocated contiguous datasets in slices of at most ``chunk_edges`` rows;
    :meth:`close` then builds both SONATA indices by streaming over the written ids (the
    source index in buckets of sources whose ranges fit ``index_budget`` rows), so memory is
    bounded by the chunk size and the node counts, never by the number of edges. The data and
    indices equal those :func:`write_edges` writes for the same edges, and the file's bytes do
    not depend on the chunk size. With a single edge type, ``edge_type_id`` and
    ``edge_group_id`` are constant datasets (an HDF5 fill value: no space on disk, every reader
    sees the values). The type table CSV is written by :meth:`close` too.

    Every other dataset is contiguous and placed when it is created, so it has a fixed place
    in the file: its rows are written there with :func:`os.pwrite` (it releases the GIL, so
    other threads draw and write meanwhile, also while the kernel holds a writer back to let
    the disk catch up). The file's structure is written by :mod:`builder.core.h5write` (not
    the HDF5 library: ~20 objects per file cost more through it than a small projection's
    edges).

    Parameters
    ----------
    h5_path, csv_path : path-like
        Target files, each replaced atomically on a successful :meth:`close`.
    population, source_population, target_population : str
        Edge and node population names.
    n_edges : int
        Number of edges that will be appended (exactly).
    n_source_nodes, n_target_nodes : int
        Sizes of the node populations.
    edge_types : list of dict
        The edge type table (``edge_type_id`` + scalar properties).
    columns : dict of str to dtype
        Per-edge columns of group ``0`` and their dtypes (e.g. ``{"syn_weight": "f8"}``).
    chunk_edges : int
        Largest slice written in one HDF5 call (and read when building the indices).
    index_budget : int
        Largest number of source-index ranges placed at once (a bucket of sources).
    runs_in_memory : int
        Up to this many edges, :meth:`append` keeps each source run's first edge and source
        (4-8 + 1-4 bytes per run) and :meth:`close` sorts them by source at once (a radix sort
        for up to 65,536 sources; 8 more bytes per run); above it, :meth:`close` reads the
        source ids back from the file, bucket by bucket. Same bytes either way.
    compact : bool
        Store node ids as ``uint32`` when the population has at most 2**32 nodes, and
        ``edge_group_index`` and both indices as ``uint32`` when there are fewer than 2**32
        edges (default: ``uint64`` throughout). SONATA leaves the unsigned integer type open;
        libsonata, BMTK's reader and ours convert on read. 20 of 56 bytes per edge less.
    workspace : IndexWorkspace, optional
        Where the runs kept in memory and the sorted source ranges go: hand the same one to
        writers that run one after another (a build's projections) and they reuse its pages
        instead of faulting in fresh ones. Default: one of this writer's own. Same bytes.
    """

    def __init__(
        self,
        h5_path: PathLike,
        csv_path: PathLike,
        population: str,
        source_population: str,
        target_population: str,
        *,
        n_edges: int,
        n_source_nodes: int,
        n_target_nodes: int,
        edge_types: list[dict],
        columns: Mapping[str, Any] | None = None,
        chunk_edges: int = 1 << 22,
        index_budget: int = 1 << 25,
        runs_in_memory: int = 1 << 26,
        compact: bool = False,
        workspace: IndexWorkspace | None = None,
    ):
        for name in (population, source_population, target_population):
            _check_name(name)
        self.n_edges = _count(n_edges, "n_edges")
        self.n_src = _count(n_source_nodes, "n_source_nodes")
        self.n_trg = _count(n_target_nodes, "n_target_nodes")
        self.chunk = max(1, int(chunk_edges))
        self.index_budget = max(1, int(index_budget))
        self.csv_path = csv_path
        self.table = _types_table("edge_type_id", edge_types)
        self.declared = {int(t["edge_type_id"]) for t in edge_types}
        self.columns = {k: np.dtype(v) for k, v in (columns or {}).items()}
        for k in self.columns:
            _column(k, np.zeros(0, self.columns[k]), 0)
        self.src_dtype = _id_dtype(self.n_src, compact)
        self.trg_dtype = _id_dtype(self.n_trg, compact)
        self.row_dtype = _id_dtype(self.n_edges + 1, compact)  # edge and range ids, to n_edges
        self._cm = _sonata_file(h5_path)
        self.h5 = f = self._cm.__enter__()
        try:
            self.pop = f.group(f.group(f.root, "edges"), population)
            n = self.n_edges
            ds_src = f.dataset(self.pop, "source_node_id", n, self.src_dtype)
            f.attr(ds_src, "node_population", source_population)
            ds_trg = f.dataset(self.pop, "target_node_id", n, self.trg_dtype)
            f.attr(ds_trg, "node_population", target_population)
            # one edge type, one group: constant datasets that take no space on disk
            self.const_type = int(edge_types[0]["edge_type_id"]) if len(edge_types) == 1 else None
            ds_type = f.dataset(self.pop, "edge_type_id", n, np.uint32, fill=self.const_type)
            f.dataset(self.pop, "edge_group_id", n, np.uint32, fill=0)
            ds_gidx = f.dataset(self.pop, "edge_group_index", n, self.row_dtype)
            grp = f.group(self.pop, "0")
            ds_cols = {k: f.dataset(grp, k, n, dt) for k, dt in self.columns.items()}
            fd = f.fd  # rows go in place (_RawRows)
            self.raw_src = _RawRows(fd, ds_src)
            self.raw_trg = _RawRows(fd, ds_trg)
            self.raw_type = _RawRows(fd, ds_type) if self.const_type is None else None
            self.raw_gidx = _RawRows(fd, ds_gidx)
            self.raw_cols = {k: _RawRows(fd, ds_cols[k]) for k in self.columns}
        except BaseException:
            self._cm.__exit__(*sys.exc_info())
            raise
        self.pos = 0
        self._gidx: tuple[np.ndarray, int] = (np.zeros(0, dtype=self.row_dtype), 0)
        self.trg_counts = np.zeros(self.n_trg, dtype=np.int64)
        self.src_runs = np.zeros(self.n_src, dtype=np.int64)
        self._last: tuple[int, int] | None = None
        self._closed = False
        # the source runs of a projection that fits: (first edge, source) of each, kept in
        # compact dtypes for the source index instead of reading the ids back from the file
        # (at most one run per edge: room for n_edges in the workspace, whose pages an
        # earlier writer may have touched already; fresh ones are touched only as runs come)
        self._mem_runs: tuple[np.ndarray, np.ndarray] | None = None
        self._n_runs = 0
        self._ws: IndexWorkspace | None = None
        if self.n_edges <= int(runs_in_memory):
            ws = IndexWorkspace() if workspace is None else workspace
            if ws.owner is not None:
                self.abort()
                raise RuntimeError("this IndexWorkspace is in use by another EdgeStreamWriter")
            ws.owner, self._ws = self, ws
            start_dtype = np.uint32 if self.n_edges < (1 << 32) else np.uint64
            self._mem_runs = (
                ws.array("run_first", self.n_edges + 1, start_dtype),  # + the last run's end
                ws.array("run_source", self.n_edges, np.min_scalar_type(max(1, self.n_src - 1))),
            )

    def __enter__(self) -> EdgeStreamWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc_type, exc, tb)

    def abort(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        """Drop the partial file."""
        if not self._closed:
            self._closed = True
            self._release_workspace()
            err = exc if exc is not None else RuntimeError("edge writer aborted")
            try:
                self._cm.__exit__(type(err), err, tb)
            except BaseException as e:  # the context manager re-raises what it was given
                if e is not err:
                    raise

    def append(
        self,
        source_ids: np.ndarray,
        target_ids: np.ndarray,
        edge_type_id: int | np.ndarray,
        columns: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Append edges sorted by (target, source), continuing the previous appends' order."""
        s = np.asarray(source_ids)
        t = np.asarray(target_ids)
        k = len(s)
        if len(t) != k:
            raise ValueError("source_ids and target_ids differ in length")
        if self.pos + k > self.n_edges:
            raise ValueError(f"more than the declared {self.n_edges} edges appended")
        if k == 0:
            return
        if s.dtype.kind not in "iu" or t.dtype.kind not in "iu":
            raise ValueError("node ids must be integers")
        if (
            (s.dtype.kind == "i" and s.min() < 0)
            or s.max() >= self.n_src
            or t[0] < 0
            or t[-1] >= self.n_trg
        ):
            raise ValueError("node id out of range")
        # sorted by (target, source): targets rise only where they change, sources fall only
        # where a target starts; comparisons of neighbours, no differences (no wrap-around)
        t_step = t[1:] != t[:-1]
        cut = np.flatnonzero(t_step)
        cut += 1  # where a target starts (after the first)
        if np.any(t[cut] < t[cut - 1]) or not t_step[np.flatnonzero(s[1:] < s[:-1])].all():
            raise ValueError("edges must be appended sorted by target, then source")
        del t_step
        first = (int(t[0]), int(s[0]))
        if self._last is not None and first < self._last:
            raise ValueError("edges must be appended sorted by target, then source")
        # a source-index range: a maximal run of consecutive edges with one source
        new_run = np.empty(k, dtype=bool)
        np.not_equal(s[1:], s[:-1], out=new_run[1:])
        new_run[0] = self._last is None or first[1] != self._last[1]
        self._last = (int(t[-1]), int(s[-1]))
        run_first = np.flatnonzero(new_run)
        del new_run
        run_src = s[run_first]
        self.src_runs += np.bincount(run_src, minlength=self.n_src)
        if self._mem_runs is not None:
            r0, r1 = self._n_runs, self._n_runs + len(run_first)
            run_first += self.pos
            self._mem_runs[0][r0:r1] = run_first
            self._mem_runs[1][r0:r1] = run_src
            self._n_runs = r1
        del run_first, run_src
        # per-target counts from where the target changes (targets are grouped)
        bounds = np.empty(len(cut) + 2, dtype=np.int64)
        bounds[0], bounds[-1] = 0, k
        bounds[1:-1] = cut
        self.trg_counts[t[bounds[:-1]]] += np.diff(bounds)
        if np.isscalar(edge_type_id) or np.ndim(edge_type_id) == 0:
            tid = int(edge_type_id)
            if tid not in self.declared:
                raise ValueError(f"edge_type_id {tid} has no row in the edge types table")
            types = None
        else:
            types = np.asarray(edge_type_id, dtype=np.uint32)
            if len(types) != k:
                raise ValueError("edge_type_id differs in length")
            bad = set(np.unique(types).tolist()) - self.declared
            if bad:
                raise ValueError(f"edge_type_id values {sorted(bad)} have no row in the table")
        cols = dict(columns or {})
        if set(cols) != set(self.columns):
            raise ValueError(
                f"columns {sorted(cols)} differ from the declared {sorted(self.columns)}"
            )
        for name in cols:
            cols[name] = np.asarray(cols[name])
            if len(cols[name]) != k:
                raise ValueError(f"column {name!r} differs in length")
        s = s.astype(self.src_dtype, copy=False)  # in range: the same values
        t = t.astype(self.trg_dtype, copy=False)
        for a in range(0, k, self.chunk):
            b = min(k, a + self.chunk)
            lo, hi = self.pos + a, self.pos + b
            self.raw_src.write(lo, s[a:b])
            self.raw_trg.write(lo, t[a:b])
            if self.raw_type is not None:
                self.raw_type.write(
                    lo, np.full(b - a, tid, dtype=np.uint32) if types is None else types[a:b]
                )
            self.raw_gidx.write(lo, self._group_index(lo, hi))
            for name, raw in self.raw_cols.items():
                raw.write(lo, cols[name][a:b])
        self.pos += k

    def _group_index(self, lo: int, hi: int) -> np.ndarray:
        """``arange(lo, hi)`` (edge ids), in a buffer kept between calls (shifted in place: no
        new array and no fresh pages per chunk)."""
        m = hi - lo
        buf, start = self._gidx
        if len(buf) < m or lo < start:
            size = max(m, min(self.chunk, self.n_edges))
            buf = np.arange(lo, lo + size, dtype=self.row_dtype)
        elif lo > start:  # appends only move forward
            buf += buf.dtype.type(lo - start)
        self._gidx = (buf, lo)
        return buf[:m]

    def close(self) -> None:
        """Check the count, build both indices, close and rename the files into place."""
        if self._closed:
            return
        try:
            if self.pos != self.n_edges:
                raise ValueError(f"{self.pos} edges appended, {self.n_edges} declared")
            indices = self.h5.group(self.pop, "indices")
            self._source_index(self.h5.group(indices, "source_to_target"))
            self._target_index(self.h5.group(indices, "target_to_source"))
            if self.n_edges >= _WRITEBACK_EDGES and hasattr(os, "posix_fadvise"):
                # a big file: its write-back started now (Linux starts it for the dirty pages
                # and drops the clean ones), not when the dirty pages of the whole build
                # reach the kernel's thresholds (see _WRITEBACK_EDGES)
                os.posix_fadvise(self.h5.fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except BaseException:
            self.abort(*sys.exc_info())
            raise
        self._closed = True
        self._release_workspace()
        self._cm.__exit__(None, None, None)
        _write_types_csv(self.csv_path, self.table)

    def _index_dataset(self, grp: Any, name: str, rows: int) -> _RawRows:
        """A (rows, 2) dataset of the index group ``grp``, to be written in place."""
        return _RawRows(self.h5.fd, self.h5.dataset(grp, name, (rows, 2), self.row_dtype))

    def _node_to_ranges(self, grp: Any, n2r: np.ndarray) -> None:
        """``node_id_to_ranges`` = ``n2r``, also linked as ``node_id_to_range`` (BMTK's name)."""
        raw = self._index_dataset(grp, "node_id_to_ranges", len(n2r))
        raw.write(0, n2r)
        self.h5.link(grp, "node_id_to_range", raw.ds)

    def _target_index(self, grp: Any) -> None:
        counts = self.trg_counts
        has = counts > 0
        n_ranges = int(has.sum())
        stop = np.cumsum(counts)
        r2e = np.empty((n_ranges, 2), dtype=self.row_dtype)
        r2e[:, 0] = (stop - counts)[has]
        r2e[:, 1] = stop[has]
        rank = np.cumsum(has) - 1
        n2r = np.zeros((self.n_trg, 2), dtype=self.row_dtype)
        n2r[has, 0] = rank[has]
        n2r[has, 1] = rank[has] + 1
        self._node_to_ranges(grp, n2r)
        self._index_dataset(grp, "range_to_edge_id", n_ranges).write(0, r2e)

    def _runs(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(start, length, source) of every maximal run of one source, in edge order."""
        n = self.n_edges
        pend: tuple[int, int] | None = None  # (start, source) of the run open at a chunk end
        prev: int | None = None
        buf = np.empty(min(n, self.chunk), dtype=self.src_dtype)
        for a in range(0, n, self.chunk):
            b = min(n, a + self.chunk)
            m = b - a
            self.raw_src.read(a, buf[:m])
            sc = buf[:m].astype(np.int64)
            new = np.empty(m, dtype=bool)
            np.not_equal(sc[1:], sc[:-1], out=new[1:])
            new[0] = prev is None or int(sc[0]) != prev
            prev = int(sc[-1])
            starts = np.flatnonzero(new)
            if len(starts) == 0:
                continue
            srcs = sc[starts]
            starts += a
            if pend is not None:
                yield (
                    np.array([pend[0]], dtype=np.int64),
                    np.array([starts[0] - pend[0]], dtype=np.int64),
                    np.array([pend[1]], dtype=np.int64),
                )
            yield starts[:-1], np.diff(starts), srcs[:-1]
            pend = (int(starts[-1]), int(srcs[-1]))
        if pend is not None:
            yield (
                np.array([pend[0]], dtype=np.int64),
                np.array([n - pend[0]], dtype=np.int64),
                np.array([pend[1]], dtype=np.int64),
            )

    def _source_index(self, grp: Any) -> None:
        counts = self.src_runs
        n_ranges = int(counts.sum())
        stop = np.cumsum(counts)
        n2r = np.zeros((self.n_src, 2), dtype=self.row_dtype)
        has = counts > 0
        n2r[has, 0] = (stop - counts)[has]
        n2r[has, 1] = stop[has]
        self._node_to_ranges(grp, n2r)
        r2e = self._index_dataset(grp, "range_to_edge_id", n_ranges)
        if n_ranges == 0:
            return
        if self._mem_runs is not None:
            self._source_ranges_from_memory(r2e)
            return
        # buckets of consecutive sources whose ranges fit the budget; one pass over the ids each
        bounds = [0]
        acc = 0
        for sid, c in enumerate(counts.tolist()):
            if acc and acc + c > self.index_budget:
                bounds.append(sid)
                acc = 0
            acc += c
        bounds.append(self.n_src)
        key_dtype = np.min_scalar_type(max(1, self.n_src))
        for s0, s1 in zip(bounds[:-1], bounds[1:], strict=True):
            lo, hi = int(stop[s0] - counts[s0]), int(stop[s1 - 1])
            if hi == lo:
                continue
            whole = s0 == 0 and s1 == self.n_src
            out = self._sorted_runs(s0, s1, lo, hi, whole, key_dtype)
            r2e.write(lo, out)
            del out

    def _source_ranges_from_memory(self, r2e: _RawRows) -> None:
        """The source index's ranges from the runs kept by :meth:`append`, sorted by source
        (:func:`_ranges_by_source`) into a buffer of the workspace and written at once."""
        assert self._mem_runs is not None and self._ws is not None
        n = self._n_runs
        first, srcs = self._mem_runs[0][: n + 1], self._mem_runs[1][:n]
        first[n] = self.n_edges  # the end of the last run
        out = self._ws.array("ranges", 2 * n, self.row_dtype).reshape(n, 2)
        _ranges_by_source(first, srcs, self.src_runs, out)
        r2e.write(0, out)
        self._mem_runs = None

    def _release_workspace(self) -> None:
        """Hand the workspace back (its buffers stay with it for the next writer)."""
        self._mem_runs = None
        if self._ws is not None:
            ws, self._ws = self._ws, None
            ws.owner = None

    def _sorted_runs(
        self, s0: int, s1: int, lo: int, hi: int, whole: bool, key_dtype: Any
    ) -> np.ndarray:
        """Ranges of the sources [s0, s1), ordered by source then edge id (a counting sort:
        chunk by chunk, each run goes to its source's next free row)."""
        counts = self.src_runs
        stop = np.cumsum(counts)
        out = np.empty((hi - lo, 2), dtype=self.row_dtype)
        cursor = (stop - counts)[s0:s1] - lo
        for st, ln, sr in self._runs():
            if not whole:
                sel = (sr >= s0) & (sr < s1)
                st, ln, sr = st[sel], ln[sel], sr[sel]
            if len(st) == 0:
                continue
            key = (sr - s0).astype(key_dtype)
            order = np.argsort(key, kind="stable")
            ks = key[order]
            cnt = np.bincount(key, minlength=s1 - s0)
            rank = np.arange(len(ks), dtype=np.int64) - (np.cumsum(cnt) - cnt)[ks]
            pos = cursor[ks] + rank
            first = st[order]
            out[pos, 0] = first
            out[pos, 1] = first + ln[order]
            cursor += cnt
        return out


#: Edges from which :meth:`EdgeStreamWriter.close` starts the file's write-back at once
#: (``posix_fadvise(DONTNEED)``: on Linux, write-back of the dirty pages, clean ones dropped
#: from the page cache) instead of leaving all of a build's gigabytes dirty until the kernel
#: throttles the writers. Full microcircuit (10.7 GB): system time 21.7 -> 8.9-9.8 s, wall
#: 26.1-27.5 -> 22.6-23.9 s. Small files are left to the kernel (no I/O forced on them).
_WRITEBACK_EDGES = 1 << 21

#: Runs sorted at once by :func:`_ranges_by_source`: the sort and its temporaries stay in
#: the CPU's cache and below glibc's mmap threshold (reused heap memory, no fresh pages).
_RUN_SORT_CHUNK = 1 << 17


def _ranges_by_source(
    first: np.ndarray, srcs: np.ndarray, counts: np.ndarray, out: np.ndarray
) -> None:
    """``range_to_edge_id`` of the source index from the runs of one source, in edge order.

    ``first`` holds each run's first edge and, last, the end of the last run (``n + 1``
    values), ``srcs`` each run's source (``n`` unsigned integers), ``counts`` the runs of every
    source. ``out`` (``n`` x 2) gets ``[first[i], first[i + 1])`` of the runs ``i`` in a stable
    order by source: the same rows as one ``argsort(srcs, kind="stable")``, by a counting sort
    instead -- chunk by chunk, each chunk's runs sorted (a radix sort for up to 65,536
    sources), each run placed at its source's next free row -- so no array of the size of
    all runs is made besides ``out``.
    """
    n, n_src = len(srcs), len(counts)
    if n == 0:
        return
    cursor = np.cumsum(counts) - counts  # the next free row of each source
    step = min(n, max(_RUN_SORT_CHUNK, n_src))  # a chunk's bincount costs n_src
    pairs = np.empty((step, 2), dtype=out.dtype)
    ramp = np.arange(step, dtype=np.int64)
    if out.dtype.itemsize == 4:  # a row as one 8-byte item: one scatter, not a row copy
        dest, rows = out.view(np.uint64).reshape(n), pairs.view(np.uint64).reshape(step)
    else:
        dest, rows = out, pairs
    for a in range(0, n, step):
        b = min(n, a + step)
        m = b - a
        key = srcs[a:b]
        order = np.argsort(key, kind="stable")
        cnt = np.bincount(key, minlength=n_src)
        # a run's row: its source's next free row + its rank among the chunk's runs of it
        pos = (cursor - (np.cumsum(cnt) - cnt))[key[order]]
        pos += ramp[:m]
        pairs[:m, 0] = first[a:b]
        pairs[:m, 1] = first[a + 1 : b + 1]
        dest[pos] = rows[:m][order]
        cursor += cnt


class IndexWorkspace:
    """Buffers of :class:`EdgeStreamWriter`'s source index, kept from one writer to the next.

    A writer that keeps its source runs in memory needs about 14 bytes per run for them (the
    runs' first edges and sources as the edges come, then the ranges sorted by source).
    Arrays that big come from ``mmap`` (glibc's threshold tops out at 32 MiB), so every
    writer would fault in and zero fresh pages for them (with huge pages,
    ``clear_page_erms``, most of the kernel's time after the page-cache copies in a
    full-scale build). Writers handed the same workspace one after another reuse its pages.
    A buffer grows to the largest request it has served, never beyond; one writer uses it
    at a time (:class:`EdgeStreamWriter` refuses one in use).
    """

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}
        self.owner: object | None = None  # the writer using it

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(b.nbytes for b in self._bufs.values())

    def array(self, name: str, n: int, dtype: Any) -> np.ndarray:
        """``n`` items of ``dtype`` in buffer ``name``, uninitialised (what an earlier writer
        left there); the buffer is replaced by a larger one when it is too small."""
        dt = np.dtype(dtype)
        need = int(n) * dt.itemsize
        buf = self._bufs.get(name)
        if buf is None or buf.nbytes < need:
            self._bufs.pop(name, None)  # the smaller one freed first
            buf = self._bufs[name] = np.empty(need, dtype=np.uint8)
        return buf[:need].view(dt)


class _RawRows:
    """A contiguous dataset of an :class:`~builder.core.h5write.H5Writer` file, read and
    written in place at its offset (its own dtype, in file order); :func:`os.pwrite` and
    :func:`os.preadv` release the GIL."""

    __slots__ = ("fd", "ds", "offset", "dtype", "row_bytes")

    def __init__(self, fd: int, ds: _H5Dataset):
        self.fd = fd
        self.ds = ds
        self.offset = ds.offset  # None for an empty dataset (nothing to write)
        self.dtype = ds.dtype
        self.row_bytes = ds.row_bytes

    def write(self, lo: int, data: np.ndarray) -> None:
        """Rows ``lo, lo + 1, ...`` = ``data`` (converted to the dataset's dtype if needed)."""
        if len(data) == 0:
            return
        view = memoryview(np.ascontiguousarray(data, dtype=self.dtype).reshape(-1).view(np.uint8))
        pos = self.offset + lo * self.row_bytes
        while len(view):
            done = os.pwrite(self.fd, view, pos)
            view, pos = view[done:], pos + done

    def read(self, lo: int, out: np.ndarray) -> None:
        """``out`` (contiguous, of the dataset's dtype) = rows ``lo, lo + 1, ...``."""
        view = memoryview(out.reshape(-1).view(np.uint8))
        pos = self.offset + lo * self.row_bytes
        while len(view):
            done = os.preadv(self.fd, [view], pos)
            if done <= 0:
                raise OSError(f"short read at byte {pos} of an edge file")
            view, pos = view[done:], pos + done


class SpikeStreamWriter:
    """Write one spikes population of a known number of spikes, appended sorted by node id.

    Appends must continue the order ``by_id`` (node id, then time). Layout and attributes are
    those of :func:`write_spikes_multi` with ``sorting="by_id"``.
    """

    def __init__(self, path: PathLike, population: str, n_spikes: int, chunk: int = 1 << 22):
        _check_name(population)
        self.n = _count(n_spikes, "n_spikes")
        self.chunk = max(1, int(chunk))
        self._cm = _h5_create(path)
        h5 = self._cm.__enter__()
        grp = _group(_group(h5, "spikes"), population)
        grp.attrs.create("sorting", SPIKE_SORTING["by_id"], dtype=_sorting_dtype())
        self.ts = _dataset_empty(grp, "timestamps", self.n, np.float64)
        self.ts.attrs["units"] = "ms"
        self.ids = _dataset_empty(grp, "node_ids", self.n, np.uint64)
        self.pos = 0
        self._last: tuple[int, float] | None = None
        self._closed = False

    def __enter__(self) -> SpikeStreamWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        elif not self._closed:
            self._closed = True
            try:
                self._cm.__exit__(exc_type, exc, tb)
            except BaseException as e:
                if e is not exc:
                    raise

    def append(self, node_ids: np.ndarray, timestamps_ms: np.ndarray) -> None:
        ids = np.asarray(node_ids, dtype=np.int64)
        ts = np.asarray(timestamps_ms, dtype=np.float64)
        k = len(ids)
        if len(ts) != k:
            raise ValueError("node_ids and timestamps differ in length")
        if self.pos + k > self.n:
            raise ValueError(f"more than the declared {self.n} spikes appended")
        if k == 0:
            return
        if not np.all(np.isfinite(ts)) or ids.min() < 0:
            raise ValueError("timestamps must be finite and node ids >= 0")
        di, dts = np.diff(ids), np.diff(ts)
        first = (int(ids[0]), float(ts[0]))
        if (
            np.any(di < 0)
            or np.any((di == 0) & (dts < 0))
            or (self._last is not None and first < self._last)
        ):
            raise ValueError("spikes must be appended sorted by node id, then time")
        self._last = (int(ids[-1]), float(ts[-1]))
        for a in range(0, k, self.chunk):
            b = min(k, a + self.chunk)
            _write_rows(self.ts, self.pos + a, ts[a:b])
            _write_rows(self.ids, self.pos + a, ids[a:b].astype(np.uint64))
        self.pos += k

    def close(self) -> None:
        if self._closed:
            return
        if self.pos != self.n:
            err = ValueError(f"{self.pos} spikes appended, {self.n} declared")
            self.__exit__(ValueError, err, None)
            raise err
        self._closed = True
        self._cm.__exit__(None, None, None)
