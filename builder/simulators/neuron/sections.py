"""Section groups of an instantiated cell, and the range variables each group can record.

One definition, used twice: at build time (:mod:`builder.simulators.neuron.celltable` tabulates
which variables every group has, so ``record_cellvars`` is checked before anything is written) and
at run time (:mod:`builder.simulators.neuron.bionet_ext` records the group's segments). A group is

* a section type, by BMTK's rule on section names (first four letters): ``soma``, ``dend``,
  ``apic``, ``axon``;
* ``all``: the cell's ``all`` section list (the order of BMTK's section ids);
* any other public ``SectionList`` of the template (``somatic``, ``basal``, ``apical``...).

Sections are identified by their index in ``all`` (the segment table's ``BMTK ID`` and the
``element_ids`` of a membrane report).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TYPE_GROUPS", "section_groups", "group_variables"]

#: Groups defined by section names (BMTK's classification).
TYPE_GROUPS = ("soma", "dend", "apic", "axon")


def _leaf_type(sec: Any) -> str:
    leaf = sec.name().split(".")[-1]
    return leaf.split("[")[0][:4]


def section_groups(hobj: Any) -> dict[str, list[tuple[int, Any]]]:
    """Group name -> [(index in ``all``, section)] for every group the cell has.

    Type groups without sections are left out; so are section lists that hold a section
    outside ``all``.
    """
    from neuron import h

    all_secs = list(hobj.all)
    index = {sec: i for i, sec in enumerate(all_secs)}
    groups: dict[str, list[tuple[int, Any]]] = {"all": list(enumerate(all_secs))}
    for kind in TYPE_GROUPS:
        members = [(i, s) for i, s in enumerate(all_secs) if _leaf_type(s) == kind]
        if members:
            groups[kind] = members
    section_list = type(h.SectionList())
    for name in sorted(dir(hobj)):
        if name.startswith("_") or name in groups:
            continue
        try:
            obj = getattr(hobj, name)
        except Exception:  # noqa: BLE001 -- hoc raises plain errors for odd members
            continue
        if not isinstance(obj, section_list) and "SectionList" not in str(
            getattr(obj, "hname", lambda: "")()
        ):
            continue
        try:
            secs = list(obj)
        except TypeError:
            continue
        if secs and all(s in index for s in secs):
            groups[name] = sorted(((index[s], s) for s in secs), key=lambda p: p[0])
    return groups


def _section_variables(sec: Any) -> set[str]:
    """Range variables every segment of ``sec`` has: v, i_cap, mechanism and ion variables."""
    out = {"v", "i_cap", "cm", "diam"}
    info = sec.psection()
    for mech, params in (info.get("density_mechs") or {}).items():
        out.update(f"{p}_{mech}" for p in params)
    for params in (info.get("ions") or {}).values():
        out.update(params)
    if "extracellular" in (info.get("density_mechs") or {}):
        out.update({"vext", "i_membrane"})
    return out


def group_variables(hobj: Any) -> dict[str, dict[str, Any]]:
    """For every group: its number of sections and the variables all its sections have."""
    out: dict[str, dict[str, Any]] = {}
    cache: dict[int, set[str]] = {}
    groups = section_groups(hobj)
    for i, sec in groups["all"]:
        cache[i] = _section_variables(sec)
    for name, members in groups.items():
        common: set[str] | None = None
        for i, _ in members:
            common = set(cache[i]) if common is None else common & cache[i]
        out[name] = {"n_sections": len(members), "variables": sorted(common or ())}
    return out
