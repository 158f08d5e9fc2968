"""Run the pending runs of a sweep directory: locally with N workers, over MPI ranks, or SLURM.

Every run executes in its own child process (``python -m builder.commands.farm run-one DIR RUN``),
so a crash, a NEURON error or a killed run never takes the others down, and each run's outputs
appear only when complete (the runner renames its output directory into place). The child's
environment has the MPI launcher variables removed, so a run started from an MPI rank is an
ordinary serial NEURON run.

* ``run-network DIR -j N``: N local workers (threads waiting on children).
* ``mpiexec -n N python run_network.py DIR``: rank 0 hands out runs, ranks 1..N-1 ask for work;
  rank 0 also runs children itself between messages, so N ranks keep N runs going.
* ``run-network DIR --slurm``: writes ``DIR/slurm_array.sh``, one array task per pending run.

``--engine`` and ``-t/--threads`` on the sweep's command line are passed on to every run's
``run-network`` (all three ways; :func:`runner_options`).

The manifest (``DIR/manifest.csv``) is rewritten from the files on disk after every finished
run; restarting after a kill redoes only the runs without complete output.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..core.errors import BuildError
from ..core.locks import FD_ENV, LockedError, RunLock
from ..core.mpienv import without_launcher
from .sweep import FAILED_FILE, read_sweep_dir, run_status, write_json_atomic, write_manifest

__all__ = [
    "pending",
    "run_one",
    "farm_local",
    "farm_mpi",
    "slurm_script",
    "child_env",
    "runner_options",
]

_TAG = 77
#: Exit statuses of a runner stopped by SIGINT / SIGTERM.
INTERRUPTED_STATUS = (128 + signal.SIGINT, 128 + signal.SIGTERM)


def child_env() -> dict[str, str]:
    """This process's environment without the MPI launcher's variables."""
    return without_launcher()


def pending(outdir: Path, *, rerun_failed: bool = True) -> list[str]:
    """Run ids still to run: built, and (by default) failed ones."""
    sweep = read_sweep_dir(outdir)
    want = {"built", "failed"} if rerun_failed else {"built"}
    return [r.run_id for r in sweep.runs if run_status(outdir, r.run_id) in want]


class _Interrupts:
    """SIGINT/SIGTERM in a farm: stop handing out runs and pass the signal to every child.

    Each child (a runner) then stops its simulation, removes its partial output and exits with
    128 + the signal number; its run stays ``built`` (resumable), not ``failed``.
    """

    def __init__(self) -> None:
        self.signum = 0
        self.children: set[subprocess.Popen[str]] = set()
        self.lock = threading.Lock()
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handler(self, signum: int, frame: Any) -> None:
        if not self.signum:
            self.signum = signum
        with self.lock:
            children = list(self.children)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)


#: The signal state of this process's farm (one farm per process).
INTERRUPTS = _Interrupts()


def runner_options(ns: Any) -> list[str]:
    """The ``run-network`` options of a sweep's command line that every run gets as well.

    ``--engine`` and ``-t/--threads`` (``ns``: the parsed :func:`builder.core.runs.run_parser`
    namespace); options left unset are not passed, so each run's config decides.
    """
    out: list[str] = []
    if getattr(ns, "engine", None) is not None:
        out += ["--engine", str(ns.engine)]
    if getattr(ns, "threads", None) is not None:
        out += ["-t", str(int(ns.threads))]
    return out


def run_one(
    outdir: Path,
    run_id: str,
    *,
    timeout_s: float | None = None,
    options: Sequence[str] = (),
) -> str:
    """Run one run in a child process; record a failure in ``RUN/failed.json``; return status.

    ``options`` go on the child's ``run-network`` command line (:func:`runner_options`).

    We take the run's lock (:mod:`builder.core.locks`) and hand it to the child, which holds it for
    as long as it lives, so a run whose runner outlived a killed farm is not started a second
    time: ``running``. A child stopped by a signal leaves its run resumable: ``interrupted``.
    """
    rundir = Path(outdir) / run_id
    if INTERRUPTS.signum:
        return "not started"
    try:
        lock = RunLock(rundir).acquire()
    except LockedError:
        return "running"
    except BuildError as exc:
        write_json_atomic(rundir / FAILED_FILE, {"error": str(exc), "returncode": 2})
        return "failed"
    try:
        assert lock.fd is not None
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "builder.commands.run_cli", str(rundir), "-q", "--no-progress"]
        cmd += list(options)
        env = {**child_env(), FD_ENV: str(lock.fd)}
        with INTERRUPTS.lock:
            if INTERRUPTS.signum:
                return "not started"
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=rundir,
                pass_fds=(lock.fd,),
            )
            INTERRUPTS.children.add(proc)
        try:
            _, err = proc.communicate(timeout=timeout_s)
            rc = proc.returncode
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            rc, err = -1, f"timed out after {exc.timeout} s"
        finally:
            with INTERRUPTS.lock:
                INTERRUPTS.children.discard(proc)
        if rc == 0 and run_status(Path(outdir), run_id) == "done":
            (rundir / FAILED_FILE).unlink(missing_ok=True)
            return "done"
        if rc in INTERRUPTED_STATUS or rc in (-signal.SIGINT, -signal.SIGTERM):
            return "interrupted"
        tail = "\n".join((err or "").strip().splitlines()[-12:])
        write_json_atomic(
            rundir / FAILED_FILE,
            {
                "error": tail or f"exit status {rc}",
                "returncode": rc,
                "seconds": round(time.perf_counter() - t0, 3),
            },
        )
        return "failed"
    finally:
        lock.release()


def _report(progress_stream, done: int, total: int, t0: float, run_id: str, status: str) -> None:
    if progress_stream is not None:
        progress_stream.write(
            f"\r  runs [{'#' * int(30 * done / max(total, 1)):<30}] {done}/{total} "
            f"{time.perf_counter() - t0:7.1f} s  last {run_id}: {status}   "
        )
        progress_stream.flush()


def farm_local(
    outdir: Path,
    run_ids: list[str],
    jobs: int = 1,
    *,
    progress: bool = False,
    options: Sequence[str] = (),
) -> dict[str, str]:
    """Run ``run_ids`` with ``jobs`` concurrent child processes; returns run id -> status.

    ``options``: extra ``run-network`` options for every run (:func:`runner_options`).
    """
    outdir = Path(outdir)
    sweep = read_sweep_dir(outdir)
    results: dict[str, str] = {}
    stream = sys.stderr if progress else None
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run_one, outdir, r, options=options): r for r in run_ids}
        for fut in as_completed(futures):
            rid = futures[fut]
            results[rid] = fut.result()
            write_manifest(outdir, sweep)
            _report(stream, len(results), len(run_ids), t0, rid, results[rid])
    if stream is not None and run_ids:
        stream.write("\n")
    write_manifest(outdir, sweep)
    return results


def farm_mpi(
    outdir: Path,
    comm: Any,
    *,
    rerun_failed: bool = True,
    progress: bool = False,
    options: Sequence[str] = (),
) -> dict[str, str]:
    """Rank 0 hands out the pending runs of ``outdir`` to all ranks (itself included).

    ``options``: extra ``run-network`` options for every run (:func:`runner_options`).
    """
    outdir = Path(outdir)
    rank, size = comm.Get_rank(), comm.Get_size()
    if rank != 0:
        comm.send(("ready",), dest=0, tag=_TAG)
        while True:
            req = comm.irecv(source=0, tag=_TAG)
            while True:  # poll with sleeps: a blocking MPICH receive spins a core
                ok, msg = req.test()
                if ok:
                    break
                time.sleep(0.02)
            if msg[0] == "stop":
                return {}
            status = run_one(outdir, msg[1], options=options)  # "not started" if interrupted
            comm.send(("result", msg[1], status), dest=0, tag=_TAG)

    from mpi4py import MPI

    sweep = read_sweep_dir(outdir)
    queue = deque(pending(outdir, rerun_failed=rerun_failed))
    total = len(queue)
    results: dict[str, str] = {}
    workers_left = size - 1
    local: tuple[Future[str], str] | None = None
    stream = sys.stderr if progress else None
    t0 = time.perf_counter()
    st = MPI.Status()

    def finished(rid: str, status: str) -> None:
        results[rid] = status
        write_manifest(outdir, sweep)
        _report(stream, len(results), total, t0, rid, status)

    pool = ThreadPoolExecutor(max_workers=1)
    while True:
        if INTERRUPTS.signum:
            queue.clear()  # hand out nothing more; the running children were signalled
        if local is None and queue:
            rid = queue.popleft()
            local = (pool.submit(run_one, outdir, rid, options=options), rid)
        if local is not None and local[0].done():
            finished(local[1], local[0].result())
            local = None
        while comm.Iprobe(source=MPI.ANY_SOURCE, tag=_TAG, status=st):
            src = st.Get_source()
            msg = comm.recv(source=src, tag=_TAG)
            if msg[0] == "result":
                finished(msg[1], msg[2])
            if queue:
                comm.send(("task", queue.popleft()), dest=src, tag=_TAG)
            else:
                comm.send(("stop",), dest=src, tag=_TAG)
                workers_left -= 1
        if not queue and local is None and workers_left == 0:
            break
        time.sleep(0.05)
    pool.shutdown()
    if stream is not None and total:
        stream.write("\n")
    write_manifest(outdir, sweep)
    return results


def slurm_script(
    outdir: Path,
    run_ids: list[str],
    *,
    python: str | None = None,
    options: Sequence[str] = (),
) -> Path:
    """Write ``DIR/slurm_array.sh`` (one array task per run) and its run list; return its path.

    ``options``: extra ``run-network`` options for every run (:func:`runner_options`).
    """
    outdir = Path(outdir).resolve()
    listing = outdir / "slurm_runs.txt"
    listing.write_text("".join(f"{r}\n" for r in run_ids))
    py = python or sys.executable
    script = outdir / "slurm_array.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --job-name=l5net-sweep\n"
        f"#SBATCH --array=0-{max(len(run_ids) - 1, 0)}\n"
        "#SBATCH --ntasks=1\n"
        f"#SBATCH --output={outdir}/slurm-%A_%a.log\n"
        "# One array task per pending run of this sweep; submit with: sbatch slurm_array.sh\n"
        "# Afterwards: run-network collect DIR (also refreshes manifest.csv).\n"
        "set -euo pipefail\n"
        f'RUN=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "{listing}")\n'
        f'exec "{py}" -m builder.commands.farm run-one "{outdir}" "$RUN"'
        + "".join(f" {shlex.quote(o)}" for o in options)
        + "\n"
    )
    script.chmod(0o755)
    return script


def main(argv: list[str] | None = None) -> int:
    """``python -m builder.commands.farm run-one DIR RUN [OPTIONS]``: run one run of a sweep and
    record its status; OPTIONS (``--engine``, ``-t``) go to the run's ``run-network``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[0] != "run-one":
        print(
            "usage: python -m builder.commands.farm run-one SWEEP_DIR RUN_ID [OPTIONS]",
            file=sys.stderr,
        )
        return 2
    options = argv[3:]
    outdir = Path(argv[1])
    INTERRUPTS.install()
    try:
        status = run_one(outdir, argv[2], options=options)
    finally:
        INTERRUPTS.restore()
    write_manifest(outdir)
    print(f"{argv[2]}: {status}")
    if INTERRUPTS.signum:
        return 128 + INTERRUPTS.signum
    return 0 if status == "done" else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
