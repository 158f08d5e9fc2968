"""Segment tables derived with NEURON, checked against BMTK's own view of the same cell.

Every test here needs NEURON (``nrnivmodl`` compiles BMTK's channel NMODL once per module
into a temporary cache).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from builder.core import mechanisms
from builder.core.components import (
    CellSpec,
    bmtk_components_dir,
    project_components_dir,
    resolve_cell,
)
from builder.core.errors import ComponentError
from builder.core.mechanisms import compiled_mechanisms
from builder.core.segments import SegmentTable
from builder.simulators.neuron import celltable
from builder.simulators.neuron.celltable import cached_segment_table_path, segment_table

pytestmark = pytest.mark.neuron

BMTK = bmtk_components_dir()
DL_UM = 5.0
SWC_TYPE = {"soma": 1, "axon": 2, "dend": 3, "apic": 4}  # BMTK's Morphology.sec_type_swc

#: The Allen cells: (morphology, fit, processing). The fits' layouts decide the processing:
#: 472363762 has per-section cm (perisomatic), 318331342 only Ra (all-active).
ALLEN = {
    "perisomatic": ("Scnn1a_473845048_m.swc", "472363762_fit.json", "aibs_perisomatic"),
    "allactive": ("Rorb_325404214_m.swc", "318331342_fit.json", "aibs_allactive"),
}

#: BMTK's own reading of a cell: its cell loader + processor, Morphology and set_segment_dl.
BMTK_REFERENCE = """
import json, sys
from types import SimpleNamespace
from bmtk.simulator.bionet import nrn
from bmtk.simulator.bionet.default_setters import cell_models
from bmtk.simulator.bionet.morphology import Morphology
req = json.loads(sys.argv[1])
nrn.load_neuron_modules(req["mechanisms_dir"], None)
node = SimpleNamespace(morphology_file=req["morphology"])
with open(req["dynamics_params"]) as f:
    dyn = json.load(f)
hobj = cell_models.Biophys1(node, "Biophys1.hoc", dyn)
hobj = getattr(cell_models, req["model_processing"])(hobj, node, dyn)
morph = Morphology.load(hobj=hobj, morphology_file=req["morphology"])
morph.set_segment_dl(req["dL_um"])
props, coords = morph.seg_props, morph.seg_coords
out = {
    "nseg": int(sum(sec.nseg for sec in hobj.all)),
    "sec_id": props.sec_id.tolist(), "x": props.x.tolist(), "dist": props.dist.tolist(),
    "length": props.length.tolist(), "type": props.type.tolist(),
    "xyz": (coords.p05.T + morph._soma_position_orig()).tolist(),  # undo BMTK's soma shift
    "axon_L": [sec.L for sec in hobj.axon],
}
with open(sys.argv[2], "w") as f:
    json.dump(out, f)
"""

TINY_HOC = """
begintemplate Tiny
public soma, dend, all, somatic, basal
create soma[1], dend[2]
objref all, somatic, basal
proc init() {
    all = new SectionList()
    somatic = new SectionList()
    basal = new SectionList()
    soma[0] { pt3dclear() pt3dadd(0, 0, 0, 10) pt3dadd(20, 0, 0, 10) all.append() somatic.append() }
    dend[0] { pt3dclear() pt3dadd(20, 0, 0, 2) pt3dadd(120, 0, 0, 2) all.append() basal.append() }
    dend[1] { pt3dclear() pt3dadd(0, 0, 0, 2) pt3dadd(0, 50, 0, 2) all.append() basal.append() }
    connect dend[0](0), soma[0](1)
    connect dend[1](0), soma[0](0)
    forsec all { nseg = 3 }
}
endtemplate Tiny
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("l5net-cache")


def _allen_spec(tmp_path: Path, which: str) -> CellSpec:
    morph, fit, processing = ALLEN[which]
    params = {
        "_source": str(tmp_path / "params.json"),
        "cell": {
            "prefix": "L2-3",
            "model_template": "ctdb:Biophys1.hoc",
            "morphology": morph,
            "dynamic_params": fit,
            "model_processing": processing,
        },
    }
    return resolve_cell(params, cwd=tmp_path)


def _bmtk_reference(spec: CellSpec, mech_dir: Path, tmp_path: Path) -> dict:
    script = tmp_path / "bmtk_reference.py"
    script.write_text(BMTK_REFERENCE)
    req = {
        "mechanisms_dir": str(mech_dir),
        "morphology": str(spec.morphology),
        "dynamics_params": str(spec.dynamics_params),
        "model_processing": spec.model_processing,
        "dL_um": DL_UM,
    }
    out = tmp_path / "reference.json"
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(req), str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def _tables_equal(a: SegmentTable, b: SegmentTable) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f))
        for f in ("bmtk_id", "x", "type", "type_index", "distance_um", "xyz_um", "length_um")
    )


