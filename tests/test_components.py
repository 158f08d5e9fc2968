"""Component resolution and the mechanisms cache, without NEURON.

Pins the legacy prefix convention (and that nothing in a components tree is ever renamed or
moved), the BMTK fallbacks, hoc template discovery, the error messages, duplicate mechanism
detection and the cache keys. Compilation is exercised with a fake ``nrnivmodl``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from builder.core import mechanisms
from builder.core.components import (
    CellSpec,
    bmtk_components_dir,
    mechanism_names,
    prefixed_folder,
    project_components_dir,
    provided_mod_files,
    resolve_cell,
    select_mechanisms,
    synaptic_model_path,
)
from builder.core.errors import ComponentError
from builder.core.mechanisms import (
    cache_root,
    compiled_mechanisms,
    mechanisms_key,
    mechanisms_library,
    sources_digest,
)
from builder.simulators.neuron.celltable import cached_segment_table_path, segment_cache_key

BMTK = bmtk_components_dir()
BMTK_MODS = sorted(p.name for p in (BMTK / "mechanisms" / "modfiles").glob("*.mod"))


def _mod(suffix: str, kind: str = "SUFFIX") -> str:
    return f"NEURON {{\n    {kind} {suffix}\n}}\nPARAMETER {{ g = 1 }}\n"


def _hoc(name: str) -> str:
    return f"begintemplate {name}\npublic soma\ncreate soma[1]\nendtemplate {name}\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every entry under ``root``: inode and content hash (directories: '<dir>')."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            digest = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(root))] = (p.stat().st_ino, digest)
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A legacy components directory holding two cells' component sets."""
    comp = tmp_path / "biophys_components"
    _write(comp / "templates" / "prefix.txt", "L5\n")
    _write(comp / "templates" / "L5PC.hoc", _hoc("L5PCtemplate"))
    _write(comp / "L2-3templates" / "cells.hoc", _hoc("L23template"))
    _write(comp / "mechanisms" / "prefix.txt", "L5")
    _write(comp / "mechanisms" / "modfiles" / "L5only.mod", _mod("L5only"))
    _write(comp / "L2-3mechanisms" / "L23only.mod", _mod("L23only"))
    _write(comp / "morphologies" / "L2-3.swc", "1 1 0 0 0 5 -1\n")
    _write(comp / "biophysical_neuron_models" / "L2-3_fit.json", "{}")
    _write(comp / "synaptic_models" / "PN2PN.json", "{}")
    return comp


def _params(comp: Path, **cell) -> dict:
    base = {"prefix": "L5", "model_template": "hoc:L5PCtemplate", "morphology": None,
            "dynamic_params": None, "model_processing": None,
            "components_dir": str(comp)}  # fmt: skip
    base.update(cell)
    return {"_source": str(comp.parent / "params.json"), "cell": base}


# ---------------------------------------------------------------------------- prefix
def test_prefix_txt_selects_the_plain_folders(tree: Path) -> None:
    before = _snapshot(tree)
    spec = resolve_cell(_params(tree))
    assert spec.template_file == tree / "templates" / "L5PC.hoc"
    names = [p.name for p in spec.mod_files]
    assert "L5only.mod" in names and "L23only.mod" not in names
    assert spec.components_dir == tree
    assert _snapshot(tree) == before  # nothing renamed, moved, created or changed


def test_prefixed_folders_are_used_in_place(tree: Path) -> None:
    before = _snapshot(tree)
    spec = resolve_cell(
        _params(
            tree,
            prefix="L2-3",
            model_template="hoc:L23template",
            morphology="L2-3.swc",
            dynamic_params="L2-3_fit.json",
        )
    )
    assert spec.template_file == tree / "L2-3templates" / "cells.hoc"
    assert spec.morphology == tree / "morphologies" / "L2-3.swc"
    assert spec.dynamics_params == tree / "biophysical_neuron_models" / "L2-3_fit.json"
    names = [p.name for p in spec.mod_files]
    assert "L23only.mod" in names and "L5only.mod" not in names
    assert _snapshot(tree) == before


