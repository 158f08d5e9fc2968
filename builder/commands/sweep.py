"""Parameter sweeps: expand a sweep file into isolated builds, one directory per run.

A sweep file (JSON)::

    {"base": "params/L5NetParams.json",
     "overrides": {"inh_frs.proximal.m": [5, 10, 20], "groups.cluster_radius": [5, 10]},
     "seeds": [1, 2, 3],
     "combine": "grid"}

``base`` is a legacy params file or a network spec (JSON or YAML; ``docs/spec.md``).
``overrides`` maps dotted params keys to lists of values. ``combine`` is ``grid`` (every
combination of the lists) or ``zip`` (the lists, all of one length, taken element-wise).
``seeds`` is a list of seeds or a count N (seeds 1..N); every combination runs with every
seed. Alternatively ``overrides`` may hold ``"seed": [...]``: then the seed is swept like any
other key (each run's seed is its ``seed`` value; with ``zip`` seeds pair with the other lists),
and ``seeds`` must not be given. Two runs with the same overrides and seed are an error.
Relative paths are relative to the sweep file.

``build-network sweep SWEEP.json -o DIR`` writes ``DIR/<run-id>/`` (a complete, self-contained
build each), ``DIR/sweep.json`` (the expanded sweep, which makes the directory resumable) and
``DIR/manifest.csv`` (run id, every overridden value, seed, status). Every combination is
validated before anything is built, and every bad one is reported.

Status of a run (derived from what is on disk, so the manifest never claims more than is true):
``built`` (ready to run), ``done`` (its ``output/`` is complete), ``failed`` (its last run
failed: ``DIR/<run>/failed.json`` holds the error), ``build-failed``.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import itertools
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import BuildError, ParamsError
from ..core.output import MANIFEST_NAME, atomic_path, clear_killed_writes

__all__ = [
    "RunSpec",
    "Sweep",
    "load_sweep",
    "build_sweep",
    "run_status",
    "write_manifest",
    "read_sweep_dir",
    "is_sweep_dir",
    "SWEEP_FILE",
    "MANIFEST_CSV",
    "FAILED_FILE",
]

log = logging.getLogger("builder")

SWEEP_FILE = "sweep.json"
MANIFEST_CSV = "manifest.csv"
FAILED_FILE = "failed.json"
BUILD_FAILED_FILE = "build-failed.json"
RUN_FILE = "run.json"
_COMBINE = ("grid", "zip")


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its id, the overridden values and the seed."""

    run_id: str
    overrides: dict[str, Any]
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "overrides": self.overrides, "seed": self.seed}


@dataclass(frozen=True)
class Sweep:
    """An expanded sweep: the base params file, the swept keys and the runs."""

    base: Path
    keys: list[str]
    runs: list[RunSpec]
    combine: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "base": str(self.base),
            "keys": self.keys,
            "combine": self.combine,
            "runs": [r.as_dict() for r in self.runs],
        }


def _problem(source: str, msg: str) -> ParamsError:
    return ParamsError(source, [msg])


