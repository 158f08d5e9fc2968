#!/usr/bin/env python
"""Write a legacy-style L5 project folder, as users of the legacy pipeline have them.

Used by the tests (``tests/test_legacy_project.py``) and handy for trying the builder by hand::

    python scripts/make_legacy_project.py /tmp/legacy [--broken-mod]
    cd /tmp/legacy/FullSimulation && python <repo>/build_network.py && python <repo>/run_network.py

Everything here is written by this script (no file of the legacy project is copied):

``FullSimulation/L5NetParams.json``
    a legacy params file ("None" strings, ``prefix`` L5, ``hoc:L5PCtemplate``, no morphology:
    the template loads its own), shrunk to a small synthetic cell and 0.2 s of input.
``biophys_components/templates/``
    the active set (``prefix.txt`` says L5): ``L5PCtemplate.hoc``, a Hay-style template that
    loads ``../biophys_components/morphologies/cell1.asc`` (relative to the working
    directory, as the legacy templates do) with NEURON's Neurolucida reader and calls the
    biophysics template defined in the sibling file ``L5PCbiophys.hoc``.
``biophys_components/L5templates/``
    the stored copy of the L5 set (also ``prefix.txt`` L5) with different content: its
    template loads a morphology file that does not exist, so using it instead of the active
    set fails the build.
``biophys_components/L2-3templates/``, ``L2-3mechanisms/``
    another cell's stored set (unused by L5).
``biophys_components/mechanisms/``
    the user's NMODL: a channel of their own (``kdr_user``: Hodgkin-Huxley delayed
    rectifier kinetics), and legacy ``pyr2pyr.mod`` / ``int2pyr.mod`` whose VERBATIM
    random-number code does not compile on NEURON 9 (our models replace them);
    ``--broken-mod`` adds ``legacy_rng.mod``, another such file that nothing replaces.
``biophys_components/morphologies/cell1.asc``
    a small synthetic pyramidal cell in Neurolucida ASC (soma contour, basal dendrites,
    apical trunk with an oblique and a tuft, axon).
``biophys_components/synaptic_models/``
    PN2PN / PV2PN / SOM2PN in the legacy kinetic-scheme style, every value a string, with
    the long-term plasticity keys and a ``delay``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

# ----------------------------------------------------------------------------- morphology
#: Branches of the synthetic cell: (kind, parent index or None, end point (x, y, z) um, diam um).
#: A branch starts where its parent ends (a root branch starts on the soma contour).
BRANCHES: list[tuple[str, int | None, tuple[float, float, float], float]] = [
    ("Apical", None, (0.0, 350.0, 0.0), 3.0),  # 0 trunk
    ("Apical", 0, (0.0, 700.0, 0.0), 2.5),  # 1 upper trunk
    ("Apical", 0, (140.0, 460.0, 10.0), 1.0),  # 2 oblique
    ("Apical", 1, (-160.0, 900.0, 0.0), 1.2),  # 3 tuft
    ("Apical", 1, (170.0, 910.0, -10.0), 1.2),  # 4 tuft
    ("Dendrite", None, (-110.0, -90.0, 0.0), 1.4),  # 5 basal
    ("Dendrite", 5, (-230.0, -120.0, 20.0), 1.0),  # 6
    ("Dendrite", 5, (-150.0, -230.0, -20.0), 1.0),  # 7
    ("Dendrite", None, (120.0, -80.0, 0.0), 1.4),  # 8 basal
    ("Dendrite", 8, (250.0, -110.0, -15.0), 1.0),  # 9
    ("Dendrite", 8, (160.0, -220.0, 15.0), 1.0),  # 10
    ("Dendrite", None, (0.0, -40.0, 130.0), 1.2),  # 11 basal
    ("Dendrite", 11, (20.0, -80.0, 260.0), 1.0),  # 12
    ("Axon", None, (0.0, -70.0, 0.0), 1.0),  # 13
]
SOMA_RADIUS_UM = 10.0
STEP_UM = 10.0


def _start(index: int) -> tuple[float, float, float]:
    kind, parent, end, _ = BRANCHES[index]
    if parent is not None:
        return BRANCHES[parent][2]
    norm = math.sqrt(sum(c * c for c in end))
    return tuple(SOMA_RADIUS_UM * c / norm for c in end)  # type: ignore[return-value]


def _points(index: int) -> list[tuple[float, float, float, float]]:
    """3-D points of a branch every ~STEP_UM, from its start (excluded for children) to end."""
    start, (_, _, end, diam) = _start(index), BRANCHES[index]
    length = math.dist(start, end)
    n = max(1, math.ceil(length / STEP_UM))
    first = 0 if BRANCHES[index][1] is None else 1
    out = []
    for i in range(first, n + 1):
        f = i / n
        out.append((*(s + f * (e - s) for s, e in zip(start, end, strict=True)), diam))
    return out


def _tree_lines(index: int, indent: str) -> list[str]:
    lines = [f"{indent}({p[0]:.2f} {p[1]:.2f} {p[2]:.2f} {p[3]:.2f})" for p in _points(index)]
    children = [i for i, b in enumerate(BRANCHES) if b[1] == index]
    if children:
        lines.append(f"{indent}(")
        for k, child in enumerate(children):
            if k:
                lines.append(f"{indent}|")
            lines += _tree_lines(child, indent + "  ")
        lines.append(f"{indent})  ;  End of split")
    return lines


def asc_text() -> str:
    """The synthetic cell as Neurolucida ASC."""
    lines = ["; synthetic pyramidal cell, written by l5net scripts/make_legacy_project.py", ""]
    lines += ['("CellBody"', "  (Color Red)", "  (CellBody)"]
    for k in range(16):
        a = 2 * math.pi * k / 16
        lines.append(
            f"  ({SOMA_RADIUS_UM * math.cos(a):.3f} {SOMA_RADIUS_UM * math.sin(a):.3f} 0.00 0.50)"
        )
    lines += [")  ;  End of contour", ""]
    for i, (kind, parent, _, _) in enumerate(BRANCHES):
        if parent is None:
            lines += ["( (Color Green)", f"  ({kind})"]
            lines += _tree_lines(i, "  ")
            lines += [")  ;  End of tree", ""]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- templates
TEMPLATE = """\
// L5PCtemplate: a Hay-style cell template of a legacy project (written by l5net's
// scripts/make_legacy_project.py). It loads its own morphology, by a path relative to the
// working directory of the run, and takes its biophysics from L5PCbiophys (sibling file).
begintemplate L5PCtemplate
public init, soma, dend, apic, axon, all, somatic, basal, apical, axonal
objref all, somatic, basal, apical, axonal, this, biophys
create soma[1], dend[1], apic[1], axon[1]

