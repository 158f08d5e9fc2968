"""Morphologies in SWC, Neurolucida ASC and HDF5: format by content, loading, legacy templates.

The sniffer tests need neither NEURON nor MorphIO; the rest are marked ``neuron``. Every
morphology is generated here: a tiny cell written as SWC and as ASC, h5 copies of both made
with MorphIO, and an ASC version of the project's L5 cell made from its SWC.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from builder.core.components import CellSpec, project_components_dir, resolve_cell
from builder.core.errors import ComponentError
from builder.core.morphology import morphology_format
from builder.core.segments import SegmentTable

ROOT = Path(__file__).resolve().parents[1]
L5_SWC = project_components_dir() / "morphologies" / "L5PC.swc"
DL_UM = 5.0

# ---------------------------------------------------------------------------- fixtures
#: The tiny cell's neurites: (tag, SWC type, points (x, y, z, diameter), children).
_TREES = [
    ("Dendrite", 3, [(5, 0, 0, 2), (20, 2, 0, 2), (40, 2, 0, 2)],
     [[(60, 10, 0, 1), (80, 20, 0, 1)], [(60, -10, 0, 1), (70, -30, 5, 1)]]),
    ("Apical", 4, [(0, 5, 0, 3), (0, 50, 0, 3), (0, 120, 0, 2)], []),
    ("Axon", 2, [(0, -5, 0, 1), (0, -40, 0, 1)], []),
]  # fmt: skip
_SOMA_R_UM = 5.0


def tiny_swc() -> str:
    """The tiny cell as SWC: NeuroMorpho three-point soma, then each tree depth first."""
    rows = [(1, 1, 0.0, 0.0, 0.0, _SOMA_R_UM, -1)]
    rows += [
        (2, 1, 0.0, -_SOMA_R_UM, 0.0, _SOMA_R_UM, 1),
        (3, 1, 0.0, _SOMA_R_UM, 0.0, _SOMA_R_UM, 1),
    ]
    for _, kind, points, children in _TREES:
        parent = 1
        for x, y, z, d in points:
            rows.append((len(rows) + 1, kind, x, y, z, d / 2, parent))
            parent = len(rows)
        branch = parent
        for child in children:
            parent = branch
            for x, y, z, d in child:
                rows.append((len(rows) + 1, kind, x, y, z, d / 2, parent))
                parent = len(rows)
    body = "\n".join(" ".join(str(v) for v in row) for row in rows)
    return f"# tiny test cell\n# id type x y z r parent\n{body}\n"


def tiny_asc() -> str:
    """The tiny cell as Neurolucida ASC: an elliptic soma contour (8 x 12 um), same trees."""
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    contour = "\n".join(f"  ({4 * np.cos(a):.6f} {6 * np.sin(a):.6f} 0 0)" for a in angles)
    out = ["; tiny test cell", '("CellBody"', "  (Color Red)", "  (CellBody)", contour, ")"]

    def pts(points, indent):
        return [f"{indent}({x} {y} {z} {d})" for x, y, z, d in points]

    for tag, _, points, children in _TREES:
        out += ["( (Color White)", f"  ({tag})", *pts(points, "  ")]
        if children:
            out.append("  (")
            for i, child in enumerate(children):
                out += (["  |"] if i else []) + pts(child, "    ")
            out.append("  )")
        out.append(")")
    return "\n".join(out) + "\n"


def to_h5(src: Path, dst: Path) -> Path:
    """``src`` rewritten by MorphIO in its h5 (v1) layout."""
    morphio = pytest.importorskip("morphio")
    morphio.set_maximum_warnings(0)
    morphio.mut.Morphology(str(src)).write(str(dst))
    return dst


def swc_to_asc(src: Path, dst: Path, n_contour: int = 24) -> Path:
    """An ASC version of the SWC ``src``: the soma becomes a circular contour of its radius."""
    morphio = pytest.importorskip("morphio")
    morphio.set_maximum_warnings(0)
    m = morphio.mut.Morphology(str(src))
    centre = np.asarray(m.soma.points, dtype=float).mean(axis=0)
    radius = float(np.max(m.soma.diameters)) / 2
    a = np.linspace(0, 2 * np.pi, n_contour, endpoint=False)
    m.soma.points = np.column_stack(
        [centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a), np.full_like(a, centre[2])]
    )
    m.soma.diameters = np.zeros(n_contour)
    m.soma.type = morphio.SomaType.SOMA_SIMPLE_CONTOUR
    m.write(str(dst))
    return dst


# ---------------------------------------------------------------------------- the sniffer
def test_format_is_read_from_content_not_extension(tmp_path: Path) -> None:
    swc = tmp_path / "cell.asc"  # misleading names on purpose
    swc.write_text(tiny_swc())
    asc = tmp_path / "cell.swc"
    asc.write_text(tiny_asc())
    h5 = tmp_path / "cell.txt"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    assert morphology_format(swc) == "swc"
    assert morphology_format(asc) == "asc"
    assert morphology_format(h5) == "h5"
    assert morphology_format(L5_SWC) == "swc"
    # a real h5 file (and one with a 512-byte user block)
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "real.h5", "w") as f:
        f["points"] = np.zeros((2, 4))
    assert morphology_format(tmp_path / "real.h5") == "h5"
    with h5py.File(tmp_path / "block.h5", "w", userblock_size=512) as f:
        f["points"] = np.zeros((2, 4))
    assert morphology_format(tmp_path / "block.h5") == "h5"


def test_swc_variants(tmp_path: Path) -> None:
    p = tmp_path / "m"
    p.write_text("\n# header\n1 1 0 0 0 5.5 -1   # soma\n2 3 1e1 -2.5 .5 1 1\n\n")
    assert morphology_format(p) == "swc"
    p.write_text('; comment first\n(  "CellBody" (0 0 0 1))\n')
    assert morphology_format(p) == "asc"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"# only\n# comments\n", "holds only comments"),
        (b"1 1 0 0 0 5 -1\n2 3 0 0 junk 1 1\n", r"line 2 is '2 3 0 0 junk 1 1', not an SWC row"),
        (b"1 1 0 0 0 5\n", r"line 1 is '1 1 0 0 0 5', not an SWC row of 7 numbers"),
        (b"<html>not found</html>\n", "line 1 is '<html>not found</html>'"),
        (b"(Color Red)\n(Label)\n", "s-expressions without a CellBody, Dendrite, Axon or Apical"),
        (b"PK\x03\x04\x00\x00zip", r"binary data that is not HDF5 \(starts with b'PK"),
    ],
)
def test_junk_is_refused_naming_the_file(tmp_path: Path, content: bytes, expected: str) -> None:
    p = tmp_path / "junk.swc"
    p.write_bytes(content)
    with pytest.raises(ComponentError, match=expected) as err:
        morphology_format(p)
    assert str(err.value).startswith(f"{p}: ")
    assert "expected SWC, Neurolucida ASC or HDF5" in str(err.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match=r"missing\.swc: cannot read the morphology"):
        morphology_format(tmp_path / "missing.swc")


def _params(tmp_path: Path, **cell) -> dict:
    base = {"prefix": "L5", "model_template": "hoc:L5PCtemplate", "model_processing": None}
    return {"_source": str(tmp_path / "params.json"), "cell": {**base, **cell}}


def test_resolve_cell_sniffs_the_morphology(tmp_path: Path) -> None:
    junk = tmp_path / "junk.asc"
    junk.write_text("this is not a cell\n")
    with pytest.raises(ComponentError) as err:
        resolve_cell(_params(tmp_path, morphology=str(junk)), cwd=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'params.json'}: cell.morphology = '{junk}': {junk}: ")
    assert "not an SWC row" in msg
    good = tmp_path / "cell.asc"
    good.write_text(tiny_asc())
    assert resolve_cell(_params(tmp_path, morphology=str(good)), cwd=tmp_path).morphology == good


def test_ctdb_refuses_non_swc_at_resolve_time(tmp_path: Path) -> None:
    asc = tmp_path / "cell.asc"
    asc.write_text(tiny_asc())
    params = _params(
        tmp_path,
        prefix="L2-3",
        model_template="ctdb:Biophys1.hoc",
        morphology=str(asc),
        dynamic_params="472363762_fit.json",
        model_processing="aibs_perisomatic",
    )
    with pytest.raises(ComponentError, match=r"is ASC, but ctdb:Biophys1.hoc .* reads SWC only"):
        resolve_cell(params, cwd=tmp_path)


# ---------------------------------------------------------------------------- NEURON
#: A template that builds whatever morphology it is given with the project's loader.
MORPH_HOC = """
begintemplate MorphCell
public soma, dend, apic, axon, all, somatic, basal, apical, axonal
create soma[1], dend[1], apic[1], axon[1]
objref all, somatic, basal, apical, axonal, this
proc init() { localobj py, loader
    forall delete_section()
    all = new SectionList()
    somatic = new SectionList()
    basal = new SectionList()
    apical = new SectionList()
    axonal = new SectionList()
    py = new PythonObject()
    loader = py.__import__("importlib").import_module("builder.simulators.neuron.morphology")
    loader.load_into(this, $s1)
}
endtemplate MorphCell
"""


def _morph_spec(tmp_path: Path, morphology: Path) -> CellSpec:
    template = tmp_path / "templates" / "morphcell.hoc"
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text(MORPH_HOC)
    return CellSpec("hoc:MorphCell", None, template, morphology, None, (), tmp_path)


def _table(tmp_path: Path, morphology: Path) -> SegmentTable:
    from builder.simulators.neuron.celltable import segment_table

    spec = _morph_spec(tmp_path, morphology)
    return segment_table(spec, DL_UM, cache_dir=tmp_path / "cache", cwd=tmp_path)


def _assert_same(a: SegmentTable, b: SegmentTable, atol: float = 1e-6) -> None:
    for field in ("bmtk_id", "type", "type_index", "x"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    for field in ("length_um", "distance_um", "xyz_um"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=0, atol=atol)


@pytest.mark.neuron
def test_swc_asc_and_h5_give_the_same_table(tmp_path: Path) -> None:
    swc = tmp_path / "tiny.swc"
    swc.write_text(tiny_swc())
    asc = tmp_path / "tiny.asc"
    asc.write_text(tiny_asc())
    h5_from_swc = to_h5(swc, tmp_path / "from_swc.h5")
    h5_from_asc = to_h5(asc, tmp_path / "from_asc.h5")
    assert [morphology_format(p) for p in (swc, asc, h5_from_swc)] == ["swc", "asc", "h5"]

    t_swc, t_asc = _table(tmp_path, swc), _table(tmp_path, asc)
    _assert_same(_table(tmp_path, h5_from_swc), t_swc)
    _assert_same(_table(tmp_path, h5_from_asc), t_asc)

    # Import3d sorts the sections the same way whatever the format: soma, dend[0..2], apic, axon
    ids, first = np.unique(t_swc.bmtk_id, return_index=True)
    names = [f"{t}[{i}]" for t, i in zip(t_swc.type[first], t_swc.type_index[first], strict=True)]
    assert names == ["soma[0]", "axon[0]", "dend[0]", "dend[1]", "dend[2]", "apic[0]"]
    # The neurites are identical. The soma is not: Import3d turns a 3-point SWC soma into a
    # cylinder of length = diameter (10 um) and an ASC contour into its centroid line, so the
    # soma rows differ and every neurite's distance shifts by the half-length difference
    # (neurites hang from soma(0.5) in both).
    for field in ("bmtk_id", "type", "type_index", "x"):
        np.testing.assert_array_equal(getattr(t_asc, field), getattr(t_swc, field))
    neurite = t_swc.type != "soma"
    np.testing.assert_allclose(t_asc.length_um[neurite], t_swc.length_um[neurite], atol=1e-6)
    np.testing.assert_allclose(t_asc.xyz_um[neurite], t_swc.xyz_um[neurite], atol=1e-5)
    half_swc = t_swc.length_um[~neurite].sum() / 2
    half_asc = t_asc.length_um[~neurite].sum() / 2
    assert half_swc == pytest.approx(_SOMA_R_UM, abs=1e-6)
    np.testing.assert_allclose(
        t_asc.distance_um[neurite] - half_asc, t_swc.distance_um[neurite] - half_swc, atol=1e-5
    )
    # the neurites' lengths are those written in the files
    dend0 = (t_swc.type == "dend") & (t_swc.type_index == 0)
    assert t_swc.length_um[dend0].sum() == pytest.approx(np.hypot(15, 2) + 20, abs=1e-5)


@pytest.mark.neuron
def test_unreadable_morphology_is_one_message(tmp_path: Path) -> None:
    junk = tmp_path / "junk.swc"
    junk.write_text("1 1 0 0 0 5 -1\nnot a row\n")
    with pytest.raises(ComponentError) as err:
        _table(tmp_path, junk)
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert msg.startswith("deriving the segment table of hoc:MorphCell")
    assert f"{junk}: not a morphology file: line 2 is 'not a row'" in msg
    assert not list((tmp_path / "cache" / "segments").glob("*.csv"))


# ---------------------------------------------------------------------------- legacy folders
LEGACY_TEMPLATE = """
// a Hay-style template: loads its own morphology (relative to the run's directory) and
// calls the procs of a sibling file
begintemplate LegacyCell
public soma, dend, apic, axon, all, somatic, basal, apical, axonal
create soma[1], dend[1], apic[1], axon[1]
objref all, somatic, basal, apical, axonal, this, biophys
proc init() { localobj reader, builder
    forall delete_section()
    all = new SectionList()
    somatic = new SectionList()
    basal = new SectionList()
    apical = new SectionList()
    axonal = new SectionList()
    reader = new Import3d_Neurolucida3()
    reader.quiet = 1
    reader.input("../morph/cell.asc")
    builder = new Import3d_GUI(reader, 0)
    builder.instantiate(this)
    biophys = new LegacyBiophys()
    biophys.set(this)
}
endtemplate LegacyCell
"""
LEGACY_BIOPHYS = """
begintemplate LegacyBiophys
public set
proc set() {
    forsec $o1.all { insert pas  nseg = 3 }
}
endtemplate LegacyBiophys
"""


def _legacy_project(tmp_path: Path) -> tuple[CellSpec, Path]:
    proj = tmp_path / "proj"
    (proj / "templates").mkdir(parents=True)
    (proj / "morph").mkdir()
    (proj / "FullSimulation").mkdir()
    (proj / "templates" / "LegacyCell.hoc").write_text(LEGACY_TEMPLATE)
    (proj / "templates" / "LegacyBiophys.hoc").write_text(LEGACY_BIOPHYS)
    (proj / "morph" / "cell.asc").write_text(tiny_asc())
    spec = CellSpec(
        "hoc:LegacyCell", None, proj / "templates" / "LegacyCell.hoc", None, None, (), proj
    )
    return spec, proj / "FullSimulation"


@pytest.mark.neuron
def test_legacy_template_runs_from_its_working_directory(tmp_path: Path) -> None:
    from builder.simulators.neuron.celltable import (
        referenced_files,
        segment_cache_key,
        segment_table,
    )

    spec, cwd = _legacy_project(tmp_path)
    cache = tmp_path / "cache"
    table = segment_table(spec, DL_UM, cache_dir=cache, cwd=cwd)
    _assert_same(table, _table(tmp_path, tmp_path / "proj" / "morph" / "cell.asc"))

    # the morphology the template opens is part of the cache key
    asc = (tmp_path / "proj" / "morph" / "cell.asc").resolve()
    assert referenced_files(spec.template_file, cwd) == [("../morph/cell.asc", "cwd", asc)]
    key = segment_cache_key(spec, DL_UM, cwd=cwd)
    asc.write_text(tiny_asc().replace("(0 120 0 2)", "(0 150 0 2)"))
    assert segment_cache_key(spec, DL_UM, cwd=cwd) != key
    longer = segment_table(spec, DL_UM, cache_dir=cache, cwd=cwd)
    apic = longer.type == "apic"
    assert longer.length_um[apic].sum() == pytest.approx(
        table.length_um[table.type == "apic"].sum() + 30, abs=1e-4
    )

    # from another directory the file is not there: one message with NEURON's complaint
    with pytest.raises(ComponentError) as err:
        segment_table(spec, DL_UM, cache_dir=cache, cwd=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert msg.startswith("deriving the segment table of hoc:LegacyCell")
    assert f"working directory {tmp_path}" in msg and "../morph/cell.asc" in msg


# ---------------------------------------------------------------------------- the L5 cell
def _build(tmp_path: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    from conftest import DEFAULT_PARAMS, TINY_OVERRIDES

    cmd = [sys.executable, str(ROOT / "build_network.py"), str(DEFAULT_PARAMS), "1"]
    cmd += ["-o", "net", "-q"]
    for item in (*TINY_OVERRIDES, *sets):
        cmd += ["--set", item]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)


@pytest.mark.neuron
def test_junk_morphology_fails_the_build(tmp_path: Path) -> None:
    junk = tmp_path / "cell.asc"
    junk.write_bytes(b"\x00\x01junk")
    r = _build(tmp_path, f"cell.morphology={junk}")
    assert r.returncode == 2, r.stderr
    assert str(junk) in r.stderr and "binary data that is not HDF5" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "net").exists()


@pytest.mark.neuron
@pytest.mark.slow
def test_default_template_builds_and_runs_an_asc_cell(tmp_path: Path, run_network) -> None:
    asc = swc_to_asc(L5_SWC, tmp_path / "L5PC.asc")
    assert morphology_format(asc) == "asc"
    r = _build(tmp_path, f"cell.morphology={asc}", "time.stop=0.05")
    assert r.returncode == 0, r.stderr
    net = tmp_path / "net"
    assert (net / "components" / "morphologies" / "L5PC.asc").read_bytes() == asc.read_bytes()
    nodes = json.loads((net / "circuit_config.json").read_text())
    assert nodes["components"]["morphologies_dir"]
    run = run_network(net, timeout_s=300)
    assert run.returncode == 0, run.describe()
    h5py = pytest.importorskip("h5py")
    with h5py.File(net / "output" / "v_soma.h5", "r") as f:
        v = np.asarray(f["report/biophysical/data"])
    assert v.shape[0] >= 400  # 50 ms at dt = 0.1 ms
    assert np.all(np.isfinite(v)) and -100 < v.min() and v.max() < 60
