"""The runner under faults: signals, concurrent runs, damaged inputs and outputs, write failures.

* SIGINT/SIGTERM at a random moment of the simulation (serial, ``mpiexec -n 2``, a ``-j 2``
  sweep): exit status 130/143, the message says where it stopped, the previous output is
  byte-identical afterwards, no partial directory is left and a sweep stays resumable;
* a second run of a directory being run exits 2 at once naming the first;
* a corpus of damaged inputs: exit 2, one message naming the file, no traceback, nothing
  written;
* an exception in the simulation loop and failing output writes never pass for success.

Every command runs in its own process group (``procs.run_group`` or ``Popen`` with a new
session) on copies of the session's tiny network.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from procs import run_group

from builder.core.locks import LOCK_FILE, RunLock, holder
from builder.core.sonata import write_spikes

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "run_network.py"
BUILD = ROOT / "build_network.py"
LONG_TSTOP_MS = 3000.0  # long enough to be interrupted mid-way (tens of seconds)
SEED = int(os.environ.get("L5NET_FAULT_SEED", time.time_ns() % 100_000))
STARTED = "Starting timestep"


def _copy(src: Path, dst: Path, *, outputs: bool = False) -> Path:
    ignore = None if outputs else shutil.ignore_patterns("output", LOCK_FILE)
    shutil.copytree(src, dst, ignore=ignore)
    return dst


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (hidden ones included)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _set_tstop(net: Path, tstop_ms: float) -> None:
    path = net / "simulation_config.json"
    cfg = json.loads(path.read_text())
    cfg["run"]["tstop"] = tstop_ms
    path.write_text(json.dumps(cfg, indent=2))


def _popen(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen(
            [str(a) for a in args], cwd=cwd, env=env, stdout=out, stderr=err,
            start_new_session=True,
        )  # fmt: skip


def _wait(cond: Callable[[], bool], proc: subprocess.Popen, what: str, timeout_s=180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the command ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            _kill(proc)
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.05)


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _started(rundir: Path) -> bool:
    log = rundir / ".output-partial" / "log.txt"
    return log.is_file() and STARTED in log.read_text(errors="replace")


def _signal_and_wait(proc: subprocess.Popen, sig: int, timeout_s: float = 60.0) -> float:
    """Send ``sig`` to ``proc`` after a random delay; return seconds until it exited."""
    time.sleep(random.Random(SEED).uniform(0.0, 1.0))
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        pytest.fail(f"still running {timeout_s:g} s after signal {sig} (seed {SEED})")
    return time.monotonic() - t0


def _text(proc: subprocess.Popen, log: Path) -> str:
    return (
        f"exit {proc.returncode} (seed {SEED})\n--- stdout\n{log.with_suffix('.out').read_text()}"
        f"\n--- stderr\n{log.with_suffix('.err').read_text()[-3000:]}"
    )


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_network: Path, run_network) -> Path:
    """The tiny network, run once (its complete output is the 'previous output')."""
    net = _copy(tiny_network, tmp_path_factory.mktemp("finished") / "net")
    res = run_network(net, "-q")
    assert res.returncode == 0, res.describe()
    return net


# ------------------------------------------------------------------------------ signals
@pytest.mark.neuron
@pytest.mark.slow
def test_sigint_stops_a_serial_run_and_a_second_run_is_refused(
    finished: Path, tmp_path: Path, sim_env: dict[str, str]
) -> None:
    net = _copy(finished, tmp_path / "net", outputs=True)
    _set_tstop(net, LONG_TSTOP_MS)
    before = _tree(net / "output")
    log = tmp_path / "a.log"
    proc = _popen([sys.executable, RUN, net, "--no-progress"], tmp_path, sim_env, log)
    try:
        _wait(lambda: _started(net), proc, "the simulation started")
        # a second run of the same directory: refused at once, naming the first
        t0 = time.monotonic()
        second = run_group(
            [sys.executable, RUN, net, "--no-progress"], cwd=tmp_path, env=sim_env, timeout_s=60
        )
        assert second.returncode == 2, second.stderr
        assert f"process {proc.pid} on {socket.gethostname()}" in second.stderr
        assert "Traceback" not in second.stderr
        assert time.monotonic() - t0 < 20.0
        assert proc.poll() is None, "the second run disturbed the first"
        waited = _signal_and_wait(proc, signal.SIGINT)
    finally:
        _kill(proc)
    err = log.with_suffix(".err").read_text()
    assert proc.returncode == 130, _text(proc, log)
    assert "interrupted at t = " in err and f"of {LONG_TSTOP_MS:g} ms" in err, _text(proc, log)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, _text(proc, log)
    assert waited < 15.0, f"took {waited:.1f} s to stop"
    assert _tree(net / "output") == before
    assert not (net / ".output-partial").exists()
    assert holder(net) is None


@pytest.mark.neuron
@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_every_rank_of_an_mpi_run(
    finished: Path, tmp_path: Path, sim_env: dict[str, str], sig: int
) -> None:
    mpiexec = shutil.which("mpiexec", path=sim_env["PATH"])
    if mpiexec is None:
        pytest.skip("mpiexec not found (pip install mpich)")
    net = _copy(finished, tmp_path / "net", outputs=True)
    _set_tstop(net, LONG_TSTOP_MS)
    before = _tree(net / "output")
    log = tmp_path / "mpi.log"
    cmd = [mpiexec, "-n", "2", sys.executable, RUN, net, "--no-progress"]
    proc = _popen(cmd, tmp_path, sim_env, log)
    try:
        _wait(lambda: _started(net), proc, "the simulation started")
        waited = _signal_and_wait(proc, sig)
    finally:
        _kill(proc)
    err = log.with_suffix(".err").read_text()
    assert proc.returncode == 128 + sig, _text(proc, log)
    assert err.count("interrupted at t = ") == 1, _text(proc, log)  # rank 0 reports
    assert "Traceback" not in err and "Abort" not in err, _text(proc, log)
    assert waited < 20.0, f"took {waited:.1f} s to stop"
    assert _tree(net / "output") == before
    assert not (net / ".output-partial").exists()


@pytest.mark.neuron
@pytest.mark.slow
def test_sigint_to_a_sweep_farm_stops_its_children_and_leaves_the_runs_resumable(
    tmp_path: Path, sim_env: dict[str, str]
) -> None:
    from builder.commands.farm import pending

    params = json.loads((ROOT / "params" / "L5NetParams.json").read_text())
    params["time"]["stop"] = LONG_TSTOP_MS / 1000
    params["lengths"].update({"apic": 100, "basal_dist": 100, "basal_prox": 50})
    params["n_soma_syns"] = 10
    (tmp_path / "p.json").write_text(json.dumps(params))
    (tmp_path / "s.json").write_text(json.dumps({"base": "p.json", "seeds": 2}))
    out = tmp_path / "sweep"
    build = run_group(
        [sys.executable, BUILD, "sweep", tmp_path / "s.json", "-o", out, "-q"],
        cwd=tmp_path, env=sim_env, timeout_s=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    log = tmp_path / "farm.log"
    proc = _popen([sys.executable, RUN, out, "-j", "2", "--no-progress"], tmp_path, sim_env, log)
    try:
        _wait(lambda: _started(out / "r000") and _started(out / "r001"), proc, "both runs started")
        waited = _signal_and_wait(proc, signal.SIGINT)  # the farm only, not its process group
    finally:
        _kill(proc)
    err = log.with_suffix(".err").read_text()
    assert proc.returncode == 130, _text(proc, log)
    assert "2 run(s) interrupted (r000, r001)" in err, _text(proc, log)
    assert waited < 30.0
    with open(out / "manifest.csv", newline="") as f:
        assert {r["status"] for r in csv.DictReader(f)} == {"built"}
    for rid in ("r000", "r001"):
        assert not (out / rid / "failed.json").exists()
        assert not (out / rid / "output").exists()
        assert not (out / rid / ".output-partial").exists()
        assert holder(out / rid) is None  # the children are gone
    assert pending(out) == ["r000", "r001"]  # a new 'run-network DIR' runs both


# ------------------------------------------------------------------------------ loop errors
_BLOCK_RAISES = """
import sys
import builder.simulators.neuron.runner as runner
original = runner._modules
def modules():
    progress, clamp = original()
    class Failing(progress):
        def block(self, sim, interval):
            raise RuntimeError("injected failure in a block callback")
    return Failing, clamp