def load_sweep(path: str | os.PathLike, *, validate: bool = True) -> Sweep:
    """Read and expand a sweep file; with ``validate``, check every combination's params.

    Raises
    ------
    ParamsError
        The sweep file is malformed, or some combinations give invalid params (all listed).
    """
    path = Path(path)
    source = str(path)
    try:
        spec = json.loads(path.read_text())
    except OSError as exc:
        raise _problem(source, f"cannot read the sweep file: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise _problem(source, f"invalid JSON: {exc}") from None
    problems: list[str] = []
    if not isinstance(spec, dict):
        raise _problem(source, "(top level): a sweep file is a JSON object")
    unknown = sorted(set(spec) - {"base", "overrides", "seeds", "combine", "comment"})
    if unknown:
        problems.append(
            f"{', '.join(unknown)}: unknown key(s); valid: base, overrides, seeds, combine, comment"
        )
    base = spec.get("base")
    if not isinstance(base, str) or not base:
        problems.append(f"base: {base!r} is not a params file path (string)")
    overrides = spec.get("overrides", {})
    if not isinstance(overrides, dict):
        problems.append("overrides: must be an object mapping dotted keys to lists of values")
        overrides = {}
    for key, values in overrides.items():
        if not isinstance(values, list) or not values:
            problems.append(f"overrides.{key}: {values!r} is not a non-empty list of values")
    seed_values = overrides.get("seed") if isinstance(overrides.get("seed"), list) else None
    if "seed" in overrides and "seeds" in spec:
        problems.append(
            f"overrides.seed: {overrides['seed']!r} and seeds: {spec['seeds']!r} both give the "
            "seeds; use one: 'seeds' (crossed with every combination) or 'overrides.seed' "
            "(a list swept like the other keys, e.g. paired with them by combine 'zip')"
        )
    elif seed_values and not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seed_values
    ):
        problems.append(f"overrides.seed: {seed_values!r} is not a list of integers >= 0")
    combine = spec.get("combine", "grid")
    if combine not in _COMBINE:
        problems.append(f"combine: {combine!r} is not one of {list(_COMBINE)}")
    seeds = spec.get("seeds", [1])
    if "seed" in overrides:
        seeds = [None]  # the seed is one of the swept keys
    if isinstance(seeds, bool):
        seeds = None
    if isinstance(seeds, int):
        seeds = list(range(1, seeds + 1)) if seeds >= 1 else None
    if seeds == [None]:
        pass
    elif (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        problems.append(
            f"seeds: {spec.get('seeds')!r} is not a count >= 1 or a list of integers >= 0"
        )
        seeds = []
    elif len(set(seeds)) != len(seeds):
        problems.append(f"seeds: {seeds} lists a seed twice")
    if combine == "zip" and overrides:
        lengths = {k: len(v) for k, v in overrides.items() if isinstance(v, list)}
        if len(set(lengths.values())) > 1:
            problems.append(
                "overrides: combine 'zip' needs lists of one length; got "
                + ", ".join(f"{k}: {n}" for k, n in lengths.items())
            )
    if problems:
        raise ParamsError(source, problems)

    keys = list(overrides)
    lists = [overrides[k] for k in keys]
    if combine == "grid":
        combos = list(itertools.product(*lists))
    else:
        combos = list(zip(*lists, strict=True))
    if not keys:
        combos = [()]
    base_path = (path.parent / str(base)).resolve()
    width = max(3, len(str(len(combos) * len(seeds) - 1)))
    runs: list[RunSpec] = []
    for values in combos:
        swept = dict(zip(keys, values, strict=True))
        swept_seed = swept.pop("seed", None)  # 'overrides.seed' is the run's seed, not a param
        for seed in seeds:
            i = len(runs)
            run_seed = swept_seed if seed is None else seed
            runs.append(RunSpec(f"r{i:0{width}d}", dict(swept), run_seed))
    twins = _identical_runs(runs)
    if twins:
        raise ParamsError(
            source,
            [
                f"runs {a} and {b} would be identical (same overrides and seed "
                f"{seed}); every run must differ"
                for a, b, seed in twins[:10]
            ],
        )
    sweep = Sweep(base_path, [k for k in keys if k != "seed"], runs, combine, source)
    if validate:
        validate_sweep(sweep)
    return sweep


def _identical_runs(runs: list[RunSpec]) -> list[tuple[str, str, int]]:
    """Pairs (first run id, later run id, seed) of runs with the same overrides and seed."""
    first: dict[str, str] = {}
    out = []
    for run in runs:
        key = json.dumps([run.overrides, run.seed], sort_keys=True)
        if key in first:
            out.append((first[key], run.run_id, run.seed))
        else:
            first[key] = run.run_id
    return out


def validate_sweep(sweep: Sweep) -> None:
    """Validate the params of every combination; one ParamsError lists every bad one."""
    from ..core.overrides import apply_overrides
    from ..recipes.l5_params import validate_params

    data = _read_base(sweep)
    validate = _validate_spec_params if _is_spec(sweep.base, data) else validate_params
    problems = []
    seen: set[str] = set()
    for run in sweep.runs:
        key = json.dumps(run.overrides, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        try:
            validate(apply_overrides(data, run.overrides, str(sweep.base)), str(sweep.base))
        except ParamsError as exc:
            combo = ", ".join(f"{k}={v!r}" for k, v in run.overrides.items()) or "(no overrides)"
            problems += [f"[{combo}] {p}" for p in exc.problems]
    if problems:
        raise ParamsError(sweep.source, problems)


def _read_base(sweep: Sweep) -> Any:
    """The base file's content: JSON, or a YAML network spec."""
    from ..core.spec.model import read_spec_file

    if sweep.base.suffix.lower() in (".yaml", ".yml"):
        try:
            return read_spec_file(sweep.base)
        except ParamsError as exc:
            raise _problem(sweep.source, f"base: {'; '.join(exc.problems)}") from None
    try:
        return json.loads(sweep.base.read_text())
    except OSError as exc:
        raise _problem(sweep.source, f"base: cannot read {sweep.base}: {exc.strerror}") from None
    except ValueError as exc:
        raise _problem(sweep.source, f"base: {sweep.base} is not valid JSON: {exc}") from None


def _is_spec(base: Path, data: Any) -> bool:
    """Whether a sweep's base is a network spec (else legacy L5 params)."""
    from ..core.spec.model import is_spec_data

    return base.suffix.lower() in (".yaml", ".yml") or is_spec_data(data)


def _validate_spec_params(data: Any, source: str) -> Any:
    """Validate a network spec (a sweep's spec base), as validate_params does legacy params."""
    from ..core.spec.model import validate_spec

    return validate_spec(data, source)


# ------------------------------------------------------------------ sweep directory state
def is_sweep_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def read_sweep_dir(outdir: str | os.PathLike) -> Sweep:
    """The expanded sweep stored in a sweep directory."""
    outdir = Path(outdir)
    try:
        data = json.loads((outdir / SWEEP_FILE).read_text())
        runs = [RunSpec(r["run_id"], dict(r["overrides"]), int(r["seed"])) for r in data["runs"]]
        return Sweep(
            Path(data["base"]), list(data["keys"]), runs, data["combine"], str(outdir / SWEEP_FILE)
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BuildError(f"{outdir / SWEEP_FILE}: not a readable sweep directory ({exc})") from None


def run_status(outdir: Path, run_id: str) -> str:
    """``done``, ``failed``, ``build-failed``, ``built`` or ``missing`` from the files on disk."""
    d = outdir / run_id
    if (d / BUILD_FAILED_FILE).is_file():
        return "build-failed"
    if not (d / MANIFEST_NAME).is_file():
        return "missing"
    if (d / "output" / "spikes.h5").is_file():
        return "done"
    if (d / FAILED_FILE).is_file():
        return "failed"
    return "built"


def _error_text(outdir: Path, run_id: str) -> str:
    for name in (BUILD_FAILED_FILE, FAILED_FILE):
        p = outdir / run_id / name
        if p.is_file():
            try:
                return str(json.loads(p.read_text()).get("error", ""))
            except ValueError:
                return "(unreadable error record)"
    return ""


def write_manifest(outdir: str | os.PathLike, sweep: Sweep | None = None) -> list[dict[str, Any]]:
    """(Re)write ``DIR/manifest.csv`` from the files on disk, atomically; return its rows."""
    outdir = Path(outdir)
    sweep = sweep or read_sweep_dir(outdir)
    rows = []
    for run in sweep.runs:
        status = run_status(outdir, run.run_id)
        row: dict[str, Any] = {"run_id": run.run_id}
        row.update({k: json.dumps(run.overrides[k]) for k in sweep.keys})
        row.update(
            {
                "seed": run.seed,
                "status": status,
                "error": _error_text(outdir, run.run_id) if "failed" in status else "",
            }
        )
        rows.append(row)
    buf = io.StringIO()
    w = csv.DictWriter(
        buf, fieldnames=["run_id", *sweep.keys, "seed", "status", "error"], lineterminator="\n"
    )
    w.writeheader()
    w.writerows(rows)
    with atomic_path(outdir / MANIFEST_CSV) as tmp:
        tmp.write_text(buf.getvalue())
    return rows


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`~builder.core.output.atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1) + "\n")


# ------------------------------------------------------------------ building
def build_sweep(
    sweep_file: str | os.PathLike,
    outdir: str | os.PathLike,
    *,
    force: bool = False,
    progress: Callable[[list[RunSpec]], Iterable[RunSpec]] | None = None,
) -> list[dict[str, Any]]:
    """Build every run of a sweep into ``outdir`` (resuming an earlier, interrupted build).

    Returns the manifest rows. A run whose build fails is marked ``build-failed`` with its
    error; the others go on.
    """
    from ..commands.build import SimulationBuilder

    sweep = load_sweep(sweep_file)
    outdir = Path(outdir)
    stored = outdir / SWEEP_FILE
    if stored.is_file():
        previous = read_sweep_dir(outdir)
        if previous.to_json() != sweep.to_json() and not force:
            raise BuildError(
                f"{outdir}: holds a different sweep ({stored}); choose another directory or "
                "pass --force to build this sweep there"
            )
    elif outdir.exists() and not outdir.is_dir():
        raise BuildError(
            f"{outdir}: exists and is not a directory; choose a new or empty directory"
        )
    elif outdir.exists() and any(outdir.iterdir()) and not force:
        raise BuildError(
            f"{outdir}: exists and is not a sweep directory; choose an empty or new directory "
            "(or --force)"
        )
    replacing = stored.is_file() and read_sweep_dir(outdir).to_json() != sweep.to_json()
    base_bytes = sweep.base.read_bytes()
    base_sha256 = hashlib.sha256(base_bytes).hexdigest()

    def record(run: RunSpec) -> dict[str, Any]:
        """What a run directory was built from (``RUN/run.json``)."""
        return {**run.as_dict(), "base": str(sweep.base), "base_sha256": base_sha256}

    def stale(run: RunSpec) -> bool:
        """Built, but from other params than this sweep's run of that id."""
        if run_status(outdir, run.run_id) in ("missing", "build-failed"):
            return False
        try:
            return json.loads((outdir / run.run_id / RUN_FILE).read_text()) != record(run)
        except (OSError, ValueError):
            return replacing  # built before run.json existed: stale only if the sweep changed

    old = [r.run_id for r in sweep.runs if stale(r)]
    if old and not force:
        raise BuildError(
            f"{outdir}: {len(old)} run(s) ({', '.join(old[:5])}{', ...' if len(old) > 5 else ''})"
            " were built from other params (did the base file change?); pass --force to "
            "rebuild them (their outputs are deleted)"
        )
    outdir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stored, sweep.to_json())
    data = _read_base(sweep)
    is_spec = _is_spec(sweep.base, data)
    todo = [
        r
        for r in sweep.runs
        if r.run_id in old or run_status(outdir, r.run_id) in ("missing", "build-failed")
    ]
    for run in sweep.runs:  # what a killed build left: its temporary files, a missing record
        target = outdir / run.run_id
        if target.is_dir():
            clear_killed_writes(target)
        if run not in todo and not (target / RUN_FILE).is_file():
            write_json_atomic(target / RUN_FILE, record(run))  # built from this sweep's run
    for run in progress(todo) if progress else todo:
        target = outdir / run.run_id
        (target / BUILD_FAILED_FILE).unlink(missing_ok=True)
        if run.run_id in old:  # --force: the outputs of the other params go too
            for name in ("output", ".output-partial"):
                shutil.rmtree(target / name, ignore_errors=True)
            (target / FAILED_FILE).unlink(missing_ok=True)
        try:
            if is_spec:
                from ..core.overrides import apply_overrides
                from ..core.spec import NetworkBuilder
                from ..core.spec.model import validate_spec
                from ..simulators.neuron.celltable import segment_table

                spec = validate_spec(
                    apply_overrides(data, run.overrides, str(sweep.base)),
                    str(sweep.base),
                    seed=run.seed,
                )
                NetworkBuilder(spec, segment_tables=segment_table).build(
                    target, force=force or run.run_id in old
                )
            else:
                params = copy.deepcopy(data)
                params["_source"] = str(sweep.base)
                SimulationBuilder(
                    params, run.seed, overrides=run.overrides, cwd=sweep.base.parent
                ).build(target, force=force or run.run_id in old)
        except BuildError as exc:
            log.warning("%s: build failed: %s", run.run_id, exc)
            target.mkdir(parents=True, exist_ok=True)
            write_json_atomic(target / BUILD_FAILED_FILE, {"error": str(exc)})
            continue
        write_json_atomic(target / RUN_FILE, record(run))
    return write_manifest(outdir, sweep)
