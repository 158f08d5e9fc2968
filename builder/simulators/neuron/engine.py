"""The simulation engine of ``run-network``: NEURON's own loop or CoreNEURON (``run.engine``).

* ``"neuron"`` (default): NEURON's own integration. When every BMTK module of the run can be
  replayed (spikes, soma and membrane reports, our clamps, extracellular reports, progress;
  not a run continued from a saved state), ``pc.psolve`` runs it in chunks of
  :data:`CHUNK_MS` of biological time with the reports recorded by ``Vector.record`` and
  replayed afterwards, as for CoreNEURON below: no Python call per time step (BMTK's
  ``post_fadvance`` cost ~8 % of the default network's simulation), the same samples and
  files. Between chunks the progress line is updated and a signal or a failing module stops
  the run (``guard``: :class:`builder.simulators.neuron.runner._LoopGuard`). Otherwise BMTK's
  ``sim.run()``, its ``fadvance`` loop with the per-step callback.
* ``"coreneuron"``: the same model, initialised by NEURON (including our resting-state start),
  handed to CoreNEURON in memory by one ``pc.psolve(tstop)``. The mechanisms are compiled with
  ``nrnivmodl -coreneuron`` (:func:`builder.core.mechanisms.compiled_mechanisms`). ``psolve`` makes
  no per-step Python call, so BMTK's membrane reports are recorded with ``Vector.record`` on the
  segments they read and replayed into BMTK's report modules afterwards (same samples, same
  files); spikes come back through ``pc.spike_record`` as with NEURON.

``run.n_thread`` (or ``-t N``) sets ``pc.nthread`` (:func:`setup_threads`):

* NEURON needs every NetCon delay to be at least two time steps once it runs threads (it
  synchronises the threads every minimum delay less one step). The default network's input
  delay is 0.1 ms = dt, so the spike inputs are played *early* by ``lead = 2 dt - delay`` and
  their NetCons wait ``lead`` longer: each event reaches its synapse at the same time as before
  (up to round-off of ``(t - lead) + (delay + lead)``). Input spikes earlier than ``lead``
  cannot be played at negative times; each is put on the queue once per initialisation with
  ``NetCon.event`` at its delivery time instead. Delays between cells (recurrent networks)
  are the model's and are left alone: below two steps they are a clear error.
* Serial, with fewer cells than threads (the default network: one cell), each cell is
  cut into pieces of about equal cost with ``pc.multisplit`` (:func:`plan_split`), one piece
  per thread: the pieces are integrated in parallel and joined exactly at the cut points.
  Otherwise NEURON's threads share the whole cells.

The ``coreneuron`` engine gets the same early inputs but no multisplit (CoreNEURON has none:
NEURON 9.0.2 hands a multisplit model to it without a word, but the pieces run unjoined;
measured on the default network, the soma 4.9 mV off within 10 ms):
its threads share whole cells, so on the default network's one cell they only wait (1 s of
biology: 68 s of CPU time on 2 threads against 7 s on one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ENGINES",
    "coreneuron_mod_files",
    "engine_options",
    "plan_split",
    "setup_threads",
    "simulate",
]

#: Our VecStim, for both engines (BMTK's ``vecevent.mod`` does not compile for CoreNEURON).
VECSTIM = Path(__file__).with_name("vecstim_coreneuron.mod")
_MECH_NAME = re.compile(r"^\s*(?:SUFFIX|POINT_PROCESS|ARTIFICIAL_CELL)\s+(\w+)", re.M)

#: The values of ``run.engine`` / ``--engine``.
ENGINES = ("neuron", "coreneuron")


def engine_options(
    raw: dict[str, Any], config: Path, engine: str | None, n_thread: int | None
) -> tuple[str, int]:
    """The engine and thread count: the command line's if given, else the config's ``run``.

    Raises
    ------
    RunError
        A ``run.engine`` or ``run.n_thread`` the runner does not know (names the file and key).
    """
    from ...core.errors import RunError

    run = raw.get("run") or {}
    if engine is None:
        engine = run.get("engine", "neuron")
        if engine not in ENGINES:
            raise RunError(f"{config}: run.engine = {engine!r} is not one of {', '.join(ENGINES)}")
    elif engine not in ENGINES:
        raise RunError(f"--engine {engine!r} is not one of {', '.join(ENGINES)}")
    if n_thread is None:
        n_thread = run.get("n_thread", 1)
        if isinstance(n_thread, bool) or not isinstance(n_thread, int) or n_thread < 1:
            raise RunError(f"{config}: run.n_thread = {n_thread!r} is not an integer >= 1")
    elif n_thread < 1:
        raise RunError(f"-t/--threads {n_thread} is not an integer >= 1")
    return str(engine), int(n_thread)


def coreneuron_mod_files(mod_files: Sequence[Path], base: Path) -> list[Path]:
    """The NMODL files a CoreNEURON run compiles: ours and those the network names.

    An output directory carries BMTK's whole channel library as fallback; some of those files
    (``NaV.mod``: a ``sparse`` KINETIC solved twice) do not compile with NEURON 9.0's CoreNEURON
    code generator although no cell of ours uses them. A file is kept if it is one of ours
    (:data:`builder.core.components.PROVIDED_MECHANISMS`) or its mechanism name appears as a word in
    a component file (cell templates, models, synapse models) or a node-types table; a cell
    inserting a mechanism by any other route would fail to instantiate, naming it. The file
    defining ``VecStim`` is replaced by :data:`VECSTIM`.
    """
    from ...core.components import PROVIDED_MECHANISMS

    texts = []
    for folder, pattern in ((base / "components", "*"), (base / "network", "*.csv")):
        for path in sorted(folder.rglob(pattern)) if folder.is_dir() else []:
            if path.is_file() and "mechanisms" not in path.relative_to(folder).parts[:1]:
                try:
                    texts.append(path.read_text(errors="replace"))
                except OSError:
                    continue
    words = set(re.findall(r"\w+", "\n".join(texts)))
    kept = []
    for mod in mod_files:
        names = _MECH_NAME.findall(Path(mod).read_text(errors="replace"))
        if "VecStim" in names:
            kept.append(VECSTIM)  # BMTK's vecevent.mod is NEURON-only
        elif any(n in PROVIDED_MECHANISMS or n in words for n in names):
            kept.append(Path(mod))
    return kept


def simulate(
    sim: Any,
    engine: str,
    n_thread: int,
    mechanisms_dir: Path | None = None,
    inputs: Sequence[tuple[Any, Any]] = (),
    guard: Any = None,
) -> None:
    """Run ``sim`` (a BMTK ``BioSimulator``, fully set up) with ``engine`` on ``n_thread``.

    ``mechanisms_dir`` (coreneuron): the directory
    :func:`builder.core.mechanisms.compiled_mechanisms` built with ``coreneuron=True``; CoreNEURON
    loads its ``libcorenrnmech`` (NEURON looks for it through ``CORENEURONLIB``, else finds only
    its built-in mechanisms). ``inputs``: the (times Vector, VecStim) pairs of the spike inputs
    (:func:`builder.simulators.neuron.inputs.played_vecstims`), which threads may play early
    (:func:`setup_threads`). ``guard`` (engine neuron, chunked runs): ``guard.fail(exc)`` records a
    module's exception, ``guard.should_stop()`` says (collectively under MPI) whether to stop after
    a chunk.
    """
    from neuron import h

    pc = h.ParallelContext()
    keep: Any = None
    try:
        if n_thread > 1:
            keep = setup_threads(sim, h, pc, n_thread, inputs, split=engine == "neuron")
        if engine == "neuron" and not _replayable(sim):
            sim.run()
        elif engine == "neuron":
            _run_recorded(sim, h, pc, None, guard)
        else:
            _run_coreneuron(sim, h, pc, mechanisms_dir)
    except RuntimeError as exc:
        if n_thread > 1 and "mindelay" in str(exc):
            from ...core.errors import RunError

            raise RunError(
                f"-t/--threads {n_thread} (run.n_thread): NEURON cannot run this network on "
                f"threads: a connection between cells (or an input BMTK builds itself) has a "
                f"delay below two time steps (2 dt = {2 * float(h.dt):g} ms); run it with one "
                "thread"
            ) from None
        raise
    del keep


def setup_threads(
    sim: Any,
    h: Any,
    pc: Any,
    n_thread: int,
    inputs: Sequence[tuple[Any, Any]] = (),
    split: bool = True,
) -> list[Any]:
    """``pc.nthread(n_thread)``, inputs played early, cells split (see the module docstring).

    Returns the objects that must live as long as the run (the ``FInitializeHandler`` of the
    early input events).
    """
    pc.nthread(n_thread)
    keep = _lead_inputs(h, inputs, float(h.dt))
    cells = list(sim.net.get_local_cells().values())
    # serial only: under MPI the split ids would be global and pc.multisplit() collective
    if split and int(pc.nhost()) == 1 and 0 < len(cells) < n_thread:
        sid = 0
        for cell in cells:
            sid = _multisplit(h, pc, cell.get_sections(), n_thread, sid)
        pc.multisplit()
    pc.set_maxstep(10)  # recomputes the minimum delay for the new thread layout
    return keep


def _lead_inputs(h: Any, inputs: Sequence[tuple[Any, Any]], dt: float) -> list[Any]:
    """Play the spike inputs ``lead`` early into NetCons ``lead`` longer (module docstring)."""
    import numpy as np

    if not inputs:
        return []
    by_stim: dict[str, list[Any]] = {}
    for nc in h.List("NetCon"):
        pre = nc.pre()
        if pre is not None:
            by_stim.setdefault(pre.hname(), []).append(nc)
    pairs = [(vec, by_stim.get(vs.hname(), [])) for vec, vs in inputs]
    delays = [nc.delay for _, ncs in pairs for nc in ncs]
    if not delays or min(delays) >= 2 * dt:
        return []
    # a hair more than needed, so that delay + lead >= 2 dt survives rounding
    lead = 2 * dt - min(delays) + 1e-9
    early: list[tuple[Any, float]] = []  # (NetCon, delivery time)
    for vec, ncs in pairs:
        times = vec.as_numpy().copy()
        k = int(
            np.searchsorted(times, lead)
        )  # sorted per source (builder.simulators.neuron.inputs)
        for nc in ncs:
            early += [(nc, float(t) + nc.delay) for t in times[:k]]
            nc.delay += lead
        vec.from_python((times[k:] - lead).tolist())

    def schedule() -> None:
        for nc, t in early:
            nc.event(t)

    return [h.FInitializeHandler(1, schedule), early]


def plan_split(
    sections: Sequence[Any], n_pieces: int, cost: Any = None
) -> tuple[list[Any], list[float]]:
    """Where to cut one cell into ``n_pieces`` pieces of about equal cost.

    ``sections``: the cell's sections; ``cost(sec)``: the cost of a section (default: its
    segments times one plus its number of density mechanisms, an estimate of the work per
    step). Greedy: ``n_pieces - 1`` times, the section (other than the root) whose subtree in
    the uncut remainder costs closest to ``total / n_pieces`` is cut off. Returns the sections
    cut off (each the root of one piece) and the pieces' costs, the remainder's first.
    """
    cost = cost or _section_cost
    names = [s.name() for s in sections]
    index = {n: i for i, n in enumerate(names)}
    own = [float(cost(s)) for s in sections]
    parent = []
    for s in sections:
        seg = s.parentseg()
        parent.append(index.get(seg.sec.name(), -1) if seg is not None else -1)
    # parents before children: a breadth-first order from the roots
    kids: list[list[int]] = [[] for _ in names]
    for i, p in enumerate(parent):
        if p >= 0:
            kids[p].append(i)
    order = [i for i, p in enumerate(parent) if p < 0]
    for i in order:  # grows while it is walked
        order.extend(kids[i])
    total = sum(own)
    cut: list[int] = []

    def sizes() -> list[float]:
        size = list(own)
        for i in reversed(order):
            if parent[i] >= 0 and i not in cut:
                size[parent[i]] += size[i]
        return size

    for _ in range(n_pieces - 1):
        size = sizes()
        choices = [i for i in order if parent[i] >= 0 and i not in cut]
        if not choices:
            break
        cut.append(min(choices, key=lambda i: abs(size[i] - total / n_pieces)))
    size = sizes()
    rest = sum(size[i] for i in order if parent[i] < 0)
    return [sections[i] for i in cut], [rest] + [size[i] for i in cut]


def _section_cost(sec: Any) -> float:
    """Work per step: each segment's cable and density mechanisms."""
    return sec.nseg * (1.0 + len(sec.psection()["density_mechs"]))


