"""Figures of a network run, NEST or NEURON (``run-network DIR --plot`` / ``run-network plot DIR``).

Written into ``output/plots/``, read back through :mod:`builder.core.sonata_read` and the run's
CSV tables (no NEST needed):

* ``raster.png``: spikes of every population (at most :data:`MAX_CELLS` cells each, evenly
  spaced), with the population rates over the recording window beside it;
* ``rate_histograms.png``: distribution of the cells' rates, one panel per population;
* ``vm.png``: membrane traces of the recorded cells (one panel per report, at most
  :data:`MAX_TRACES` cells), when the config asks for reports;
* ``transfer_function.png``: output rate against the first rate property, one curve per value
  of the second (when the run wrote ``transfer_function.csv``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..core.checks import PathResolver, merge_simulation_child
from ..core.errors import BuildError, OutputError, RunError
from ..core.runs import CONFIG_NAME
from ..core.sonata_read import read_report, read_spikes, spike_populations
from .plots import _figure, _save, _spread_cells

__all__ = ["plot_run", "main"]

MAX_CELLS = 200
MAX_TRACES = 5
PLOTS_SUBDIR = "plots"


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError as exc:
        raise RunError(f"{path}: cannot read ({exc})") from None


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _raster(out: Path, rates: list[dict[str, str]], path: Path) -> Path:
    per = [r for r in rates if r["pop_name"] == "*"]
    pops = [r["population"] for r in per]
    sizes = {r["population"]: int(r["cells"]) for r in per}
    t0, t1 = float(per[0]["window_start_ms"]), float(per[0]["window_stop_ms"])
    fig = _figure(10, 6)
    ax, bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [4, 1]}, sharey=True)
    y0 = 0
    ticks = []
    cols = _colours(len(pops))
    for c, pop in zip(cols, pops, strict=True):
        ids, ts = read_spikes(out / "spikes.h5", pop)
        shown = _spread_cells(sizes[pop], MAX_CELLS)
        rank = np.full(sizes[pop], -1)
        rank[shown] = np.arange(shown.size)
        keep = (rank[ids] >= 0) & (ts >= t0) & (ts <= t1)
        ax.scatter(ts[keep], y0 + rank[ids[keep]], s=1.5, color=c, marker="|", linewidths=0.5)
        ticks.append(y0 + shown.size / 2)
        y0 += shown.size + 5
    ax.set_yticks(ticks, pops)
    ax.invert_yaxis()
    ax.set_xlim(t0, t1)
    ax.set_xlabel("time (ms)")
    ax.set_title(f"Spikes (at most {MAX_CELLS} cells per population)")
    bar.barh(ticks, [float(r["rate_hz"]) for r in per], height=20, color=cols)
    bar.set_xlabel("rate (Hz)")
    bar.set_title(f"{t0:g}-{t1:g} ms")
    return _save(fig, path)


def _histograms(out: Path, rates: list[dict[str, str]], path: Path) -> Path:
    per = [r for r in rates if r["pop_name"] == "*"]
    t0, t1 = float(per[0]["window_start_ms"]), float(per[0]["window_stop_ms"])
    n = len(per)
    ncol = min(4, n)
    nrow = (n + ncol - 1) // ncol
    fig = _figure(2.6 * ncol, 2.2 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax, r, c in zip(axes, per, _colours(n), strict=False):
        ids, ts = read_spikes(out / "spikes.h5", r["population"])
        keep = (ts >= t0) & (ts < t1)
        quantum = 1000.0 / (t1 - t0)  # one spike in the window, in Hz
        rate = np.bincount(ids[keep], minlength=int(r["cells"])) * quantum
        step = quantum * max(1, int(np.ceil(rate.max(initial=0.0) / quantum / 40)))
        ax.hist(rate, bins=np.arange(-0.5 * step, rate.max(initial=0.0) + step, step), color=c)
        ax.set_title(f"{r['population']}: {float(r['rate_hz']):.2f} Hz", fontsize=9)
        ax.set_xlabel("rate (Hz)", fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    return _save(fig, path)


def _vm(reports: list[Path], path: Path) -> Path | None:
    reps = [read_report(p) for p in reports]
    reps = [r for r in reps if r.times_ms.size > 1]
    if not reps:
        return None
    fig = _figure(10, 2.2 * len(reps))
    axes = np.atleast_1d(fig.subplots(len(reps), 1, squeeze=False)).ravel()
    for ax, rep in zip(axes, reps, strict=True):
        data = rep.data()
        for j in range(min(MAX_TRACES, rep.node_ids.size)):
            ax.plot(rep.times_ms, data[:, j], lw=0.6, label=f"node {int(rep.node_ids[j])}")
        ax.set_ylabel(f"{rep.variable} ({rep.units})")
        ax.set_title(f"{rep.path.name}: {rep.population}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("time (ms)")
    return _save(fig, path)


def _transfer(table: Path, path: Path) -> Path | None:
    rows = _rows(table)
    if not rows:
        return None
    skip = {"population", "node_id", "pop_name", "rate_hz", "rate_se_hz", "v_mean_mV", "v_sd_mV"}
    props = [k for k in rows[0] if k not in skip]
    if not props:
        return None
    groups = sorted({r.get("pop_name", r["population"]) for r in rows})
    fig = _figure(5 * len(groups), 4)
    axes = np.atleast_1d(fig.subplots(1, len(groups), squeeze=False)).ravel()
    for ax, grp in zip(axes, groups, strict=True):
        mine = [r for r in rows if r.get("pop_name", r["population"]) == grp]
        x_key = props[0]
        curves = sorted({float(r[props[1]]) for r in mine}) if len(props) > 1 else [None]
        for c in curves:
            sel = [r for r in mine if c is None or float(r[props[1]]) == c]
            sel.sort(key=lambda r: float(r[x_key]))
            x = [float(r[x_key]) for r in sel]
            y = [float(r["rate_hz"]) for r in sel]
            e = [float(r["rate_se_hz"]) for r in sel]
            ax.errorbar(
                x, y, yerr=e, marker="o", ms=3, label=f"{props[1]} {c:g}" if c is not None else None
            )
        ax.set_xlabel(x_key)
        ax.set_ylabel("output rate (Hz)")
        ax.set_title(grp)
        if len(curves) > 1:
            ax.legend(fontsize=7)
    return _save(fig, path)


def _is_report(path: Path) -> bool:
    """A membrane report (``/report``), not spikes, extracellular potentials or dipoles."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "report" in f
    except OSError as exc:
        raise RunError(f"{path}: cannot read ({exc})") from None


