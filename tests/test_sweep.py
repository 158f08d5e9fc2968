"""Parameter sweeps: expansion, validation, resumable builds and runs, farming, collection.

Pure tests (sweep-file expansion, validation, refusals, the summary's arithmetic on hand-written
spike files) run anywhere and fast. Tests that build need NEURON for the first derivation of
the cell's segment table (``neuron``); tests that simulate are also ``slow``, MPI ones ``mpi``.

Simulated sweeps use a small base params file written per module: the default L5 cell with
about 4,000 synapses (shorter input lengths) and 0.2 s of input, which makes it fire a few
spikes per run (something for the ISI statistics to measure) at a few seconds per run.
Every command runs in its own subprocess and process group, as a user would start it.

To count how often each run is simulated, runner children load a ``sitecustomize`` hook
(``PYTHONPATH``) that appends ``<run id> <pid> <parent pid>`` to a log file whenever a
process starts as ``python -m builder.commands.run_cli RUN``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from procs import run_group

from builder.commands.sweep import RunSpec, Sweep, load_sweep
from builder.core.errors import ParamsError
from builder.core.output import MANIFEST_NAME
from builder.core.sonata import write_spikes

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = ROOT / "params" / "L5NetParams.json"
BUILD = ROOT / "build_network.py"
RUN = ROOT / "run_network.py"

HAVE_SIM = all(importlib.util.find_spec(m) is not None for m in ("neuron", "bmtk"))


def needs_neuron(test):
    """Mark a test that builds: the first segment-table derivation needs NEURON."""
    skip = pytest.mark.skipif(not HAVE_SIM, reason="NEURON and BMTK are needed")
    return pytest.mark.neuron(skip(test))


def simulates(test):
    """Mark a test that runs simulations (NEURON, slow)."""
    return pytest.mark.slow(needs_neuron(test))


#: The small base network's changes to the default params (see the module docstring).
SMALL = {
    ("lengths",): {"basal_dist": 600, "basal_prox": 50, "apic": 1000},
    ("n_soma_syns",): 30,
    ("time", "stop"): 0.2,
    ("run", "warmup_ms"): 10.0,
}
SMALL_DURATION_S = 0.2
#: Rates and the other statistics of ``collect`` count from the end of the warm-up.
SMALL_WARMUP_MS = 10.0
INPUT_POPS = ("exc_stim", "prox_inh_stim", "dist_inh_stim")
CMD_TIMEOUT_S = 300.0

RUNLOG_HOOK = """\
import os
import sys

_log = os.environ.get("L5NET_TEST_RUNLOG")
_argv = getattr(sys, "orig_argv", [])
if _log and "builder.commands.run_cli" in _argv:
    _i = _argv.index("builder.commands.run_cli")
    _run = os.path.basename(os.path.normpath(_argv[_i + 1])) if _i + 1 < len(_argv) else "?"
    _fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, f"{_run} {os.getpid()} {os.getppid()}\\n".encode())
    os.close(_fd)
"""


# ------------------------------------------------------------------------------ helpers
def _write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))
    return path


def _sweep_file(
    path: Path,
    base: str | os.PathLike,
    overrides: Mapping[str, list[Any]] | None = None,
    seeds: int | list[int] = 1,
    combine: str = "grid",
) -> Path:
    spec: dict[str, Any] = {"base": str(base), "seeds": seeds, "combine": combine}
    if overrides is not None:
        spec["overrides"] = dict(overrides)
    return _write_json(path, spec)


def _call(
    args: list[str], env: Mapping[str, str], cwd: Path, timeout_s: float = CMD_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run a command in its own process group; kill the whole group if it hangs."""
    return run_group(args, cwd=cwd, env=env, timeout_s=timeout_s)


def _describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"$ {' '.join(map(str, proc.args))}\nexit {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    )