def _multisplit(h: Any, pc: Any, sections: Sequence[Any], n_thread: int, sid: int) -> int:
    """Cut one cell into ``n_thread`` pieces (:func:`plan_split`), piece ``i`` on thread ``i``.

    The split points get the ids ``sid``, ``sid + 1``, ...; returns the next free id.
    """
    cut, _ = plan_split(sections, n_thread)
    roots = [s for s in sections if s.parentseg() is None]
    points: dict[tuple[str, float], int] = {}
    for sec in cut:
        parent = sec.parentseg()
        end = h.section_orientation(sec=sec)
        h.disconnect(sec=sec)
        key = (parent.sec.name(), parent.x)
        if key not in points:
            points[key] = sid + len(points)
            pc.multisplit(parent.x, points[key], sec=parent.sec)
        pc.multisplit(end, points[key], sec=sec)
    for i, piece in enumerate([roots, *([sec] for sec in cut)]):
        seclist = h.SectionList()
        for sec in piece:
            seclist.append(sec=sec)
        pc.partition(i, seclist)
    return sid + len(points)


def _corenrn_library(mechanisms_dir: Path) -> Path:
    from ...core.errors import RunError
    from ...core.mechanisms import mechanisms_library

    lib = mechanisms_library(mechanisms_dir)
    core = lib.with_name(lib.name.replace("libnrnmech", "libcorenrnmech"))
    if not core.is_file():
        raise RunError(
            f"{mechanisms_dir}: no CoreNEURON mechanisms library ({core.name}) next to {lib.name}"
        )
    return core


