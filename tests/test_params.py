"""Tests of the params schema, validation messages, cross-field checks and normalisation."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from builder.core.errors import ParamsError
from builder.recipes.l5_params import (
    load_params,
    resolve_relative,
    schema,
    schema_path,
    validate_params,
)

REPO = Path(__file__).resolve().parents[1]
PARAMS_DIR = REPO / "params"
L5 = PARAMS_DIR / "L5NetParams.json"
L23 = PARAMS_DIR / "L2-3NetParams.json"


def minimal() -> dict[str, Any]:
    """The smallest valid params: only the required keys, with the SPEC section 2 values."""
    return {
        "cell": {"prefix": "L5", "model_template": "hoc:L5PCtemplate"},
        "syn_density": {"exc": 2.16, "inh": 0.22},
        "n_soma_syns": 150,
        "divergence": {
            "exc": {"min": 2, "max": 8},
            "peri_inh": {"m": 2.8, "s": 1.9, "min": 1, "max": 5},
            "basal_inh": {"m": 2.7, "s": 1.6, "min": 1, "max": 5},
            "apic_inh": {"m": 12, "s": 3, "min": 6, "max": 18},
        },
        "groups": {"cells_per_group": 100, "cluster_radius": 10, "group_radius": 100},
        "record_cellvars": {"vars": ["v"], "locs": ["soma"]},
        "inh_frs": {"proximal": {"m": 16.9, "s": 14.3}, "distal": {"m": 3.9, "s": 4.9}},
        "time": {"start": 0, "stop": 30},
        "dL": 5,
        "dt": 0.1,
        "inh_shift": 2,
    }


def problems_of(data: dict[str, Any], source: str = "p.json", **kw: Any) -> list[str]:
    with pytest.raises(ParamsError) as info:
        validate_params(data, source, **kw)
    return info.value.problems


DELETE = object()


def setp(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Set (or, with value=DELETE, remove) a dotted key in a copy of `data`."""
    out = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node = out
    for p in parents:
        node = node.setdefault(p, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- shipped files
@pytest.mark.parametrize("path", [L5, L23], ids=["L5", "L2-3"])
def test_shipped_params_files_validate(path: Path) -> None:
    p = load_params(path)
    assert p["_source"] == str(path)
    assert p["seed"] == 123
    assert p["file_current_clamp"] == {"input_file": None}
    assert p["inh_frs"]["proximal"]["rhythmicity"] == {"f": None, "mod": None}
    assert p["cell"]["segments_file"] is None and p["cell"]["components_dir"] is None


def test_l5_file_is_the_spec_example_in_legacy_form() -> None:
    raw = json.loads(L5.read_text())
    assert raw["cell"] == {
        "prefix": "L5",
        "model_template": "hoc:L5PCtemplate",
        "morphology": "None",
        "dynamic_params": "None",
        "model_processing": "None",
    }
    assert raw["lengths"] == {"basal_dist": 4649, "basal_prox": 483, "apic": 7440}
    assert raw["record_cellvars"] == {"vars": ["v"], "locs": ["soma"]}
    assert raw["time"] == {"start": 0, "stop": 30}
    assert raw["file_current_clamp"] == {"input_file": "None"}
    p = load_params(L5)
    assert p["cell"]["morphology"] is None and p["cell"]["model_processing"] is None


def test_spec_derived_counts() -> None:
    """SPEC section 3 formulas applied to the shipped L5 file give the SPEC numbers."""
    p = load_params(L5)
    div, dens, lengths = p["divergence"], p["syn_density"], p["lengths"]
    avg_exc_div = (div["exc"]["min"] + div["exc"]["max"]) / 2
    counts = (
        int(lengths["basal_dist"] * dens["exc"] / avg_exc_div),
        int(lengths["apic"] * dens["exc"] / avg_exc_div),
        int(lengths["basal_dist"] * dens["inh"] / div["basal_inh"]["m"]),
        int(lengths["apic"] * dens["inh"] / div["apic_inh"]["m"]),
        int(lengths["basal_prox"] * dens["inh"] / div["peri_inh"]["m"]),
        int(p["n_soma_syns"] / div["peri_inh"]["m"]),
        int((p["groups"]["cells_per_group"] * avg_exc_div) // (dens["exc"] * 10)),
    )
    assert avg_exc_div == 5.0
    assert counts == (2008, 3214, 378, 136, 37, 53, 23)


def test_l23_file_uses_files_bmtk_ships_with_matching_processing() -> None:
    p = load_params(L23)
    cell = p["cell"]
    assert (cell["prefix"], cell["model_template"]) == ("L2-3", "ctdb:Biophys1.hoc")
    # the lengths of the Scnn1a morphology BMTK ships, as measured (dL = 5 µm)
    assert p["lengths"] == {"basal_dist": 2452, "basal_prox": 653, "apic": 1485}
    assert p["groups"]["cluster_radius"] == 5 and p["time"]["stop"] == 5
    spec = importlib.util.find_spec("bmtk")
    if spec is None or spec.origin is None:
        pytest.skip("bmtk not installed")
    shipped = Path(spec.origin).parent / "utils" / "scripts" / "bionet"
    assert (shipped / "morphologies" / cell["morphology"]).is_file()
    fit = json.loads((shipped / "biophysical_neuron_models" / cell["dynamic_params"]).read_text())
    # A perisomatic fit: passive block with ra/cm/e_pas, active channels on the soma only;
    # BMTK's aibs_perisomatic reads exactly this layout (an all-active fit has no passive cm).
    active_sections = {g["section"] for g in fit["genome"] if g["mechanism"]}
    assert active_sections == {"soma"}
    assert {"ra", "cm", "e_pas"} <= set(fit["passive"][0])
    assert cell["model_processing"] == "aibs_perisomatic"


# ----------------------------------------------------------------------------- the schema
def test_schema_is_valid_draft_2020_12_and_shipped_as_package_data() -> None:
    s = schema()
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads(schema_path().read_text(encoding="utf-8")) == s
    s["properties"].clear()  # a copy: validation is unaffected
    validate_params(minimal(), "p.json")


def _walk(node: dict[str, Any], root: dict[str, Any], prefix: str = ""):
    for key, sub in node.get("properties", {}).items():
        if "$ref" in sub:
            sub = {**root["$defs"][sub["$ref"].split("/")[-1]], **sub}
        yield prefix + key, sub, key in node.get("required", ())
        yield from _walk(sub, root, prefix + key + ".")


def test_every_property_has_a_description() -> None:
    s = schema()
    missing = [k for k, sub, _ in _walk(s, s) if not sub.get("description")]
    assert missing == []


def test_legacy_none_marks_exactly_the_legacy_sentinels() -> None:
    s = schema()
    marked = {k for k, sub, _ in _walk(s, s) if sub.get("x-legacy-none")}
    assert marked == {
        "cell.morphology",
        "cell.dynamic_params",
        "cell.model_processing",
        "cell.segments_file",
        "file_current_clamp.input_file",
        "inh_frs.proximal.rhythmicity.f",
        "inh_frs.proximal.rhythmicity.mod",
        "inh_frs.distal.rhythmicity.f",
        "inh_frs.distal.rhythmicity.mod",
    }


REQUIRED = [
    "cell",
    "cell.prefix",
    "cell.model_template",
    "syn_density",
    "syn_density.exc",
    "syn_density.inh",
    "n_soma_syns",
    "divergence",
    "divergence.exc",
    "divergence.exc.min",
    "divergence.exc.max",
    *[
        f"divergence.{b}{k}"
        for b in ("peri_inh", "basal_inh", "apic_inh")
        for k in ("", ".m", ".s", ".min", ".max")
    ],
    "groups",
    "groups.cells_per_group",
    "groups.cluster_radius",
    "groups.group_radius",
    "inh_frs",
    "inh_frs.proximal",
    "inh_frs.proximal.m",
    "inh_frs.proximal.s",
    "inh_frs.distal",
    "inh_frs.distal.m",
    "inh_frs.distal.s",
    "time",
    "time.start",
    "time.stop",
    "dL",
    "dt",
    "inh_shift",
    "record_cellvars",
    "record_cellvars.vars",
    "record_cellvars.locs",
]
REQUIRED_IF_LENGTHS = ["lengths.basal_dist", "lengths.basal_prox", "lengths.apic"]


def test_required_list_matches_schema() -> None:
    s = schema()
    parents_ok = {""}
    always = []
    for key, _, req in _walk(s, s):
        parent = key.rpartition(".")[0]
        if req and parent in parents_ok:
            always.append(key)
            parents_ok.add(key)
    assert sorted(always) == sorted(REQUIRED)


@pytest.mark.parametrize("key", REQUIRED)
def test_removing_a_required_key_gives_exactly_one_error(key: str) -> None:
    assert problems_of(setp(minimal(), key, DELETE)) == [f"{key}: required key is missing"]


@pytest.mark.parametrize("key", REQUIRED_IF_LENGTHS)
def test_lengths_need_all_three_when_given(key: str) -> None:
    data = minimal()
    data["lengths"] = {"basal_dist": 4649, "basal_prox": 483, "apic": 7440}
    validate_params(data, "p.json")
    assert problems_of(setp(data, key, DELETE)) == [f"{key}: required key is missing"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dt", "0.1", '"0.1" is not a number'),
        ("dt", math.nan, "NaN is not a finite number"),
        ("n_soma_syns", 150.5, "150.5 is not an integer"),
        ("n_soma_syns", True, "true is not an integer"),
        ("seed", -1, "-1 is less than the minimum of 0"),
        ("seed", "7", '"7" is not an integer'),
        ("cell.prefix", 5, "5 is not a string"),
        ("cell.prefix", "", '"" is too short; it must have at least 1 character(s)'),
        ("cell.morphology", 3, "3 is not a string or null"),
        (
            "cell.model_template",
            "L5PCtemplate",
            "\"L5PCtemplate\" does not match the pattern '^(hoc|ctdb|nml|python):.+' "
            '(e.g. "hoc:L5PCtemplate", "ctdb:Biophys1.hoc")',
        ),
        (
            "cell.model_processing",
            "allactive",
            '"allactive" is not one of "aibs_perisomatic", "aibs_allactive", "None", null',
        ),
        ("divergence.apic_inh.m", -1, "-1 is less than the minimum of 0"),
        ("divergence.exc.max", 8.5, "8.5 is not an integer"),
        ("groups", "100", '"100" is not an object'),
        ("groups.cluster_radius", 0, "0 must be greater than 0"),
        ("groups.cells_per_group", 0, "0 is less than the minimum of 1"),
        ("dL", -5, "-5 must be greater than 0"),
        ("time.start", -1, "-1 is less than the minimum of 0"),
        ("inh_shift", -2, "-2 is less than the minimum of 0"),
        ("record_cellvars.vars", "v", '"v" is not an array'),
        (
            "inh_frs.proximal.rhythmicity.f",
            "fast",
            '"fast" is not valid; expected a number, null or "None"',
        ),
        ("inh_frs.distal.rhythmicity", "None", '"None" is not an object'),
        ("run.nsteps_block", 0, "0 is less than the minimum of 1"),
        ("conditions.celsius", "34", '"34" is not a number'),
    ],
)
def test_wrong_values_name_path_value_and_what_is_valid(key: str, value: Any, message: str) -> None:
    assert problems_of(setp(minimal(), key, value)) == [f"{key}: {message}"]


def test_list_items_are_reported_with_their_index() -> None:
    # (a section group's name is checked against the cell at build time: any name passes here)
    data = setp(minimal(), "record_cellvars.locs", ["soma", 3])
    data["record_cellvars"]["vars"] = ["v", "cai"]
    assert problems_of(data) == ["record_cellvars.locs[1]: 3 is not a string"]


def test_top_level_not_an_object() -> None:
    assert problems_of([1, 2]) == ["(top level): [1, 2] is not an object"]


def test_every_problem_is_reported_at_once_sorted_by_path() -> None:
    data = minimal()
    data["divergence"]["apic_inh"]["m"] = -1
    data["dt"] = "fast"
    del data["cell"]["prefix"]
    data["groups"]["group_radius"] = 5  # cross-field, reported together with the schema errors
    data["time"]["stop"] = 0
    with pytest.raises(ParamsError) as info:
        validate_params(data, "my.json")
    assert info.value.problems == [
        "cell.prefix: required key is missing",
        "divergence.apic_inh.m: -1 is less than the minimum of 0",
        'dt: "fast" is not a number',
        "groups.group_radius: 5 µm is smaller than groups.cluster_radius (10 µm); a group must be "
        "at least as wide as its clusters",
        "time.stop: 0 must be greater than 0",
    ]
    assert info.value.source == "my.json"
    assert str(info.value).startswith("my.json: 5 problems found:\n  - cell.prefix: ")


# ----------------------------------------------------------------------------- unknown keys
def test_unknown_top_level_key_is_rejected_and_valid_keys_listed() -> None:
    (msg,) = problems_of(setp(minimal(), "dtt", 0.1))
    head, _, valid = msg.partition("; valid keys at the top level: ")
    assert head == 'dtt: unknown key (did you mean "dt"?)'
    assert valid.split(", ") == list(schema()["properties"])


def test_unknown_nested_key_is_rejected() -> None:
    data = setp(minimal(), "divergence.exc.mx", 8)
    assert problems_of(data) == [
        'divergence.exc.mx: unknown key (did you mean "max"?); valid keys in divergence.exc: '
        "min, max"
    ]


def test_two_unknown_keys_give_two_lines() -> None:
    data = minimal() | {"zzz": 1, "aaa": 2}
    assert [m.split(":")[0] for m in problems_of(data)] == ["aaa", "zzz"]


def test_schema_and_comment_are_allowed() -> None:
    data = minimal() | {"$schema": "../builder/schema/params.schema.json", "comment": "hello"}
    assert validate_params(data, "p.json")["comment"] == "hello"


# ----------------------------------------------------------------------------- cross-field checks
def _rhythm(f: Any, mod: Any) -> dict[str, Any]:
    return setp(minimal(), "inh_frs.proximal.rhythmicity", {"f": f, "mod": mod})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            setp(minimal(), "divergence.exc", {"min": 9, "max": 8}),
            "divergence.exc.min: 9 is greater than divergence.exc.max (8); min must be <= max",
        ),
        (
            setp(minimal(), "divergence.peri_inh.min", 6),
            "divergence.peri_inh.min: 6 is greater than divergence.peri_inh.max (5); min must be "
            "<= max",
        ),
        (
            setp(minimal(), "divergence.apic_inh.max", 5),
            "divergence.apic_inh.min: 6 is greater than divergence.apic_inh.max (5); min must be "
            "<= max",
        ),
        (
            setp(minimal(), "divergence.basal_inh.m", 0),
            "divergence.basal_inh.m: 0 must be greater than 0 (the inhibitory cell counts are "
            "synapses / m)",
        ),
        (
            setp(minimal(), "divergence.exc.min", 0),
            "divergence.exc.min: 0 must be at least 1 (every excitatory input cell makes at least "
            "one synapse, and the excitatory cell counts divide by the mean divergence)",
        ),
        (
            setp(minimal(), "syn_density.exc", 0),
            "syn_density.exc: 0 must be greater than 0 (the clusters per group are "
            "cells_per_group * mean(divergence.exc) // (syn_density.exc * 10))",
        ),
        (
            setp(minimal(), "groups.cells_per_group", 30),
            "groups.cells_per_group: 30 gives 6 clusters per group (cells_per_group * "
            "mean(divergence.exc) // (syn_density.exc * 10)), fewer than divergence.exc.max (8): "
            "each excitatory input cell needs that many distinct clusters; raise cells_per_group "
            "or lower syn_density.exc or divergence.exc.max",
        ),
        (
            setp(minimal(), "time", {"start": 5, "stop": 5}),
            "time.stop: 5 s must be greater than time.start (5 s)",
        ),
        (
            setp(minimal(), "groups.group_radius", 9.5),
            "groups.group_radius: 9.5 µm is smaller than groups.cluster_radius (10 µm); a group "
            "must be at least as wide as its clusters",
        ),
        (
            _rhythm(8, "None"),
            'inh_frs.proximal.rhythmicity: f (8) and mod ("None") must be given together (both '
            'numbers) or both null / "None" (no rhythm)',
        ),
        (
            setp(minimal(), "inh_frs.distal.rhythmicity", {"mod": 0.5}),
            "inh_frs.distal.rhythmicity: f (null) and mod (0.5) must be given together (both "
            'numbers) or both null / "None" (no rhythm)',
        ),
        (_rhythm(0, 0.5), "inh_frs.proximal.rhythmicity.f: 0 Hz must be greater than 0"),
        (
            _rhythm(8, 1),
            "inh_frs.proximal.rhythmicity.mod: 1 must be in the open interval (0, 1) "
            "(the amplitude r / (1/mod - 1) is infinite at 1 and negative above)",
        ),
        (
            _rhythm(8, 0),
            "inh_frs.proximal.rhythmicity.mod: 0 must be in the open interval (0, 1) "
            "(the amplitude r / (1/mod - 1) is infinite at 1 and negative above)",
        ),
        (
            setp(minimal(), "record_cellvars.vars", ["v", "cai"]),
            'record_cellvars: vars has 2 entries (["v", "cai"]) but locs has 1 (["soma"]); give '
            "one section group per variable",
        ),
        (
            setp(minimal(), "inh_shift", 2.5),
            "inh_shift: 2.5 ms is not a whole number of ms (the input rasters have 1 ms bins)",
        ),
        (
            setp(minimal(), "dt", 1.5),
            "dt: 1.5 ms is larger than 1 ms (the input rasters have 1 ms bins)",
        ),
        (
            setp(minimal(), "cell.model_template", "ctdb:Biophys1.hoc"),
            'cell.morphology: null, but model_template "ctdb:Biophys1.hoc" loads a morphology '
            'file: name one (e.g. "Scnn1a_473845048_m.swc")',
        ),
        (
            setp(minimal(), "cell.model_processing", "aibs_allactive"),
            'cell.dynamic_params: null, but model_processing "aibs_allactive" reads the cell\'s '
            "parameters from it: name a _fit.json file",
        ),
    ],
    ids=lambda x: "" if isinstance(x, dict) else x.split(":")[0],
)
def test_cross_field_checks(data: dict[str, Any], expected: str) -> None:
    assert problems_of(data) == [expected]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("divergence.exc", {"min": 8, "max": 8}),  # min == max is fine
        ("divergence.peri_inh.m", 7.5),  # m outside [min, max] is legal (legacy)
        ("groups.group_radius", 10),  # == cluster_radius
        ("inh_shift", 3.0),  # whole ms written as a float
        ("dt", 1),
        ("inh_frs.proximal.rhythmicity", {"f": 8, "mod": 0.5}),
        ("inh_frs.proximal.rhythmicity", {"f": "None", "mod": None}),
        ("groups.cells_per_group", 35),  # 175 // 21.6 = 8 clusters = exc.max
    ],
)
def test_boundary_values_are_accepted(key: str, value: Any) -> None:
    validate_params(setp(minimal(), key, value), "p.json")


