"""Command line: ``build-network`` and the legacy ``python build_network.py``.

Usage keeps the legacy form ``build_network.py [PARAMS.json] [SEED]`` and adds options.
Any :class:`~builder.errors.BuildError` becomes one message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .errors import BuildError

__all__ = ["main", "default_params_path"]

log = logging.getLogger("builder")

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PARAMS = "L5NetParams.json"


def default_params_path(cwd: Path | None = None) -> Path:
    """``./params/L5NetParams.json``, else legacy ``./L5NetParams.json``, else the shipped one."""
    cwd = cwd or Path.cwd()
    for candidate in (
        cwd / "params" / DEFAULT_PARAMS,
        cwd / DEFAULT_PARAMS,
        PROJECT_DIR / "params" / DEFAULT_PARAMS,
    ):
        if candidate.is_file():
            return candidate
    raise BuildError(
        f"no params file given and no default found (looked for params/{DEFAULT_PARAMS} and "
        f"{DEFAULT_PARAMS} in {cwd}, and {PROJECT_DIR / 'params' / DEFAULT_PARAMS})"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build-network",
        description=(
            "Build the L5 input network: SONATA nodes/edges, input spike rasters and BMTK "
            "BioNet configs, from a params JSON file."
        ),
        epilog=(
            "Legacy usage still works: build_network.py [PARAMS.json] [SEED]. "
            "Example: build-network params/L5NetParams.json 7 -o runs/7"
        ),
    )
    p.add_argument(
        "args",
        nargs="*",
        metavar="PARAMS.json | SEED",
        help="params file (default params/L5NetParams.json) and/or integer seed "
        "(default: the params' 'seed', else 123)",
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
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", help="more detail")
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


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
    p.add_argument("-o", "--outdir", required=True, help="sweep directory")
    p.add_argument(
        "--force",
        action="store_true",
        help="build even if OUTDIR holds something else (foreign files are replaced)",
    )
    p.add_argument("--check", action="store_true", help="validate every combination; build nothing")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true")
    g.add_argument("-q", "--quiet", action="store_true")
    ns = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if ns.verbose else logging.WARNING if ns.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    from . import sweep as sw
    from .progress import progress

    try:
        if ns.check:
            s = sw.load_sweep(ns.sweep)
            print(f"{ns.sweep}: OK, {len(s.runs)} runs ({', '.join(s.keys) or 'seeds only'})")
            return 0
        rows = sw.build_sweep(
            ns.sweep, ns.outdir, force=ns.force, progress=None if ns.quiet else progress("build")
        )
    except BuildError as exc:
        print(f"build-network sweep: error: {exc}", file=sys.stderr)
        return 2
    bad = [r for r in rows if r["status"] == "build-failed"]
    if not ns.quiet:
        print(
            f"{ns.outdir}: {len(rows)} runs, {len(rows) - len(bad)} built, "
            f"{len(bad)} failed (see {ns.outdir}/manifest.csv)"
        )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sweep":
        return _sweep_main(argv[1:])
    parser = _parser()
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if ns.verbose else logging.WARNING if ns.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    params_arg, seed = _split_positionals(parser, ns.args)
    overrides = parse_overrides(parser, ns.overrides)
    try:
        from .build import SimulationBuilder

        params_path = Path(params_arg) if params_arg else default_params_path()
        log.debug("params: %s", params_path)
        builder = SimulationBuilder(params_path, seed, overrides=overrides)
        if ns.check:
            counts = builder.check()
            print(f"{params_path}: OK (seed {builder.seed})")
            for k, v in counts.items():
                print(f"  {k} = {v}")
            return 0
        result = builder.build(ns.outdir, force=ns.force)
    except BuildError as exc:
        print(f"build-network: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "build-network: interrupted; the output directory was left as it was", file=sys.stderr
        )
        return 130
    if not ns.quiet:
        print(result.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