# ---------------------------------------------------------------------------- Allen cells
@pytest.mark.slow
@pytest.mark.parametrize("which", sorted(ALLEN))
def test_allen_cell_matches_bmtk(which: str, cache: Path, tmp_path: Path) -> None:
    spec = _allen_spec(tmp_path, which)
    table = segment_table(spec, DL_UM, cache_dir=cache)
    ref = _bmtk_reference(spec, compiled_mechanisms(spec.mod_files, cache_dir=cache), tmp_path)

    assert len(table) == ref["nseg"]  # one row per segment NEURON reports after dL
    np.testing.assert_array_equal(table.bmtk_id, ref["sec_id"])
    np.testing.assert_array_equal(table.x, ref["x"])
    np.testing.assert_array_equal(table.length_um, ref["length"])
    np.testing.assert_allclose(table.distance_um, ref["dist"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(table.xyz_um, ref["xyz"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal([SWC_TYPE[t] for t in table.type], ref["type"])

    # BMTK's axon replacement: two 30 um stubs, nseg = 1 + 2*int(30/10) = 7 each
    assert ref["axon_L"] == [30.0, 30.0]
    axon = table.type == "axon"
    np.testing.assert_array_equal(np.unique(table.type_index[axon]), [0, 1])
    assert axon.sum() == 14
    assert table.length_um[axon].sum() == pytest.approx(60.0, abs=1e-9)
    # every section's segments: nseg follows BMTK's set_segment_dl rule
    ids, counts = np.unique(table.bmtk_id, return_counts=True)
    lengths = np.bincount(table.bmtk_id, weights=table.length_um)
    # (section L summed back from its segments; the tiny guard absorbs the sum's rounding)
    np.testing.assert_array_equal(counts, 1 + 2 * np.floor(lengths[ids] / (2 * DL_UM) + 1e-9))
    assert table.type[0] == "soma" and table.distance_um[0] > 0


@pytest.mark.slow
def test_distances_grow_along_every_section(cache: Path, tmp_path: Path) -> None:
    table = segment_table(_allen_spec(tmp_path, "perisomatic"), DL_UM, cache_dir=cache)
    starts = np.flatnonzero(np.r_[True, np.diff(table.bmtk_id) != 0])
    same = np.diff(table.bmtk_id) == 0
    step = np.diff(table.distance_um)[same]
    assert np.all(step > 0)
    # successive centres of one section lie one segment length apart along the path
    np.testing.assert_allclose(step, table.length_um[1:][same], rtol=1e-9)
    assert np.all(np.diff(table.bmtk_id[starts]) == 1)  # sections appear once, in 'all' order


@pytest.mark.slow
def test_cache_hit_needs_no_neuron(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _allen_spec(tmp_path, "perisomatic")
    first = segment_table(spec, DL_UM, cache_dir=cache)
    path = cached_segment_table_path(spec, DL_UM, cache_dir=cache)
    assert path.is_file()

    def forbidden(*args, **kwargs):
        raise AssertionError("the cache should have been hit")

    monkeypatch.setattr(celltable.subprocess, "run", forbidden)
    monkeypatch.setattr(celltable, "compiled_mechanisms", forbidden)
    assert _tables_equal(segment_table(spec, DL_UM, cache_dir=cache), first)
    monkeypatch.undo()

    # in a fresh interpreter, a cached table is read without importing NEURON or BMTK's simulator
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from builder.core.components import resolve_cell
        from builder.simulators.neuron.celltable import segment_table
        params = {{"_source": {str(tmp_path / "p.json")!r}, "cell": {{
            "model_template": "ctdb:Biophys1.hoc", "morphology": {ALLEN["perisomatic"][0]!r},
            "dynamic_params": {ALLEN["perisomatic"][1]!r},
            "model_processing": "aibs_perisomatic"}}}}
        t = segment_table(resolve_cell(params, cwd=Path({str(tmp_path)!r})), {DL_UM},
                          cache_dir={str(cache)!r})
        assert len(t) == {len(first)}
        bad = [m for m in sys.modules if m == "neuron" or m.startswith("bmtk.simulator")]
        assert not bad, bad
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


# ---------------------------------------------------------------------------- hoc templates
def _tiny_spec(tmp_path: Path, hoc: str = TINY_HOC, name: str = "Tiny") -> CellSpec:
    template = tmp_path / "templates" / "tiny.hoc"
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text(hoc)
    return CellSpec(f"hoc:{name}", None, template, None, None, (), tmp_path)


def test_tiny_hoc_template(tmp_path: Path) -> None:
    table = segment_table(_tiny_spec(tmp_path), DL_UM, cache_dir=tmp_path / "cache")
    # nseg = 1 + 2*int(L/10): soma 20 um -> 5, dend[0] 100 um -> 21, dend[1] 50 um -> 11
    n = [5, 21, 11]
    x = np.concatenate([(np.arange(k) + 0.5) / k for k in n])
    np.testing.assert_array_equal(table.bmtk_id, np.repeat([0, 1, 2], n))
    np.testing.assert_array_equal(table.type, np.repeat(["soma", "dend", "dend"], n))
    np.testing.assert_array_equal(table.type_index, np.repeat([0, 0, 1], n))
    np.testing.assert_allclose(table.x, x, rtol=0, atol=1e-15)
    np.testing.assert_allclose(table.length_um, np.repeat([20 / 5, 100 / 21, 50 / 11], n))
    xs, xd0, xd1 = x[:5], x[5:26], x[26:]
    # path distance from soma(0): dend[0] hangs on soma(1), dend[1] on soma(0)
    np.testing.assert_allclose(table.distance_um, np.r_[20 * xs, 20 + 100 * xd0, 50 * xd1])
    expected_xyz = np.r_[
        np.column_stack([20 * xs, 0 * xs, 0 * xs]),
        np.column_stack([20 + 100 * xd0, 0 * xd0, 0 * xd0]),
        np.column_stack([0 * xd1, 50 * xd1, 0 * xd1]),
    ]
    np.testing.assert_allclose(table.xyz_um, expected_xyz, atol=1e-12)
    # dend[0] centres reach 50 um from segment 6 on (20 + 100 * 6.5/21 = 50.95); dend[1] never
    assert table.dendritic_lengths() == pytest.approx(
        {"basal_dist": 15 * 100 / 21, "basal_prox": 6 * 100 / 21 + 50, "apic": 0.0}
    )


def test_tiny_hoc_template_keeps_its_own_nseg_without_dl(tmp_path: Path) -> None:
    table = segment_table(_tiny_spec(tmp_path), None, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(table.bmtk_id, np.repeat([0, 1, 2], 3))


def test_hoc_template_through_resolve_cell(cache: Path, tmp_path: Path) -> None:
    comp = tmp_path / "components"
    (comp / "templates").mkdir(parents=True)
    (comp / "templates" / "tiny.hoc").write_text(TINY_HOC)
    params = {
        "_source": str(tmp_path / "params.json"),
        "cell": {"prefix": "X", "model_template": "hoc:Tiny", "components_dir": "components"},
    }
    spec = resolve_cell(params)
    assert spec.template_file == comp / "templates" / "tiny.hoc"
    assert len(segment_table(spec, DL_UM, cache_dir=cache)) == 37


def test_broken_template_reports_neuron_error(tmp_path: Path) -> None:
    broken = TINY_HOC.replace("forsec all { nseg = 3 }", "no_such_function()")
    with pytest.raises(ComponentError) as err:
        segment_table(_tiny_spec(tmp_path, broken), DL_UM, cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert "deriving the segment table of hoc:Tiny" in msg and "no_such_function" in msg
    assert not list((tmp_path / "cache" / "segments").glob("*.csv"))


def test_unknown_section_type_is_refused(tmp_path: Path) -> None:
    odd = TINY_HOC.replace("dend", "ais")
    with pytest.raises(ComponentError, match=r"section 'Tiny\[0\]\.ais\[0\]' is of no known type"):
        segment_table(_tiny_spec(tmp_path, odd), DL_UM, cache_dir=tmp_path / "cache")


def test_broken_mod_reports_compiler_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mod"
    bad.write_text("NEURON { SUFFIX bad }\nBREAKPOINT { x = }\n")
    with pytest.raises(ComponentError) as err:
        compiled_mechanisms([bad], cache_dir=tmp_path / "cache")
    # one line for the file, with nocmodl's first error and its line in the .mod file
    assert re.search(rf"(?m)^  {re.escape(str(bad))}: line 2: .+", str(err.value)), err.value
    assert "1 NMODL file did not compile" in str(err.value)
    left = sorted(p.name for p in (tmp_path / "cache" / "mechanisms").iterdir())
    assert [n for n in left if not n.endswith(".failed.log")] == [
        n for n in left if n.endswith(".lock")
    ]
    assert mechanisms.nrnivmodl_path().name == "nrnivmodl"


# ---------------------------------------------------------------------------- default cell
@pytest.mark.slow
@pytest.mark.skipif(
    not (project_components_dir() / "templates" / "L5PCtemplate.hoc").is_file(),
    reason="the default L5 cell is not in biophys_components yet",
)
def test_default_l5_cell(cache: Path, tmp_path: Path) -> None:
    params = {
        "_source": str(tmp_path / "params.json"),
        "cell": {
            "prefix": "L5",
            "model_template": "hoc:L5PCtemplate",
            "morphology": None,
            "dynamic_params": None,
            "model_processing": None,
        },
    }
    spec = resolve_cell(params, cwd=tmp_path)
    assert spec.template_file == project_components_dir() / "templates" / "L5PCtemplate.hoc"
    table = segment_table(spec, DL_UM, cache_dir=cache)
    assert set(table.type.tolist()) == {"soma", "dend", "apic", "axon"}
    assert table.type[0] == "soma"
    lengths = table.dendritic_lengths()
    for key, target in {"basal_dist": 4649, "basal_prox": 483, "apic": 7440}.items():
        assert lengths[key] == pytest.approx(target, rel=0.10), key