def test_cross_field_checks_skip_keys_the_schema_rejected() -> None:
    """A bad type is reported once, not again by a cross-field check that reads it."""
    data = setp(minimal(), "divergence.exc.min", "two")
    assert problems_of(data) == ['divergence.exc.min: "two" is not an integer']


# ----------------------------------------------------------------------------- normalisation
LEGACY_SLOTS = [
    "cell.morphology",
    "cell.dynamic_params",
    "cell.model_processing",
    "cell.segments_file",
    "file_current_clamp.input_file",
    "inh_frs.proximal.rhythmicity.f",
    "inh_frs.proximal.rhythmicity.mod",
    "inh_frs.distal.rhythmicity.f",
    "inh_frs.distal.rhythmicity.mod",
]


def test_none_string_and_null_are_equivalent() -> None:
    with_none, with_null = minimal(), minimal()
    for key in LEGACY_SLOTS:
        with_none = setp(with_none, key, "None")
        with_null = setp(with_null, key, None)
    a, b = validate_params(with_none, "p.json"), validate_params(with_null, "p.json")
    assert a == b
    assert a == validate_params(minimal(), "p.json")  # and both equal the keys left out
    for key in LEGACY_SLOTS:
        node = a
        for part in key.split("."):
            node = node[part]
        assert node is None, key


