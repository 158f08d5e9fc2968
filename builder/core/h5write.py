"""Write new HDF5 files of groups, contiguous datasets and attributes, without the HDF5 library.

SONATA's files are simple HDF5: a tree of groups holding one- and two-dimensional datasets of
numbers (or of strings), a few attributes, hard links. Through the HDF5 library each of these
objects costs tens of microseconds of property lists, identifiers and metadata cache, so a
small build with ~60 files spent more time on file skeletons than on its edges. This module
writes such files directly, in the structures of the format's first version (the ones the
library itself writes with ``libver=("earliest", ...)``, which every HDF5 release reads):

* superblock version 0 (8-byte offsets and lengths, group leaf-node K 4, internal-node K 16);
* groups as symbol tables: a version-1 object header with a symbol-table message, a version-1
  B-tree of group nodes, symbol-table nodes (up to 8 entries each, sorted by name) and a local
  heap of member names;
* datasets as version-1 object headers with dataspace (version 1), datatype (version 1:
  little-endian integers and IEEE floats, variable-length UTF-8 strings), fill-value (version 2
  and, for a constant dataset, the old fill-value message too) and contiguous layout (version 3)
  messages. A dataset's storage is placed when it is created (the caller writes its rows at
  :attr:`Dataset.offset` with ``os.pwrite`` on :attr:`H5Writer.fd`); a dataset with a fill value
  instead is never stored: every read returns the fill value;
* attributes (version 1 messages) of numbers or of UTF-8 strings; variable-length strings go
  to a global heap collection;
* hard links: a second symbol-table entry for the same object header (reference count 2).

The data is placed first, in creation order; all metadata is written after it when the file
is closed, and the superblock at offset 0 last. The bytes depend only on the calls made (no
timestamps, no addresses from an allocator's history). Reading, and changing a file later,
is left to h5py / libsonata (the HDF5 library).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["Dataset", "Group", "H5Writer"]

UNDEF = 0xFFFFFFFFFFFFFFFF
_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SUPERBLOCK_SIZE = 96  # version 0 with the root group's symbol-table entry
_LEAF_K = 4  # a symbol-table node holds up to 2K = 8 entries
_NODE_K = 16  # a group B-tree node has up to 2K = 32 children
_ENTRY_SIZE = 40
_SNOD_SIZE = 8 + 2 * _LEAF_K * _ENTRY_SIZE
_TREE_SIZE = 24 + 2 * _NODE_K * 8 + (2 * _NODE_K + 1) * 8
_HEAP_HEADER = 32
_FREE_NULL = 1  # a local heap's "no next free block"
_GCOL_MIN = 4096
_MAX_GCOL_OBJECTS = 0xFFFF

# object header message types
_NIL, _DATASPACE, _DATATYPE, _FILL_OLD, _FILL, _LAYOUT, _ATTRIBUTE, _SYMBOL_TABLE = (
    0x0,
    0x1,
    0x3,
    0x4,
    0x5,
    0x8,
    0xC,
    0x11,
)
_CONSTANT = 1  # message flag: the message never changes


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _padded(b: bytes) -> bytes:
    return b + bytes(_pad8(len(b)) - len(b))


class _Obj:
    __slots__ = ("attrs", "links", "addr")

    def __init__(self) -> None:
        self.attrs: list[tuple[bytes, Any]] = []  # (name, ndarray or list of str)
        self.links = 0
        self.addr = 0


class Group(_Obj):
    """A group: members by name (UTF-8 bytes)."""

    __slots__ = ("members", "btree", "heap", "heap_offsets", "heap_data", "snods", "nodes")

    def __init__(self) -> None:
        super().__init__()
        self.members: dict[bytes, _Obj] = {}


class Dataset(_Obj):
    """A dataset: ``offset`` is where its rows are stored (None when nothing is stored)."""

    __slots__ = ("shape", "dtype", "offset", "nbytes", "row_bytes", "fill", "strings")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, fill: Any) -> None:
        super().__init__()
        self.shape = shape
        self.dtype = dtype
        self.fill = fill
        self.offset: int | None = None
        # a variable-length string is stored as (length, global heap collection, index)
        item = 16 if dtype.kind == "O" else dtype.itemsize
        self.row_bytes = item * int(np.prod(shape[1:], dtype=np.int64))
        self.nbytes = self.row_bytes * (shape[0] if shape else 1)
        self.strings: list[str] | None = None


class H5Writer:
    """A new HDF5 file at ``path`` (created or truncated); :meth:`close` completes it.

    ``fd`` is the open file descriptor: write dataset rows at ``dataset.offset`` with
    :func:`os.pwrite`. After an error call :meth:`abort` (closes the descriptor; the caller
    removes the incomplete file).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        self.root = Group()
        self.root.links = 1
        self.eof = _SUPERBLOCK_SIZE
        self._closed = False

    # ------------------------------------------------------------------ building the tree
    def group(self, parent: Group, name: str) -> Group:
        g = Group()
        self._add(parent, name, g)
        return g

    def dataset(
        self,
        parent: Group,
        name: str,
        shape: int | Sequence[int],
        dtype: Any,
        *,
        fill: Any = None,
    ) -> Dataset:
        """A contiguous dataset of ``shape`` and ``dtype`` (little-endian integers or floats,
        or h5py's variable-length string dtype / ``object`` for strings; strings must be given
        with :meth:`strings`). Its storage is placed now, after everything placed before; with
        ``fill`` (a number) it is a constant dataset that is never stored."""
        shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(k) for k in shape)
        dt = _dtype(dtype)
        ds = Dataset(shape, dt, fill)
        if fill is not None and dt.kind == "O":
            raise ValueError("a string dataset cannot have a fill value")
        if fill is None and ds.nbytes > 0:
            ds.offset = self.eof
            self.eof += ds.nbytes
        self._add(parent, name, ds)
        return ds

    def strings(self, parent: Group, name: str, values: Iterable[str]) -> Dataset:
        """A one-dimensional dataset of variable-length UTF-8 strings (stored now)."""
        vals = [str(v) for v in values]
        ds = self.dataset(parent, name, len(vals), object)
        ds.strings = vals
        return ds

    def write(self, ds: Dataset, row: int, data: np.ndarray) -> None:
        """Rows ``row, row + 1, ...`` of ``ds`` = ``data`` (converted to its dtype)."""
        if ds.dtype.kind == "O":
            raise ValueError("string datasets are written whole, by strings()")
        arr = np.ascontiguousarray(data, dtype=ds.dtype)
        if arr.size == 0:
            return
        if ds.offset is None or row < 0 or (row + len(arr)) * ds.row_bytes > ds.nbytes:
            raise ValueError(f"rows {row}..{row + len(arr)} outside the dataset")
        view = memoryview(arr.reshape(-1).view(np.uint8))
        _pwrite_all(self.fd, view, ds.offset + row * ds.row_bytes)

    def attr(self, obj: _Obj, name: str, value: Any) -> None:
        """Attribute ``name`` of ``obj``: a number, an array of numbers, or a string."""
        if isinstance(value, str):
            obj.attrs.append((name.encode("utf-8"), [value]))
            return
        arr = np.asarray(value)
        _dtype(arr.dtype)  # refuse what cannot be written
        if arr.dtype.kind == "O":
            raise ValueError(f"attribute {name!r}: give a str for a string attribute")
        obj.attrs.append((name.encode("utf-8"), np.array(arr, order="C")))  # keeps 0-d

    def link(self, parent: Group, name: str, obj: _Obj) -> None:
        """A second name for ``obj`` (a hard link)."""
        self._add(parent, name, obj)

    @staticmethod
    def _add(parent: Group, name: str, obj: _Obj) -> None:
        key = name.encode("utf-8")
        if not key or b"/" in key or b"\0" in key or name in (".", ".."):
            raise ValueError(f"invalid HDF5 member name {name!r}")
        if key in parent.members:
            raise ValueError(f"{name!r} already exists in the group")
        parent.members[key] = obj
        obj.links += 1

    # ------------------------------------------------------------------ finishing
    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)

    def close(self) -> None:
        """Write the metadata after the data and the superblock, and close the file."""
        if self._closed:
            return
        try:
            meta = self._metadata()
            _pwrite_all(self.fd, memoryview(meta), self.eof)
            end = self.eof + len(meta)
            _pwrite_all(self.fd, memoryview(self._superblock(end)), 0)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        os.close(self.fd)

    def _superblock(self, end: int) -> bytes:
        root = self.root
        head = _SIGNATURE + bytes([0, 0, 0, 0, 0, 8, 8, 0])
        head += struct.pack("<HHI", _LEAF_K, _NODE_K, 0)
        head += struct.pack("<QQQQ", 0, UNDEF, end, UNDEF)
        head += _entry(0, root.addr, root)
        assert len(head) == _SUPERBLOCK_SIZE
        return head

    def _metadata(self) -> bytearray:
        """Place every object's metadata from ``self.eof`` on, then serialise it."""
        objs: list[_Obj] = []
        groups: list[Group] = []
        seen: set[int] = set()

        def walk(o: _Obj) -> None:
            if id(o) in seen:
                return
            seen.add(id(o))
            objs.append(o)
            if isinstance(o, Group):
                groups.append(o)
                for key in sorted(o.members):
                    walk(o.members[key])

        walk(self.root)
        # global heap: every variable-length string (attributes, string datasets)
        # (attributes' first, then datasets': the order they are referenced in below)
        strings: list[bytes] = []
        for o in objs:
            for _, v in o.attrs:
                if isinstance(v, list):
                    strings.extend(s.encode("utf-8") for s in v)
        for o in objs:
            if isinstance(o, Dataset) and o.strings is not None:
                strings.extend(s.encode("utf-8") for s in o.strings)
        pos = self.eof
        collections: list[tuple[int, int, list[bytes]]] = []  # (address, size, objects)
        for a in range(0, len(strings), _MAX_GCOL_OBJECTS):
            part = strings[a : a + _MAX_GCOL_OBJECTS]
            used = 16 + sum(16 + _pad8(len(s)) for s in part)
            size = max(_GCOL_MIN, used + 16)  # room for the free-space object
            collections.append((pos, size, part))
            pos += size
        refs = iter(
            (addr, i + 1) for addr, _, part in collections for i in range(len(part))
        )  # (collection, index) of each string, in the order collected
        headers: dict[int, bytes] = {}
        for o in objs:  # object headers: their size does not depend on any address
            o.addr = pos
            if isinstance(o, Group):
                _layout_group(o)
                msgs = [(_SYMBOL_TABLE, 0, bytes(16))]  # addresses filled in below
            else:
                assert isinstance(o, Dataset)
                msgs = _dataset_messages(o)
            for name, value in o.attrs:
                msgs.append((_ATTRIBUTE, 0, _attribute(name, value, refs)))
            headers[id(o)] = msgs  # type: ignore[assignment]
            pos += 16 + sum(8 + len(m[2]) for m in msgs)
        string_data: dict[int, bytes] = {}
        for o in objs:
            if isinstance(o, Dataset) and o.strings is not None:
                string_data[id(o)] = b"".join(
                    struct.pack("<IQI", len(s.encode("utf-8")), *next(refs)) for s in o.strings
                )
        for g in groups:  # local heap, B-tree nodes, symbol-table nodes
            g.heap = pos
            pos += _HEAP_HEADER + len(g.heap_data)
            g.nodes = []
            for level_nodes in g.btree:
                for _ in level_nodes:
                    g.nodes.append(pos)
                    pos += _TREE_SIZE
            snod_addrs = []
            for _ in g.snods:
                snod_addrs.append(pos)
                pos += _SNOD_SIZE
            g.snods = list(zip(snod_addrs, g.snods, strict=True))
        out = bytearray(pos - self.eof)
        base = self.eof

        def put(addr: int, data: bytes) -> None:
            out[addr - base : addr - base + len(data)] = data

        for addr, size, part in collections:
            body = bytearray(struct.pack("<4sB3xQ", b"GCOL", 1, size))
            for i, s in enumerate(part):
                body += struct.pack("<HHIQ", i + 1, 0, 0, len(s)) + _padded(s)
            body += struct.pack("<HHIQ", 0, 0, 0, size - len(body))
            put(addr, bytes(body))
        for o in objs:
            msgs = headers[id(o)]  # type: ignore[assignment]
            if isinstance(o, Group):
                msgs[0] = (_SYMBOL_TABLE, 0, struct.pack("<QQ", g_root(o), o.heap))
            size = sum(8 + len(m[2]) for m in msgs)
            body = bytearray(struct.pack("<BBHII4x", 1, 0, len(msgs), o.links, size))
            for mtype, flags, data in msgs:
                body += struct.pack("<HHB3x", mtype, len(data), flags) + data
            put(o.addr, bytes(body))
        for o in objs:
            if id(o) in string_data:
                assert isinstance(o, Dataset) and o.offset is not None
                _pwrite_all(self.fd, memoryview(string_data[id(o)]), o.offset)
        for g in groups:
            put(
                g.heap,
                struct.pack(
                    "<4sB3xQQQ",
                    b"HEAP",
                    0,
                    len(g.heap_data),
                    len(g.heap_data) - 16,  # the free block at the end
                    g.heap + _HEAP_HEADER,
                )
                + g.heap_data,
            )
            for snod_addr, entries in g.snods:
                body = struct.pack("<4sBxH", b"SNOD", 1, len(entries))
                for key in entries:
                    body += _entry(g.heap_offsets[key], g.members[key].addr, g.members[key])
                put(snod_addr, body)
            # B-tree: level 0 nodes point at symbol-table nodes, higher levels at nodes below
            addrs = iter(g.nodes)
            children = [(a, entries[-1]) for a, entries in g.snods]
            for level, level_nodes in enumerate(g.btree):
                upper = []
                for kids in level_nodes:
                    addr = next(addrs)
                    body = struct.pack("<4sBBHQQ", b"TREE", 0, level, len(kids), UNDEF, UNDEF)
                    body += struct.pack("<Q", 0)  # left of the first child: the empty name
                    for i in kids:
                        body += struct.pack("<QQ", children[i][0], g.heap_offsets[children[i][1]])
                    put(addr, body)
                    if kids:
                        upper.append((addr, children[kids[-1]][1]))
                children = upper
        return out


