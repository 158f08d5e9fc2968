"""NEST's spelling of SONATA model names (the network config itself:
:mod:`builder.core.netconfig`)."""

from __future__ import annotations

__all__ = ["strip_prefix"]


def strip_prefix(template: str) -> str:
    """``nest:iaf_psc_exp`` -> ``iaf_psc_exp`` (BMTK's prefix; NEST wants the bare name)."""
    template = (template or "").strip()
    return template.split(":", 1)[1] if template.startswith("nest:") else template
