"""The source index's workspace (``IndexWorkspace``), its counting sort, and the write-back
started when a big edge file is closed.

An ``EdgeStreamWriter`` that keeps its source runs in memory puts them, and the ranges sorted
by source, in buffers of a workspace that writers used one after another share (a build's
projections): no fresh pages per projection. None of it may change a byte of the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from builder.core import sonata
from builder.core.sonata import EdgeStreamWriter, IndexWorkspace, _ranges_by_source
from builder.core.spec import build as spec_build

TYPES = [{"edge_type_id": 2}]


def _reference(first: np.ndarray, srcs: np.ndarray) -> np.ndarray:
    """The ranges as one stable argsort of all runs by source gives them."""
    idx = np.argsort(srcs, kind="stable")
    return np.column_stack((first[idx], first[idx + 1]))


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 17])
@pytest.mark.parametrize(
    "n_src,key,row",
    [(5, np.uint8, np.uint32), (300, np.uint16, np.uint64), (70_000, np.uint32, np.uint32)],
)
def test_counting_sort_equals_one_stable_argsort(monkeypatch, chunk, n_src, key, row):
    monkeypatch.setattr(sonata, "_RUN_SORT_CHUNK", chunk)
    rng = np.random.default_rng(n_src + chunk)
    n = 5000
    srcs = rng.integers(0, n_src, n).astype(key)
    first = np.cumsum(rng.integers(1, 4, n + 1)).astype(np.uint64)  # rising run starts
    out = np.full((n, 2), 99, dtype=row)
    _ranges_by_source(first, srcs, np.bincount(srcs, minlength=n_src), out)
    assert np.array_equal(out, _reference(first, srcs))


def _edges(seed: int, n: int, n_src: int = 41, n_trg: int = 23):
    rng = np.random.default_rng(seed)
    trg = np.sort(rng.integers(0, n_trg, n))
    src = rng.integers(0, n_src, n)
    order = np.lexsort((src, trg))
    return src[order], trg[order], rng.normal(size=n)


def _write(path: Path, seed: int, n: int, ws: IndexWorkspace | None, chunk: int = 53) -> None:
    src, trg, w = _edges(seed, n)
    with EdgeStreamWriter(
        path,
        path.with_suffix(".csv"),
        "e",
        "s",
        "t",
        n_edges=n,
        n_source_nodes=41,
        n_target_nodes=23,
        edge_types=TYPES,
        columns={"syn_weight": "f8"},
        chunk_edges=chunk,
        compact=True,
        workspace=ws,
    ) as wr:
        for a in range(0, n, 157):
            wr.append(src[a : a + 157], trg[a : a + 157], 2, {"syn_weight": w[a : a + 157]})


def test_writers_reuse_one_workspace_and_write_the_same_bytes(tmp_path):
    ws = IndexWorkspace()
    _write(tmp_path / "big.h5", 1, 3000, ws)
    bufs = {k: v.ctypes.data for k, v in ws._bufs.items()}
    assert set(bufs) == {"run_first", "run_source", "ranges"} and ws.owner is None
    size = ws.nbytes
    # a smaller projection next: the same memory, nothing new, nothing shrunk
    _write(tmp_path / "small.h5", 2, 1000, ws)
    assert {k: v.ctypes.data for k, v in ws._bufs.items()} == bufs and ws.nbytes == size
    # the files are those of writers with their own workspace (what an earlier writer left
    # in the buffers does not leak into the next file), whatever the chunk size
    for name, seed, n in (("big", 1, 3000), ("small", 2, 1000)):
        _write(tmp_path / f"{name}_own.h5", seed, n, None, chunk=1 << 20)
        own = (tmp_path / f"{name}_own.h5").read_bytes()
        assert (tmp_path / f"{name}.h5").read_bytes() == own
    # a larger one: the buffers grow to what it needs, no more
    _write(tmp_path / "bigger.h5", 3, 5000, ws)
    assert ws.nbytes > size
    assert ws._bufs["run_first"].nbytes == 5001 * 4  # uint32 run starts, + the last end
    assert ws._bufs["run_source"].nbytes == 5000  # uint8 sources (41 of them)


def test_a_workspace_in_use_is_refused_and_freed_by_an_error(tmp_path):
    ws = IndexWorkspace()
    src, trg, w = _edges(5, 100)
    kw = dict(
        n_edges=100,
        n_source_nodes=41,
        n_target_nodes=23,
        edge_types=TYPES,
        columns={"syn_weight": "f8"},
        workspace=ws,
    )
    with EdgeStreamWriter(tmp_path / "a.h5", tmp_path / "a.csv", "e", "s", "t", **kw) as wr:
        assert ws.owner is wr
        with pytest.raises(RuntimeError, match="in use"):
            EdgeStreamWriter(tmp_path / "b.h5", tmp_path / "b.csv", "e", "s", "t", **kw)
        assert not (tmp_path / "b.h5").exists()  # the refused writer leaves no file
        assert ws.owner is wr
        wr.append(src, trg, 2, {"syn_weight": w})
    assert ws.owner is None
    with pytest.raises(ValueError, match="appended"):  # too few edges: closing fails
        with EdgeStreamWriter(tmp_path / "c.h5", tmp_path / "c.csv", "e", "s", "t", **kw) as wr:
            wr.append(src[:50], trg[:50], 2, {"syn_weight": w[:50]})
    assert ws.owner is None and not (tmp_path / "c.h5").exists()
    with pytest.raises(KeyError):  # an error inside the block: aborted, workspace free
        with EdgeStreamWriter(tmp_path / "d.h5", tmp_path / "d.csv", "e", "s", "t", **kw):
            raise KeyError("x")
    assert ws.owner is None


def test_workspaces_go_to_the_projection_they_fit_best():
    spaces = spec_build._Workspaces()
    r0, a = spaces.take(100)
    r1, b = spaces.take(10)
    assert (r0, r1) == (0, 0) and a is not b  # two in flight: two workspaces
    spaces.give(100, a)
    spaces.give(10, b)
    assert spaces.take(5) == (10, b)  # the smallest that fits
    spaces.give(10, b)
    assert spaces.take(50) == (100, a)
    spaces.give(100, a)
    assert spaces.take(500) == (100, a)  # none fits: the largest, which grows


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise (not Linux)")
def test_close_starts_the_write_back_of_big_files_only(tmp_path, monkeypatch):
    calls: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def recording(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append((offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording)
    monkeypatch.setattr(sonata, "_WRITEBACK_EDGES", 2000)
    _write(tmp_path / "small.h5", 1, 1999, None)
    assert calls == []  # small files are left to the kernel
    _write(tmp_path / "big.h5", 1, 2000, None)
    assert calls == [(0, 0, os.POSIX_FADV_DONTNEED)]  # the whole file, once, at close
    monkeypatch.setattr(sonata, "_WRITEBACK_EDGES", 1 << 40)
    _write(tmp_path / "plain.h5", 1, 2000, None)
    assert (tmp_path / "big.h5").read_bytes() == (tmp_path / "plain.h5").read_bytes()