proc init() { localobj reader, importer
    all = new SectionList()
    somatic = new SectionList()
    basal = new SectionList()
    apical = new SectionList()
    axonal = new SectionList()
    reader = new Import3d_Neurolucida3()
    reader.quiet = 1
    reader.input("%(morphology)s")
    importer = new Import3d_GUI(reader, 0)
    importer.instantiate(this)
    forsec all { nseg = 1 + 2 * int(L / 40) }
    biophys = new L5PCbiophys()
    biophys.apply(this)
}
endtemplate L5PCtemplate
"""

BIOPHYS = """\
// L5PCbiophys: membrane properties of the legacy-style cell (written by l5net's
// scripts/make_legacy_project.py). Somatic and axonal spikes from BMTK's NaTs and Kv3_1, the
// user's own delayed rectifier (kdr_user) on the dendrites and BMTK's Ih on the apical tree.
begintemplate L5PCbiophys
public apply

proc apply() {
    forsec $o1.all {
        insert pas
        cm = 1
        Ra = 100
        g_pas = 3e-5
        e_pas = -70
    }
    forsec $o1.somatic {
        insert NaTs
        gbar_NaTs = 2.0
        insert Kv3_1
        gbar_Kv3_1 = 0.7
        ena = 50
        ek = -85
    }
    forsec $o1.axonal {
        insert NaTs
        gbar_NaTs = 4.0
        insert Kv3_1
        gbar_Kv3_1 = 1.0
        ena = 50
        ek = -85
    }
    forsec $o1.basal {
        insert kdr_user
        gbar_kdr_user = 0.0005
        ek = -85
    }
    forsec $o1.apical {
        insert kdr_user
        gbar_kdr_user = 0.0005
        ek = -85
        insert Ih
        gbar_Ih = 0.0001
    }
}
endtemplate L5PCbiophys
"""

OTHER_TEMPLATE = """\
// the L2/3 cell of the same legacy project (stored set; unused by the L5 params)
begintemplate L23PCtemplate
public soma, all
objref all
create soma
proc init() {
    all = new SectionList()
    soma all.append()
    soma { L = 20 diam = 20 insert hh }
}
endtemplate L23PCtemplate
"""

# ----------------------------------------------------------------------------- NMODL
KDR_USER = """\
COMMENT
kdr_user: a delayed-rectifier potassium channel of a legacy project (written by l5net's
scripts/make_legacy_project.py): Hodgkin & Huxley (1952) n^4 kinetics, 6.3 degC rates
scaled with q10 = 3, voltage shifted to a resting potential of -65 mV.
ENDCOMMENT

