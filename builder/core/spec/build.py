"""Build a network spec into a SONATA directory: nodes, streamed edges, spike inputs, configs.

Layout of the output directory::

    network/<pop>_nodes.h5, network/<pop>_node_types.csv        one file pair per population
    network/<conn>_edges.h5, network/<conn>_edge_types.csv      one file pair per connection
    inputs/<input>_spikes.h5                                    /spikes/<pop>/{node_ids,timestamps}
    components/point_neuron_models/<pop>.json                   NEST parameters of point cells
    components/{morphologies,biophysical_neuron_models,templates,synaptic_models}/...
    circuit_config.json, simulation_config.json, node_sets.json, spec.json (the resolved spec)

Everything is written into a staging directory and moved into place at the end
(:class:`builder.core.output.Staging`); a failed build leaves the output directory as it was.
Projections are written up to :data:`BUILD_THREADS` at once, each into its own file from its
own random streams, so the files do not depend on the number of threads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BuildError
from ..output import Staging
from ..rng import stream
from ..runs import SPEC_COPY
from ..sonata import EdgeStreamWriter, IndexWorkspace, SpikeStreamWriter, write_nodes
from .distributions import draw, is_random
from .inputs import SpikeTrains
from .model import COMPONENT_SUBDIRS, Spec, _find_file, _sel_pop
from .placement import PLACEMENT_COLUMNS, SegmentTableSource, SynapsePlacer, population_cell
from .regions import expected_count, layer_bounds, place
from .rules import Projection, pair_distance
from .simconfig import electrode_positions, write_configs

__all__ = ["BuildResult", "NetworkBuilder", "EDGE_COLUMN_BYTES"]

log = logging.getLogger("builder")

#: Bytes per edge on disk: source, target, group index (uint32: the writer's ``compact``
#: dtypes), weight, delay (float64); type and group id are constant datasets that take no
#: space; + 8 for the source index's range (two uint32); nsyns adds 4 for biophysical
#: targets. A projection of 2**32 edges or more stores its group index and indices as uint64.
EDGE_COLUMN_BYTES = 4 + 4 + 4 + 8 + 8
_INDEX_BYTES = 8
_NODE_TYPE_BASE = 100
_EDGE_TYPE_BASE = 100


@dataclass
class BuildResult:
    """What a build wrote."""

    outdir: Path
    files: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        nodes = sum(v for k, v in self.counts.items() if k.startswith("nodes."))
        edges = sum(v for k, v in self.counts.items() if k.startswith("edges."))
        spikes = sum(v for k, v in self.counts.items() if k.startswith("spikes."))
        rate = f", {edges / self.seconds / 1e6:.1f} M edges/s" if self.seconds and edges else ""
        return (
            f"{self.outdir}: {nodes} nodes, {edges} edges, {spikes} input spikes in "
            f"{len(self.files)} files ({self.seconds:.1f} s{rate})"
        )


@dataclass
class _Nodes:
    n: int
    columns: dict[str, np.ndarray]
    model: str


class NetworkBuilder:
    """Builds a validated :class:`~builder.core.spec.model.Spec`.

    Parameters
    ----------
    spec : Spec
        The validated spec.
    chunk_edges : int
        Largest number of edges written to HDF5 in one call (does not change the output).
    segment_tables : callable, optional
        ``(cell, dL_um) -> SegmentTable``: derives a biophysical cell's segment table (the
        command layer passes :func:`builder.simulators.neuron.celltable.segment_table`). Needed to
        build connections onto biophysical populations, whose synapses are placed at build time
        (:mod:`builder.core.spec.placement`).
    threads : int, optional
        Projections written at once, each into its own file by its own thread (default
        :data:`BUILD_THREADS`). Does not change the output: every projection draws from its
        own streams.
    """

    def __init__(
        self,
        spec: Spec,
        *,
        chunk_edges: int = 1 << 22,
        segment_tables: SegmentTableSource | None = None,
        threads: int | None = None,
    ):
        self.spec = spec
        self.seed = spec.seed
        self.chunk_edges = int(chunk_edges)
        self.threads = max(1, int(BUILD_THREADS if threads is None else threads))
        self._stop = threading.Event()  # set when a projection failed: the others stop early
        self._nodes: dict[str, _Nodes] | None = None
        self._segment_tables = segment_tables
        self._tables: dict[str, Any] = {}

    # ------------------------------------------------------------------ nodes
    @property
    def nodes(self) -> dict[str, _Nodes]:
        if self._nodes is None:
            self._nodes = {name: self._make_nodes(name) for name in self.spec.populations}
        return self._nodes

    def _clear_electrodes(
        self, name: str, cols: dict[str, np.ndarray], region: Any, n: int, tries: int = 1000
    ) -> None:
        """Redraw the cells whose soma centre lies within ``clearance_um`` of an electrode.

        Each attempt redraws the whole population from its own stream and takes the new rows
        of the offending cells only, so a cell's layer and depth distribution are kept and the
        result does not depend on anything but the seed.
        """
        elec = self.spec.data.get("reports", {}).get("electrodes", {})
        clearance = float(elec.get("clearance_um", 0.0))
        if clearance <= 0:
            return
        points = np.asarray(electrode_positions(elec), dtype=np.float64)
        pop = self.spec.populations[name]

        def too_close() -> np.ndarray:
            xyz = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
            step = max(1, (1 << 22) // max(1, points.shape[0]))  # bounded memory per pass
            near = [
                np.flatnonzero(
                    ((xyz[i : i + step, None, :] - points[None]) ** 2).sum(axis=2).min(axis=1)
                    < clearance**2
                )
                + i
                for i in range(0, n, step)
            ]
            return np.concatenate(near) if near else np.zeros(0, dtype=np.int64)

        bad = too_close()
        for attempt in range(1, tries + 1):
            if bad.size == 0:
                return
            fresh = place(pop, region, stream(self.seed, "nodes", name, "clearance", attempt), n)
            for key in ("x", "y", "z", "layer"):
                if key in cols:
                    cols[key][bad] = fresh[key][bad]
            bad = too_close()
        if bad.size:
            raise BuildError(
                f"{self.spec.source}: reports.electrodes.clearance_um: {clearance:g}: "
                f"{bad.size} cell(s) of {name} still lie that close to an electrode after "
                f"{tries} redraws; the region is too small for this clearance"
            )

    def population_size(self, name: str) -> int:
        pop = self.spec.populations[name]
        if "count" in pop:
            return int(pop["count"])
        region = self.spec.data["regions"][pop["region"]]
        return expected_count(region, pop["density_per_mm3"])

    def _make_nodes(self, name: str) -> _Nodes:
        pop = self.spec.populations[name]
        n = self.population_size(name)
        region = self.spec.data.get("regions", {}).get(pop.get("region", ""))
        rng = stream(self.seed, "nodes", name, "placement")
        cols = place(pop, region, rng, n)
        if "x" in cols and pop["model"]["type"] == "biophysical":
            self._clear_electrodes(name, cols, region, n)
        for key, value in pop.get("properties", {}).items():
            if isinstance(value, list):
                if len(value) != n:
                    raise BuildError(
                        f"{self.spec.source}: populations.{name}.properties.{key}: {len(value)} "
                        f"values for {n} cells"
                    )
                cols[key] = np.asarray(value)
            elif isinstance(value, Mapping):
                r = stream(self.seed, "nodes", name, "property", key)
                cols[key] = draw(value, r, n, what=f"populations.{name}.properties.{key}")
            else:
                cols[key] = (
                    np.full(n, value)
                    if not isinstance(value, str)
                    else np.array([value] * n, dtype=object)
                )
        if "x" in cols and pop["model"]["type"] == "biophysical":
            self._check_electrodes(name, cols, n)
        return _Nodes(n, cols, pop["model"]["type"])

    def _check_electrodes(self, name: str, cols: dict[str, np.ndarray], n: int) -> None:
        """No electrode inside a soma of ``name`` (:mod:`builder.core.spec.electrodes`)."""
        from ..geometry import node_angles
        from .electrodes import electrodes_in_somata

        elec = self.spec.data.get("reports", {}).get("electrodes")
        if not elec or self._segment_tables is None:
            return  # no table without NEURON: the runner checks before the simulation
        points = np.asarray(electrode_positions(elec), dtype=np.float64)
        xyz = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
        hits = electrodes_in_somata(self.segment_table(name), xyz, node_angles(cols, n), points)
        if not hits:
            return
        key = "positions_um" if "positions_um" in elec else "probe"
        shown = [
            f"electrode {h.electrode} at ({', '.join(f'{v:g}' for v in points[h.electrode])}) "
            f"um is {h.distance_um:.3g} um from the centre of the soma of {name} node {h.node} "
            f"(radius {h.radius_um:.3g} um)"
            for h in hits[:5]
        ]
        more = f" (and {len(hits) - 5} more)" if len(hits) > 5 else ""
        raise BuildError(
            f"{self.spec.source}: reports.electrodes.{key}: {'; '.join(shown)}{more}: move the "
            "electrodes, or set reports.electrodes.clearance_um (e.g. the soma's half-diagonal) "
            "to keep somata away from them"
        )

    def _positions(self, name: str, idx: np.ndarray) -> np.ndarray | None:
        c = self.nodes[name].columns
        if "x" not in c:
            return None
        return np.column_stack((c["x"][idx], c["y"][idx], c["z"][idx]))

    def _select(self, sel: Any, where_key: str) -> tuple[str, np.ndarray]:
        name = _sel_pop(sel)
        nodes = self.nodes[name]
        keep = np.ones(nodes.n, dtype=bool)
        if isinstance(sel, Mapping):
            for key, cond in sel.get("where", {}).items():
                if key not in nodes.columns:
                    raise BuildError(
                        f"{self.spec.source}: {where_key}.where.{key}: {name} has no property "
                        f"{key!r}"
                    )
                col = nodes.columns[key]
                if isinstance(cond, list):
                    keep &= np.isin(
                        col, np.asarray(cond, dtype=col.dtype if col.dtype != object else object)
                    )
                elif isinstance(cond, Mapping):
                    if "min" in cond:
                        keep &= col >= cond["min"]
                    if "max" in cond:
                        keep &= col <= cond["max"]
                else:
                    keep &= col == cond
        return name, np.flatnonzero(keep).astype(np.int64)

    # ------------------------------------------------------------------ edges
    def projection(self, cname: str) -> Projection:
        con = self.spec.connections[cname]
        key = f"connections.{cname}"
        sname, src = self._select(con["source"], f"{key}.source")
        tname, trg = self._select(con["target"], f"{key}.target")
        rule = con["rule"]
        self_src = None
        if sname == tname and not rule.get("autapses", True):
            pos = np.searchsorted(src, trg)
            pos_c = np.minimum(pos, max(0, len(src) - 1))
            hit = (len(src) > 0) & (src[pos_c] == trg) if len(src) else np.zeros(len(trg), bool)
            self_src = np.where(hit, pos_c, -1).astype(np.int64)
        proj = Projection(
            cname,
            src,
            trg,
            rule,
            self_src,
            self._positions(sname, src),
            self._positions(tname, trg),
        ).seeded(self.seed)
        self._check_projection(proj, con, key, len(src), len(trg), sname == tname)
        return proj

    def _check_projection(
        self, proj: Projection, con: Mapping[str, Any], key: str, ns: int, nt: int, same: bool
    ) -> None:
        rule = con["rule"]
        name = rule["name"]
        multi = rule.get("multapses", True)
        where = f"{self.spec.source}: {key}.rule"
        elig = ns - (1 if proj.self_src is not None else 0)
        if name == "one_to_one" and ns != nt:
            raise BuildError(
                f"{where}.name: one_to_one needs equal sizes; {ns} sources, {nt} targets"
            )
        if name == "fixed_indegree" and not multi and rule["indegree"] > elig:
            raise BuildError(
                f"{where}.indegree: {rule['indegree']} is larger than the {elig} "
                "eligible sources and multapses are off"
            )
        if (
            name == "fixed_outdegree"
            and not multi
            and rule["outdegree"] > nt - (1 if proj.self_src is not None else 0)
        ):
            raise BuildError(
                f"{where}.outdegree: {rule['outdegree']} is larger than the "
                f"{nt} targets and multapses are off"
            )
        if name in ("fixed_indegree", "fixed_total_number") and ns == 0 and proj.exact_total():
            raise BuildError(f"{where}: the source selection is empty")
        if name == "fixed_outdegree" and nt == 0 and proj.exact_total():
            raise BuildError(f"{where}: the target selection is empty")
        if name == "fixed_total_number" and not multi:
            pairs = int(proj._eligible(0, nt).sum())
            if rule["n"] > pairs:
                raise BuildError(
                    f"{where}.n: {rule['n']} is larger than the {pairs} possible "
                    "pairs and multapses are off"
                )

    def _edge_types(self, cname: str, type_id: int) -> dict[str, Any]:
        con = self.spec.connections[cname]
        tname = _sel_pop(con["target"])
        row: dict[str, Any] = {"edge_type_id": type_id}
        tmodel = self.spec.populations[tname]["model"]["type"]
        row["model_template"] = con.get("synapse_model", "static_synapse")
        if "dynamics_params" in con:
            row["dynamics_params"] = Path(con["dynamics_params"]).name
        elif tmodel == "point":  # BMTK PointNet reads every point edge type's params file
            row["dynamics_params"] = EMPTY_SYNAPSE_PARAMS
        if tmodel == "biophysical":
            pl = con.get("placement", {})
            # BMTK's own placement (no sec_id column) needs the section types: given, or the
            # ones section_layer_density names
            secs = pl.get("sections") or list(pl.get("section_layer_density", {}))
            if secs:
                row["target_sections"] = json.dumps(
                    [_BMTK_SECTIONS.get(s, s) for s in secs], separators=(",", ":")
                )
            # BMTK's own placement reads distance_range whenever it places (no sec_id column)
            row["distance_range"] = json.dumps(
                pl.get("path_distance_um", [0.0, 1.0e9]), separators=(",", ":")
            )
            extra = {k: v for k, v in pl.items() if k not in ("sections", "path_distance_um")}
            if extra:
                row["placement"] = json.dumps(extra, separators=(",", ":"), sort_keys=True)
        for k, v in con.get("properties", {}).items():
            row[k] = v
        return row

    def segment_table(self, pop: str) -> Any:
        """The segment table of a biophysical population's cell (derived once, cached)."""
        if pop not in self._tables:
            if self._segment_tables is None:
                raise BuildError(
                    f"{self.spec.source}: populations.{pop}: placing synapses on biophysical "
                    "cells needs their segment table, which is derived with NEURON; build with "
                    "the build-network command (NEURON installed)"
                )
            model = self.spec.populations[pop]["model"]
            cell = population_cell(model, self.spec.components_dir, self.spec.source)
            # None: the template's / morphology's own segments, as the runner keeps them
            self._tables[pop] = self._segment_tables(cell, None)
        return self._tables[pop]

    def placer(self, cname: str, proj: Projection) -> SynapsePlacer:
        """The synapse placer of a connection onto a biophysical population."""
        con = self.spec.connections[cname]
        tname = _sel_pop(con["target"])
        pop = self.spec.populations[tname]
        region = self.spec.data.get("regions", {}).get(pop.get("region", ""), {})
        morph = pop["model"].get("morphology", pop["model"]["template"])
        return SynapsePlacer(
            f"{self.spec.source}: connections.{cname}",
            cname,
            con.get("placement", {}),
            self.segment_table(tname),
            f"{tname} ({morph})",
            proj.trg,
            self.nodes[tname].columns,
            layer_bounds(region) if region.get("shape") == "layered" else {},
            proj.n_src,
            self.seed,
        )

    def _nsyns(self, con: Mapping[str, Any], cname: str, rng: Any, k: int) -> np.ndarray:
        nsyns = draw(
            con.get("synapses_per_connection", 1),
            rng,
            k,
            what=f"connections.{cname}.synapses_per_connection",
        )
        return np.maximum(1, np.rint(nsyns)).astype(np.int64)

    def row_count(self, cname: str, proj: Projection | None = None, *, exact: bool = True) -> float:
        """Rows of a connection's edge file: edges, or synapses onto a biophysical target
        (one row per synapse).

        Known without drawing when the rule fixes the number of edges and the synapses per
        connection are constant; otherwise counted by a pass over the blocks' own streams
        (the draws the build makes), or with ``exact=False`` the expected number (a
        distance-dependent rule's sampled mean, a distribution's mean synapse count).
        """
        con = self.spec.connections[cname]
        proj = self.projection(cname) if proj is None else proj
        total = proj.exact_total()
        per_conn = con.get("synapses_per_connection", 1)
        bio = self.nodes[_sel_pop(con["target"])].model == "biophysical"
        if bio and total is not None and not is_random(per_conn):
            return total * _constant_nsyns(per_conn)
        if not exact:
            conns = float(total) if total is not None else proj.expected_edges()
            return conns * _mean_nsyns(per_conn) if bio else conns
        if bio:  # one row per synapse: count them (the same streams, so the same draws)
            rows = 0
            for b in range(len(proj.blocks())):
                s, _, rng = proj.generate(b)
                rows += int(self._nsyns(con, cname, rng, len(s)).sum())
            return rows
        if total is None:  # distance-dependent: a counting pass (same streams)
            return sum(len(proj.generate(b)[0]) for b in range(len(proj.blocks())))
        return total

    #: The source-index workspaces of the projections being written (set while
    #: :meth:`_write_projections` runs; None: each writer makes its own).
    _index_spaces: _Workspaces | None = None

    def _write_projection(self, cname: str, type_id: int, outdir: Path) -> int:
        con = self.spec.connections[cname]
        proj = self.projection(cname)
        sname, tname = _sel_pop(con["source"]), _sel_pop(con["target"])
        point_target = self.nodes[tname].model == "point"
        placer = self.placer(cname, proj) if self.nodes[tname].model == "biophysical" else None
        total = int(self.row_count(cname, proj))
        columns: dict[str, Any] = {"syn_weight": np.float64, "delay": np.float64}
        if placer is not None:
            columns.update(PLACEMENT_COLUMNS)
        elif not point_target:
            columns["nsyns"] = np.uint32
        dly = con.get("delay_ms", 1.0)
        where = f"connections.{cname}"
        nsyn_spec = con.get("synapses_per_connection", 1)
        nsyn_const = None if is_random(nsyn_spec) else _constant_nsyns(nsyn_spec)
        # a selection of the whole population: indices are node ids (no gather)
        src_ids = None if proj.n_src == self.nodes[sname].n else proj.src
        trg_ids = None if proj.n_trg == self.nodes[tname].n else proj.trg

        def block(b: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
            """Block ``b``'s edges and columns (its own streams only: any thread, any order)."""
            s, t, rng = proj.generate(b)
            k = len(s)
            if nsyn_const is None:
                nsyns = draw(nsyn_spec, rng, k, what=f"{where}.synapses_per_connection")
                nsyns = np.maximum(1, np.rint(nsyns)).astype(np.int64)
            weight = draw(con.get("weight", 1.0), rng, k, what=f"{where}.weight")
            if isinstance(dly, Mapping) and "velocity_um_per_ms" in dly:
                assert proj.src_pos is not None and proj.trg_pos is not None  # validated
                d = pair_distance(proj.src_pos[s], proj.trg_pos[t], dly.get("in_sheet", False))
                delay = np.maximum(
                    d / dly["velocity_um_per_ms"] + dly.get("constant_ms", 0.0),
                    dly.get("min_ms", 0.0),
                )
            else:
                delay = draw(dly, rng, k, what=f"{where}.delay_ms")
            cols = {"syn_weight": weight, "delay": delay}
            if placer is not None:  # one row per synapse, each on its own segment
                if nsyn_const is not None:
                    nsyns = np.full(k, nsyn_const, dtype=np.int64)
                rows = placer.place(b, t, nsyns, s)
                cols = {key: np.repeat(v, nsyns) for key, v in cols.items()}
                cols.update(placer.columns(rows))
                s, t = np.repeat(s, nsyns), np.repeat(t, nsyns)
            elif point_target:  # NEST has no nsyns: fold it in
                if nsyn_const is None:
                    weight *= nsyns
                elif nsyn_const != 1:
                    weight *= nsyn_const
            else:
                cols["nsyns"] = (
                    nsyns if nsyn_const is None else np.full(k, nsyn_const, dtype=np.uint32)
                )
            s_ids = s if src_ids is None else src_ids[s]
            t_ids = t if trg_ids is None else trg_ids[t]
            return s_ids, t_ids, cols

        with (
            _index_workspace(self._index_spaces, total) as ws,
            EdgeStreamWriter(
                outdir / "network" / f"{cname}_edges.h5",
                outdir / "network" / f"{cname}_edge_types.csv",
                cname,
                sname,
                tname,
                n_edges=total,
                n_source_nodes=self.nodes[sname].n,
                n_target_nodes=self.nodes[tname].n,
                edge_types=[self._edge_types(cname, type_id)],
                columns=columns,
                chunk_edges=self.chunk_edges,
                compact=True,
                workspace=ws,
            ) as w,
        ):
            for s_ids, t_ids, cols in _ahead(block, len(proj.blocks()), EDGE_PREFETCH_BLOCKS):
                if self._stop.is_set():
                    raise _Stopped(cname)
                w.append(s_ids, t_ids, type_id, cols)
        return total

    def _projection_size(self, cname: str) -> float:
        """Rows a projection will write, roughly (for the memory budget of parallel writes)."""
        return self.row_count(cname, exact=False)

    def _write_projections(
        self,
        root: Path,
        progress: Callable[[str], None] | None,
        alongside: Callable[[], None] | None = None,
    ) -> dict[str, int]:
        """Write every projection, up to ``self.threads`` at once; edge counts in spec order.

        ``alongside`` (everything but the edge files: node files, components, inputs, configs)
        runs in this thread first, or, when the projections go to forked workers, while they
        write theirs.

        Projections run in parallel only while the rows in flight fit
        :data:`PARALLEL_EDGE_BUDGET` (a big projection runs alone), so the peak memory stays
        that of the largest projection. The first error stops the others at their next block
        and is raised once they have ended.
        """
        # the source index's buffers, reused from one projection to the next (see _Workspaces)
        self._index_spaces = _Workspaces()
        try:
            return self._write_all_projections(root, progress, alongside)
        finally:
            self._index_spaces = None  # its buffers go with it

    def _write_all_projections(
        self,
        root: Path,
        progress: Callable[[str], None] | None,
        alongside: Callable[[], None] | None = None,
    ) -> dict[str, int]:
        """:meth:`_write_projections` with the build's workspaces in place."""
        names = list(self.spec.connections)
        for cname in names:  # derive segment tables (NEURON: not thread-safe) up front
            tname = _sel_pop(self.spec.connections[cname]["target"])
            if self.nodes[tname].model == "biophysical":
                self.segment_table(tname)
        counts: dict[str, int] = {}

        def one(i: int, cname: str) -> int:
            t1 = time.perf_counter()
            n = self._write_projection(cname, _EDGE_TYPE_BASE + i, root)
            log.debug("%s: %d edges in %.2f s", cname, n, time.perf_counter() - t1)
            return n

        parallel = self.threads > 1 and len(names) > 1
        sizes = {cname: self._projection_size(cname) for cname in names} if parallel else {}
        fork_limit = min(FORK_EDGE_LIMIT, PARALLEL_EDGE_BUDGET)
        if parallel and _can_fork() and sum(sizes.values()) <= fork_limit:
            return self._write_projections_forked(names, sizes, one, progress, alongside)
        if alongside is not None:
            alongside()
        if self.threads <= 1 or len(names) <= 1:
            for i, cname in enumerate(names):
                if progress:
                    progress(cname)
                counts[cname] = one(i, cname)
            return counts
        running: dict[Future[int], tuple[str, float]] = {}
        done_n: dict[str, int] = {}

        def reap(block: bool) -> None:
            if block:
                finished = wait(list(running), return_when=FIRST_COMPLETED).done
            else:
                finished = {f for f in running if f.done()}
            for f in finished:
                cname, _ = running.pop(f)
                done_n[cname] = f.result()  # raises the projection's error

        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="proj") as pool:
            try:
                for i, cname in enumerate(names):
                    size = sizes[cname]
                    while running and (
                        len(running) >= self.threads
                        or sum(v for _, v in running.values()) + size > PARALLEL_EDGE_BUDGET
                    ):
                        reap(block=True)
                    reap(block=False)
                    if progress:
                        progress(cname)
                    running[pool.submit(one, i, cname)] = (cname, size)
                while running:
                    reap(block=True)
            except BaseException:
                self._stop.set()  # the others stop at their next block; the pool waits
                raise
        return {cname: done_n[cname] for cname in names}

    def _write_projections_forked(
        self,
        names: list[str],
        sizes: Mapping[str, float],
        one: Callable[[int, str], int],
        progress: Callable[[str], None] | None,
        alongside: Callable[[], None] | None,
    ) -> dict[str, int]:
        """Write the projections in ``self.threads`` processes: this one and forked copies.

        Used when all the rows fit :data:`FORK_EDGE_LIMIT` and :data:`PARALLEL_EDGE_BUDGET`
        (so any of them may be in flight at once). A small build is mostly per-file work
        (HDF5 objects, type tables, indices of a few thousand nodes) that holds the GIL and
        HDF5's lock, so threads take turns; processes do not. The projections are shared
        out by size (largest first, each to the least loaded process), each written into its
        own file of the staging directory from its own streams, so the files are those of
        one thread. A worker sends its edge counts, or its error, back through a pipe; the
        first error (this process's, else the first worker's in order) stops the others and
        is raised. ``alongside`` (node files, configs...) runs here once the workers are started;
        the share of this process allows for it.
        """
        k = min(self.threads, len(names))
        index = {cname: i for i, cname in enumerate(names)}
        load = [0.0] * k
        if alongside is not None:  # this process also writes the node files (2 per population)
            # and the components and configs (~3 files' worth)
            load[0] = sum(2 * _FILE_COST_ROWS + n.n for n in self.nodes.values())
            load[0] += 3 * _FILE_COST_ROWS
        share: list[list[str]] = [[] for _ in range(k)]
        for cname in sorted(names, key=lambda c: -sizes[c]):  # stable: ties in spec order
            w = load.index(min(load))
            share[w].append(cname)
            load[w] += sizes[cname] + _FILE_COST_ROWS
        workers: dict[int, int] = {}  # pid -> read end of its pipe
        reaped: dict[int, int] = {}  # pid -> wait status, of workers that ended early
        counts: dict[str, int] = {}
        try:
            for mine in share[1:]:
                mine.sort(key=index.__getitem__)
                if progress:
                    for cname in mine:
                        progress(cname)
                r, w_fd = os.pipe()
                pid = os.fork()
                if pid == 0:  # the worker: write its share, report, never return
                    os.close(r)
                    _worker_main(w_fd, lambda mine=mine: {c: one(index[c], c) for c in mine})
                os.close(w_fd)
                workers[pid] = r
            if alongside is not None:
                alongside()
            for cname in sorted(share[0], key=index.__getitem__):
                for pid in [p for p in workers if _worker_failed(p, reaped)]:  # stops us
                    counts.update(_worker_result(pid, workers.pop(pid), reaped))
                if progress:
                    progress(cname)
                counts[cname] = one(index[cname], cname)
            while workers:
                pid = next(iter(workers))
                counts.update(_worker_result(pid, workers.pop(pid), reaped))
        finally:
            for pid, r in workers.items():  # only after an error: stop and reap the others
                if pid not in reaped:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                os.close(r)
        return {cname: counts[cname] for cname in names}

    # ------------------------------------------------------------------ the build
    def build(
        self,
        outdir: str | os.PathLike,
        *,
        force: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> BuildResult:
        """Write the network into ``outdir`` (staged, then moved into place)."""
        t0 = time.perf_counter()
        counts: dict[str, int] = {}
        with Staging(outdir, force=force) as st:
            root = st.dir
            (root / "network").mkdir(parents=True, exist_ok=True)
            all_nodes = self.nodes  # drawn first: the projections need them
            comp: dict[str, str] = {}

            spikes: dict[str, int] = {}

            def alongside() -> None:  # while forked workers write edges, if there are any
                # everything but the edges: none of it needs the edge counts
                comp.update(self._write_components(root))
                for i, (name, nodes) in enumerate(all_nodes.items()):
                    write_nodes(
                        root / "network" / f"{name}_nodes.h5",
                        root / "network" / f"{name}_node_types.csv",
                        name,
                        np.full(nodes.n, _NODE_TYPE_BASE + i, dtype=np.int64),
                        [self._node_type(name, _NODE_TYPE_BASE + i, comp)],
                        _node_columns(nodes.columns),
                    )
                spike_files = self._write_inputs(root, spikes)
                write_configs(self, root, spike_files, comp)
                (root / SPEC_COPY).write_text(
                    json.dumps(self.spec.data, indent=1, sort_keys=True) + "\n", encoding="utf-8"
                )

            self._stop.clear()
            edges = self._write_projections(root, progress, alongside=alongside)
            for name, nodes in all_nodes.items():
                counts[f"nodes.{name}"] = nodes.n
            for cname, n in edges.items():
                counts[f"edges.{cname}"] = n
            counts.update(spikes)
            files = st.commit()
        return BuildResult(Path(outdir), files, counts, time.perf_counter() - t0)

    def _write_inputs(self, root: Path, counts: dict[str, int]) -> dict[str, str]:
        out: dict[str, str] = {}
        duration = float(self.spec.data["run"]["duration_ms"])
        for iname, inp in self.spec.inputs.items():
            if inp["type"] != "spikes":
                continue
            pop = inp["population"]
            trains = SpikeTrains(
                iname, inp, self.nodes[pop].n, duration, self.seed, self.spec.base_dir
            )
            rel = f"inputs/{iname}_spikes.h5"
            (root / "inputs").mkdir(exist_ok=True)
            total = trains.total()
            with SpikeStreamWriter(root / rel, pop, total) as w:
                for ids, ts in trains.blocks():
                    w.append(ids, ts)
            counts[f"spikes.{iname}"] = total
            out[iname] = rel
        return out

    def _write_components(self, root: Path) -> dict[str, str]:
        """Copy cell and synapse files; write point-neuron params. Returns component dirs."""
        comp = root / "components"
        dirs: dict[str, str] = {}
        for name, pop in self.spec.populations.items():
            m = pop["model"]
            if m["type"] == "point":
                d = comp / "point_neuron_models"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{name}.json").write_text(
                    json.dumps(m.get("params", {}), indent=1, sort_keys=True) + "\n"
                )
                dirs["point_neuron_models_dir"] = "point_neuron_models"
            elif m["type"] == "biophysical":
                for key, sub in (
                    ("morphology", "morphologies"),
                    ("dynamics_params", "biophysical_neuron_models"),
                ):
                    if key in m:
                        self._copy(m[key], COMPONENT_SUBDIRS[key], comp / sub)
                        dirs[f"{sub}_dir"] = sub
                dirs.setdefault("morphologies_dir", "morphologies")
                dirs.setdefault("biophysical_neuron_models_dir", "biophysical_neuron_models")
                for sub in ("morphologies", "biophysical_neuron_models"):  # named by the
                    (comp / dirs[f"{sub}_dir"]).mkdir(parents=True, exist_ok=True)  # config
                if m["template"].startswith("hoc:"):
                    self._copy(
                        m["template"][4:] + ".hoc",
                        COMPONENT_SUBDIRS["template"],
                        comp / "templates",
                    )
                    dirs["templates_dir"] = "templates"
        empty_params = False
        for con in self.spec.connections.values():
            tmodel = self.spec.populations[_sel_pop(con["target"])]["model"]["type"]
            if "dynamics_params" in con and tmodel in ("biophysical", "point"):
                self._copy(
                    con["dynamics_params"],
                    COMPONENT_SUBDIRS["synapse"],
                    comp / "synaptic_models",
                )
                dirs["synaptic_models_dir"] = "synaptic_models"
            elif tmodel == "point" and not empty_params:  # one file for every such type
                d = comp / "synaptic_models"
                d.mkdir(parents=True, exist_ok=True)
                (d / EMPTY_SYNAPSE_PARAMS).write_text("{}\n")
                dirs["synaptic_models_dir"] = "synaptic_models"
                empty_params = True
        return dirs

    def _copy(self, value: str, subdirs: tuple[str, ...], dest: Path) -> None:
        src = _find_file(self.spec.components_dir, value, subdirs)
        if src is None:  # validated before; a file removed since
            raise BuildError(f"{self.spec.source}: {value} not found in {self.spec.components_dir}")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / Path(value).name)

    def _node_type(self, name: str, type_id: int, comp: Mapping[str, str]) -> dict[str, Any]:
        m = self.spec.populations[name]["model"]
        row: dict[str, Any] = {"node_type_id": type_id, "pop_name": name}
        if m["type"] == "point":
            row.update(
                model_type="point_neuron",
                model_template=f"nest:{m['nest_model']}",
                dynamics_params=f"{name}.json",
            )
        elif m["type"] == "biophysical":
            row.update(model_type="biophysical", model_template=m["template"])
            for key in ("morphology", "dynamics_params", "model_processing"):
                if key in m:
                    row[key] = Path(m[key]).name if key != "model_processing" else m[key]
        else:
            row["model_type"] = "virtual"
        return row

    # ------------------------------------------------------------------ --check
    def estimate(self) -> dict[str, Any]:
        """What a build would write: counts, expected edges, disk size and peak memory."""
        from .estimate import estimate

        return estimate(self)


