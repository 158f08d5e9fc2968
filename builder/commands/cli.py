"""Command line: ``build-network`` and the legacy ``python build_network.py``.

Usage keeps the legacy form ``build_network.py [PARAMS.json] [SEED]`` and adds options.
Any :class:`~builder.core.errors.BuildError` becomes one message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..core.data import project_data_dir
from ..core.errors import BuildError

if TYPE_CHECKING:
    from ..commands.build import SimulationBuilder

__all__ = ["main", "l5net_main", "default_params_path"]

log = logging.getLogger("builder")

DEFAULT_PARAMS = "L5NetParams.json"


def default_params_path(cwd: Path | None = None) -> Path:
    """``./params/L5NetParams.json``, else legacy ``./L5NetParams.json``, else the shipped one.

    The shipped one is the checkout's ``params/`` or, in an installed wheel, the package's copy
    (:func:`builder.core.data.project_data_dir`).
    """
    cwd = cwd or Path.cwd()
    shipped = project_data_dir("params") / DEFAULT_PARAMS
    for candidate in (cwd / "params" / DEFAULT_PARAMS, cwd / DEFAULT_PARAMS, shipped):
        if candidate.is_file():
            return candidate
    raise BuildError(
        f"no params file given and no default found (looked for params/{DEFAULT_PARAMS} and "
        f"{DEFAULT_PARAMS} in {cwd}, and {shipped})"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build-network",
        usage="%(prog)s [PARAMS.json | SPEC.json | SPEC.yaml] [SEED] [options]\n"
        "       %(prog)s sweep SWEEP.json -o DIR",
        description=(
            "Build the L5 input network: SONATA nodes/edges, input spike rasters and BMTK "
            "BioNet configs, from a params JSON file. "
            "'build-network sweep SWEEP.json -o DIR' builds every run of a parameter sweep "
            "(see 'build-network sweep --help'). A network spec (JSON/YAML with "
            '"format": "l5net-spec/1", docs/spec.md) builds any network the same way.'
        ),
        epilog=(
            "Legacy usage still works: build_network.py [PARAMS.json] [SEED]. "
            "Example: build-network params/L5NetParams.json 7 -o runs/7"
        ),
    )
    p.add_argument(
        "args",
        nargs="*",
        metavar="PARAMS.json | SPEC.json | SEED",
        help="params file (default params/L5NetParams.json, else the shipped one) or network "
        "spec, and/or integer seed (default: the file's 'seed', else 123)",
    )
    p.add_argument("-o", "--outdir", default=".", help="output directory (default: current)")
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite files in the output directory that this builder did not write",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params value before validation, e.g. --set time.stop=2 "
        "(VALUE is JSON, else a string; repeatable)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="validate params and components and report counts; write nothing",
    )
    _add_verbosity(p)
    return p


def _add_verbosity(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also say what is done: resolved components, segment table, lengths, counts, timings",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def _setup_logging(ns: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.WARNING if ns.quiet else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    if ns.verbose:  # our own detail only, not every library's debug output
        log.setLevel(logging.DEBUG)


def _split_positionals(
    p: argparse.ArgumentParser, args: list[str]
) -> tuple[str | None, int | None]:
    params, seed = None, None
    for a in args:
        try:
            value = int(a)
        except ValueError:
            if params is not None:
                p.error(f"two params files given: {params!r} and {a!r}")
            params = a
            continue
        if seed is not None:
            p.error(f"two seeds given: {seed} and {value}")
        if value < 0:
            p.error(f"seed must be >= 0, got {value}")
        seed = value
    return params, seed


def parse_overrides(p: argparse.ArgumentParser, items: list[str]) -> dict[str, object]:
    """``["time.stop=2", "cell.prefix=L5"]`` -> ``{"time.stop": 2, "cell.prefix": "L5"}``."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            p.error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        out[key.strip()] = value
    return out


