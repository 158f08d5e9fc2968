"""A fast yes/no check of a document against a JSON Schema (draft 2020-12, a subset).

:func:`compile_check` turns a schema into nested closures once, so checking a valid spec costs
a few Python calls per value instead of the general validator's machinery (``jsonschema``:
~25 ms for the 55 connections of ``examples/microcircuit.json``, ~2 ms here). It only says
whether the document is valid; the spec loader words the problems of an invalid one with
``jsonschema`` (every problem at once, with its path). So this check must never accept what
``jsonschema`` rejects: each keyword follows ``jsonschema``'s Draft 2020-12 rules (its type
checks, its equality for ``const``/``enum``, ``re.search`` for ``pattern``, keywords that
apply only to their own type), and a schema with a keyword not handled here gets no fast
check at all (:func:`compile_check` returns None).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["compile_check"]

Check = Callable[[Any], bool]

#: Keywords that do not constrain the document.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"}
)


class _Unsupported(Exception):
    """The schema uses something this module does not check."""


def compile_check(schema: Mapping[str, Any]) -> Check | None:
    """``check(document) -> bool`` for ``schema`` (True: ``jsonschema`` would find no error),
    or None when the schema uses a keyword or reference this module does not handle."""
    defs: dict[str, Check] = {}
    raw_defs = schema.get("$defs", {})

    def ref(target: str) -> Check:
        if target == "#":
            return lambda x: root(x)
        prefix = "#/$defs/"
        if not target.startswith(prefix) or target[len(prefix) :] not in raw_defs:
            raise _Unsupported(target)
        name = target[len(prefix) :]
        # compiled on first use (a definition may refer to itself)
        return lambda x: (defs[name] if name in defs else _define(name))(x)

    def _define(name: str) -> Check:
        defs[name] = _compile(raw_defs[name], ref)
        return defs[name]

    try:
        root = _compile(schema, ref)
        for name in raw_defs:  # every definition compiled now: unsupported ones show up here
            if name not in defs:
                _define(name)
    except _Unsupported:
        return None
    return root


def _is_type(x: Any, name: str) -> bool:
    """``jsonschema``'s Draft 2020-12 type checker."""
    if name == "object":
        return isinstance(x, dict)
    if name == "array":
        return isinstance(x, list)
    if name == "string":
        return isinstance(x, str)
    if name == "boolean":
        return isinstance(x, bool)
    if name == "null":
        return x is None
    if isinstance(x, bool):
        return False
    if name == "number":
        return isinstance(x, numbers.Number)
    if name == "integer":
        return isinstance(x, int) or (isinstance(x, float) and x.is_integer())
    raise _Unsupported(name)


def _equal(a: Any, b: Any) -> bool:
    """``jsonschema``'s equality: strings by value, sequences and mappings item by item,
    booleans never equal to numbers."""
    if a is b:
        return True
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, Sequence) and isinstance(b, Sequence):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _compile(node: Any, ref: Callable[[str], Check]) -> Check:
    if node is True:
        return lambda x: True
    if node is False:
        return lambda x: False
    if not isinstance(node, Mapping):
        raise _Unsupported(repr(node))
    checks: list[Check] = []
    keys = set(node) - _ANNOTATIONS
    for key in keys:
        checks.append(_keyword(key, node, ref))
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    return lambda x: all(c(x) for c in checks)


def _number_bound(value: Any, test: Callable[[Any, Any], bool]) -> Check:
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        raise _Unsupported(repr(value))
    return lambda x: not _is_type(x, "number") or test(x, value)


def _keyword(key: str, node: Mapping[str, Any], ref: Callable[[str], Check]) -> Check:
    value = node[key]
    if key == "$ref":
        if not isinstance(value, str):
            raise _Unsupported(repr(value))
        return ref(value)
    if key == "type":
        names = [value] if isinstance(value, str) else list(value)
        for n in names:
            _is_type(None, n)  # an unknown type name is unsupported
        return lambda x: any(_is_type(x, n) for n in names)
    if key == "const":
        return lambda x: _equal(x, value)
    if key == "enum":
        return lambda x: any(_equal(x, v) for v in value)
    if key == "minimum":
        return _number_bound(value, lambda x, v: not x < v)
    if key == "maximum":
        return _number_bound(value, lambda x, v: not x > v)
    if key == "exclusiveMinimum":
        return _number_bound(value, lambda x, v: not x <= v)
    if key == "exclusiveMaximum":
        return _number_bound(value, lambda x, v: not x >= v)
    if key == "minLength":
        return lambda x: not isinstance(x, str) or len(x) >= value
    if key == "maxLength":
        return lambda x: not isinstance(x, str) or len(x) <= value
    if key == "pattern":
        rx = re.compile(value)
        return lambda x: not isinstance(x, str) or rx.search(x) is not None
    if key == "minItems":
        return lambda x: not isinstance(x, list) or len(x) >= value
    if key == "maxItems":
        return lambda x: not isinstance(x, list) or len(x) <= value
    if key == "items":
        if not isinstance(value, (Mapping, bool)):
            raise _Unsupported("items as a list")
        item = _compile(value, ref)
        return lambda x: not isinstance(x, list) or all(item(v) for v in x)
    if key == "minProperties":
        return lambda x: not isinstance(x, dict) or len(x) >= value
    if key == "required":
        req = list(value)
        return lambda x: not isinstance(x, dict) or all(k in x for k in req)
    if key == "properties":
        props = {k: _compile(v, ref) for k, v in value.items()}
        return lambda x: not isinstance(x, dict) or all(c(x[k]) for k, c in props.items() if k in x)
    if key == "additionalProperties":
        if "patternProperties" in node:
            raise _Unsupported("patternProperties")
        known = frozenset(node.get("properties", {}))
        extra = _compile(value, ref)
        return lambda x: (
            not isinstance(x, dict) or all(extra(v) for k, v in x.items() if k not in known)
        )
    if key == "propertyNames":
        name = _compile(value, ref)
        return lambda x: not isinstance(x, dict) or all(name(k) for k in x)
    if key == "anyOf":
        alts = [_compile(v, ref) for v in value]
        return lambda x: any(c(x) for c in alts)
    if key == "allOf":
        parts = [_compile(v, ref) for v in value]
        return lambda x: all(c(x) for c in parts)
    if key == "oneOf":
        alts = [_compile(v, ref) for v in value]
        return lambda x: sum(1 for c in alts if c(x)) == 1
    if key in ("if", "then", "else"):
        if key != "if":  # without "if", jsonschema ignores "then" and "else"
            return lambda x: True
        cond = _compile(value, ref)
        then = _compile(node.get("then", True), ref)
        other = _compile(node.get("else", True), ref)
        return lambda x: then(x) if cond(x) else other(x)
    raise _Unsupported(key)
