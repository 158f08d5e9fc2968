"""Synapse placement on biophysical targets, decided at build time: one segment per synapse.

A connection onto a biophysical population writes one edge row per synapse (SONATA's way; a
connection of ``n`` synapses is ``n`` consecutive rows with the same source, target, weight and
delay), each with the section and position it sits on (``sec_id``/``sec_x``, which BMTK BioNet
reads, and SONATA's ``afferent_section_id``/``afferent_section_pos`` with the same values). The
segments come from the target cell's :class:`~builder.core.segments.SegmentTable`, which the command
layer derives with NEURON and hands in (this module never imports NEURON).

Two placement rules (``placement.rule``):

``density`` (the default)
    Eligible segments: section types in ``sections`` (default soma, dend, apic: everything but
    the axon; ``basal`` means ``dend``) within ``path_distance_um`` of the soma. Each eligible
    segment is drawn with probability proportional to its length (``weight_by: "length"``,
    the default) or its lateral membrane area ``pi * diam * length`` (``"area"``, as LFPy's
    ``get_rand_idx_area_norm``; the table must have diameters) times the density at its
    depth in the network: ``depth_um`` (a range: 1 inside, 0 outside), ``depth_profile``
    (linear between the given depths, 0 outside them), ``depth_gaussians`` (a sum of weighted
    normal probability densities: LFPy's synapse position functions), ``layer_density`` (per
    layer of the target's region) and ``section_layer_density`` (per section type and layer;
    a section type it does not name gets 0). The depth of a segment is its world z
    (:mod:`builder.core.geometry`: the node's rotation about the soma, then its position), the
    coordinate the regions stack their layers along. Every target cell draws all its synapses
    in one weighted draw.

``functional_groups`` (the L5 recipe's rule, :func:`builder.core.placement.place_group`)
    The selected source cells are split, in node order, into groups of ``cells_per_group``
    (:func:`builder.core.placement.group_sizes`). On each target cell, each group gets a centre
    segment (one with at least ``clusters_per_group`` eligible segments within
    ``group_radius_um``) and ``clusters_per_group`` clusters (segments within
    ``cluster_radius_um`` of a cluster centre drawn among the group's segments); the synapses
    of one connection go to distinct clusters of its source's group, one segment uniformly
    inside each, so a connection has at most ``clusters_per_group`` synapses.

Randomness: the density rule draws from ``(seed, "edges", connection, "placement", block)``,
the functional groups from ``(seed, "edges", connection, "groups", target node, group)``;
both are independent of the chunk size and of the weights' and delays' streams.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..components import CellSpec, resolve_cell
from ..errors import BuildError, ComponentError, PlacementError
from ..geometry import rotation_matrices
from ..placement import feasible_centres, group_sizes, place_group
from ..rng import stream
from ..segments import SECTION_TYPES, SegmentTable

__all__ = [
    "DEFAULT_SECTIONS",
    "PLACEMENT_COLUMNS",
    "SegmentTableSource",
    "SynapsePlacer",
    "population_cell",
    "soma_centre",
]

#: Section types synapses go to when ``placement.sections`` is not given.
DEFAULT_SECTIONS = ("soma", "dend", "apic")
#: The per-synapse edge columns a placed connection writes, and their dtypes.
PLACEMENT_COLUMNS = {
    "sec_id": np.int32,
    "sec_x": np.float64,
    "afferent_section_id": np.int32,
    "afferent_section_pos": np.float64,
}
_ALIASES = {"basal": "dend"}
#: Placement keys that make the density depend on the segment's depth (most specific first).
_DEPTH_KEYS = (
    "section_layer_density",
    "layer_density",
    "depth_gaussians",
    "depth_profile",
    "depth_um",
)
#: Target cells whose weights are evaluated at once (cells x segments floats).
_CELLS_PER_PASS = 4096

#: ``(cell, dL_um) -> SegmentTable``: how the command layer derives a cell's segment table.
SegmentTableSource = Callable[[CellSpec, "float | None"], SegmentTable]


def population_cell(model: Mapping[str, Any], components_dir: Path, source: str) -> CellSpec:
    """The resolved cell (component paths) of a biophysical population's ``model``."""
    cell = {
        "components_dir": str(components_dir),
        "model_template": model["template"],
        "model_processing": model.get("model_processing"),
    }
    for key in ("morphology", "dynamics_params"):
        if key in model:
            cell[key] = model[key]
    return resolve_cell({"cell": cell, "_source": source})