#: Biological time per ``psolve`` of a chunked NEURON run (progress, signals, failures are
#: looked at in between): 1,000 steps at dt 0.1 ms.
CHUNK_MS = 100.0
#: Our own BMTK modules declare, in this class attribute, what they are to a run in chunks:
#: ``"clamp"`` (plays Vectors: no per-step call), ``"progress"`` (shown per chunk) or
#: ``"ecp"`` (an extracellular report flushed per chunk). Besides these, a recorded run
#: supports BMTK's spikes and soma/membrane reports; any other module needs the per-step loop.
CHUNKED_ROLE = "chunked_role"


def _role(mod: Any) -> str | None:
    """The chunked-run role ``mod``'s class declares (:data:`CHUNKED_ROLE`), else None."""
    return getattr(type(mod), CHUNKED_ROLE, None)


def _unreplayable(sim: Any) -> list[str]:
    """Class names of the run's BMTK modules that need NEURON's per-step callback."""
    from bmtk.simulator.bionet.modules import SpikesMod
    from bmtk.simulator.bionet.modules.record_cellvars import MembraneReport, SomaReport

    return [
        type(mod).__name__
        for mod in sim._sim_mods
        if not isinstance(mod, (SpikesMod, SomaReport, MembraneReport)) and _role(mod) is None
    ]