def test_defaults_are_filled_and_counts_made_int(tmp_path: Path) -> None:
    data = setp(minimal(), "n_soma_syns", 150.0)
    data["conditions"] = {"celsius": 30}
    p = validate_params(data, str(tmp_path / "p.json"))
    assert p["seed"] == 123
    assert p["conditions"] == {"celsius": 30, "v_init": -80.0}
    assert p["run"] == {"spike_threshold_mV": -10, "nsteps_block": 5000, "warmup_ms": 200}
    assert p["cell"] == {
        "prefix": "L5",
        "model_template": "hoc:L5PCtemplate",
        "morphology": None,
        "dynamic_params": None,
        "model_processing": None,
        "segments_file": None,
        "components_dir": None,
    }
    assert p["file_current_clamp"] == {"input_file": None}
    assert p["inh_frs"]["distal"]["rhythmicity"] == {"f": None, "mod": None}
    assert p["n_soma_syns"] == 150 and type(p["n_soma_syns"]) is int
    assert "lengths" not in p
    assert p["_source"] == str(tmp_path / "p.json")


def test_validation_returns_a_new_dict_and_is_idempotent() -> None:
    data = json.loads(L5.read_text())
    before = copy.deepcopy(data)
    p = validate_params(data, str(L5))
    assert data == before
    p["cell"]["prefix"] = "changed"
    assert data["cell"]["prefix"] == "L5"
    again = load_params(L5)
    assert validate_params(again, str(L5)) == again  # "_source" in the input is ignored