def test_named_stored_set_beats_another_claimant(tree: Path) -> None:
    # the legacy code looked for '<prefix>templates' by name; another folder's prefix.txt is
    # used only when no folder has that name
    _write(tree / "Xtemplates" / "prefix.txt", "L2-3")
    _write(tree / "Xtemplates" / "other.hoc", _hoc("L23template"))
    assert prefixed_folder(tree, "templates", "L2-3") == tree / "L2-3templates"
    assert prefixed_folder(tree, "templates", "L5") == tree / "templates"
    assert prefixed_folder(tree, "templates", None) == tree / "templates"
    assert prefixed_folder(tree, "templates", "L6") is None  # plain one is claimed by L5
    shutil.rmtree(tree / "L2-3templates")
    assert prefixed_folder(tree, "templates", "L2-3") == tree / "Xtemplates"


def test_plain_folder_without_prefix_txt_serves_any_prefix(tree: Path) -> None:
    (tree / "templates" / "prefix.txt").unlink()
    assert prefixed_folder(tree, "templates", "L6") == tree / "templates"
    assert prefixed_folder(tree, "templates", "L2-3") == tree / "L2-3templates"


def test_active_set_wins_over_its_stored_copy(tree: Path) -> None:
    """After a legacy run both 'templates' (active) and 'L5templates' (stored) claim L5."""
    _write(tree / "L5templates" / "prefix.txt", "L5")
    _write(tree / "L5templates" / "L5PC.hoc", _hoc("L5PCtemplate") + "// stored copy\n")
    _write(tree / "L5mechanisms" / "prefix.txt", "L5")
    _write(tree / "L5mechanisms" / "modfiles" / "L5old.mod", _mod("L5old"))
    before = _snapshot(tree)
    spec = resolve_cell(_params(tree))
    assert spec.template_file == tree / "templates" / "L5PC.hoc"
    names = [p.name for p in spec.mod_files]
    assert "L5only.mod" in names and "L5old.mod" not in names
    assert _snapshot(tree) == before
    # once another set is active, the stored L5 copy is what L5 means
    (tree / "templates" / "prefix.txt").write_text("L2-3")
    assert prefixed_folder(tree, "templates", "L5") == tree / "L5templates"


def test_every_component_kind_follows_the_prefix(tree: Path) -> None:
    _write(tree / "morphologies" / "prefix.txt", "L5")
    _write(tree / "L2-3morphologies" / "cell.swc", "1 1 0 0 0 5 -1\n")
    _write(tree / "synaptic_models" / "prefix.txt", "L5")
    _write(tree / "L2-3synaptic_models" / "PN2PN.json", "{}")
    params = _params(tree, prefix="L2-3", model_template="hoc:L23template", morphology="cell.swc")
    spec = resolve_cell(params)
    assert spec.morphology == tree / "L2-3morphologies" / "cell.swc"
    l23 = tree / "L2-3synaptic_models" / "PN2PN.json"
    assert synaptic_model_path(params, "PN2PN.json") == l23
    l5 = tree / "synaptic_models" / "PN2PN.json"
    assert synaptic_model_path(_params(tree), "PN2PN.json") == l5


def test_misspelt_prefix_is_an_error_naming_the_known_ones(tree: Path) -> None:
    with pytest.raises(ComponentError) as err:
        resolve_cell(_params(tree, prefix="L9"))
    msg = str(err.value)
    assert "cell.prefix = 'L9'" in msg and "'L2-3', 'L5'" in msg and str(tree) in msg


def test_several_unnamed_claimants_are_an_error(tree: Path) -> None:
    _write(tree / "Xtemplates" / "prefix.txt", "L6")
    _write(tree / "Ytemplates" / "prefix.txt", "L6")
    with pytest.raises(ComponentError, match=r"several templates folders claim it.*Ytemplates"):
        prefixed_folder(tree, "templates", "L6")


