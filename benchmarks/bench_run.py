#!/usr/bin/env python
"""Time our NEURON runner against BMTK's stock BioNet path on the same legacy-sized network.

Usage::

    python benchmarks/bench_run.py [--stop-s 1.0] [--repeat 1] [--seed 123]
                                   [--params params/L5NetParams.json] [--no-settle]
                                   [--threads N] [--no-engine] [--coreneuron] [--keep]

Steps:

1. Prepare (untimed): build the default L5 network once with ``build_network.py`` (``time.stop``
   = ``--stop-s``) and copy it for each side, so each keeps its own ``output/``; compile the
   output's NMODL into the mechanism cache and import BMTK and NEURON once, so both sides start
   with a warm cache.
2. Time each side as a whole process, ``--repeat`` times, alternating:

   * **ours**: ``builder.simulators.neuron.runner.run(DIR)`` (merged point processes, default
     start from the resting steady state), started by a small launcher that does what
     ``run_network.py DIR --no-progress`` does and prints the runner's own
     :class:`~builder.simulators.neuron.runner.RunSummary` as JSON;
   * **stock**: ``benchmarks/stock_bionet_run.py DIR``, BMTK's ``run_bionet.py`` flow with one
     point process per synapse;
   * **core**: ours with ``engine="coreneuron"`` (``run-network --engine coreneuron``: the
     mechanisms compiled with ``nrnivmodl -coreneuron``, one ``pc.psolve``), unless
     ``--no-engine``; its spikes must equal ours exactly;
   * **ours-tN** (``--threads N``, default 2; ``--threads 1`` leaves it out): ours on N threads
     (``run-network -t N``: the cell cut into N pieces by ``pc.multisplit``, the inputs played
     early into longer delays, see :mod:`builder.simulators.neuron.engine`); its spikes must equal
     ours. CoreNEURON's threads are not timed: they share whole cells, and with the default
     network's one cell they only add waiting (measured: 10x the CPU time of one thread).

   Each child reports its setup and simulation wall times (and the CPU time it spent in each);
   the parent takes the child's wall time, CPU time and peak RSS from ``os.wait4``.
3. Report medians over the repeats: setup, simulation, real-time factor (simulation wall
   seconds per biological second) and their ratios, spike counts of both sides (same
   synapses, same release streams: they agree spike for spike with ``--no-settle``, and in
   rate otherwise), and a final ``speedup:`` line.

``--coreneuron`` also tries CoreNEURON: compile the output's NMODL with
``nrnivmodl -coreneuron`` and, if that works, time ``stock_bionet_run.py --coreneuron``; if it
does not, print why (the compiler's first errors).

Exit status: 0 if both sides ran and their spike counts agree within statistical error
(3 standard deviations of the difference of two Poisson counts), 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
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
BUILD_CLI = ROOT / "build_network.py"
STOCK = Path(__file__).resolve().parent / "stock_bionet_run.py"
RESULT_PREFIX = "bench-result: "
#: Mechanisms BMTK BioNet itself creates (virtual input cells); not built into NEURON 9.
BMTK_MECHANISMS = frozenset({"VecStim"})
#: Spike counts of the two sides may differ by this many standard deviations at most.
SPIKE_SIGMAS = 3.0

#: Does what ``run_network.py DIR --no-progress [--no-settle]`` does (serial: MPI set-up,
#: guard, run with merged point processes) and prints the runner's summary as JSON. The CPU time of
#: ``sim.run()`` is taken by wrapping ``BioSimulator.run`` once BMTK is imported (through the
#: runner's ``_modules`` hook, called just before ``sim.run()``); if that hook is gone, the
#: split is left out and only the whole run's CPU time is reported.
OURS_LAUNCHER = """
import json, sys, time
c_start = time.process_time()
import builder.simulators.neuron.runner as runner
from builder.simulators.neuron.mpi import guard, setup_mpi
cpu = {}
orig_modules = getattr(runner, "_modules", None)
if orig_modules is not None:
    def _modules():
        from bmtk.simulator.bionet import BioSimulator
        orig_run = BioSimulator.run
        def timed_run(self, *args, **kwargs):
            c0 = time.process_time()
            try:
                return orig_run(self, *args, **kwargs)
            finally:
                cpu["sim"] = time.process_time() - c0
        BioSimulator.run = timed_run
        return orig_modules()
    runner._modules = _modules