def _build(
    sweep: Path, out: Path, env: Mapping[str, str], cwd: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return _call([sys.executable, BUILD, "sweep", sweep, "-o", out, "-q", *extra], env, cwd)


def _run(out: Path, env: Mapping[str, str], cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return _call([sys.executable, RUN, out, "--no-progress", *extra], env, cwd)


def _manifest(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "manifest.csv", newline="") as f:
        return {row["run_id"]: row for row in csv.DictReader(f)}


def _header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def _done_on_disk(out: Path, run_id: str) -> bool:
    return (out / run_id / "output" / "spikes.h5").is_file()


def _runs_started(runlog: Path) -> list[tuple[str, int, int]]:
    """(run id, pid, parent pid) of every runner process started, in order."""
    if not runlog.exists():
        return []
    rows = [line.split() for line in runlog.read_text().splitlines() if line.strip()]
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def _file_stats(root: Path) -> dict[str, tuple[int, int, int]]:
    """Relative path -> (inode, mtime_ns, size) of every file under ``root`` but the sweep's
    bookkeeping (``run.json``, which a resume writes if a kill left it missing) and a killed
    atomic write's temporary file (which a resume removes)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "run.json" and not _KILLED_WRITE.fullmatch(p.name):
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def _file_hashes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root`` but ``skip`` and the temporary
    file of an atomic write that a kill interrupted (``.run.json.<pid>.tmp``)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip and not _KILLED_WRITE.fullmatch(p.name)
    }


#: The temporary file of an atomic write (``.NAME.<host>.<pid>.<random>.tmp``), left behind
#: when the build is killed between writing it and renaming it into place.
_KILLED_WRITE = re.compile(r"\..+\.[0-9]+\.[0-9a-f]{8}\.tmp")


def _wait_for(cond, proc: subprocess.Popen, what: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the command ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            _kill_group(proc)
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.01)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _cv(times_ms: np.ndarray) -> float:
    isi = np.diff(np.sort(times_ms))
    if isi.size < 2:
        return math.nan
    return statistics.pstdev(isi.tolist()) / statistics.fmean(isi.tolist())


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12)


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100 and height > 100
    image = pytest.importorskip("matplotlib.image")
    assert image.imread(path).shape[:2] == (height, width)  # decodes whole


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def base_params(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small base params file (see ``SMALL``), in a directory of its own."""
    data = json.loads(DEFAULT_PARAMS.read_text())
    for path, value in SMALL.items():
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = copy.deepcopy(value)
    return _write_json(tmp_path_factory.mktemp("sweep_base") / "params" / "small.json", data)


@pytest.fixture
def neutral(tmp_path: Path) -> Path:
    """An empty working directory for commands (nothing may rely on the working directory)."""
    d = tmp_path / "cwd"
    d.mkdir()
    return d


@pytest.fixture
def runlog(tmp_path: Path) -> Path:
    return tmp_path / "runners.log"


@pytest.fixture
def env(sim_env: dict[str, str], tmp_path: Path, runlog: Path) -> dict[str, str]:
    """``sim_env`` plus the run-counting hook (see the module docstring)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RUNLOG_HOOK)
    paths = [str(hook), *filter(None, [sim_env.get("PYTHONPATH")])]
    return {**sim_env, "PYTHONPATH": os.pathsep.join(paths), "L5NET_TEST_RUNLOG": str(runlog)}


# ------------------------------------------------------------------------------ expansion
def _load_spec(tmp_path: Path, spec: dict[str, Any], *, validate: bool = True) -> Sweep:
    return load_sweep(_write_json(tmp_path / "sweep.json", spec), validate=validate)


def test_grid_is_every_combination_times_every_seed_in_file_order(tmp_path: Path) -> None:
    spec = {
        "base": str(DEFAULT_PARAMS),
        "overrides": {"inh_frs.proximal.m": [5, 10], "groups.cluster_radius": [5, 10, 20]},
        "seeds": [4, 9],
        "combine": "grid",
    }
    sweep = _load_spec(tmp_path, spec)
    assert sweep.keys == ["inh_frs.proximal.m", "groups.cluster_radius"]
    assert len(sweep.runs) == 12
    assert [r.run_id for r in sweep.runs] == [f"r{i:03d}" for i in range(12)]
    expected = [
        ({"inh_frs.proximal.m": m, "groups.cluster_radius": c}, s)
        for m in (5, 10)
        for c in (5, 10, 20)
        for s in (4, 9)
    ]
    assert [(r.overrides, r.seed) for r in sweep.runs] == expected


def test_zip_pairs_the_lists_element_wise(tmp_path: Path) -> None:
    spec = {
        "base": str(DEFAULT_PARAMS),
        "overrides": {"inh_frs.proximal.m": [5, 10, 20], "inh_frs.distal.m": [1, 2, 3]},
        "seeds": [1, 2],
        "combine": "zip",
    }
    sweep = _load_spec(tmp_path, spec)
    assert len(sweep.runs) == 6
    assert [r.run_id for r in sweep.runs] == [f"r{i:03d}" for i in range(6)]
    assert [(r.overrides["inh_frs.proximal.m"], r.overrides["inh_frs.distal.m"], r.seed)
            for r in sweep.runs] == [(5, 1, 1), (5, 1, 2), (10, 2, 1), (10, 2, 2), (20, 3, 1),
                                     (20, 3, 2)]  # fmt: skip


def test_seed_count_means_seeds_1_to_n_and_no_overrides_means_seeds_only(tmp_path: Path) -> None:
    sweep = _load_spec(tmp_path, {"base": str(DEFAULT_PARAMS), "seeds": 3})
    assert sweep.keys == []
    assert [(r.run_id, r.overrides, r.seed) for r in sweep.runs] == [
        ("r000", {}, 1),
        ("r001", {}, 2),
        ("r002", {}, 3),
    ]
    with_overrides = _load_spec(
        tmp_path, {"base": str(DEFAULT_PARAMS), "overrides": {"dt": [0.1, 0.05]}, "seeds": 2}
    )
    assert [r.seed for r in with_overrides.runs] == [1, 2, 1, 2]


@pytest.mark.parametrize("n_seeds, width", [(1000, 3), (1001, 4)])
def test_run_ids_are_zero_padded_so_they_sort_in_run_order(
    tmp_path: Path, n_seeds: int, width: int
) -> None:
    spec = {"base": str(DEFAULT_PARAMS), "seeds": n_seeds}
    sweep = _load_spec(tmp_path, spec, validate=False)
    ids = [r.run_id for r in sweep.runs]
    assert ids[0] == "r" + "0" * width and ids[-1] == f"r{n_seeds - 1:0{width}d}"
    assert sorted(ids) == ids and len(set(ids)) == n_seeds


def test_base_path_is_relative_to_the_sweep_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "project" / "params" / "p.json"
    base.parent.mkdir(parents=True)
    shutil.copy(DEFAULT_PARAMS, base)
    sweep_path = _sweep_file(tmp_path / "project" / "sweeps" / "s.json", "../params/p.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_sweep(sweep_path).base == base.resolve()


@pytest.mark.parametrize(
    "spec, expected",
    [
        pytest.param(
            {
                "base": "p.json",
                "overrides": {"dt": [0.1, 0.2], "inh_shift": [1, 2, 3]},
                "combine": "zip",
                "seeds": 0,
                "seed": 3,
            },
            ["seed: unknown key", "seeds: 0 is not a count", "combine 'zip' needs lists of one"],
            id="zip-unequal+bad-seeds+unknown-key",
        ),
        pytest.param(
            {"base": 5, "overrides": {"dt": 0.1}, "combine": "cartesian", "seeds": [1, -2]},
            [
                "base: 5",
                "overrides.dt: 0.1 is not a non-empty list",
                "combine: 'cartesian'",
                "seeds: [1, -2]",
            ],  # fmt: skip
            id="bad-base+scalar-override+bad-combine+negative-seed",
        ),
        pytest.param(
            {"base": "p.json", "seeds": [2, 2], "overrides": {"dt": []}},
            ["seeds: [2, 2] lists a seed twice", "overrides.dt: [] is not a non-empty list"],
            id="duplicate-seed+empty-list",
        ),
    ],
)
def test_malformed_sweep_file_lists_every_problem(
    tmp_path: Path, spec: dict[str, Any], expected: list[str]
) -> None:
    path = _write_json(tmp_path / "s.json", spec)
    with pytest.raises(ParamsError) as info:
        load_sweep(path)
    problems = info.value.problems
    assert len(problems) == len(expected), problems
    for fragment in expected:
        assert sum(fragment in p for p in problems) == 1, (fragment, problems)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "overrides, bad, good",
    [
        pytest.param(
            {"time.stpo": [1, 2], "inh_frs.proximal.m": [5, 10]},
            [
                ("time.stpo=1", "m=5"),
                ("time.stpo=1", "m=10"),
                ("time.stpo=2", "m=5"),
                ("time.stpo=2", "m=10"),
            ],  # fmt: skip
            [],
            id="unknown-key",
        ),
        pytest.param(
            {"dt": [0.1, -1], "inh_frs.proximal.m": [5, 10], "time.stop": [0.2]},
            [("dt=-1", "m=5"), ("dt=-1", "m=10")],
            ["dt=0.1"],
            id="schema-rejects-one-value",
        ),
    ],
)
@pytest.mark.parametrize("existing", [False, True], ids=["new-dir", "existing-empty-dir"])
def test_invalid_overrides_fail_before_anything_is_built(
    tmp_path: Path,
    neutral: Path,
    sim_env: dict[str, str],
    overrides: dict[str, list[Any]],
    bad: list[tuple[str, str]],
    good: list[str],
    existing: bool,
) -> None:
    sweep = _sweep_file(tmp_path / "s.json", DEFAULT_PARAMS, overrides, seeds=2)
    out = tmp_path / "out"
    if existing:
        out.mkdir()
    proc = _build(sweep, out, sim_env, neutral)
    assert proc.returncode == 2, _describe(proc)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.lstrip().startswith("- [")]
    for a, b in bad:
        assert any(a in ln and f"proximal.{b}" in ln for ln in lines), (a, b, proc.stderr)
    # one combination per problem, seeds not repeated: exactly the bad combinations
    combos = {ln.split("]")[0] for ln in lines}
    assert len(combos) == len(bad), proc.stderr
    for g in good:
        assert not any(g in ln for ln in lines), proc.stderr
    if existing:
        assert list(out.iterdir()) == []
    else:
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.json", "cwd"] + ["out"] * existing
    )


def test_check_validates_every_combination_and_writes_nothing(
    tmp_path: Path, neutral: Path, sim_env: dict[str, str]
) -> None:
    sweep = _sweep_file(
        tmp_path / "s.json", DEFAULT_PARAMS, {"dt": [0.1, 0.05], "inh_shift": [1, 2, 4]}, seeds=2
    )
    proc = _build(sweep, tmp_path / "out", sim_env, neutral, "--check")
    assert proc.returncode == 0, _describe(proc)
    assert "OK, 12 runs" in proc.stdout
    assert not (tmp_path / "out").exists()


def test_refuses_a_directory_that_is_not_a_sweep_directory(
    tmp_path: Path, neutral: Path, sim_env: dict[str, str]
) -> None:
    sweep = _sweep_file(tmp_path / "s.json", DEFAULT_PARAMS, seeds=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = _file_stats(out)
    proc = _build(sweep, out, sim_env, neutral)
    assert proc.returncode == 2, _describe(proc)
    assert "not a sweep directory" in proc.stderr and "Traceback" not in proc.stderr
    assert _file_stats(out) == before


def test_refuses_a_directory_holding_a_different_sweep(
    tmp_path: Path, neutral: Path, sim_env: dict[str, str]
) -> None:
    other = load_sweep(_sweep_file(tmp_path / "other.json", DEFAULT_PARAMS, seeds=3))
    out = tmp_path / "out"
    _write_json(out / "sweep.json", other.to_json())
    before = _file_stats(out)
    sweep = _sweep_file(tmp_path / "s.json", DEFAULT_PARAMS, seeds=2)
    proc = _build(sweep, out, sim_env, neutral)
    assert proc.returncode == 2, _describe(proc)
    assert "holds a different sweep" in proc.stderr and "--force" in proc.stderr
    assert _file_stats(out) == before


def test_unreadable_sweep_directory_is_one_error_message(
    tmp_path: Path, neutral: Path, sim_env: dict[str, str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_text('{"runs": [')
    proc = _run(out, sim_env, neutral)
    assert proc.returncode == 2, _describe(proc)
    assert "Traceback" not in proc.stderr
    assert "sweep.json" in proc.stderr


# ------------------------------------------------------------------------------ collect (pure)
def _fake_sweep_dir(
    out: Path, key: str, values: list[Any], outputs: list[dict[str, Any] | str | None]
) -> Sweep:
    """A sweep directory as the builder and runner leave it, with hand-written outputs.

    ``outputs[i]``: ``None`` (built, not run), ``"failed"``, or a dict with ``spikes_ms``,
    ``tstop_ms`` and optionally ``vm_mV`` (the soma report's samples).
    """
    runs = [RunSpec(f"r{i:03d}", {key: v}, 1) for i, v in enumerate(values)]
    sweep = Sweep(DEFAULT_PARAMS, [key], runs, "grid", str(out / "s.json"))
    _write_json(out / "sweep.json", sweep.to_json())
    for run, result in zip(runs, outputs, strict=True):
        d = out / run.run_id
        _write_json(d / MANIFEST_NAME, {"files": {}})
        tstop = result["tstop_ms"] if isinstance(result, dict) else 200.0
        _write_json(d / "simulation_config.json", {"run": {"tstart": 0.0, "tstop": tstop}})
        if result == "failed":
            _write_json(d / "failed.json", {"error": "boom: something broke"})
        if isinstance(result, dict):
            t = np.asarray(result["spikes_ms"], dtype=float)
            (d / "output").mkdir()
            write_spikes(d / "output" / "spikes.h5", "biophysical", np.zeros(t.size, int), t)
            if "vm_mV" in result:
                _write_report(d / "output" / "v_soma.h5", result["vm_mV"])
    return sweep


def _write_report(path: Path, vm_mV: list[float], dt_ms: float = 0.1) -> None:
    """A one-cell, one-element membrane report in the SONATA layout."""
    with h5py.File(path, "w") as f:
        g = f.create_group("report/biophysical")
        g.create_dataset("data", data=np.asarray(vm_mV, dtype=np.float32)[:, None])
        m = g.create_group("mapping")
        m["node_ids"] = np.array([0], dtype=np.uint64)
        m["index_pointers"] = np.array([0, 1], dtype=np.uint64)
        m["element_ids"] = np.array([0], dtype=np.uint32)
        m["time"] = np.array([0.0, len(vm_mV) * dt_ms, dt_ms])


def test_collect_computes_count_rate_cv_and_vm_from_the_output_files(tmp_path: Path) -> None:
    from builder.commands.collect import collect

    spikes = [10.0, 30.0, 70.0, 150.0]
    vm = [-70.0, -60.0, -65.0, -65.0, -62.5]
    out = tmp_path / "sweep"
    _fake_sweep_dir(
        out,
        "inh_frs.distal.m",
        [2.5, 5, 10, 20, 40],
        [
            {"spikes_ms": spikes, "tstop_ms": 500.0, "vm_mV": vm},
            {"spikes_ms": [42.0], "tstop_ms": 250.0},
            {"spikes_ms": [], "tstop_ms": 200.0, "vm_mV": [-80.0, -80.0]},
            None,
            "failed",
        ],
    )
    path, pngs = collect(out)
    assert path == out / "summary.csv"
    assert _header(path) == [
        "run_id", "inh_frs.distal.m", "seed", "status",
        "window_ms", "n_spikes", "rate_hz", "cv_isi", "vm_mean_mV", "vm_sd_mV", "error",
    ]  # fmt: skip
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["done", "done", "done", "built", "failed"]
    assert [r["inh_frs.distal.m"] for r in rows] == ["2.5", "5", "10", "20", "40"]
    r0, r1, r2, r3, r4 = rows
    assert int(r0["n_spikes"]) == 4
    assert float(r0["rate_hz"]) == pytest.approx(4 / 0.5, rel=1e-12)
    cv = statistics.pstdev([20.0, 40.0, 80.0]) / statistics.fmean([20.0, 40.0, 80.0])
    assert float(r0["cv_isi"]) == pytest.approx(cv, rel=1e-12)
    assert float(r0["vm_mean_mV"]) == pytest.approx(statistics.fmean(vm), rel=1e-6)
    assert float(r0["vm_sd_mV"]) == pytest.approx(statistics.pstdev(vm), rel=1e-6)
    # one spike: no ISI statistics; no soma report: no Vm
    assert (int(r1["n_spikes"]), float(r1["rate_hz"])) == (1, pytest.approx(1 / 0.25))
    assert math.isnan(float(r1["cv_isi"])) and math.isnan(float(r1["vm_mean_mV"]))
    # a silent run is a finished run with rate 0
    assert (int(r2["n_spikes"]), float(r2["rate_hz"])) == (0, 0.0)
    assert float(r2["vm_mean_mV"]) == -80.0 and float(r2["vm_sd_mV"]) == 0.0
    # unfinished runs: listed with their status, metrics blank
    for r in (r3, r4):
        assert [r[k] for k in ("n_spikes", "rate_hz", "cv_isi", "vm_mean_mV", "vm_sd_mV")] == [
            ""
        ] * 5
    assert _manifest(out)["r004"]["error"] == "boom: something broke"
    assert pngs == [out / "summary_rate.png"]
    _assert_png(pngs[0])


def test_collect_handles_object_valued_overrides(tmp_path: Path) -> None:
    from builder.commands.collect import collect

    out = tmp_path / "sweep"
    run = {"spikes_ms": [5.0, 50.0], "tstop_ms": 100.0}
    _fake_sweep_dir(out, "divergence.exc", [{"min": 2, "max": 8}, {"min": 1, "max": 3}], [run, run])
    path, pngs = collect(out)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [json.loads(r["divergence.exc"]) for r in rows] == [
        {"min": 2, "max": 8},
        {"min": 1, "max": 3},
    ]
    assert len(pngs) == 1


# ------------------------------------------------------------------------------ builds
def _config_paths(cfg: Any, keys: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            yield from _config_paths(v, (*keys, str(k)))
    elif isinstance(cfg, list):
        for i, v in enumerate(cfg):
            yield from _config_paths(v, (*keys, str(i)))
    elif isinstance(cfg, str):
        yield keys, cfg


def _expand(value: str, manifest: Mapping[str, str], folder: Path) -> Path:
    for _ in range(10):
        for var, repl in manifest.items():
            value = value.replace(var, repl)
    assert "$" not in value, value
    return (folder / value).resolve()


def _assert_self_contained(folder: Path) -> None:
    """Every path in the configs is relative, stays inside ``folder``; named files exist."""
    inside = folder.resolve()
    for name in ("simulation_config.json", "circuit_config.json"):
        cfg = json.loads((folder / name).read_text())
        manifest = cfg.get("manifest", {})
        for keys, value in _config_paths(cfg):
            assert not value.startswith(("/", "~")), f"{name}: {'.'.join(keys)} = {value}"
            if "$" not in value and "/" not in value:
                continue  # a plain word or a bare output file name
            p = _expand(value, manifest, folder)
            assert p.is_relative_to(inside), f"{name}: {'.'.join(keys)} = {value} -> {p}"
            if keys[0] in ("output", "reports", "manifest"):
                continue  # written by the run
            if keys[-1].endswith("_file") or keys[-1] in ("network", "node_sets_file"):
                assert p.is_file(), f"{name}: {'.'.join(keys)} = {value}: {p} missing"


@needs_neuron
def test_hand_written_loop_gives_distinct_self_contained_networks(
    tmp_path: Path, base_params: Path, sim_env: dict[str, str]
) -> None:
    # for i in 1 2 3; do python build_network.py p.json $i -o runs/$i; done
    for i in (1, 2, 3):
        proc = _call(
            [sys.executable, BUILD, base_params, str(i), "-o", f"runs/{i}", "-q"], sim_env, tmp_path
        )
        assert proc.returncode == 0, _describe(proc)
    folders = [tmp_path / "runs" / str(i) for i in (1, 2, 3)]
    random_files = [f"{p}_spikes.h5" for p in INPUT_POPS]
    random_files += [f"network/{p}_biophysical_edges.h5" for p in INPUT_POPS]
    for rel in random_files:
        digests = {hashlib.sha256((d / rel).read_bytes()).hexdigest() for d in folders}
        assert len(digests) == 3, f"{rel}: seeds 1, 2, 3 do not give three different files"
    for d, seed in zip(folders, (1, 2, 3), strict=True):
        _assert_self_contained(d)
        cfg = json.loads((d / "simulation_config.json").read_text())
        assert cfg["run"]["random_seed"] == seed
        assert cfg["run"]["tstop"] == pytest.approx(SMALL_DURATION_S * 1000)


@simulates
def test_a_built_folder_runs_after_being_moved(
    tmp_path: Path, base_params: Path, sim_env: dict[str, str], neutral: Path
) -> None:
    proc = _call([sys.executable, BUILD, base_params, "7", "-o", "runs/7", "-q"], sim_env, tmp_path)
    assert proc.returncode == 0, _describe(proc)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(tmp_path / "runs" / "7", moved)
    proc = _run(moved / "simulation_config.json", sim_env, neutral, "-q")
    assert proc.returncode == 0, _describe(proc)
    assert _done_on_disk(moved.parent, "moved")
    assert not (tmp_path / "runs" / "7").exists()


@needs_neuron
def test_interrupted_sweep_build_resumes_building_only_the_missing_runs(
    tmp_path: Path, base_params: Path, sim_env: dict[str, str], neutral: Path
) -> None:
    sweep = _sweep_file(tmp_path / "s.json", base_params, seeds=6)
    out = tmp_path / "out"
    ids = [f"r{i:03d}" for i in range(6)]
    # kill the build as soon as its first run is in place
    proc = subprocess.Popen(
        [sys.executable, str(BUILD), "sweep", str(sweep), "-o", str(out), "-q"],
        cwd=neutral,
        env=sim_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for(lambda: (out / "r000").is_dir(), proc, "r000 was built")
    _kill_group(proc)
    # a run directory is there only if complete (builds are staged and renamed into place)
    present = sorted(p.name for p in out.iterdir() if p.name in ids)
    for rid in present:
        assert (out / rid / MANIFEST_NAME).is_file() and (out / rid / "network").is_dir()
    # also lose a finished one, so there is always something to resume
    # run.json is the sweep's bookkeeping, written after the run directory is in place: the kill
    # may fall between the two (the resume then takes the run as built), so compare the build
    r000_hashes = _file_hashes(out / "r000", skip=(MANIFEST_NAME, "run.json"))
    shutil.rmtree(out / "r000")
    kept = {rid: _file_stats(out / rid) for rid in present if rid != "r000"}

    proc2 = _build(sweep, out, sim_env, neutral)
    assert proc2.returncode == 0, _describe(proc2)
    manifest = _manifest(out)
    assert list(manifest) == ids
    assert {r["status"] for r in manifest.values()} == {"built"}
    assert [int(r["seed"]) for r in manifest.values()] == [1, 2, 3, 4, 5, 6]
    assert _header(out / "manifest.csv") == ["run_id", "seed", "status", "error"]
    for rid, stats in kept.items():
        assert _file_stats(out / rid) == stats, f"{rid} was rebuilt although it was complete"
    rebuilt = _file_hashes(out / "r000", skip=(MANIFEST_NAME, "run.json"))
    assert rebuilt == r000_hashes  # same seed, same files


@needs_neuron
def test_forcing_a_different_sweep_does_not_keep_stale_builds(
    tmp_path: Path, base_params: Path, sim_env: dict[str, str], neutral: Path
) -> None:
    out = tmp_path / "out"
    first = _sweep_file(tmp_path / "a.json", base_params, {"time.stop": [0.1]})
    assert _build(first, out, sim_env, neutral).returncode == 0
    second = _sweep_file(tmp_path / "b.json", base_params, {"time.stop": [0.15]})
    proc = _build(second, out, sim_env, neutral, "--force")
    assert proc.returncode == 0, _describe(proc)
    assert _manifest(out)["r000"]["time.stop"] == "0.15"
    cfg = json.loads((out / "r000" / "simulation_config.json").read_text())
    assert cfg["run"]["tstop"] == pytest.approx(150.0)  # what the manifest says r000 is


# ------------------------------------------------------------------------------ runs
@simulates
def test_killed_sweep_run_resumes_without_rerunning_finished_runs(
    tmp_path: Path,
    base_params: Path,
    env: dict[str, str],
    runlog: Path,
    neutral: Path,
) -> None:
    sweep = _sweep_file(tmp_path / "s.json", base_params, seeds=4)
    out = tmp_path / "out"
    assert _build(sweep, out, env, neutral).returncode == 0
    ids = [f"r{i:03d}" for i in range(4)]

    proc = subprocess.Popen(
        [sys.executable, str(RUN), str(out), "-j", "1", "-q", "--no-progress"],
        cwd=neutral,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for(
        lambda: (
            _done_on_disk(out, "r000")
            and ((out / "r001" / ".output-partial").is_dir() or _done_on_disk(out, "r001"))
        ),
        proc,
        "r000 finished and r001 started",
    )
    _kill_group(proc)

    done_before = [rid for rid in ids if _done_on_disk(out, rid)]
    assert "r000" in done_before and len(done_before) < len(ids)
    for rid in ids:
        if rid not in done_before:  # outputs appear only when complete
            assert not (out / rid / "output").exists()
    # the manifest never claims more than is on disk
    for rid, row in _manifest(out).items():
        assert row["status"] != "done" or rid in done_before, row
    kept = {
        rid: {n: _file_stats(out / rid / "output")[n] for n in ("spikes.h5", "log.txt")}
        for rid in done_before
    }
    started_before = Counter(r for r, _, _ in _runs_started(runlog))

    proc2 = _run(out, env, neutral, "-j", "2")
    assert proc2.returncode == 0, _describe(proc2)
    assert f"ran {len(ids) - len(done_before)};" in proc2.stdout
    assert {r["status"] for r in _manifest(out).values()} == {"done"}
    assert all(_done_on_disk(out, rid) for rid in ids)
    assert sorted(str(p.relative_to(out)) for p in out.glob("*/.output*")) == []
    for rid, stats in kept.items():
        now = _file_stats(out / rid / "output")
        assert {n: now[n] for n in stats} == stats, f"{rid} was run again"
    started_after = Counter(r for r, _, _ in _runs_started(runlog)) - started_before
    assert started_after == Counter({rid: 1 for rid in ids if rid not in done_before})


@simulates
def test_a_failing_run_is_recorded_and_the_others_go_on(
    tmp_path: Path,
    base_params: Path,
    env: dict[str, str],
    runlog: Path,
    neutral: Path,
) -> None:
    sweep = _sweep_file(tmp_path / "s.json", base_params, seeds=3)
    out = tmp_path / "out"
    assert _build(sweep, out, env, neutral).returncode == 0
    syn = out / "r001" / "components" / "synaptic_models" / "PN2PN.json"
    original = syn.read_text()
    syn.write_text(json.dumps({**json.loads(original), "tau_typo": 1.0}))

    proc = _run(out, env, neutral, "-j", "2")
    assert proc.returncode == 1, _describe(proc)
    assert "2/3 done, 1 failed" in proc.stdout
    manifest = _manifest(out)
    assert [manifest[r]["status"] for r in ("r000", "r001", "r002")] == ["done", "failed", "done"]
    assert "tau_typo" in manifest["r001"]["error"]
    assert manifest["r000"]["error"] == manifest["r002"]["error"] == ""
    assert "tau_typo" in json.loads((out / "r001" / "failed.json").read_text())["error"]
    assert not (out / "r001" / "output").exists()

    # --no-rerun-failed leaves it alone
    n_started = len(_runs_started(runlog))
    proc = _run(out, env, neutral, "--no-rerun-failed")
    assert proc.returncode == 1, _describe(proc)
    assert len(_runs_started(runlog)) == n_started
    assert _manifest(out)["r001"]["status"] == "failed"

    # fixed, the next invocation reruns only the failed run
    syn.write_text(original)
    proc = _run(out, env, neutral)
    assert proc.returncode == 0, _describe(proc)
    assert {r["status"] for r in _manifest(out).values()} == {"done"}
    assert not (out / "r001" / "failed.json").exists()
    assert Counter(r for r, _, _ in _runs_started(runlog)) == {"r000": 1, "r001": 2, "r002": 1}


@pytest.mark.mpi
@simulates
def test_mpi_farm_over_two_ranks_runs_every_run_exactly_once(
    tmp_path: Path,
    base_params: Path,
    env: dict[str, str],
    runlog: Path,
    neutral: Path,
) -> None:
    mpiexec = shutil.which("mpiexec", path=env["PATH"])
    if mpiexec is None:
        pytest.skip("mpiexec not found (pip install mpich)")
    sweep = _sweep_file(tmp_path / "s.json", base_params, {"inh_frs.distal.m": [2, 8]}, seeds=2)
    out = tmp_path / "out"
    assert _build(sweep, out, env, neutral).returncode == 0
    proc = _call([mpiexec, "-n", "2", sys.executable, RUN, out, "--no-progress"], env, neutral)
    assert proc.returncode == 0, _describe(proc)
    ids = [f"r{i:03d}" for i in range(4)]
    assert {r["status"] for r in _manifest(out).values()} == {"done"}
    assert all(_done_on_disk(out, rid) for rid in ids)
    started = _runs_started(runlog)
    assert Counter(r for r, _, _ in started) == Counter(ids), started
    assert len({ppid for _, _, ppid in started}) == 2, f"not both ranks ran work: {started}"
    assert "ran 4;" in proc.stdout and proc.stdout.count("ran ") == 1  # rank 0 reports


@simulates
def test_collect_matches_each_runs_spike_and_voltage_files(
    tmp_path: Path, base_params: Path, env: dict[str, str], neutral: Path
) -> None:
    sweep = _sweep_file(tmp_path / "s.json", base_params, {"inh_frs.distal.m": [2, 8]}, seeds=2)
    out = tmp_path / "out"
    assert _build(sweep, out, env, neutral).returncode == 0
    proc = _run(out, env, neutral, "-j", "2", "-q")
    assert proc.returncode == 0, _describe(proc)
    proc = _call([sys.executable, RUN, "collect", out], env, neutral)
    assert proc.returncode == 0, _describe(proc)
    assert str(out / "summary.csv") in proc.stdout

    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["run_id"], r["inh_frs.distal.m"], r["seed"]) for r in rows] == [
        ("r000", "2", "1"),
        ("r001", "2", "2"),
        ("r002", "8", "1"),
        ("r003", "8", "2"),
    ]
    finite_cv = 0
    for row in rows:
        assert row["status"] == "done"
        with h5py.File(out / row["run_id"] / "output" / "spikes.h5", "r") as f:
            t = f["spikes/biophysical/timestamps"][()]
        with h5py.File(out / row["run_id"] / "output" / "v_soma.h5", "r") as f:
            vm = f["report/biophysical/data"][()].astype(float).ravel()
        assert vm.size == round(SMALL_DURATION_S * 1000 / 0.1)
        # statistics over the window after the warm-up (samples at k * 0.1 ms)
        t = t[t >= SMALL_WARMUP_MS]
        vm = vm[round(SMALL_WARMUP_MS / 0.1) :]
        assert row["window_ms"] == f"{SMALL_WARMUP_MS:g}-{SMALL_DURATION_S * 1000:g}"
        assert int(row["n_spikes"]) == t.size
        assert _same(float(row["rate_hz"]), t.size / (SMALL_DURATION_S - SMALL_WARMUP_MS / 1000))
        assert _same(float(row["cv_isi"]), _cv(t))
        assert _same(float(row["vm_mean_mV"]), statistics.fmean(vm.tolist()))
        assert float(row["vm_sd_mV"]) == pytest.approx(statistics.pstdev(vm.tolist()), rel=1e-9)
        finite_cv += not math.isnan(float(row["cv_isi"]))
    assert finite_cv >= 1, "no run fired 3 spikes: the CV comparison tested nothing"
    _assert_png(out / "summary_rate.png")


@simulates
def test_slurm_array_script_runs_one_pending_run_per_task(
    tmp_path: Path,
    base_params: Path,
    env: dict[str, str],
    runlog: Path,
    neutral: Path,
) -> None:
    sweep = _sweep_file(tmp_path / "s.json", base_params, seeds=2)
    out = tmp_path / "out"
    assert _build(sweep, out, env, neutral).returncode == 0
    proc = _run(out, env, neutral, "--slurm")
    assert proc.returncode == 0, _describe(proc)
    script = out / "slurm_array.sh"
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --array=0-1\n" in text
    assert (out / "slurm_runs.txt").read_text().split() == ["r000", "r001"]
    assert _runs_started(runlog) == []  # --slurm runs nothing

    task = _call(["bash", script], {**env, "SLURM_ARRAY_TASK_ID": "0"}, neutral)
    assert task.returncode == 0, _describe(task)
    manifest = _manifest(out)
    assert (manifest["r000"]["status"], manifest["r001"]["status"]) == ("done", "built")
    assert [r for r, _, _ in _runs_started(runlog)] == ["r000"]

    proc = _run(out, env, neutral, "--slurm")
    assert proc.returncode == 0, _describe(proc)
    assert "#SBATCH --array=0-0\n" in script.read_text()
    assert (out / "slurm_runs.txt").read_text().split() == ["r001"]


@simulates
def test_restart_does_not_start_a_run_whose_orphaned_runner_still_runs(
    tmp_path: Path,
    base_params: Path,
    env: dict[str, str],
    runlog: Path,
    neutral: Path,
) -> None:
    sweep = _sweep_file(tmp_path / "s.json", base_params, seeds=2)
    out = tmp_path / "out"
    assert _build(sweep, out, env, neutral).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, str(RUN), str(out), "-j", "1", "-q", "--no-progress"],
        cwd=neutral,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for(lambda: (out / "r000" / ".output-partial").is_dir(), proc, "r000 started")
    os.kill(proc.pid, signal.SIGKILL)  # `kill -9 PID`: the farm dies, its running child does not
    proc.wait()
    orphans = [pid for rid, pid, _ in _runs_started(runlog) if rid == "r000"]
    try:
        restart = _run(out, env, neutral, "-j", "1")
        assert restart.returncode == 0, _describe(restart)
        started = Counter(r for r, _, _ in _runs_started(runlog))
        assert started == {"r000": 1, "r001": 1}, started
    finally:
        deadline = time.monotonic() + 120
        while any(_alive(pid) for pid in orphans) and time.monotonic() < deadline:
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@needs_neuron
def test_engine_and_threads_reach_every_run_locally_and_in_the_slurm_script(
    tmp_path: Path,
    base_params: Path,
    env: dict[str, str],
    runlog: Path,
    neutral: Path,
) -> None:
    """``--engine`` and ``-t`` on a sweep's command line are each run's options: ``-t 0``, which
    only a runner refuses (before simulating), fails every run with the runner's message."""
    sweep = _sweep_file(tmp_path / "s.json", base_params, seeds=2)
    out = tmp_path / "out"
    assert _build(sweep, out, env, neutral).returncode == 0
    proc = _run(out, env, neutral, "--engine", "neuron", "-t", "0", "-j", "2")
    assert proc.returncode == 1, _describe(proc)
    manifest = _manifest(out)
    for rid in ("r000", "r001"):
        assert manifest[rid]["status"] == "failed"
        assert "-t/--threads 0 is not an integer >= 1" in manifest[rid]["error"]
    assert sorted(r for r, _, _ in _runs_started(runlog)) == ["r000", "r001"]

    proc = _run(out, env, neutral, "--slurm", "--engine", "neuron", "-t", "0")
    assert proc.returncode == 0, _describe(proc)
    script = out / "slurm_array.sh"
    assert 'run-one "' in script.read_text() and " --engine neuron -t 0\n" in script.read_text()
    task = _call(["bash", script], {**env, "SLURM_ARRAY_TASK_ID": "0"}, neutral)
    assert task.returncode == 1, _describe(task)
    error = json.loads((out / "r000" / "failed.json").read_text())["error"]
    assert "-t/--threads 0 is not an integer >= 1" in error


def test_a_killed_writes_leftover_is_cleared_only_when_its_writer_is_gone(tmp_path: Path) -> None:
    """An atomic write's temporary file names host and pid; a resumed build removes those of
    dead processes of this host and nothing else."""
    import socket

    from builder.commands.sweep import write_json_atomic
    from builder.core.output import clear_killed_writes

    host = socket.gethostname()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f".run.json.{host}.{int(gone.stdout)}.0123abcd.tmp"
    alive = tmp_path / f".sweep.json.{host}.{os.getpid()}.0123abcd.tmp"  # a write in progress
    elsewhere = tmp_path / f".run.json.not-{host}.{int(gone.stdout)}.0123abcd.tmp"
    user = tmp_path / "notes.tmp"
    for p in (dead, alive, elsewhere, user):
        p.write_text("")
    write_json_atomic(tmp_path / "run.json", {"a": 1})
    assert clear_killed_writes(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, elsewhere.name, user.name, "run.json"]
    )
    assert json.loads((tmp_path / "run.json").read_text()) == {"a": 1}
    assert _KILLED_WRITE.fullmatch(dead.name)
