"""One line per JSON Schema error, for every schema we ship (params and network specs).

The validators report the offending value as the user wrote it and what would be valid
(``-1 is less than the minimum of 0``, ``"x" is not one of "a", "b"``); keys are shown dotted
(``divergence.exc.min``, ``populations[2].count``). Imports no simulator.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only wording errors needs jsonschema (imported by the caller then)
    import jsonschema

__all__ = [
    "resolve_ref",
    "message",
    "show",
    "type_phrase",
    "or_join",
    "dotted",
    "sort_key",
    "nonfinite",
]

KeyPath = tuple[str | int, ...]

_ARTICLED = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "an object",
    "array": "an array",
    "boolean": "a boolean",
    "null": "null",
}


def resolve_ref(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/...``) of ``schema``; sibling keywords override."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def show(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it in JSON, shortened when long."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def or_join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def type_phrase(types: str | list[str]) -> str:
    return or_join([_ARTICLED.get(t, t) for t in ([types] if isinstance(types, str) else types)])


def describe(sub: Mapping[str, Any]) -> str:
    """What a (resolved) subschema accepts, in a few words."""
    if "const" in sub:
        return show(sub["const"])
    if "enum" in sub:
        return "one of " + ", ".join(show(v) for v in sub["enum"])
    if sub.get("type") == "object" and "required" in sub:
        return "an object with " + ", ".join(sub["required"])
    return type_phrase(sub.get("type", "any value"))


def dotted(path: KeyPath) -> str:
    """``("a", "b", 2, "c")`` -> ``a.b[2].c``."""
    if not path:
        return "(top level)"
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def sort_key(path: KeyPath) -> tuple[tuple[int, str | int], ...]:
    return tuple((1, p) if isinstance(p, int) else (0, str(p)) for p in path)


def message(
    err: jsonschema.ValidationError, resolve: Callable[[Mapping[str, Any]], Mapping[str, Any]]
) -> str:
    """One line for a schema error: the offending value and what would be valid.

    ``resolve`` follows ``$ref`` in the schema the error came from (:func:`resolve_ref`).
    """
    kind, want, value = err.validator, err.validator_value, show(err.instance)
    if kind == "type":
        return f"{value} is not {type_phrase(want)}"
    if kind == "enum":
        return f"{value} is not one of {', '.join(show(v) for v in want)}"
    if kind == "const":
        return f"{value} is not {show(want)}"
    if kind in ("anyOf", "oneOf"):
        return f"{value} is not valid; expected {or_join([describe(resolve(s)) for s in want])}"
    if kind == "minimum":
        return f"{value} is less than the minimum of {show(want)}"
    if kind == "exclusiveMinimum":
        return f"{value} must be greater than {show(want)}"
    if kind == "maximum":
        return f"{value} is greater than the maximum of {show(want)}"
    if kind == "exclusiveMaximum":
        return f"{value} must be less than {show(want)}"
    if kind == "minLength":
        return f"{value} is too short; it must have at least {want} character(s)"
    if kind in ("minItems", "minProperties"):
        return f"{value} has too few entries; it needs at least {want}"
    if kind == "maxItems":
        return f"{value} has too many entries; at most {want}"
    if kind == "pattern":
        examples = err.schema.get("examples") if isinstance(err.schema, Mapping) else None
        hint = f" (e.g. {', '.join(show(e) for e in examples)})" if examples else ""
        return f"{value} does not match the pattern {want!r}{hint}"
    return err.message


def nonfinite(value: Any, path: KeyPath = ()) -> list[tuple[KeyPath, str]]:
    """(path, message) of every NaN or infinity in a JSON document: they pass every numeric
    bound of a schema, so the validators reject them here."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(path, f"{show(value)} is not a finite number")]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in nonfinite(v, path + (k,))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nonfinite(v, path + (i,))]
    return []
