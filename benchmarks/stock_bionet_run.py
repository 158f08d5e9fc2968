#!/usr/bin/env python
"""Run a built network the "stock" BMTK way, as a user of BMTK's own ``run_bionet.py`` would.

Usage::

    python benchmarks/stock_bionet_run.py OUTDIR [--mechanisms DIR] [--coreneuron]

This is the reference side of ``bench_run.py``: BMTK BioNet's default flow on the files our
builder wrote, with one point process per synapse and BMTK's own output modules (spikes file,
membrane report, log). In order:

1. compile ``OUTDIR/components/mechanisms/modfiles`` with
   :func:`builder.mechanisms.compiled_mechanisms` (a cache hit once warmed; what a stock user
   does once by hand with ``nrnivmodl``) and set it as ``conf.mechanisms_dir``;
2. ``chdir`` into OUTDIR, ``bionet.Config.from_json("simulation_config.json", validate=True)``,
   ``conf.build_env()``;
3. register our synapse functions the plain way (:func:`builder.nrn.synapses.register`, one
   point process per edge) and ``bionet.BioNetwork.from_config`` /
   ``bionet.BioSimulator.from_config``;
4. bind every connection to its edge (release stream and weight keyed by (seed, edge
   population, ``syn_id``), as the runner does, so both sides draw the same releases): our
   NMODL refuses to initialise an unbound stochastic synapse;
5. ``sim.run()``.

The last line of standard output is ``bench-result: {json}`` with ``setup_s`` and ``sim_s``
(wall seconds; setup counts from before BMTK and NEURON are imported to just before
``sim.run()``), ``setup_cpu_s`` / ``sim_cpu_s`` (this process's CPU seconds over the same
spans), ``n_spikes`` (read from BMTK's spikes file), ``tstop_ms``, ``n_synapses`` and
``n_point_processes``.

``--coreneuron`` is the CoreNEURON variant: ``--mechanisms`` must then name a directory built
with ``nrnivmodl -coreneuron``; it sets ``h.CVode().cache_efficient(1)`` and
``neuron.coreneuron.enable = True`` and runs with ``--psolve``. ``--psolve`` replaces
``sim.run()`` (BMTK's ``h.run()``, which calls back into Python after every time step and never
hands over to CoreNEURON) by ``h.stdinit(); pc.psolve(tstop)``, the only call that runs
CoreNEURON; only BMTK's spikes module is kept (its membrane reports sample in that per-step
callback). Without ``--coreneuron`` it runs the same loop in NEURON, to check the plumbing.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()
C_START = time.process_time()

import argparse  # noqa: E402  (the clocks start before anything is imported)
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

RESULT_PREFIX = "bench-result: "


def bind_all(graph: Any, models: Any) -> tuple[int, int]:
    """Bind every connection of the local cells to its edge; return (#synapses, #point procs).

    Parameters
    ----------
    graph : bmtk.simulator.bionet.BioNetwork
        The built network.
    models : builder.nrn.synapses.SynapseModels
        What :func:`builder.nrn.synapses.register` returned.
    """
    from builder.nrn import synapses

    n_syn = 0
    pps: set[str] = set()
    for cell in graph.get_local_cells().values():
        for c in getattr(cell, "_connections", []):
            edge = c._edge_prop
            if edge["model_template"] not in synapses.MODELS:
                continue
            pop = f"{edge.source_population}_to_{edge.target_population}"
            models.bind(c._syn, edge["dynamics_params"], pop, int(edge["syn_id"]))
            n_syn += 1
            pps.add(c._syn.hname())
    return n_syn, len(pps)


def run_psolve(sim: Any) -> None:
    """Run ``sim`` with ``pc.psolve`` (what CoreNEURON needs), recording spikes only.

    BMTK's spikes module is initialised, then flushed once at the end (``block`` over the
    whole run, then ``finalize``); the other modules are dropped, since they sample in the
    per-step Python callback that ``psolve`` does not make.
    """
    from bmtk.simulator.bionet.modules import SpikesMod
    from neuron import h

    pc = h.ParallelContext()
    spike_mods = [m for m in sim._sim_mods if isinstance(m, SpikesMod)]
    for mod in spike_mods:
        mod.initialize(sim)
    pc.set_maxstep(10)
    h.stdinit()
    pc.psolve(sim.tstop)
    n_steps = int(round(sim.tstop / sim.dt))
    for mod in spike_mods:
        mod.block(sim, (0, n_steps))
        mod.finalize(sim)


def count_spikes(path: Path) -> int:
    """Number of spikes in a BMTK spikes file (all populations; 0 if there is none)."""
    import h5py

    if not path.exists():
        return 0
    n = 0
    with h5py.File(path, "r") as f:
        for g in f.get("spikes", {}).values():
            if isinstance(g, h5py.Group) and "timestamps" in g:
                n += int(g["timestamps"].shape[0])
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", help="a directory written by build_network.py")
    ap.add_argument(
        "--mechanisms",
        help="an already compiled mechanisms directory (default: compile the output's "
        "modfiles into the cache)",
    )
    ap.add_argument(
        "--coreneuron",
        action="store_true",
        help="run with CoreNEURON (needs --mechanisms built with nrnivmodl -coreneuron)",
    )
    ap.add_argument(
        "--psolve",
        action="store_true",
        help="run with pc.psolve and BMTK's spikes module only (implied by --coreneuron)",
    )
    ns = ap.parse_args(argv)
    ns.psolve = ns.psolve or ns.coreneuron
    if ns.coreneuron and not ns.mechanisms:
        ap.error("--coreneuron needs --mechanisms DIR compiled with 'nrnivmodl -coreneuron'")

    base = Path(ns.outdir).resolve()
    config = base / "simulation_config.json"
    if not config.is_file():
        print(f"stock_bionet_run: {config} not found", file=sys.stderr)
        return 2
    seed = int(json.loads(config.read_text()).get("run", {}).get("random_seed", 0))

    from builder import mechanisms

    if ns.mechanisms:
        compiled = Path(ns.mechanisms).resolve()
    else:
        mods = sorted((base / "components" / "mechanisms" / "modfiles").glob("*.mod"))
        compiled = mechanisms.compiled_mechanisms(mods)

    os.chdir(base)  # as run_bionet.py is run: from the directory holding the config
    from bmtk.simulator import bionet
    from neuron import h

    from builder.nrn import synapses

    conf = bionet.Config.from_json("simulation_config.json", validate=True)
    conf.mechanisms_dir = str(compiled)
    conf.build_env()
    models = synapses.register(seed, overwrite=True)
    graph = bionet.BioNetwork.from_config(conf)
    sim = bionet.BioSimulator.from_config(conf, network=graph)
    n_syn, n_pp = bind_all(graph, models)
    if ns.coreneuron:
        from neuron import coreneuron

        h.CVode().cache_efficient(1)
        coreneuron.enable = True
    setup_s = time.perf_counter() - T_START
    setup_cpu_s = time.process_time() - C_START

    t0, c0 = time.perf_counter(), time.process_time()
    if ns.psolve:
        run_psolve(sim)
    else:
        sim.run()
    sim_s = time.perf_counter() - t0
    sim_cpu_s = time.process_time() - c0

    result = {
        "setup_s": setup_s,
        "sim_s": sim_s,
        "setup_cpu_s": setup_cpu_s,
        "sim_cpu_s": sim_cpu_s,
        "n_spikes": count_spikes(base / conf.output["spikes_file"]),
        "tstop_ms": float(conf.tstop),
        "n_synapses": n_syn,
        "n_point_processes": n_pp,
        "coreneuron": bool(ns.coreneuron),
        "psolve": bool(ns.psolve),
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
