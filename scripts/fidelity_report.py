#!/usr/bin/env python
"""Our default cell under the legacy default input, beside what the legacy pipeline reported.

Builds the L5 network of each params file (by default ``params/L5NetParams.json``, the default
cell on the project's Hay channels, and ``params/L5NetParams_bmtk.json``, the same cell on BMTK's
channels; both with the legacy default input) for a few seeds, runs each in NEURON, and measures
the output the legacy users look at: firing rate, ISI coefficient of variation and median
somatic membrane potential, over the run after a warm-up, and the simulation's cost (CPU
seconds of the ``run_network.py`` process per simulated second). Prints a table and writes a
figure (the first params' somatic Vm excerpt and ISI histogram, the three numbers per seed and
params beside the legacy pipeline's)::

    python scripts/fidelity_report.py [--params P ...] [--seconds 5] [--seeds 1 2 3]
                                      [--warmup-ms 500] [--png docs/fidelity.png]
                                      [--workdir DIR] [-j 2]

Legacy reference (the legacy pipeline with Hay et al.'s 2011 cell and NMODL, the same input
statistics): 20 Hz, ISI CV 0.90, median somatic V -60.5 mV.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEGACY = {"rate_hz": 20.0, "isi_cv": 0.90, "median_v_mV": -60.5}


DEFAULT_PARAMS = [ROOT / "params" / "L5NetParams.json", ROOT / "params" / "L5NetParams_bmtk.json"]


def _run(cmd: list[str], cwd: Path) -> float:
    """Run ``cmd``; return the CPU seconds (user + system) it and its children used."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"failed: {' '.join(cmd)}\n{log.read()}")
    return usage.ru_utime + usage.ru_stime


def simulate(workdir: Path, params: Path, seed: int, seconds: float) -> tuple[Path, float]:
    """Build and run the network of ``params`` for one seed; return its output directory and
    the CPU seconds of the run."""
    out = workdir / f"{params.stem}-seed{seed}"
    py = sys.executable
    _run(
        [py, str(ROOT / "build_network.py"), str(params), str(seed), "-o", str(out), "-q",
         "--force", "--set", f"time.stop={seconds}"],
        workdir,
    )  # fmt: skip
    cpu_s = _run([py, str(ROOT / "run_network.py"), str(out), "-q", "--no-progress"], workdir)
    return out, cpu_s


def measure(outdir: Path, warmup_ms: float) -> dict[str, object]:
    """Rate, ISI CV and median somatic V after ``warmup_ms``, plus the traces for the figure."""
    with h5py.File(outdir / "output" / "spikes.h5", "r") as f:
        grp = f["spikes"]["biophysical"]
        t = np.sort(grp["timestamps"][()]) if "timestamps" in grp else np.zeros(0)
    with h5py.File(next((outdir / "output").glob("v_soma*.h5")), "r") as f:
        rep = f["report"]["biophysical"]
        v = np.asarray(rep["data"][()], dtype=float).ravel()
        tmap = rep["mapping"]["time"][()]
    time_ms = tmap[0] + tmap[2] * np.arange(v.size)
    tstop = float(time_ms[-1] + tmap[2])
    t = t[t >= warmup_ms]
    isi = np.diff(t)
    window = time_ms >= warmup_ms
    return {
        "rate_hz": t.size / ((tstop - warmup_ms) / 1000.0),
        "isi_cv": float(isi.std() / isi.mean()) if isi.size > 1 else float("nan"),
        "median_v_mV": float(np.median(v[window])),
        "isi_ms": isi,
        "time_ms": time_ms,
        "v_mV": v,
        "spikes_ms": t,
    }