def _sweep_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="build-network sweep",
        description="Expand a sweep file into one complete build per run under OUTDIR "
        "(plus OUTDIR/manifest.csv); resumes an interrupted sweep build.",
        epilog="Then: run-network OUTDIR [-j N] (or mpiexec -n N python run_network.py OUTDIR).",
    )
    p.add_argument("sweep", metavar="SWEEP.json")
    p.add_argument("-o", "--outdir", help="sweep directory (required unless --check)")
    p.add_argument(
        "--force",
        action="store_true",
        help="build even if OUTDIR holds something else (foreign files are replaced)",
    )
    p.add_argument("--check", action="store_true", help="validate every combination; build nothing")
    _add_verbosity(p)
    ns = p.parse_args(argv)
    if not ns.check and ns.outdir is None:
        p.error("-o/--outdir is required (except with --check)")
    _setup_logging(ns)
    from ..core.progress import progress
    from . import sweep as sw

    try:
        if ns.check or ns.verbose:
            t0 = time.perf_counter()
            s = sw.load_sweep(ns.sweep)
            what = f"{_plural(len(s.runs), 'run')} ({', '.join(s.keys) or 'seeds only'})"
            log.debug(
                "sweep %s: base %s, %s, combine %s, validated in %.2f s",
                ns.sweep,
                s.base,
                what,
                s.combine,
                time.perf_counter() - t0,
            )
            if ns.check:
                print(f"{ns.sweep}: OK, {what}")
                return 0
        rows = sw.build_sweep(
            ns.sweep, ns.outdir, force=ns.force, progress=None if ns.quiet else progress("build")
        )
    except BuildError as exc:
        print(f"build-network sweep: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # not bad input, but a message still serves better than a traceback
        log.debug("", exc_info=True)
        print(f"build-network sweep: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    bad = [r for r in rows if r["status"] == "build-failed"]
    if not ns.quiet:
        print(
            f"{ns.outdir}: {_plural(len(rows), 'run')}, {len(rows) - len(bad)} built, "
            f"{len(bad)} failed (see {ns.outdir}/manifest.csv)"
        )
    return 1 if bad else 0


def _os_error(exc: OSError) -> str:
    """An unexpected OSError as one line: the path and the system's reason."""
    where = exc.filename if exc.filename is not None else ""
    return f"{where}: {exc.strerror or exc}" if where else str(exc.strerror or exc)


def _describe(builder: SimulationBuilder) -> None:
    """With -v: resolve the cell, its segment table and lengths, saying what and how long."""
    t0 = time.perf_counter()
    cell = builder.cell
    log.debug("cell %s resolved in %.2f s:", cell.model_template, time.perf_counter() - t0)
    log.debug("  components dir: %s", cell.components_dir)
    log.debug("  template: %s", cell.template_file)
    log.debug("  morphology: %s", cell.morphology or "(built by the template)")
    log.debug("  dynamics params: %s", cell.dynamics_params or "(none)")
    if cell.model_processing:
        log.debug("  model processing: %s", cell.model_processing)
    dirs = sorted({str(f.parent) for f in cell.mod_files})
    log.debug("  NMODL: %s from %s", _plural(len(cell.mod_files), "file"), ", ".join(dirs))
    t0 = time.perf_counter()
    table = builder.segment_table
    seg_file = builder.params["cell"].get("segments_file")
    how = f"read from {seg_file}" if seg_file else f"derived with dL = {builder.params['dL']} um"
    log.debug(
        "segment table: %s (%s) in %.2f s",
        _plural(len(table), "segment"),
        how,
        time.perf_counter() - t0,
    )
    lengths = builder.lengths_um()
    origin = "params" if builder.params.get("lengths") is not None else "measured on the cell"
    log.debug(
        "lengths (%s): %s",
        origin,
        ", ".join(f"{k} {v:.0f} um" for k, v in lengths.items()),
    )


def _one_blas_thread() -> None:
    """OpenBLAS on one thread for this process (unless the user said otherwise), set before
    numpy is first imported (later it has no effect). A build does no linear algebra, but
    OpenBLAS starts a thread per core at import that spins for a while: ~0.1 s of CPU per
    build-network process, taken from the cores the build's own worker uses."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    _one_blas_thread()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sweep":
        return _sweep_main(argv[1:])
    parser = _parser()
    ns = parser.parse_args(argv)
    _setup_logging(ns)
    params_arg, seed = _split_positionals(parser, ns.args)
    overrides = parse_overrides(parser, ns.overrides)
    if params_arg is not None:
        from ..core.spec import is_spec_file

        if is_spec_file(params_arg):
            return _spec_main(ns, Path(params_arg), seed, overrides)

    def build() -> Any:
        from ..commands.build import SimulationBuilder

        t0 = time.perf_counter()
        params_path = Path(params_arg) if params_arg else default_params_path()
        builder = SimulationBuilder(params_path, seed, overrides=overrides)
        log.debug(
            "params %s%s valid (seed %d) in %.2f s",
            params_path,
            "".join(f" --set {k}={_show(v)}" for k, v in overrides.items()),
            builder.seed,
            time.perf_counter() - t0,
        )
        if ns.verbose:
            _describe(builder)
        if ns.check:
            counts = builder.check()
            print(f"{params_path}: OK (seed {builder.seed})")
            for k, v in counts.items():
                print(f"  {k} = {v}")
            return 0
        return builder.build(ns.outdir, force=ns.force)

    return _guarded(ns, build)


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return ""  # pragma: no cover


def _keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks for reuse instead of returning them to the system.

    A spec build allocates and frees arrays of tens of MB per target block; by default glibc
    serves each from a fresh ``mmap`` (above its 128 kB threshold, raised dynamically only
    partly) and unmaps it on free, so every block pays page faults and zeroing again: the
    full-scale microcircuit spent 26 s of system time in 47 s of CPU. Raising the mmap
    threshold to glibc's maximum (32 MiB) and the trim threshold to 1 GiB measured 34.8 ->
    26.2 s wall, system 26.4 -> 14.8 s, peak 1.13 -> 1.20 GB. One arena for all threads: a
    thread's own arena lives in 64 MiB heaps that glibc unmaps whenever one is entirely free
    (the trim threshold does not hold them), so the blocks the projection threads draw kept
    coming back as fresh pages; with the main arena (whose heap the trim threshold keeps)
    the full build's minor page faults fell 110-130 k -> 28 k, CPU 37-42 -> 33-35 s, peak
    memory not higher. Must run before a second thread allocates. No effect elsewhere than
    glibc (the call is skipped). Returns whether glibc took every setting.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # glibc's malloc.h
    return (
        bool(mallopt(m_mmap_threshold, 32 << 20))
        and bool(mallopt(m_trim_threshold, 1 << 30))
        and bool(mallopt(m_arena_max, 1))
    )


def _spec_main(
    ns: argparse.Namespace, path: Path, seed: int | None, overrides: dict[str, object]
) -> int:
    """``build-network SPEC [SEED] -o DIR [--set K=V] [--check]`` for a network spec."""
    if sys.platform.startswith("linux"):
        _keep_freed_memory()

    def build() -> Any:
        from ..core.spec import NetworkBuilder, load_spec

        t0 = time.perf_counter()
        spec = load_spec(path, seed, overrides=overrides)
        log.debug("spec %s valid (seed %d) in %.2f s", path, spec.seed, time.perf_counter() - t0)

        def segment_table(*args: Any) -> Any:  # NEURON's modules only for biophysical cells
            from ..simulators.neuron.celltable import segment_table as derive

            return derive(*args)

        builder = NetworkBuilder(spec, segment_tables=segment_table)
        if ns.check:
            est = builder.estimate()
            print(f"{path}: OK (seed {spec.seed}, scale {spec.data.get('scale', 1)})")
            for name, n in est["nodes"].items():
                print(f"  nodes {name} = {n}")
            for name, n in est["edges"].items():
                how = "" if est["edges_exact"][name] else " (expected)"
                conns = est["connections"][name]
                per = f" synapses in {conns:.0f} connections" if conns != n else ""
                print(f"  edges {name} = {n:.0f}{per}{how}")
            for name, n in est["spikes"].items():
                print(f"  spikes {name} = {n:.0f} (expected)")
            print(f"  total: {est['total_nodes']} nodes, {est['total_edges']:.0f} edges")
            print(f"  disk = {_size(est['disk_bytes'])} (expected)")
            print(f"  peak memory = {_size(est['peak_memory_bytes'])} (expected)")
            return 0
        return builder.build(ns.outdir, force=ns.force)

    return _guarded(ns, build)


def _guarded(ns: argparse.Namespace, build: Callable[[], Any]) -> int:
    """Run ``build`` (returns a build result, or an exit status when it printed a check):
    bad input and OS errors become one message and exit status 2, Ctrl-C 130."""
    try:
        result = build()
    except BuildError as exc:
        print(f"build-network: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # not bad input, but a message still serves better than a traceback
        log.debug("", exc_info=True)
        print(f"build-network: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "build-network: interrupted; the output directory was left as it was", file=sys.stderr
        )
        return 130
    if isinstance(result, int):
        return result
    if not ns.quiet:
        print(result.summary())
    log.debug("wrote %s into %s", _plural(len(result.files), "file"), result.outdir)
    return 0


def _show(value: object) -> str:
    """An override's value as the user would type it."""
    return value if isinstance(value, str) else json.dumps(value)


#: ``l5net SUBCOMMAND``: (what it does, the command it is, the argv prefix it takes)
SUBCOMMANDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "build": ("build a network from a params file or a network spec", "build-network", ()),
    "sweep": ("build every run of a parameter sweep", "build-network", ("sweep",)),
    "run": ("run a built network, a sweep or a BMTK project (NEURON or NEST)", "run-network", ()),
    "plot": ("draw a finished run's figures", "run-network", ("plot",)),
    "collect": ("summarise a sweep's runs into one table", "run-network", ("collect",)),
}


def l5net_main(argv: list[str] | None = None) -> int:
    """``l5net SUBCOMMAND ...`` (also ``python -m builder``): every command in one place.

    Each subcommand is the command named in the help (``l5net build`` is ``build-network``,
    ``l5net run`` is ``run-network``, ...), with the same options and exit statuses.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    width = max(map(len, SUBCOMMANDS))
    lines = [
        f"  {name:<{width}}  {what} (= {cmd}{''.join(' ' + a for a in prefix)})"
        for name, (what, cmd, prefix) in SUBCOMMANDS.items()
    ]
    usage = "l5net {" + ",".join(SUBCOMMANDS) + "} ... (l5net SUBCOMMAND --help for its options)"
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {usage}\n\nsubcommands:\n" + "\n".join(lines))
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"l5net {__version__}")
        return 0
    if argv[0] not in SUBCOMMANDS:
        print(f"usage: {usage}\nl5net: error: unknown subcommand {argv[0]!r}", file=sys.stderr)
        return 2
    _, command, prefix = SUBCOMMANDS[argv[0]]
    if command == "build-network":
        return main([*prefix, *argv[1:]])
    from .run_cli import main as run_main

    return run_main([*prefix, *argv[1:]])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
