"""Figures of a run's extracellular potential (``output/ecp.h5``), written as PNGs.

:func:`builder.analysis.plots.plot_run` (``run-network --plot``, ``run-network plot DIR``) calls
:func:`ecp_figures` when the simulation config has an extracellular report and the run wrote
it:

``ecp_traces.png``
    The potential of every channel against time, one trace per channel stacked in the order
    of the channels along the probe (labelled by their position), with a scale bar.
``ecp_csd.png``
    For channels on one line at a constant pitch (a linear probe, at least 3 contacts): the
    current source density ``CSD = -sigma d2(phi)/dz2`` (second difference along the probe,
    uA/mm3; sinks negative) as an image over time and depth, next to the LFP image.
``ecp_layout.png``
    The somata of the cells (one colour per population) and the electrodes, side view (x-z)
    and top view (x-y).

Core module: h5py, numpy and matplotlib (imported inside the functions), no NEURON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..core.errors import RunError

__all__ = ["EcpData", "read_ecp", "probe_axis", "csd", "ecp_figures"]

#: Most samples drawn per trace; longer ones become a min/max envelope.
MAX_POINTS = 4000


@dataclass
class EcpData:
    """An ``ecp.h5`` as written by :mod:`builder.simulators.neuron.ecp`."""

    t_ms: np.ndarray
    data_mV: np.ndarray  # time x channel
    channel_ids: np.ndarray
    positions_um: np.ndarray  # channel x 3
    sigma: float


def read_ecp(path: str | os.PathLike) -> EcpData:
    """Read an extracellular report; :class:`RunError` naming the file if it is not one."""
    try:
        with h5py.File(path, "r") as f:
            g = f["ecp"]
            data = g["data"][()]
            t0, t1, dt = (float(v) for v in g["time"][()])
            ids = g["channel_id"][()]
            pos = g["positions"][()] if "positions" in g else np.zeros((data.shape[1], 3))
            sigma = float(g.attrs.get("sigma_S_per_m", 0.3))
    except (OSError, KeyError, ValueError) as exc:
        raise RunError(f"{path}: not an extracellular report ({exc})") from None
    t = t0 + dt * np.arange(data.shape[0])
    return EcpData(t, data, ids, pos, sigma)


def probe_axis(positions_um: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Order and coordinates along the line the channels lie on at a constant pitch, or None."""
    if len(positions_um) < 3:
        return None
    centre = positions_um.mean(axis=0)
    _, s, vt = np.linalg.svd(positions_um - centre)
    axis = vt[0] * (1 if vt[0][np.argmax(np.abs(vt[0]))] > 0 else -1)
    if s[0] == 0 or (len(s) > 1 and s[1] > 1e-6 * s[0]):
        return None
    along = positions_um @ axis  # for a probe along z: the channels' z
    order = np.argsort(along)
    steps = np.diff(along[order])
    if steps.min() <= 0 or np.ptp(steps) > 1e-6 * steps.mean():
        return None
    return order, along[order]


def csd(phi_mV: np.ndarray, pitch_um: float, sigma: float) -> np.ndarray:
    """``-sigma d2(phi)/dz2`` of ``time x channel`` potentials on a line (uA/mm3).

    The second difference needs both neighbours: the result has two channels fewer. Units:
    S/m x mV/um2 = 1e9 A/m3 = 1e6 uA/mm3.
    """
    second = phi_mV[:, 2:] - 2 * phi_mV[:, 1:-1] + phi_mV[:, :-2]
    return -sigma * second / pitch_um**2 * 1e6


def _report_paths(config: dict[str, Any], base: Path, output_dir: Path) -> list[Path]:
    out = []
    for name, rep in (config.get("reports") or {}).items():
        if not isinstance(rep, dict) or rep.get("module") != "extracellular":
            continue
        if not rep.get("enabled", True):
            continue
        file_name = str(rep.get("file_name", f"{name}.h5"))
        out.append(Path(file_name) if os.path.isabs(file_name) else output_dir / file_name)
    return out


def _somata(config: dict[str, Any], base: Path) -> dict[str, np.ndarray]:
    """Soma positions (um) of the biophysical populations, by population (zeros if unplaced)."""
    try:
        sets = json.loads((base / "node_sets.json").read_text())
        pops = sets.get("biophysical_nodes", {}).get("population", [])
        pops = [pops] if isinstance(pops, str) else list(pops)
        circuit = json.loads((base / "circuit_config.json").read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, np.ndarray] = {}
    for entry in circuit.get("networks", {}).get("nodes", []):
        path = base / str(entry["nodes_file"]).replace("$BASE_DIR/", "").replace("$BASE_DIR", ".")
        for pop in entry.get("populations", {}):
            if pop not in pops or not path.is_file():
                continue
            with h5py.File(path, "r") as f:
                g = f[f"nodes/{pop}"]
                n = len(g["node_id"]) if "node_id" in g else len(g["node_type_id"])
                grp = g.get("0", {})
                cols = [grp[c][()] if c in grp else np.zeros(n) for c in ("x", "y", "z")]
            out[pop] = np.stack(cols, axis=1).astype(np.float64)
    return out


