"""The simulation engine of ``run-network``: NEURON's own loop or CoreNEURON (``run.engine``).

* ``"neuron"`` (default): BMTK's ``sim.run()``, NEURON's ``fadvance`` loop with BMTK's per-step
  Python callback (reports sample in it).
* ``"coreneuron"``: the same model, initialised by NEURON (including our resting-state start),
  handed to CoreNEURON in memory by one ``pc.psolve(tstop)``. The mechanisms are compiled with
  ``nrnivmodl -coreneuron`` (:func:`builder.mechanisms.compiled_mechanisms`). ``psolve`` makes no
  per-step Python call, so BMTK's membrane reports are recorded with ``Vector.record`` on the
  segments they read and replayed into BMTK's report modules afterwards (same samples, same
  files); spikes come back through ``pc.spike_record`` as with NEURON.

``run.n_thread`` (or ``-t N``) sets ``pc.nthread``: NEURON's threads split the cells between
them, so more than one helps only with several cells per rank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["ENGINES", "engine_options", "simulate"]

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
    from ..errors import RunError

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


def simulate(sim: Any, engine: str, n_thread: int) -> None:
    """Run ``sim`` (a BMTK ``BioSimulator``, fully set up) with ``engine`` on ``n_thread``."""
    from neuron import h

    pc = h.ParallelContext()
    if n_thread > 1:
        pc.nthread(n_thread)
    if engine == "neuron":
        sim.run()
        return
    _run_coreneuron(sim, h, pc)


def _run_coreneuron(sim: Any, h: Any, pc: Any) -> None:
    from bmtk.simulator.bionet.modules import SpikesMod
    from bmtk.simulator.bionet.modules.record_cellvars import MembraneReport, SomaReport
    from neuron import coreneuron

    from ..errors import RunError

    mods = list(sim._sim_mods)
    replayed: list[tuple[Any, list[Any]]] = []  # (report module, [(segment, variable)])
    for mod in mods:
        name = type(mod).__name__
        if isinstance(mod, (SpikesMod, SomaReport, MembraneReport)) or name in (
            "FileCurrentClamp",
            "Progress",
        ):
            continue
        raise RunError(
            f"engine coreneuron: the simulation uses BMTK module {name}, which samples in "
            "NEURON's per-step callback that CoreNEURON does not make; run it with "
            '--engine neuron (run.engine = "neuron")'
        )
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
            vec.record(getattr(seg, f"_ref_{var}"), sim.dt)
            recs.append((seg, var, vec))
    h.CVode().cache_efficient(1)  # CoreNEURON requires it (the NEURON engine sets it too)
    coreneuron.enable = True
    coreneuron.verbose = 0
    try:
        h.stdinit()
        pc.psolve(sim.tstop)
    finally:
        coreneuron.enable = False
    if replayed:
        _replay(sim, replayed, recs, n_steps)
    for mod in mods:
        if isinstance(mod, SpikesMod):
            mod.block(sim, (0, n_steps))
        if type(mod).__name__ != "Progress":
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
            from ..errors import RunError

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