def test_seed_given_in_params_is_kept() -> None:
    assert validate_params(minimal() | {"seed": 7}, "p.json")["seed"] == 7


# ----------------------------------------------------------------------------- reading files
def test_json_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "dt": 0.1\n  "dL": 5\n}\n', encoding="utf-8")
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert info.value.source == str(path)
    assert info.value.problems == ["line 3, column 3: invalid JSON: Expecting ',' delimiter"]
    assert str(info.value).startswith(f"{path}: 1 problem found:")


def test_unreadable_params_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as info:
        load_params(tmp_path / "nope.json")
    assert info.value.problems == ["cannot read the params file: No such file or directory"]


def test_relative_params_path_is_taken_from_cwd(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "p.json", minimal())
    p = load_params("sub/p.json", cwd=tmp_path)
    assert p["_source"] == str(tmp_path / "sub" / "p.json")


@pytest.mark.parametrize("key", ["file_current_clamp.input_file", "cell.segments_file"])
def test_missing_files_name_key_value_and_both_places(tmp_path: Path, key: str) -> None:
    params_dir, work = tmp_path / "params", tmp_path / "work"
    work.mkdir()
    path = write(params_dir / "p.json", setp(minimal(), key, "inputs/f.dat"))
    with pytest.raises(ParamsError) as info:
        load_params(path, cwd=work)
    assert info.value.problems == [
        f'{key}: "inputs/f.dat" not found; looked for {params_dir}/inputs/f.dat (next to the '
        f"params file) and {work}/inputs/f.dat (working directory)"
    ]


