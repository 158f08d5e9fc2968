"""The command line shared by the schema-reference generators (gen_*_reference.py).

Each generator renders one Markdown reference from one JSON Schema; this module gives them the
same options: write the output, or ``--check`` that it is up to date (exit 1 if stale, so CI and
the tests catch a schema edit without its docs).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def main(
    argv: list[str] | None,
    *,
    description: str,
    render: Callable[[Mapping[str, Any]], str],
    schema: Path,
    output: Path,
    script: str,
) -> int:
    """Write (or with ``--check`` compare) ``render(schema)``; returns the exit status."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the output file is not up to date",
    )
    parser.add_argument(
        "--schema", type=Path, default=schema, help="schema file (default: %(default)s)"
    )
    parser.add_argument(
        "--output", type=Path, default=output, help="output file (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    text = render(json.loads(args.schema.read_text(encoding="utf-8")))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            print(f"{args.output} is out of date; run: python scripts/{script}", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0