def soma_centre(table: SegmentTable) -> np.ndarray:
    """The soma centre in the table's coordinates: the length-weighted mean of the soma
    segments' midpoints (the middle of a cylindrical soma, as BMTK takes it)."""
    soma = np.flatnonzero(table.type == "soma")
    if soma.size == 0:
        raise PlacementError("the cell has no soma section")
    w = table.length_um[soma] if table.has_lengths else np.ones(soma.size)
    return np.average(table.xyz_um[soma], axis=0, weights=w)


def _gaussian_mixture(z: np.ndarray, items: list[Mapping[str, Any]]) -> np.ndarray:
    """``sum_i weight_i * N(z; mean_i, sd_i)``: normal probability densities (1/um)."""
    out = np.zeros(np.shape(z))
    for g in items:
        mu, sd, wt = float(g["mean_um"]), float(g["sd_um"]), float(g.get("weight", 1.0))
        out += wt * np.exp(-0.5 * ((z - mu) / sd) ** 2) / (sd * np.sqrt(2.0 * np.pi))
    return out


def _show(v: Any) -> str:
    import json

    return json.dumps(v)


@dataclass
class _Targets:
    """What placement needs of the target cells of one connection (index = into ``trg``)."""

    node_ids: np.ndarray
    z: np.ndarray | None  # soma depth (world z) of each target
    rot_z: np.ndarray | None  # (n, 3): the third row of each target's rotation matrix