def ecp_figures(
    config: dict[str, Any],
    base: Path,
    output_dir: Path,
    target: Path,
    say: Callable[[str], None],
) -> list[Path]:
    """Write the figures of every extracellular report the run wrote; notes go to ``say``."""
    written: list[Path] = []
    for path in _report_paths(config, base, output_dir):
        if not path.is_file():
            say(f"ecp figures skipped: the run wrote no extracellular report ({path} is missing)")
            continue
        data = read_ecp(path)
        stem = "ecp" if path.stem == "ecp" else f"ecp_{path.stem}"
        written.append(_plot_traces(data, target / f"{stem}_traces.png"))
        line = probe_axis(data.positions_um)
        if line is None:
            say(f"{stem}_csd.png skipped: the channels are not on a line at a constant pitch")
        else:
            written.append(_plot_csd(data, line, target / f"{stem}_csd.png"))
        written.append(_plot_layout(data, _somata(config, base), target / f"{stem}_layout.png"))
    return written


def _draw(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from .plots import _envelope

    return _envelope(t, y, MAX_POINTS // 2) if y.size > MAX_POINTS else (t, y)


def _plot_traces(data: EcpData, path: Path) -> Path:
    from .plots import _figure, _save, _time_unit

    line = probe_axis(data.positions_um)
    order = line[0] if line is not None else np.arange(data.data_mV.shape[1])
    uv = (data.data_mV - data.data_mV.mean(axis=0)) * 1000.0
    spread = float(np.ptp(uv, axis=0).max()) if uv.size else 0.0
    gap = spread if spread > 0 else 1.0
    div, label = _time_unit(float(data.t_ms[-1] - data.t_ms[0]) if data.t_ms.size else 0.0)
    n = len(order)
    fig = _figure(8.0, max(3.0, 0.45 * n + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    for k, ch in enumerate(order):
        t, y = _draw(data.t_ms, uv[:, ch])
        ax.plot(t / div, y - k * gap, lw=0.6, color="black")
    ax.set_yticks([-k * gap for k in range(n)])
    ax.set_yticklabels(
        [
            f"{int(data.channel_ids[ch])}: ({', '.join(f'{v:g}' for v in data.positions_um[ch])})"
            for ch in order
        ],
        fontsize=7,
    )
    ax.set_xlabel(label)
    ax.set_ylabel("channel: position (um)")
    ax.set_title(f"extracellular potential, mean removed; channels {gap:.3g} uV apart")
    return _save(fig, path)


def _plot_csd(data: EcpData, line: tuple[np.ndarray, np.ndarray], path: Path) -> Path:
    from .plots import _figure, _save, _time_unit

    order, along = line
    pitch = float(np.diff(along).mean())
    phi = data.data_mV[:, order]
    c = csd(phi, pitch, data.sigma)
    div, label = _time_unit(float(data.t_ms[-1] - data.t_ms[0]) if data.t_ms.size else 0.0)
    fig = _figure(10.0, 4.5)
    t = data.t_ms / div
    for i, (img, z, title, unit) in enumerate(
        (
            ((phi - phi.mean(axis=0)) * 1000.0, along, "LFP (mean removed)", "uV"),
            (c, along[1:-1], f"CSD = -sigma d2phi/dz2 (sigma {data.sigma:g} S/m)", "uA/mm3"),
        )
    ):
        ax = fig.add_subplot(1, 2, i + 1)
        lim = float(np.abs(img).max()) or 1.0
        half = pitch / 2
        im = ax.imshow(
            img.T,
            aspect="auto",
            origin="lower",
            cmap="RdBu_r",
            vmin=-lim,
            vmax=lim,
            extent=(t[0], t[-1], z[0] - half, z[-1] + half),
            interpolation="nearest",
        )
        fig.colorbar(im, ax=ax, label=unit)
        ax.set_xlabel(label)
        ax.set_ylabel("position along the probe (um)")
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _plot_layout(data: EcpData, somata: dict[str, np.ndarray], path: Path) -> Path:
    from .plots import _figure, _save

    fig = _figure(10.0, 4.5)
    for i, (a, b, name) in enumerate(((0, 2, "side view (x-z)"), (0, 1, "top view (x-y)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for k, (pop, xyz) in enumerate(sorted(somata.items())):
            ax.scatter(xyz[:, a], xyz[:, b], s=8, color=f"C{k}", label=f"{pop} somata ({len(xyz)})")
        p = data.positions_um
        ax.scatter(p[:, a], p[:, b], marker="s", s=18, color="black", label="electrodes")
        ax.set_xlabel(f"{'xyz'[a]} (um)")
        ax.set_ylabel(f"{'xyz'[b]} (um)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(name)
        if i == 0:
            ax.legend(fontsize=7, loc="best")
    return _save(fig, path)
