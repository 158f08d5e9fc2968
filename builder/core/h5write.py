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

import functools
import math
import numbers
import os
import struct
from collections.abc import Callable, Iterable, Sequence
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
    return b + bytes(-len(b) % 8)


class _Obj:
    __slots__ = ("attrs", "links", "addr")

    def __init__(self) -> None:
        self.attrs: list[tuple[bytes, Any]] = []  # (name, ndarray or str)
        self.links = 0
        self.addr = 0


class Group(_Obj):
    """A group: members by name (UTF-8 bytes)."""

    __slots__ = ("members", "heap", "heap_offsets", "heap_data", "snods", "btree", "nodes")

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
        self.row_bytes = (16 if dtype.kind == "O" else dtype.itemsize) * math.prod(shape[1:])
        self.nbytes = self.row_bytes * (shape[0] if shape else 1)
        self.strings: list[str] | None = None


class H5Writer:
    """A new HDF5 file at ``path`` (created or truncated); :meth:`close` completes it.

    ``fd`` is the open file descriptor: write dataset rows at ``dataset.offset`` with
    :func:`os.pwrite` (or :meth:`write`). After an error call :meth:`abort` (closes the
    descriptor; the caller removes the incomplete file).
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
        _add(parent, name, g)
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
        """A contiguous dataset of ``shape`` and ``dtype`` (integers of 1-8 bytes, 4- or 8-byte
        floats; stored little-endian), its storage placed now, after everything placed before.
        With ``fill`` (a number) it is a constant dataset instead, never stored: every read
        returns ``fill``. Strings: :meth:`strings`."""
        shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(map(int, shape))
        dt = _dtype(dtype)
        if dt.kind == "O" and fill is not None:
            raise ValueError("a string dataset cannot have a fill value")
        ds = Dataset(shape, dt, fill)
        if fill is None and ds.nbytes > 0:
            ds.offset = self.eof
            self.eof += ds.nbytes
        _add(parent, name, ds)
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
            obj.attrs.append((name.encode("utf-8"), value))
            return
        arr = np.array(value, order="C")  # (keeps a 0-d value 0-d: a scalar attribute)
        if arr.dtype.kind == "O":
            raise ValueError(f"attribute {name!r}: give a str for a string attribute")
        obj.attrs.append((name.encode("utf-8"), arr.astype(_dtype(arr.dtype), copy=False)))

    def link(self, parent: Group, name: str, obj: _Obj) -> None:
        """A second name for ``obj`` (a hard link)."""
        _add(parent, name, obj)

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
            _pwrite_all(self.fd, memoryview(self._superblock(self.eof + len(meta))), 0)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        os.close(self.fd)

    def _superblock(self, end: int) -> bytes:
        root = self.root
        head = _SIGNATURE + bytes([0, 0, 0, 0, 0, 8, 8, 0])
        head += struct.pack("<HHIQQQQ", _LEAF_K, _NODE_K, 0, 0, UNDEF, end, UNDEF)
        head += _entry(0, root)
        assert len(head) == _SUPERBLOCK_SIZE
        return head

    def _metadata(self) -> bytes:
        """Every object's metadata, placed from ``self.eof`` on, in this order: global heap
        collections, object headers, then per group its local heap, B-tree nodes and
        symbol-table nodes."""
        objs: list[_Obj] = []
        seen: set[int] = set()
        stack: list[_Obj] = [self.root]
        while stack:  # depth first, members in name order
            o = stack.pop()
            if id(o) in seen:
                continue
            seen.add(id(o))
            objs.append(o)
            if type(o) is Group:
                stack.extend(o.members[k] for k in sorted(o.members, reverse=True))
        groups = [o for o in objs if type(o) is Group]
        pos = self.eof
        parts: list[bytes] = []
        # global heap: attributes' strings first, then string datasets' (the order used below)
        strings = [v.encode("utf-8") for o in objs for _, v in o.attrs if type(v) is str]
        for o in objs:
            if type(o) is Dataset and o.strings is not None:
                strings.extend(v.encode("utf-8") for v in o.strings)
        refs: list[tuple[int, int]] = []
        for a in range(0, len(strings), _MAX_GCOL_OBJECTS):
            part = strings[a : a + _MAX_GCOL_OBJECTS]
            body = [
                struct.pack("<HHIQ", i + 1, 0, 0, len(v)) + _padded(v) for i, v in enumerate(part)
            ]
            used = 16 + sum(map(len, body))
            size = max(_GCOL_MIN, used + 16)  # room for the free-space object
            parts.append(struct.pack("<4sB3xQ", b"GCOL", 1, size))
            parts.extend(body)
            parts.append(struct.pack("<HHIQ", 0, 0, 0, size - used) + bytes(size - used - 16))
            refs.extend((pos, i + 1) for i in range(len(part)))
            pos += size
        next_ref = iter(refs).__next__
        # object headers (a group's symbol-table message is completed once its heap is placed)
        headers: list[list[bytes]] = []
        for o in objs:
            msgs = [_GROUP_PLACEHOLDER] if type(o) is Group else _dataset_messages(o)
            for name, value in o.attrs:
                msgs.append(_attribute(name, value, next_ref))
            o.addr = pos
            pos += 16 + sum(map(len, msgs))
            headers.append(msgs)
        for g in groups:
            _layout_group(g)
            g.heap = pos
            pos += _HEAP_HEADER + len(g.heap_data)
            g.nodes = []
            for level in g.btree:
                for _ in level:
                    g.nodes.append(pos)
                    pos += _TREE_SIZE
            g.snods = [(pos + i * _SNOD_SIZE, names) for i, names in enumerate(g.snods)]
            pos += _SNOD_SIZE * len(g.snods)
        data_strings = []
        for o in objs:
            if type(o) is Dataset and o.strings is not None:
                enc = b"".join(
                    struct.pack("<IQI", len(v.encode("utf-8")), *next_ref()) for v in o.strings
                )
                data_strings.append((o.offset, enc))
        for o, msgs in zip(objs, headers, strict=True):
            if type(o) is Group:
                msgs[0] = _message(_SYMBOL_TABLE, 0, struct.pack("<QQ", o.nodes[-1], o.heap))
            parts.append(struct.pack("<BBHII4x", 1, 0, len(msgs), o.links, sum(map(len, msgs))))
            parts.extend(msgs)
        for g in groups:
            parts.append(
                struct.pack(
                    "<4sB3xQQQ",
                    b"HEAP",
                    0,
                    len(g.heap_data),
                    len(g.heap_data) - 16,  # the free block at the end
                    g.heap + _HEAP_HEADER,
                )
            )
            parts.append(g.heap_data)
            # B-tree: level 0 nodes point at symbol-table nodes, higher levels at nodes below
            addrs = iter(g.nodes)
            children = [(a, names[-1]) for a, names in g.snods]
            for level, level_nodes in enumerate(g.btree):
                upper = []
                for kids in level_nodes:
                    addr = next(addrs)
                    body = [struct.pack("<4sBBHQQQ", b"TREE", 0, level, len(kids), UNDEF, UNDEF, 0)]
                    body += [
                        struct.pack("<QQ", children[i][0], g.heap_offsets[children[i][1]])
                        for i in kids
                    ]
                    node = b"".join(body)
                    parts.append(node + bytes(_TREE_SIZE - len(node)))
                    if kids:
                        upper.append((addr, children[kids[-1]][1]))
                children = upper
            for _, names in g.snods:
                node = struct.pack("<4sBxH", b"SNOD", 1, len(names)) + b"".join(
                    _entry(g.heap_offsets[k], g.members[k]) for k in names
                )
                parts.append(node + bytes(_SNOD_SIZE - len(node)))
        out = b"".join(parts)
        assert len(out) == pos - self.eof
        for offset, enc in data_strings:
            _pwrite_all(self.fd, memoryview(enc), offset)
        return out


def _add(parent: Group, name: str, obj: _Obj) -> None:
    key = name.encode("utf-8")
    if not key or b"/" in key or b"\0" in key or key in (b".", b".."):
        raise ValueError(f"invalid HDF5 member name {name!r}")
    if key in parent.members:
        raise ValueError(f"{name!r} already exists in the group")
    parent.members[key] = obj
    obj.links += 1


def _layout_group(g: Group) -> None:
    """A group's local heap (member names) and the shape of its B-tree."""
    names = sorted(g.members)
    data = [bytes(8)]  # offset 0: the empty name
    offsets: dict[bytes, int] = {}
    at = 8
    for key in names:
        offsets[key] = at
        z = _padded(key + b"\0")
        data.append(z)
        at += len(z)
    data.append(struct.pack("<QQ", _FREE_NULL, 16))  # one free block: the heap's free list
    g.heap_offsets = offsets
    g.heap_data = b"".join(data)
    per = 2 * _LEAF_K
    g.snods = [names[a : a + per] for a in range(0, len(names), per)]
    n = len(g.snods)
    if n == 0:  # an empty group: a B-tree node without children
        g.btree = [[[]]]
        return
    levels: list[list[list[int]]] = []
    while True:
        nodes = [list(range(a, min(n, a + 2 * _NODE_K))) for a in range(0, n, 2 * _NODE_K)]
        levels.append(nodes)
        if len(nodes) == 1:
            break
        n = len(nodes)
    g.btree = levels


