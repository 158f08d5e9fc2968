#!/usr/bin/env python
"""The default L5 cell against Hay et al. (2011): F-I curve, BAC firing, back-propagation, rest.

Runs the cell alone (the default params' ``cell`` block, 34 degC, started from its settled rest)
under Hay's somatic and dendritic current-injection protocols, prints the numbers and writes
three figures to OUTDIR (default ``docs/``)::

    python scripts/hay_validation.py [OUTDIR] [--params P] [--step-ms 1000] [--dt 0.025]

``--params`` names the params file whose cell is tested: the default cell on the project's own
Hay channel NMODL (``params/L5NetParams.json``) or its twin on BMTK's channels
(``params/L5NetParams_bmtk.json``); both templates are called ``L5PCtemplate``.

* ``hay_fi.png``: firing rate under 1 s somatic steps, beside the legacy Hay cell's rates;
* ``hay_bac.png``: BAC firing (somatic 5 ms step, apical EPSP-shaped current ~620 um from the
  soma, both with a 5 ms delay), soma and apical trunk traces for the three conditions;
* ``hay_bap.png``: back-propagating AP amplitude along the apical trunk, and the hot-zone Ca
  spike under a strong distal input.

The protocol functions are also used by ``tests/test_hay_cell.py`` (in a child process, with
shorter steps).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The legacy project's Hay cell under 1 s somatic steps at 34 degC (Hz by nA).
LEGACY_FI_HZ = {0.4: 4.0, 0.6: 8.5, 0.8: 11.5, 1.0: 13.5, 1.5: 17.0, 1.9: 19.0, 2.5: 22.0}
CELSIUS = 34.0
SETTLE_MS = 50.0  # quiet time before any stimulus (the run starts from the settled rest)
SPIKE_MV = -20.0  # upward crossing = one somatic spike
BAC_SITE_UM = 620.0  # Hay's dendritic injection site on the trunk
HOT_ZONE_UM = (685.0, 885.0)


# ----------------------------------------------------------------------------- the cell
def load_cell(params: str | os.PathLike = ROOT / "params" / "L5NetParams.json"):
    """Compile and load the params' cell; return ``(h, cell)`` ready to run at 34 degC."""
    from builder.core.components import resolve_cell
    from builder.core.mechanisms import compiled_mechanisms
    from builder.recipes.l5_params import load_params

    spec = resolve_cell(load_params(params))
    lib = compiled_mechanisms(spec.mod_files)
    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    import neuron
    from neuron import h

    from builder.simulators.neuron.runner import _steady_state_init

    neuron.load_mechanisms(str(lib))
    h.load_file("stdrun.hoc")
    h.load_file("import3d.hoc")
    h.load_file(str(spec.template_file))
    _steady_state_init(h)
    cell = getattr(h, spec.template_name)()
    h.celsius = CELSIUS
    h.v_init = -80
    return h, cell


def trunk(h, cell) -> list[tuple[object, float]]:
    """The main apical trunk as ``(segment, path distance um)``: from the apical root, always
    into the thickest apical child, to a terminal."""
    apical = {s.name() for s in cell.apical}
    sec = next(s for s in cell.apical if h.SectionRef(sec=s).parent == cell.soma[0])
    h.distance(0, cell.soma[0](0))
    out = []
    while True:
        out += [(seg, h.distance(seg)) for seg in sec]
        kids = [k for k in h.SectionRef(sec=sec).child if k.name() in apical]
        if not kids:
            return out
        sec = max(kids, key=lambda k: k(0.05).diam)


def trunk_site(h, cell, dist_um: float):
    """The trunk segment nearest ``dist_um`` from the soma, and its distance."""
    return min(trunk(h, cell), key=lambda sd: abs(sd[1] - dist_um))


