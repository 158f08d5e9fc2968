"""Extracellular potentials on electrodes and current dipole moments of a NEURON run.

A simulation config report ``{"module": "extracellular", "electrode_positions": CSV, "sigma":
S/m, "file_name": "ecp.h5", ...}`` is computed here, not by BMTK (whose module does Python work
on every segment at every time step). How:

1. after the cells exist and the runner has moved them to their nodes' positions and rotations
   (:mod:`builder.simulators.neuron.cellgeom`, the convention of :mod:`builder.core.geometry`),
   every local segment's world geometry (start and end points, diameter) is read from the cell's 3-D
   points (:func:`world_segments`);
2. per population, LFPykit gives the linear map from transmembrane currents to electrode
   potentials (:class:`lfpykit.LineSourcePotential` by default, ``"method": "point_source"``
   for :class:`lfpykit.PointSourcePotential`) and to the current dipole moment
   (:class:`lfpykit.CurrentDipoleMoment`);
3. NEURON records every segment's ``i_membrane_`` (``cvode.use_fast_imem``, nA) into Vectors,
   in C; every chunk of time steps the currents are multiplied by the maps in one numpy matrix
   product per population (nothing runs in Python per time step; one BLAS thread, since a
   second one only spin-waits between these small products), summed over MPI ranks and
   written by rank 0.

Outputs (in the run's output directory, with the rest of the run's files):

``ecp.h5``
    ``/ecp/data`` (time x channel, float64, mV), ``/ecp/channel_id``, ``/ecp/positions``
    (channel x 3, um), ``/ecp/time`` = [start, stop, dt] (ms). Row ``k`` is the potential after
    time step ``k + 1``, the convention of BMTK's reports, so its rows line up with the
    membrane reports'. Attributes ``sigma_S_per_m`` and ``method``.
``<contributions_dir>/<population>.h5``
    The same layout, the part of each cell population (when the report names a
    ``contributions_dir``).
``dipole.h5``
    ``/dipole/<population>/data`` (time x 3: x, y, z, nA um) and ``/dipole/<population>/time``,
    the current dipole moment of each cell population about the origin (the input of EEG
    forward models); ``dipole_file`` in the report names it (``null``: none).

Memory per rank: the Vectors and one copy of a chunk, ``2 x 8 bytes x local segments x chunk
steps``; the chunk is BMTK's block, shortened so that this stays under :data:`BUDGET_BYTES`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import RunError
from ...core.simconfig import expand_config_path

__all__ = [
    "MODULE",
    "METHODS",
    "BUDGET_BYTES",
    "EcpReport",
    "take_reports",
    "read_electrodes",
    "world_segments",
    "cell_segments",
    "electrode_problems",
    "transfer_matrices",
    "add_ecp",
]

#: The ``module`` of an extracellular report.
MODULE = "extracellular"
#: Electrostatic models (LFPykit class names) by the config's ``method``.
METHODS = {"line_source": "LineSourcePotential", "point_source": "PointSourcePotential"}
#: Most memory the recorded currents of one rank may take (both copies), bytes.
BUDGET_BYTES = 256 * 2**20


@dataclass
class EcpReport:
    """One extracellular report of a simulation config, resolved and checked."""

    name: str
    config: Path
    electrodes_file: Path
    positions_um: np.ndarray
    channel_ids: np.ndarray
    sigma: float
    method: str
    cells: str
    file_name: Path
    contributions_dir: Path | None
    dipole_file: Path | None


# ------------------------------------------------------------------ the config


def read_electrodes(path: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Channel ids and ``(n, 3)`` positions (um) of a BMTK electrode file.

    The file is whitespace-separated with a header naming ``x_pos y_pos z_pos`` (and
    optionally ``channel``); ``where`` names the config key for messages.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{where}: cannot read {path} ({exc})") from None
    rows = [r for r in csv.reader(text.splitlines(), delimiter=" ", skipinitialspace=True) if r]
    if not rows:
        raise RunError(f"{where}: {path} is empty (expected a header x_pos y_pos z_pos)")
    header = rows[0]
    missing = [c for c in ("x_pos", "y_pos", "z_pos") if c not in header]
    if missing:
        raise RunError(f"{where}: {path}: the header lacks {', '.join(missing)} (has {header})")
    cols = [header.index(c) for c in ("x_pos", "y_pos", "z_pos")]
    pos, ids = [], []
    for line, row in enumerate(rows[1:], start=2):
        try:
            pos.append([float(row[c]) for c in cols])
            ids.append(int(row[header.index("channel")]) if "channel" in header else line - 2)
        except (IndexError, ValueError):
            raise RunError(
                f"{where}: {path} line {line}: not a channel row: {' '.join(row)}"
            ) from None
    if not pos:
        raise RunError(f"{where}: {path} has no electrodes")
    positions = np.array(pos, dtype=np.float64)
    if not np.isfinite(positions).all():
        raise RunError(f"{where}: {path}: electrode positions must be finite numbers")
    return np.array(ids, dtype=np.int64), positions


def take_reports(config: dict[str, Any], config_path: Path, output_dir: Path) -> list[EcpReport]:
    """Remove the extracellular reports from ``config`` (BMTK must not run them); parse them.

    Every problem (a missing electrode file, a bad sigma or method) raises :class:`RunError`
    naming the config file and the key.
    """
    reports = config.get("reports") or {}
    base = config_path.parent
    manifest = dict(config.get("manifest") or {})
    manifest["$BASE_DIR"] = str(base)
    manifest.setdefault("${BASE_DIR}", str(base))
    out: list[EcpReport] = []
    for name in list(reports):
        rep = reports[name]
        if not isinstance(rep, dict) or rep.get("module") != MODULE:
            continue
        del reports[name]
        if not rep.get("enabled", True):
            continue
        where = f"{config_path}: reports.{name}"
        if "electrode_positions" not in rep:
            raise RunError(f"{where}.electrode_positions: required (a CSV of x_pos y_pos z_pos)")
        path = expand_config_path(str(rep["electrode_positions"]), manifest, base)
        ids, pos = read_electrodes(path, f"{where}.electrode_positions")
        sigma = rep.get("sigma", 0.3)
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma > 0:
            raise RunError(f"{where}.sigma: {sigma!r} is not a conductivity > 0 (S/m)")
        method = rep.get("method", "line_source")
        if method not in METHODS:
            raise RunError(f"{where}.method: {method!r}; use one of {', '.join(METHODS)}")

        def _out(rep: dict[str, Any], key: str, default: str | None) -> Path | None:
            value = rep.get(key, default)
            if value is None:
                return None
            p = Path(str(value))
            return (
                expand_config_path(str(value), manifest, base)
                if "$" in str(value)
                else output_dir / p
            )

        out.append(
            EcpReport(
                name=name,
                config=config_path,
                electrodes_file=path,
                positions_um=pos,
                channel_ids=ids,
                sigma=float(sigma),
                method=str(method),
                cells=str(rep.get("cells", "biophysical_nodes")),
                file_name=_out(rep, "file_name", f"{name}.h5"),  # type: ignore[arg-type]
                contributions_dir=_out(rep, "contributions_dir", None),
                dipole_file=_out(rep, "dipole_file", "dipole.h5"),
            )
        )
    return out


# ------------------------------------------------------------------ geometry
def cell_segments(hobj: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """Every segment of a cell in its own (morphology) coordinates.

    Returns ``start`` and ``end`` ``(n, 3)`` points (um), ``diam`` ``(n,)`` (um) and the
    segments, in the order of the cell's ``all`` section list and ``x`` within a section. Each
    segment is the straight line between the points of its section's 3-D path at its two ends
    (arc-length interpolation); its diameter is NEURON's ``seg.diam``.
    """
    starts, ends, diams, segs = [], [], [], []
    for sec in hobj.all:
        n3d = int(sec.n3d())
        nseg = int(sec.nseg)
        edges = np.linspace(0.0, 1.0, nseg + 1)
        if n3d < 2:
            raise RunError(f"{sec.name()}: no 3-D points; the extracellular potential needs them")
        arc = np.array([sec.arc3d(i) for i in range(n3d)])
        pts = np.array([[sec.x3d(i), sec.y3d(i), sec.z3d(i)] for i in range(n3d)])
        length = arc[-1] if arc[-1] > 0 else 1.0
        where = edges * length
        xyz = np.stack([np.interp(where, arc, pts[:, k]) for k in range(3)], axis=1)
        starts.append(xyz[:-1])
        ends.append(xyz[1:])
        for seg in sec:
            diams.append(float(seg.diam))
            segs.append(seg)
    return np.concatenate(starts), np.concatenate(ends), np.array(diams), segs


def world_segments(cell: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """A BMTK cell's segments in world coordinates (see :func:`cell_segments`).

    The runner has already moved every cell's 3-D points to its node's position and rotation
    (:func:`builder.simulators.neuron.cellgeom.place_cells`, before this module is set up), so the
    points NEURON holds are world coordinates: nothing is applied here a second time.
    """
    return cell_segments(cell.hobj)


def electrode_problems(
    positions_um: np.ndarray, start: np.ndarray, end: np.ndarray, diam: np.ndarray
) -> list[tuple[int, int, float]]:
    """Electrodes that lie inside a segment: ``(channel index, segment index, distance)``.

    Inside means closer to the segment's axis (the line between its end points, within its
    length) than its radius; one entry per electrode, for the deepest segment.
    """
    d = end - start
    len2 = np.einsum("ij,ij->i", d, d)
    rel = positions_um[:, None, :] - start[None, :, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(len2 > 0, np.einsum("cij,ij->ci", rel, d) / len2, 0.0)
    s = np.clip(s, 0.0, 1.0)
    closest = start[None, :, :] + s[:, :, None] * d[None, :, :]
    dist = np.linalg.norm(positions_um[:, None, :] - closest, axis=2)
    inside = dist < diam[None, :] / 2.0
    out = []
    for ch in np.flatnonzero(inside.any(axis=1)):
        depth = np.where(inside[ch], diam / 2.0 - dist[ch], -np.inf)
        seg = int(np.argmax(depth))
        out.append((int(ch), seg, float(dist[ch, seg])))
    return out


def transfer_matrices(
    start: np.ndarray,
    end: np.ndarray,
    diam: np.ndarray,
    positions_um: np.ndarray,
    sigma: float,
    method: str,
) -> tuple[np.ndarray, np.ndarray]:
    """LFPykit's maps of segment currents (nA): to electrode potentials (mV) and to the dipole.

    Returns ``(n_channels, n_segments)`` and ``(3, n_segments)`` (nA um per nA) matrices.
    """
    import lfpykit

    geom = lfpykit.CellGeometry(
        x=np.ascontiguousarray(np.stack([start[:, 0], end[:, 0]], axis=1)),
        y=np.ascontiguousarray(np.stack([start[:, 1], end[:, 1]], axis=1)),
        z=np.ascontiguousarray(np.stack([start[:, 2], end[:, 2]], axis=1)),
        d=np.asarray(diam, dtype=np.float64),
    )
    model = getattr(lfpykit, METHODS[method])(
        geom,
        x=np.ascontiguousarray(positions_um[:, 0]),
        y=np.ascontiguousarray(positions_um[:, 1]),
        z=np.ascontiguousarray(positions_um[:, 2]),
        sigma=float(sigma),
    )
    return model.get_transformation_matrix(), lfpykit.CurrentDipoleMoment(
        geom
    ).get_transformation_matrix()


# ------------------------------------------------------------------ writing
def _write_layout(path: Path, data_shape: tuple[int, int], rep: EcpReport, sim: Any) -> Any:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    f = h5py.File(path, "w")
    g = f.create_group("ecp")
    data = g.create_dataset("data", shape=data_shape, dtype="f8")
    data.attrs["units"] = "mV"
    g.create_dataset("channel_id", data=rep.channel_ids)
    pos = g.create_dataset("positions", data=rep.positions_um)
    pos.attrs["units"] = "um"
    t = g.create_dataset("time", data=np.array([0.0, float(sim.tstop), float(sim.dt)]))
    t.attrs["units"] = "ms"
    g.attrs["sigma_S_per_m"] = rep.sigma
    g.attrs["method"] = rep.method
    return f


def _sim_module_class() -> type:
    from bmtk.simulator.bionet.modules.sim_module import SimulatorMod
    from neuron import h

    class ExtracellularReport(SimulatorMod):
        """Records segment currents in C and maps them to electrodes in numpy, per chunk."""

        chunked_role = "ecp"  # engine.CHUNKED_ROLE: flushed per chunk

        def __init__(self, rep: EcpReport, populations: list[str]):
            self.rep = rep
            self.populations = populations

        # -- set-up, before the run: geometry, checks, maps, recordings
        def setup(self, sim: Any) -> None:
            self.pc = h.ParallelContext()
            gids = sorted(set(sim.net.get_node_set(self.rep.cells).gids()) & set(sim.local_gids))
            by_pop: dict[str, list[tuple[Any, ...]]] = {p: [] for p in self.populations}
            problems = []
            for gid in gids:
                cell = sim.net.get_cell_gid(gid)
                start, end, diam, segs = world_segments(cell)
                for ch, seg, dist in electrode_problems(self.rep.positions_um, start, end, diam):
                    p = self.rep.positions_um[ch]
                    problems.append(
                        f"channel {int(self.rep.channel_ids[ch])} at ({p[0]:g}, {p[1]:g}, "
                        f"{p[2]:g}) um lies inside {segs[seg]} of node {cell.node_id} of "
                        f"{cell.population_name} ({dist:.3g} um from its axis, radius "
                        f"{diam[seg] / 2:.3g} um)"
                    )
                by_pop.setdefault(cell.population_name, []).append((start, end, diam, segs))
            everything = self.pc.py_allgather(problems)
            problems = sorted({p for part in everything for p in part})
            if problems:
                more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
                raise RunError(
                    f"{self.rep.config}: reports.{self.rep.name}.electrode_positions "
                    f"({self.rep.electrodes_file}): {'; '.join(problems[:5])}{more}: "
                    "move the electrodes out of the cells"
                )
            self.maps: list[tuple[str, np.ndarray, np.ndarray]] = []
            self.vectors: list[Any] = []
            for pop in self.populations:
                parts = by_pop.get(pop, [])
                if not parts:
                    self.maps.append(
                        (pop, np.zeros((len(self.rep.positions_um), 0)), np.zeros((3, 0)))
                    )
                    continue
                start = np.concatenate([p[0] for p in parts])
                end = np.concatenate([p[1] for p in parts])
                diam = np.concatenate([p[2] for p in parts])
                m_ecp, m_dip = transfer_matrices(
                    start, end, diam, self.rep.positions_um, self.rep.sigma, self.rep.method
                )
                self.maps.append((pop, m_ecp, m_dip))
                for part in parts:
                    for seg in part[3]:
                        vec = h.Vector()
                        vec.record(seg._ref_i_membrane_)
                        self.vectors.append(vec)
            n_local = len(self.vectors)
            n_max = int(self.pc.allreduce(n_local, 2))
            block = int(sim.nsteps_block)
            self.chunk = max(1, min(block, BUDGET_BYTES // max(1, 16 * n_max)))
            for vec in self.vectors:
                vec.buffer_size(self.chunk + 2)
            self._buf = np.empty((n_local, 0))
            self._blas: Any = None

        def _one_blas_thread(self) -> None:
            # The per-chunk products are small (16 rows); a second OpenBLAS thread only
            # spin-waits between them (measured: ~10 % of the lfpy_network run's CPU time).
            from threadpoolctl import threadpool_limits

            self._blas = threadpool_limits(limits=1, user_api="blas")

        def initialize(self, sim: Any) -> None:
            self._one_blas_thread()
            self.nsteps = int(sim.nsteps)
            self.row = 0
            self.since = 0
            self.files: dict[str, Any] = {}
            n_ch = len(self.rep.positions_um)
            if int(self.pc.id()) != 0:
                return
            self.files["ecp"] = _write_layout(
                self.rep.file_name, (self.nsteps, n_ch), self.rep, sim
            )
            if self.rep.contributions_dir is not None:
                for pop in self.populations:
                    path = self.rep.contributions_dir / f"{pop}.h5"
                    self.files[f"ecp/{pop}"] = _write_layout(
                        path, (self.nsteps, n_ch), self.rep, sim
                    )
            if self.rep.dipole_file is not None:
                import h5py

                self.rep.dipole_file.parent.mkdir(parents=True, exist_ok=True)
                f = h5py.File(self.rep.dipole_file, "w")
                for pop in self.populations:
                    g = f.create_group(f"dipole/{pop}")
                    d = g.create_dataset("data", shape=(self.nsteps, 3), dtype="f8")
                    d.attrs["units"] = "nA um"
                    d.attrs["columns"] = "x y z"
                    t = g.create_dataset(
                        "time", data=np.array([0.0, float(sim.tstop), float(sim.dt)])
                    )
                    t.attrs["units"] = "ms"
                self.files["dipole"] = f

        # -- the run: a counter per step, a matrix product per chunk
        def step(self, sim: Any, tstep: int) -> None:
            self.since += 1
            if self.since >= self.chunk:
                self.flush()

        def block(self, sim: Any, block_interval: Any) -> None:
            self.flush()

        def _currents(self, n: int) -> np.ndarray:
            # every Vector holds the same samples (the first chunk also the t = 0 one)
            m = int(self.vectors[0].size()) if self.vectors else n
            if m not in (n, n + 1):
                raise RunError(
                    f"reports.{self.rep.name}: {m} membrane-current samples recorded for "
                    f"{n} time steps (the extracellular report lost its alignment)"
                )
            if self._buf.shape[1] < m:  # one buffer for the run: no fresh pages per chunk
                self._buf = np.empty((len(self.vectors), m))
            cur = self._buf[:, :m]
            for k, vec in enumerate(self.vectors):
                vec.to_python(cur[k])  # a C copy into the row (as_numpy + slicing: 5x slower)
                vec.resize(0)  # keeps its capacity (buffer_size): no reallocation while running
            return cur[:, m - n :]

        def flush(self) -> None:
            """Map the ``since`` steps recorded since the last flush to the outputs."""
            n = self.since
            self.since = 0
            if n == 0:
                return
            cur = self._currents(n)
            n_ch = len(self.rep.positions_um)
            n_pop = len(self.maps)
            out = np.zeros((n_pop, n, n_ch + 3))
            first = 0
            for k, (_, m_ecp, m_dip) in enumerate(self.maps):
                k_seg = m_ecp.shape[1]
                if k_seg:
                    i = cur[first : first + k_seg]
                    out[k, :, :n_ch] = (m_ecp @ i).T
                    out[k, :, n_ch:] = (m_dip @ i).T
                    first += k_seg
            if int(self.pc.nhost()) > 1:
                vec = h.Vector(out.ravel())
                self.pc.allreduce(vec, 1)
                out = vec.as_numpy().reshape(out.shape).copy()
            if int(self.pc.id()) == 0:
                rows = slice(self.row, self.row + n)
                self.files["ecp"]["ecp/data"][rows] = out[:, :, :n_ch].sum(axis=0)
                for k, (pop, _, _) in enumerate(self.maps):
                    if f"ecp/{pop}" in self.files:
                        self.files[f"ecp/{pop}"]["ecp/data"][rows] = out[k, :, :n_ch]
                    if "dipole" in self.files:
                        self.files["dipole"][f"dipole/{pop}/data"][rows] = out[k, :, n_ch:]
            self.row += n

        def finalize(self, sim: Any) -> None:
            self.flush()
            for f in self.files.values():
                f.close()
            self.files = {}
            if self._blas is not None:
                self._blas.restore_original_limits()
                self._blas = None

    return ExtracellularReport


def add_ecp(sim: Any, reports: Iterable[EcpReport]) -> list[Any]:
    """Add one module per extracellular report to a BMTK simulator (cells built); returns them.

    Switches on NEURON's fast membrane currents, reads and checks the geometry (an electrode
    inside a cell raises :class:`RunError` before the simulation starts, on every rank) and
    sets up the recordings.
    """
    from neuron import h

    reports = list(reports)
    if not reports:
        return []
    if any(True for _ in h.allsec()):  # NEURON 9 asserts on a rank without sections
        h.CVode().use_fast_imem(1)
    populations = sorted(p.name for p in sim.net.get_node_populations() if not p.virtual_nodes_only)
    cls = _sim_module_class()
    mods = []
    for rep in reports:
        mod = cls(rep, populations)
        mod.setup(sim)
        sim.add_mod(mod)
        mods.append(mod)
    return mods