def _entry(name_offset: int, obj: _Obj) -> bytes:
    """A symbol-table entry; a group's caches its B-tree and heap addresses."""
    if type(obj) is Group:
        return struct.pack("<QQII4xQQ", name_offset, obj.addr, 1, 0, obj.nodes[-1], obj.heap)[:40]
    return struct.pack("<QQII16x", name_offset, obj.addr, 0, 0)


@functools.cache
def _dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind == "O":  # h5py's string dtype is object with metadata
        return np.dtype(object)
    if (dt.kind in "iu" and dt.itemsize in (1, 2, 4, 8)) or (
        dt.kind == "f" and dt.itemsize in (4, 8)
    ):
        return dt.newbyteorder("<")
    raise ValueError(f"unsupported dtype {dt} for an HDF5 dataset or attribute")


@functools.cache
def _type_message(dt: np.dtype) -> bytes:
    """A version-1 datatype message's body (unpadded)."""
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
    """A version-1 dataspace message's body: scalar for shape (), else simple, max = current."""
    if not shape:
        return struct.pack("<BBBB4x", 1, 0, 0, 0)
    dims = struct.pack(f"<{len(shape)}Q", *shape)
    return struct.pack("<BBBB4x", 1, len(shape), 1, 0) + dims + dims


def _message(mtype: int, flags: int, body: bytes) -> bytes:
    """A version-1 object header message: type, size, flags, then the body padded to 8."""
    body = _padded(body)
    return struct.pack("<HHB3x", mtype, len(body), flags) + body