import inspect
opts = {}
args = sys.argv[2:]
if "--no-settle" in args and "settle" in inspect.signature(runner.run).parameters:
    opts["settle"] = False
if "--engine" in args:
    opts["engine"] = args[args.index("--engine") + 1]
if "--threads" in args:
    opts["n_thread"] = int(args[args.index("--threads") + 1])
try:  # the engine module runs the simulation itself (the coreneuron engine never calls sim.run)
    import builder.simulators.neuron.engine as engine
    orig_simulate = engine.simulate
    def simulate(*a, **k):
        c0 = time.process_time()
        try:
            return orig_simulate(*a, **k)
        finally:
            cpu["sim"] = time.process_time() - c0
    engine.simulate = simulate
except ImportError:
    pass
ctx = setup_mpi()
with guard(ctx):
    s = runner.run(sys.argv[1], merge=True, mpi=ctx, progress=False, **opts)
total_cpu = time.process_time() - c_start
out = {
    "setup_s": s.setup_s, "sim_s": s.sim_s, "n_spikes": s.n_spikes, "tstop_ms": s.tstop_ms,
    "n_synapses": s.n_synapses, "n_point_processes": s.n_point_processes,
}
if "sim" in cpu:
    out["sim_cpu_s"] = cpu["sim"]
    out["setup_cpu_s"] = total_cpu - cpu["sim"]
print("bench-result: " + json.dumps(out), flush=True)
"""

WARM = """
import sys
from pathlib import Path
from builder.core.mechanisms import compiled_mechanisms
mods = sorted(Path(sys.argv[1], "components", "mechanisms", "modfiles").glob("*.mod"))
print(compiled_mechanisms(mods, quiet=False))
if sys.argv[2:] == ["--coreneuron"]:
    from builder.core.components import provided_mod_files, select_mechanisms
    from builder.simulators.neuron.engine import coreneuron_mod_files
    chosen = list(select_mechanisms(mods, provided_mod_files()).mod_files)
    core = coreneuron_mod_files(chosen, Path(sys.argv[1]))
    built = compiled_mechanisms(core, quiet=False, coreneuron=True)
    print(built)
    flags = built / "cxxflags.txt"  # builder.core.mechanisms: the extra C++ flags of the build
    print("core-cxxflags:", flags.read_text().strip() if flags.is_file() else "(nrnivmodl's)")
