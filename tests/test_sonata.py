"""SONATA writers: read-back with libsonata and BMTK, exact indices, determinism, atomicity."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import h5py
import libsonata
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.core import sonata
from builder.core.errors import OutputError
from builder.core.sonata import (
    edge_index,
    write_csv_table,
    write_edges,
    write_nodes,
    write_spikes,
    write_spikes_multi,
)

BIO_TYPES = [
    {
        "node_type_id": 100,
        "model_type": "biophysical",
        "model_template": "hoc:L5PCtemplate",
        "morphology": None,
        "rotation_angle_zaxis": -1.5,
        "pop_name": "L5 PC",  # a space: must be quoted in the space-separated CSV
    }
]
VIRT_TYPES = [
    {"node_type_id": 200, "model_type": "virtual", "pop_name": "exc"},
    {"node_type_id": 201, "model_type": "virtual", "pop_name": "inh", "ei": "i"},
]
VIRT_TYPE_IDS = np.array([200, 201, 200, 200, 201, 200, 201, 200, 200, 201])
EDGE_TYPES = [
    {
        "edge_type_id": 300,
        "dynamics_params": "AMPA_NMDA.json",
        "model_template": "Exp2Syn",
        "delay": 2.0,
    },
    {"edge_type_id": 301, "dynamics_params": "GABA_InhToExc.json", "delay": None},
]
N_VIRT = 10
SILENT_SOURCES = (3, 6, 8)  # virtual nodes without edges


def _edges_onto_one(seed: int = 11) -> dict[str, np.ndarray]:
    """25 edges from the virtual nodes (not 3, 6, 8) onto node 0, in shuffled order."""
    rng = np.random.default_rng(seed)
    active = np.setdiff1d(np.arange(N_VIRT), SILENT_SOURCES)
    src = np.concatenate([active, rng.choice(active, 25 - len(active))])
    rng.shuffle(src)
    return {
        "src": src,
        "trg": np.zeros(25, dtype=np.int64),
        "type": np.where(VIRT_TYPE_IDS[src] == 200, 300, 301),
        "sec_id": rng.integers(0, 200, 25),
        "sec_x": rng.random(25),
        "nsyns": rng.integers(1, 4, 25).astype(np.uint32),
    }


def _build(out: Path) -> dict:
    """Write the small test network and a spikes file into ``out``; return the inputs."""
    write_nodes(
        out / "bio_nodes.h5",
        out / "bio_node_types.csv",
        "biophysical",
        np.array([100]),
        BIO_TYPES,
        {"x": np.array([1.25]), "tag": np.array(["soma-0"]), "flag": np.array([True])},
    )
    write_nodes(
        out / "virt_nodes.h5", out / "virt_node_types.csv", "virt", VIRT_TYPE_IDS, VIRT_TYPES
    )
    e = _edges_onto_one()
    order = write_edges(
        out / "virt_bio_edges.h5",
        out / "virt_bio_edge_types.csv",
        "virt_to_bio",
        "virt",
        "biophysical",
        e["src"],
        e["trg"],
        e["type"],
        EDGE_TYPES,
        {"sec_id": e["sec_id"], "sec_x": e["sec_x"], "nsyns": e["nsyns"]},
        n_source_nodes=N_VIRT,
        n_target_nodes=1,
    )
    spk_ids = np.array([4, 1, 4, 9, 1, 0, 4])
    spk_ts = np.array([30.0, 12.0, 5.0, 5.0, 3.0, 99.5, 17.0])
    write_spikes(out / "spikes.h5", "virt", spk_ids, spk_ts)
    return {"edges": e, "order": order, "spk_ids": spk_ids, "spk_ts": spk_ts}


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("net")
    return out, _build(out)


# --- nodes ------------------------------------------------------------------------------------


def test_nodes_layout_and_root_attributes(net):
    out, _ = net
    with h5py.File(out / "virt_nodes.h5", "r") as h5:
        assert h5.attrs["magic"] == 0x0A7A and h5.attrs["magic"].dtype == np.uint32
        assert h5.attrs["version"].tolist() == [0, 1] and h5.attrs["version"].dtype == np.uint32
        pop = h5["nodes/virt"]
        assert pop["node_id"][()].tolist() == list(range(N_VIRT))
        assert pop["node_type_id"][()].tolist() == VIRT_TYPE_IDS.tolist()
        assert pop["node_group_id"][()].tolist() == [0] * N_VIRT
        assert pop["node_group_index"][()].tolist() == list(range(N_VIRT))
        assert isinstance(pop["0"], h5py.Group) and len(pop["0"]) == 0
        for name in ("node_id", "node_type_id", "node_group_id", "node_group_index"):
            assert pop[name].compression is None and pop[name].chunks is None


def test_node_types_csv_text(net):
    out, _ = net
    assert (out / "bio_node_types.csv").read_text() == (
        "node_type_id model_type model_template morphology rotation_angle_zaxis pop_name\n"
        '100 biophysical hoc:L5PCtemplate NULL -1.5 "L5 PC"\n'
    )
    assert (out / "virt_node_types.csv").read_text() == (
        "node_type_id model_type pop_name ei\n200 virtual exc NULL\n201 virtual inh i\n"
    )


def test_nodes_libsonata(net):
    out, _ = net
    virt = libsonata.NodeStorage(str(out / "virt_nodes.h5")).open_population("virt")
    assert virt.size == N_VIRT and virt.attribute_names == set()
    bio = libsonata.NodeStorage(str(out / "bio_nodes.h5")).open_population("biophysical")
    assert bio.size == 1
    assert bio.attribute_names == {"x", "tag", "flag"}
    assert bio.get_attribute("x", 0) == 1.25
    assert bio.get_attribute("tag", 0) == "soma-0"
    assert bio.get_attribute("flag", 0) == 1


@pytest.mark.bmtk
def test_nodes_bmtk_merges_types(net):
    from bmtk.utils.sonata import File

    out, _ = net
    f = File(
        data_files=[str(out / "bio_nodes.h5")], data_type_files=[str(out / "bio_node_types.csv")]
    )
    assert f.version == "0.1"
    node = f.nodes["biophysical"].get_node_id(0)
    assert node["model_template"] == "hoc:L5PCtemplate"
    assert node["morphology"] is None  # NULL -> None
    assert node["rotation_angle_zaxis"] == -1.5
    assert node["pop_name"] == "L5 PC"
    assert node["x"] == 1.25

    f = File(
        data_files=[str(out / "virt_nodes.h5")], data_type_files=[str(out / "virt_node_types.csv")]
    )
    pop = f.nodes["virt"]
    rows = [(int(n.node_id), int(n.node_type_id), n["model_type"], n["ei"]) for n in pop]
    assert rows == [
        (i, int(t), "virtual", None if t == 200 else "i") for i, t in enumerate(VIRT_TYPE_IDS)
    ]


# --- edges ------------------------------------------------------------------------------------


def _assert_index_matches(pop: libsonata.EdgePopulation, written_src, written_trg, n_src, n_trg):
    """afferent/efferent edges of every node equal a brute-force scan of the written edges."""
    for node in range(n_trg):
        got = np.sort(pop.afferent_edges([node]).flatten())
        assert got.tolist() == np.flatnonzero(written_trg == node).tolist(), node
    for node in range(n_src):
        got = np.sort(pop.efferent_edges([node]).flatten())
        assert got.tolist() == np.flatnonzero(written_src == node).tolist(), node


def test_edges_libsonata_one_target(net):
    out, inp = net
    e, order = inp["edges"], inp["order"]
    # documented order: stable sort by (target, source)
    assert order.tolist() == np.lexsort((e["src"], e["trg"])).tolist()
    pop = libsonata.EdgeStorage(str(out / "virt_bio_edges.h5")).open_population("virt_to_bio")
    assert (pop.size, pop.source, pop.target) == (25, "virt", "biophysical")
    assert pop.attribute_names == {"sec_id", "sec_x", "nsyns"}
    all_edges = pop.select_all()
    np.testing.assert_array_equal(pop.source_nodes(all_edges), e["src"][order])
    np.testing.assert_array_equal(pop.target_nodes(all_edges), e["trg"][order])
    np.testing.assert_array_equal(pop.get_attribute("sec_id", all_edges), e["sec_id"][order])
    np.testing.assert_array_equal(pop.get_attribute("sec_x", all_edges), e["sec_x"][order])
    np.testing.assert_array_equal(pop.get_attribute("nsyns", all_edges), e["nsyns"][order])
    _assert_index_matches(pop, e["src"][order], e["trg"][order], N_VIRT, 1)
    for node in SILENT_SOURCES:
        assert pop.efferent_edges([node]).flatten().size == 0
    with h5py.File(out / "virt_bio_edges.h5", "r") as h5:
        g = h5["edges/virt_to_bio"]
        assert g["source_node_id"].dtype == np.uint64 and g["target_node_id"].dtype == np.uint64
        assert g["edge_type_id"][()].tolist() == e["type"][order].tolist()
        assert g["edge_group_id"][()].tolist() == [0] * 25
        assert g["edge_group_index"][()].tolist() == list(range(25))
        for idx in ("source_to_target", "target_to_source"):
            grp = g["indices"][idx]
            assert grp["node_id_to_range"] == grp["node_id_to_ranges"]  # same object
            assert grp["node_id_to_ranges"].dtype == np.uint64
            assert grp["range_to_edge_id"].dtype == np.uint64
        # nodes without edges: [0, 0]
        n2r = g["indices/source_to_target/node_id_to_ranges"][()]
        assert n2r[list(SILENT_SOURCES)].tolist() == [[0, 0]] * len(SILENT_SOURCES)
        # one target, edges sorted by target: a single contiguous range
        assert g["indices/target_to_source/range_to_edge_id"][()].tolist() == [[0, 25]]


@pytest.mark.parametrize("sort", [True, False])
def test_edges_index_exact_many_targets(tmp_path, sort):
    rng = np.random.default_rng(5)
    n_src, n_trg, n_e = 12, 5, 80
    src = rng.integers(0, n_src - 2, n_e)  # last two sources without edges
    trg = rng.choice([0, 1, 2, 4], n_e)  # target 3 without edges
    w = rng.random(n_e)
    h5 = tmp_path / "e.h5"
    order = write_edges(
        h5,
        tmp_path / "e.csv",
        "p",
        "a",
        "b",
        src,
        trg,
        np.zeros(n_e, int),
        [{"edge_type_id": 0}],
        {"syn_weight": w},
        n_source_nodes=n_src,
        n_target_nodes=n_trg,
        sort=sort,
    )
    if not sort:
        assert order.tolist() == list(range(n_e))
    pop = libsonata.EdgeStorage(str(h5)).open_population("p")
    _assert_index_matches(pop, src[order], trg[order], n_src, n_trg)
    np.testing.assert_array_equal(pop.get_attribute("syn_weight", pop.select_all()), w[order])

    # our index equals the one libsonata writes itself, except for nodes without edges,
    # where we write [0, 0] (BMTK's convention) and libsonata [k, k] (both mean "empty")
    ref = tmp_path / "ref.h5"
    ref.write_bytes(h5.read_bytes())
    with h5py.File(ref, "a") as f:
        del f["edges/p/indices"]
    libsonata.EdgePopulation.write_indices(str(ref), "p", n_src, n_trg)
    with h5py.File(h5, "r") as a, h5py.File(ref, "r") as b:
        for idx, n in (("source_to_target", n_src), ("target_to_source", n_trg)):
            ours, theirs = a[f"edges/p/indices/{idx}"], b[f"edges/p/indices/{idx}"]
            np.testing.assert_array_equal(ours["range_to_edge_id"], theirs["range_to_edge_id"])
            n2r, ref_n2r = ours["node_id_to_ranges"][()], theirs["node_id_to_ranges"][()]
            empty = ref_n2r[:, 0] == ref_n2r[:, 1]
            assert empty.sum() == (2 if idx == "source_to_target" else 1)
            np.testing.assert_array_equal(n2r[~empty], ref_n2r[~empty])
            assert (n2r[empty] == 0).all() and n2r.shape == (n, 2)


def test_edges_sort_is_stable(tmp_path):
    src = np.array([2, 0, 2, 1, 0, 2])
    trg = np.array([1, 1, 0, 1, 1, 1])
    tag = np.arange(6)
    order = write_edges(
        tmp_path / "e.h5",
        tmp_path / "e.csv",
        "p",
        "a",
        "b",
        src,
        trg,
        np.zeros(6, int),
        [{"edge_type_id": 0}],
        {"tag": tag},
        n_source_nodes=3,
        n_target_nodes=2,
    )
    # (trg, src): (0,2)#2, (1,0)#1, (1,0)#4, (1,1)#3, (1,2)#0, (1,2)#5
    assert order.tolist() == [2, 1, 4, 3, 0, 5]
    with h5py.File(tmp_path / "e.h5", "r") as h5:
        assert h5["edges/p/0/tag"][()].tolist() == [2, 1, 4, 3, 0, 5]


def test_edges_empty(tmp_path):
    write_edges(
        tmp_path / "e.h5",
        tmp_path / "e.csv",
        "p",
        "a",
        "b",
        [],
        [],
        [],
        [{"edge_type_id": 0}],
        {"sec_x": np.zeros(0)},
        n_source_nodes=3,
        n_target_nodes=2,
    )
    pop = libsonata.EdgeStorage(str(tmp_path / "e.h5")).open_population("p")
    assert pop.size == 0 and pop.afferent_edges([0, 1]).flatten().size == 0


def test_edge_types_csv_text(net):
    out, _ = net
    assert (out / "virt_bio_edge_types.csv").read_text() == (
        "edge_type_id dynamics_params model_template delay\n"
        "300 AMPA_NMDA.json Exp2Syn 2.0\n"
        "301 GABA_InhToExc.json NULL NULL\n"
    )


@pytest.mark.bmtk
def test_edges_bmtk(net):
    from bmtk.utils.sonata import File

    out, inp = net
    e = inp["edges"]
    f = File(
        data_files=[str(out / "virt_bio_edges.h5")],
        data_type_files=[str(out / "virt_bio_edge_types.csv")],
    )
    pop = f.edges["virt_to_bio"]
    assert (len(pop), pop.source_population, pop.target_population) == (25, "virt", "biophysical")
    edges = list(pop.get_target(0))  # uses node_id_to_range (the hard link)
    got = sorted(
        (
            int(x.source_node_id),
            int(x["sec_id"]),
            float(x["sec_x"]),
            int(x["nsyns"]),
            x["dynamics_params"],
            x["delay"],
        )
        for x in edges
    )
    want = sorted(
        (
            int(s),
            int(i),
            float(x),
            int(n),
            "AMPA_NMDA.json" if t == 300 else "GABA_InhToExc.json",
            2.0 if t == 300 else None,
        )
        for s, i, x, n, t in zip(
            e["src"], e["sec_id"], e["sec_x"], e["nsyns"], e["type"], strict=True
        )
    )
    assert got == want
    for node in range(N_VIRT):
        assert len(list(pop.get_source(node))) == int((e["src"] == node).sum())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=40), st.integers(0, 3))
def test_edge_index_property(keys, extra_nodes):
    keys = np.asarray(keys, dtype=np.int64)
    n_nodes = (int(keys.max()) + 1 if keys.size else 0) + extra_nodes
    n2r, r2e = edge_index(keys, n_nodes)
    assert n2r.shape == (n_nodes, 2) and r2e.shape[1] == 2
    assert n2r.dtype == np.uint64 and r2e.dtype == np.uint64
    for node in range(n_nodes):
        beg, end = (int(v) for v in n2r[node])
        ranges = r2e[beg:end].astype(int)
        edges = [i for b, e in ranges for i in range(b, e)]
        assert edges == np.flatnonzero(keys == node).tolist()
        if not edges:
            assert beg == end == 0
        for b, e in ranges:  # runs are maximal
            assert b == 0 or keys[b - 1] != node
            assert e == len(keys) or keys[e] != node
    n_runs = int(np.count_nonzero(np.diff(keys))) + 1 if keys.size else 0
    assert len(r2e) == n_runs


# --- spikes -----------------------------------------------------------------------------------


def test_spikes_libsonata_by_id(net):
    out, inp = net
    pop = libsonata.SpikeReader(str(out / "spikes.h5"))["virt"]
    assert pop.sorting == "by_id" and pop.time_units == "ms"
    assert pop.get() == [(0, 99.5), (1, 3.0), (1, 12.0), (4, 5.0), (4, 17.0), (4, 30.0), (9, 5.0)]
    assert pop.get([4]) == [(4, 5.0), (4, 17.0), (4, 30.0)]
    with h5py.File(out / "spikes.h5", "r") as h5:
        grp = h5["spikes/virt"]
        assert h5py.check_enum_dtype(grp.attrs.get_id("sorting").dtype) == sonata.SPIKE_SORTING
        assert grp.attrs["sorting"] == 1
        assert grp["timestamps"].dtype == np.float64 and grp["node_ids"].dtype == np.uint64
        assert grp["timestamps"].attrs["units"] == "ms"


@pytest.mark.parametrize(
    ("sorting", "expected"),
    [
        ("by_time", [(1, 3.0), (4, 5.0), (9, 5.0), (1, 12.0), (4, 17.0), (4, 30.0), (0, 99.5)]),
        ("none", [(4, 30.0), (1, 12.0), (4, 5.0), (9, 5.0), (1, 3.0), (0, 99.5), (4, 17.0)]),
    ],
)
def test_spikes_other_sortings(tmp_path, net, sorting, expected):
    _, inp = net
    write_spikes(tmp_path / "s.h5", "virt", inp["spk_ids"], inp["spk_ts"], sorting=sorting)
    pop = libsonata.SpikeReader(str(tmp_path / "s.h5"))["virt"]
    assert pop.sorting == sorting
    assert pop.get() == expected


def test_spikes_multi_population(tmp_path):
    write_spikes_multi(tmp_path / "s.h5", {"exc": ([2, 0], [1.0, 4.0]), "inh": ([1], [2.5])})
    reader = libsonata.SpikeReader(str(tmp_path / "s.h5"))
    assert sorted(reader.get_population_names()) == ["exc", "inh"]
    assert reader["exc"].get() == [(0, 4.0), (2, 1.0)]
    assert reader["inh"].get() == [(1, 2.5)]


@pytest.mark.bmtk
def test_spikes_bmtk(net):
    from bmtk.utils.reports.spike_trains import SpikeTrains

    out, inp = net
    trains = SpikeTrains.from_sonata(str(out / "spikes.h5"))
    assert trains.populations == ["virt"]
    assert trains.units(population="virt") == "ms"
    assert trains.n_spikes(population="virt") == len(inp["spk_ts"])
    for node in range(N_VIRT):
        want = np.sort(inp["spk_ts"][inp["spk_ids"] == node]).tolist()
        assert list(trains.get_times(node, population="virt")) == want


# --- plain CSV --------------------------------------------------------------------------------


def test_write_csv_table(tmp_path):
    path = tmp_path / "FunctionalGroups.csv"
    write_csv_table(path, ["Node ID", "Functional Group"], [np.arange(4), np.array([0, 0, 1, 1])])
    assert path.read_text() == "Node ID,Functional Group\n0,0\n1,0\n2,1\n3,1\n"
    write_csv_table(path, ["a", "b"], [np.array([0.1, 2.5]), np.array(["x", "y z"])], sep=" ")
    assert path.read_text() == 'a b\n0.1 x\n2.5 "y z"\n'


# --- determinism and atomicity ----------------------------------------------------------------


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_byte_identical_rewrites(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _build(a)
    time.sleep(1.1)  # HDF5 object timestamps have 1 s resolution: files would differ if stored
    _build(b)
    assert _digests(a) == _digests(b)
    assert len(_digests(a)) == 7


def test_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "nodes.h5"
    target.write_bytes(b"previous")

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    real_put = sonata._put

    def put_then_boom(f, group, name, data):  # fails half-way through the file
        if name == "x":
            raise RuntimeError("disk on fire")
        return real_put(f, group, name, data)

    monkeypatch.setattr(sonata, "_put", put_then_boom)
    monkeypatch.setattr(sonata, "_write_columns", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_nodes(
            target,
            tmp_path / "types.csv",
            "p",
            np.zeros(3, int),
            [{"node_type_id": 0}],
            {"x": np.ones(3)},
        )
    assert target.read_bytes() == b"previous"  # old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nodes.h5"]  # no temp file, no CSV

    with pytest.raises(RuntimeError):
        write_edges(
            tmp_path / "e.h5",
            tmp_path / "e.csv",
            "p",
            "a",
            "b",
            [0],
            [0],
            [0],
            [{"edge_type_id": 0}],
            n_source_nodes=1,
            n_target_nodes=1,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nodes.h5"]


def test_unwritable_directory_is_output_error(tmp_path):
    with pytest.raises(OutputError, match="missing"):
        write_spikes(tmp_path / "missing" / "s.h5", "p", [0], [1.0])
    with pytest.raises(OutputError):
        write_csv_table(tmp_path / "missing" / "t.csv", ["a"], [np.arange(2)])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_ids": [0, 2]}, "out of range"),
        ({"source_ids": [0, -1]}, ">= 0"),
        ({"edge_type_ids": [0, 5]}, r"\[5\] have no row"),
        (
            {"source_ids": [0, 1, 1, 0], "target_ids": [0, 1, 0, 1], "edge_type_ids": [5, 0, 3, 5]},
            r"values \[3, 5\] have no row",
        ),
        ({"target_ids": [0]}, "expected 2 values"),
        ({"columns": {"w": np.ones(3)}}, "column 'w'"),
        ({"source_ids": [0.0, 1.0]}, "expected integers"),
    ],
)
def test_edges_bad_input_writes_nothing(tmp_path, kwargs, message):
    args = {"source_ids": [0, 1], "target_ids": [0, 1], "edge_type_ids": [0, 0], "columns": None}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        write_edges(
            tmp_path / "e.h5",
            tmp_path / "e.csv",
            "p",
            "a",
            "b",
            args["source_ids"],
            args["target_ids"],
            args["edge_type_ids"],
            [{"edge_type_id": 0}],
            args["columns"],
            n_source_nodes=2,
            n_target_nodes=2,
        )
    assert list(tmp_path.iterdir()) == []


def test_nodes_and_spikes_bad_input(tmp_path):
    with pytest.raises(ValueError, match="duplicate"):
        write_nodes(
            tmp_path / "n.h5",
            tmp_path / "n.csv",
            "p",
            [0],
            [{"node_type_id": 0}, {"node_type_id": 0}],
        )
    with pytest.raises(ValueError, match="no row"):
        write_nodes(tmp_path / "n.h5", tmp_path / "n.csv", "p", [1], [{"node_type_id": 0}])
    with pytest.raises(TypeError, match="scalars"):
        write_nodes(
            tmp_path / "n.h5", tmp_path / "n.csv", "p", [0], [{"node_type_id": 0, "bad": {"a": 1}}]
        )
    with pytest.raises(ValueError, match="sorting"):
        write_spikes(tmp_path / "s.h5", "p", [0], [1.0], sorting="by_gid")
    with pytest.raises(ValueError, match="finite"):
        write_spikes(tmp_path / "s.h5", "p", [0], [np.nan])
    with pytest.raises(ValueError, match="population name"):
        write_spikes(tmp_path / "s.h5", "a/b", [0], [1.0])
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.sampled_from([0.0, 0.5, 1.0, 2.5])), max_size=30))
def test_spike_sort_order_equals_lexsort(pairs):
    ids = np.array([p[0] for p in pairs], dtype=np.uint64)
    ts = np.array([p[1] for p in pairs], dtype=np.float64)
    for primary, secondary in ((ids, ts), (ts, ids)):
        order = sonata._sort_order(primary, secondary)
        expected = np.lexsort((secondary, primary))
        if order is None:  # already sorted: the identity is a valid stable order
            assert expected.tolist() == list(range(len(ids)))
        else:
            assert order.tolist() == expected.tolist()


def test_type_tables_have_the_bytes_of_the_csv_writer(tmp_path):
    """The direct join of plain tables and the csv writer for tables that need quoting give
    what csv.writer (space-separated, minimal quoting) gives, for any mix of values."""
    import csv
    import io
    import random

    rng = random.Random(1)
    pool = ["a", "b c", 'q"t', "", "x\ny", "NULL", "1.5", "µ", "z\r", "plain_name.json"]
    for _ in range(500):
        rows = [[rng.choice(pool) for _ in range(rng.randint(1, 4))] for _ in range(3)]
        sonata._write_types_csv(tmp_path / "t.csv", rows)
        buf = io.StringIO(newline="")
        csv.writer(buf, delimiter=" ", lineterminator="\n").writerows(rows)
        assert (tmp_path / "t.csv").read_bytes() == buf.getvalue().encode("utf-8"), rows
