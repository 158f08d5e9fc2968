"""Every documented build-side option works (issue 9): each reproduction turned into a test.

A. an installed wheel builds and runs the default network outside the checkout;
B. ``seed`` in a sweep's ``overrides`` is the runs' seed (with ``seeds`` it is an error);
C. output directories get the umask's permissions, not mkdtemp's 0700;
D. bad output paths and a too-small ``dL`` give one message and exit 2, no traceback;
F. rough edges: help, ``sweep --check`` without ``-o``, ``-v``, ``--set`` blame, plurals,
   ``.gitignore``, the L2-3 file's lengths, ``--version``.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEFAULT_PARAMS, ROOT, TINY_OVERRIDES
from procs import run_group

import builder
from builder.commands import cli
from builder.commands.sweep import build_sweep, load_sweep, write_manifest
from builder.core import data
from builder.core.errors import OutputError, ParamsError
from builder.core.output import MANIFEST_NAME, make_temp_dir
from builder.core.overrides import apply_overrides
from builder.recipes.l5_params import MIN_DL_UM, load_params

L23 = ROOT / "params" / "L2-3NetParams.json"
TIMEOUT_S = 300.0


def _write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``build_network.py ARGS`` in a subprocess (fresh logging, real exit status)."""
    return run_group(
        [sys.executable, str(ROOT / "build_network.py"), *args],
        cwd=cwd,
        env=env or dict(os.environ),
        timeout_s=TIMEOUT_S,
    )


def _tiny_sets(stop_s: float | None = None) -> list[str]:
    """``--set`` arguments of the tiny network (optionally with another time.stop)."""
    out = []
    for item in TINY_OVERRIDES:
        if stop_s is not None and item.startswith("time.stop="):
            item = f"time.stop={stop_s}"
        out += ["--set", item]
    return out


def _tiny_dict(stop_s: float = 0.1) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in TINY_OVERRIDES:
        key, _, value = item.partition("=")
        out[key] = json.loads(value)
    out["time.stop"] = stop_s
    return out