def test_files_found_in_cwd_then_params_dir_take_precedence(tmp_path: Path) -> None:
    params_dir, work = tmp_path / "params", tmp_path / "work"
    path = write(params_dir / "p.json", setp(minimal(), "cell.segments_file", "seg.csv"))
    (work / "seg.csv").parent.mkdir()
    (work / "seg.csv").write_text("x")
    p = load_params(path, cwd=work)
    assert p["cell"]["segments_file"] == "seg.csv"  # not resolved
    assert resolve_relative(p, "seg.csv", cwd=work) == work / "seg.csv"
    (params_dir / "seg.csv").write_text("x")
    assert resolve_relative(p, "seg.csv", cwd=work) == params_dir / "seg.csv"


def test_resolve_relative_edge_cases(tmp_path: Path) -> None:
    f = tmp_path / "abs.h5"
    f.write_text("x")
    p = validate_params(minimal(), str(tmp_path / "p.json"))
    assert resolve_relative(p, str(f)) == f
    assert resolve_relative(p, "None") is None
    assert resolve_relative(p, None) is None
    assert resolve_relative(p, "missing.h5", cwd=tmp_path) is None
    assert resolve_relative({}, "abs.h5", cwd=tmp_path) == tmp_path / "abs.h5"


def test_same_directory_is_named_once(tmp_path: Path) -> None:
    path = write(tmp_path / "p.json", setp(minimal(), "file_current_clamp.input_file", "c.h5"))
    with pytest.raises(ParamsError) as info:
        load_params(path, cwd=tmp_path)
    assert info.value.problems == [
        f'file_current_clamp.input_file: "c.h5" not found; looked for {tmp_path}/c.h5 (the '
        "params file's directory is the working directory)"
    ]