#: The synapse params file of point edge types that name none: ``{}`` (NEST's defaults).
EMPTY_SYNAPSE_PARAMS = "no_params.json"

_BMTK_SECTIONS = {
    "dend": "basal",
    "basal": "basal",
    "apic": "apical",
    "soma": "somatic",
    "axon": "axonal",
}


#: Projections written at once by :meth:`NetworkBuilder.build` (numpy and h5py release the
#: GIL for their big operations, so threads run on separate cores).
BUILD_THREADS = max(1, min(2, os.cpu_count() or 1))

#: Rows (edges or synapses) of the projections written at once: a projection that would take
#: the sum above this waits until the others are done (it then runs alone).
PARALLEL_EDGE_BUDGET = 3e7


#: Split small builds (all rows under :data:`FORK_EDGE_LIMIT`) between processes
#: (``os.fork``) rather than threads when more than one thread is asked for; see
#: :meth:`NetworkBuilder._write_projections_forked`. Does not change the output.
FORK_PROJECTIONS = True

#: Rows of a build up to which its projections go to forked processes: there the per-file
#: work (GIL-bound) is a large part. Above it each process would warm up its own heap for
#: large blocks (page faults twice over): the microcircuit at scale 0.3 (2.7e7 rows) took
#: 0.3-0.5 s more CPU forked than threaded. :data:`PARALLEL_EDGE_BUDGET` bounds it too.
FORK_EDGE_LIMIT = 1e7

