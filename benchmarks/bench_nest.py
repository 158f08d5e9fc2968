#!/usr/bin/env python
"""Our NEST path against NEST's own ``Connect`` and BMTK PointNet, side by side in one run.

Usage::

    python benchmarks/bench_nest.py [--scales 0.1 0.2] [--threads 2] [--duration-ms 1000]
                                    [--tf-seconds 10] [--tmp DIR] [--skip-pointnet] [--skip-tf]
                                    [--repeat 3] [--load-only]

Every measurement is a whole child process (interpreter start-up and imports included): wall
time around the child, CPU time and peak RSS from ``wait4`` of that child alone. Every child
gets ``OMP_WAIT_POLICY=PASSIVE`` unless set (our runner's default).

1. **ours, whole** -- ``build-network examples/microcircuit.json --set scale=S`` then
   ``run-network DIR -t T``: SONATA to disk, our loader, simulation, outputs.
2. **NEST, one script** -- the published example's way: the same network (the resolved
   ``spec.json`` of 1.: counts, ``fixed_total_number`` totals, normal weights and delays with
   ``nest.math.redraw``, the DC compensation in ``I_e``, initial ``V_m``, one Poisson generator
   per population at 8 Hz x K_ext) created with NEST's own ``Connect`` calls in memory and
   simulated as long, with a spike recorder.
3. **SONATA load** -- the same files loaded into NEST by our loader and by BMTK PointNet
   (``PointNetwork`` + ``PointSimulator.from_config``, which creates and connects), without
   simulating, ``--repeat`` times each, alternating (the best CPU time and the lowest peak of
   each side: the machine may be shared). Our loader runs twice: as it is (``static_synapse``
   edges as NEST's ``static_synapse_hpc``) and with ``run.nest_compact_synapses`` false
   (the synapse model PointNet uses). Both sides are timed over the same window, in the
   child: from reading the config to the last connection, imports excluded (our
   ``run-network`` checks, which PointNet has no counterpart of, are not in it); beside it
   the whole child's CPU (interpreter and imports included). Memory likewise both ways: the
   child's peak RSS (imports included) and that peak less the peak the imports reached (the
   load's own). PointNet reads the build as written (point edge types name an empty synapse
   params file). Beside them, the floor: **NEST's own Connect** for the same edges (every
   file read into memory first, then only the ``nest.Connect`` array calls timed) and the
   resident memory NEST's connection storage adds, for both synapse models.
4. **transfer-function grid** -- ``examples/adexp_tf.json``: f_e 0..30 Hz (step 3) x f_i
   0..20 Hz (step 2.5), 99 RS and 99 FS AdExp cells, ``--tf-seconds`` each, built and run.

Prints one line per side and the ratios the issue sets targets for: ours / NEST whole process
(<= 1.2), PointNet / ours load CPU time (>= 3; beside it the whole child's CPU and the load's
wall time), ours / PointNet peak memory (<= 0.5; beside it the load's own memory, imports
excluded), each for our default and for ``static_synapse``, and PointNet's load CPU over
NEST's own Connect (the best ratio any loader could reach); the TF grid (< 20 s). Exit
status 0 when every side ran.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "microcircuit.json"


def run_child(args: list[str], cwd: Path | None = None) -> dict:
    """Run a child; returns wall, CPU, peak RSS (MB), its stdout's last JSON line if any."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=err,
            cwd=cwd,
            # the same OpenMP waiting for every side (our runner's default; spinning threads
            # on a shared machine slow NEST several-fold)
            env={"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "PYNEST_QUIET": "1"},
            text=True,
        )
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text, etext = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}... failed ({proc.returncode}):\n{etext[-3000:]}")
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    result.update(
        wall_s=wall, cpu_s=ru.ru_utime + ru.ru_stime, peak_mb=ru.ru_maxrss / 1024.0, stdout=text
    )
    return result