def test_components_dir_is_relative_to_the_params_file(tmp_path: Path) -> None:
    path = write(tmp_path / "params" / "p.json", setp(minimal(), "cell.components_dir", "../comp"))
    with pytest.raises(ParamsError) as info:
        load_params(path, cwd=tmp_path / "elsewhere")
    assert info.value.problems == [
        f'cell.components_dir: "../comp" is not a directory; looked for '
        f"{tmp_path}/params/../comp (relative to the params file)"
    ]
    (tmp_path / "comp").mkdir()
    assert load_params(path)["cell"]["components_dir"] == "../comp"


# ----------------------------------------------------------------------------- generated docs
def _gen_script():
    spec = importlib.util.spec_from_file_location(
        "gen_params_reference", REPO / "scripts" / "gen_params_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_params_reference_is_up_to_date() -> None:
    gen = _gen_script()
    expected = gen.render(schema())
    assert (REPO / "docs" / "params.md").read_text(encoding="utf-8") == expected, (
        "docs/params.md is stale: run python scripts/gen_params_reference.py"
    )
    for key, _, _ in _walk(schema(), schema()):
        assert f"| `{key}` |" in expected


def test_params_reference_check_mode(tmp_path: Path) -> None:
    script = str(REPO / "scripts" / "gen_params_reference.py")
    ok = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    stale = tmp_path / "params.md"
    stale.write_text("old\n")
    bad = subprocess.run(
        [sys.executable, script, "--check", "--output", str(stale)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "out of date" in bad.stderr
    assert stale.read_text() == "old\n"