def figure(results: dict[str, dict[int, dict]], png: Path, warmup_ms: float) -> None:
    """``results[label][seed]`` as :func:`measure` returns it; the first label's traces."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    main_runs = results[labels[0]]
    seeds = sorted(main_runs)
    first = main_runs[seeds[0]]
    fig = plt.figure(figsize=(11, 6.5))
    ax_v = fig.add_axes((0.07, 0.58, 0.9, 0.36))
    t0 = warmup_ms
    sel = (first["time_ms"] >= t0) & (first["time_ms"] < t0 + 2000)
    ax_v.plot(first["time_ms"][sel] / 1000, first["v_mV"][sel], lw=0.5, color="0.2")
    ax_v.axhline(LEGACY["median_v_mV"], color="tab:red", ls="--", lw=1,
                 label=f"legacy median {LEGACY['median_v_mV']} mV")  # fmt: skip
    ax_v.axhline(first["median_v_mV"], color="tab:blue", ls="--", lw=1,
                 label=f"ours median {first['median_v_mV']:.1f} mV")  # fmt: skip
    ax_v.set_xlabel("time (s)")
    ax_v.set_ylabel("somatic V (mV)")
    ax_v.set_title(f"{labels[0]} under the legacy default input (seed {seeds[0]}, 2 s excerpt)")
    ax_v.legend(loc="upper right", fontsize=8)

    ax_isi = fig.add_axes((0.07, 0.08, 0.25, 0.36))
    isi = np.concatenate([main_runs[s]["isi_ms"] for s in seeds])
    ax_isi.hist(isi, bins=np.linspace(0, max(300.0, np.percentile(isi, 98)), 40), color="tab:blue")
    ax_isi.set_xlabel("ISI (ms)")
    ax_isi.set_ylabel("count")
    ax_isi.set_title(f"ISI histogram ({labels[0]}, all seeds)", fontsize=10)

    keys = [("rate_hz", "rate (Hz)"), ("isi_cv", "ISI CV"), ("median_v_mV", "median V (mV)")]
    names = [*labels, "legacy"]
    for k, (key, label) in enumerate(keys):
        ax = fig.add_axes((0.42 + k * 0.2, 0.08, 0.14, 0.36))
        for i, lab in enumerate(labels):
            ours = [results[lab][s][key] for s in sorted(results[lab])]
            ax.scatter(np.full(len(ours), i), ours, color=f"C{i}", zorder=3)
        ax.scatter([len(labels)], [LEGACY[key]], color="tab:red", marker="s", zorder=3)
        ax.set_xticks(range(len(names)), [n.removeprefix("L5NetParams") or "default"
                                          for n in names], fontsize=7, rotation=20)  # fmt: skip
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, png)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--params",
        type=Path,
        nargs="+",
        default=DEFAULT_PARAMS,
        help="params files to compare (default: the Hay and the BMTK-channel cell)",
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="biological time per seed (s)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--warmup-ms", type=float, default=500.0)
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "fidelity.png")
    ap.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp dir)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="runs at once")
    ns = ap.parse_args(argv)
    jobs = [(p.resolve(), s) for s in ns.seeds for p in ns.params]  # interleaved: same load
    with tempfile.TemporaryDirectory(prefix="l5net-fidelity-") as tmp:
        work = ns.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(ns.jobs) as pool:
            runs = list(pool.map(lambda job: simulate(work, *job, ns.seconds), jobs))
        results: dict[str, dict[int, dict]] = {}
        for (params, seed), (out, cpu_s) in zip(jobs, runs, strict=True):
            r = measure(out, ns.warmup_ms)
            r["cpu_s_per_s"] = cpu_s / ns.seconds
            results.setdefault(params.stem, {})[seed] = r
    cols = [*LEGACY, "cpu_s_per_s"]
    print(f"{'':34}{'rate (Hz)':>10}{'ISI CV':>9}{'median V (mV)':>15}{'CPU s / sim s':>15}")
    for label, runs_ in results.items():
        for s in ns.seeds:
            r = runs_[s]
            print(f"{label + f' seed {s}':34}{r['rate_hz']:10.1f}{r['isi_cv']:9.2f}"
                  f"{r['median_v_mV']:15.1f}{r['cpu_s_per_s']:15.1f}")  # fmt: skip
        for name, agg in (("mean", np.mean), ("sd", np.std)):
            vals = [agg([runs_[s][k] for s in ns.seeds]) for k in cols]
            print(f"{label + ' ' + name:34}{vals[0]:10.1f}{vals[1]:9.2f}{vals[2]:15.1f}"
                  f"{vals[3]:15.1f}")  # fmt: skip
    print(f"{'legacy (Hay cell, legacy NMODL)':34}{LEGACY['rate_hz']:10.1f}{LEGACY['isi_cv']:9.2f}"
          f"{LEGACY['median_v_mV']:15.1f}")  # fmt: skip
    print(
        f"({ns.seconds:g} s per seed, first {ns.warmup_ms:g} ms excluded; CPU time of "
        f"run_network.py, {ns.jobs} runs at once)"
    )
    figure(results, ns.png, ns.warmup_ms)
    print(f"figure: {ns.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