def g_root(g: Group) -> int:
    """Address of a group's B-tree root (its last node placed)."""
    return g.nodes[-1]


def _layout_group(g: Group) -> None:
    """A group's local heap (member names) and the shape of its B-tree."""
    names = sorted(g.members)
    data = bytearray(8)  # offset 0: the empty name
    offsets: dict[bytes, int] = {}
    for key in names:
        offsets[key] = len(data)
        data += _padded(key + b"\0")
    data += struct.pack("<QQ", _FREE_NULL, 16)  # one free block: the heap's free list
    g.heap_offsets = offsets
    g.heap_data = bytes(data)
    per = 2 * _LEAF_K
    g.snods = [names[a : a + per] for a in range(0, len(names), per)]
    levels: list[list[list[int]]] = []
    n = len(g.snods)
    if n == 0:  # an empty group: a B-tree node without children
        g.btree = [[[]]]
        return
    while True:
        nodes = [list(range(a, min(n, a + 2 * _NODE_K))) for a in range(0, n, 2 * _NODE_K)]
        levels.append(nodes)
        if len(nodes) == 1:
            break
        n = len(nodes)
    g.btree = levels


def _entry(name_offset: int, addr: int, obj: _Obj) -> bytes:
    if isinstance(obj, Group):
        return struct.pack("<QQII", name_offset, addr, 1, 0) + struct.pack(
            "<QQ", g_root(obj) if obj.nodes else 0, obj.heap
        )
    return struct.pack("<QQII16x", name_offset, addr, 0, 0)


