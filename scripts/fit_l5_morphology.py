#!/usr/bin/env python
"""Search the free parameters of the synthetic L5 morphology for Hay's F-I curve and BAC firing.

The densities and channel kinetics of the default cell are Hay et al.'s (2011) published
values and stay fixed; what ``scripts/make_l5_morphology.py`` leaves free is the shape (soma
size, basal and trunk diameters, the trunk's length to the main bifurcation, obliques, tuft):
see :class:`make_l5_morphology.Shape`. Each candidate is built with the default template's
biophysics (the geometry block replaced), in a child process of its own, and measured with the
protocols of ``scripts/hay_validation.py``:

* F-I: somatic steps at ``--amps`` (default 0.3, 0.6, 1.0, 1.9 nA) of ``--step-ms``, dt
  ``--fi-dt``, against the legacy Hay cell's rates;
* BAC: Hay's protocol (1.9 nA 5 ms somatic step, 0.5 nA EPSP-shaped current on the trunk at
  ~620 um, each alone and together), dt ``--dt``.

``--coarse`` screens with a cheaper segmentation (``nseg = 1 + 2*int(L/40)``); the winner is
confirmed with the template's rule and 1 s steps (``scripts/hay_validation.py``). Candidates
are named ``key=value`` lists, one per ``--cand`` (values as Python literals)::

    python scripts/fit_l5_morphology.py --coarse --step-ms 500 \\
        --cand soma_radius_um=12,trunk_diam_um=(4.5,2.0),trunk_length_um=700 --out fit.jsonl

Every result is appended to ``--out`` (JSON lines) and printed as one table row.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import make_l5_morphology as morph  # noqa: E402

NSEG_RULE = "forsec all { nseg = 1 + 2*int(L/10) }"
COARSE_RULE = "forsec all { nseg = 1 + 2*int(L/40) }"
LEGACY_FI_HZ = {0.4: 4.0, 0.6: 8.5, 0.8: 11.5, 1.0: 13.5, 1.5: 17.0, 1.9: 19.0, 2.5: 22.0}

CHILD = r"""
import json, os, resource, sys
sys.path.insert(0, sys.argv[1])
import hay_validation as hv
from builder.core.components import resolve_cell
from builder.core.mechanisms import compiled_mechanisms
from builder.recipes.l5_params import load_params
args = json.loads(sys.argv[2])
spec = resolve_cell(load_params(hv.ROOT / "params" / "L5NetParams.json"))
lib = compiled_mechanisms(spec.mod_files)
os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
import neuron
from neuron import h
from builder.simulators.neuron.runner import _steady_state_init
neuron.load_mechanisms(str(lib))
h.load_file("stdrun.hoc")
h.load_file(args["template"])
_steady_state_init(h)
c = h.L5PCtemplate()
h.celsius, h.v_init = hv.CELSIUS, -80
out = {"nseg": sum(s.nseg for s in c.all)}
h.distance(0, c.soma[0](0))
out["max_apic_dist"] = max(h.distance(s(1)) for s in c.apical)
out["passive"] = hv.passive(h, c, args["fi_dt"], step_ms=250.0)
out["fi"] = {str(k): v for k, v in hv.fi_curve(h, c, args["amps"], args["step_ms"],
                                               args["fi_dt"]).items()}
b = hv.bac(h, c, args["dt"], soma_nA=1.9, dend_nA=0.5)
out["bac"] = {k: {"spikes": b[k]["spikes"], "plateau_ms": round(b[k]["plateau_ms"], 1)}
              for k in ("soma", "dend", "both")}
out["bac"]["site_um"] = b["site_um"]
import numpy as np
tb = b["both"]["t"]
out["bac"]["soma_plateau_mV"] = float(np.median(b["both"]["v_soma"][(tb >= 10) & (tb < 30)]))
ru = resource.getrusage(resource.RUSAGE_SELF)
out["cpu_s"] = ru.ru_utime + ru.ru_stime
print("RESULT " + json.dumps(out))
"""


def parse_candidate(text: str) -> dict:
    """``a=1,b=(2,3)`` -> ``{"a": 1, "b": (2, 3)}`` (values are Python literals)."""
    out: dict = {}
    key = None
    depth = 0
    token = ""
    for ch in text + ",":
        depth += ch == "("
        depth -= ch == ")"
        if ch == "=" and depth == 0 and key is None:
            key, token = token.strip(), ""
        elif ch == "," and depth == 0:
            if key is None:
                raise SystemExit(f"--cand {text!r}: expected key=value, got {token!r}")
            out[key] = ast.literal_eval(token.strip())
            key, token = None, ""
        else:
            token += ch
    fields = {f.name for f in dataclasses.fields(morph.Shape)}
    unknown = set(out) - fields
    if unknown:
        raise SystemExit(f"--cand {text!r}: unknown {sorted(unknown)}; valid: {sorted(fields)}")
    return out


def template_text(shape: morph.Shape, coarse: bool) -> tuple[str, dict]:
    """The default template with ``shape``'s geometry (and the coarse nseg rule if asked)."""
    tree, geom, totals = morph.make_geometry(morph.SEED, shape)
    block = morph.hoc_block(tree, geom, totals, morph.SEED, shape)
    path = morph.HOC_PATHS[0]
    text = morph.render_template(path.read_text(), block, path)
    assert NSEG_RULE in text, "the template's nseg rule moved"
    if coarse:
        text = text.replace(NSEG_RULE, COARSE_RULE)
    return text, totals


