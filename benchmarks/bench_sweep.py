#!/usr/bin/env python
"""Throughput of a sweep: the same short runs sequentially, with ``-j N`` and over MPI ranks.

Usage::

    python benchmarks/bench_sweep.py [--runs 8] [--stop-s 0.5] [--jobs 2] [--repeat 1]
                                     [--params params/L5NetParams.json] [--modes seq,jobs,mpi]
                                     [--keep]

Steps:

1. Prepare (untimed): write a sweep file (the params with ``time.stop`` overridden, seeds
   1..RUNS, so every run is a different network of the same size); build and run one extra
   warm-up run, which derives and caches the segment table, compiles the mechanisms into
   their cache and warms the file caches.
2. For every mode, build the sweep into a fresh directory (untimed; the build time is
   reported), then time the whole command as a user types it:

   - ``seq``:  ``python run_network.py DIR -j 1``
   - ``jobs``: ``python run_network.py DIR -j N``
   - ``mpi``:  ``mpiexec -n N python run_network.py DIR``

   Wall time is taken around the child process; CPU time (user + system) is that child's,
   from ``os.wait4``, which includes the descendants it waited for (every run's process).
   With ``--repeat R`` the modes run R times in rotated order; the table shows medians.
3. Check: every run of every mode is ``done`` in its manifest, and each run's output spikes
   are identical across modes (same seeds, same networks, one serial NEURON run each).

Runs of one sweep share nothing, so N workers on N idle cores should approach N times the
sequential throughput; start-up (Python, BMTK, NEURON, building the cell) is paid per run in
every mode. On a shared machine the ratios are only as good as the load allows: the load
average is printed before and after each mode. Where Linux scheduler autogroups are on
(``/proc/sys/kernel/sched_autogroup_enabled``), CPU time is shared between sessions, and
MPICH's ``mpiexec`` puts every rank in a session of its own while ``-j N`` workers share the
caller's: under load from other sessions the mpi mode then gets more of the machine.

Exit status: 0 if every mode completed and the outputs agree, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build_network.py"
RUN = ROOT / "run_network.py"
MODES = ("seq", "jobs", "mpi")


@dataclass
class Timing:
    """One timed sweep execution."""

    mode: str
    wall_s: float
    cpu_s: float
    returncode: int
    load_before: float
    load_after: float
    outdir: Path


def run_child(cmd: list[str], log: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Run ``cmd`` to completion; return (wall s, CPU s of it and its waited-for children, rc)."""
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def tail(path: Path, n: int = 15) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join("    " + line for line in lines[-n:])


def load1() -> float:
    return os.getloadavg()[0]