_GROUP_PLACEHOLDER = _message(_SYMBOL_TABLE, 0, bytes(16))
_FILL_NONE = _message(_FILL, _CONSTANT, struct.pack("<BBBBI", 2, 1, 1, 1, 0))
_UNSTORED = _message(_LAYOUT, 0, struct.pack("<BBQQ", 3, 1, UNDEF, 0))


@functools.cache
def _type_msg(dt: np.dtype) -> bytes:
    return _message(_DATATYPE, _CONSTANT, _type_message(dt))


# the messages of a stored 1-D or 2-D dataset, packed whole (the common case)
_SPACE_1D = struct.Struct("<HHB3xBBBB4xQQ")
_SPACE_2D = struct.Struct("<HHB3xBBBB4xQQQQ")
_STORED = struct.Struct("<HHB3xBBQQ6x")


def _dataset_messages(ds: Dataset) -> list[bytes]:
    shape = ds.shape
    if len(shape) == 1:
        space = _SPACE_1D.pack(_DATASPACE, 24, 0, 1, 1, 1, 0, shape[0], shape[0])
    elif len(shape) == 2:
        space = _SPACE_2D.pack(_DATASPACE, 40, 0, 1, 2, 1, 0, *shape, *shape)
    else:
        space = _message(_DATASPACE, 0, _space_message(shape))
    msgs = [space, _type_msg(ds.dtype)]
    if ds.fill is None:
        msgs.append(_FILL_NONE)
        if ds.offset is None:
            msgs.append(_UNSTORED)
        else:
            msgs.append(_STORED.pack(_LAYOUT, 24, _CONSTANT, 3, 1, ds.offset, ds.nbytes))
        return msgs
    value = np.asarray(ds.fill, dtype=ds.dtype).tobytes()
    fill = struct.pack("<BBBBI", 2, 2, 2, 1, len(value)) + value
    msgs.append(_message(_FILL, _CONSTANT, fill))
    msgs.append(_message(_FILL_OLD, _CONSTANT, struct.pack("<I", len(value)) + value))
    msgs.append(_message(_LAYOUT, 0, struct.pack("<BBQQ", 3, 1, UNDEF, ds.nbytes)))
    return msgs


def _attribute(name: bytes, value: Any, next_ref: Callable[[], tuple[int, int]]) -> bytes:
    """A version-1 attribute message."""
    if type(value) is str:  # one variable-length string
        dtype_msg = _type_message(np.dtype(object))
        space = _space_message(())
        data = struct.pack("<IQI", len(value.encode("utf-8")), *next_ref())
    else:
        dtype_msg = _type_message(value.dtype)
        space = _space_message(value.shape)
        data = value.tobytes()
    name_z = name + b"\0"
    head = struct.pack("<BBHHH", 1, 0, len(name_z), len(dtype_msg), len(space))
    body = head + _padded(name_z) + _padded(dtype_msg) + _padded(space) + data
    return _message(_ATTRIBUTE, 0, body)


def _pwrite_all(fd: int, view: memoryview, pos: int) -> None:
    while len(view):
        done = os.pwrite(fd, view, pos)
        view, pos = view[done:], pos + done