def evaluate(changes: dict, opts: dict) -> dict:
    """Build and measure one candidate in a child process; return its numbers."""
    shape = dataclasses.replace(morph.Shape(), **changes)
    try:
        text, totals = template_text(shape, opts["coarse"])
    except SystemExit as exc:  # a shape that cannot hold the fixed lengths
        return {"changes": changes, "error": str(exc)}
    with tempfile.TemporaryDirectory(prefix="l5fit-") as tmp:
        tpl = Path(tmp) / "L5PCtemplate.hoc"
        tpl.write_text(text)
        args = {
            "template": str(tpl),
            "amps": opts["amps"],
            "step_ms": opts["step_ms"],
            "fi_dt": opts["fi_dt"],
            "dt": opts["dt"],
        }
        t0 = time.time()
        r = subprocess.run(
            [sys.executable, "-c", CHILD, str(SCRIPTS), json.dumps(args)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode or not lines:
        return {"changes": changes, "error": r.stderr[-2000:]}
    out = json.loads(lines[-1][len("RESULT ") :])
    out.update(changes=changes, wall_s=time.time() - t0, totals=totals, opts=opts)
    out["score"] = score(out)
    return out


def fi_error(res: dict) -> float:
    """Largest relative F-I error against the legacy cell over the measured currents >= 0.6."""
    errs = [
        abs(rate - LEGACY_FI_HZ[float(a)]) / LEGACY_FI_HZ[float(a)]
        for a, rate in res["fi"].items()
        if float(a) >= 0.6 and float(a) in LEGACY_FI_HZ
    ]
    return max(errs) if errs else float("nan")


def bac_ok(res: dict) -> bool:
    b = res["bac"]
    return (
        b["soma"]["spikes"] == 1
        and b["dend"]["spikes"] == 0
        and b["both"]["spikes"] >= 3
        and b["both"]["plateau_ms"] >= 10 > b["soma"]["plateau_ms"]
    )


def score(res: dict) -> float:
    """Lower is better: F-I error, plus 1 for a failed BAC, plus 1 for a wrong threshold."""
    fi = res["fi"]
    thr_bad = fi.get("0.3", 0) > 0 or fi.get("0.5", 1) == 0
    return fi_error(res) + (0.0 if bac_ok(res) else 1.0) + (1.0 if thr_bad else 0.0)


def row(res: dict) -> str:
    ch = " ".join(f"{k}={v}" for k, v in res["changes"].items()) or "(committed)"
    if "error" in res:
        return f"{ch}: ERROR {res['error'].strip().splitlines()[-1:]}"
    fi = " ".join(f"{float(a):g}:{r:.1f}" for a, r in res["fi"].items())
    b = res["bac"]
    return (
        f"{ch} | Rin {res['passive']['rin_MOhm']:.1f} rest {res['passive']['rest_mV']:.1f} | "
        f"FI {fi} | err {fi_error(res):.2f} | BAC {b['soma']['spikes']}/{b['dend']['spikes']}/"
        f"{b['both']['spikes']} plat {b['soma']['plateau_ms']:.0f}/{b['both']['plateau_ms']:.0f}"
        f" Vs {b['soma_plateau_mV']:.0f}"
        f" | score {res['score']:.2f} | cpu {res['cpu_s']:.0f}s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cand", action="append", default=[], help="key=value,... of Shape")
    ap.add_argument("--amps", type=float, nargs="+", default=[0.3, 0.6, 1.0, 1.9])
    ap.add_argument("--step-ms", type=float, default=1000.0)
    ap.add_argument("--fi-dt", type=float, default=0.1)
    ap.add_argument("--dt", type=float, default=0.05)
    ap.add_argument("--coarse", action="store_true", help="nseg = 1 + 2*int(L/40)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="append results here (JSON lines)")
    ns = ap.parse_args(argv)
    cands = [parse_candidate(c) for c in ns.cand] or [{}]
    opts = {
        "amps": ns.amps,
        "step_ms": ns.step_ms,
        "fi_dt": ns.fi_dt,
        "dt": ns.dt,
        "coarse": ns.coarse,
    }
    with concurrent.futures.ThreadPoolExecutor(ns.jobs) as pool:
        for res in pool.map(lambda c: evaluate(c, opts), cands):
            print(row(res), flush=True)
            if ns.out is not None:
                with ns.out.open("a") as f:
                    f.write(json.dumps(res) + "\n")
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"children CPU {ru.ru_utime + ru.ru_stime:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
