"""The fast schema check (builder.core.spec.fastcheck) says "valid" exactly when jsonschema does."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import jsonschema
import pytest

from builder.core.spec import load_spec
from builder.core.spec import model as M
from builder.core.spec.fastcheck import compile_check

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["adexp_tf.json", "layered_volume.json", "lfpy_network.json", "microcircuit.json"]

#: Values put in place of a spec's values: wrong types, bounds, bool-for-number, int-for-float.
REPLACEMENTS = [
    None, True, False, 0, 1, -1, 0.0, 0.5, -0.5, 1.0, 2.5, 1e9, "", "x", "static_synapse",
    "normal", "point", "9bad", [], [1, 2], [1.0, 2.0, 3.0], [0, 0, 0, 0], {},
    {"distribution": "normal"},
]  # fmt: skip


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _parent(doc, path):
    for k in path[:-1]:
        doc = doc[k]
    return doc


def _mutants(spec, rng, n):
    """``n`` copies of ``spec``, each with one value replaced, one key removed or added."""
    paths = [p for p in _paths(spec) if p]
    for _ in range(n):
        doc = copy.deepcopy(spec)
        path = rng.choice(paths)
        parent = _parent(doc, path)
        what = rng.random()
        if what < 0.15 and isinstance(parent, dict):
            del parent[path[-1]]
        elif what < 0.25 and isinstance(parent, dict):
            parent[rng.choice(["bogus", "weight", "n", "mean", "sd", "min"])] = rng.choice(
                REPLACEMENTS
            )
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(REPLACEMENTS))
        yield path, doc


@pytest.mark.parametrize("name", EXAMPLES)
def test_fast_check_agrees_with_jsonschema_on_mutated_examples(name):
    schema = M._schema()
    check = compile_check(schema)
    assert check is not None
    validator = jsonschema.Draft202012Validator(schema)
    spec = json.loads((ROOT / "examples" / name).read_text())
    if name == "microcircuit.json":  # a few connections are enough (jsonschema is slow)
        spec["connections"] = dict(list(spec["connections"].items())[:3])
    assert check(spec) and validator.is_valid(spec)
    rng = random.Random(name)
    rejected = 0
    for path, doc in _mutants(spec, rng, 250):
        expected = validator.is_valid(doc)
        assert check(doc) == expected, (path, doc if len(json.dumps(doc)) < 2000 else "...")
        rejected += not expected
    assert rejected > 50  # the mutations do reach the schema's rules


def test_fast_check_follows_jsonschemas_types_and_equality():
    check = compile_check(
        {
            "type": "object",
            "properties": {
                "i": {"type": "integer", "minimum": 1},
                "n": {"type": "number", "exclusiveMinimum": 0},
                "c": {"const": 1},
                "e": {"enum": [[1, "a"], {"k": False}]},
                "s": {"type": "string", "pattern": "^[a-z]+$"},
            },
            "additionalProperties": False,
        }
    )
    assert check is not None
    good = [{"i": 1}, {"i": 2.0}, {"n": 1e-9}, {"c": 1.0}, {"e": [1.0, "a"]}, {"e": {"k": False}}]
    bad = [
        {"i": True}, {"i": 1.5}, {"i": 0}, {"n": 0}, {"n": False}, {"c": True}, {"e": [True, "a"]},
        {"e": {"k": 0}}, {"s": "A"}, {"x": 1}, [],
    ]  # fmt: skip
    validator = jsonschema.Draft202012Validator(
        {"properties": {"s": {"pattern": "^[a-z]+$"}}}
    )  # re.search: "$" also matches before a final newline, as in jsonschema
    assert validator.is_valid({"s": "ab\n"}) and check({"s": "ab\n"})
    assert all(check(d) for d in good)
    assert not any(check(d) for d in bad)


def test_a_schema_with_an_unhandled_keyword_gets_no_fast_check():
    assert compile_check({"type": "object", "unevaluatedProperties": False}) is None
    assert compile_check({"$ref": "https://example.org/other.json"}) is None
    assert compile_check({"prefixItems": [{"type": "string"}]}) is None


def test_an_invalid_spec_still_gets_every_problem_worded(tmp_path):
    spec = json.loads((ROOT / "examples" / "adexp_tf.json").read_text())
    spec["populations"][next(iter(spec["populations"]))]["count"] = -3
    spec["bogus"] = 1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(M.ParamsError) as err:
        load_spec(path)
    text = str(err.value)
    assert "bogus" in text and "count" in text and "-3" in text
