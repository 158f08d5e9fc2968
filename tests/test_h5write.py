"""builder.core.h5write: files written without the HDF5 library, read back through it (h5py,
libsonata), changed through it afterwards, and the same calls giving the same bytes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from builder.core.h5write import H5Writer

NUMERIC = ["u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f4", "f8", ">i4", ">f8"]


def _sample(path, n_members: int = 12):
    """One file with every feature; returns what was written, to compare with."""
    rng = np.random.default_rng(5)
    want: dict[str, np.ndarray] = {}
    f = H5Writer(path)
    f.attr(f.root, "magic", np.uint32(0x0A7A))
    f.attr(f.root, "version", np.array([0, 1], dtype=np.uint32))
    f.attr(f.root, "label", "microcircuit µ")
    pop = f.group(f.group(f.root, "edges"), "a_to_b")
    for code in NUMERIC:
        data = (rng.normal(size=(7,)) * 50).astype(code)
        ds = f.dataset(pop, f"col_{code.strip('<>')}{'_be' if '>' in code else ''}", 7, code)
        f.write(ds, 0, data[:3])  # in two pieces, in any order
        f.write(ds, 3, data[3:])
        want[f"edges/a_to_b/{ds_name(code)}"] = data
    two = np.arange(24, dtype=np.uint64).reshape(12, 2)
    ds2 = f.dataset(pop, "ranges", (12, 2), np.uint64)
    f.write(ds2, 4, two[4:])
    f.write(ds2, 0, two[:4])
    f.link(pop, "ranges_link", ds2)
    want["edges/a_to_b/ranges"] = want["edges/a_to_b/ranges_link"] = two
    src = f.dataset(pop, "source_node_id", 0, np.uint32)
    f.attr(src, "node_population", "a")
    want["edges/a_to_b/source_node_id"] = np.zeros(0, np.uint32)
    f.dataset(pop, "edge_type_id", 9, np.uint32, fill=100)
    want["edges/a_to_b/edge_type_id"] = np.full(9, 100, np.uint32)
    f.dataset(pop, "weight_const", 4, np.float64, fill=-2.5)
    want["edges/a_to_b/weight_const"] = np.full(4, -2.5)
    f.group(pop, "empty")
    many = f.group(pop, "many")
    for i in range(n_members):
        ds = f.dataset(many, f"m{i:04d}", 2, np.int16)
        f.write(ds, 0, np.array([i, -i]))
        want[f"edges/a_to_b/many/m{i:04d}"] = np.array([i, -i], np.int16)
    words = ["SO", "", "élan", "x" * 300]
    f.strings(pop, "layer", words)
    want["edges/a_to_b/layer"] = np.array(words, dtype=object)
    f.close()
    return want


def ds_name(code: str) -> str:
    return f"col_{code.strip('<>')}{'_be' if '>' in code else ''}"


def _check(path, want):
    with h5py.File(path, "r") as h:
        assert h.attrs["magic"] == 0x0A7A and h.attrs.get_id("magic").shape == ()
        assert h.attrs["version"].tolist() == [0, 1]
        assert h.attrs["label"] == "microcircuit µ"
        for name, data in want.items():
            ds = h[name]
            if data.dtype == object:
                assert ds.asstr()[()].tolist() == data.tolist()
                assert h5py.check_string_dtype(ds.dtype).encoding == "utf-8"
            else:
                got = ds[()]
                assert got.dtype == data.dtype.newbyteorder("<"), name
                assert got.shape == data.shape and np.array_equal(got, data), name
        assert h["edges/a_to_b/source_node_id"].attrs["node_population"] == "a"
        assert list(h["edges/a_to_b/empty"]) == []
        assert h["edges/a_to_b/ranges"] == h["edges/a_to_b/ranges_link"]  # the same object
        assert h5py.h5o.get_info(h["edges/a_to_b/ranges"].id).rc == 2
        seen = []
        h.visit(seen.append)
        assert len(seen) == len(set(seen))


@pytest.mark.parametrize("n_members", [0, 8, 9, 300])
def test_the_hdf5_library_reads_every_feature(tmp_path, n_members):
    """Groups of 0, one full, two and more than 32 symbol-table nodes (a two-level B-tree)."""
    want = _sample(tmp_path / "f.h5", n_members)
    _check(tmp_path / "f.h5", want)
    with h5py.File(tmp_path / "f.h5") as h:
        assert sorted(h["edges/a_to_b/many"]) == [f"m{i:04d}" for i in range(n_members)]


def test_same_calls_same_bytes(tmp_path):
    _sample(tmp_path / "a.h5")
    _sample(tmp_path / "b.h5")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_the_hdf5_library_can_change_the_file_later(tmp_path):
    want = _sample(tmp_path / "f.h5")
    with h5py.File(tmp_path / "f.h5", "r+") as h:
        h["edges/a_to_b/new"] = np.arange(3)
        h["edges/a_to_b/layer"].attrs["units"] = "none"
        del h["edges/a_to_b/col_f8"]
        for i in range(20):  # splits the full symbol-table node
            h[f"edges/a_to_b/many/z{i}"] = i
    del want["edges/a_to_b/col_f8"]
    _check(tmp_path / "f.h5", want)
    with h5py.File(tmp_path / "f.h5") as h:
        assert h["edges/a_to_b/new"][()].tolist() == [0, 1, 2]
        assert h["edges/a_to_b/layer"].attrs["units"] == "none"
        assert len(h["edges/a_to_b/many"]) == 32


def test_libsonata_reads_a_sonata_edge_file(tmp_path):
    libsonata = pytest.importorskip("libsonata")
    f = H5Writer(tmp_path / "e.h5")
    f.attr(f.root, "magic", np.uint32(0x0A7A))
    f.attr(f.root, "version", np.array([0, 1], dtype=np.uint32))
    pop = f.group(f.group(f.root, "edges"), "e")
    for name, ids, node_pop in (
        ("source_node_id", [0, 2, 1], "s"),
        ("target_node_id", [0, 0, 1], "t"),
    ):
        ds = f.dataset(pop, name, 3, np.uint32)
        f.attr(ds, "node_population", node_pop)
        f.write(ds, 0, np.array(ids))
    f.dataset(pop, "edge_type_id", 3, np.uint32, fill=7)
    f.dataset(pop, "edge_group_id", 3, np.uint32, fill=0)
    gi = f.dataset(pop, "edge_group_index", 3, np.uint32)
    f.write(gi, 0, np.arange(3))
    w = f.dataset(f.group(pop, "0"), "syn_weight", 3, np.float64)
    f.write(w, 0, np.array([0.5, 1.5, 2.5]))
    f.close()
    p = libsonata.EdgeStorage(str(tmp_path / "e.h5")).open_population("e")
    assert (p.source, p.target, p.size) == ("s", "t", 3)
    sel = libsonata.Selection([[0, 3]])
    assert p.source_nodes(sel).tolist() == [0, 2, 1]
    assert p.get_attribute("syn_weight", sel).tolist() == [0.5, 1.5, 2.5]
    assert p.target_nodes(sel).tolist() == [0, 0, 1]


def test_more_strings_than_one_heap_collection_holds(tmp_path):
    words = [str(i) for i in range(70_000)]  # a collection indexes at most 65,535 objects
    f = H5Writer(tmp_path / "s.h5")
    f.strings(f.root, "w", words)
    f.close()
    with h5py.File(tmp_path / "s.h5") as h:
        assert h["w"].asstr()[()].tolist() == words


def test_bad_calls_are_refused(tmp_path):
    f = H5Writer(tmp_path / "x.h5")
    g = f.group(f.root, "g")
    with pytest.raises(ValueError, match="already exists"):
        f.group(f.root, "g")
    for bad in ("", "a/b", ".", "nul\0"):
        with pytest.raises(ValueError, match="invalid"):
            f.dataset(g, bad, 1, np.uint8)
    with pytest.raises(ValueError, match="unsupported dtype"):
        f.dataset(g, "c", 1, np.complex128)
    ds = f.dataset(g, "d", 4, np.uint16)
    with pytest.raises(ValueError, match="outside"):
        f.write(ds, 2, np.arange(3))
    f.abort()


def _tree(path):
    """Every object of an HDF5 file: dtype, shape, values and attributes (strings decoded)."""

    def value(v):
        v = v.tolist() if hasattr(v, "tolist") else v
        if isinstance(v, list):
            return [x.decode() if isinstance(x, bytes) else x for x in v]
        return v.decode() if isinstance(v, bytes) else v

    out = {}
    with h5py.File(path) as h:

        def visit(name, obj):
            attrs = {k: value(v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.dtype.kind, obj.dtype.itemsize, obj.shape, value(obj[()]), attrs)
            else:
                out[name + "/"] = attrs

        h.visititems(visit)
        out["/"] = {k: value(v) for k, v in h.attrs.items()}
    return out


def test_node_files_hold_what_h5py_writes(tmp_path):
    """write_nodes (this writer) against the same population written through h5py's own
    high-level API: the same objects, dtypes, shapes, values and attributes."""
    from builder.core.sonata import SONATA_MAGIC, SONATA_VERSION, write_nodes

    n = 5
    cols = {
        "x": np.linspace(0, 1, n),
        "layer": np.array(["SO", "SP", "SR", "SLM", "é"], dtype=object),
        "flag": np.array([True, False, True, True, False]),
        "k": np.arange(n, dtype=np.int16),
    }
    types = np.array([3, 3, 4, 4, 3])
    write_nodes(
        tmp_path / "ours.h5",
        tmp_path / "types.csv",
        "pop",
        types,
        [{"node_type_id": 3}, {"node_type_id": 4}],
        cols,
    )
    with h5py.File(tmp_path / "ref.h5", "w") as h:
        h.attrs["magic"] = np.uint32(SONATA_MAGIC)
        h.attrs["version"] = np.asarray(SONATA_VERSION, dtype=np.uint32)
        pop = h.create_group("nodes/pop")
        pop["node_id"] = np.arange(n, dtype=np.uint64)
        pop["node_type_id"] = types.astype(np.uint64)
        pop["node_group_id"] = np.zeros(n, dtype=np.uint32)
        pop["node_group_index"] = np.arange(n, dtype=np.uint64)
        grp = pop.create_group("0")
        grp["x"] = cols["x"]
        grp["layer"] = cols["layer"].astype(h5py.string_dtype("utf-8"))
        grp["flag"] = cols["flag"].astype(np.uint8)
        grp["k"] = cols["k"]
    assert _tree(tmp_path / "ours.h5") == _tree(tmp_path / "ref.h5")
