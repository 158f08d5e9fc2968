"""Shared by test_hay_cell and test_l5_cell: measure an L5 cell in one child process.

NEURON loads one mechanism library per process, so each test module runs its measurements in a
child that prints one ``RESULT {json}`` line. ``STRUCTURE`` is the part both cells share (section
counts, the nseg rule, axon stubs, dendritic lengths by SPEC section 2's split at 50 um, the
apical extent); the checks below read it back. The channel names differ between the two cells,
so the density probes stay in each test module.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

#: defines ``structure(h, c) -> dict`` in the child; ``c`` is the instantiated cell template
STRUCTURE = r"""
def structure(h, c):
    out = {}
    out["sections"] = {k: len(list(getattr(c, k))) for k in ("somatic", "basal", "apical",
                                                             "axonal")}
    out["nseg_rule"] = all(s.nseg == 1 + 2 * int(s.L / 10) for s in c.all)
    out["axon_L"] = [s.L for s in c.axonal]
    h.distance(0, c.soma[0](0))
    lengths = {"basal_dist": 0.0, "basal_prox": 0.0, "apic": 0.0}
    for s in c.basal:
        for seg in s:
            key = "basal_dist" if h.distance(seg) >= 50 else "basal_prox"
            lengths[key] += s.L / s.nseg
    lengths["apic"] = sum(s.L for s in c.apical)
    out["lengths"] = lengths
    out["max_apic_dist"] = max(h.distance(s(1)) for s in c.apical)
    return out
"""


def run_probe(code: str, args: list[str], *, cwd, timeout: float) -> dict:
    """Run ``code`` (prefixed with STRUCTURE) in a child Python; its last RESULT line, parsed."""
    r = subprocess.run(
        [sys.executable, "-c", STRUCTURE + code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def check_structure(cell: dict) -> None:
    """Sections, Hay's nseg rule, two 30 um axon stubs, SPEC section 2's lengths (3 %)."""
    s = cell["sections"]
    assert s["somatic"] == 1 and s["basal"] >= 8 and s["apical"] >= 20
    assert cell["axon_L"] == pytest.approx([30.0, 30.0])
    assert cell["nseg_rule"]
    # SPEC section 2: 4649 / 483 / 7440 um
    assert cell["lengths"] == pytest.approx(
        {"basal_dist": 4649, "basal_prox": 483, "apic": 7440}, rel=0.03
    )


def check_apical_gradients(cell: dict) -> None:
    """Hay's exponential Ih gradient and the 685-885 um Ca hot zone, from ``cell["apical"]``.

    Each apical row starts (distance um, gIh, gCa_LVA, gCa_HVA, cm); ``cell["basal_Ih"]`` holds
    the distinct basal Ih densities.
    """
    dmax = cell["max_apic_dist"]
    for dist, ih, lva, hva, cm, *_ in cell["apical"]:
        assert ih == pytest.approx(0.0002 * (-0.8696 + 2.0870 * math.exp(3.6161 * dist / dmax)))
        hot = 685 <= dist <= 885
        assert lva == pytest.approx(0.0187 if hot else 0.000187)
        assert hva == pytest.approx(0.000555 if hot else 0.0000555)
        assert cm == 2
    assert any(685 <= d <= 885 for d, *_ in cell["apical"])  # the trunk reaches the hot zone
    assert cell["basal_Ih"] == [0.0002]