def _spikes(t: np.ndarray, v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    up = t[1:][(v[:-1] < SPIKE_MV) & (v[1:] >= SPIKE_MV)]
    return up[(up >= lo) & (up < hi)]


def _epsp_current(h, seg, onset_ms: float, imax_nA: float, tstop_ms: float, dt: float):
    """An EPSP-shaped current (rise 0.5 ms, decay 5 ms, peak ``imax_nA``) into ``seg``."""
    ic = h.IClamp(seg)
    ic.delay = 0
    ic.dur = 1e9
    t = np.arange(0.0, tstop_ms + dt, dt)
    s = np.clip(t - onset_ms, 0, None)
    shape = np.exp(-s / 5.0) - np.exp(-s / 0.5)
    shape = np.where(t >= onset_ms, shape / shape.max(), 0.0) * imax_nA
    tv, iv = h.Vector(t), h.Vector(shape)
    iv.play(ic._ref_amp, tv, True)
    return ic, tv, iv


# ----------------------------------------------------------------------------- protocols
def passive(h, cell, dt: float = 0.025, step_ms: float = 500.0) -> dict[str, float]:
    """Somatic rest (mV) and steady-state input resistance (MOhm, -0.1 nA for ``step_ms``,
    the voltage averaged over its last 50 ms)."""
    ic = h.IClamp(cell.soma[0](0.5))
    ic.delay, ic.dur, ic.amp = SETTLE_MS, step_ms, -0.1
    v = h.Vector().record(cell.soma[0](0.5)._ref_v)
    t = h.Vector().record(h._ref_t)
    h.steps_per_ms, h.dt, h.tstop = 1 / dt, dt, SETTLE_MS + step_ms + 5.0
    h.run()
    tt, vv = np.array(t), np.array(v)
    rest = float(vv[tt < SETTLE_MS].mean())
    end = float(vv[(tt > SETTLE_MS + step_ms - 50) & (tt < SETTLE_MS + step_ms)].mean())
    return {"rest_mV": rest, "rin_MOhm": (end - rest) / -0.1}


def fi_curve(h, cell, amps_nA, step_ms: float = 1000.0, dt: float = 0.025) -> dict[float, float]:
    """Firing rate (Hz) over a ``step_ms`` somatic step of each amplitude."""
    ic = h.IClamp(cell.soma[0](0.5))
    ic.delay, ic.dur = SETTLE_MS, step_ms
    v = h.Vector().record(cell.soma[0](0.5)._ref_v)
    t = h.Vector().record(h._ref_t)
    out = {}
    for amp in amps_nA:
        ic.amp = amp
        h.steps_per_ms, h.dt, h.tstop = 1 / dt, dt, SETTLE_MS + step_ms + 20.0
        h.run()
        n = _spikes(np.array(t), np.array(v), SETTLE_MS, SETTLE_MS + step_ms).size
        out[float(amp)] = n / (step_ms / 1000.0)
    return out


def threshold_step(
    h, cell, dt: float = 0.025, amps_nA=(1.9, 2.0, 2.1, 2.2, 2.4, 2.6, 3.0, 3.5, 4.0, 5.0)
) -> float:
    """The smallest 5 ms somatic step of ``amps_nA`` that fires the cell (Hay's BAC protocol
    uses 1.9 nA, which gives his cell exactly one spike)."""
    ic = h.IClamp(cell.soma[0](0.5))
    ic.delay, ic.dur = SETTLE_MS, 5.0
    v = h.Vector().record(cell.soma[0](0.5)._ref_v)
    t = h.Vector().record(h._ref_t)
    for amp in amps_nA:
        ic.amp = amp
        h.steps_per_ms, h.dt, h.tstop = 1 / dt, dt, SETTLE_MS + 60.0
        h.run()
        if _spikes(np.array(t), np.array(v), SETTLE_MS, SETTLE_MS + 60).size:
            return float(amp)
    raise RuntimeError(f"no 5 ms step of {amps_nA} nA fires the cell")


def bac(
    h,
    cell,
    dt: float = 0.025,
    soma_nA: float | None = None,
    dend_nA: float = 0.5,
    site_um: float = BAC_SITE_UM,
) -> dict:
    """Hay's BAC protocol: somatic 5 ms step (by default the smallest that fires the cell),
    EPSP-shaped current on the trunk ``site_um`` (default ~620 um) from the soma 5 ms later,
    each alone and together. Somatic spikes within 100 ms, and the time (ms) the hot-zone
    trunk spends above -30 mV (the dendritic Ca plateau), per condition."""
    if soma_nA is None:
        soma_nA = threshold_step(h, cell, dt)
    site, site_um = trunk_site(h, cell, site_um)
    hot, hot_um = trunk_site(h, cell, sum(HOT_ZONE_UM) / 2)
    t0, tstop = SETTLE_MS, SETTLE_MS + 120.0
    soma = h.IClamp(cell.soma[0](0.5))
    soma.delay, soma.dur = t0, 5.0
    vs = h.Vector().record(cell.soma[0](0.5)._ref_v)
    vd = h.Vector().record(site._ref_v)
    vh = h.Vector().record(hot._ref_v)
    t = h.Vector().record(h._ref_t)
    out: dict = {"site_um": site_um, "hot_um": hot_um, "soma_nA": soma_nA, "dend_nA": dend_nA}
    for name, s_amp, d_amp in (("soma", soma_nA, 0.0), ("dend", 0.0, dend_nA),
                               ("both", soma_nA, dend_nA)):  # fmt: skip
        soma.amp = s_amp
        keep = _epsp_current(h, site, t0 + 5.0, d_amp, tstop, dt)
        h.steps_per_ms, h.dt, h.tstop = 1 / dt, dt, tstop
        h.run()
        tt = np.array(t)
        hv = np.array(vh)
        spikes = _spikes(tt, np.array(vs), t0, t0 + 100)
        out[name] = {
            "spikes": int(spikes.size),
            "spike_ms": [float(x - t0) for x in spikes],
            "plateau_ms": float(((hv > -30) & (tt >= t0)).sum() * dt),
            "t": tt - t0,
            "v_soma": np.array(vs),
            "v_site": np.array(vd),
            "v_hot": hv,
        }
        del keep
    return out


def bap(h, cell, dt: float = 0.025, soma_nA: float | None = None, distal_nA: float = 1.0) -> dict:
    """AP amplitude (peak - rest, mV) along the trunk for one somatic AP (5 ms step), and the
    hot-zone response to a strong EPSP-shaped current at the distal end of the zone."""
    if soma_nA is None:
        soma_nA = threshold_step(h, cell, dt)
    segs = trunk(h, cell)
    recs = [h.Vector().record(seg._ref_v) for seg, _ in segs]
    t = h.Vector().record(h._ref_t)
    soma = h.IClamp(cell.soma[0](0.5))
    soma.delay, soma.dur, soma.amp = SETTLE_MS, 5.0, soma_nA
    h.steps_per_ms, h.dt, h.tstop = 1 / dt, dt, SETTLE_MS + 60.0
    h.run()
    tt = np.array(t)
    before = tt < SETTLE_MS
    # the first AP only: up to 5 ms after the first somatic spike (later peaks are dendritic
    # spikes or a burst, not the back-propagating AP)
    first = _spikes(tt, np.array(recs[0]), SETTLE_MS, SETTLE_MS + 60)
    window = (tt >= SETTLE_MS) & (tt <= (first[0] if first.size else SETTLE_MS + 55) + 5)
    amps = [float(r[window].max() - r[before].mean()) for r in map(np.array, recs)]
    soma.amp = 0.0
    distal, distal_um = trunk_site(h, cell, HOT_ZONE_UM[1])
    hot, hot_um = trunk_site(h, cell, sum(HOT_ZONE_UM) / 2)
    vh = h.Vector().record(hot._ref_v)
    keep = _epsp_current(h, distal, SETTLE_MS, distal_nA, SETTLE_MS + 120.0, dt)
    h.steps_per_ms, h.dt, h.tstop = 1 / dt, dt, SETTLE_MS + 120.0
    h.run()
    del keep
    tt, hv = np.array(t), np.array(vh)
    return {
        "dist_um": [d for _, d in segs],
        "amp_mV": amps,
        "ca_site_um": distal_um,
        "ca_hot_um": hot_um,
        "ca_plateau_ms": float(((hv > -30) & (tt >= SETTLE_MS)).sum() * dt),
        "ca_peak_mV": float(hv[tt >= SETTLE_MS].max()),
        "ca_t": tt - SETTLE_MS,
        "ca_v": hv,
    }


# ----------------------------------------------------------------------------- report
def _save(fig, png: Path) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, png)


