"""The general layer: a declarative network spec and its streaming, vectorised builder.

``load_spec`` reads and validates a spec (JSON or YAML, schema ``builder/schema/spec.schema.json``,
reference ``docs/spec.md``); :class:`NetworkBuilder` writes it as SONATA (nodes, edges with both
indices, spike inputs, configs). Nothing here knows about a particular recipe or simulator.
"""

from __future__ import annotations

from .build import BuildResult, NetworkBuilder
from .model import SPEC_FORMAT, Spec, is_spec_data, is_spec_file, load_spec, spec_schema_path

__all__ = [
    "SPEC_FORMAT",
    "BuildResult",
    "NetworkBuilder",
    "Spec",
    "is_spec_data",
    "is_spec_file",
    "load_spec",
    "spec_schema_path",
]