def test_legacy_cwd_rule_and_relative_components_dir(tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    params = _params(tree)
    del params["cell"]["components_dir"]
    assert resolve_cell(params, cwd=run).components_dir == tree  # <cwd>/../biophys_components
    elsewhere = tmp_path / "a" / "b"
    elsewhere.mkdir(parents=True)
    assert resolve_cell(params, cwd=elsewhere).components_dir == project_components_dir()
    params["cell"]["components_dir"] = "biophys_components"  # relative to the params file
    assert resolve_cell(params, cwd=elsewhere).components_dir == tree


# ---------------------------------------------------------------------------- fallbacks
def test_bmtk_fallbacks_for_the_allen_cell(tree: Path) -> None:
    spec = resolve_cell(
        _params(
            tree,
            model_template="ctdb:Biophys1.hoc",
            morphology="Scnn1a_473845048_m.swc",
            dynamic_params="472363762_fit.json",
            model_processing="aibs_perisomatic",
        )
    )
    assert spec.template_file == BMTK / "templates" / "Biophys1.hoc"
    assert spec.morphology == BMTK / "morphologies" / "Scnn1a_473845048_m.swc"
    assert spec.dynamics_params == BMTK / "biophysical_neuron_models" / "472363762_fit.json"
    assert spec.directive == "ctdb" and spec.template_name == "Biophys1.hoc"
    names = [p.name for p in spec.mod_files]
    assert set(BMTK_MODS) <= set(names)
    assert list(spec.mod_files) == sorted(spec.mod_files)
    assert all(p.is_absolute() for p in spec.mod_files)


def test_user_mod_overrides_bmtk_mod_of_the_same_name(tree: Path) -> None:
    mine = _write(tree / "mechanisms" / "CaDynamics.mod", _mod("CaDynamics"))
    spec = resolve_cell(_params(tree))
    ca = [p for p in spec.mod_files if p.name == "CaDynamics.mod"]
    assert ca == [mine]


def test_absolute_paths_are_taken_as_is(tree: Path, tmp_path: Path) -> None:
    morph = _write(tmp_path / "elsewhere" / "cell.swc", "1 1 0 0 0 5 -1\n")
    spec = resolve_cell(_params(tree, morphology=str(morph)))
    assert spec.morphology == morph
    with pytest.raises(ComponentError, match=r"cell\.morphology = '/nonexistent/x\.swc'"):
        resolve_cell(_params(tree, morphology="/nonexistent/x.swc"))


# ---------------------------------------------------------------------------- templates
def test_hoc_template_found_by_begintemplate_not_file_name(tree: Path) -> None:
    _write(tree / "templates" / "zzz.hoc", "// a cell\n  begintemplate Odd\nendtemplate Odd\n")
    spec = resolve_cell(_params(tree, model_template="hoc:Odd"))
    assert spec.template_file == tree / "templates" / "zzz.hoc"
    # a name that is only a prefix of a defined template does not match
    with pytest.raises(ComponentError, match="begintemplate L5PC'"):
        resolve_cell(_params(tree, model_template="hoc:L5PC"))


def test_template_defined_twice_is_an_error(tree: Path) -> None:
    _write(tree / "templates" / "copy.hoc", _hoc("L5PCtemplate"))
    with pytest.raises(ComponentError, match=r"defined by several files: .*L5PC\.hoc, .*copy\.hoc"):
        resolve_cell(_params(tree))


# ---------------------------------------------------------------------------- errors
def test_missing_template_names_key_value_and_places(tree: Path) -> None:
    with pytest.raises(ComponentError) as err:
        resolve_cell(_params(tree, model_template="hoc:Nope"))
    msg = str(err.value)
    assert "cell.model_template = 'hoc:Nope'" in msg
    assert str(tree / "templates") in msg and str(BMTK / "templates") in msg
    assert str(tree.parent / "params.json") in msg


def test_missing_morphology_names_every_place(tree: Path) -> None:
    with pytest.raises(ComponentError) as err:
        resolve_cell(_params(tree, morphology="L9.swc"))
    msg = str(err.value)
    assert "cell.morphology = 'L9.swc'" in msg
    assert str(tree / "morphologies") in msg and str(BMTK / "morphologies") in msg


def test_missing_dynamics_names_every_place(tree: Path) -> None:
    with pytest.raises(ComponentError) as err:
        resolve_cell(_params(tree, dynamic_params="none_fit.json"))
    msg = str(err.value)
    assert "cell.dynamic_params = 'none_fit.json'" in msg
    assert str(tree / "biophysical_neuron_models") in msg
    assert str(BMTK / "biophysical_neuron_models") in msg


@pytest.mark.parametrize(
    ("cell", "pattern"),
    [
        ({"model_template": "L5PCtemplate"}, r"cell\.model_template = 'L5PCtemplate': expected"),
        ({"model_template": "nml:x.nml"}, r"cell\.model_template = 'nml:x\.nml': expected"),
        ({"model_processing": "fancy"}, r"cell\.model_processing = 'fancy': valid values"),
        ({"model_template": "ctdb:Biophys1.hoc"}, r"cell\.morphology = None: .* needs a morph"),
        ({"model_processing": "aibs_allactive"}, r"cell\.dynamic_params = None: .*allactive"),
        ({"components_dir": "missing"}, r"cell\.components_dir = 'missing': no such directory"),
    ],
)
def test_bad_cell_values(tree: Path, cell: dict, pattern: str) -> None:
    with pytest.raises(ComponentError, match=pattern):
        resolve_cell(_params(tree, **cell))


def test_synaptic_models_from_components_then_project(tree: Path) -> None:
    params = _params(tree)
    assert synaptic_model_path(params, "PN2PN.json") == tree / "synaptic_models" / "PN2PN.json"
    with pytest.raises(ComponentError) as err:
        synaptic_model_path(params, "XX2PN.json")
    msg = str(err.value)
    assert "'XX2PN.json'" in msg and str(tree / "synaptic_models") in msg
    if (project_components_dir() / "synaptic_models").is_dir():
        assert str(project_components_dir() / "synaptic_models") in msg


# ---------------------------------------------------------------------------- NMODL names
def test_mechanism_names_ignore_comments(tmp_path: Path) -> None:
    text = (
        "COMMENT\nNEURON { SUFFIX fake }\nENDCOMMENT\n"
        ": NEURON { SUFFIX fake2 }\n"
        "NEURON {\n  POINT_PROCESS pyr2pyr : a synapse\n  RANGE g\n}\n"
    )
    assert mechanism_names(_write(tmp_path / "s.mod", text)) == ["pyr2pyr"]
    assert mechanism_names(_write(tmp_path / "v.mod", _mod("VecStim", "ARTIFICIAL_CELL"))) == [
        "VecStim"
    ]


def test_user_mechanism_replaces_bmtk_one_of_the_same_name(tree: Path) -> None:
    mine = _write(tree / "mechanisms" / "MyNa.mod", _mod("NaTa"))
    spec = resolve_cell(_params(tree))
    assert mine in spec.mod_files
    assert BMTK / "mechanisms" / "modfiles" / "NaTa.mod" not in spec.mod_files
    assert spec.notes == ()


def test_same_mechanism_in_two_user_files_is_an_error(tree: Path) -> None:
    first = _write(tree / "mechanisms" / "MyNa.mod", _mod("NaTx"))
    second = _write(tree / "mechanisms" / "modfiles" / "OtherNa.mod", _mod("NaTx"))
    with pytest.raises(ComponentError) as err:
        resolve_cell(_params(tree))
    msg = str(err.value)
    assert "'NaTx' is defined twice" in msg and str(first) in msg and str(second) in msg


def test_user_files_defining_our_mechanisms_are_replaced_by_ours(tree: Path) -> None:
    legacy = _write(
        tree / "mechanisms" / "modfiles" / "pyr2pyr.mod", _mod("pyr2pyr", "POINT_PROCESS")
    )
    vec = _write(
        tree / "mechanisms" / "modfiles" / "vecstim.mod", _mod("VecStim", "ARTIFICIAL_CELL")
    )
    ours = {p.name: p for p in provided_mod_files()}
    same = _write(tree / "mechanisms" / "modfiles" / "int2pyr.mod", ours["int2pyr.mod"].read_text())
    spec = resolve_cell(_params(tree))
    assert legacy not in spec.mod_files and vec not in spec.mod_files and same not in spec.mod_files
    assert ours["pyr2pyr.mod"] in spec.mod_files and ours["vecevent.mod"] in spec.mod_files
    assert len(spec.notes) == 2  # a byte-identical copy of ours is not worth a note
    assert any(str(legacy) in n and "pyr2pyr" in n and "using ours" in n for n in spec.notes)
    assert any(str(vec) in n and "VecStim" in n for n in spec.notes)


# ---------------------------------------------------------------------------- cache keys
def test_cache_keys_follow_mod_contents(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.mod", _mod("A"))
    b = _write(tmp_path / "b.mod", _mod("B"))
    tool = Path("/opt/neuron/bin/nrnivmodl")
    d0, k0 = sources_digest([a, b]), mechanisms_key([a, b], nrnivmodl=tool)
    assert sources_digest([b, a]) == d0  # order does not matter
    assert mechanisms_key([a, b], nrnivmodl=tool) == k0
    assert mechanisms_key([a, b], nrnivmodl=Path("/other/nrnivmodl")) != k0
    b.write_text(_mod("B") + "\n: changed\n")
    assert sources_digest([a, b]) != d0
    assert mechanisms_key([a, b], nrnivmodl=tool) != k0
    renamed = _write(tmp_path / "c.mod", a.read_text())
    assert sources_digest([renamed, b]) != sources_digest([a, b])


def test_included_files_are_part_of_the_digest(tmp_path: Path) -> None:
    inc = _write(tmp_path / "units.inc", "UNITS { (mV) = (millivolt) }\n")
    mod = _write(tmp_path / "x.mod", 'INCLUDE "units.inc"\n' + _mod("X"))
    d0 = sources_digest([mod])
    inc.write_text("UNITS { (mA) = (milliamp) }\n")
    assert sources_digest([mod]) != d0


def test_segment_cache_key_covers_inputs(tmp_path: Path) -> None:
    hoc = _write(tmp_path / "t" / "cell.hoc", _hoc("C"))
    mod = _write(tmp_path / "m" / "a.mod", _mod("A"))
    morph = _write(tmp_path / "c.swc", "1 1 0 0 0 5 -1\n")
    spec = CellSpec("hoc:C", None, hoc, morph, None, (mod,), None)
    k = segment_cache_key(spec, 5.0)
    assert segment_cache_key(spec, 5) == k
    assert segment_cache_key(spec, 10.0) != k
    assert segment_cache_key(spec, None) != k
    for path, extra in ((hoc, "// x\n"), (mod, ": x\n"), (morph, "#\n")):
        path.write_text(path.read_text() + extra)
        assert segment_cache_key(spec, 5.0) != k
        k = segment_cache_key(spec, 5.0)
    _write(tmp_path / "t" / "helper.hoc", "// loaded by cell.hoc\n")
    assert segment_cache_key(spec, 5.0) != k
    path = cached_segment_table_path(spec, 5.0, cache_dir=tmp_path / "cache")
    assert path.parent == (tmp_path / "cache" / "segments").resolve() and not path.exists()


def test_cache_root_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("L5NET_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "a"
    monkeypatch.delenv("L5NET_CACHE_DIR")
    assert cache_root() == tmp_path / "x" / "l5net"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "l5net"
    assert cache_root(tmp_path / "given") == tmp_path / "given"


# ---------------------------------------------------------------------------- compiling
FAKE_NRNIVMODL = """#!/bin/sh
# stands in for nrnivmodl: records the call, waits, then "builds" the library
echo "$PWD" >> "{log}"
sleep {delay}
if grep -q BROKEN mod/*.mod; then echo "Error: syntax error at line 3 of broken.mod"; exit 1; fi
mkdir -p x86_64 && : > x86_64/libnrnmech.so
echo "Successfully created x86_64/special"
"""


def _fake_tool(tmp_path: Path, delay: float = 0.0) -> tuple[Path, Path]:
    log = tmp_path / "calls.log"
    tool = _write(tmp_path / "bin" / "nrnivmodl", FAKE_NRNIVMODL.format(log=log, delay=delay))
    tool.chmod(0o755)
    return tool, log


def test_concurrent_compiles_build_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tool, log = _fake_tool(tmp_path, delay=0.5)
    monkeypatch.setattr(mechanisms, "nrnivmodl_path", lambda: tool)
    mods = [
        _write(tmp_path / "src" / "a.mod", _mod("A")),
        _write(tmp_path / "src" / "b.mod", _mod("B")),
    ]
    cache = tmp_path / "cache"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(compiled_mechanisms(mods, cache_dir=cache)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert len(log.read_text().splitlines()) == 1  # compiled once
    built = results[0]
    assert built.parent == cache.resolve() / "mechanisms"
    assert mechanisms_library(built) == built / "x86_64" / "libnrnmech.so"
    assert sorted(p.name for p in (built / "mod").iterdir()) == ["a.mod", "b.mod"]
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".build-")]
    # a later call is a pure lookup
    t0 = time.perf_counter()
    assert compiled_mechanisms(mods, cache_dir=cache) == built
    assert time.perf_counter() - t0 < 0.2
    assert len(log.read_text().splitlines()) == 1


def test_failed_compile_reports_the_tail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tool, _ = _fake_tool(tmp_path)
    monkeypatch.setattr(mechanisms, "nrnivmodl_path", lambda: tool)
    bad = _write(tmp_path / "src" / "broken.mod", "BROKEN\n" + _mod("Bad"))
    with pytest.raises(
        ComponentError, match=r"(?s)exit status 1.*broken\.mod.*syntax error at line 3"
    ):
        compiled_mechanisms([bad], cache_dir=tmp_path / "cache")
    leftovers = list((tmp_path / "cache" / "mechanisms").iterdir())
    assert not any(p.is_dir() for p in leftovers)  # no half-built directory left
    logs = [p for p in leftovers if p.name.endswith(".failed.log")]
    assert len(logs) == 1 and "syntax error at line 3" in logs[0].read_text()
    assert all(p.suffix == ".lock" for p in leftovers if p not in logs)


def test_missing_nrnivmodl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nobin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ComponentError, match="nrnivmodl not found"):
        compiled_mechanisms([_write(tmp_path / "a.mod", _mod("A"))], cache_dir=tmp_path / "c")


def test_duplicate_file_names_are_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "one" / "x.mod", _mod("X1"))
    b = _write(tmp_path / "two" / "x.mod", _mod("X2"))
    with pytest.raises(ComponentError, match="share the name x.mod"):
        sources_digest([a, b])


