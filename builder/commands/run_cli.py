"""``run-network``: the one command that runs anything we build.

``run-network DIR`` reads the config's ``target_simulator`` and hands the run to that
simulator's backend through the registry (:mod:`builder.commands.backends`: NEURON ->
:mod:`builder.simulators.neuron.runner`, NEST -> :mod:`builder.simulators.nest.runner`). A sweep
directory (``build-network sweep``) has its pending runs farmed out (``-j N``, MPI ranks or a SLURM
array), each run again through ``run-network``. ``run-network plot DIR`` draws a run's figures and
``run-network collect DIR`` summarises a sweep.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import BuildError
from ..core.runs import run_parser
from .backends import dispatch, entry_point

if TYPE_CHECKING:
    from ..simulators.neuron.mpi import MPIContext

# sweeps, MPI and plotting are imported when used: a plain run (NEURON's or NEST's) does not
# pay for them (0.075 s and 9 MB per run-network, measured on the NEST path)

__all__ = ["main"]


def _sweep(ns: argparse.Namespace, ctx: MPIContext) -> int:
    """Run the pending runs of a sweep directory (locally, over MPI ranks, or via SLURM)."""
    from ..simulators.neuron.mpi import guard
    from . import farm
    from .sweep import write_manifest

    outdir = Path(ns.config).resolve()
    options = farm.runner_options(ns)  # --engine, -t: every run gets them
    show = not ns.quiet and not ns.no_progress and sys.stderr.isatty()
    farm.INTERRUPTS.install()  # SIGINT/SIGTERM: stop handing out runs, stop the children
    try:
        # guard: a rank that raises aborts the job instead of leaving the others waiting
        with guard(ctx):
            if ctx.size > 1:
                results = farm.farm_mpi(
                    outdir,
                    ctx.comm,
                    rerun_failed=not ns.no_rerun_failed,
                    progress=show and ctx.rank == 0,
                    options=options,
                )
                if ctx.rank != 0:
                    return 128 + farm.INTERRUPTS.signum if farm.INTERRUPTS.signum else 0
            else:
                todo = farm.pending(outdir, rerun_failed=not ns.no_rerun_failed)
                if ns.slurm:
                    script = farm.slurm_script(outdir, todo, options=options)
                    print(f"{script}: {len(todo)} array tasks; submit with: sbatch {script}")
                    return 0
                results = farm.farm_local(outdir, todo, ns.jobs, progress=show, options=options)
            rows = write_manifest(outdir)
    except BuildError as exc:
        print(f"run-network: error: {exc}", file=sys.stderr)
        return 2
    finally:
        farm.INTERRUPTS.restore()
    if farm.INTERRUPTS.signum:
        stopped = sorted(r for r, st in results.items() if st == "interrupted")
        if ctx.rank == 0:
            print(
                f"\nrun-network: {signal.Signals(farm.INTERRUPTS.signum).name}: sweep stopped; "
                f"{len(stopped)} run(s) interrupted ({', '.join(stopped) or 'none'}), left "
                f"resumable: run 'run-network {outdir}' again to finish",
                file=sys.stderr,
            )
        return 128 + farm.INTERRUPTS.signum
    failed = [r for r in rows if r["status"] in ("failed", "build-failed")]
    done = sum(r["status"] == "done" for r in rows)
    if ctx.rank != 0:
        return 1 if failed else 0
    if not ns.quiet:
        print(
            f"{outdir}: ran {len(results)}; {done}/{len(rows)} done, {len(failed)} failed "
            f"(see {outdir / 'manifest.csv'})"
        )
    if ns.plot and not ns.slurm:
        if not _plot_sweep(outdir, rows, ns.quiet):
            return 2
    return 1 if failed else 0


def _plot_sweep(outdir: Path, rows: list[dict[str, str]], quiet: bool) -> bool:
    """``--plot`` on a sweep: the figures of every finished run; False if one failed."""
    from ..analysis.plots import plot_run

    done = [r["run_id"] for r in rows if r["status"] == "done"]
    if not done:
        print(
            f"run-network: no plots: none of the {len(rows)} runs of {outdir} has finished",
            file=sys.stderr,
        )
        return True
    ok = True
    for rid in done:
        notes: list[str] = []
        try:
            pngs = plot_run(outdir / rid, notes=notes)
        except BuildError as exc:
            print(f"run-network: plotting {rid} failed: {exc}", file=sys.stderr)
            ok = False
            continue
        if not quiet:
            print(f"  {rid}: {len(pngs)} plots in {pngs[0].parent}")
        for note in notes:
            print(f"  {rid}: note: {note}", file=sys.stderr)
    return ok


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``run-network`` / ``run_network.py``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    other = dispatch(argv, current="NEURON")  # the config's target_simulator, if not NEURON
    if other is not None:
        return other(argv)
    if argv and argv[0] == "plot":
        from ..analysis.plots import main as plot_main

        return plot_main(argv[1:])
    if argv and argv[0] == "collect":
        from .collect import main as collect_main

        return collect_main(argv[1:])
    ns = run_parser().parse_args(argv)
    from .sweep import is_sweep_dir

    if ns.config and is_sweep_dir(ns.config):
        from ..simulators.neuron.mpi import setup_mpi

        return _sweep(ns, setup_mpi())
    return entry_point("NEURON")(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
