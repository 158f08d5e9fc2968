#!/usr/bin/env python3
"""Generate the network spec reference (docs/spec.md) from the spec JSON Schema.

The schema (builder/schema/spec.schema.json) is the single source of truth for the spec format:
key names, types, bounds, defaults and the descriptions with their units. This script turns it
into Markdown: one table for the top level and one per kind of object (region, population,
connection, rule, distribution, input, ...), one row per key; a reference to another kind of
object links to its table.

Usage::

    python scripts/gen_spec_reference.py            # (re)write docs/spec.md
    python scripts/gen_spec_reference.py --check    # exit 1 if docs/spec.md is stale
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # reference_cli, also when loaded by path
import reference_cli  # noqa: E402

SCHEMA = ROOT / "builder" / "schema" / "spec.schema.json"
OUTPUT = ROOT / "docs" / "spec.md"

#: Order and titles of the object tables (keys of $defs).
SECTIONS = [
    ("region", "Region (`regions.<name>`)"),
    ("population", "Population (`populations.<name>`)"),
    ("model", "Cell model (`populations.<name>.model`)"),
    ("distribution", "Distribution (any number marked *number or distribution*)"),
    ("selection", "Selection (`source`, `target`, generator `target`, report `cells`)"),
    ("connection", "Connection (`connections.<name>`)"),
    ("rule", "Rule (`connections.<name>.rule`)"),
    ("p_profile", "Distance-dependent probability (`rule.p`)"),
    ("delay", "Delay (`connections.<name>.delay_ms`)"),
    ("placement", "Synapse placement (`connections.<name>.placement`)"),
    ("input", "Input (`inputs.<name>`)"),
    ("rate_profile", "Rate profile (`inputs.<name>.train.profile`)"),
    ("run", "Run (`run`)"),
    ("reports", "Reports (`reports`)"),
]
_TITLES = dict(SECTIONS)


def _anchor(name: str) -> str:
    title = _TITLES.get(name, name)
    out = "".join(c for c in title.lower() if c.isalnum() or c in " -_").strip()
    return out.replace(" ", "-")


def _code(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _type_text(node: Mapping[str, Any]) -> str:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in _TITLES:
            return f"[{name}](#{_anchor(name)})"
        if name == "number_or_distribution":
            return f"number or [distribution](#{_anchor('distribution')})"
        if name == "name":
            return "name (letters, digits, `_`, `-`)"
        if name in ("vec3", "vec2", "posvec2", "range"):
            return {
                "vec3": "[x, y, z]",
                "vec2": "[a, b]",
                "posvec2": "[a, b] (> 0)",
                "range": "[low, high]",
            }[name]
        return name
    if "anyOf" in node:
        return " or ".join(_type_text(s) for s in node["anyOf"])
    if "const" in node:
        return _code(node["const"])
    if "enum" in node:
        return "one of " + ", ".join(_code(v) for v in node["enum"])
    kinds = node.get("type", "any")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    words = " or ".join(kinds)
    if "items" in node:
        words += " of " + _type_text(node["items"])
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), Mapping):
        words = "object of name → " + _type_text(node["additionalProperties"])
    bounds = []
    for key, sym in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            bounds.append(f"{sym} {node[key]}")
    if node.get("minLength") == 1:
        bounds.append("non-empty")
    return words + (", " + ", ".join(bounds) if bounds else "")


def _rows(node: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, ...]]:
    required = set(node.get("required", ()))  # conditional ones: see _conditions
    for key, sub in node.get("properties", {}).items():
        default = _code(sub["default"]) if "default" in sub else "—"
        req = "yes" if key in required else "no"
        text = sub.get("description", "")
        yield f"{prefix}{key}", _type_text(sub), default, req, text
        if "properties" in sub and "$ref" not in sub:
            yield from _rows(sub, f"{prefix}{key}.")
        items = sub.get("items")
        if isinstance(items, Mapping) and "properties" in items:
            yield from _rows(items, f"{prefix}{key}[].")


def _conditions(node: Mapping[str, Any]) -> str:
    out = []
    for cond in node.get("allOf", []):
        when = cond.get("if", {}).get("properties", {})
        need = cond.get("then", {}).get("required", [])
        for key, test in when.items():
            vals = [test["const"]] if "const" in test else test.get("enum", [])
            shown = " or ".join(_code(v) for v in vals)
            out.append(f"{key} {shown} requires " + ", ".join(f"`{n}`" for n in need))
    return ("Required by kind: " + "; ".join(out) + ".") if out else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(node: Mapping[str, Any]) -> list[str]:
    lines = ["| key | type | default | required | description |", "|---|---|---|---|---|"]
    for row in _rows(node):
        key, kind, default, req, text = (_cell(x) for x in row)
        lines.append(f"| `{key}` | {kind} | {default} | {req} | {text} |")
    return lines


def render(schema: Mapping[str, Any] | None = None) -> str:
    """The Markdown reference for the spec schema (read from the repository if not given)."""
    if schema is None:
        schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    defs = schema["$defs"]
    lines = [
        "# Network spec reference",
        "",
        "<!-- Generated by scripts/gen_spec_reference.py from builder/schema/spec.schema.json;",
        "     do not edit by hand: change the schema and rerun the script. -->",
        "",
        schema.get("description", ""),
        "",
        'A spec is a JSON (or YAML) file with `"format": "l5net-spec/1"`; build it with',
        "`build-network SPEC.json [SEED] -o DIR [--set KEY=VALUE] [--check]`. Unknown keys are",
        "an error; every problem is reported at once with its dotted key, exit status 2, and",
        "nothing is written. Besides the schema, the builder checks that populations, regions",
        "and layers named anywhere exist, exactly one of `count` and `density_per_mm3` is given,",
        "`fixed_indegree` / `fixed_outdegree` / `fixed_total_number` without multapses do not",
        "ask for more than the eligible cells or pairs, `one_to_one` joins populations of one",
        "size, distance-dependent rules and delays have positions (a region) at both ends,",
        "distributions have their parameters, placement is only given for biophysical targets,",
        "and that the files named (morphologies, dynamics params, templates, spike files)",
        "exist (cell files in `components_dir` or its BMTK-style subfolders; spike files",
        "relative to the spec).",
        "",
        "Examples: `examples/microcircuit.json`, `examples/adexp_tf.json`,",
        "`examples/lfpy_network.json`, `examples/layered_volume.json`.",
        "",
        "## Top level",
        "",
        *_table(schema),
    ]
    for name, title in SECTIONS:
        node = defs[name]
        if "anyOf" in node:  # a shorthand or an object: document the object form
            node = next(s for s in node["anyOf"] if s.get("type") == "object")
        lines += ["", f"## {title}", ""]
        if node.get("description"):
            lines += [_cell(node["description"]), ""]
        cond = _conditions(node)
        if cond:
            lines += [cond, ""]
        if name in ("selection", "delay"):
            lines += [f"Shorthand: {_type_text(defs[name]['anyOf'][0])}.", ""]
        lines += _table(node)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write or check the spec reference; returns the exit status."""
    return reference_cli.main(
        argv,
        description=__doc__.splitlines()[0],
        render=render,
        schema=SCHEMA,
        output=OUTPUT,
        script=Path(__file__).name,
    )


if __name__ == "__main__":
    sys.exit(main())
