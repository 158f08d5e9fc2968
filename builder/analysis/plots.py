"""Figures of a built (and possibly run) network output directory, written as PNGs.

``run-network plot DIR`` and ``run-network --plot`` call into this module. It reads only the
files a build and a run leave in ``DIR`` and writes, into ``DIR/output/plots/`` (or a chosen
folder):

``inputs_raster.png``
    One raster per input population (``exc_stim``, ``prox_inh_stim``, ``dist_inh_stim``) over a
    shared time axis, each with its population rate (Hz per cell, 10 ms bins, all cells)
    beneath. Long runs show only their first :data:`RASTER_WINDOW_MS`, and at most
    :data:`RASTER_MAX_CELLS` evenly spaced cells per population (the title says so).
``soma_vm.png``
    The somatic membrane potential with the output spike times marked; long traces are drawn as
    a per-pixel min/max envelope (peaks are kept) plus a full-resolution zoom on the raster
    window; the warm-up (``run.warmup_ms`` after the input onset) is shaded and the rate in the
    title counts the spikes after it. Needs the run: skipped, with a note, when the run or its
    soma ``v`` report is absent.
``morphology_synapses.png``
    The cell's segments projected on the x-y plane with every synapse as a dot, coloured by
    input population (left) and, for excitatory synapses, by functional group (right).

Every PNG is written atomically (temporary file + :func:`os.replace`). matplotlib is imported
only inside the plotting functions, through its Agg canvas (no display, no pyplot, no change
of the caller's global backend), so building a network never pays for it.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..core.errors import BuildError, OutputError, RunError
from ..core.output import MANIFEST_NAME, atomic_path
from ..core.rng import stream
from ..core.runs import CONFIG_NAME, SPEC_COPY
from ..core.segments import SegmentTable
from ..core.simconfig import expand_config_path, rate_window_ms
from ..core.sonata_read import read_report, read_spikes

__all__ = [
    "INPUT_POPULATIONS",
    "RASTER_MAX_CELLS",
    "RASTER_WINDOW_MS",
    "RATE_BIN_MS",
    "main",
    "plot_run",
]

log = logging.getLogger("builder.analysis.plots")

#: Input populations, in the order their panels are drawn.
INPUT_POPULATIONS = ("exc_stim", "prox_inh_stim", "dist_inh_stim")
#: Longest stretch of input spikes drawn in the raster figure (from the start of the run).
RASTER_WINDOW_MS = 2000.0
#: Most cells drawn per raster panel (evenly spaced over the node ids); rates use all cells.
RASTER_MAX_CELLS = 250
#: Bin width of the population rates.
RATE_BIN_MS = 10.0
#: Longest trace drawn point by point; longer ones become a min/max envelope of this many bins.
VM_MAX_POINTS = 4000

PLOTS_SUBDIR = "plots"
_COLOURS = {"exc_stim": "tab:red", "prox_inh_stim": "tab:blue", "dist_inh_stim": "tab:green"}
_LABELS = {
    "exc_stim": "excitatory (exc_stim)",
    "prox_inh_stim": "proximal inhibitory (prox_inh_stim)",
    "dist_inh_stim": "distal inhibitory (dist_inh_stim)",
}
_DPI = 100


# ---------------------------------------------------------------------------------------------
# What a built / run output directory holds
# ---------------------------------------------------------------------------------------------


@dataclass
class _Output:
    """Paths and times of one built network output directory."""

    base: Path
    config: dict[str, Any]
    tstart_ms: float
    tstop_ms: float
    output_dir: Path
    spikes_file: Path

    def spikes_input(self, pop: str) -> Path:
        return self.base / f"{pop}_spikes.h5"

    def nodes(self, pop: str) -> Path:
        return self.base / "network" / f"{pop}_nodes.h5"

    def edges(self, pop: str) -> Path:
        return self.base / "network" / f"{pop}_biophysical_edges.h5"

    @property
    def segments(self) -> Path:
        return self.base / "segments.csv"

    @property
    def groups(self) -> Path:
        return self.base / "FunctionalGroups.csv"

    def required(self) -> list[Path]:
        """Files the build must have written for the input and morphology figures."""
        files = [self.segments, self.groups]
        for pop in INPUT_POPULATIONS:
            files += [self.spikes_input(pop), self.nodes(pop), self.edges(pop)]
        return files


def _open_output(outdir: str | os.PathLike) -> _Output:
    """Read ``outdir``'s simulation config; raise :class:`RunError` naming any missing file."""
    base = Path(outdir)
    if base.is_file() and base.name == CONFIG_NAME:
        base = base.parent
    if not base.is_dir():
        raise RunError(f"{base}: no such directory (expected a built network output directory)")
    base = base.resolve()
    config_path = base / CONFIG_NAME
    if not config_path.is_file():
        raise RunError(
            f"{base}: not a built network output directory: missing {CONFIG_NAME} "
            "(build one with build-network)"
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{config_path}: cannot read the simulation config ({exc})") from None
    if not isinstance(config, dict):
        raise RunError(f"{config_path}: the simulation config is not a JSON object")
    run = config.get("run") or {}
    try:
        tstart_ms = float(run.get("tstart", 0.0))
        tstop_ms = float(run["tstop"])
    except (KeyError, TypeError, ValueError):
        raise RunError(f"{config_path}: run.tstop is missing or not a number") from None
    manifest = {str(k): str(v) for k, v in (config.get("manifest") or {}).items()}
    out_cfg = config.get("output") or {}
    output_dir = expand_config_path(
        str(out_cfg.get("output_dir", "$BASE_DIR/output")), manifest, base
    )
    spikes = str(out_cfg.get("spikes_file", "spikes.h5"))
    spikes_file = (
        expand_config_path(spikes, manifest, base)
        if spikes.startswith("$") or os.path.isabs(spikes)
        else output_dir / spikes
    )
    out = _Output(base, config, tstart_ms, tstop_ms, output_dir, spikes_file)
    missing = [p for p in out.required() if not p.is_file()]
    if missing:
        names = ", ".join(p.relative_to(base).as_posix() for p in missing)
        raise RunError(f"{base}: incomplete network output directory: missing {names}")
    return out


def _soma_report(out: _Output) -> Path | None:
    """The membrane report of somatic ``v`` the config asks for (None if it asks for none)."""
    manifest = {str(k): str(v) for k, v in (out.config.get("manifest") or {}).items()}
    candidates = []
    for name, rep in (out.config.get("reports") or {}).items():
        if not isinstance(rep, dict) or rep.get("module") != "membrane_report":
            continue
        if not rep.get("enabled", True):
            continue
        variables = rep.get("variable_name", [])
        variables = [variables] if isinstance(variables, str) else list(variables)
        if "v" not in variables:
            continue
        file_name = str(rep.get("file_name", f"{name}.h5"))
        path = (
            expand_config_path(file_name, manifest, out.base)
            if file_name.startswith("$") or os.path.isabs(file_name)
            else out.output_dir / file_name
        )
        candidates.append((rep.get("sections") != "soma", path))
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


def _read_spikes(path: Path, population: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Node ids and times (ms) of one population of a SONATA spikes file (all if None)."""
    return read_spikes(path, population)


def _n_nodes(path: Path, population: str) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f[f"nodes/{population}/node_id"].shape[0])
    except (OSError, KeyError) as exc:
        raise RunError(f"{path}: cannot read nodes of population {population!r} ({exc})") from None


def _read_edges(path: Path, population: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source node ids, ``sec_id`` and ``sec_x`` of an edge file onto the cell."""
    name = f"{population}_to_biophysical"
    try:
        with h5py.File(path, "r") as f:
            grp = f.get(f"edges/{name}")
            if grp is None:
                names = list(f.get("edges", {}))
                if len(names) != 1:
                    raise RunError(f"{path}: no edge population {name!r}")
                grp = f["edges"][names[0]]
            src = np.asarray(grp["source_node_id"][()], dtype=np.int64)
            gid = np.asarray(grp["edge_group_id"][()], dtype=np.int64)
            gidx = np.asarray(grp["edge_group_index"][()], dtype=np.int64)
            sec_id = np.empty(len(src), dtype=np.int64)
            sec_x = np.empty(len(src), dtype=np.float64)
            for g in np.unique(gid):
                rows = gid == g
                sec_id[rows] = np.asarray(grp[f"{g}/sec_id"][()])[gidx[rows]]
                sec_x[rows] = np.asarray(grp[f"{g}/sec_x"][()])[gidx[rows]]
    except (OSError, KeyError) as exc:
        raise RunError(f"{path}: cannot read synapse locations ({exc})") from None
    return src, sec_id, sec_x


def _read_groups(path: Path) -> np.ndarray:
    """Functional group of each ``exc_stim`` node id (-1 where the table has none)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        header = [h.strip() for h in rows[0]]
        i_id, i_grp = header.index("Node ID"), header.index("Functional Group")
        body = np.array([[int(r[i_id]), int(r[i_grp])] for r in rows[1:] if r], dtype=np.int64)
    except (OSError, IndexError, ValueError) as exc:
        raise RunError(f"{path}: cannot read functional groups ({exc})") from None
    body = body.reshape(-1, 2)
    groups = np.full(int(body[:, 0].max()) + 1 if len(body) else 0, -1, dtype=np.int64)
    groups[body[:, 0]] = body[:, 1]
    return groups


def _read_vm(path: Path) -> tuple[np.ndarray, np.ndarray, str, int]:
    """Time (ms), somatic trace, its units and node id of the first cell of a membrane report."""
    report = read_report(path)
    node = int(report.node_ids[0]) if report.node_ids.size else 0
    return report.times_ms, report.trace(), report.units, node


# ---------------------------------------------------------------------------------------------
# Figure helpers
# ---------------------------------------------------------------------------------------------


def _figure(width_in: float, height_in: float) -> Any:
    """A matplotlib Figure on an Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically (temporary file next to ``path``, then rename)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return path


def _spread_cells(n_cells: int, max_cells: int) -> np.ndarray:
    """At most ``max_cells`` node ids evenly spaced over ``0..n_cells-1``."""
    if n_cells <= max_cells:
        return np.arange(n_cells)
    return np.unique(np.round(np.linspace(0, n_cells - 1, max_cells)).astype(np.int64))


def _envelope(t_ms: np.ndarray, v: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max per bin, interleaved, so a long trace draws like the full one (peaks kept)."""
    step = max(1, -(-v.size // n_bins))
    starts = np.arange(0, v.size, step)
    lo = np.minimum.reduceat(v, starts)
    hi = np.maximum.reduceat(v, starts)
    t = np.repeat(t_ms[starts], 2)
    y = np.column_stack([lo, hi]).ravel()
    return t, y


def _time_unit(span_ms: float) -> tuple[float, str]:
    """Divisor and label of the time axis: ms for short spans, s beyond 2 s."""
    return (1000.0, "time (s)") if span_ms > 2000.0 else (1.0, "time (ms)")


# ---------------------------------------------------------------------------------------------
# The three figures
# ---------------------------------------------------------------------------------------------


def _plot_inputs(out: _Output, path: Path) -> Path:
    t0 = out.tstart_ms
    t1 = max(min(out.tstop_ms, t0 + RASTER_WINDOW_MS), t0 + RATE_BIN_MS)
    shortened = out.tstop_ms - out.tstart_ms > RASTER_WINDOW_MS
    edges_ms = np.r_[np.arange(t0, t1 - 1e-9, RATE_BIN_MS), t1]  # last bin may be shorter
    width_s = np.diff(edges_ms) / 1000.0
    fig = _figure(11.0, 10.0)
    axes = fig.subplots(
        2 * len(INPUT_POPULATIONS),
        1,
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1] * len(INPUT_POPULATIONS)},
    )
    subsampled = []
    for k, pop in enumerate(INPUT_POPULATIONS):
        ids, ts = _read_spikes(out.spikes_input(pop), pop)
        n_cells = max(_n_nodes(out.nodes(pop), pop), int(ids.max()) + 1 if ids.size else 0)
        run_s = (out.tstop_ms - out.tstart_ms) / 1000.0
        mean_hz = ids.size / max(n_cells, 1) / run_s if run_s > 0 else 0.0
        in_win = (ts >= t0) & (ts < t1)
        ids_w, ts_w = ids[in_win], ts[in_win]
        shown = _spread_cells(n_cells, RASTER_MAX_CELLS)
        if shown.size < n_cells:
            subsampled.append(f"{pop} {shown.size} of {n_cells}")
        keep = np.zeros(max(n_cells, 1), dtype=bool)
        keep[shown] = True
        sel = keep[ids_w]
        colour = _COLOURS.get(pop, "k")
        ax, ax_rate = axes[2 * k], axes[2 * k + 1]
        ax.plot(
            ts_w[sel],
            ids_w[sel],
            linestyle="none",
            marker="|",
            markersize=float(np.clip(100.0 / max(shown.size, 1), 2.5, 8.0)),
            markeredgewidth=0.6,
            color=colour,
        )
        ax.set_ylim(-0.5, max(n_cells, 1) - 0.5)
        ax.set_ylabel("node id")
        shown_txt = (
            f"{shown.size} of {n_cells} cells shown"
            if shown.size < n_cells
            else f"all {n_cells} cells"
        )
        ax.set_title(
            f"{_LABELS.get(pop, pop)}: {ids_w.size:,} spikes in the window, {shown_txt}; "
            f"mean rate over the run {mean_hz:.2f} Hz per cell (dashed)",
            fontsize=10,
            loc="left",
        )
        counts, _ = np.histogram(ts_w, bins=edges_ms)
        rate_hz = counts / max(n_cells, 1) / width_s
        ax_rate.stairs(rate_hz, edges_ms, color=colour, fill=True, alpha=0.35)
        ax_rate.stairs(rate_hz, edges_ms, color=colour, linewidth=0.8)
        ax_rate.axhline(mean_hz, color="k", linestyle="--", linewidth=0.8)
        ax_rate.set_ylabel("rate\n(Hz/cell)")
        ax_rate.set_ylim(bottom=0)
    axes[-1].set_xlim(t0, t1)
    axes[-1].set_xlabel("time (ms)")
    window = (
        f"first {RASTER_WINDOW_MS / 1000:g} s of a {out.tstop_ms / 1000:g} s run"
        if shortened
        else f"whole run, {out.tstart_ms:g}-{out.tstop_ms:g} ms"
    )
    fig.suptitle(
        f"Input spikes ({window}); rates: all cells, {RATE_BIN_MS:g} ms bins"
        + (
            f"\nrasters subsampled to evenly spaced cells: {'; '.join(subsampled)}"
            if subsampled
            else ""
        ),
        fontsize=11,
    )
    return _save(fig, path)


def _plot_vm(out: _Output, report: Path, path: Path) -> Path | None:
    t_ms, v, units, node = _read_vm(report)
    if v.size < 2:
        return None
    ids, ts = (
        _read_spikes(out.spikes_file)
        if out.spikes_file.is_file()
        else (np.zeros(0, np.int64), np.zeros(0))
    )
    ts = np.sort(ts[ids == node])
    w0, w1 = rate_window_ms(out.config)
    in_window = int(((ts >= w0) & (ts <= w1)).sum())
    rate = (
        f", {in_window / ((w1 - w0) / 1000.0):.2f} Hz over {w0:g}-{w1:g} ms (after the warm-up)"
        if w1 > w0
        else f", no rate (the run ends within the warm-up, {w0:g} ms)"
    )
    long_run = t_ms.size > 1 and t_ms[-1] - t_ms[0] > RASTER_WINDOW_MS
    fig = _figure(11.0, 7.0 if long_run else 4.5)
    axes = fig.subplots(2 if long_run else 1, 1, squeeze=False)[:, 0]

    def draw(ax: Any, t: np.ndarray, y: np.ndarray, spikes: np.ndarray, scale: float) -> None:
        ax.plot(t / scale, y, color="k", linewidth=0.6, label=f"soma v ({units})")
        top = float(np.max(y)) if y.size else 0.0
        if spikes.size:
            ax.plot(
                spikes / scale,
                np.full(spikes.size, top + 8.0),
                linestyle="none",
                marker="v",
                markersize=5,
                color="tab:red",
                label=f"output spikes ({spikes.size})",
            )
        ax.set_ylabel(f"V$_m$ ({units})")
        ax.legend(
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=8,
            frameon=False,
            ncols=2,
            borderaxespad=0.1,
        )
        ax.set_ylim(top=top + 18.0)

    scale, xlabel = _time_unit(t_ms[-1] - t_ms[0] if t_ms.size else 0.0)
    if v.size > 2 * VM_MAX_POINTS:
        te, ve = _envelope(t_ms, v, VM_MAX_POINTS)
    else:
        te, ve = t_ms, v
    draw(axes[0], te, ve, ts, scale)
    if w0 > t_ms[0]:  # the start-up transient, not counted in the rate
        for ax, sc in ((axes[0], scale), *(((axes[1], 1.0),) if long_run else ())):
            ax.axvspan(t_ms[0] / sc, w0 / sc, color="0.9", zorder=0, label="warm-up (not counted)")
    axes[0].set_xlabel(xlabel)
    axes[0].set_xlim(t_ms[0] / scale, t_ms[-1] / scale)
    envelope = " (min/max per pixel)" if v.size > 2 * VM_MAX_POINTS else ""
    axes[0].set_title(
        f"Soma Vm of node {node}{envelope}: {ts.size} output spikes{rate} [{report.name}]",
        fontsize=10,
        loc="left",
    )
    if long_run:
        w = t_ms < t_ms[0] + RASTER_WINDOW_MS
        draw(axes[1], t_ms[w], v[w], ts[ts < t_ms[0] + RASTER_WINDOW_MS], 1.0)
        axes[1].set_xlabel("time (ms)")
        axes[1].set_xlim(t_ms[0], t_ms[0] + RASTER_WINDOW_MS)
        axes[1].set_title(
            f"zoom: first {RASTER_WINDOW_MS / 1000:g} s at full resolution", fontsize=10, loc="left"
        )
    return _save(fig, path)


def _section_geometry(seg: SegmentTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row order sorted by (section, X), and each row's section start / end row indices."""
    order = np.lexsort((seg.x, seg.bmtk_id))
    sec = seg.bmtk_id[order]
    starts = np.flatnonzero(np.r_[True, sec[1:] != sec[:-1]])
    ends = np.r_[starts[1:], sec.size]
    counts = ends - starts
    return order, np.repeat(starts, counts), np.repeat(ends, counts)


def _synapse_xy(
    seg: SegmentTable, sec_id: np.ndarray, sec_x: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """x-y position of each synapse, spread uniformly over the extent of its segment.

    The segment is the row with ``BMTK ID`` = ``sec_id`` whose X interval contains ``sec_x``;
    the position is interpolated along the section between segment midpoints, within that
    segment's share of the section (so many synapses on one segment do not hide each other).
    """
    order, start, end = _section_geometry(seg)
    sec = seg.bmtk_id[order]
    x = seg.x[order]
    xy = seg.xyz_um[order, :2]
    n_secs = int(sec.max()) + 1
    sec_first = np.full(n_secs, -1, dtype=np.int64)
    sec_first[sec[start]] = start
    sec_n = np.zeros(n_secs, dtype=np.int64)
    sec_n[sec[start]] = end - start
    valid = (sec_id >= 0) & (sec_id < n_secs)
    valid[valid] = sec_first[sec_id[valid]] >= 0
    out = np.full((sec_id.size, 2), np.nan)
    s = sec_id[valid]
    nseg = sec_n[s]
    lo = sec_first[s]
    jitter = rng.uniform(-0.5, 0.5, s.size) / nseg
    pos = np.clip(sec_x[valid] + jitter, x[lo], x[lo + nseg - 1])
    # one global interpolation: row coordinate u = section + X, monotone over the sorted rows
    u_rows = sec.astype(np.float64) + x
    u = s.astype(np.float64) + pos
    out[valid, 0] = np.interp(u, u_rows, xy[:, 0])
    out[valid, 1] = np.interp(u, u_rows, xy[:, 1])
    return out


def _morphology_lines(seg: SegmentTable) -> np.ndarray:
    """Line segments (n, 2, 2) drawing the cell in x-y.

    Consecutive segments of a section are joined; each section's first segment is joined to
    the nearest segment (3-D) of another section closer to the soma, which stands in for the
    parent's connection point (the table does not record the topology).
    """
    order, start, _ = _section_geometry(seg)
    xyz = seg.xyz_um[order]
    sec = seg.bmtk_id[order]
    dist = seg.distance_um[order]
    within = np.flatnonzero(sec[1:] == sec[:-1])
    lines = [np.stack([xyz[within, :2], xyz[within + 1, :2]], axis=1)]
    firsts = np.unique(start)
    firsts = firsts[seg.type[order][firsts] != "soma"]
    if firsts.size:
        d2 = ((xyz[firsts, None, :] - xyz[None, :, :]) ** 2).sum(axis=2)
        eligible = (sec[None, :] != sec[firsts, None]) & (dist[None, :] < dist[firsts, None])
        d2 = np.where(eligible, d2, np.inf)
        parent = np.argmin(d2, axis=1)
        has = np.isfinite(d2[np.arange(firsts.size), parent])
        lines.append(np.stack([xyz[parent[has], :2], xyz[firsts[has], :2]], axis=1))
    return np.concatenate(lines, axis=0)


def _group_colours(n_groups: int) -> np.ndarray:
    """RGBA colour per functional group: 20 distinct hues, neighbouring groups always differ."""
    from matplotlib import colormaps

    base = np.asarray(colormaps["tab20"].colors)
    base = np.concatenate([base[0::2], base[1::2]])  # dark hues, then their light partners
    rgba = np.ones((max(n_groups, 1), 4))
    rgba[:, :3] = base[np.arange(max(n_groups, 1)) % len(base)]
    return rgba


def _plot_morphology(out: _Output, path: Path) -> Path:
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba
    from matplotlib.lines import Line2D

    seg = SegmentTable.from_csv(out.segments)
    rng = stream(0, "plots", "morphology")
    pops, xys, srcs = [], [], {}
    for k, pop in enumerate(INPUT_POPULATIONS):
        src, sec_id, sec_x = _read_edges(out.edges(pop), pop)
        xy = _synapse_xy(seg, sec_id, sec_x, rng)
        srcs[pop] = (src, xy)
        pops.append(np.full(src.size, k))
        xys.append(xy)
    pop_of = np.concatenate(pops)
    xy_syn = np.concatenate(xys)
    groups = _read_groups(out.groups)
    lines = _morphology_lines(seg)
    soma = seg.type == "soma"
    soma_xy = seg.xyz_um[soma, :2].mean(axis=0) if soma.any() else np.zeros(2)

    xy_all = seg.xyz_um[:, :2]
    lo = xy_all.min(axis=0) - 20.0
    hi = xy_all.max(axis=0) + 20.0
    height_in = 12.0
    panel_w = float(np.clip((height_in - 2.5) * (hi[0] - lo[0]) / (hi[1] - lo[1]), 2.5, 8.0))
    fig = _figure(2 * panel_w + 3.8, height_in)
    ax_pop, ax_grp = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax in (ax_pop, ax_grp):
        ax.add_collection(LineCollection(lines, colors="0.6", linewidths=0.7, zorder=1))
        ax.plot(*soma_xy, marker="o", markersize=8, color="0.35", zorder=2, linestyle="none")
        ax.set_aspect("equal")
        ax.set_xlabel("x (µm)")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
    ax_pop.set_ylabel("y (µm)")

    # all synapses in one shuffled draw: the visible mix of colours matches the counts
    order = rng.permutation(pop_of.size)
    colours = np.array([to_rgba(_COLOURS[p]) for p in INPUT_POPULATIONS])
    ax_pop.scatter(
        xy_syn[order, 0], xy_syn[order, 1], s=2.5, c=colours[pop_of[order]], linewidths=0, zorder=3
    )
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=5,
            color=_COLOURS[pop],
            label=f"{_LABELS[pop]}: {srcs[pop][0].size:,}",
        )
        for pop in INPUT_POPULATIONS
    ]
    handles.append(
        Line2D([], [], linestyle="none", marker="o", markersize=8, color="0.35", label="soma")
    )
    ax_pop.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.06), fontsize=8, frameon=False
    )
    ax_pop.set_title("synapses by input population", fontsize=10)

    src, xy = srcs["exc_stim"]
    grp = np.full(src.size, -1, dtype=np.int64)
    inside = src < groups.size
    grp[inside] = groups[src[inside]]
    known = grp >= 0
    n_groups = int(grp[known].max()) + 1 if known.any() else 0
    rgba = _group_colours(n_groups)
    ax_grp.scatter(xy[known, 0], xy[known, 1], s=2.5, c=rgba[grp[known]], linewidths=0, zorder=3)
    # label each group at the synapse closest to its centroid
    if n_groups:
        g = grp[known]
        pts = xy[known]
        count = np.bincount(g, minlength=n_groups)
        cx = np.bincount(g, weights=pts[:, 0], minlength=n_groups) / np.maximum(count, 1)
        cy = np.bincount(g, weights=pts[:, 1], minlength=n_groups) / np.maximum(count, 1)
        d2 = (pts[:, 0] - cx[g]) ** 2 + (pts[:, 1] - cy[g]) ** 2
        by = np.lexsort((d2, g))
        first = by[np.r_[True, g[by][1:] != g[by][:-1]]]
        from matplotlib import patheffects

        halo = [patheffects.withStroke(linewidth=2.0, foreground="white")]
        # biggest groups first; skip a label that would overlap one already placed
        um_per_in = (hi[1] - lo[1]) / (height_in - 2.5)
        min_dx, min_dy = 0.16 * um_per_in, 0.11 * um_per_in
        placed: list[tuple[float, float]] = []
        for i in first[np.argsort(-count[g[first]], kind="stable")]:
            x_i, y_i = float(pts[i, 0]), float(pts[i, 1])
            if any(abs(x_i - a) < min_dx and abs(y_i - b) < min_dy for a, b in placed):
                continue
            placed.append((x_i, y_i))
            ax_grp.text(
                pts[i, 0],
                pts[i, 1],
                str(g[i]),
                fontsize=6.5,
                ha="center",
                va="center",
                color=rgba[g[i]] * [0.7, 0.7, 0.7, 1.0],
                zorder=4,
                path_effects=halo,
            )
    ax_grp.set_title(f"excitatory synapses by functional group ({n_groups} groups)", fontsize=10)
    ax_grp.text(
        0.5,
        -0.06,
        "numbers: group ids (where they fit); colours repeat every 20",
        transform=ax_grp.transAxes,
        ha="center",
        va="top",
        fontsize=8,
    )
    fig.suptitle(
        "Cell morphology (x-y projection of segment midpoints) with its synapses\n"
        "(each synapse drawn at a random point of its segment)",
        fontsize=11,
    )
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def plot_run(
    outdir: str | os.PathLike,
    plot_dir: str | os.PathLike | None = None,
    notes: list[str] | None = None,
) -> list[Path]:
    """Write the PNG figures of a built (and possibly run) network output directory.

    Parameters
    ----------
    outdir : path-like
        The output directory of ``build-network`` (holding ``simulation_config.json``), or
        that config file itself.
    plot_dir : path-like, optional
        Where to write the PNGs; default ``<output dir of the config>/plots``
        (``outdir/output/plots`` for a default build). Created if needed.
    notes : list of str, optional
        Receives one line per figure that was skipped and why (e.g. the run has not happened
        yet); when omitted, such notes are logged as warnings of the ``builder.analysis.plots``
        logger.

    Returns
    -------
    list of Path
        The PNGs written: ``inputs_raster.png``, ``soma_vm.png`` (only when the run wrote a
        somatic ``v`` report) and ``morphology_synapses.png``.

    Raises
    ------
    RunError
        ``outdir`` is missing or incomplete (the message names every missing file) or a file
        in it cannot be read.
    OutputError
        The plot folder cannot be written.
    """
    base = Path(outdir)
    config_file = base if base.is_file() else base / CONFIG_NAME
    base = base.parent if base.is_file() else base
    # a network we did not build (a BMTK project, whatever its config is called): no manifest
    foreign = config_file.is_file() and not (base / MANIFEST_NAME).is_file()
    if (base / SPEC_COPY).is_file() or foreign:  # spikes per population, no L5 inputs
        from .plots_ecp import ecp_figures
        from .plots_network import plot_run as plot_network
        from .plots_network import run_output_dir

        written = plot_network(config_file, plot_dir)
        config = json.loads(config_file.read_text())
        say = notes.append if notes is not None else log.warning
        output = run_output_dir(config_file)
        return written + ecp_figures(config, base, output, written[0].parent, say)
    out = _open_output(outdir)
    target = Path(plot_dir) if plot_dir is not None else out.output_dir / PLOTS_SUBDIR
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target}: cannot create the plot folder ({exc})") from None
    say: Callable[[str], None] = notes.append if notes is not None else log.warning

    written = [_plot_inputs(out, target / "inputs_raster.png")]
    report = _soma_report(out)
    if not out.spikes_file.is_file():
        say(f"soma_vm.png skipped: the network has not been run yet (no {out.spikes_file})")
    elif report is None:
        say("soma_vm.png skipped: the simulation config asks for no membrane report of v")
    elif not report.is_file():
        say(f"soma_vm.png skipped: the run wrote no membrane report ({report} is missing)")
    else:
        vm = _plot_vm(out, report, target / "soma_vm.png")
        if vm is None:
            say(f"soma_vm.png skipped: {report} holds fewer than 2 samples")
        else:
            written.append(vm)
    written.append(_plot_morphology(out, target / "morphology_synapses.png"))
    from .plots_ecp import ecp_figures  # extracellular reports: traces, CSD, electrode layout

    written += ecp_figures(out.config, out.base, out.output_dir, target, say)
    return written


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run-network plot",
        description="Write PNG figures of a built (and possibly run) network output directory: "
        "input rasters and rates, somatic Vm with output spikes, morphology with synapses.",
        epilog="Example: run-network plot runs/7  (writes runs/7/output/plots/*.png)",
    )
    p.add_argument("dir", metavar="DIR", help="the network output directory (build-network -o)")
    p.add_argument(
        "-o", "--out", metavar="PLOTDIR", help="folder for the PNGs (default DIR/output/plots)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``run-network plot DIR [-o PLOTDIR]``; returns the exit status.

    Prints the written paths (one per line) and any skipped figure as a note on stderr;
    a missing or incomplete ``DIR`` gives one message on stderr and status 2.
    """
    ns = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    notes: list[str] = []
    try:
        paths = plot_run(ns.dir, ns.out, notes=notes)
    except BuildError as exc:
        print(f"run-network plot: error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"run-network plot: note: {note}", file=sys.stderr)
    if not ns.quiet:
        for p in paths:
            print(p)
    return 0