#: The fixed cost of one edge file (file structure, type table, indices, streams) in rows, for
#: sharing projections out between processes (~0.8 ms at ~100 ns per row since the files are
#: written by builder.core.h5write; the two processes' CPU then differs by 3-4 % at 1e6 and
#: 3e6 rows, against 11-15 % with the 2 ms of the HDF5 library's files).
_FILE_COST_ROWS = 8_000


def _can_fork() -> bool:
    """Whether projections may go to forked processes: asked for, Linux, and no other thread
    running in this one (a fork copies only the calling thread, so a lock another thread holds
    would stay locked in the copy)."""
    return (
        FORK_PROJECTIONS
        and sys.platform.startswith("linux")  # macOS: system libraries are not fork-safe
        and threading.active_count() == 1
    )


def _worker_main(fd: int, work: Callable[[], dict[str, int]]) -> None:
    """The body of a forked worker: ``work()``'s result or error, pickled into ``fd``; then
    the process ends at once (``os._exit``: no cleanup of the parent's state, such as the
    staging directory, which the parent still owns)."""
    code = 1
    try:
        try:
            payload: tuple[str, Any] = ("ok", work())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            payload = ("error", exc)
        try:
            data = pickle.dumps(payload)
            pickle.loads(data)  # an error the parent could not rebuild goes as its text
        except Exception:  # noqa: BLE001
            data = pickle.dumps(("error", BuildError(f"{type(payload[1]).__name__}: {payload[1]}")))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    finally:
        os._exit(code)