import bmtk.simulator.bionet, h5py  # warm the file cache and the bytecode
"""


@dataclass
class Run:
    """One timed child process and what it reported."""

    side: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    log: Path
    result: dict[str, Any] = field(default_factory=dict)


def run_child(cmd: list[str], log: Path, cwd: Path) -> tuple[float, float, float, int]:
    """Run ``cmd``; return (wall s, CPU s (user + sys), peak RSS MB, exit status).

    ``os.wait4`` gives the resource usage of exactly this child, so the peak RSS and CPU time
    are per run, not accumulated over all children.
    """
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, proc.returncode


def parse_result(log: Path) -> dict[str, Any]:
    """The JSON a child printed after ``bench-result: `` (its last such line)."""
    found = None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(RESULT_PREFIX):
            found = line[len(RESULT_PREFIX) :]
    if found is None:
        raise ValueError(f"{log}: the child printed no '{RESULT_PREFIX.strip()}' line")
    return json.loads(found)


def tail(path: Path, n: int = 15) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join("    " + line for line in lines[-n:])


def spike_times(path: Path) -> np.ndarray:
    """All spike times (ms) in a SONATA / BMTK spikes file, sorted."""
    times: list[np.ndarray] = []
    with h5py.File(path, "r") as f:

        def visit(_: str, obj: Any) -> None:
            if isinstance(obj, h5py.Group) and "timestamps" in obj:
                times.append(np.asarray(obj["timestamps"][()], dtype=float))

        f.visititems(visit)
    return np.sort(np.concatenate(times)) if times else np.zeros(0)


def compare_trains(a: np.ndarray, b: np.ndarray, dt_ms: float) -> str:
    """Describe how two spike trains compare: identical, matching within dt, or not."""
    if a.size != b.size:
        return f"counts differ ({a.size} vs {b.size})"
    if a.size == 0:
        return "both silent"
    diff = float(np.max(np.abs(a - b)))
    if diff == 0.0:
        return "identical spike times"
    if diff <= dt_ms + 1e-9:
        return f"same spikes, times within {diff:.3g} ms (<= dt)"
    return f"same count, spike times differ by up to {diff:.3g} ms"


def _nrnivmodl_coreneuron(mods: list[Path], build: Path) -> tuple[int, str, float]:
    """Run ``nrnivmodl -coreneuron`` on copies of ``mods`` in ``build``; (exit, output, s)."""
    from builder.core.mechanisms import nrnivmodl_path

    (build / "mod").mkdir(parents=True)
    for mod in mods:
        shutil.copy2(mod, build / "mod" / mod.name)
    tool = nrnivmodl_path()
    env = dict(os.environ, PATH=os.pathsep.join([str(tool.parent), os.environ.get("PATH", "")]))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(tool), "-coreneuron", "mod"],
        cwd=build,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        check=False,
    )
    (build / "nrnivmodl.log").write_text(proc.stdout)
    return proc.returncode, proc.stdout, time.perf_counter() - t0


def _compile_errors(output: str) -> dict[str, list[str]]:
    """Mechanism name -> its distinct compiler error messages, from ``nrnivmodl`` output."""
    found: dict[str, dict[str, None]] = {}
    for m in re.finditer(r"mod2c/(\w+)\.cpp:\d+:\d+: error: (.*)", output):
        found.setdefault(m.group(1), {}).setdefault(m.group(2).strip(), None)
    return {name: list(msgs) for name, msgs in found.items()}


def _mechanism_name(mod: Path) -> str:
    """The SUFFIX / POINT_PROCESS name a .mod file declares (else its file stem)."""
    m = re.search(r"^\s*(?:SUFFIX|POINT_PROCESS|ARTIFICIAL_CELL)\s+(\w+)", mod.read_text(), re.M)
    return m.group(1) if m else mod.stem


def _used_by_network(name: str, outdir: Path) -> bool:
    """Whether the run needs this mechanism: BMTK's own, or named by the network's files.

    BMTK plays every virtual (input) cell through a ``VecStim``; the others are needed if the
    cell template, a synaptic model or an edge-type table names them.
    """
    if name in BMTK_MECHANISMS:
        return True
    files = [
        *(outdir / "components" / "templates").glob("*.hoc"),
        *(outdir / "components" / "synaptic_models").glob("*.json"),
        *(outdir / "network").glob("*edge_types.csv"),
    ]
    word = re.compile(rf"\b{re.escape(name)}\b")
    return any(word.search(f.read_text(errors="replace")) for f in files)


def compile_coreneuron(outdir: Path, work: Path, attempts: int = 4) -> tuple[Path | None, str]:
    """Try ``nrnivmodl -coreneuron`` on the output's NMODL; return (directory or None, report).

    A failing compilation stops at the first broken files (``make`` ends the others), so the
    files that failed are left out and the rest compiled again, up to ``attempts`` times, to
    find every incompatible file. The result is usable only if nothing left out is used by
    the network (cell template, synaptic models, edge types).
    """
    from builder.core.mechanisms import mechanisms_library

    mods = sorted((outdir / "components" / "mechanisms" / "modfiles").glob("*.mod"))
    names = {mod.stem: _mechanism_name(mod) for mod in mods}
    broken: dict[str, list[str]] = {}
    lines = []
    for attempt in range(attempts):
        build = work / f"coreneuron{attempt}"
        keep = [mod for mod in mods if mod.stem not in broken]
        rc, output, seconds = _nrnivmodl_coreneuron(keep, build)
        errors = _compile_errors(output)
        if rc == 0:
            try:
                mechanisms_library(build)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                return None, f"nrnivmodl -coreneuron exited 0 but left no library ({exc})"
            lines.append(f"{len(keep)} of {len(mods)} NMODL files compile ({seconds:.0f} s)")
            break
        new = {k: v for k, v in errors.items() if k not in broken}
        lines.append(
            f"attempt {attempt + 1}: {len(keep)} files, exit {rc} after {seconds:.0f} s; "
            f"failing: {', '.join(sorted(new)) or 'none identified'}"
        )
        if not new:
            tail_lines = output.rstrip().splitlines()[-8:]
            return None, "\n    ".join([*lines, *tail_lines])
        broken.update(new)
    else:
        return None, "\n    ".join([*lines, "still failing; giving up"])
    for stem, msgs in sorted(broken.items()):
        used = _used_by_network(names.get(stem, stem), outdir)
        lines.append(
            f"{stem}.mod ({'needed' if used else 'not needed'} by this run): " + "; ".join(msgs[:3])
        )
    needed = [s for s in broken if _used_by_network(names.get(s, s), outdir)]
    report = "\n    ".join(lines)
    if needed:
        return None, report + f"\n    cannot run: {', '.join(sorted(needed))} needed"
    return build, report


# ------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params/L5NetParams.json", help="params JSON")
    ap.add_argument("--seed", type=int, default=123, help="build seed")
    ap.add_argument("--stop-s", type=float, default=1.0, help="biological time to simulate (s)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per side")
    ap.add_argument("--coreneuron", action="store_true", help="also try stock BMTK on CoreNEURON")
    ap.add_argument(
        "--no-engine",
        action="store_true",
        help="leave out our coreneuron engine (run-network --engine coreneuron)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=2,
        metavar="N",
        help="also time ours on N threads (multisplit; default 2, 1 to leave it out)",
    )
    ap.add_argument(
        "--no-settle",
        action="store_true",
        help="ours starts from v_init like stock BMTK, not from the resting steady state "
        "(then both sides should give identical spikes)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ns = ap.parse_args(argv)
    if ns.repeat < 1:
        ap.error("--repeat must be >= 1")
    if ns.threads < 1:
        ap.error("--threads must be >= 1")
    if ns.stop_s <= 0:
        ap.error("--stop-s must be > 0")
    params = Path(ns.params)
    if not params.is_file():
        params = ROOT / ns.params
    if not params.is_file():
        ap.error(f"params file {ns.params!r} not found")

    work = Path(tempfile.mkdtemp(prefix="bench_run_"))
    try:
        return _bench(ns, params.resolve(), work)
    finally:
        if ns.keep:
            print(f"outputs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def _bench(ns: argparse.Namespace, params: Path, work: Path) -> int:
    python = sys.executable
    print(
        f"params {params}, seed {ns.seed}, time.stop {ns.stop_s:g} s, {ns.repeat} run(s) per "
        f"side, python {python}"
    )
    print(f"before: {_load()}")

    # 1. untimed preparation
    net = work / "net"
    log = work / "build.log"
    wall, _, _, rc = run_child(
        [
            python,
            str(BUILD_CLI),
            str(params),
            str(ns.seed),
            "-o",
            str(net),
            "--set",
            f"time.stop={ns.stop_s:g}",
            "-q",
        ],
        log,
        ROOT,
    )
    if rc != 0:
        print(f"bench_run: the build failed (exit {rc}):\n{tail(log)}", file=sys.stderr)
        return 1
    print(f"built {net} in {wall:.1f} s (untimed)")
    warm = [python, "-c", WARM, str(net)] + ([] if ns.no_engine else ["--coreneuron"])
    wall, _, _, rc = run_child(warm, work / "warm.log", ROOT)
    if rc != 0:
        print(f"bench_run: warm-up failed (exit {rc}):\n{tail(work / 'warm.log')}", file=sys.stderr)
        return 1
    print(f"mechanisms compiled/cached and libraries imported in {wall:.1f} s (untimed)")
    for line in (work / "warm.log").read_text(errors="replace").splitlines():
        if line.startswith("core-cxxflags:"):
            extra = line.partition(":")[2].strip() or "none"
            print(f"coreneuron mechanisms: nrnivmodl's -O2 plus extra C++ flags: {extra}")
    variants = {"ours": [], "stock": None}
    if not ns.no_engine:
        variants["core"] = ["--engine", "coreneuron"]
    if ns.threads > 1:
        variants[f"ours-t{ns.threads}"] = ["--threads", str(ns.threads)]
    dirs = {side: work / side for side in variants}
    for d in dirs.values():
        shutil.copytree(net, d)
    settle = ["--no-settle"] if ns.no_settle else []
    commands = {
        side: (
            [python, str(STOCK), str(dirs[side])]
            if extra is None
            else [python, "-c", OURS_LAUNCHER, str(dirs[side]), *settle, *extra]
        )
        for side, extra in variants.items()
    }

    # 2. timed runs, alternating
    runs: list[Run] = []
    for i in range(ns.repeat):
        for side in list(variants):
            r = _timed(side, commands[side], work / f"{side}{i}.log", i)
            if r is None and side in ("ours", "stock"):
                return 1
            if r is None:  # an engine variant this network cannot use: reported, left out
                print(f"  {side}: left out of the comparison")
                del variants[side]
                runs[:] = [x for x in runs if x.side != side]
                continue
            runs.append(r)

    sides = list(variants)
    if ns.coreneuron:
        sides += _coreneuron(ns, python, work, net, runs)

    # 3. report
    return _report(ns, runs, sides, dirs, work)


def _timed(side: str, cmd: list[str], log: Path, i: int) -> Run | None:
    wall, cpu, rss, rc = run_child(cmd, log, ROOT)
    r = Run(side, wall, cpu, rss, rc, log)
    if rc == 0:
        try:
            r.result = parse_result(log)
        except ValueError as exc:
            print(f"bench_run: {exc}\n{tail(log)}", file=sys.stderr)
            return None
    res = r.result
    print(
        f"  run {i + 1} {side:<10} process {wall:6.1f} s wall {cpu:6.1f} s cpu {rss:5.0f} MB | "
        f"setup {res.get('setup_s', math.nan):5.2f} s, sim {res.get('sim_s', math.nan):6.2f} s"
        f", spikes {res.get('n_spikes')}  exit {rc}"
    )
    if rc != 0:
        print(f"bench_run: {side} failed (exit {rc}):\n{tail(log)}", file=sys.stderr)
        return None
    return r


def _coreneuron(
    ns: argparse.Namespace, python: str, work: Path, net: Path, runs: list[Run]
) -> list[str]:
    print("coreneuron: compiling the output's NMODL with nrnivmodl -coreneuron ...")
    built, msg = compile_coreneuron(net, work)
    print(f"coreneuron: {msg}")
    if built is None:
        print("coreneuron: not measured (see benchmarks/README.md, 'CoreNEURON')")
        return []
    d = work / "coreneuron_run"
    shutil.copytree(net, d)
    cmd = [python, str(STOCK), str(d), "--mechanisms", str(built), "--coreneuron"]
    for i in range(ns.repeat):
        r = _timed("coreneuron", cmd, work / f"coreneuron{i}.log", i)
        if r is None:
            print("coreneuron: the run failed; not measured")
            return []
        runs.append(r)
    return ["coreneuron"]


def _median(runs: list[Run], key: str) -> float:
    values = [r.result[key] for r in runs if key in r.result]
    return statistics.median(values) if values else math.nan


def _report(
    ns: argparse.Namespace, runs: list[Run], sides: list[str], dirs: dict[str, Path], work: Path
) -> int:
    by = {s: [r for r in runs if r.side == s] for s in sides}
    bio_s = {s: by[s][0].result["tstop_ms"] / 1000.0 for s in sides}
    m: dict[str, dict[str, float]] = {}
    for s in sides:
        rs = by[s]
        m[s] = {
            "setup": _median(rs, "setup_s"),
            "sim": _median(rs, "sim_s"),
            "setup_cpu": _median(rs, "setup_cpu_s"),
            "sim_cpu": _median(rs, "sim_cpu_s"),
            "proc_wall": statistics.median(r.wall_s for r in rs),
            "proc_cpu": statistics.median(r.cpu_s for r in rs),
            "rss": max(r.peak_rss_mb for r in rs),
        }
        m[s]["rtf"] = m[s]["sim"] / bio_s[s]
        m[s]["rtf_cpu"] = m[s]["sim_cpu"] / bio_s[s]
    rows = [
        ("setup wall [s]", "setup", "{:.2f}"),
        ("simulation wall [s]", "sim", "{:.2f}"),
        ("real-time factor (wall)", "rtf", "{:.2f}"),
        ("setup cpu [s]", "setup_cpu", "{:.2f}"),
        ("simulation cpu [s]", "sim_cpu", "{:.2f}"),
        ("real-time factor (cpu)", "rtf_cpu", "{:.2f}"),
        ("process wall [s]", "proc_wall", "{:.2f}"),
        ("process cpu [s]", "proc_cpu", "{:.2f}"),
        ("peak RSS [MB]", "rss", "{:.0f}"),
    ]
    print()
    print(f"after: {_load()}")
    head = f"{'(median of ' + str(ns.repeat) + ')':<26}" + "".join(f"{s:>12}" for s in sides)
    print(head + "".join(f"{s + '/ours':>16}" for s in sides[1:]))
    for label, key, fmt in rows:
        line = f"{label:<26}" + "".join(f"{fmt.format(m[s][key]):>12}" for s in sides)
        for s in sides[1:]:
            ratio = m[s][key] / m["ours"][key] if m["ours"][key] else math.nan
            line += f"{ratio:>15.2f}x"
        print(line)
    for label, key in (("synapses", "n_synapses"), ("point processes", "n_point_processes")):
        print(f"{label:<26}" + "".join(f"{by[s][0].result.get(key)!s:>12}" for s in sides))
    spikes = {s: [r.result["n_spikes"] for r in by[s]] for s in sides}
    print(
        f"{'output spikes':<26}"
        + "".join(f"{'/'.join(map(str, dict.fromkeys(spikes[s]))):>12}" for s in sides)
    )
    rate = {s: spikes[s][0] / bio_s[s] for s in sides}
    print(f"{'rate [Hz]':<26}" + "".join(f"{rate[s]:>12.2f}" for s in sides))

    failures = []
    a, b = spikes["ours"][0], spikes["stock"][0]
    tol = SPIKE_SIGMAS * math.sqrt(a + b)
    try:
        how = compare_trains(
            spike_times(dirs["ours"] / "output" / "spikes.h5"),
            spike_times(dirs["stock"] / "output" / "spikes.h5"),
            dt_ms=0.1,
        )
    except OSError as exc:
        how = f"could not compare spike files ({exc})"
    print(f"spikes ours vs stock: {a} vs {b} ({how}; tolerance +-{tol:.1f})")
    if not ns.no_settle:
        print(
            "  (ours starts from the resting steady state, stock from v_init: the first spikes "
            "may differ; --no-settle for a spike-by-spike comparison)"
        )
    if abs(a - b) > tol:
        failures.append(f"spike counts differ beyond statistical error: ours {a}, stock {b}")
    for s in sides:
        if s in ("ours", "stock") or s not in dirs:
            continue
        same = compare_trains(
            spike_times(dirs["ours"] / "output" / "spikes.h5"),
            spike_times(dirs[s] / "output" / "spikes.h5"),
            dt_ms=0.0,
        )
        print(f"spikes ours vs {s}: {same}")
        if same not in ("identical spike times", "both silent"):
            failures.append(f"{s}: spikes differ from ours ({same})")
    for s in sides:
        if len(set(spikes[s])) > 1:
            failures.append(f"{s}: repeats gave different spike counts {spikes[s]}")
    o, st = m["ours"], m["stock"]
    print()
    print(
        f"speedup: {st['sim'] / o['sim']:.1f}x simulation (ours RTF {o['rtf']:.1f}, stock RTF "
        f"{st['rtf']:.1f}); setup ours {o['setup']:.1f} s vs stock {st['setup']:.1f} s; "
        f"cpu-time ratio {st['sim_cpu'] / o['sim_cpu']:.1f}x simulation (RTF cpu ours "
        f"{o['rtf_cpu']:.1f}, stock {st['rtf_cpu']:.1f})"
    )
    for s in sides:
        if s in ("ours", "stock"):
            continue
        v = m[s]
        print(
            f"speedup {s}: RTF {v['rtf']:.2f} wall ({o['sim'] / v['sim']:.2f}x ours, "
            f"{st['sim'] / v['sim']:.1f}x stock), RTF cpu {v['rtf_cpu']:.2f} "
            f"({o['sim_cpu'] / v['sim_cpu']:.2f}x ours, {st['sim_cpu'] / v['sim_cpu']:.1f}x stock)"
        )
    print()
    print(
        f"{'side':<12}{'RTF wall':>10}{'RTF cpu':>10}{'stock/side wall':>17}"
        f"{'stock/side cpu':>16}{'ours/side cpu':>15}{'cores used':>12}"
    )
    for s in sides:
        v = m[s]
        # simulation CPU over simulation wall: > 1 means threads ran at once; < 1 that the
        # process waited for a core (load)
        print(
            f"{s:<12}{v['rtf']:>10.2f}{v['rtf_cpu']:>10.2f}{st['sim'] / v['sim']:>16.2f}x"
            f"{st['sim_cpu'] / v['sim_cpu']:>15.2f}x{o['sim_cpu'] / v['sim_cpu']:>14.2f}x"
            f"{v['sim_cpu'] / v['sim'] if v['sim'] else math.nan:>12.2f}"
        )
    if failures:
        print("FAILED checks:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