def _dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind == "O":  # h5py's string dtype is object with metadata
        return np.dtype(object)
    if dt.kind in "iu" and dt.itemsize in (1, 2, 4, 8):
        return dt.newbyteorder("<")
    if dt.kind == "f" and dt.itemsize in (4, 8):
        return dt.newbyteorder("<")
    raise ValueError(f"unsupported dtype {dt} for an HDF5 dataset or attribute")


def _type_message(dt: np.dtype) -> bytes:
    """A version-1 datatype message (unpadded)."""
    if dt.kind == "O":  # variable-length UTF-8 string of 1-byte characters
        base = struct.pack("<BBBBIHH", 0x10, 0, 0, 0, 1, 0, 8)
        return struct.pack("<BBBBI", 0x19, 0x01, 0x01, 0x00, 16) + base
    size = dt.itemsize
    if dt.kind in "iu":
        return struct.pack("<BBBBIHH", 0x10, 0x08 if dt.kind == "i" else 0, 0, 0, size, 0, 8 * size)
    if size == 8:
        return struct.pack("<BBBBIHHBBBBI", 0x11, 0x20, 63, 0, 8, 0, 64, 52, 11, 0, 52, 1023)
    return struct.pack("<BBBBIHHBBBBI", 0x11, 0x20, 31, 0, 4, 0, 32, 23, 8, 0, 23, 127)