def autogroup() -> bool:
    """Whether Linux shares CPU time between sessions (autogroups) rather than processes."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def statuses(outdir: Path) -> dict[str, str]:
    with open(outdir / "manifest.csv", newline="") as f:
        return {row["run_id"]: row["status"] for row in csv.DictReader(f)}


def spike_times(outdir: Path, run_id: str) -> np.ndarray:
    with h5py.File(outdir / run_id / "output" / "spikes.h5", "r") as f:
        return np.asarray(f["spikes/biophysical/timestamps"][()])


def build_digest(outdir: Path) -> str:
    """A digest of every built file of a sweep directory (not its outputs or bookkeeping)."""
    h = hashlib.sha256()
    for p in sorted(outdir.rglob("*")):
        rel = p.relative_to(outdir)
        if not p.is_file() or "output" in rel.parts or p.name.startswith("."):
            continue
        if rel.name in ("manifest.csv", "sweep.json") or rel.name.endswith(".log"):
            continue
        h.update(str(rel).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def command(mode: str, outdir: Path, jobs: int, mpiexec: str | None) -> list[str]:
    base = [sys.executable, str(RUN), str(outdir), "-q", "--no-progress"]
    if mode == "seq":
        return [*base, "-j", "1"]
    if mode == "jobs":
        return [*base, "-j", str(jobs)]
    assert mpiexec is not None
    return [mpiexec, "-n", str(jobs), *base]


# ------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params/L5NetParams.json", help="base params JSON")
    ap.add_argument("--runs", type=int, default=8, help="runs in the sweep (seeds 1..RUNS)")
    ap.add_argument("--stop-s", type=float, default=0.5, help="simulated time per run (s)")
    ap.add_argument("--jobs", type=int, default=2, help="N for -j N and mpiexec -n N")
    ap.add_argument("--repeat", type=int, default=1, help="timed executions per mode")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated: seq,jobs,mpi")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ns = ap.parse_args(argv)
    modes = [m.strip() for m in ns.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        ap.error(f"--modes: choose from {', '.join(MODES)}")
    if ns.runs < 1 or ns.jobs < 1 or ns.repeat < 1:
        ap.error("--runs, --jobs and --repeat must be >= 1")
    if ns.stop_s <= 0:
        ap.error("--stop-s must be > 0")
    params = Path(ns.params)
    if not params.is_file():
        params = ROOT / ns.params
    if not params.is_file():
        ap.error(f"params file {ns.params!r} not found")

    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    mpiexec = shutil.which("mpiexec", path=env["PATH"])
    if "mpi" in modes and mpiexec is None:
        print("bench_sweep: mpiexec not found; skipping the mpi mode", file=sys.stderr)
        modes.remove("mpi")

    work = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    try:
        return _bench(ns, params.resolve(), modes, work, env, mpiexec)
    finally:
        if ns.keep:
            print(f"outputs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _build(sweep: Path, outdir: Path, env: dict[str, str]) -> float:
    log = outdir.parent / f"build-{outdir.name}.log"
    wall, _, rc = run_child(
        [sys.executable, str(BUILD), "sweep", str(sweep), "-o", str(outdir), "-q"], log, env
    )
    if rc != 0:
        raise SystemExit(f"bench_sweep: building {outdir} failed (exit {rc}):\n{tail(log)}")
    return wall


def _bench(
    ns: argparse.Namespace,
    params: Path,
    modes: list[str],
    work: Path,
    env: dict[str, str],
    mpiexec: str | None,
) -> int:
    print(
        f"params {params}, {ns.runs} runs (seeds 1..{ns.runs}) of {ns.stop_s:g} s each, "
        f"N = {ns.jobs}, modes {', '.join(modes)}, repeat {ns.repeat}"
    )
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    one, five, fifteen = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs ({affinity} usable); load average {one:.2f} / "
        f"{five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"
    )
    if autogroup():
        print(
            "note: scheduler autogroups are on: CPU time is shared between sessions. MPICH's "
            "mpiexec starts every rank in a session of its own, while -j N workers share the "
            "caller's, so on a machine busy with other sessions the mpi mode gets a larger share"
            " of the CPUs; on an idle machine -j N and mpiexec -n N should run alike."
        )

    # 1. untimed preparation: one warm-up run
    over = {"time.stop": [ns.stop_s]}
    warm = work / "warmup.json"
    warm.write_text(json.dumps({"base": str(params), "overrides": over, "seeds": [ns.runs + 1]}))
    _build(warm, work / "warmup", env)
    wall, _, rc = run_child(command("seq", work / "warmup", 1, None), work / "warmup.log", env)
    if rc != 0:
        print(f"bench_sweep: the warm-up run failed:\n{tail(work / 'warmup.log')}")
        failed = work / "warmup" / "r000" / "failed.json"
        if failed.is_file():
            print(tail(failed))
        return 1
    print(f"warm-up: 1 run in {wall:.1f} s")

    sweep = work / "sweep.json"
    sweep.write_text(json.dumps({"base": str(params), "overrides": over, "seeds": ns.runs}))

    # 2. timed executions, modes rotated between repeats
    timings: list[Timing] = []
    digests: dict[Path, str] = {}
    for rep in range(ns.repeat):
        order = modes[rep % len(modes) :] + modes[: rep % len(modes)]
        for mode in order:
            outdir = work / f"{mode}-{rep}"
            build_s = _build(sweep, outdir, env)
            digests[outdir] = build_digest(outdir)
            log = work / f"{mode}-{rep}.log"
            before = load1()
            wall, cpu, rc = run_child(command(mode, outdir, ns.jobs, mpiexec), log, env)
            t = Timing(mode, wall, cpu, rc, before, load1(), outdir)
            timings.append(t)
            print(
                f"  {mode:<5} #{rep + 1}: {wall:7.1f} s wall, {cpu:7.1f} s CPU, exit {rc} "
                f"(build {build_s:.1f} s untimed; load {t.load_before:.2f} -> {t.load_after:.2f})"
            )
            if rc != 0:
                print(tail(log))

    # 3. checks: every run done; same built files -> same output spikes
    ok = True
    reference: dict[str, np.ndarray] = {}
    first_digest = digests[timings[0].outdir]
    for t in timings:
        if digests[t.outdir] != first_digest:
            print(
                f"FAIL {t.mode}: its build differs from the first mode's (the sources changed "
                "during the benchmark?); its outputs are not compared"
            )
            ok = False
            continue
        st = statuses(t.outdir)
        if t.returncode != 0 or set(st.values()) != {"done"} or len(st) != ns.runs:
            print(f"FAIL {t.mode}: exit {t.returncode}, statuses {sorted(set(st.values()))}")
            ok = False
            continue
        differ = []
        for run_id in st:
            spikes = spike_times(t.outdir, run_id)
            if run_id not in reference:
                reference[run_id] = spikes
            elif not np.array_equal(spikes, reference[run_id]):
                differ.append(run_id)
        if differ:
            print(f"FAIL {t.mode}: output spikes differ from the first mode's: {differ}")
            ok = False
    if reference:
        n_spikes = [reference[r].size for r in sorted(reference)]
        print(f"output spikes per run: {n_spikes}; all checks passed: {ok}")

    # 4. report
    print()
    print(f"{'mode':<34} {'wall s':>8} {'runs/min':>9} {'vs seq':>7} {'CPU s':>8} {'load':>12}")
    seq = [t.wall_s for t in timings if t.mode == "seq" and t.returncode == 0]
    seq_wall = statistics.median(seq) if seq else None
    labels = {
        "seq": "run_network.py DIR -j 1",
        "jobs": f"run_network.py DIR -j {ns.jobs}",
        "mpi": f"mpiexec -n {ns.jobs} run_network.py DIR",
    }
    for mode in modes:
        mine = [t for t in timings if t.mode == mode]
        wall = statistics.median(t.wall_s for t in mine)
        cpu = statistics.median(t.cpu_s for t in mine)
        load = (
            f"{statistics.fmean(t.load_before for t in mine):.1f}->"
            f"{statistics.fmean(t.load_after for t in mine):.1f}"
        )
        ratio = f"{seq_wall / wall:6.2f}x" if seq_wall else "     -"
        print(
            f"{labels[mode]:<34} {wall:8.1f} {60 * ns.runs / wall:9.2f} {ratio:>7} {cpu:8.1f} "
            f"{load:>12}"
        )
    if seq_wall:
        ratios = ", ".join(
            f"{m} {seq_wall / statistics.median(t.wall_s for t in timings if t.mode == m):.2f}x"
            for m in modes
            if m != "seq"
        )
        print(f"throughput vs sequential: {ratios}")
    print(f"after: load average {load1():.2f} (1 min)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