def _worker_failed(pid: int, reaped: dict[int, int]) -> bool:
    """Whether a worker has ended with an error (its result is then read at once); a worker
    that has ended is reaped here, its wait status kept in ``reaped``."""
    if pid in reaped:
        return reaped[pid] != 0
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    if done == 0:
        return False
    reaped[pid] = status
    return status != 0


def _worker_result(pid: int, fd: int, reaped: dict[int, int]) -> dict[str, int]:
    """A worker's edge counts (read from its pipe, then the process reaped); its error
    raised here."""
    with os.fdopen(fd, "rb") as fh:
        data = fh.read()
    status = reaped.get(pid)
    if status is None:
        _, status = os.waitpid(pid, 0)
        reaped[pid] = status
    if not data:
        raise BuildError(f"a build worker process ended without a result (wait status {status})")
    kind, value = pickle.loads(data)
    if kind != "ok":
        raise value
    return value


class _Stopped(BuildError):
    """A projection stopped because another one failed (never the error reported)."""


#: Blocks of edges drawn ahead by a worker thread while the previous block is written (0: no
#: thread). numpy releases the GIL while it draws, so drawing overlaps with the HDF5 writes;
#: each block draws from its own streams, so the files do not depend on this.
EDGE_PREFETCH_BLOCKS = 1


