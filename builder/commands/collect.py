"""Collect a sweep's results: ``run-network collect DIR`` -> ``DIR/summary.csv`` + plots.

One row per run: run id, every overridden value, seed, status, output spike count, mean rate
(Hz), coefficient of variation of the inter-spike intervals, the mean and standard
deviation of the somatic membrane potential (mV, from the ``v`` soma report when recorded) and
the error of a failed or damaged run (status ``damaged``: finished, but its outputs cannot be
read; it is reported and the other runs are collected; exit status 1).

Every statistic is computed over the run's analysis window
(:func:`builder.core.simconfig.rate_window_ms`: from the input onset plus ``run.warmup_ms`` to
``tstop``), so the start-up transient is not counted; ``n_spikes`` counts the window too, and
``window_ms`` says which it was.

A PNG per swept parameter shows the output rate against it (mean and SD over the other
parameters and seeds; runs that did not finish are marked at the bottom).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import BuildError, RunError
from ..core.output import atomic_path
from ..core.progress import progress
from ..core.simconfig import rate_window_ms
from ..core.sonata_read import read_report, read_spikes
from .sweep import is_sweep_dir, read_sweep_dir, write_manifest

__all__ = ["run_metrics", "collect", "main"]

SUMMARY = "summary.csv"


def _spike_times(path: Path) -> np.ndarray:
    return np.sort(read_spikes(path)[1])


def _soma_vm(outdir: Path, window: tuple[float, float]) -> np.ndarray | None:
    for path in sorted(outdir.glob("v_soma*.h5")):
        report = read_report(path)
        data = report.data()[:, 0] if report.index_pointers[-1] > 0 else np.zeros(0)
        keep = (report.times_ms >= window[0]) & (report.times_ms <= window[1])
        return data[keep[: data.size]]
    return None


def run_metrics(rundir: Path) -> dict[str, Any]:
    """Spike count, rate (Hz), ISI CV and somatic Vm mean/SD of one finished run.

    All over the analysis window (:func:`builder.core.simconfig.rate_window_ms`); ``rate_hz`` and
    the others are NaN when the window is empty (a run shorter than its warm-up).
    """
    config = rundir / "simulation_config.json"
    try:
        cfg = json.loads(config.read_text())
        window = rate_window_ms(cfg)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunError(f"{config}: cannot read run.tstop ({type(exc).__name__}: {exc})") from None
    duration_s = (window[1] - window[0]) / 1000.0
    t = _spike_times(rundir / "output" / "spikes.h5")
    t = t[(t >= window[0]) & (t <= window[1])]
    isi = np.diff(t)
    cv = float(isi.std() / isi.mean()) if isi.size >= 2 and isi.mean() > 0 else math.nan
    vm = _soma_vm(rundir / "output", window)
    return {
        "window_ms": f"{window[0]:g}-{window[1]:g}",
        "n_spikes": int(t.size),
        "rate_hz": t.size / duration_s if duration_s > 0 else math.nan,
        "cv_isi": cv,
        "vm_mean_mV": float(vm.mean()) if vm is not None and vm.size else math.nan,
        "vm_sd_mV": float(vm.std()) if vm is not None and vm.size else math.nan,
    }


def collect(
    outdir: str | os.PathLike,
    *,
    plots: bool = True,
    show_progress: bool = False,
    damaged: list[str] | None = None,
    notes: list[str] | None = None,
) -> tuple[Path, list[Path]]:
    """Write ``summary.csv`` (and plots) for a sweep directory; return their paths.

    A finished run whose outputs cannot be read gets status ``damaged`` and its error (and a
    line in ``damaged``, when given); the other runs are collected as usual. ``notes``
    receives why a figure was not written (no finished run, no run with a rate).
    """
    outdir = Path(outdir)
    if not is_sweep_dir(outdir):
        raise BuildError(f"{outdir}: not a sweep directory (no sweep.json)")
    sweep = read_sweep_dir(outdir)
    rows = write_manifest(outdir, sweep)
    metric_keys = ["window_ms", "n_spikes", "rate_hz", "cv_isi", "vm_mean_mV", "vm_sd_mV"]
    table: list[dict[str, Any]] = []
    runs = list(zip(sweep.runs, rows, strict=True))
    wrap = progress("collect") if show_progress else (lambda x: x)
    damaged = [] if damaged is None else damaged
    for run, row in wrap(runs):
        out: dict[str, Any] = {"run_id": run.run_id}
        out.update({k: json.dumps(run.overrides[k]) for k in sweep.keys})
        out.update({"seed": run.seed, "status": row["status"]})
        m: dict[str, float] = {}
        error = row.get("error", "")
        if row["status"] == "done":
            try:
                m = run_metrics(outdir / run.run_id)
            except BuildError as exc:  # a damaged run is reported; the others are collected
                out["status"] = "damaged"
                error = str(exc)
                damaged.append(f"{run.run_id}: {exc}")
        out.update({k: m.get(k, "") for k in metric_keys})
        out["error"] = error
        table.append(out)
    buf = io.StringIO()
    w = csv.DictWriter(
        buf,
        fieldnames=["run_id", *sweep.keys, "seed", "status", *metric_keys, "error"],
        lineterminator="\n",
    )
    w.writeheader()
    w.writerows(table)
    path = outdir / SUMMARY
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    _collect_transfer_tables(outdir, [r["run_id"] for r in table if r["status"] == "done"])
    notes = [] if notes is None else notes
    pngs = _plots(outdir, sweep.keys, table, notes) if plots else []
    return path, pngs


TRANSFER = "transfer_function.csv"


def _collect_transfer_tables(outdir: Path, run_ids: list[str]) -> Path | None:
    """``DIR/transfer_function.csv``: every finished run's ``output/transfer_function.csv``
    (the NEST runner writes one for cells driven at per-cell rates), rows in run order, each
    prefixed by its ``run_id``; the sweep form of one run over the whole grid. None when no
    run wrote one."""
    header: list[str] | None = None
    lines: list[str] = []
    for rid in run_ids:
        f = outdir / rid / "output" / TRANSFER
        if not f.is_file():
            continue
        head, *rows = f.read_text().splitlines()
        cols = head.split(",")
        if header is None:
            header = cols
        elif cols != header:
            raise RunError(f"{f}: columns {head} differ from the other runs' {','.join(header)}")
        lines += [f"{rid},{r}" for r in rows if r]
    if header is None:
        return None
    path = outdir / TRANSFER
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(["run_id," + ",".join(header), *lines]) + "\n")
    return path


def _unit(key: str) -> str:
    from ..recipes.l5_params import key_unit

    unit = key_unit(key)
    return f" ({unit})" if unit else ""


def _plots(
    outdir: Path, keys: list[str], table: list[dict[str, Any]], notes: list[str]
) -> list[Path]:
    done = [r for r in table if r["status"] == "done"]
    rated = [r for r in done if not math.isnan(float(r["rate_hz"]))]
    swept = [k for k in keys if len({r[k] for r in table}) > 1] or ["seed"]
    if not done:
        statuses = sorted({r["status"] for r in table})
        notes.append(
            f"summary_rate.png not written: none of the {len(table)} runs has finished "
            f"(statuses: {', '.join(statuses) or 'none'}); run 'run-network {outdir}' first"
        )
        return []
    if not rated:
        notes.append(
            "summary_rate.png not written: every finished run ends within its warm-up "
            "(run.warmup_ms), so none has a rate"
        )
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [r for r in table if r not in rated]
    fig, axes = plt.subplots(1, len(swept), figsize=(4.2 * len(swept), 3.6), squeeze=False)
    for ax, key in zip(axes[0], swept, strict=True):
        # group by the JSON text (hashable whatever the value: numbers, strings, lists, objects)
        groups: dict[str, list[float]] = {}
        for r in rated:
            groups.setdefault(str(r[key]), []).append(float(r["rate_hz"]))
        for r in others:
            groups.setdefault(str(r[key]), [])
        value = {t: json.loads(t) for t in groups}
        numeric = all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
        )
        xs = sorted(groups, key=lambda t: value[t]) if numeric else list(groups)
        pos = [value[t] for t in xs] if numeric else list(range(len(xs)))
        with_rate = [(p, x) for p, x in zip(pos, xs, strict=True) if groups[x]]
        means = [np.mean(groups[x]) for _, x in with_rate]
        sds = [np.std(groups[x]) for _, x in with_rate]
        for p, x in with_rate:
            ax.plot([p] * len(groups[x]), groups[x], "o", color="0.7", ms=4, zorder=1)
        ax.errorbar(
            [p for p, _ in with_rate],
            means,
            yerr=sds,
            fmt="-o",
            color="C0",
            capsize=3,
            zorder=2,
            label="mean ± SD",
        )
        if others:  # runs without a rate: a red cross at the bottom, one per run
            where = {x: p for p, x in zip(pos, xs, strict=True)}
            px = [where[str(r[key])] for r in others]
            ax.plot(
                px,
                [0.0] * len(px),
                "x",
                color="tab:red",
                ms=7,
                zorder=3,
                clip_on=False,
                label=f"no rate ({len(others)}: not finished or failed)",
            )
        if not numeric:
            ax.set_xticks(pos, [str(x) for x in xs], rotation=30)
        ax.set_xlabel(f"{key}{_unit(key) if key != 'seed' else ''}")
        ax.set_ylabel("output rate (Hz per cell)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"rate vs {key}")
    axes[0][0].legend(fontsize=8)
    windows = sorted({r["window_ms"] for r in rated})
    fig.suptitle(
        f"{outdir.name}: {len(rated)} of {len(table)} runs with a rate; spikes counted over "
        f"{', '.join(windows)} ms (after the warm-up)",
        fontsize=9,
    )
    fig.tight_layout()
    png = outdir / "summary_rate.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return [png]


def main(argv: list[str] | None = None) -> int:
    """``run-network collect DIR``."""
    p = argparse.ArgumentParser(
        prog="run-network collect",
        description="Summarise a sweep: DIR/summary.csv and a rate plot.",
    )
    p.add_argument("outdir", metavar="DIR")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    ns = p.parse_args(argv)
    damaged: list[str] = []
    notes: list[str] = []
    try:
        path, pngs = collect(
            ns.outdir,
            plots=not ns.no_plot,
            show_progress=not ns.quiet and sys.stderr.isatty(),
            damaged=damaged,
            notes=notes,
        )
    except BuildError as exc:
        print(f"run-network collect: error: {exc}", file=sys.stderr)
        return 2
    if not ns.quiet:
        print(path)
        for png in pngs:
            print(png)
    for note in notes:
        print(f"run-network collect: note: {note}", file=sys.stderr)
    for line in damaged:
        print(f"run-network collect: damaged run {line}", file=sys.stderr)
    return 1 if damaged else 0