def _space_message(shape: tuple[int, ...]) -> bytes:
    """A version-1 dataspace message: scalar for shape (), else simple with max = current."""
    if not shape:
        return struct.pack("<BBBB4x", 1, 0, 0, 0)
    dims = struct.pack(f"<{len(shape)}Q", *shape)
    return struct.pack("<BBBB4x", 1, len(shape), 1, 0) + dims + dims


def _dataset_messages(ds: Dataset) -> list[tuple[int, int, bytes]]:
    msgs = [
        (_DATASPACE, 0, _padded(_space_message(ds.shape))),
        (_DATATYPE, _CONSTANT, _padded(_type_message(ds.dtype))),
    ]
    if ds.fill is None:
        msgs.append((_FILL, _CONSTANT, struct.pack("<BBBBI", 2, 1, 1, 1, 0)))
        if ds.offset is None:
            msgs.append((_LAYOUT, 0, _padded(struct.pack("<BBQQ", 3, 1, UNDEF, 0))))
        else:
            layout = struct.pack("<BBQQ", 3, 1, ds.offset, ds.nbytes)
            msgs.append((_LAYOUT, _CONSTANT, _padded(layout)))
        return msgs
    value = np.asarray(ds.fill, dtype=ds.dtype).tobytes()
    msgs.append((_FILL, _CONSTANT, _padded(struct.pack("<BBBBI", 2, 2, 2, 1, len(value)) + value)))
    msgs.append((_FILL_OLD, _CONSTANT, _padded(struct.pack("<I", len(value)) + value)))
    msgs.append((_LAYOUT, 0, _padded(struct.pack("<BBQQ", 3, 1, UNDEF, ds.nbytes))))
    return msgs


def _attribute(name: bytes, value: Any, refs: Any) -> bytes:
    """A version-1 attribute message (padded)."""
    if isinstance(value, list):  # one variable-length string
        dtype_msg = _type_message(np.dtype(object))
        space = _space_message(())
        data = b"".join(struct.pack("<IQI", len(s.encode("utf-8")), *next(refs)) for s in value)
    else:
        dtype_msg = _type_message(_dtype(value.dtype))
        space = _space_message(value.shape)
        data = value.astype(_dtype(value.dtype), copy=False).tobytes()
    name_z = name + b"\0"
    head = struct.pack("<BBHHH", 1, 0, len(name_z), len(dtype_msg), len(space))
    return _padded(head + _padded(name_z) + _padded(dtype_msg) + _padded(space) + data)


def _pwrite_all(fd: int, view: memoryview, pos: int) -> None:
    while len(view):
        done = os.pwrite(fd, view, pos)
        view, pos = view[done:], pos + done