class SynapsePlacer:
    """Places the synapses of one connection onto its (biophysical) target cells.

    Parameters
    ----------
    where : str
        ``"<spec file>: connections.<name>"``: the prefix of every error message.
    cname : str
        The connection's name (its stream key).
    placement : mapping
        The connection's ``placement`` (may be empty).
    table : SegmentTable
        The target population's segment table.
    label : str
        Names the target cell in messages (population and morphology).
    node_ids : ndarray
        The selected target node ids (``Projection.trg``).
    columns : mapping
        The target population's node columns (positions, rotation angles).
    layers : dict
        ``{layer: (z_low, z_high)}`` of the target's region (empty if not layered).
    n_sources : int
        Number of selected source cells (functional groups split them).
    seed : int
    """

    def __init__(
        self,
        where: str,
        cname: str,
        placement: Mapping[str, Any],
        table: SegmentTable,
        label: str,
        node_ids: np.ndarray,
        columns: Mapping[str, np.ndarray],
        layers: Mapping[str, tuple[float, float]],
        n_sources: int,
        seed: int,
    ):
        self.where = where
        self.cname = cname
        self.pl = dict(placement)
        self.rule = self.pl.get("rule", "density")
        self.table = table
        self.label = label
        self.seed = seed
        self.layers = dict(layers)
        n = len(node_ids)
        self.targets = _Targets(node_ids=np.asarray(node_ids, dtype=np.int64), z=None, rot_z=None)
        if "z" in columns:
            self.targets.z = np.asarray(columns["z"], dtype=np.float64)[node_ids]
            keys = [f"rotation_angle_{a}axis" for a in "xyz"]
            if any(k in columns for k in keys):
                ang = np.stack(
                    [
                        np.asarray(columns[k], dtype=np.float64)[node_ids]
                        if k in columns
                        else np.zeros(n)
                        for k in keys
                    ],
                    axis=1,
                )
                self.targets.rot_z = rotation_matrices(ang)[:, 2, :]
        self.rel = table.xyz_um - soma_centre(table)  # (m, 3) about the soma
        self.eligible = self._eligible_mask()
        self.base = np.where(self.eligible, self._segment_weights(), 0.0)
        self.depth_dependent = self.rule == "density" and bool(set(_DEPTH_KEYS) & set(self.pl))
        if self.depth_dependent and self.targets.z is None:
            raise BuildError(
                f"{where}.placement: depth-dependent placement needs positions; the target "
                "population has no region"
            )
        self._sec_layer = self._section_layer_table()
        self._type_code = np.array([SECTION_TYPES.index(x) for x in table.type], dtype=np.int64)
        if self.rule == "functional_groups":
            self._init_groups(n_sources)
        else:
            self._check_every_target_has_room()

    # ------------------------------------------------------------------ eligibility
    def _segment_weights(self) -> np.ndarray:
        """Each segment's weight before the depth density: its length or its membrane area."""
        t = self.table
        by = self.pl.get("weight_by", "length")
        if by == "area":
            try:
                return t.areas_um2()
            except ComponentError as exc:
                raise BuildError(
                    f'{self.where}.placement.weight_by: "area": {self.label}: {exc}; give the '
                    'column in the segment table CSV or use "weight_by": "length"'
                ) from None
        return t.length_um if t.has_lengths else np.ones(len(t))

    def _sections(self) -> list[str]:
        if "sections" in self.pl:
            return [_ALIASES.get(s, s) for s in self.pl["sections"]]
        if "section_layer_density" in self.pl:
            return [_ALIASES.get(s, s) for s in self.pl["section_layer_density"]]
        return list(DEFAULT_SECTIONS)

    def _eligible_mask(self) -> np.ndarray:
        t = self.table
        have = [s for s in SECTION_TYPES if np.any(t.type == s)]
        key = "sections" if "sections" in self.pl else "section_layer_density"
        for given in self.pl.get(key, []):
            if _ALIASES.get(given, given) not in have:
                raise BuildError(
                    f"{self.where}.placement.{key}: {_show(given)}: {self.label} has no "
                    f"{_ALIASES.get(given, given)} sections (it has {', '.join(have)})"
                )
        mask = np.isin(t.type, self._sections())
        if not mask.any():
            raise BuildError(
                f"{self.where}.placement: {self.label} has none of the section types "
                f"{', '.join(self._sections())} (it has {', '.join(have)})"
            )
        if "path_distance_um" in self.pl:
            lo, hi = self.pl["path_distance_um"]
            mask &= (t.distance_um >= lo) & (t.distance_um <= hi)
            if not mask.any():
                d = t.distance_um[np.isin(t.type, self._sections())]
                raise BuildError(
                    f"{self.where}.placement.path_distance_um: {_show([lo, hi])}: no "
                    f"{'/'.join(self._sections())} segment of {self.label} lies in that range "
                    f"(their path distances span {d.min():.1f}..{d.max():.1f} um)"
                )
        return mask

    def _section_layer_table(self) -> np.ndarray | None:
        """``(len(SECTION_TYPES), n_layers + 1)`` densities; the last column is 'no layer'."""
        sld = self.pl.get("section_layer_density")
        if sld is None:
            return None
        names = list(self.layers)
        out = np.zeros((len(SECTION_TYPES), len(names) + 1))
        for sec, per in sld.items():
            i = SECTION_TYPES.index(_ALIASES.get(sec, sec))
            for lay, dens in per.items():
                out[i, names.index(lay)] = float(dens)
        return out

    # ------------------------------------------------------------------ depth
    def depths(self, tidx: np.ndarray) -> np.ndarray:
        """``(len(tidx), m)``: the world z of every segment of the given target cells."""
        assert self.targets.z is not None
        if self.targets.rot_z is None:
            local = np.broadcast_to(self.rel[:, 2], (len(tidx), len(self.rel)))
        else:
            local = self.targets.rot_z[tidx] @ self.rel.T
        return local + self.targets.z[tidx, None]

    def _layer_index(self, z: np.ndarray) -> np.ndarray:
        """Index of the layer each depth falls in (len(layers) when in none)."""
        names = list(self.layers)
        out = np.full(z.shape, len(names), dtype=np.int64)
        for i, lay in enumerate(names):  # a few layers: one pass each
            lo, hi = self.layers[lay]
            out[(z >= lo) & (z < hi) & (out == len(names))] = i
        return out

    def weights(self, tidx: np.ndarray) -> np.ndarray:
        """``(len(tidx), m)`` relative probability of each segment of each target cell."""
        if not self.depth_dependent:
            return np.broadcast_to(self.base, (len(tidx), len(self.base)))
        z = self.depths(tidx)
        w = np.broadcast_to(self.base, z.shape).copy()
        pl = self.pl
        if "depth_um" in pl:
            lo, hi = pl["depth_um"]
            w *= (z >= lo) & (z <= hi)
        if "depth_profile" in pl:
            dp = pl["depth_profile"]
            w *= np.interp(z, dp["depth_um"], dp["density"], left=0.0, right=0.0)
        if "depth_gaussians" in pl:
            w *= _gaussian_mixture(z, pl["depth_gaussians"])
        if "layer_density" in pl or self._sec_layer is not None:
            lay = self._layer_index(z)
            if "layer_density" in pl:
                per = np.array([float(pl["layer_density"].get(n, 0.0)) for n in self.layers] + [0])
                w *= per[lay]
            if self._sec_layer is not None:
                w *= self._sec_layer[self._type_code[None, :], lay]
        return w

    def _check_every_target_has_room(self) -> None:
        n = len(self.targets.node_ids)
        for a in range(0, n, _CELLS_PER_PASS):
            tidx = np.arange(a, min(n, a + _CELLS_PER_PASS))
            tot = self.weights(tidx).sum(axis=1)
            bad = np.flatnonzero(~(tot > 0))
            if bad.size:
                i = int(tidx[bad[0]])
                key = next(k for k in _DEPTH_KEYS if k in self.pl)
                zs = "" if self.targets.z is None else f" (soma at z = {self.targets.z[i]:.1f} um)"
                raise BuildError(
                    f"{self.where}.placement.{key}: {_show(self.pl[key])}: no eligible segment "
                    f"of {self.label} node {int(self.targets.node_ids[i])}{zs} lies where the "
                    f"density is > 0 ({bad.size} of these {len(tidx)} target cells have none)"
                )

    # ------------------------------------------------------------------ the draws
    def place(self, block: int, t: np.ndarray, nsyns: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Segment-table rows of every synapse of a block's connections.

        ``t`` and ``s`` are the connections' target and source indices (into the projection's
        ``trg``/``src``, sorted by target), ``nsyns`` their synapse counts; the result has
        ``nsyns.sum()`` rows, connection after connection.
        """
        if self.rule == "functional_groups":
            return self._place_groups(t, nsyns, s)
        rng = stream(self.seed, "edges", self.cname, "placement", block)
        syn_t = np.repeat(t, nsyns)
        if syn_t.size == 0:
            return np.zeros(0, dtype=np.int64)
        first = np.flatnonzero(np.r_[True, syn_t[1:] != syn_t[:-1]])  # syn_t is sorted
        cells = syn_t[first]
        rows = np.empty(syn_t.size, dtype=np.int64)
        m = len(self.base)
        u = rng.random(syn_t.size)
        for a in range(0, cells.size, _CELLS_PER_PASS):
            cell = cells[a : a + _CELLS_PER_PASS]
            lo = first[a]
            hi = first[a + _CELLS_PER_PASS] if a + _CELLS_PER_PASS < cells.size else syn_t.size
            w = self.weights(cell)
            cdf = np.cumsum(w, axis=1)
            total = cdf[:, -1:]
            cdf /= total
            # one searchsorted for all: row r's cdf lives in [r, r + 1]
            k = np.repeat(np.arange(cell.size), np.diff(np.r_[first[a : a + cell.size], hi]))
            flat = (cdf + np.arange(cell.size)[:, None]).ravel()
            idx = np.searchsorted(flat, k + u[lo:hi], side="right") - k * m
            # rounding at the top of a row: fall back to its last segment of positive weight
            last = m - 1 - np.argmax(w[:, ::-1] > 0, axis=1)
            rows[lo:hi] = np.minimum(idx, last[k])
        return rows

    # ------------------------------------------------------------------ functional groups
    def _init_groups(self, n_sources: int) -> None:
        pl = self.pl
        self.n_clusters = int(pl["clusters_per_group"])
        sizes = group_sizes(n_sources, int(pl["cells_per_group"]))
        self.group_of_source = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
        self.elig_rows = np.flatnonzero(self.eligible)
        self.centres = feasible_centres(
            self.table.xyz_um, self.elig_rows, float(pl["group_radius_um"]), self.n_clusters
        )
        if self.centres.size == 0:
            raise BuildError(
                f"{self.where}.placement.group_radius_um: {_show(pl['group_radius_um'])}: no "
                f"eligible segment of {self.label} has {self.n_clusters} eligible segments "
                "within that radius, so no group of clusters_per_group clusters fits; increase "
                "group_radius_um or reduce clusters_per_group"
            )

    def _place_groups(self, t: np.ndarray, nsyns: np.ndarray, s: np.ndarray) -> np.ndarray:
        too_many = nsyns > self.n_clusters
        if np.any(too_many):
            raise BuildError(
                f"{self.where}.synapses_per_connection: a connection drew {int(nsyns.max())} "
                f"synapses but a functional group has {self.n_clusters} clusters "
                "(placement.clusters_per_group) and each synapse needs its own cluster"
            )
        g = self.group_of_source[s]
        order = np.lexsort((g, t))  # by target, then group; stable within
        keys = np.stack((t[order], g[order]), axis=1)
        starts = np.flatnonzero(np.r_[True, np.any(keys[1:] != keys[:-1], axis=1)])
        stops = np.r_[starts[1:], len(order)]
        rows_of: list[np.ndarray] = [np.zeros(0, np.int64)] * len(t)
        pl = self.pl
        for a, z in zip(starts.tolist(), stops.tolist(), strict=True):
            conns = order[a:z]
            ti, gi = int(t[conns[0]]), int(g[conns[0]])
            node = int(self.targets.node_ids[ti])
            placed = place_group(
                stream(self.seed, "edges", self.cname, "groups", node, gi),
                self.table.xyz_um,
                self.elig_rows,
                n_cells=len(conns),
                n_clusters=self.n_clusters,
                group_radius_um=float(pl["group_radius_um"]),
                cluster_radius_um=float(pl["cluster_radius_um"]),
                syns_min=1,
                syns_max=self.n_clusters,
                centres=self.centres,
                n_syns=nsyns[conns],
                label=f"{self.where}.placement: group {gi} on {self.label} node {node}",
            )
            bounds = np.searchsorted(placed.syn_cell, np.arange(len(conns) + 1))
            for j, c in enumerate(conns.tolist()):
                rows_of[c] = placed.syn_row[bounds[j] : bounds[j + 1]]
        return np.concatenate(rows_of) if rows_of else np.zeros(0, np.int64)

    # ------------------------------------------------------------------ columns
    def columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The per-synapse edge columns (:data:`PLACEMENT_COLUMNS`) of segment-table rows."""
        sec = self.table.bmtk_id[rows].astype(np.int32)
        x = self.table.x[rows].astype(np.float64)
        return {"sec_id": sec, "sec_x": x, "afferent_section_id": sec, "afferent_section_pos": x}
