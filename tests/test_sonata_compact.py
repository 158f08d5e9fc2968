"""Compact edge files (uint32 node ids, group index and indices) and rows written in place.

The spec builder writes its edge files with ``EdgeStreamWriter(compact=True)``; every reader
must see the same edges as in the uint64 layout: libsonata, BMTK's own reader, our NEST loader
and the circuit checks. The rows go to each dataset's place in the file with ``os.pwrite``;
the file must be the one HDF5 itself writes.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import libsonata
import numpy as np
import pytest

from builder.core.sonata import EdgeStreamWriter, _id_dtype, write_edges
from builder.core.spec import NetworkBuilder, load_spec
from builder.core.spec import build as spec_build

REPO = Path(__file__).resolve().parents[1]
MICROCIRCUIT = REPO / "examples" / "microcircuit.json"
TYPES = [{"edge_type_id": 3, "model_template": "static_synapse"}]


def _edges(seed: int = 4, n_src: int = 37, n_trg: int = 29, n: int = 1500):
    rng = np.random.default_rng(seed)
    trg = np.sort(rng.integers(0, n_trg, n))
    src = rng.integers(0, n_src, n)
    order = np.lexsort((src, trg))  # multapses: repeated pairs, runs of one source
    return src[order], trg[order], rng.normal(size=n), rng.uniform(0.1, 3.0, n)


def _write(path: Path, src, trg, w, d, n_src, n_trg, compact: bool, chunk: int = 97) -> None:
    with EdgeStreamWriter(
        path,
        path.with_suffix(".csv"),
        "e",
        "s",
        "t",
        n_edges=len(src),
        n_source_nodes=n_src,
        n_target_nodes=n_trg,
        edge_types=TYPES,
        columns={"syn_weight": "f8", "delay": "f8"},
        chunk_edges=chunk,
        compact=compact,
    ) as wr:
        for a in range(0, len(src), 211):  # appends that split targets and source runs
            b = a + 211
            wr.append(src[a:b], trg[a:b], 3, {"syn_weight": w[a:b], "delay": d[a:b]})


def _datasets(g: h5py.Group, prefix: str = "") -> list[str]:
    out = []
    for k, v in g.items():
        out += _datasets(v, f"{prefix}{k}/") if isinstance(v, h5py.Group) else [prefix + k]
    return out


@pytest.fixture
def pair(tmp_path):
    n_src, n_trg = 37, 29
    src, trg, w, d = _edges(n_src=n_src, n_trg=n_trg)
    _write(tmp_path / "wide.h5", src, trg, w, d, n_src, n_trg, compact=False)
    _write(tmp_path / "compact.h5", src, trg, w, d, n_src, n_trg, compact=True)
    return tmp_path, src, trg, n_src, n_trg


def test_compact_dtypes_hold_the_same_values(pair):
    tmp, *_ = pair
    narrow = (
        "source_node_id",
        "target_node_id",
        "edge_group_index",
        "indices/source_to_target/node_id_to_ranges",
        "indices/source_to_target/range_to_edge_id",
        "indices/target_to_source/node_id_to_ranges",
        "indices/target_to_source/range_to_edge_id",
    )
    with h5py.File(tmp / "wide.h5") as hw, h5py.File(tmp / "compact.h5") as hc:
        gw, gc = hw["edges/e"], hc["edges/e"]
        for name in narrow:
            assert gw[name].dtype == np.uint64 and gc[name].dtype == np.uint32, name
        names = _datasets(gw)  # every link, hard links too
        assert set(narrow) < set(names) and "0/syn_weight" in names
        for name in names:
            assert np.array_equal(gw[name][()], gc[name][()]), name
            assert gw[name].attrs.items() == gc[name].attrs.items()
        for name in ("0/syn_weight", "0/delay"):  # float64 as drawn
            assert gc[name].dtype == np.float64
        assert gc["edge_type_id"][()].tolist() == [3] * gc["edge_type_id"].shape[0]
        assert gc["indices/source_to_target/node_id_to_range"].id == (
            gc["indices/source_to_target/node_id_to_ranges"].id
        )


def test_libsonata_reads_compact_files_as_wide_ones(pair):
    tmp, src, trg, n_src, n_trg = pair
    pw = libsonata.EdgeStorage(str(tmp / "wide.h5")).open_population("e")
    pc = libsonata.EdgeStorage(str(tmp / "compact.h5")).open_population("e")
    everything = libsonata.Selection([[0, len(src)]])
    assert pc.source_nodes(everything).tolist() == src.tolist()
    assert pc.target_nodes(everything).tolist() == trg.tolist()
    assert np.array_equal(
        pc.get_attribute("delay", everything), pw.get_attribute("delay", everything)
    )
    for s in range(n_src):
        got = pc.efferent_edges([s]).flatten().tolist()
        assert got == pw.efferent_edges([s]).flatten().tolist()
        assert got == np.flatnonzero(src == s).tolist()
    for t in range(n_trg):
        got = pc.afferent_edges([t]).flatten().tolist()
        assert got == np.flatnonzero(trg == t).tolist()
    assert (
        pc.connecting_edges([1, 2, 3], [4, 5, 6]).flatten().tolist()
        == pw.connecting_edges([1, 2, 3], [4, 5, 6]).flatten().tolist()
    )


def test_bmtk_reads_compact_files_as_wide_ones(pair):
    from bmtk.utils.sonata import File

    tmp, src, trg, n_src, n_trg = pair
    (tmp / "types.csv").write_text((tmp / "wide.csv").read_text())

    def read(name: str):
        pop = File(data_files=[str(tmp / name)], data_type_files=[str(tmp / "types.csv")]).edges[
            "e"
        ]
        every = [(e.source_node_id, e.target_node_id, e["syn_weight"], e.edge_type_id) for e in pop]
        by_trg = [[(e.source_node_id, e["delay"]) for e in pop.get_target(t)] for t in range(n_trg)]
        by_src = [[(e.target_node_id, e["delay"]) for e in pop.get_source(s)] for s in range(n_src)]
        return every, by_trg, by_src

    wide, compact = read("wide.h5"), read("compact.h5")
    assert compact == wide
    assert [(s, t) for s, t, *_ in compact[0]] == list(zip(src.tolist(), trg.tolist(), strict=True))
    assert sum(len(x) for x in compact[2]) == len(src)


@pytest.mark.parametrize("compact,in_memory", [(False, 1 << 26), (True, 1 << 26), (True, 0)])
def test_rows_in_place_hold_what_the_hdf5_library_writes(tmp_path, monkeypatch, compact, in_memory):
    """Rows written at their place with os.pwrite into our own file structure (and the source
    ids read back the same way for the source index) hold the values write_edges writes
    through the HDF5 library; the source index kept in memory or read back from the file
    gives the same bytes."""
    n_src, n_trg = 37, 29
    src, trg, w, d = _edges(n_src=n_src, n_trg=n_trg)
    defaults = EdgeStreamWriter.__init__.__kwdefaults__
    with monkeypatch.context() as m:
        m.setattr(EdgeStreamWriter.__init__, "__kwdefaults__", {**defaults, "runs_in_memory": 0})
        _write(tmp_path / "from_file.h5", src, trg, w, d, n_src, n_trg, compact)
    monkeypatch.setattr(
        EdgeStreamWriter.__init__, "__kwdefaults__", {**defaults, "runs_in_memory": in_memory}
    )
    _write(tmp_path / "raw.h5", src, trg, w, d, n_src, n_trg, compact)
    assert (tmp_path / "raw.h5").read_bytes() == (tmp_path / "from_file.h5").read_bytes()
    write_edges(
        tmp_path / "h5.h5",
        tmp_path / "h5.csv",
        "e",
        "s",
        "t",
        src,
        trg,
        np.full(len(src), 3),
        TYPES,
        {"syn_weight": w, "delay": d},
        n_source_nodes=n_src,
        n_target_nodes=n_trg,
    )
    with h5py.File(tmp_path / "raw.h5") as a, h5py.File(tmp_path / "h5.h5") as b:
        for name in _datasets(a):
            assert np.array_equal(a[name][()], b[name][()]), name


def test_id_dtype_widens_past_32_bits():
    assert _id_dtype(1 << 32, True) == np.uint32  # ids 0 .. 2**32 - 1
    assert _id_dtype((1 << 32) + 1, True) == np.uint64
    assert _id_dtype(5, False) == np.uint64


@pytest.fixture(scope="module")
def built_both(tmp_path_factory):
    """The microcircuit at scale 0.02 built compact (as the builder does) and wide."""
    spec = load_spec(MICROCIRCUIT, overrides={"scale": 0.02})
    out = tmp_path_factory.mktemp("compact")
    NetworkBuilder(spec).build(out / "compact")
    mp = pytest.MonkeyPatch()
    mp.setattr(
        spec_build,
        "EdgeStreamWriter",
        lambda *a, **k: EdgeStreamWriter(*a, **{**k, "compact": False}),
    )
    try:
        NetworkBuilder(spec).build(out / "wide")
    finally:
        mp.undo()
    return spec, out


def test_built_edges_are_compact_and_the_nest_loader_gets_the_same_connections(built_both):
    from builder.core.netconfig import read_config
    from builder.simulators.nest.loader import iter_edge_chunks

    spec, out = built_both
    cfg = {k: read_config(out / k / "simulation_config.json") for k in ("compact", "wide")}
    n = 0
    for ec, ew in zip(cfg["compact"].edges, cfg["wide"].edges, strict=True):
        assert ec.name == ew.name and ec.size == ew.size
        with h5py.File(ec.file) as h5:
            assert h5["edges"][ec.name]["source_node_id"].dtype == np.uint32
        src_gid = 1 + np.arange(cfg["compact"].nodes[ec.source].size)
        trg_gid = 100_000 + np.arange(cfg["compact"].nodes[ec.target].size)[::-1]  # a lookup
        a = [tuple(x.copy() for x in c) for c in iter_edge_chunks(ec, src_gid, trg_gid, 5000)]
        b = [tuple(x.copy() for x in c) for c in iter_edge_chunks(ew, src_gid, trg_gid, 5000)]
        for ca, cb in zip(a, b, strict=True):
            for xa, xb in zip(ca, cb, strict=True):
                assert xa.dtype == xb.dtype and np.array_equal(xa, xb)
        n += ec.size
    assert n > 100_000


def test_built_compact_files_pass_the_run_checks(built_both):
    from builder.core.checks import check_run_inputs

    _, out = built_both
    check_run_inputs(out / "compact" / "simulation_config.json")  # raises on a problem
    with h5py.File(out / "compact" / "network" / "L23E_to_L23I_edges.h5", "r+") as h5:
        h5["edges/L23E_to_L23I/source_node_id"][0] = 10**6  # outside L23E: caught
    with pytest.raises(Exception, match="outside population"):
        check_run_inputs(out / "compact" / "simulation_config.json")