NEST_SCRIPT = r"""
import json, math, os, sys, time
t0 = time.perf_counter()
import nest
spec = json.loads(open(sys.argv[1]).read())
threads, duration = int(sys.argv[2]), float(sys.argv[3])
nest.ResetKernel()
nest.SetKernelStatus({"resolution": spec["run"]["dt_ms"], "local_num_threads": threads,
                      "rng_seed": 55})
inf = float("inf")
pops = {}
for name, p in spec["populations"].items():
    v = p["properties"]["V_m"]
    pops[name] = nest.Create(p["model"]["nest_model"], p["count"], params=p["model"]["params"])
    pops[name].V_m = nest.random.normal(mean=v["mean"], std=v["sd"])
t_nodes = time.perf_counter()
for c in spec["connections"].values():
    w, d = c["weight"], c["delay_ms"]
    sd = abs(w["mean"]) * w["rel_sd"]
    lo, hi = (0.0, inf) if w["mean"] > 0 else (-inf, 0.0)
    nest.Connect(
        pops[c["source"]], pops[c["target"]],
        {"rule": "fixed_total_number", "N": c["rule"]["n"]},
        {"synapse_model": "static_synapse",
         "weight": nest.math.redraw(nest.random.normal(mean=w["mean"], std=sd), min=lo, max=hi),
         "delay": nest.math.redraw(
             nest.random.normal(mean=d["mean"], std=d["mean"] * d["rel_sd"]),
             min=d.get("min", 0.1), max=inf)})
for inp in spec["inputs"].values():
    pg = nest.Create("poisson_generator", params={"rate": inp["rate_hz"] * inp["indegree"]})
    nest.Connect(pg, pops[inp["target"]], "all_to_all",
                 {"weight": inp["weight"], "delay": inp["delay_ms"]})
sr = nest.Create("spike_recorder")
for p in pops.values():
    nest.Connect(p, sr)
t_built = time.perf_counter()
nest.Simulate(duration)
t_sim = time.perf_counter()
print(json.dumps({"edges": int(nest.num_connections), "build_s": t_built - t0,
                  "connect_s": t_built - t_nodes, "sim_s": t_sim - t_built,
                  "spikes": int(sr.n_events)}))
"""

#: Both loads time the same window: from reading ``simulation_config.json`` to the last
#: connection (nodes, edges, inputs), after the imports; ``import_mb`` is the peak RSS the
#: imports reached, so the load's own memory is the child's peak less it.
OUR_LOAD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from builder.core.netconfig import read_config
from builder.simulators.nest.loader import import_nest, load
nest = import_nest()
import_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
t1, c1 = time.perf_counter(), time.process_time()
cfg = read_config(sys.argv[1], int(sys.argv[2]))
if len(sys.argv) > 3:  # run.nest_compact_synapses
    cfg.raw["run"]["nest_compact_synapses"] = sys.argv[3] == "1"
net = load(nest, cfg)
print(json.dumps({"edges": net.n_edges, "load_s": time.perf_counter() - t1,
                  "load_cpu_s": time.process_time() - c1, "total_s": time.perf_counter() - t0,
                  "import_mb": import_mb, **net.timings}))
"""

POINTNET_LOAD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
from bmtk.simulator import pointnet
import nest
import_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
os.chdir(sys.argv[1])
t1, c1 = time.perf_counter(), time.process_time()
conf = pointnet.Config.from_json("simulation_config.json")
conf.build_env()
net = pointnet.PointNetwork.from_config(conf)
sim = pointnet.PointSimulator.from_config(conf, net)
print(json.dumps({"edges": int(nest.GetKernelStatus("num_connections")),
                  "load_s": time.perf_counter() - t1, "load_cpu_s": time.process_time() - c1,
                  "total_s": time.perf_counter() - t0, "import_mb": import_mb}))
"""

