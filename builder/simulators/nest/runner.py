"""Run a built point-neuron network in NEST: ``run-network DIR`` for ``target_simulator: NEST``.

Same command, outputs and guarantees as the NEURON path (:mod:`builder.simulators.neuron.runner`):

1. every input is checked before NEST starts (:mod:`builder.core.checks`, then the NEST checks of
   :mod:`builder.simulators.nest.checks`: model names NEST knows, parameters the models have, weight
   signs, delays, inputs that reach no cell): one message, exit status 2, nothing written;
2. one run per directory (``DIR/.run.lock``, :mod:`builder.core.locks`);
3. our loader builds the network (:mod:`builder.simulators.nest.loader`), threads from
   ``-t N`` or the config (``run.n_thread``, or the top-level ``threads``); the command line is
   every backend's (:func:`builder.core.runs.run_parser`), and the options only a NEURON run has
   (``--engine``, ``--no-merge``, ``--bmtk-inputs``, ``--no-settle``) exit 2 naming the option;
4. the simulation runs in slices (a progress line on a terminal); SIGINT / SIGTERM stop it at
   the end of the current slice: exit 130 / 143, the previous ``output/`` as it was;
5. ``output/`` is written into ``.output-partial`` and renamed into place when complete:
   ``spikes.h5`` (SONATA), one membrane report per report of the config, ``rates.csv`` (per
   population and ``pop_name``, over the window after ``run.warmup_ms``), and, when generators
   take their rate from a node property (a transfer-function grid),
   ``transfer_function.csv``; ``log.txt``.

The pip NEST wheel has no MPI: under ``mpiexec -n N`` (N > 1) it stops at once and says so.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import BuildError, OutputError, RunError
from ...core.mpienv import world_rank, world_size
from ...core.runs import Interrupted, Stop, find_config, replace_dir, run_parser, write_failure

__all__ = ["main", "run", "NestSummary"]

log = logging.getLogger("builder.simulators.nest")

OUTPUT_DIR = "output"
PARTIAL_OUTPUT = ".output-partial"
#: Wall time aimed at per simulation slice (signals and progress are handled between slices).
SLICE_WALL_S = 0.25
#: Batches of the recording window for the standard error of a cell's rate.
RATE_BATCHES = 10


@dataclass
class NestSummary:
    config: Path
    threads: int
    n_cells: int
    n_edges: int
    n_spikes: int
    tstop_ms: float
    window_ms: tuple[float, float]
    setup_s: float
    sim_s: float
    spikes_file: Path
    rates: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rate_hz(self) -> float:
        span = (self.window_ms[1] - self.window_ms[0]) / 1000.0
        n = sum(r["spikes"] for r in self.rates if r["pop_name"] == "*")
        return n / max(self.n_cells, 1) / span if span > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        return self.sim_s / (self.tstop_ms / 1000.0)

    def text(self) -> str:
        w0, w1 = self.window_ms
        lines = [
            f"simulated {self.tstop_ms / 1000:g} s of {self.config.parent} in NEST "
            f"({self.threads} thread{'s' if self.threads != 1 else ''})",
            f"  cells {self.n_cells}, connections {self.n_edges}",
            f"  output spikes {self.n_spikes} ({self.rate_hz:.2f} Hz per cell over "
            f"{w0:g}-{w1:g} ms) -> {self.spikes_file}",
        ]
        per = [r for r in self.rates if r["pop_name"] == "*"]
        if 1 < len(per) <= 16:
            lines.append(
                "  rates (Hz): " + ", ".join(f"{r['population']} {r['rate_hz']:.2f}" for r in per)
            )
        lines.append(
            f"  setup {self.setup_s:.1f} s, simulation {self.sim_s:.1f} s "
            f"(real-time factor {self.realtime_factor:.1f})"
        )
        return "\n".join(lines)


def mpi_world_size(environ: Any = None) -> int:
    """Ranks of the MPI job we were launched in (1 when not under mpiexec)."""
    return world_size(environ)


def _mpi_rank(environ: Any = None) -> int:
    return world_rank(environ)


# ------------------------------------------------------------------ recording
def _record(nest: Any, cfg: Any, net: Any) -> dict[str, Any]:
    """Spike recorder on every cell; a multimeter per report; V of transfer-function cells."""
    cells = np.sort(np.concatenate([g for g in net.cells().values()] or [np.zeros(0, int)]))
    sr = nest.Create("spike_recorder", params={"stop": cfg.tstop_ms})
    if cells.size:
        nest.Connect(nest.NodeCollection(cells.tolist()), sr)
    meters = {}
    for name, rep in cfg.membrane_reports().items():
        var = _variable(rep)
        interval = float(rep.get("dt", cfg.dt_ms))
        interval = max(cfg.dt_ms, round(interval / cfg.dt_ms) * cfg.dt_ms)
        targets = cfg.node_set(rep.get("cells", rep.get("node_set")), f"reports.{name}.cells")
        mm = nest.Create(
            "multimeter",
            params={
                "record_from": [var],
                "interval": interval,
                "start": float(rep.get("start_time", 0.0)),
                "stop": float(rep.get("end_time", cfg.tstop_ms)),
            },
        )
        gids = np.sort(np.concatenate([net.gids[p][ids] for p, ids in targets.items()]))
        nest.Connect(mm, nest.NodeCollection(gids.tolist()))
        meters[name] = (mm, var, targets, interval)
    tf = None
    tf_pops = _tf_populations(cfg)
    if tf_pops:
        gids = np.sort(np.concatenate([net.gids[p] for p in tf_pops]))
        step = max(cfg.dt_ms, round(1.0 / cfg.dt_ms) * cfg.dt_ms)
        tf = nest.Create(
            "multimeter",
            params={"record_from": ["V_m"], "interval": step, "start": cfg.warmup_ms},
        )
        nest.Connect(tf, nest.NodeCollection(gids.tolist()))
    return {"spikes": sr, "meters": meters, "tf": tf}


def _variable(rep: dict[str, Any]) -> str:
    var = str(rep.get("variable_name", "V_m"))
    return "V_m" if var == "v" else var


def _tf_populations(cfg: Any) -> list[str]:
    """Populations whose generators take their rate from a node property."""
    out = []
    for i, gen in enumerate(cfg.generators):
        if "rate_property" in gen:
            for pop in cfg.node_set(gen.get("node_set"), f"generators[{i}].node_set"):
                if pop not in out:
                    out.append(pop)
    return out


# ------------------------------------------------------------------ simulation loop
def _simulate(nest: Any, cfg: Any, stop: Stop, show: bool) -> float:
    """Run to tstop in slices; returns wall seconds. Raises Interrupted on a signal."""
    t0 = time.perf_counter()
    t = 0.0
    step = max(cfg.dt_ms, 10 * round(1.0 / cfg.dt_ms) * cfg.dt_ms)  # start with ~10 ms
    nest.Prepare()
    try:
        while t < cfg.tstop_ms - 0.5 * cfg.dt_ms:
            chunk = min(step, cfg.tstop_ms - t)
            chunk = max(cfg.dt_ms, round(chunk / cfg.dt_ms) * cfg.dt_ms)
            w = time.perf_counter()
            nest.Run(chunk)
            t += chunk
            wall = time.perf_counter() - w
            if wall > 0:
                target = step * SLICE_WALL_S / wall
                step = min(max(cfg.dt_ms, 0.5 * step, target), 4 * step, 1000.0)
            if show:
                done = t / cfg.tstop_ms
                el = time.perf_counter() - t0
                eta = el / done * (1 - done) if done > 0 else 0.0
                sys.stderr.write(
                    f"\r  [{'#' * int(30 * done):<30}] {t / 1000:7.2f}/{cfg.tstop_ms / 1000:g} s"
                    f"  wall {el:6.1f} s  eta {eta:6.1f} s"
                )
                sys.stderr.flush()
            if stop.signum:
                if show:
                    sys.stderr.write("\n")
                raise Interrupted(stop.signum, f"at t = {t:.1f} ms of {cfg.tstop_ms:g} ms")
        # devices deliver the last min-delay interval's samples one slice later: run it (the
        # recorders stop at tstop, so nothing after tstop is kept)
        nest.Run(_tail_ms(nest, cfg))
    finally:
        nest.Cleanup()
    if show:
        sys.stderr.write("\n")
    return time.perf_counter() - t0


def _tail_ms(nest: Any, cfg: Any) -> float:
    min_delay = float(nest.GetKernelStatus("min_delay"))
    return round((min_delay + cfg.dt_ms) / cfg.dt_ms) * cfg.dt_ms


# ------------------------------------------------------------------ outputs
def _spikes_by_population(sr: Any, net: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ev = sr.get("events")
    senders = np.asarray(ev["senders"], dtype=np.int64)
    times = np.asarray(ev["times"], dtype=np.float64)
    out = {}
    for pop, gids in net.cells().items():
        if gids.size == 0:
            out[pop] = (np.zeros(0, np.uint64), np.zeros(0))
            continue
        lo, hi = int(gids.min()), int(gids.max())
        lut = np.full(hi - lo + 1, -1, dtype=np.int64)
        lut[gids - lo] = np.arange(gids.size)
        inside = (senders >= lo) & (senders <= hi)
        ids = lut[senders[inside] - lo]
        ok = ids >= 0
        out[pop] = (ids[ok].astype(np.uint64), times[inside][ok])
    return out


def _reports(partial: Path, cfg: Any, net: Any, rec: dict[str, Any]) -> list[Path]:
    from .output import write_report

    written = []
    for name, (mm, var, targets, _interval) in rec["meters"].items():
        ev = mm.get("events")
        senders = np.asarray(ev["senders"], dtype=np.int64)
        times = np.asarray(ev["times"], dtype=np.float64)
        values = np.asarray(ev[var], dtype=np.float64)
        grid = np.unique(times)
        pops = {}
        for pop, ids in targets.items():
            gids = net.gids[pop][ids]
            data = np.full((grid.size, ids.size), np.nan, dtype=np.float64)
            order = np.argsort(gids)
            sel = np.isin(senders, gids)
            c = order[np.searchsorted(gids[order], senders[sel])]
            r = np.searchsorted(grid, times[sel])
            data[r, c] = values[sel]
            pops[pop] = (ids, data)
        rep = cfg.reports[name]
        path = Path(str(rep.get("file_name", f"{name}.h5")))
        path = partial / path.name
        units = "mV" if var.startswith("V") else ("pA" if var in ("w", "I_syn") else "")
        write_report(path, pops, grid, var, units)
        written.append(path)
    return written


def _transfer_table(cfg: Any, net: Any, rec: dict[str, Any], spikes: dict) -> list[dict]:
    """One row per cell of the populations driven by per-node rates."""
    props = []
    for gen in cfg.generators:
        p = gen.get("rate_property")
        if p and p not in props:
            props.append(p)
    ev = rec["tf"].get("events")
    senders = np.asarray(ev["senders"], dtype=np.int64)
    vm = np.asarray(ev["V_m"], dtype=np.float64)
    order = np.argsort(senders, kind="stable")
    senders, vm = senders[order], vm[order]
    t0, t1 = cfg.warmup_ms, cfg.tstop_ms
    edges = np.linspace(t0, t1, RATE_BATCHES + 1)
    batch_s = (t1 - t0) / RATE_BATCHES / 1000.0
    rows = []
    for pop in _tf_populations(cfg):
        node = cfg.nodes[pop]
        gids = net.gids[pop]
        ids, ts = spikes.get(pop, (np.zeros(0), np.zeros(0)))
        ids = np.asarray(ids, dtype=np.int64)
        lo = np.searchsorted(senders, gids, side="left")
        hi = np.searchsorted(senders, gids, side="right")
        labels = node.column("pop_name")
        for i in range(node.size):
            mine = ts[ids == i]
            per_batch = np.histogram(mine, bins=edges)[0] / batch_s
            v = vm[lo[i] : hi[i]]
            row: dict[str, Any] = {"population": pop, "node_id": i}
            if labels is not None:
                row["pop_name"] = str(labels[i])
            for p in props:
                col = node.column(p)
                row[p] = float(col[i]) if col is not None else float("nan")
            row["rate_hz"] = float(per_batch.mean())
            row["rate_se_hz"] = float(per_batch.std(ddof=1) / np.sqrt(RATE_BATCHES))
            row["v_mean_mV"] = float(v.mean()) if v.size else float("nan")
            row["v_sd_mV"] = float(v.std()) if v.size else float("nan")
            rows.append(row)
    return rows


# ------------------------------------------------------------------ the run
def run(
    config: str | os.PathLike,
    *,
    threads: int | None = None,
    progress: bool | None = None,
    quiet: bool = False,
    stop: Stop | None = None,
    check: bool = True,
) -> NestSummary:
    """Run ``config`` in NEST (see the module docstring); returns the summary.

    Raises
    ------
    BuildError
        Bad input (before NEST starts) or an output that cannot be written.
    Interrupted
        SIGINT / SIGTERM (with ``stop`` installed); nothing was written.
    """
    config = find_config(config)
    base = config.parent
    if check:
        check_inputs(config, threads)
    try:
        return _run(config, threads, progress, quiet, stop or Stop())
    except BaseException:
        shutil.rmtree(base / PARTIAL_OUTPUT, ignore_errors=True)
        raise


def check_inputs(config: Path, threads: int | None = None) -> None:
    """Generic SONATA checks, then the NEST ones (raises InputError / RunError)."""
    from ...core.checks import check_run_inputs
    from ...core.netconfig import read_config
    from .checks import check_nest_inputs

    check_run_inputs(config)
    check_nest_inputs(read_config(config, threads))


def _run(
    config: Path, threads: int | None, progress: bool | None, quiet: bool, stop: Stop
) -> NestSummary:
    from ...analysis.rates import population_rates, write_rates, write_table
    from ...core.netconfig import read_config
    from ...core.sonata import write_spikes_multi
    from .loader import import_nest, load

    t_setup = time.perf_counter()
    cfg = read_config(config, threads)
    base = cfg.base
    nest = import_nest()
    net = load(nest, cfg)
    rec = _record(nest, cfg, net)
    setup_s = time.perf_counter() - t_setup
    log_lines = [
        f"config {config}",
        f"NEST {nest.__version__}, {cfg.threads} thread(s), seed {cfg.seed}, dt {cfg.dt_ms:g} ms",
        f"cells {net.n_cells}, connections {net.n_edges}, input spikes {net.n_input_spikes}, "
        f"generators {net.generators}",
        "setup " + ", ".join(f"{k} {v:.2f}" for k, v in net.timings.items()) + f", total "
        f"{setup_s:.2f} s",
    ] + [f"note: {n}" for n in net.notes]
    if not quiet:
        for note in net.notes:
            print(f"  note: {note}", file=sys.stderr)
    show = (not quiet) if progress is None else progress
    show = show and sys.stderr.isatty()
    stop.check("before the simulation started")
    sim_s = _simulate(nest, cfg, stop, show)

    partial = base / PARTIAL_OUTPUT
    shutil.rmtree(partial, ignore_errors=True)
    spikes_name = str((cfg.raw.get("output") or {}).get("spikes_file", "spikes.h5"))
    spikes_file = base / OUTPUT_DIR / Path(spikes_name).name
    window = (cfg.warmup_ms, cfg.tstop_ms)
    try:
        partial.mkdir()
        spikes = _spikes_by_population(rec["spikes"], net)
        write_spikes_multi(partial / spikes_file.name, spikes, sorting="by_time")
        _reports(partial, cfg, net, rec)
        sizes = {p: int(g.size) for p, g in net.cells().items()}
        labels = {p: cfg.nodes[p].column("pop_name") for p in sizes}
        rates = population_rates(spikes, sizes, labels, window)
        write_rates(partial / "rates.csv", rates)
        if rec["tf"] is not None:
            write_table(partial / "transfer_function.csv", _transfer_table(cfg, net, rec, spikes))
        n_spikes = int(sum(ids.size for ids, _ in spikes.values()))
        summary = NestSummary(
            config,
            cfg.threads,
            net.n_cells,
            net.n_edges,
            n_spikes,
            cfg.tstop_ms,
            window,
            setup_s,
            sim_s,
            spikes_file,
            rates,
            list(net.notes),
        )
        log_name = str((cfg.raw.get("output") or {}).get("log_file", "log.txt"))
        (partial / Path(log_name).name).write_text("\n".join(log_lines + [summary.text()]) + "\n")
        stop.check("after the simulation, before its output was put in place")
        with stop.deferred():
            replace_dir(partial, base / OUTPUT_DIR)
    except OutputError as exc:
        raise OutputError(f"{exc}; the previous output was left as it was") from None
    except OSError as exc:
        raise OutputError(write_failure(exc, base / OUTPUT_DIR)) from None
    return summary


# ------------------------------------------------------------------ command line
#: Options of ``run-network`` (:func:`builder.core.runs.run_parser`) that only a NEURON run has.
NEURON_ONLY = (
    ("no_merge", "--no-merge"),
    ("bmtk_inputs", "--bmtk-inputs"),
    ("no_settle", "--no-settle"),
)


def _refused_option(ns: argparse.Namespace, config: Path) -> str | None:
    """Why an option of the shared command line does not apply to this NEST run, if one."""
    if ns.engine is not None:
        return (
            f"--engine {ns.engine}: {config} is a NEST network (target_simulator NEST); "
            "--engine chooses NEURON or CoreNEURON for NEURON networks (NEST runs threaded: "
            "-t N)"
        )
    for dest, flag in NEURON_ONLY:
        if getattr(ns, dest):
            return (
                f"{flag}: {config} is a NEST network (target_simulator NEST); {flag} is an "
                "option of NEURON runs"
            )
    if ns.jobs != 1 or ns.slurm:
        return f"-j/--slurm: {config} is one run; -j/--slurm apply to a sweep directory"
    return None


def main(argv: list[str] | None = None) -> int:
    """``run-network DIR`` for a NEST config (dispatched from :mod:`builder.commands.backends`)."""
    from ...core.locks import RunLock

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "plot":
        from ...analysis.plots_network import main as plot_main

        return plot_main(argv[1:])
    ns = run_parser().parse_args(argv)  # the same command line as a NEURON run
    if ns.threads is not None and ns.threads < 1:
        print(f"run-network: error: -t/--threads: {ns.threads} is not >= 1", file=sys.stderr)
        return 2
    if ns.verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    size = mpi_world_size()
    if size > 1:
        # not a single `import nest` here: a NEST built without MPI ends the process (status
        # 127) as soon as it is imported under an MPI launcher with more than one rank
        if _mpi_rank() == 0:
            print(
                f"run-network: error: launched on {size} MPI ranks, but NEST networks run "
                "threaded in one process (the pip nest-simulator has no MPI, and the NEST "
                "runner does not distribute a network over ranks): run without mpiexec and "
                "give threads instead (run-network DIR -t N)",
                file=sys.stderr,
            )
        return 2
    stop = Stop().install()
    lock = None
    try:
        config = find_config(ns.config)
        refused = _refused_option(ns, config)
        if refused:
            raise RunError(refused)
        check_inputs(config, ns.threads)
        lock = RunLock(config.parent).acquire()
        summary = run(
            config,
            threads=ns.threads,
            progress=False if ns.no_progress or ns.quiet else None,
            quiet=ns.quiet,
            stop=stop,
            check=False,
        )
    except BuildError as exc:
        print(f"run-network: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(exc.report(), file=sys.stderr)
        return exc.exit_status
    finally:
        if lock is not None:
            lock.release()
        stop.restore()
    if not ns.quiet:
        print(summary.text())
    if ns.plot:
        from ...analysis.plots_network import plot_run

        try:
            pngs = plot_run(summary.config.parent)
        except BuildError as exc:
            print(f"run-network: the run finished but plotting failed: {exc}", file=sys.stderr)
            return 2
        if not ns.quiet:
            for png in pngs:
                print(f"  plot: {png}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
