#!/usr/bin/env python
"""The LFPy ``Network`` example in our pipeline, against LFPy's figures and stock BMTK.

Usage::

    python benchmarks/bench_lfpy.py                    # full example: 1200 ms, all sides
    python benchmarks/bench_lfpy.py --no-stock         # ours only (the stock side takes minutes)
    python benchmarks/bench_lfpy.py --duration-ms 300 --no-checks   # quick plumbing check

``examples/lfpy_network.json`` is built once (a timed whole process), then run as whole
processes on copies of the same files:

- **ours**: ``python -m builder.commands.run_cli DIR -q --no-progress`` -- ``run-network`` with the
  config's ECP report (13-contact probe, line source) and current dipole;
- **ours+plots**: the same with ``--plot`` (raster, rates, ECP traces, CSD, electrode layout);
- **stock**: ``python benchmarks/stock_bionet_run.py DIR --template-segments`` -- BMTK's
  ``run_bionet.py`` flow with one point process per synapse, BMTK's per-edge construction and
  BMTK's own ``EcpMod`` for the ECP report (no dipole: BMTK has none), every cell kept at its
  template's 22 segments as ours.

Every child's wall time, CPU time (user + system) and peak RSS come from ``os.wait4`` on that
child. Before timing, one untimed child compiles the mechanisms into the cache and imports
BMTK and NEURON (warm caches for both sides).

Checks against LFPy's figures (issue 12, measured with LFPy 2.3: E 3.8 Hz, I 3.5 Hz for
t >= 200 ms; LFP peak-to-peak largest at z = 0, ~150 uV; 133 s serial): our rates per
population and the largest peak-to-peak of the probe (t >= warm-up) within ``--tolerance``
(30 %), at the contact at z = 0. The stock side's rates and profile are printed next to ours,
not checked (BMTK starts from v_init everywhere and places its cells by its own rotation
convention). Exit status: 0 all sides ran and the checks passed, 1 otherwise, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "lfpy_network.json"
STOCK = ROOT / "benchmarks" / "stock_bionet_run.py"

#: LFPy 2.3's ``example_network.py`` as measured for issue 12.
LFPY = {
    "rate_hz": {"E": 3.8, "I": 3.5},
    "p2p_max_uV": 150.0,
    "p2p_max_z_um": 0.0,
    "wall_s": 133.0,
    "rss_mb": 474.0,
}


@dataclass
class Child:
    side: str
    wall_s: float
    cpu_s: float
    rss_mb: float
    status: int
    log: Path
    result: dict[str, Any] = field(default_factory=dict)


def run_child(side: str, cmd: list[str], log: Path, cwd: Path) -> Child:
    """Run ``cmd`` to completion; its own wall, CPU (user + sys) and peak RSS (``os.wait4``)."""
    with open(log, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    result: dict[str, Any] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("bench-result: "):
            result = json.loads(line[len("bench-result: ") :])
    return Child(
        side,
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024.0,
        proc.returncode,
        log,
        result,
    )


def tail(path: Path, n: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def rates(spikes: Path, sizes: dict[str, int], t0_ms: float, t1_ms: float) -> dict[str, float]:
    """Spikes per cell and second in [t0, t1] per population (BMTK's or our spikes file)."""
    out = {}
    with h5py.File(spikes, "r") as f:
        for pop, n in sizes.items():
            g = f.get(f"spikes/{pop}")
            ts = g["timestamps"][()] if g is not None and "timestamps" in g else np.zeros(0)
            k = int(((ts >= t0_ms) & (ts <= t1_ms)).sum())
            out[pop] = k / n / ((t1_ms - t0_ms) / 1000.0)
    return out


def depth_profile(ecp: Path, t0_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Contact depth (um) and peak-to-peak potential (uV) over t >= ``t0_ms``, per contact.

    Row ``k`` of ``/ecp/data`` is the potential after step ``k + 1`` (BMTK's convention and
    ours). BMTK's file has no positions: the depths are then NaN, and the caller reads them
    from the run's ``components/electrodes.csv`` (:func:`electrode_depths`, channel order).
    """
    with h5py.File(ecp, "r") as f:
        data = f["ecp/data"][()]
        start, _, dt = (float(x) for x in f["ecp/time"][()])
        z = f["ecp/positions"][()][:, 2] if "ecp/positions" in f else None
    t = start + dt * (np.arange(data.shape[0]) + 1)
    rows = data[t >= t0_ms]
    return (z if z is not None else np.full(data.shape[1], np.nan)), 1000.0 * (
        rows.max(axis=0) - rows.min(axis=0)
    )


def electrode_depths(csv_path: Path) -> np.ndarray:
    rows = [r.split() for r in csv_path.read_text().splitlines() if r.strip()]
    return np.array([float(r[rows[0].index("z_pos")]) for r in rows[1:]])


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=str(SPEC), help="the spec (default: %(default)s)")
    ap.add_argument(
        "--duration-ms",
        type=float,
        help="override run.duration_ms (the warm-up becomes min(200, half of it))",
    )
    ap.add_argument("--no-stock", action="store_true", help="leave the stock BMTK side out")
    ap.add_argument("--no-plots", action="store_true", help="leave the ours+plots side out")
    ap.add_argument("--no-checks", action="store_true", help="report only (short runs)")
    ap.add_argument("--tolerance", type=float, default=0.30, help="relative (default 0.30)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ns = ap.parse_args(argv)
    spec = Path(ns.spec).resolve()
    if not spec.is_file():
        print(f"bench_lfpy: {spec} not found", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench_lfpy_"))
    try:
        return _bench(ns, spec, work)
    finally:
        if ns.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _bench(ns: argparse.Namespace, spec: Path, work: Path) -> int:
    py = sys.executable
    print(f"load average before: {load()}")
    build_cmd = [py, "-m", "builder.commands.cli", str(spec), "-o", str(work / "net"), "-q"]
    if ns.duration_ms:
        warm_ms = min(200.0, ns.duration_ms / 2)
        build_cmd += ["--set", f"run.duration_ms={ns.duration_ms:g}"]
        build_cmd += ["--set", f"run.warmup_ms={warm_ms:g}"]
    build = run_child("build", build_cmd, work / "build.log", work)
    if build.status != 0:
        print(f"build failed:\n{tail(build.log)}", file=sys.stderr)
        return 1
    net = work / "net"
    config = json.loads((net / "simulation_config.json").read_text())
    warmup = float(config["run"].get("warmup_ms", 0.0))
    tstop = float(config["run"]["tstop"])
    sizes = {}
    for pop in ("E", "I"):
        with h5py.File(net / "network" / f"{pop}_nodes.h5", "r") as f:
            sizes[pop] = int(f[f"nodes/{pop}/node_id"].shape[0])
    # untimed: compile the mechanisms into the cache, import BMTK and NEURON once
    warm = subprocess.run(
        [
            py,
            "-c",
            "import sys; from builder.simulators.neuron import bionet_ext; "
            "bionet_ext.load_config(sys.argv[1])",
            str(net / "simulation_config.json"),
        ],
        capture_output=True,
        text=True,
        cwd=work,
    )
    if warm.returncode != 0:
        print(f"warm-up failed:\n{warm.stderr[-2000:]}", file=sys.stderr)
        return 1
    sides: dict[str, list[str]] = {"ours": ["-q", "--no-progress"]}
    if not ns.no_plots:
        sides["ours+plots"] = ["-q", "--no-progress", "--plot"]
    runs: dict[str, Child] = {}
    for side, opts in sides.items():
        shutil.copytree(net, work / side)
        cmd = [py, "-m", "builder.commands.run_cli", str(work / side), *opts]
        runs[side] = run_child(side, cmd, work / f"{side}.log", work)
        print(f"  {side}: {runs[side].cpu_s:.1f} s CPU, {runs[side].wall_s:.1f} s wall")
    if not ns.no_stock:
        shutil.copytree(net, work / "stock")
        cmd = [py, str(STOCK), str(work / "stock"), "--template-segments"]
        runs["stock"] = run_child("stock", cmd, work / "stock.log", work)
        print(f"  stock: {runs['stock'].cpu_s:.1f} s CPU, {runs['stock'].wall_s:.1f} s wall")
    print(f"load average after: {load()}")
    failed = [r for r in runs.values() if r.status != 0]
    for r in failed:
        print(f"{r.side} failed (exit {r.status}):\n{tail(r.log)}", file=sys.stderr)

    # ------------------------------------------------------------ what each side computed
    measured: dict[str, dict[str, Any]] = {}
    for side, r in runs.items():
        if r.status != 0:
            continue
        out = work / side / "output"
        m: dict[str, Any] = {"rates": rates(out / "spikes.h5", sizes, warmup, tstop)}
        if (out / "ecp.h5").is_file():
            z, p2p = depth_profile(out / "ecp.h5", warmup)
            if np.isnan(z).all():
                z = electrode_depths(work / side / "components" / "electrodes.csv")
            m["z"], m["p2p"] = z, p2p
        m["dipole"] = (out / "dipole.h5").is_file()
        measured[side] = m

    # ------------------------------------------------------------ table
    ours = runs.get("ours")
    print()
    print(f"{'':<26}{'build':>9}{'ours':>9}{'ours+plots':>12}{'stock':>10}{'LFPy 2.3':>10}")

    def cell(side: str, key: str, fmt: str = "{:.1f}") -> str:
        r = runs.get(side) if side != "build" else build
        return fmt.format(getattr(r, key)) if r is not None and r.status == 0 else "-"

    for label, key in (("wall [s]", "wall_s"), ("CPU [s]", "cpu_s"), ("peak RSS [MB]", "rss_mb")):
        lfpy = {"wall_s": LFPY["wall_s"], "rss_mb": LFPY["rss_mb"]}.get(key)
        print(
            f"{label:<26}{cell('build', key):>9}{cell('ours', key):>9}"
            f"{cell('ours+plots', key):>12}{cell('stock', key):>10}"
            f"{(f'{lfpy:.0f}' if lfpy else '-'):>10}"
        )
    for pop in ("E", "I"):
        vals = [
            f"{measured[s]['rates'][pop]:.2f}" if s in measured else "-"
            for s in ("ours", "ours+plots", "stock")
        ]
        print(
            f"{'rate ' + pop + ' [Hz]':<26}{'':>9}{vals[0]:>9}{vals[1]:>12}{vals[2]:>10}"
            f"{LFPY['rate_hz'][pop]:>10.1f}"
        )
    for side in ("ours", "stock"):
        m = measured.get(side, {})
        if "p2p" in m:
            prof = ", ".join(f"{z:g}: {p:.0f}" for z, p in zip(m["z"], m["p2p"], strict=True))
            print(f"LFP peak-to-peak [uV] by z [um], {side}: {prof}")

    # ------------------------------------------------------------ ratios and checks
    problems = [f"{r.side} failed" for r in failed]
    if ours is not None and ours.status == 0:
        whole = build.cpu_s + ours.cpu_s
        line = (
            f"whole process ours (build + run with ECP and dipole): {whole:.1f} s CPU, "
            f"{build.wall_s + ours.wall_s:.1f} s wall; vs LFPy's {LFPY['wall_s']:.0f} s: "
            f"{LFPY['wall_s'] / whole:.1f}x (CPU)"
        )
        if "ours+plots" in runs and runs["ours+plots"].status == 0:
            wp = build.cpu_s + runs["ours+plots"].cpu_s
            line += f"; with plots {wp:.1f} s CPU ({LFPY['wall_s'] / wp:.1f}x)"
        print(line)
        if "stock" in runs and runs["stock"].status == 0:
            st = runs["stock"]
            print(
                f"stock/ours (run processes, same files): CPU {st.cpu_s / ours.cpu_s:.1f}x, "
                f"wall {st.wall_s / ours.wall_s:.1f}x; stock setup "
                f"{st.result.get('setup_cpu_s', 0):.1f} s CPU, simulation "
                f"{st.result.get('sim_cpu_s', 0):.1f} s CPU"
            )
    if not ns.no_checks and "ours" in measured:
        m = measured["ours"]
        tol = ns.tolerance
        for pop, want in LFPY["rate_hz"].items():
            got = m["rates"][pop]
            if abs(got - want) > tol * want:
                problems.append(f"rate {pop} {got:.2f} Hz not within {tol:.0%} of LFPy's {want}")
        if "p2p" not in m:
            problems.append("ours wrote no ecp.h5")
        else:
            k = int(np.argmax(m["p2p"]))
            if m["z"][k] != LFPY["p2p_max_z_um"]:
                problems.append(f"LFP peak-to-peak largest at z = {m['z'][k]:g} um, not 0")
            want = LFPY["p2p_max_uV"]
            if abs(m["p2p"][k] - want) > tol * want:
                problems.append(
                    f"largest LFP peak-to-peak {m['p2p'][k]:.0f} uV not within {tol:.0%} of "
                    f"LFPy's ~{want:.0f} uV"
                )
        if not m["dipole"]:
            problems.append("ours wrote no dipole.h5")
    for p in problems:
        print(f"CHECK FAILED: {p}")
    if not problems:
        print("checks: passed" if not ns.no_checks else "checks: skipped (--no-checks)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