def run_output_dir(rundir: str | Path) -> Path:
    """The output folder of the run of ``rundir`` (a simulation config, or its folder): the
    config's ``output.output_dir`` (BMTK's variables expanded), else ``<folder>/output``."""
    config = Path(rundir)
    if not config.is_file():
        config = config / CONFIG_NAME
    try:
        cfg = merge_simulation_child(json.loads(config.read_text()), config, [])
    except (OSError, ValueError):
        return config.parent / "output"
    value = (cfg.get("output") or {}).get("output_dir") if isinstance(cfg, dict) else None
    if not isinstance(value, str):
        return config.parent / "output"
    return PathResolver(cfg.get("manifest"), config.parent, config)(value)


def plot_run(rundir: str | Path, plot_dir: str | Path | None = None) -> list[Path]:
    """Write the figures of a finished network run (``rundir``: its simulation config or the
    config's folder); returns the PNGs written."""
    out = run_output_dir(rundir)
    if not (out / "spikes.h5").is_file() or not (out / "rates.csv").is_file():
        raise RunError(f"{out}: no finished run here (spikes.h5 and rates.csv are missing)")
    target = Path(plot_dir) if plot_dir is not None else out / PLOTS_SUBDIR
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target}: cannot create the plot folder ({exc})") from None
    rates = _rows(out / "rates.csv")
    spike_populations(out / "spikes.h5")  # a damaged file is named here
    written = [
        _raster(out, rates, target / "raster.png"),
        _histograms(out, rates, target / "rate_histograms.png"),
    ]
    reports = sorted(
        p
        for p in out.glob("*.h5")
        if p.name != "spikes.h5" and not p.name.startswith(".") and _is_report(p)
    )
    if reports:
        vm = _vm(reports, target / "vm.png")
        if vm is not None:
            written.append(vm)
    if (out / "transfer_function.csv").is_file():
        tf = _transfer(out / "transfer_function.csv", target / "transfer_function.png")
        if tf is not None:
            written.append(tf)
    return written


def main(argv: list[str] | None = None) -> int:
    """``run-network plot DIR`` for a network run."""
    p = argparse.ArgumentParser(prog="run-network plot", description=__doc__.splitlines()[0])
    p.add_argument("dir", metavar="DIR")
    p.add_argument("-o", "--out", metavar="PLOTDIR")
    p.add_argument("-q", "--quiet", action="store_true")
    ns = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        paths = plot_run(ns.dir, ns.out)
    except BuildError as exc:
        print(f"run-network plot: error: {exc}", file=sys.stderr)
        return 2
    if not ns.quiet:
        for path in paths:
            print(path)
    return 0
