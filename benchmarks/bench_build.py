#!/usr/bin/env python
"""Time our builder against the incumbent (legacy-style) build of the same L5 network.

Usage::

    python benchmarks/bench_build.py [--params params/L5NetParams.json] [--seed 123]
                                     [--repeat 3] [--stop-s S] [--keep]

Steps:

1. Prepare (untimed): write a params copy if ``--stop-s`` overrides ``time.stop``; ask our
   builder for the cell's segment table (this derives and caches it, compiling mechanisms if
   needed) and write it as CSV for the legacy side; run one warm-up build of ours and import
   the legacy side's libraries once, so that both sides start with warm file caches.
2. Time each side as a whole process (interpreter start and imports included), ``--repeat``
   times, alternating ours and legacy, each into a fresh temporary directory. Wall time is
   measured around the child; CPU time (user + system) and peak RSS are the child's own, as
   returned by ``os.wait4`` for that child alone (not the cumulative ``RUSAGE_CHILDREN``).
   CPU time is the steadier figure on a busy machine.
3. Check the outputs: node counts per population must be equal (and equal to the SPEC
   section 3 counts); synapse counts per edge population must agree within 4 standard
   deviations of the difference of two independent draws (computed exactly from the
   divergence distributions); spike totals must agree within a factor ``SPIKE_RATIO`` (they
   are random on both sides: the inhibitory totals vary by +-10 % from seed to seed, because
   the shared profile is min-max normalised from a noisy spike histogram), which catches gross
   errors such as wrong units or missing populations.

Exit status: 0 if both sides built and the checks passed, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUR_CLI = ROOT / "build_network.py"
LEGACY = Path(__file__).resolve().parent / "legacy_build.py"
PATH_KEYS = (
    ("cell", "segments_file"),
    ("cell", "components_dir"),
    ("file_current_clamp", "input_file"),
)
#: Spike totals are random on both sides; this only catches gross errors (units, rates).
SPIKE_RATIO = 1.5
#: Synapse totals must agree within this many standard deviations of their difference.
SYN_SIGMAS = 4.0

PREPARE = """
import json, sys
from builder.commands.build import SimulationBuilder
b = SimulationBuilder(sys.argv[1], int(sys.argv[2]))
b.segment_table.to_csv(sys.argv[3])
with open(sys.argv[4], "w") as f:
    json.dump(b.check(), f)