def test_mechanisms_library_arch_variants(tmp_path: Path) -> None:
    for sub in ("x86_64/.libs", "aarch64", "arm64/.libs"):
        d = tmp_path / sub.replace("/", "_")
        lib = _write(d / sub / "libnrnmech.so", "")
        assert mechanisms_library(d) == lib
    with pytest.raises(ComponentError, match="no compiled mechanisms library"):
        mechanisms_library(tmp_path / "empty")


# ---------------------------------------------------------------------------- layering
def test_core_and_celltable_import_without_neuron() -> None:
    code = (
        "import sys, builder.core.components, builder.core.mechanisms, "
        "builder.simulators.neuron.celltable, builder.simulators.neuron\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('neuron', 'scipy', 'pandas')"
        " or m.startswith('bmtk.simulator')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_our_synapses_override_a_user_file(tmp_path: Path) -> None:
    """Our channels (fallback) never replace a user's: only PROVIDED_MECHANISMS do."""
    user_ca = _write(tmp_path / "user" / "Ca_HVA.mod", _mod("Ca_HVA"))
    user_syn = _write(tmp_path / "user" / "syn.mod", _mod("pyr2pyr", "POINT_PROCESS"))
    our_syn = _write(tmp_path / "ours" / "pyr2pyr.mod", _mod("pyr2pyr", "POINT_PROCESS") + ":x\n")
    our_ca = _write(tmp_path / "ours" / "ca.mod", _mod("Ca_HVA"))
    bmtk_ca = _write(tmp_path / "bmtk" / "Ca_HVA.mod", _mod("Ca_HVA") + ": bmtk\n")
    bmtk_k = _write(tmp_path / "bmtk" / "K_T.mod", _mod("K_T"))
    chosen = select_mechanisms([user_ca, user_syn], [our_syn], [our_ca, bmtk_ca, bmtk_k])
    assert set(chosen.mod_files) == {user_ca, our_syn, bmtk_k}
    assert len(chosen.notes) == 1 and str(user_syn) in chosen.notes[0]
    # without a user file, the first fallback layer (the project's channels) wins over BMTK's
    chosen = select_mechanisms([], [our_syn], [our_ca, bmtk_ca, bmtk_k])
    assert set(chosen.mod_files) == {our_syn, our_ca, bmtk_k} and not chosen.notes