def _replayable(sim: Any) -> bool:
    """Whether the NEURON engine can run ``sim`` chunk by chunk (module docstring)."""
    return not _unreplayable(sim) and not getattr(sim, "_start_from_state", False)


def _run_coreneuron(sim: Any, h: Any, pc: Any, mechanisms_dir: Path | None) -> None:
    from ...core.errors import RunError

    for name in _unreplayable(sim):
        raise RunError(
            f"engine coreneuron: the simulation uses BMTK module {name}, which samples in "
            "NEURON's per-step callback that CoreNEURON does not make; run it with "
            '--engine neuron (run.engine = "neuron")'
        )
    _run_recorded(sim, h, pc, mechanisms_dir, None, core=True)


def _run_recorded(
    sim: Any, h: Any, pc: Any, mechanisms_dir: Path | None, guard: Any, core: bool = False
) -> None:
    """``psolve`` with the reports recorded and replayed; CoreNEURON if ``core``.

    CoreNEURON runs in one ``psolve`` (each call hands the model over again) unless an
    extracellular report asks for chunks; NEURON in chunks of :data:`CHUNK_MS`, with
    ``guard`` consulted after each.
    """
    import os

    from bmtk.simulator.bionet.io_tools import io
    from bmtk.simulator.bionet.modules import SpikesMod
    from bmtk.simulator.bionet.modules.record_cellvars import MembraneReport, SomaReport
    from neuron import coreneuron

    mods = list(sim._sim_mods)
    replayed: list[tuple[Any, list[Any]]] = []  # (report module, [(segment, variable)])
    for mod in mods:
        mod.initialize(sim)
        if isinstance(mod, (SomaReport, MembraneReport)):
            replayed.append((mod, _report_segments(sim, mod)))
    n_steps = int(round(sim.tstop / sim.dt))
    # every step's value (index 0: after initialisation, index k: after step k)
    recs = []
    for _, pairs in replayed:
        for seg, var in pairs:
            vec = h.Vector(n_steps + 1)
            vec.resize(0)
            vec.record(getattr(seg, f"_ref_{var}"))  # every step (CoreNEURON: no Dt form)
            recs.append((seg, var, vec))
    if core:
        h.CVode().cache_efficient(1)  # CoreNEURON requires it (the NEURON engine sets it too)
        if mechanisms_dir is not None:
            os.environ["CORENEURONLIB"] = str(_corenrn_library(Path(mechanisms_dir)))
        coreneuron.enable = True
        coreneuron.verbose = 0
    # extracellular reports (builder.simulators.neuron.ecp) map each chunk of recorded membrane
    # currents to the electrodes: CoreNEURON runs chunk by chunk and hands the recordings back in
    # between
    ecps = [mod for mod in mods if _role(mod) == "ecp"]
    progress = [mod for mod in mods if _role(mod) == "progress"]
    own = n_steps if core else max(1, int(round(CHUNK_MS / float(sim.dt))))
    chunk = min([int(mod.chunk) for mod in ecps if int(mod.chunk) > 0] + [own])
    io.log_info(f"Running simulation for {sim.tstop:.3f} ms with the time step {sim.dt:.3f} ms")
    try:
        h.stdinit()
        io.log_info(f"Starting timestep: 0 at t_sim: {float(h.t):.3f} ms")
        done = 0
        while done < n_steps:
            stop = min(done + chunk, n_steps)
            pc.psolve(sim.tstop if stop == n_steps else stop * float(sim.dt))
            # CoreNEURON may stop a step short of an intermediate time (it advances in
            # min-delay intervals): the steps it made are what the recordings hold
            reached = min(n_steps, int(round(float(h.t) / float(sim.dt))))
            for mod in ecps:
                mod.since = reached - done
                mod.flush()
            done = reached
            if core:
                continue
            try:
                for mod in progress:
                    mod.block(sim, (0, done))
            except Exception as exc:  # noqa: BLE001 -- ends the run like a step's failure
                if guard is None:
                    raise
                guard.fail(exc)
            if guard is not None and guard.should_stop():
                return  # the runner's guard reports where and why
    finally:
        coreneuron.enable = False
    if replayed:
        _replay(sim, replayed, recs, n_steps)
    for mod in mods:
        if isinstance(mod, SpikesMod):
            mod.block(sim, (0, n_steps))
        if _role(mod) != "progress" or not core:
            mod.finalize(sim)