"""
LEGACY_IMPORTS = "import bmtk.builder, h5py, pandas, scipy.signal, scipy.stats"


@dataclass
class Run:
    """One timed child process."""

    side: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    returncode: int
    outdir: Path
    log: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def run_child(cmd: list[str], log: Path, cwd: Path) -> tuple[float, float, float, int]:
    """Run ``cmd`` to completion; return (wall s, CPU s (user + sys), peak RSS MB, exit status).

    ``os.wait4`` reports the resource usage of exactly this child (and any grandchildren it
    waited for), so the peak RSS is per run, not a maximum over everything started so far.
    """
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024.0, proc.returncode  # Linux: ru_maxrss in KiB


def tail(path: Path, n: int = 15) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join("    " + line for line in lines[-n:])


def resolve_params(arg: str) -> Path:
    """The params file as given (relative to the working directory), else in the project."""
    for candidate in (Path(arg), ROOT / arg):
        if candidate.is_file():
            return candidate.resolve()
    raise SystemExit(f"bench_build: params file {arg!r} not found (also looked in {ROOT})")


def params_copy(src: Path, stop_s: float, dest: Path) -> Path:
    """Copy ``src`` to ``dest`` with ``time.stop`` replaced; relative file paths made absolute."""
    p = json.loads(src.read_text())
    p["time"]["stop"] = stop_s
    for block, key in PATH_KEYS:
        value = (p.get(block) or {}).get(key)
        if isinstance(value, str) and value != "None" and not Path(value).is_absolute():
            if (src.parent / value).exists():
                p[block][key] = str((src.parent / value).resolve())
    dest.write_text(json.dumps(p, indent=2))
    return dest


def read_counts(outdir: Path) -> dict[str, dict[str, int]]:
    """Nodes per population, synapses per edge population and spikes per spike file."""
    nodes, syns, spikes = {}, {}, {}
    for f in sorted((outdir / "network").glob("*_nodes.h5")):
        with h5py.File(f, "r") as h:
            for pop, g in h["nodes"].items():
                nodes[pop] = int(g["node_id"].shape[0])
    for f in sorted((outdir / "network").glob("*_edges.h5")):
        with h5py.File(f, "r") as h:
            for pop, g in h["edges"].items():
                group_ids = np.asarray(g["edge_group_id"][()])
                total = 0
                for gid in np.unique(group_ids):  # one synapse per edge unless nsyns says more
                    grp = g[str(gid)]
                    if "nsyns" in grp:
                        total += int(np.asarray(grp["nsyns"][()], dtype=np.int64).sum())
                    else:
                        total += int((group_ids == gid).sum())
                syns[pop.split("_to_")[0]] = total
    for f in sorted(outdir.glob("*_spikes.h5")):
        with h5py.File(f, "r") as h:
            for pop, g in h["spikes"].items():
                spikes[pop] = int(g["timestamps"].shape[0])
    return {"nodes": nodes, "synapses": syns, "spikes": spikes}


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def clipped_normal_moments(m: float, s: float, lo: int, hi: int) -> tuple[float, float]:
    """Mean and variance of ``int(clip(N(m, s), lo, hi))`` (SPEC section 2), exactly.

    With integer bounds >= 0, truncation toward zero gives k for x in [k, k+1), ``lo`` for
    x < lo + 1 and ``hi`` for x >= hi.
    """
    ks = np.arange(lo, hi + 1)
    upper = [_normal_cdf((k + 1 - m) / s) if k < hi else 1.0 for k in ks]
    lower = [_normal_cdf((k - m) / s) if k > lo else 0.0 for k in ks]
    prob = np.array(upper) - np.array(lower)
    mean = float((prob * ks).sum())
    return mean, float((prob * (ks - mean) ** 2).sum())


def expected_synapses(p: dict[str, Any], counts: dict[str, int]) -> dict[str, tuple[float, float]]:
    """(mean, variance) of the synapse total of each input population."""
    div = p["divergence"]
    lo, hi = int(div["exc"]["min"]), int(div["exc"]["max"])
    exc = ((lo + hi) / 2.0, ((hi - lo + 1) ** 2 - 1) / 12.0)  # discrete uniform
    mom = {
        k: clipped_normal_moments(
            float(div[k]["m"]), float(div[k]["s"]), int(div[k]["min"]), int(div[k]["max"])
        )
        for k in ("peri_inh", "basal_inh", "apic_inh")
    }
    parts = {
        "exc_stim": [(counts["n_dend_exc"] + counts["n_apic_exc"], exc)],
        "prox_inh_stim": [(counts["n_soma_inh"] + counts["n_prox_dend_inh"], mom["peri_inh"])],
        "dist_inh_stim": [
            (counts["n_dend_inh"], mom["basal_inh"]),
            (counts["n_apic_inh"], mom["apic_inh"]),
        ],
    }
    return {
        pop: (sum(n * mv[0] for n, mv in items), sum(n * mv[1] for n, mv in items))
        for pop, items in parts.items()
    }


def expected_nodes(counts: dict[str, int]) -> dict[str, int]:
    return {
        "biophysical": 1,
        "exc_stim": counts["n_dend_exc"] + counts["n_apic_exc"],
        "prox_inh_stim": counts["n_soma_inh"] + counts["n_prox_dend_inh"],
        "dist_inh_stim": counts["n_dend_inh"] + counts["n_apic_inh"],
    }


def compare(ours: dict, legacy: dict, p: dict[str, Any], counts: dict[str, int]) -> list[str]:
    """Print the count rows of the table; return the failed checks."""
    failures = []
    want = expected_nodes(counts)
    for pop in sorted(set(ours["nodes"]) | set(legacy["nodes"]) | set(want)):
        a, b = ours["nodes"].get(pop), legacy["nodes"].get(pop)
        ok = a == b == want.get(pop)
        print(
            f"{'nodes ' + pop:<28}{a!s:>12}{b!s:>12}  {'ok' if ok else 'MISMATCH'}"
            f" (SPEC {want.get(pop)})"
        )
        if not ok:
            failures.append(f"nodes {pop}: ours {a}, legacy {b}, expected {want.get(pop)}")
    exp = expected_synapses(p, counts)
    for pop in sorted(set(ours["synapses"]) | set(legacy["synapses"])):
        a, b = ours["synapses"].get(pop), legacy["synapses"].get(pop)
        mean, var = exp.get(pop, (float("nan"), float("nan")))
        tol = SYN_SIGMAS * math.sqrt(2.0 * var)
        ok = a is not None and b is not None and abs(a - b) <= tol
        rel = f"{100.0 * (a - b) / b:+.1f} %" if a is not None and b else "n/a"
        print(
            f"{'synapses ' + pop:<28}{a!s:>12}{b!s:>12}  {'ok' if ok else 'MISMATCH'}"
            f" ({rel}; expected {mean:.0f}, tol +-{tol:.0f})"
        )
        if not ok:
            failures.append(f"synapses {pop}: ours {a}, legacy {b}, tolerance {tol:.0f}")
    for pop in sorted(set(ours["spikes"]) | set(legacy["spikes"])):
        a, b = ours["spikes"].get(pop), legacy["spikes"].get(pop)
        ok = bool(a and b) and max(a, b) <= SPIKE_RATIO * min(a, b)
        rel = f"{100.0 * (a - b) / b:+.1f} %" if a is not None and b else "n/a"
        print(f"{'spikes ' + pop:<28}{a!s:>12}{b!s:>12}  {'ok' if ok else 'MISMATCH'} ({rel})")
        if not ok:
            failures.append(f"spikes {pop}: ours {a}, legacy {b}")
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params/L5NetParams.json", help="params JSON")
    ap.add_argument("--seed", type=int, default=123, help="build seed (both sides)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per side")
    ap.add_argument(
        "--stop-s",
        type=float,
        default=None,
        help="override time.stop (seconds) in a temporary params copy",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary outputs")
    ns = ap.parse_args(argv)
    if ns.repeat < 1:
        ap.error("--repeat must be >= 1")

    python = sys.executable
    cwd = Path.cwd()
    params = resolve_params(ns.params)
    work = Path(tempfile.mkdtemp(prefix="bench_build_"))
    try:
        return _bench(ns, python, cwd, params, work)
    finally:
        if ns.keep:
            print(f"outputs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _bench(ns: argparse.Namespace, python: str, cwd: Path, params: Path, work: Path) -> int:
    if ns.stop_s is not None:
        params = params_copy(params, ns.stop_s, work / params.name)
    p = json.loads(params.read_text())
    seed = str(ns.seed)
    print(
        f"params {params} (time.stop {p['time']['stop']} s), seed {seed}, "
        f"{ns.repeat} run(s) per side, python {python}"
    )

    # 1. untimed preparation
    seg_csv, counts_json = work / "segments.csv", work / "counts.json"
    t0 = time.perf_counter()
    prep = subprocess.run(
        [python, "-c", PREPARE, str(params), seed, str(seg_csv), str(counts_json)],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if prep.returncode != 0:
        print(
            f"bench_build: our builder could not derive the segment table:\n{prep.stderr}",
            file=sys.stderr,
        )
        return 1
    counts = json.loads(counts_json.read_text())
    print(f"segment table ready ({time.perf_counter() - t0:.1f} s, untimed): {seg_csv}")
    warm = [
        ("ours", [python, str(OUR_CLI), str(params), seed, "-o", str(work / "warm"), "-q"]),
        ("legacy imports", [python, "-c", LEGACY_IMPORTS]),
    ]
    for side, cmd in warm:
        seconds, _, _, rc = run_child(cmd, work / "warm.log", cwd)
        if rc != 0:
            print(
                f"bench_build: warm-up of {side} failed (exit {rc}):\n{tail(work / 'warm.log')}",
                file=sys.stderr,
            )
            return 1
        print(f"warm-up {side}: {seconds:.2f} s (untimed)")
    shutil.rmtree(work / "warm", ignore_errors=True)

    # 2. timed runs, alternating
    runs: list[Run] = []
    for i in range(ns.repeat):
        for side in ("ours", "legacy"):
            out = work / f"{side}{i}"
            if side == "ours":
                cmd = [python, str(OUR_CLI), str(params), seed, "-o", str(out), "-q"]
            else:
                cmd = [python, str(LEGACY), str(params), seed, str(seg_csv), str(out)]
            log = work / f"{side}{i}.log"
            seconds, cpu, rss, rc = run_child(cmd, log, cwd)
            run = Run(side, seconds, cpu, rss, rc, out, log)
            print(
                f"  run {i + 1} {side:<6} {seconds:7.2f} s wall {cpu:7.2f} s cpu "
                f"{rss:6.0f} MB  exit {rc}"
            )
            if rc != 0:
                print(f"bench_build: {side} failed (exit {rc}):\n{tail(log)}", file=sys.stderr)
                return 1
            run.counts = read_counts(out)
            if i > 0 and not ns.keep:
                shutil.rmtree(out, ignore_errors=True)
            runs.append(run)

    # 3. report
    by_side = {s: [r for r in runs if r.side == s] for s in ("ours", "legacy")}
    med = {s: statistics.median(r.seconds for r in rs) for s, rs in by_side.items()}
    best = {s: min(r.seconds for r in rs) for s, rs in by_side.items()}
    cpu = {s: statistics.median(r.cpu_seconds for r in rs) for s, rs in by_side.items()}
    rss = {s: max(r.peak_rss_mb for r in rs) for s, rs in by_side.items()}
    print()
    print(f"{'':<28}{'ours':>12}{'legacy':>12}")
    print(f"{'wall time median [s]':<28}{med['ours']:>12.2f}{med['legacy']:>12.2f}")
    print(f"{'wall time min [s]':<28}{best['ours']:>12.2f}{best['legacy']:>12.2f}")
    print(f"{'cpu time median [s]':<28}{cpu['ours']:>12.2f}{cpu['legacy']:>12.2f}")
    print(f"{'peak RSS max [MB]':<28}{rss['ours']:>12.0f}{rss['legacy']:>12.0f}")
    failures = compare(by_side["ours"][0].counts, by_side["legacy"][0].counts, p, counts)
    for side, rs in by_side.items():  # same seed, same process: every repeat identical
        for r in rs[1:]:
            if r.counts != rs[0].counts:
                failures.append(f"{side}: repeat gave different counts (not reproducible)")
    print()
    print(
        f"speedup: {med['legacy'] / med['ours']:.1f}x (ours {med['ours']:.2f} s, legacy "
        f"{med['legacy']:.2f} s); peak RSS ours {rss['ours']:.0f} MB, "
        f"legacy {rss['legacy']:.0f} MB; cpu-time ratio {cpu['legacy'] / cpu['ours']:.1f}x"
    )
    if failures:
        print("FAILED checks:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
