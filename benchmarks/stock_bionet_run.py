#!/usr/bin/env python
"""Run a built network the "stock" BMTK way, as a user of BMTK's own ``run_bionet.py`` would.

Usage::

    python benchmarks/stock_bionet_run.py OUTDIR [--mechanisms DIR] [--coreneuron]

This is the reference side of ``bench_run.py``: BMTK BioNet's default flow on the files our
builder wrote, with one point process per synapse and BMTK's own output modules (spikes file,
membrane report, log). It is the flow of the ``run_bionet.py`` every output directory carries,
through the same shared implementation (:mod:`builder.simulators.neuron.bionet_ext`), with clocks
around it:

1. :func:`builder.simulators.neuron.bionet_ext.load_config`: compile the output's NMODL into
   the cache (a hit once warmed; what a stock user does once by hand with ``nrnivmodl``),
   ``chdir`` into OUTDIR, BMTK's ``Config`` (validated) with our config translated for BMTK,
   ``build_env()``;
2. :func:`builder.simulators.neuron.bionet_ext.build_simulation`: register our synapse
   functions (one point process per edge), ``BioNetwork.from_config`` /
   ``BioSimulator.from_config``, bind every connection to its edge (release stream and weight
   keyed by (seed, edge population, ``syn_id``), as the runner does, so both sides draw the
   same releases);
3. ``sim.run()``.

The last line of standard output is ``bench-result: {json}`` with ``setup_s`` and ``sim_s``
(wall seconds; setup counts from before BMTK and NEURON are imported to just before
``sim.run()``), ``setup_cpu_s`` / ``sim_cpu_s`` (this process's CPU seconds over the same
spans), ``n_spikes`` (read from BMTK's spikes file), ``tstop_ms``, ``n_synapses`` and
``n_point_processes``.

``--template-segments`` keeps every cell's own segments (``conf.dL = None``), as our runner does
for configs without ``run.dL``; by default BMTK re-segments every cell at ``dL`` = 20 um.
Extracellular reports (``"module": "extracellular"``) run in BMTK's own ``EcpMod``.

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
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

RESULT_PREFIX = "bench-result: "
#: The keys BMTK 1.2's ``EcpMod`` accepts (it takes a report's keys as keyword arguments).
ECP_KEYS = (
    "module",
    "cells",
    "variable_name",
    "electrode_positions",
    "file_name",
    "file_name_nwb",
    "contributions_dir",
    "electrode_channels",
    "cell_bounds",
    "minimum_distance",
)


def stock_ecp_reports(conf: Any) -> list[str]:
    """Hand the config's extracellular reports to BMTK's own ``EcpMod``; returns their names.

    Our configs add ``type``, ``sigma``, ``method`` and ``dipole_file`` (read by
    :mod:`builder.simulators.neuron.ecp`), which ``EcpMod`` refuses; they are dropped here. BMTK's
    module uses the line-source formula with sigma = 0.3 S/m and computes no dipole.
    """
    names = []
    for name, rep in (conf.reports or {}).items():
        if isinstance(rep, dict) and rep.get("module") == "extracellular":
            for key in [k for k in rep if k not in ECP_KEYS]:
                del rep[key]
            names.append(name)
    return names


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
    # our file current clamp sets up its waveform once and needs no per-step callback
    clamps = [m for m in sim._sim_mods if type(m).__name__ == "FileCurrentClamp"]
    for mod in spike_mods + clamps:
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
        "--template-segments",
        action="store_true",
        help="keep every cell's segments as its template or morphology defines them (what "
        "run-network does for a config without run.dL) instead of BMTK's re-segmentation at "
        'dL = 20 um; BMTK\'s schema refuses "dL": null, so this sets conf.dL = None',
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
    compiled = Path(ns.mechanisms).resolve() if ns.mechanisms else None

    from builder.simulators.neuron import bionet_ext

    conf, view = bionet_ext.load_config(config, compiled)  # chdir into OUTDIR, as run_bionet.py
    if ns.template_segments:
        conf.dL = None  # read by BMTK's cells when they are built (BioCell: set_segment_dl)
    ecp_reports = stock_ecp_reports(conf)
    from neuron import h

    graph, sim, n_syn, n_pp = bionet_ext.build_simulation(conf, view)
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
        "ecp_reports": ecp_reports,
        "dL": conf.dL,
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