runner._modules = modules
sys.exit(runner.main(sys.argv[1:]))
"""

# os.replace onto one output file of the partial directory fails as the disk or rights would
_WRITE_FAILS = """
import errno, os, sys
import builder.simulators.neuron.runner as runner
name, code = sys.argv.pop(1), getattr(errno, sys.argv.pop(1))
real = os.replace
def replace(src, dst, *a, **k):
    if str(dst).endswith(name) and ".output-partial" in str(dst):
        raise OSError(code, os.strerror(code), str(dst))
    return real(src, dst, *a, **k)
os.replace = replace
sys.exit(runner.main(sys.argv[1:]))
"""


@pytest.mark.neuron
@pytest.mark.slow
def test_an_exception_in_the_simulation_loop_fails_the_run(
    finished: Path, tmp_path: Path, run_network
) -> None:
    net = _copy(finished, tmp_path / "net", outputs=True)
    before = _tree(net / "output")
    res = run_network(net, command=[sys.executable, "-c", _BLOCK_RAISES])
    assert res.returncode == 2, res.describe()
    assert "the simulation failed at t = " in res.stderr
    assert "injected failure in a block callback" in res.stderr
    assert _tree(net / "output") == before
    assert not (net / ".output-partial").exists()


@pytest.mark.neuron
@pytest.mark.slow
@pytest.mark.parametrize(
    "name, code, text",
    [("spikes.h5", "ENOSPC", "No space left on device"), ("v_soma.h5", "EACCES", "Permission")],
)
def test_a_failed_output_write_names_the_file_and_keeps_the_previous_output(
    finished: Path, tmp_path: Path, run_network, name: str, code: str, text: str
) -> None:
    net = _copy(finished, tmp_path / "net", outputs=True)
    before = _tree(net / "output")
    driver = [sys.executable, "-c", _WRITE_FAILS, name, code]
    res = run_network(net, command=driver)
    assert res.returncode == 2, res.describe()
    assert name in res.stderr and text in res.stderr, res.describe()
    assert "previous output" in res.stderr and "Traceback" not in res.stderr
    assert _tree(net / "output") == before
    assert not (net / ".output-partial").exists()


# ------------------------------------------------------------------------------ bad inputs
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _respike(net: Path, pop: str, **columns) -> None:
    path = net / f"{pop}_spikes.h5"
    with h5py.File(path, "r") as f:
        ids = f[f"spikes/{pop}/node_ids"][()]
        ts = f[f"spikes/{pop}/timestamps"][()]
    if "ids" in columns or "ts" in columns:
        ids = columns.get("ids", ids)
        ts = columns.get("ts", ts)
        path.unlink()
        with h5py.File(path, "w") as f:
            f[f"spikes/{columns.get('as_pop', pop)}/node_ids"] = ids
            f[f"spikes/{columns.get('as_pop', pop)}/timestamps"] = ts
    else:
        write_spikes(path, columns["as_pop"], ids, ts)


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _node_set(name: str, body: dict) -> Callable[[Path], None]:
    return lambda net: _edit_json(net / "node_sets.json", lambda d: d.__setitem__(name, body))


def _negative_times(net: Path) -> None:
    with h5py.File(net / "exc_stim_spikes.h5", "r") as f:
        ts = f["spikes/exc_stim/timestamps"][()]
        ids = f["spikes/exc_stim/node_ids"][()]
    ts = ts.copy()
    ts[0] = -5.0
    write_spikes(net / "exc_stim_spikes.h5", "exc_stim", ids, np.sort(ts))


def _malformed_config(net: Path) -> None:
    path = net / "simulation_config.json"
    path.write_text(path.read_text().replace('"tstop"', '"tstop",', 1))


def _two_problems(net: Path) -> None:
    (net / "network" / "dist_inh_stim_biophysical_edges.h5").unlink()
    _truncate(net / "prox_inh_stim_spikes.h5")


CORPUS: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "truncated-hdf5": (
        lambda net: _truncate(net / "exc_stim_spikes.h5"),
        ["exc_stim_spikes.h5", "not a readable HDF5 file"],
    ),
    "wrong-dtype": (
        lambda net: _respike(net, "exc_stim", ids=np.array([0.0, 1.0]), ts=np.array([1.0, 2.0])),
        ["exc_stim_spikes.h5", "/spikes/exc_stim/node_ids", "not a 1-D integer dataset"],
    ),
    "missing-spike-population": (
        lambda net: _respike(net, "exc_stim", as_pop="excitatory"),
        ["exc_stim_spikes.h5", "no spikes population 'exc_stim'", "excitatory"],
    ),
    "missing-node-population": (
        lambda net: _edit_json(
            net / "circuit_config.json",
            lambda d: d["networks"]["nodes"][1].__setitem__(
                "populations", {"exc_stimulus": {"type": "virtual"}}
            ),
        ),
        ["exc_stim_nodes.h5", "no node population 'exc_stimulus'"],
    ),
    "malformed-config-json": (
        _malformed_config,
        ["simulation_config.json:", "invalid JSON in the simulation config"],
    ),
    "malformed-synapse-json": (
        lambda net: (net / "components" / "synaptic_models" / "PV2PN.json").write_text('{"a": 1'),
        ["PV2PN.json:1:", "invalid JSON"],
    ),
    "missing-edges-file": (
        lambda net: (net / "network" / "exc_stim_biophysical_edges.h5").unlink(),
        ["exc_stim_biophysical_edges.h5: missing"],
    ),
    "negative-spike-times": (
        _negative_times,
        ["exc_stim_spikes.h5", "-5..", "is not within the run (0..300 ms)"],
    ),
    "node-set-of-no-population": (
        _node_set("exc_stim", {"population": "exc_stimulus"}),
        ["node_sets.json: exc_stim", "population 'exc_stimulus' does not exist"],
    ),
    "node-set-selecting-nothing": (
        _node_set("prox_inh_stim", {"population": "prox_inh_stim", "node_id": [100000]}),
        ["node_sets.json: prox_inh_stim", "selects no node"],
    ),
    "every-problem-at-once": (
        _two_problems,
        ["2 problems", "dist_inh_stim_biophysical_edges.h5: missing", "prox_inh_stim_spikes.h5"],
    ),
}


@pytest.mark.neuron
@pytest.mark.parametrize("case", list(CORPUS))
def test_damaged_input_is_one_message_exit_2_and_nothing_written(
    case: str, tiny_network: Path, tmp_path: Path, run_network
) -> None:
    damage, expected = CORPUS[case]
    net = _copy(tiny_network, tmp_path / "net")
    damage(net)
    before = _tree(net)
    res = run_network(net, timeout_s=60)
    assert res.returncode == 2, res.describe()
    assert res.stderr.startswith("run-network: error: "), res.describe()
    for text in expected:
        assert text in res.stderr, f"{text!r} missing\n{res.describe()}"
    assert "Traceback" not in res.stderr
    assert _tree(net) == before  # nothing written: no lock, no output, no partial directory
    assert sorted(p.name for p in net.iterdir()) == sorted(
        p.name for p in tiny_network.iterdir() if p.name not in ("output", LOCK_FILE)
    )


# ------------------------------------------------------------------------------ the lock
def test_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(tmp_path: Path) -> None:
    from builder.core.locks import LockedError

    # a lock file left by a process that no longer exists (kill -9): taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (tmp_path / LOCK_FILE).write_text(
        json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)})
    )
    with RunLock(tmp_path):
        info = json.loads((tmp_path / LOCK_FILE).read_text())
        assert info == {"host": socket.gethostname(), "pid": os.getpid()}
        assert holder(tmp_path) == info
        # another process is refused, and told who holds it
        code = (
            "import sys\nfrom builder.core.locks import RunLock, LockedError\n"
            f"try:\n    RunLock({str(tmp_path)!r}).acquire()\n"
            "except LockedError as e:\n    print(e); sys.exit(3)\n"
        )
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode == 3, other.stderr
        assert f"process {os.getpid()} on {socket.gethostname()}" in other.stdout
        with pytest.raises(LockedError):  # a second lock in this process too (own handle)
            RunLock(tmp_path).acquire()
    assert holder(tmp_path) is None
    with RunLock(tmp_path):  # released: free again
        pass


# ------------------------------------------------------------------------------ reports
def _bmtk_report(path: Path, v: np.ndarray) -> None:
    """A membrane report as BMTK 1.2 writes it (float64, ``index_pointer``)."""
    with h5py.File(path, "w") as f:
        g = f.create_group("report/biophysical")
        g.create_dataset("data", data=v).attrs["variable"] = "v"
        m = g.create_group("mapping")
        m["node_ids"] = np.array([0, 3], dtype=np.uint64)
        m["element_ids"] = np.array([0, 0, 1], dtype=np.uint64)
        m["element_pos"] = np.array([0.5, 0.5, 0.5])
        m["index_pointer"] = np.array([0, 1, 3], dtype=np.uint64)
        m["time"] = np.array([0.0, v.shape[0] * 0.1, 0.1])


def test_bmtk_report_is_rewritten_in_the_sonata_layout_that_libsonata_reads(
    tmp_path: Path,
) -> None:
    libsonata = pytest.importorskip("libsonata")
    from builder.core.sonata_read import read_report, sonata_report

    v = np.random.default_rng(3).normal(-65.0, 5.0, (50, 3))
    path = tmp_path / "v_soma.h5"
    _bmtk_report(path, v)
    old = read_report(path)  # BMTK's layout still reads
    np.testing.assert_array_equal(old.trace(3, element=1), v[:, 2])
    sonata_report(path)
    with h5py.File(path, "r") as f:
        g = f["report/biophysical"]
        assert g["data"].dtype == np.float32 and g["data"].attrs["units"] == "mV"
        assert "index_pointers" in g["mapping"] and "index_pointer" not in g["mapping"]
        assert g["mapping/time"].attrs["units"] == "ms"
    pop = libsonata.ElementReportReader(str(path))["biophysical"]
    assert pop.get_node_ids() == [0, 3]
    assert pop.times == pytest.approx((0.0, 5.0, 0.1)) and pop.data_units == "mV"
    frame = pop.get(node_ids=[3])
    np.testing.assert_array_equal(np.asarray(frame.data), v[:, 1:].astype(np.float32))
    ours = read_report(path)
    np.testing.assert_array_equal(ours.trace(), v[:, 0].astype(np.float32))
    np.testing.assert_allclose(ours.times_ms, np.arange(50) * 0.1)


@pytest.mark.neuron
@pytest.mark.slow
def test_a_real_runs_report_opens_in_libsonata(finished: Path) -> None:
    libsonata = pytest.importorskip("libsonata")
    pop = libsonata.ElementReportReader(str(finished / "output" / "v_soma.h5"))["biophysical"]
    data = np.asarray(pop.get().data)
    assert data.shape == (3000, 1) and data.dtype == np.float32
    assert -100.0 < data.min() < data.max() < 80.0


# ------------------------------------------------------------------------------ damaged outputs
def test_collect_reports_a_damaged_run_and_collects_the_others(tmp_path: Path) -> None:
    from builder.commands.collect import main as collect_main
    from builder.commands.sweep import RunSpec, Sweep
    from builder.core.output import MANIFEST_NAME

    out = tmp_path / "sweep"
    runs = [RunSpec(f"r00{i}", {"seed_only": i}, 1) for i in range(3)]
    sweep = Sweep(ROOT / "params" / "L5NetParams.json", ["seed_only"], runs, "grid", "s.json")
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps(sweep.to_json()))
    for i, run in enumerate(runs):
        d = out / run.run_id
        (d / "output").mkdir(parents=True)
        (d / MANIFEST_NAME).write_text('{"files": {}}')
        (d / "simulation_config.json").write_text('{"run": {"tstop": 1000.0}}')
        write_spikes(d / "output" / "spikes.h5", "biophysical", np.zeros(i + 1, int),
                     np.arange(i + 1) * 10.0)  # fmt: skip
    _truncate(out / "r001" / "output" / "spikes.h5")
    status = collect_main([str(out), "--no-plot", "-q"])
    assert status == 1
    with open(out / "summary.csv", newline="") as f:
        rows = {r["run_id"]: r for r in csv.DictReader(f)}
    assert [rows[r]["status"] for r in ("r000", "r001", "r002")] == ["done", "damaged", "done"]
    assert (rows["r000"]["n_spikes"], rows["r002"]["n_spikes"]) == ("1", "3")
    assert "spikes.h5" in rows["r001"]["error"] and rows["r001"]["n_spikes"] == ""


@pytest.mark.neuron
def test_plot_of_a_damaged_report_is_one_message(
    finished: Path, tmp_path: Path, sim_env: dict[str, str]
) -> None:
    net = _copy(finished, tmp_path / "net", outputs=True)
    _truncate(net / "output" / "v_soma.h5")
    res = run_group(
        [sys.executable, RUN, "plot", net, "-o", tmp_path / "plots"],
        cwd=tmp_path, env=sim_env, timeout_s=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "v_soma.h5" in res.stderr and "damaged or not HDF5" in res.stderr
    assert "Traceback" not in res.stderr