#: NEST's own cost for the same edges: every edge file read into memory first, then only the
#: ``nest.Connect`` calls (numpy ids, one_to_one, weight and delay arrays: connect_arrays) are
#: timed, and the resident memory they add (NEST's connection storage) is measured; with
#: ``static_synapse`` (what PointNet connects) and ``static_synapse_hpc`` (what our loader
#: connects these edges with, unless ``run.nest_compact_synapses`` is false).
NEST_FLOOR = r"""
import glob, json, sys, time
from builder.simulators.nest.loader import import_nest
nest = import_nest()
import h5py, numpy as np
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
d, threads, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
nest.ResetKernel()
nest.SetKernelStatus({"local_num_threads": threads, "resolution": 0.1})
import_mb = rss_mb()
first = {}
for path in sorted(glob.glob(f"{d}/network/*_nodes.h5")):
    with h5py.File(path) as f:
        for pop, g in f["nodes"].items():
            first[pop] = nest.Create("iaf_psc_exp", g["node_type_id"].shape[0])[0].global_id
edges = []
for path in sorted(glob.glob(f"{d}/network/*_edges.h5")):
    with h5py.File(path) as f:
        for name, g in f["edges"].items():
            s = first[g["source_node_id"].attrs["node_population"]]
            t = first[g["target_node_id"].attrs["node_population"]]
            edges.append((g["source_node_id"][()].astype(np.int64) + s,
                          g["target_node_id"][()].astype(np.int64) + t,
                          g["0/syn_weight"][()], g["0/delay"][()]))
before = rss_mb()
t1, c1 = time.perf_counter(), time.process_time()
for src, trg, w, dl in edges:
    nest.Connect(src, trg, "one_to_one",
                 {"synapse_model": model, "weight": w, "delay": dl})
print(json.dumps({"edges": int(nest.num_connections), "connect_s": time.perf_counter() - t1,
                  "connect_cpu_s": time.process_time() - c1, "import_mb": import_mb,
                  "storage_mb": rss_mb() - before}))
"""


def pointnet_copy(src: Path, dst: Path, threads: int) -> Path:
    """The build of ``src`` for PointNet as written (point edge types name an empty synapse
    params file), in its own directory: files linked, configs copied with PointNet's
    ``run.n_thread`` and its own output directory."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for name in ("network", "components"):
        os.symlink(src / name, dst / name)
    for name in ("circuit_config.json", "node_sets.json"):
        shutil.copy(src / name, dst / name)
    sim = json.loads((src / "simulation_config.json").read_text())
    sim["run"]["n_thread"] = threads
    sim["output"]["output_dir"] = "$BASE_DIR/pointnet_output"
    (dst / "simulation_config.json").write_text(json.dumps(sim, indent=1))
    return dst


def _line(label: str, r: dict, extra: str = "") -> str:
    return (
        f"  {label:<34} wall {r['wall_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s  "
        f"peak {r['peak_mb']:6.0f} MB{('  ' + extra) if extra else ''}"
    )


def microcircuit(scale: float, ns: argparse.Namespace, tmp: Path) -> dict[str, float]:
    py = sys.executable
    out = tmp / f"mc_{scale:g}"
    sets = ["--set", f"scale={scale}", "--set", f"run.duration_ms={ns.duration_ms}"]
    build = run_child(
        [py, str(ROOT / "build_network.py"), str(SPEC), "-o", str(out), "-q", "--force", *sets]
    )
    run = run_child(
        [py, str(ROOT / "run_network.py"), str(out), "-t", str(ns.threads), "--no-progress"]
    )
    with open(out / "output" / "rates.csv", newline="") as f:
        rates = {r["population"]: float(r["rate_hz"]) for r in csv.DictReader(f)}
    ours = {
        "wall_s": build["wall_s"] + run["wall_s"],
        "cpu_s": build["cpu_s"] + run["cpu_s"],
        "peak_mb": max(build["peak_mb"], run["peak_mb"]),
    }
    nest = run_child(
        [py, "-c", NEST_SCRIPT, str(out / "spec.json"), str(ns.threads), str(ns.duration_ms)]
    )
    print(f"microcircuit, scale {scale:g}, {ns.duration_ms:g} ms, {ns.threads} threads:")
    print(_line("ours: build-network", build))
    print(_line("ours: run-network", run))
    print(_line("ours: whole", ours))
    print(
        _line(
            "NEST Connect script: whole",
            nest,
            f"(build {nest['build_s']:.1f} s, simulate {nest['sim_s']:.1f} s)",
        )
    )
    print("  rates (Hz): " + ", ".join(f"{k} {v:.2f}" for k, v in rates.items()))
    res = {"ours_over_nest_wall": ours["wall_s"] / nest["wall_s"]}
    res["ours_over_nest_cpu"] = ours["cpu_s"] / nest["cpu_s"]
    res.update(sonata_load(out, ns, tmp, f"{scale:g}"))
    for k, v in res.items():
        print(f"  {k:<46} {v:6.2f}")
    return res


def load_only(scale: float, ns: argparse.Namespace, tmp: Path) -> dict[str, float]:
    """``--load-only``: build scale ``scale``, then :func:`sonata_load` only."""
    out = tmp / f"mc_{scale:g}"
    cmd = [sys.executable, str(ROOT / "build_network.py"), str(SPEC), "-o", str(out), "-q"]
    run_child(cmd + ["--force", "--set", f"scale={scale}"])
    print(f"microcircuit, scale {scale:g}, {ns.threads} threads:")
    res = sonata_load(out, ns, tmp, f"{scale:g}")
    for k, v in res.items():
        print(f"  {k:<46} {v:6.2f}")
    return res


def _best(runs: list[dict]) -> dict:
    """The fastest load's figures and the lowest peaks of several runs of one side."""
    best = dict(min(runs, key=lambda r: r["load_cpu_s"]))
    best["peak_mb"] = min(r["peak_mb"] for r in runs)
    best["own_mb"] = min(r["peak_mb"] - r["import_mb"] for r in runs)
    best["import_mb"] = min(r["import_mb"] for r in runs)
    return best