NEURON {
    SUFFIX kdr_user
    USEION k READ ek WRITE ik
    RANGE gbar, ik
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    gbar = 0.001 (S/cm2)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    celsius (degC)
    ninf
    ntau (ms)
}

STATE { n }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gbar * n * n * n * n * (v - ek)
}

INITIAL {
    rates(v)
    n = ninf
}

DERIVATIVE states {
    rates(v)
    n' = (ninf - n) / ntau
}

PROCEDURE rates(v (mV)) {
    LOCAL a, b, q, x
    q = 3 ^ ((celsius - 6.3) / 10)
    x = -(v + 55)
    if (fabs(x) < 1e-6) {
        a = 0.1
    } else {
        a = 0.01 * x / (exp(x / 10) - 1)
    }
    b = 0.125 * exp(-(v + 65) / 80)
    ninf = a / (a + b)
    ntau = 1 / (q * (a + b))
}
"""

# A legacy synapse file's shape: a point process whose random-number hookup is VERBATIM C
# that NEURON 9's C++ build rejects (a conflicting declaration of NEURON's own function).
LEGACY_RNG_MOD = """\
COMMENT
%(name)s: legacy-style mechanism with VERBATIM random-number code (written by l5net's
scripts/make_legacy_project.py to reproduce what users' old files do to NEURON 9).
ENDCOMMENT

NEURON {
    POINT_PROCESS %(name)s
    NONSPECIFIC_CURRENT i
    RANGE g
    POINTER rng_handle
}

PARAMETER { g = 0 (uS) }
ASSIGNED { v (mV) i (nA) rng_handle }

VERBATIM
double nrn_random_pick(void* r);
void* nrn_random_arg(int argpos);
ENDVERBATIM

BREAKPOINT { i = g * v }

PROCEDURE setRandObjRef() {
VERBATIM
    void** handle = (void**)(&_p_rng_handle);
    *handle = nrn_random_arg(1);
ENDVERBATIM
}
"""

# ----------------------------------------------------------------------------- synapses
PN2PN = {
    "level_of_detail": "pyr2pyr",
    "AlphaTmax_ampa": "5", "Beta_ampa": "0.5882", "Cdur_ampa": "0.2", "gbar_ampa": "0.001",
    "Erev_ampa": "0",
    "AlphaTmax_nmda": "3.4483", "Beta_nmda": "0.0233", "Cdur_nmda": "0.29",
    "gbar_nmda": "0.0005", "Erev_nmda": "0",
    "initW": "5", "delay": "0.9",
    "tauD1": "35", "d1": "0.95", "tauD2": "250", "d2": "0.8", "tauF": "1", "f": "1",
}  # fmt: skip
_GABA = {
    "level_of_detail": "int2pyr",
    "AlphaTmax_gaba": "1.52", "Beta_gaba": "0.14", "Cdur_gaba": "0.7254", "Erev_gaba": "-75",
    "initW": "1", "delay": "2", "tauF": "1", "f": "0",
    "Wmax": "3", "Wmin": "0.25", "con_pattern": "1", "lambda1": "1", "lambda2": "0.01",
    "threshold1": "0.5", "threshold2": "0.6",
}  # fmt: skip
PV2PN = {**_GABA, "gbar_gaba": "1", "tauD1": "40", "d1": "0.7", "tauD2": "500", "d2": "0.7"}
SOM2PN = {**_GABA, "gbar_gaba": "0.006", "tauD1": "200", "d1": "0.8", "tauD2": "1", "d2": "1"}

# ----------------------------------------------------------------------------- params
PARAMS = {
    "cell": {
        "prefix": "L5",
        "model_template": "hoc:L5PCtemplate",
        "morphology": "None",
        "dynamic_params": "None",
        "model_processing": "None",
    },
    # the synthetic cell's dendritic lengths (basal >= 50 um from the soma, < 50 um, apical)
    "lengths": {"basal_dist": 970, "basal_prox": 112, "apic": 1395},
    "syn_density": {"exc": 2.16, "inh": 0.22},
    "n_soma_syns": 150,
    "divergence": {
        "exc": {"min": 2, "max": 8},
        "peri_inh": {"m": 2.8, "s": 1.9, "min": 1, "max": 5},
        "basal_inh": {"m": 2.7, "s": 1.6, "min": 1, "max": 5},
        "apic_inh": {"m": 12, "s": 3, "min": 6, "max": 18},
    },
    "groups": {"cells_per_group": 100, "cluster_radius": 10, "group_radius": 100},
    "file_current_clamp": {"input_file": "None"},
    "record_cellvars": {"vars": ["v"], "locs": ["soma"]},
    "inh_frs": {
        "proximal": {"m": 16.9, "s": 14.3, "rhythmicity": {"f": "None", "mod": "None"}},
        "distal": {"m": 3.9, "s": 4.9, "rhythmicity": {"f": "None", "mod": "None"}},
    },
    "time": {"start": 0, "stop": 0.2},
    "dL": 5,
    "dt": 0.1,
    "inh_shift": 2,
}

MORPHOLOGY_REL = "../biophys_components/morphologies/cell1.asc"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_project(root: Path, *, broken_mod: bool = False) -> Path:
    """Write the legacy project under ``root``; return its ``FullSimulation`` folder."""
    root = Path(root)
    comp = root / "biophys_components"
    sim = root / "FullSimulation"
    _write(sim / "L5NetParams.json", json.dumps(PARAMS, indent=2) + "\n")

    _write(comp / "templates" / "prefix.txt", "L5\n")
    _write(comp / "templates" / "L5PCtemplate.hoc", TEMPLATE % {"morphology": MORPHOLOGY_REL})
    _write(comp / "templates" / "L5PCbiophys.hoc", BIOPHYS)
    stale = TEMPLATE % {"morphology": "../biophys_components/morphologies/cell0_old.asc"}
    _write(comp / "L5templates" / "prefix.txt", "L5\n")
    _write(comp / "L5templates" / "L5PCtemplate.hoc", stale)
    _write(comp / "L5templates" / "L5PCbiophys.hoc", BIOPHYS)
    _write(comp / "L2-3templates" / "prefix.txt", "L2-3\n")
    _write(comp / "L2-3templates" / "L23PCtemplate.hoc", OTHER_TEMPLATE)

    mods = comp / "mechanisms" / "modfiles"
    _write(comp / "mechanisms" / "prefix.txt", "L5\n")
    _write(mods / "kdr_user.mod", KDR_USER)
    _write(mods / "pyr2pyr.mod", LEGACY_RNG_MOD % {"name": "pyr2pyr"})
    _write(mods / "int2pyr.mod", LEGACY_RNG_MOD % {"name": "int2pyr"})
    if broken_mod:
        _write(mods / "legacy_rng.mod", LEGACY_RNG_MOD % {"name": "legacy_rng"})
    _write(comp / "L5mechanisms" / "prefix.txt", "L5\n")
    _write(comp / "L5mechanisms" / "modfiles" / "kdr_user.mod", KDR_USER)
    _write(comp / "L2-3mechanisms" / "prefix.txt", "L2-3\n")
    _write(comp / "L2-3mechanisms" / "modfiles" / "kdr_user.mod", KDR_USER)

    _write(comp / "morphologies" / "cell1.asc", asc_text())
    for name, body in (("PN2PN", PN2PN), ("PV2PN", PV2PN), ("SOM2PN", SOM2PN)):
        _write(comp / "synaptic_models" / f"{name}.json", json.dumps(body, indent=2) + "\n")
    return sim


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="folder to create the project in (must not exist)")
    ap.add_argument("--broken-mod", action="store_true", help="add a .mod that cannot compile")
    ns = ap.parse_args(argv)
    if ns.root.exists():
        print(f"make_legacy_project: error: {ns.root} exists; give a new folder", file=sys.stderr)
        return 2
    sim = make_project(ns.root, broken_mod=ns.broken_mod)
    print(f"legacy project written; build and run from {sim}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