def _one_message(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert exit status 2 with a message and no traceback; return stderr."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("build-network"), proc.stderr
    return proc.stderr


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------ A. installed package
def test_data_dir_prefers_the_packaged_copy_then_the_checkout(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "site" / "builder"
    (pkg / "_data" / "params").mkdir(parents=True)
    monkeypatch.setattr(data, "_PACKAGE_DIR", pkg)
    assert data.project_data_dir("params") == pkg / "_data" / "params"
    # not packaged: the folder beside the package (a checkout), even if missing
    assert data.project_data_dir("biophys_components") == tmp_path / "site" / "biophys_components"
    with pytest.raises(ValueError, match="not a shipped data folder"):
        data.project_data_dir("examples")


def test_checkout_finds_its_own_folders() -> None:
    from builder.core.components import project_components_dir

    assert project_components_dir() == ROOT / "biophys_components"
    assert data.project_data_dir("params") == ROOT / "params"


def test_default_params_fall_back_to_the_shipped_file(tmp_path) -> None:
    assert cli.default_params_path(tmp_path) == ROOT / "params" / "L5NetParams.json"
    (tmp_path / "L5NetParams.json").write_text("{}")
    assert cli.default_params_path(tmp_path) == tmp_path / "L5NetParams.json"


def _copy_source_tree(dest: Path) -> Path:
    """The files a source distribution holds (git's view of the checkout, minus tests)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in listed:
        if rel.startswith(("tests/", "benchmarks/", "docs/", "examples/")):
            continue
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(src.read_bytes())
    return dest


@pytest.mark.slow
@pytest.mark.neuron
def test_installed_wheel_builds_and_runs_the_default_network_anywhere(tmp_path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the source tree")
    src = _copy_source_tree(tmp_path / "src")
    wheels = tmp_path / "wheels"
    proc = run_group(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
        cwd=tmp_path,
        env=dict(os.environ),
        timeout_s=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = wheels.glob("l5net_builder-*.whl")

    # every file of the data folders is in the wheel, byte for byte
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for folder in data.DATA_FOLDERS:
            for f in (src / folder).rglob("*"):
                if f.is_file():
                    arc = f"builder/_data/{folder}/{f.relative_to(src / folder).as_posix()}"
                    assert arc in names, arc
                    assert zf.read(arc) == f.read_bytes(), arc
        assert "builder/schema/params.schema.json" in names

    # a fresh venv holding only the wheel; the heavy dependencies (numpy, NEURON, BMTK) come
    # from this venv's site-packages through a .pth line, which adds the directory to sys.path
    # but does not run the .pth files in it: this checkout's editable finder stays inactive
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    proc = run_group(
        [sys.executable, "-m", "pip", "--python", str(vpy), "install", "--no-deps", "-q", wheel],
        cwd=tmp_path,
        env=dict(os.environ),
        timeout_s=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = Path(
        subprocess.run(
            [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    ours = Path(
        subprocess.run(
            [sys.executable, "-c", "import numpy; print(numpy.__file__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    ).parent.parent
    (site / "zz_dependencies.pth").write_text(f"{ours}\n")
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # nrnivmodl for the runner's NMODL compile sits in this venv's bin
    env["PATH"] = os.pathsep.join(
        [str(venv / "bin"), str(Path(sys.executable).parent), env["PATH"]]
    )

    where = subprocess.run(
        [str(vpy), "-c", "import builder; print(builder.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_group(list(args), cwd=empty, env=env, timeout_s=TIMEOUT_S)

    check = run(str(venv / "bin" / "build-network"), "--check")
    assert check.returncode == 0, check.stderr
    shipped = site / "builder" / "_data" / "params" / "L5NetParams.json"
    assert check.stdout.startswith(f"{shipped}: OK"), check.stdout
    assert "n_dend_exc = 2008" in check.stdout

    built = run(str(venv / "bin" / "build-network"), *_tiny_sets(0.05), "1", "-o", "net", "-q")
    assert built.returncode == 0, built.stderr
    manifest = json.loads((empty / "net" / MANIFEST_NAME).read_text())
    assert "components/templates/L5PCtemplate.hoc" in manifest["files"]
    assert "components/mechanisms/modfiles/pyr2pyr.mod" in manifest["files"]

    ran = run(str(venv / "bin" / "run-network"), "net", "-q", "--no-progress")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert (empty / "net" / "output" / "spikes.h5").is_file()
    assert sorted(p.name for p in empty.iterdir()) == ["net"]  # nothing else written here


# ------------------------------------------------------------------ B. seed in overrides
def test_seed_in_overrides_together_with_seeds_is_an_error(tmp_path) -> None:
    sweep = _write_json(
        tmp_path / "s.json",
        {"base": str(DEFAULT_PARAMS), "overrides": {"seed": [5, 6]}, "seeds": 1},
    )
    with pytest.raises(ParamsError) as err:
        load_sweep(sweep)
    (problem,) = err.value.problems
    assert problem.startswith("overrides.seed: [5, 6] and seeds: 1 both give the seeds")


def test_seed_in_overrides_is_the_runs_seed(tmp_path) -> None:
    grid = load_sweep(
        _write_json(
            tmp_path / "g.json",
            {"base": str(DEFAULT_PARAMS), "overrides": {"seed": [5, 6], "dt": [0.1, 0.05]}},
        )
    )
    assert grid.keys == ["dt"]
    assert [(r.overrides, r.seed) for r in grid.runs] == [
        ({"dt": 0.1}, 5),
        ({"dt": 0.05}, 5),
        ({"dt": 0.1}, 6),
        ({"dt": 0.05}, 6),
    ]
    zipped = load_sweep(
        _write_json(
            tmp_path / "z.json",
            {
                "base": str(DEFAULT_PARAMS),
                "overrides": {"dt": [0.1, 0.05], "seed": [7, 3]},
                "combine": "zip",
            },
        )
    )
    assert [(r.overrides, r.seed) for r in zipped.runs] == [({"dt": 0.1}, 7), ({"dt": 0.05}, 3)]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"seed": [1, -1]}, "overrides.seed: [1, -1] is not a list of integers >= 0"),
        ({"seed": [2, True]}, "overrides.seed: [2, True] is not a list of integers >= 0"),
        ({"seed": [4, 4]}, "runs r000 and r001 would be identical (same overrides and seed 4)"),
        ({"dt": [0.1, 0.1]}, "runs r000 and r001 would be identical (same overrides and seed 1)"),
    ],
    ids=["negative", "bool", "twice", "same-values"],
)
def test_bad_seed_overrides_and_identical_runs(tmp_path, overrides, expected) -> None:
    spec = {"base": str(DEFAULT_PARAMS), "overrides": overrides}
    with pytest.raises(ParamsError) as err:
        load_sweep(_write_json(tmp_path / "s.json", spec))
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


@pytest.mark.neuron
def test_swept_seeds_build_different_runs_with_one_seed_column(tmp_path) -> None:
    raw = json.loads(DEFAULT_PARAMS.read_text())
    _write_json(tmp_path / "base.json", apply_overrides(raw, _tiny_dict(0.1), "base.json"))
    sweep = _write_json(tmp_path / "s.json", {"base": "base.json", "overrides": {"seed": [5, 6]}})
    build_sweep(sweep, tmp_path / "out")
    out = tmp_path / "out"
    rows = list(csv.reader((out / "manifest.csv").open()))
    assert rows[0] == ["run_id", "seed", "status", "error"]
    assert [r[:3] for r in rows[1:]] == [["r000", "5", "built"], ["r001", "6", "built"]]
    assert [json.loads((out / r / "run.json").read_text())["seed"] for r in ("r000", "r001")] == [
        5,
        6,
    ]
    a, b = ((out / r / "exc_stim_spikes.h5").read_bytes() for r in ("r000", "r001"))
    assert a != b
    assert write_manifest(out)[1]["seed"] == 6


# ------------------------------------------------------------------ C. permissions
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_temp_dirs_follow_the_umask(tmp_path, mask) -> None:
    with _umask(mask):
        made = make_temp_dir(tmp_path, ".x-")
    assert made.parent == tmp_path and made.name.startswith(".x-")
    assert _mode(made) == 0o777 & ~mask


def test_temp_dir_in_a_missing_parent_is_an_output_error(tmp_path) -> None:
    with pytest.raises(OutputError, match="cannot create a directory there"):
        make_temp_dir(tmp_path / "missing", ".x-")


@pytest.mark.neuron
@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_build_and_sweep_outputs_follow_the_umask(tmp_path, mask) -> None:
    from builder.commands.build import SimulationBuilder

    dir_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    with _umask(mask):
        SimulationBuilder(DEFAULT_PARAMS, 1, overrides=_tiny_dict()).build(tmp_path / "a" / "net")
        sweep = _write_json(
            tmp_path / "s.json",
            {"base": str(DEFAULT_PARAMS), "overrides": {"time.stop": [0.1]}, "seeds": [1]},
        )
        build_sweep(sweep, tmp_path / "sw")
    net = tmp_path / "a" / "net"
    for d in (tmp_path / "a", net, net / "network", net / "components" / "templates"):
        assert _mode(d) == dir_mode, (d, oct(_mode(d)))
    for f in (net / MANIFEST_NAME, net / "network" / "exc_stim_nodes.h5", net / "segments.csv"):
        assert _mode(f) == file_mode, (f, oct(_mode(f)))
    for d in (tmp_path / "sw", tmp_path / "sw" / "r000", tmp_path / "sw" / "r000" / "network"):
        assert _mode(d) == dir_mode, (d, oct(_mode(d)))
    assert _mode(tmp_path / "sw" / "manifest.csv") == file_mode


# ------------------------------------------------------------------ D. one message, exit 2
@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_output_under_proc_is_one_message(tmp_path) -> None:
    proc = _cli(["-o", "/proc/nope"], cwd=tmp_path)
    err = _one_message(proc)
    assert "/proc" in err and "cannot create a directory there" in err
    assert "output /proc/nope" in err
    assert list(tmp_path.iterdir()) == []


def test_sweep_into_a_file_is_one_message(tmp_path) -> None:
    sweep = _write_json(tmp_path / "s.json", {"base": str(DEFAULT_PARAMS), "seeds": 1})
    (tmp_path / "afile").write_text("mine\n")
    err = _one_message(_cli(["sweep", "s.json", "-o", "afile"], cwd=tmp_path))
    assert "afile: exists and is not a directory" in err
    assert (tmp_path / "afile").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", sweep.name]


def test_tiny_dl_is_a_params_error_naming_the_value_and_the_bound(tmp_path) -> None:
    err = _one_message(_cli(["--set", "dL=0.001", "--check"], cwd=tmp_path))
    assert err.startswith("build-network: error: --set dL=0.001 (on ")
    assert f"dL: 0.001 µm is below the smallest segment length accepted, {MIN_DL_UM:g} µm" in err
    assert "32767 segments per section" in err
    assert len(err.strip().splitlines()) == 2  # the header and the one problem


def test_smallest_accepted_dl_validates() -> None:
    assert load_params(DEFAULT_PARAMS, overrides={"dL": MIN_DL_UM})["dL"] == MIN_DL_UM
    with pytest.raises(ParamsError, match="dL: 0.09 µm is below"):
        load_params(DEFAULT_PARAMS, overrides={"dL": 0.09})


# ------------------------------------------------------------------ F. rough edges
def test_help_mentions_the_sweep_subcommand(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "build-network sweep SWEEP.json -o DIR" in text
    assert "build-network sweep --help" in text


def test_sweep_check_needs_no_outdir_and_counts_runs_in_plural(tmp_path, capsys) -> None:
    one = _write_json(tmp_path / "one.json", {"base": str(DEFAULT_PARAMS), "seeds": 1})
    two = _write_json(tmp_path / "two.json", {"base": str(DEFAULT_PARAMS), "seeds": 2})
    assert cli.main(["sweep", str(one), "--check"]) == 0
    assert capsys.readouterr().out == f"{one}: OK, 1 run (seeds only)\n"
    assert cli.main(["sweep", str(two), "--check"]) == 0
    assert capsys.readouterr().out == f"{two}: OK, 2 runs (seeds only)\n"
    with pytest.raises(SystemExit) as done:
        cli.main(["sweep", str(one)])
    assert done.value.code == 2
    assert "-o/--outdir is required (except with --check)" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == [one, two]  # --check wrote nothing


@pytest.mark.neuron
def test_verbose_says_what_it_resolves_and_how_long_it_takes(tmp_path) -> None:
    proc = _cli(["-v", "--check"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert f"params {DEFAULT_PARAMS} valid (seed 123) in " in err
    assert f"template: {ROOT / 'biophys_components' / 'templates' / 'L5PCtemplate.hoc'}" in err
    assert "NMODL: " in err and "biophys_components/mechanisms/modfiles" in err
    assert "segment table: " in err and "(derived with dL = 5 um) in " in err
    assert "lengths (params): basal_dist 4649 um, basal_prox 483 um, apic 7440 um" in err
    quiet = _cli(["--check"], cwd=tmp_path)
    assert "template:" not in quiet.stderr and "segment table" not in quiet.stderr


def test_set_errors_name_the_override_not_the_file(tmp_path, capsys) -> None:
    assert cli.main(["--set", "time.stop=-1", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"build-network: error: --set time.stop=-1 (on {DEFAULT_PARAMS}): ")
    assert "  - time.stop: -1 must be greater than 0 (from --set time.stop=-1)" in err
    # a problem of the file itself keeps the file as the culprit; the override's line names it
    bad = json.loads(DEFAULT_PARAMS.read_text())
    bad["dt"] = 5
    path = _write_json(tmp_path / "bad.json", bad)
    assert cli.main([str(path), "--set", "cell.prefix=7", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"build-network: error: {path}: 2 problems found:")
    assert "  - cell.prefix: 7 is not a string (from --set cell.prefix=7)" in err
    assert "  - dt: 5 ms is larger than 1 ms (the input rasters have 1 ms bins)\n" in err
    # an override into a non-object is the override's fault too
    assert cli.main(["--set", "time.stop.x=3", "--check"]) == 2
    assert capsys.readouterr().err.startswith("build-network: error: --set time.stop.x=3 (on ")


def test_gitignore_names_the_manifest_we_write() -> None:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    assert f"/{MANIFEST_NAME}" in lines
    assert not any("netbuilder" in line for line in lines)


@pytest.mark.neuron
def test_shipped_l23_params_lengths_match_the_cell(tmp_path) -> None:
    from builder.commands.build import SimulationBuilder

    b = SimulationBuilder(L23, cwd=tmp_path)
    b.check()
    assert b.warnings == []
    measured = b.segment_table.dendritic_lengths()
    for key, given in b.params["lengths"].items():
        assert abs(given - measured[key]) <= 0.5, (key, given, measured[key])


def test_version_is_single_sourced(capsys) -> None:
    assert importlib.metadata.version("l5net-builder") == builder.__version__
    for argv in (["--version"], ["sweep", "--version"]):
        with pytest.raises(SystemExit) as done:
            cli.main(argv)
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.strip().endswith(f" {builder.__version__}") and out.startswith("build-network")