def _load_line(label: str, r: dict) -> str:
    return (
        f"  {label:<30} load cpu {r['load_cpu_s']:5.2f} s  wall {r['load_s']:5.2f} s | whole "
        f"child cpu {r['cpu_s']:5.2f} s | peak {r['peak_mb']:4.0f} MB = imports "
        f"{r['import_mb']:3.0f} + load {r['own_mb']:4.0f}"
    )


def sonata_load(out: Path, ns: argparse.Namespace, tmp: Path, tag: str) -> dict[str, float]:
    """Our loader (with NEST's compact synapses, the default, and without) and BMTK PointNet on
    the same build, ``--repeat`` times each, alternating (the fastest load CPU and the lowest
    peak of each side), and NEST's own Connect floor for both synapse models.

    Both views: the load alone (CPU from reading the config to the last connection; memory as
    the child's peak less the peak its imports reached) and the whole child (imports and
    interpreter included: its CPU from ``wait4`` and its peak RSS)."""
    py = sys.executable
    runs: dict[str, list[dict]] = {"ours": [], "ours_static": [], "pointnet": []}
    floors: dict[str, list[dict]] = {"static_synapse": [], "static_synapse_hpc": []}
    pn_dir = None if ns.skip_pointnet else pointnet_copy(out, tmp / f"pn_{tag}", ns.threads)
    for _ in range(ns.repeat):
        runs["ours"].append(run_child([py, "-c", OUR_LOAD, str(out), str(ns.threads)]))
        if pn_dir is not None:
            runs["pointnet"].append(run_child([py, "-c", POINTNET_LOAD, str(pn_dir)]))
        runs["ours_static"].append(run_child([py, "-c", OUR_LOAD, str(out), str(ns.threads), "0"]))
        for model, lst in floors.items():
            lst.append(run_child([py, "-c", NEST_FLOOR, str(out), str(ns.threads), model]))
    best = {k: _best(v) for k, v in runs.items() if v}
    floor = {k: min(v, key=lambda r: r["connect_cpu_s"]) for k, v in floors.items()}
    print(f"  SONATA load, {best['ours']['edges']} edges ({ns.repeat} runs each; best):")
    print(_load_line("ours (compact synapses)", best["ours"]))
    print(_load_line("ours (static_synapse)", best["ours_static"]))
    if "pointnet" in best:
        print(_load_line("BMTK PointNet", best["pointnet"]))
    for model, f in floor.items():
        print(
            f"  NEST Connect alone, {model:<18} connect cpu {f['connect_cpu_s']:5.2f} s  wall "
            f"{f['connect_s']:5.2f} s | NEST's storage +{f['storage_mb']:.0f} MB"
        )
    res = {
        "ours_load_cpu_s": best["ours"]["load_cpu_s"],
        "nest_connect_cpu_s": floor["static_synapse_hpc"]["connect_cpu_s"],
        "nest_storage_mb": floor["static_synapse_hpc"]["storage_mb"],
    }
    if "pointnet" in best:
        pn = best["pointnet"]
        for key in ("ours", "ours_static"):
            o, sfx = best[key], "" if key == "ours" else "_static_synapse"
            res["pointnet_over_ours_load_cpu" + sfx] = pn["load_cpu_s"] / o["load_cpu_s"]
            res["pointnet_over_ours_child_cpu" + sfx] = pn["cpu_s"] / o["cpu_s"]
            res["pointnet_over_ours_load_wall" + sfx] = pn["load_s"] / o["load_s"]
            res["ours_over_pointnet_peak" + sfx] = o["peak_mb"] / pn["peak_mb"]
            res["ours_over_pointnet_load_mb" + sfx] = o["own_mb"] / pn["own_mb"]
        # the best any loader could do: nothing beyond NEST's own Connect (static_synapse)
        res["pointnet_over_connect_floor_cpu"] = (
            pn["load_cpu_s"] / floor["static_synapse"]["connect_cpu_s"]
        )
    return res