class _Workspaces:
    """The source-index buffers (:class:`IndexWorkspace`) of a build's projections, handed
    from one projection to the next, so that big projections do not fault in fresh pages
    for them each time. One per projection in flight: a projection takes the free one that
    has served the smallest projection at least its size, else the largest (which grows),
    so only one grows to the largest projection."""

    def __init__(self) -> None:
        self._free: list[tuple[int, IndexWorkspace]] = []  # (rows served, workspace), by rows
        self._lock = threading.Lock()

    def take(self, rows: int) -> tuple[int, IndexWorkspace]:
        with self._lock:
            if not self._free:
                return 0, IndexWorkspace()
            k = next((k for k, (r, _) in enumerate(self._free) if r >= rows), -1)
            return self._free.pop(k)

    def give(self, served: int, ws: IndexWorkspace) -> None:
        with self._lock:
            self._free.append((served, ws))
            self._free.sort(key=lambda e: e[0])


@contextlib.contextmanager
def _index_workspace(spaces: _Workspaces | None, rows: int) -> Iterator[IndexWorkspace | None]:
    """A workspace of ``spaces`` for a projection of ``rows`` rows, given back at the end
    (None without ``spaces``)."""
    if spaces is None:
        yield None
        return
    served, ws = spaces.take(rows)
    try:
        yield ws
    finally:
        spaces.give(max(served, rows), ws)