def _report_segments(sim: Any, mod: Any) -> list[tuple[Any, str]]:
    """The (segment, variable) pairs BMTK's report module ``mod`` reads in its ``step``."""
    from bmtk.simulator.bionet.modules.record_cellvars import SomaReport

    pairs = []
    names = list(mod._variables) + list(mod._transforms)
    for gid in mod._local_gids:
        cell = sim.net.get_cell_gid(gid)
        if isinstance(mod, SomaReport):
            segs = [cell.soma[0](0.5)]
        else:
            segs = [
                seg
                for seg, stype in zip(
                    cell.morphology.segments, cell.morphology.seg_props.type, strict=False
                )
                if stype in mod._section_types
            ]
        pairs += [(seg, var) for seg in segs for var in names]
    return pairs


def _replay(sim: Any, replayed: list[Any], recs: list[Any], n_steps: int) -> None:
    """Feed the recorded values to the report modules step by step, as NEURON's loop would.

    BMTK calls ``step(sim, k)`` after time step ``k + 1`` and flushes every ``nsteps_block``
    steps. Each segment variable is set to its recorded value of that step before the modules
    read it; the last step's values are the final state, so the model ends as it was.
    """
    arrays = [(seg, var, vec.as_numpy().copy()) for seg, var, vec in recs]
    for _seg, var, arr in arrays:
        if len(arr) < n_steps + 1:
            from ...core.errors import RunError

            raise RunError(
                f"engine coreneuron: {len(arr)} recorded samples of {var}, expected {n_steps + 1}"
            )
    block = int(sim.nsteps_block)
    start = 0
    for k in range(n_steps):
        for seg, var, arr in arrays:
            setattr(seg, var, float(arr[k + 1]))
        for mod, _ in replayed:
            mod.step(sim, k)
        if (k + 1) % block == 0 or k + 1 == n_steps:
            for mod, _ in replayed:
                mod.block(sim, (start, k + 1))
            start = k + 1
