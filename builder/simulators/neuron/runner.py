"""Run a built network in NEURON through BMTK BioNet, serially or under ``mpiexec``.

``run-network [CONFIG|DIR]`` (and ``python run_network.py``) does, in order:

1. MPI set-up before NEURON is imported (:mod:`builder.simulators.neuron.mpi`);
2. compile the output's NMODL (``components/mechanisms/modfiles``) into the content-keyed
   cache (:mod:`builder.core.mechanisms`) and point BMTK at the compiled library;
3. register our synapse models and build the network with BMTK, from the config as BMTK
   spells it (:mod:`builder.simulators.neuron.bionet_ext`: spike inputs, the file current clamp and
   membrane reports away from the soma, which BMTK 1.2 lacks, are ours); spike inputs and
   connections between cells written by our builder are created in bulk
   (:mod:`builder.simulators.neuron.inputs`, :mod:`builder.simulators.neuron.recurrent`) instead of
   edge by edge;
4. bind every synapse to its edge: Random123 release stream and weight keyed by (seed, edge
   population, ``syn_id``) -- so results do not depend on the number of ranks;
5. run, then rewrite ``output/spikes.h5`` in the SONATA layout libsonata reads, and print a
   one-screen summary; its rate counts the spikes after the warm-up
   (:func:`builder.core.simconfig.rate_window_ms`).

Synapses of the same model and parameters on the same segment share one point process by
default (``--no-merge`` keeps BMTK's one point process per synapse): their conductances are
linear in the events, and each connection keeps its own plasticity, release stream and weight
in its NetCon's weight vector, so both modes compute the same thing.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import json
import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.checks import PathResolver, merge_simulation_child, read_circuit
from ...core.runs import Interrupted, Stop, find_config, replace_dir, run_parser, write_failure
from .inputs import build_inputs, plan_inputs, played_vecstims
from .mpi import MPIContext, guard, setup_mpi
from .recurrent import build_recurrent, take_recurrent

__all__ = ["main", "run", "RunSummary", "find_config", "Interrupted", "Stop"]

log = logging.getLogger("builder.run")

OUTPUT_DIR = "output"
PARTIAL_OUTPUT = ".output-partial"


@dataclass
class RunSummary:
    config: Path
    n_cells: int
    n_synapses: int
    n_point_processes: int
    n_spikes: int
    tstop_ms: float
    setup_s: float
    sim_s: float
    spikes_file: Path
    #: Span the rate is computed over (ms): [input start + warm-up, tstop].
    window_ms: tuple[float, float] = (0.0, 0.0)
    #: Output spikes within ``window_ms``.
    n_spikes_window: int = 0

    @property
    def rate_hz(self) -> float:
        """Output rate per cell over :attr:`window_ms` (NaN when the window is empty)."""
        span_s = (self.window_ms[1] - self.window_ms[0]) / 1000.0
        if span_s <= 0:
            return float("nan")
        return self.n_spikes_window / max(self.n_cells, 1) / span_s

    @property
    def realtime_factor(self) -> float:
        return self.sim_s / (self.tstop_ms / 1000.0)

    def text(self) -> str:
        t0, t1 = self.window_ms
        if t1 > t0:
            rate = (
                f"{self.rate_hz:.2f} Hz per cell over {t0:g}-{t1:g} ms: "
                f"{self.n_spikes_window} spikes after the warm-up"
            )
        else:
            rate = (
                f"no rate: the run ({self.tstop_ms:g} ms) ends within its warm-up "
                "(run.warmup_ms after the input onset)"
            )
        return (
            f"simulated {self.tstop_ms / 1000:g} s of {self.config.parent}\n"
            f"  cells {self.n_cells}, synapses {self.n_synapses} on {self.n_point_processes} "
            f"point processes\n"
            f"  output spikes {self.n_spikes} ({rate}) -> {self.spikes_file}\n"
            f"  setup {self.setup_s:.1f} s, simulation {self.sim_s:.1f} s "
            f"(real-time factor {self.realtime_factor:.1f})"
        )


# ------------------------------------------------------------------ synapse merging
class _MergingFactory:
    """BMTK synapse functions that reuse one point process per (model, params, segment)."""

    def __init__(self) -> None:
        self.cache: dict[tuple[Any, ...], Any] = {}
        self._canon: dict[int, tuple[Any, str]] = {}

    def _key(self, params: Any) -> str:
        hit = self._canon.get(id(params))
        if hit is None or hit[0] is not params:
            hit = (params, json.dumps(params, sort_keys=True))
            self._canon[id(params)] = hit
        return hit[1]

    def function(self, model: str):
        from .synapses import LINEAR_MODELS, make_linear_synapse, make_synapse

        def create(syn_params: Any, sec_x: float, section: Any) -> Any:
            seg = section(sec_x)
            index = min(int(sec_x * section.nseg), section.nseg - 1)
            key = (model, self._key(syn_params), section.name(), index)
            pp = self.cache.get(key)
            if pp is None:
                if model in LINEAR_MODELS:
                    pp = make_linear_synapse(model, syn_params, seg.x, section)
                else:
                    pp = make_synapse(model, syn_params, seg.x, section, per_connection_weight=True)
                self.cache[key] = pp
            return pp

        create.__name__ = model
        return create


def _register(seed: int, merge: bool) -> _MergingFactory | None:
    from bmtk.simulator.bionet.pyfunction_cache import add_synapse_model

    from . import synapses

    if merge:
        factory = _MergingFactory()
        for model in synapses.MODELS + synapses.LINEAR_MODELS:
            add_synapse_model(factory.function(model), model, overwrite=True)
        return factory
    for model in synapses.MODELS:
        add_synapse_model(getattr(synapses, model), model, overwrite=True)
    return None


def _bind(graph: Any, seed: int, merge: bool) -> tuple[int, set[str]]:
    """Give every BMTK-built connection its release stream and weight.

    Returns the number of synapses and the names of their point processes.
    """
    from . import synapses

    n_syn = 0
    pps = set()
    pending: dict[tuple[int, str], tuple[Any, str, list[Any], list[int]]] = {}
    for cell in graph.get_local_cells().values():
        for c in getattr(cell, "_connections", []):
            edge = c._edge_prop
            params = edge["dynamics_params"]
            model = edge["model_template"]
            if model not in synapses.MODELS:
                if merge and model in synapses.LINEAR_MODELS:  # weight and delay are BMTK's
                    n_syn += 1
                    pps.add(c._syn.hname())
                continue
            pop = f"{edge.source_population}_to_{edge.target_population}"
            try:
                edge_id = int(edge["syn_id"])
            except KeyError:
                from ...core.errors import RunError

                raise RunError(
                    f"edges of {pop} have no 'syn_id' column (built by another tool?); our "
                    "synapse models key their random streams by it: rebuild with build-network"
                ) from None
            syn, nc = c._syn, c._connector
            if merge:
                synapses.set_release_stream(nc, seed, pop, edge_id)
                if synapses.has_weight_distribution(params, model):
                    # drawn below, one vectorised call per (JSON, population)
                    pending.setdefault((id(params), pop), (params, model, [], []))
                    pending[(id(params), pop)][2].append(nc)
                    pending[(id(params), pop)][3].append(edge_id)
                else:
                    section = syn.get_segment().sec
                    nc.weight[0] = nc.weight[0] * synapses.connection_weight(
                        params, section, seed, pop, edge_id, model=model
                    )
            else:
                synapses.bind_edge(syn, params, seed, pop, edge_id)
            n_syn += 1
            pps.add(syn.hname())
    for (_, pop), (params, model, ncs, ids) in pending.items():
        weights = synapses.draw_weights(params, seed, pop, ids, model=model)
        for nc, w in zip(ncs, weights.tolist(), strict=True):
            nc.weight[0] = nc.weight[0] * w
    return n_syn, pps


# ------------------------------------------------------------------ simulator modules
def _modules():
    """Our BMTK simulator modules (defined lazily: importing them imports NEURON)."""
    from bmtk.simulator.bionet.modules.sim_module import SimulatorMod
    from neuron import h

    class Progress(SimulatorMod):
        """A progress line over simulated time, on a terminal only."""

        chunked_role = "progress"  # engine.CHUNKED_ROLE: shown per chunk

        def __init__(self, enabled: bool):
            self.enabled = enabled
            self.t0 = 0.0

        def initialize(self, sim):
            self.t0 = time.perf_counter()

        def block(self, sim, block_interval):
            if not self.enabled:
                return
            done = h.t / sim.tstop
            wall = time.perf_counter() - self.t0
            eta = wall / done * (1 - done) if done > 0 else 0.0
            bar = "#" * int(30 * done)
            sys.stderr.write(
                f"\r  [{bar:<30}] {h.t / 1000:7.2f}/{sim.tstop / 1000:g} s  "
                f"wall {wall:6.1f} s  eta {eta:6.1f} s"
            )
            sys.stderr.flush()

        def finalize(self, sim):
            if self.enabled:
                sys.stderr.write("\n")

    from .bionet_ext import module_classes

    FileCurrentClamp = module_classes()[0]
    return Progress, FileCurrentClamp


# ------------------------------------------------------------------ the run
def run(
    config: str | os.PathLike,
    *,
    merge: bool = True,
    mpi: MPIContext | None = None,
    progress: bool | None = None,
    quiet: bool = False,
    settle: bool = True,
    bmtk_inputs: bool = False,
    stop: Stop | None = None,
    check: bool = True,
    engine: str | None = None,
    n_thread: int | None = None,
) -> RunSummary:
    """Run the simulation described by ``config`` (see the module docstring).

    With ``check`` (the default), every input is checked first (:mod:`builder.core.checks`).
    ``stop`` (installed signal handling) lets SIGINT/SIGTERM end the run cleanly: the partial
    output is removed, the previous output is left as it was, and :class:`Interrupted` is
    raised. Any other failure also removes the partial output. ``engine`` ("neuron" or
    "coreneuron") and ``n_thread`` override the config's ``run.engine`` / ``run.n_thread``
    (:mod:`builder.simulators.neuron.engine`).
    """
    from ...core.checks import check_run_inputs

    mpi = mpi or MPIContext(None, 0, 1)
    config = find_config(config)
    if check:
        check_run_inputs(config)
    base = config.parent
    try:
        return _run(
            config,
            merge,
            mpi,
            progress,
            quiet,
            settle,
            bmtk_inputs,
            stop or Stop(),
            (engine, n_thread),
        )
    except BaseException:
        # every rank: one that fails may be the last one left alive by MPI_Abort
        shutil.rmtree(base / PARTIAL_OUTPUT, ignore_errors=True)
        raise


def _run(
    config: Path,
    merge: bool,
    mpi: MPIContext,
    progress: bool | None,
    quiet: bool,
    settle: bool,
    bmtk_inputs: bool,
    stop: Stop,
    engine_args: tuple[str | None, int | None] = (None, None),
) -> RunSummary:
    from ...core import mechanisms
    from ...core.components import provided_mod_files, select_mechanisms
    from ...core.errors import OutputError, RunError
    from ...core.simconfig import rate_window_ms
    from ...core.synmodels import load_model_file
    from . import bionet_ext, cellgeom, ecp, synapses
    from .engine import coreneuron_mod_files, engine_options, simulate

    t_setup = time.perf_counter()
    base = config.parent
    os.chdir(base)  # BMTK resolves the manifest's "." against the working directory
    raw = merge_simulation_child(json.loads(config.read_text()), config, [])
    seed = int(raw.get("run", {}).get("random_seed", 0))
    engine, n_thread = engine_options(raw, config, *engine_args)
    extracellular = [
        name
        for name, rep in (raw.get("reports") or {}).items()
        if isinstance(rep, dict)
        and rep.get("module") == "extracellular"
        and rep.get("enabled", True)
    ]
    if n_thread > 1 and extracellular:
        raise RunError(
            f"{config}: reports.{extracellular[0]}: an extracellular report cannot run on "
            f"{n_thread} threads (-t / run.n_thread): NEURON 9 cannot record membrane currents "
            "of a threaded model; run one thread per process and use more processes "
            "(mpiexec -n N) for more cores, which gives the same results"
        )

    dirs = _component_dirs(raw, config)
    mod_dir = dirs.get("mechanisms_dir", base / "components" / "mechanisms")
    if (mod_dir / "modfiles").is_dir() or not mod_dir.is_dir():
        mod_dir = mod_dir / "modfiles"  # BMTK's layout: NMODL in mechanisms_dir/modfiles
    mods = sorted(mod_dir.glob("*.mod")) if mod_dir.is_dir() else []
    if not mods and mod_dir.is_dir():
        raise RunError(f"{mod_dir}: no NMODL files; the output directory is incomplete")
    # a spec build has no NMODL folder when its cells use NEURON's built-in channels only
    # (hh, pas): then our own mechanisms (synapse models, VecStim) are compiled alone
    chosen = select_mechanisms(mods, provided_mod_files())
    mods = list(chosen.mod_files)
    if engine == "coreneuron":
        mods = coreneuron_mod_files(mods, base)
    if mpi.rank == 0 and not quiet:
        for note in chosen.notes:
            print(f"run-network: note: {note}", file=sys.stderr)
    syn_dir = dirs.get("synaptic_models_dir", base / "components" / "synaptic_models")
    for js in sorted(syn_dir.glob("*.json")):
        if not synapses.is_our_model_file(js):
            continue  # BMTK's own synapse models (exp2syn, ...): BMTK reads them
        note = load_model_file(js)[1].warning(str(js))  # raises ParamsError naming the file
        if note is not None and mpi.rank == 0:
            log.warning(note)  # once per file; synapse creation itself is silent
    # rank 0 compiles; the others then find the cache (the cache is also lock-protected)
    if mpi.rank == 0:
        compiled = mechanisms.compiled_mechanisms(mods, coreneuron=engine == "coreneuron")
    mpi.barrier()
    if mpi.rank != 0:
        compiled = mechanisms.compiled_mechanisms(mods, coreneuron=engine == "coreneuron")

    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")  # no "no DISPLAY" warning
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"bmtk\.")
    bionet_ext.quiet_known_warnings()
    view = bionet_ext.bmtk_view(raw)  # BMTK's spelling; clamps and section reports are ours
    # BMTK's console handler binds sys.stdout when it is created (at import): in quiet mode it
    # gets a sink instead; output/log.txt still receives the full log.
    sink = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
    with sink:
        from bmtk.simulator import bionet
        from neuron import h

        # Outputs go to a partial directory that replaces output/ only once the run is complete.
        staged = copy.deepcopy(view.config)
        # spike inputs onto our synapse models are built in bulk (builder.simulators.neuron.inputs)
        bulk_models = synapses.MODELS + (synapses.LINEAR_MODELS if merge else ())
        plans = [] if bmtk_inputs else plan_inputs(view.config, config, bulk_models)
        handled = {p.name for p in plans}
        staged["inputs"] = {k: v for k, v in staged["inputs"].items() if k not in handled}
        # no dL in the config (spec builds): every cell keeps its template's or morphology's
        # segments, instead of BMTK's default re-segmentation at dL = 20 um
        staged.setdefault("run", {}).setdefault("dL", None)
        # BMTK 1.2 divides by nsteps_block (its default 0 fails at the first step); 5000 is
        # the value its own config templates write
        if not staged["run"].get("nsteps_block"):
            staged["run"]["nsteps_block"] = 5000
        staged.setdefault("manifest", {})["$OUTPUT_DIR"] = f"$BASE_DIR/{PARTIAL_OUTPUT}"
        staged["config_path"] = str(config)
        staged["config_dir"] = str(base)
        # extracellular reports are ours (builder.simulators.neuron.ecp), not BMTK's per-step module
        ecp_reports = ecp.take_reports(staged, config, base / PARTIAL_OUTPUT)
        if mpi.rank == 0:
            shutil.rmtree(base / PARTIAL_OUTPUT, ignore_errors=True)
        mpi.barrier()
        conf = bionet.Config.from_dict(staged)
        conf.mechanisms_dir = str(compiled)
        conf.components["mechanisms_dir"] = str(compiled)
        conf.build_env()
    if progress is None:
        progress = sys.stderr.isatty()
    if quiet or progress:
        # BMTK's console log would interleave with the progress line; output/log.txt keeps it
        for handler in logging.getLogger("IOUtils").handlers:
            if not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.WARNING)
    factory = _register(seed, merge)
    graph = bionet.BioNetwork.from_config(conf)
    # connections between simulated cells: built in bulk below, not by BMTK edge by edge
    recurrent = [] if bmtk_inputs else take_recurrent(graph, config, bulk_models)
    sim = bionet.BioSimulator.from_config(conf, network=graph)  # builds cells and edges
    # recurrent networks: every connection found its sections; the cells where their nodes are
    _check_target_sections(graph, config)
    cellgeom.place_cells(graph)
    n_syn, pp_names = _bind(graph, seed, merge)
    keep_inputs: list[Any] = []
    if plans or recurrent:
        if factory is not None:
            made = {m: factory.function(m) for m in synapses.MODELS + synapses.LINEAR_MODELS}

            def make(model: str, params: Any, x: float, section: Any) -> Any:
                return made[model](params, x, section)
        else:

            def make(model: str, params: Any, x: float, section: Any) -> Any:
                if model in synapses.LINEAR_MODELS:
                    return synapses.make_linear_synapse(model, params, x, section)
                return synapses.make_synapse(model, params, x, section)

        for n_in, in_pps, keep in (
            build_recurrent(recurrent, graph, syn_dir, seed, make, merge),
            build_inputs(plans, graph, syn_dir, seed, make, merge),
        ):
            n_syn += n_in
            pp_names |= in_pps
            keep_inputs += keep
    n_pp = len(pp_names)
    Progress, FileCurrentClamp = _modules()
    for inp in view.clamps:
        sim.add_mod(
            FileCurrentClamp(
                str(_config_path(str(inp["input_file"]), base)),
                inp.get("node_set", "biophysical_nodes"),
            )
        )
    bionet_ext.add_modules(
        sim, bionet_ext.BionetView(view.config, [], view.reports), base, base / PARTIAL_OUTPUT
    )
    ecp.add_ecp(sim, ecp_reports)
    sim.add_mod(Progress(bool(progress) and mpi.rank == 0))
    pc = h.ParallelContext()
    n_syn = int(pc.allreduce(n_syn, 1))
    n_pp = int(pc.allreduce(n_pp, 1))
    n_cells = int(pc.allreduce(len(graph.get_local_cells()), 1))
    setup_s = time.perf_counter() - t_setup

    if os.environ.get("L5NET_CACHE_EFFICIENT", "1") != "0":
        h.CVode().cache_efficient(1)  # contiguous memory layout: same numbers, faster steps
    if settle:
        _steady_state_init(h)
    loop = _LoopGuard(sim, h, pc, stop, mpi.size)
    t_sim = time.perf_counter()
    with stop.deferred():
        try:
            simulate(sim, engine, n_thread, compiled, played_vecstims(keep_inputs), loop)
        except OSError as exc:  # BMTK writing its outputs at the end of the run
            raise OutputError(write_failure(exc, base / PARTIAL_OUTPUT)) from None
        loop.outcome()
    sim_s = time.perf_counter() - t_sim
    del factory, keep_inputs

    partial_spikes = (base / conf.output["spikes_file"]).resolve()
    spikes_file = base / OUTPUT_DIR / partial_spikes.relative_to(base / PARTIAL_OUTPUT)
    n_spikes = n_window = 0
    window = rate_window_ms(raw)
    if mpi.rank == 0:
        from ...core.sonata_read import sonata_report

        internal = [p.name for p in graph.get_node_populations() if not p.virtual_nodes_only]
        try:
            n_spikes = _sonata_spikes(partial_spikes, internal)
            for report in _report_files(conf, base / PARTIAL_OUTPUT):
                sonata_report(report)  # ours (view.reports) are written in the layout already
            n_window = _spikes_in(partial_spikes, window)
            _write_rates(config, partial_spikes, internal, window)
            stop.check("after the simulation, before its output was put in place")
            with stop.deferred():  # the two renames are not interrupted half-way
                replace_dir(base / PARTIAL_OUTPUT, base / OUTPUT_DIR)
        except OutputError as exc:
            raise OutputError(f"{exc}; the previous output was left as it was") from None
        except OSError as exc:
            raise OutputError(write_failure(exc, base / OUTPUT_DIR)) from None
    mpi.barrier()
    return RunSummary(
        config,
        n_cells,
        n_syn,
        n_pp,
        n_spikes,
        float(conf.tstop),
        setup_s,
        sim_s,
        spikes_file,
        window,
        n_window,
    )


def _component_dirs(raw: dict[str, Any], config: Path) -> dict[str, Path]:
    """The ``components`` directories of the circuit and of the simulation config, resolved."""
    circuit, cres = read_circuit(config)
    dirs = {k: cres(str(v)) for k, v in (circuit.get("components") or {}).items()}
    res = PathResolver(raw.get("manifest"), config.parent, config)
    dirs.update({k: res(str(v)) for k, v in (raw.get("components") or {}).items()})
    return dirs


def _check_target_sections(graph: Any, config: Path) -> None:
    """Fail before the simulation if an edge type targets a section type its cells lack.

    BMTK only logs a warning and drops such synapses; we raise :class:`RunError` naming the
    edge-types file, the edge type and its ``target_sections``.
    """
    import csv

    import h5py
    import numpy as np

    from ...core.errors import RunError

    types_by_pop: dict[str, list[tuple[Path, dict[str, str]]]] = {}
    circuit, cres = read_circuit(config)
    for entry in circuit.get("networks", {}).get("edges", []):
        h5 = cres(str(entry["edges_file"])).resolve()
        csv_path = cres(str(entry["edge_types_file"])).resolve()
        if not h5.is_file() or not csv_path.is_file():
            continue
        with open(csv_path, newline="") as f:
            rows = [r for r in csv.DictReader(f, delimiter=" ") if r.get("target_sections")]
        if not rows:
            continue
        with h5py.File(h5, "r") as f:
            for g in f.get("edges", {}).values():
                trg = g["target_node_id"].attrs.get("node_population")
                trg = trg.decode() if isinstance(trg, bytes) else str(trg)
                types_by_pop.setdefault(trg, []).extend((csv_path, r) for r in rows)
    names = {1: "somatic", 2: "axonal", 3: "basal", 4: "apical"}
    checked: set[tuple[str, str, str]] = set()
    for cell in graph.get_local_cells().values():
        pop = cell._node.population_name
        morph = getattr(cell, "morphology", None)
        if morph is None or pop not in types_by_pop:
            continue
        present = {names.get(int(t)) for t in np.unique(morph.seg_props.type)}
        present |= {"soma" if "somatic" in present else "", "dend" if "basal" in present else ""}
        present |= {"apic" if "apical" in present else "", "axon" if "axonal" in present else ""}
        for csv_path, row in types_by_pop[pop]:
            key = (pop, str(csv_path), row["edge_type_id"])
            if key in checked:
                continue
            checked.add(key)
            text = row["target_sections"]
            try:  # ours are JSON; BMTK's NetworkBuilder writes Python literals ("['basal']")
                wanted = json.loads(text)
            except ValueError:
                try:
                    wanted = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    wanted = text
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            missing = [s for s in wanted if s not in present]
            if missing:
                has = sorted(n for n in present if n in names.values())
                raise RunError(
                    f"{csv_path}: edge type {row['edge_type_id']}: target_sections "
                    f"{', '.join(missing)} not found on the cells of {pop} (they have: "
                    f"{', '.join(has) or 'none'})"
                )


class _LoopGuard:
    """Watches BMTK's per-step callback: stops the loop on a signal or an exception.

    NEURON calls ``sim.post_fadvance`` after every time step and prints (then ignores) any
    exception raised in it. We wrap it: an exception is recorded and ends the loop
    (``h.stoprun``), and so does a recorded signal. Under MPI the ranks agree every
    :data:`CHECK_MS` of simulated time (an ``allreduce``), so they all stop at the same step.
    """

    CHECK_MS = 1.0

    def __init__(self, sim: Any, h: Any, pc: Any, stop: Stop, n_ranks: int):
        self.h, self.pc, self.stop, self.n_ranks = h, pc, stop, n_ranks
        self.error: BaseException | None = None
        self.error_t = 0.0
        self.tstop = float(sim.tstop)
        self.every = 1 if n_ranks == 1 else max(1, round(self.CHECK_MS / float(h.dt)))
        self.steps = 0
        original = sim.post_fadvance

        def post_fadvance() -> None:
            if self.error is None:
                try:
                    original()
                except BaseException as exc:  # noqa: BLE001 -- NEURON would swallow it
                    self.error, self.error_t = exc, float(h.t)
            self.steps += 1
            if self.steps % self.every == 0:
                flag = 1.0 if (self.stop.signum or self.error is not None) else 0.0
                if self.n_ranks > 1:
                    flag = self.pc.allreduce(flag, 2)
                if flag:
                    h.stoprun = 1

        sim.post_fadvance = post_fadvance  # hoc calls pysim.post_fadvance() each step

    def fail(self, exc: BaseException) -> None:
        """Record a failure outside the per-step callback (chunked runs,
        builder.simulators.neuron.engine)."""
        if self.error is None:
            self.error, self.error_t = exc, float(self.h.t)

    def should_stop(self) -> bool:
        """Whether a chunked run stops here: a signal or a failure on any rank (collective)."""
        flag = 1.0 if (self.stop.signum or self.error is not None) else 0.0
        if self.n_ranks > 1:
            flag = self.pc.allreduce(flag, 2)
        return bool(flag)

    def outcome(self) -> None:
        """Raise if the loop stopped early, failed, or was interrupted (on every rank)."""
        from ...core.errors import RunError

        t = float(self.h.t)
        failed, signum = float(self.error is not None), float(self.stop.signum)
        if self.n_ranks > 1:
            failed = self.pc.allreduce(failed, 2)
            signum = self.pc.allreduce(signum, 2)
        if self.error is not None:
            if isinstance(self.error, OSError):
                raise RunError(
                    f"writing the output failed at t = {self.error_t:.1f} ms: {self.error}"
                )
            raise RunError(
                f"the simulation failed at t = {self.error_t:.1f} ms: "
                f"{type(self.error).__name__}: {self.error}"
            )
        if failed:
            raise RunError(f"stopped at t = {t:.1f} ms: another rank failed")
        if signum:
            raise Interrupted(int(signum), f"at t = {t:.1f} ms of {self.tstop:g} ms", True)
        if t < self.tstop - 0.5 * float(self.h.dt):
            raise RunError(f"the simulation stopped early, at t = {t:.1f} ms of {self.tstop:g} ms")


def _report_files(conf: Any, partial: Path) -> list[Path]:
    """The membrane report files BMTK wrote into the partial output directory."""
    out = []
    for name, rep in (conf.reports or {}).items():
        if rep.get("module") != "membrane_report" or not rep.get("enabled", True):
            continue
        p = Path(str(rep.get("file_name", f"{name}.h5")))
        p = p if p.is_absolute() else partial / p
        if p.is_file():
            out.append(p)
    return out


def _write_rates(
    config: Path, spikes_file: Path, populations: list[str], window: tuple[float, float]
) -> None:
    """``rates.csv`` next to the spikes: per population and ``pop_name``, over ``window``."""
    from ...analysis.rates import population_rates, write_rates
    from ...core.netconfig import read_config
    from ...core.sonata_read import read_spikes, spike_populations

    net = read_config(config, check_run=False)
    have = set(spike_populations(spikes_file)) if spikes_file.is_file() else set()
    pops = [p for p in populations if p in net.nodes]
    sizes = {p: net.nodes[p].size for p in pops}
    labels = {p: net.nodes[p].column("pop_name") for p in pops}
    spikes = {p: read_spikes(spikes_file, p) for p in pops if p in have}
    write_rates(spikes_file.parent / "rates.csv", population_rates(spikes, sizes, labels, window))


def _steady_state_init(h: Any) -> None:
    """Start every run from the cell's resting steady state, not from a uniform ``v_init``.

    A single ``v_init`` everywhere is not a steady state of a cell whose compartments rest at
    different potentials (Ih, e_pas = -90 mV): the legacy runs began with a spurious spike or
    two. After ``finitialize(v_init)`` the cell is integrated for 500 ms at negative times with
    2 ms backward-Euler steps (stable, and coarse enough not to fire), then t = 0 and the usual
    dt are restored. No input event is due before t = 0, so none is delivered. If the settled
    membrane potential leaves [-120, 0] mV anywhere (a cell whose rest is not a stable fixed
    point), the run falls back to the plain ``finitialize(v_init)`` and says so.
    """
    h(
        """
        settle_ok_l5net = 1
        proc init() { local dtsav, cvsav, vlo, vhi
            finitialize(v_init)
            cvsav = cvode.active()
            if (cvsav) { cvode.active(0) }
            dtsav = dt
            dt = 2
            t = -500
            while (t < -1) { fadvance() }
            vlo = 1e9  vhi = -1e9
            forall for (x, 0) {
                if (v(x) < vlo) { vlo = v(x) }
                if (v(x) > vhi) { vhi = v(x) }
            }
            dt = dtsav
            settle_ok_l5net = (vlo > -120 && vhi < 0)
            if (!settle_ok_l5net) { finitialize(v_init) }
            t = 0
            if (cvsav) { cvode.active(1) cvode.re_init() } else { fcurrent() }
            frecord_init()
        }
        """
    )


def _config_path(value: str, base: Path) -> Path:
    """A ``$BASE_DIR/...`` (or relative) path of the config, made absolute."""
    value = value.replace("${BASE_DIR}", ".").replace("$BASE_DIR", ".")
    p = Path(value)
    return p if p.is_absolute() else base / p


def _spikes_in(path: Path, window: tuple[float, float]) -> int:
    """Spikes of every population of a SONATA spikes file within [start, stop] (ms)."""
    from ...core.sonata_read import read_spikes

    _, t = read_spikes(path)
    return int(((t >= window[0]) & (t <= window[1])).sum())


def _sonata_spikes(path: Path, populations: list[str]) -> int:
    """Rewrite BMTK's spikes file in the layout libsonata reads; returns the spike count.

    Every simulated population gets its group, even one that did not spike (BMTK then writes
    an empty ``/spikes``).
    """
    import h5py
    import numpy as np

    from ...core.sonata import write_spikes_multi

    pops: dict[str, tuple[Any, Any]] = {
        name: (np.zeros(0, np.uint64), np.zeros(0)) for name in populations
    }
    if path.exists():
        with h5py.File(path, "r") as f:
            for name, g in (f.get("spikes") or {}).items():
                if isinstance(g, h5py.Group) and "timestamps" in g:
                    pops[name] = (g["node_ids"][()], g["timestamps"][()])
    write_spikes_multi(path, pops, sorting="by_time")
    return int(sum(np.asarray(ids).size for ids, _ in pops.values()))


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    """The NEURON backend's entry point: run one config (``run-network`` hands it over).

    ``run-network`` itself (:mod:`builder.commands.run_cli`) handles sweeps, ``plot``, ``collect``
    and configs of other simulators, and calls this for a NEURON config.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = run_parser().parse_args(argv)
    ctx = setup_mpi()
    from ...core.checks import check_run_inputs
    from ...core.errors import BuildError
    from ...core.locks import RunLock

    if ns.jobs != 1 or ns.slurm:
        print("run-network: error: -j/--slurm apply to a sweep directory", file=sys.stderr)
        return 2

    stop = Stop().install()
    lock = None
    try:
        # checks and the directory lock on rank 0, the verdict shared: every rank exits 2 cleanly
        problem = None
        if ctx.rank == 0:
            try:
                config = find_config(ns.config)
                check_run_inputs(config)
                lock = RunLock(config.parent).acquire()
            except BuildError as exc:
                problem = str(exc)
        if ctx.size > 1:
            problem = ctx.comm.bcast(problem, root=0)
        if problem is not None:
            if ctx.rank == 0:
                print(f"run-network: error: {problem}", file=sys.stderr)
            return 2
        with guard(ctx):
            summary = run(
                ns.config,
                merge=not ns.no_merge,
                mpi=ctx,
                progress=False if ns.no_progress or ns.quiet else None,
                quiet=ns.quiet,
                settle=not ns.no_settle,
                bmtk_inputs=ns.bmtk_inputs,
                stop=stop,
                check=False,
                engine=ns.engine,
                n_thread=ns.threads,
            )
    except BuildError as exc:
        print(f"run-network: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        if ctx.rank == 0:
            print(exc.report(), file=sys.stderr)
        return exc.exit_status
    finally:
        if lock is not None:
            lock.release()
        stop.restore()
    if ctx.rank == 0 and not ns.quiet:
        print(summary.text())
    if ctx.rank == 0 and ns.plot:
        from ...analysis.plots import plot_run

        notes: list[str] = []
        try:
            pngs = plot_run(summary.config, notes=notes)
        except BuildError as exc:
            print(f"run-network: the run finished but plotting failed: {exc}", file=sys.stderr)
            return 2
        if not ns.quiet:
            for png in pngs:
                print(f"  plot: {png}")
        for note in notes:
            print(f"  note: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