def _ahead(fn: Callable[[int], Any], n: int, depth: int) -> Iterator[Any]:
    """``fn(0), ..., fn(n - 1)`` in order, computed up to ``depth`` items ahead in one worker
    thread (in the calling thread when ``depth`` is 0 or there is one item)."""
    if depth <= 0 or n <= 1:
        for i in range(n):
            yield fn(i)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="edges") as pool:
        pending: deque[Future[Any]] = deque()
        try:
            for i in range(n):
                pending.append(pool.submit(fn, i))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # an error (or an abandoned generator): drop what is not started
            for f in pending:
                f.cancel()


def _mean_nsyns(value: Any, n: int = 100_000) -> float:
    """The mean synapses per connection ``max(1, rint(x))`` of a number or distribution
    (a distribution: the mean of ``n`` draws from a fixed stream)."""
    if not is_random(value):
        return float(_constant_nsyns(value))
    x = draw(value, np.random.Generator(np.random.PCG64(12345)), n, what="synapses_per_connection")
    return float(np.maximum(1, np.rint(x)).mean())


def _constant_nsyns(value: Any) -> int:
    """A non-random synapses_per_connection as the integer every edge gets (at least 1)."""
    v = float(value["value"]) if isinstance(value, Mapping) else float(value)
    return max(1, int(np.rint(v)))


def _node_columns(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in cols.items():
        out[k] = np.asarray(v.astype(str)) if v.dtype == object else v
    return out