def figures(outdir: Path, fi: dict, bac_res: dict, bap_res: dict) -> list[Path]:
    """Write the three figures; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(list(fi), list(fi.values()), "o-", label="ours")
    ax.plot(list(LEGACY_FI_HZ), list(LEGACY_FI_HZ.values()), "s--", color="tab:red",
            label="legacy Hay cell")  # fmt: skip
    ax.set_xlabel("somatic step (nA, 1 s)")
    ax.set_ylabel("rate (Hz)")
    ax.set_title("F-I at 34 degC", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, outdir / "hay_fi.png")
    written.append(outdir / "hay_fi.png")
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharey=True)
    for ax, name in zip(axes, ("soma", "dend", "both"), strict=True):
        r = bac_res[name]
        ax.plot(r["t"], r["v_soma"], lw=0.8, label="soma")
        ax.plot(r["t"], r["v_hot"], lw=0.8, label=f"trunk {bac_res['hot_um']:.0f} um")
        ax.set_xlim(-5, 100)
        ax.set_title(f"{name}: {r['spikes']} somatic spike(s)", fontsize=10)
        ax.set_xlabel("ms")
    axes[0].set_ylabel("mV")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, outdir / "hay_bac.png")
    written.append(outdir / "hay_bac.png")
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(bap_res["dist_um"], bap_res["amp_mV"], ".")
    a1.axvspan(*HOT_ZONE_UM, color="tab:orange", alpha=0.2, label="Ca hot zone")
    a1.set_xlabel("distance from soma (um)")
    a1.set_ylabel("bAP amplitude (mV)")
    a1.legend(fontsize=8)
    a2.plot(bap_res["ca_t"], bap_res["ca_v"], lw=0.8)
    a2.set_xlim(-5, 100)
    a2.set_title(f"trunk {bap_res['ca_hot_um']:.0f} um, strong input at "
                 f"{bap_res['ca_site_um']:.0f} um", fontsize=10)  # fmt: skip
    a2.set_xlabel("ms")
    a2.set_ylabel("mV")
    fig.tight_layout()
    _save(fig, outdir / "hay_bap.png")
    written.append(outdir / "hay_bap.png")
    plt.close(fig)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", nargs="?", type=Path, default=ROOT / "docs")
    ap.add_argument("--params", type=Path, default=ROOT / "params" / "L5NetParams.json")
    ap.add_argument("--step-ms", type=float, default=1000.0)
    ap.add_argument("--dt", type=float, default=0.025)
    ns = ap.parse_args(argv)
    h, cell = load_cell(ns.params)
    pas = passive(h, cell, ns.dt)
    print(f"rest {pas['rest_mV']:.1f} mV, input resistance {pas['rin_MOhm']:.1f} MOhm")
    amps = [0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 1.9, 2.0, 2.5]
    fi = fi_curve(h, cell, amps, ns.step_ms, ns.dt)
    print("F-I (nA: ours Hz / legacy Hz):")
    for a, r in fi.items():
        print(f"  {a:4.1f}: {r:5.1f} / {LEGACY_FI_HZ.get(a, float('nan')):5.1f}")
    b = bac(h, cell, ns.dt)
    print(f"BAC (soma {b['soma_nA']} nA 5 ms, EPSP {b['dend_nA']} nA at {b['site_um']:.0f} um, "
          f"hot zone probe {b['hot_um']:.0f} um): "
          + ", ".join(f"{k} {b[k]['spikes']} spikes / plateau {b[k]['plateau_ms']:.1f} ms"
                      for k in ("soma", "dend", "both")))  # fmt: skip
    print("  BAC burst spike times (ms after the somatic step): "
          + ", ".join(f"{x:.1f}" for x in b["both"]["spike_ms"]))  # fmt: skip
    p = bap(h, cell, ns.dt)
    d, a = np.array(p["dist_um"]), np.array(p["amp_mV"])
    for lo in range(0, int(d.max()), 200):
        sel = (d >= lo) & (d < lo + 200)
        if sel.any():
            print(f"  bAP {lo:4d}-{lo + 200:4d} um: {a[sel].mean():5.1f} mV")
    print(
        f"strong distal input: hot zone peak {p['ca_peak_mV']:.1f} mV, "
        f"{p['ca_plateau_ms']:.1f} ms above -30 mV"
    )
    for png in figures(ns.outdir, fi, b, p):
        print(f"figure: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