def transfer_grid(ns: argparse.Namespace, tmp: Path) -> float:
    """examples/adexp_tf.json as it is (99 grid points x RS and FS cells, 10 s each, unless
    --tf-seconds says otherwise): build + run-network, whole processes."""
    d = tmp / "tf"
    sets = ["--set", f"run.duration_ms={1000.0 * ns.tf_seconds}"]
    example = ROOT / "examples" / "adexp_tf.json"
    b = run_child(
        [sys.executable, str(ROOT / "build_network.py"), str(example), "-o", str(d)]
        + ["-q", "--force", *sets]
    )
    r = run_child([sys.executable, str(ROOT / "run_network.py"), str(d), "-q", "--no-progress"])
    print(f"transfer-function grid (examples/adexp_tf.json, RS + FS), {ns.tf_seconds:g} s:")
    print(_line("build-network", b))
    print(_line("run-network (whole process)", r, "(target < 20 s)"))
    return b["wall_s"] + r["wall_s"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.2])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--duration-ms", type=float, default=1000.0)
    p.add_argument("--tf-seconds", type=float, default=10.0)
    p.add_argument("--tmp", type=Path, default=None)
    p.add_argument("--skip-pointnet", action="store_true")
    p.add_argument("--skip-tf", action="store_true")
    p.add_argument(
        "--repeat", type=int, default=3, help="runs of each SONATA load (best CPU, lowest peak)"
    )
    p.add_argument(
        "--load-only",
        action="store_true",
        help="build each scale and compare the SONATA loads only (no simulations)",
    )
    ns = p.parse_args(argv)
    tmp = ns.tmp or Path(tempfile.mkdtemp(prefix="bench_nest_"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"(scratch: {tmp}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    try:
        for s in ns.scales:
            if ns.load_only:
                load_only(s, ns, tmp)
            else:
                microcircuit(s, ns, tmp)
        if not ns.skip_tf and not ns.load_only:
            transfer_grid(ns, tmp)
    except RuntimeError as exc:
        print(f"bench_nest: {exc}", file=sys.stderr)
        return 1
    finally:
        if ns.tmp is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
