"""The fast edge path of the spec builder: sorted draws without a sort, the source index from
runs kept in memory, blocks drawn ahead in a worker thread. None of them may change a byte:
the same seed gives the same files whatever the chunk size, the number of blocks drawn ahead
and the way the source index is built; and the draws keep their distribution."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import libsonata
import numpy as np
import pytest

from builder.core.errors import BuildError
from builder.core.sonata import EdgeStreamWriter
from builder.core.spec import NetworkBuilder, load_spec, rules
from builder.core.spec import build as spec_build
from builder.core.spec.rules import _sorted_draws

REPO = Path(__file__).resolve().parents[1]
MICROCIRCUIT = REPO / "examples" / "microcircuit.json"


def _digests(outdir: Path) -> dict[str, str]:
    return {
        p.relative_to(outdir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(outdir.rglob("*"))
        if p.is_file() and not p.name.startswith(".l5net")
    }


# ------------------------------------------------------------------ sorted draws
def test_sorted_draws_are_sorted_uniform_and_skip_the_excluded():
    rng = np.random.default_rng(11)
    n, k, rows = 37, 400, 300
    counts = np.full(rows, k)
    counts[::7] = 0  # empty rows in between change nothing for the others
    excl = np.where(np.arange(rows) % 3 == 0, np.arange(rows) % n, -1)
    vals = _sorted_draws(rng, counts, n, excl)
    assert len(vals) == counts.sum() and vals.min() >= 0 and vals.max() < n
    row = np.repeat(np.arange(rows), counts)
    assert np.all((np.diff(vals) >= 0) | (np.diff(row) != 0))  # ascending within each row
    assert not np.any(vals == excl[row])  # never the excluded value
    # rows without an exclusion: each value has probability 1/n; a chi-square test with
    # n - 1 degrees of freedom, threshold at its 0.999 quantile (about 69 for 36 dof)
    free = excl[row] < 0
    obs = np.bincount(vals[free], minlength=n)
    exp = free.sum() / n
    assert ((obs - exp) ** 2 / exp).sum() < 69.0
    # rows with one: the n - 1 others are equally likely
    for v in (0, 5):
        sel = excl[row] == v
        obs = np.bincount(vals[sel], minlength=n)
        assert obs[v] == 0
        exp = sel.sum() / (n - 1)
        assert ((np.delete(obs, v) - exp) ** 2 / exp).sum() < 69.0


def test_sorted_draws_order_statistics_match_uniform_ones():
    # the smallest of k uniform draws from n values: E = sum_j P(min >= j) = sum (1 - j/n)^k
    rng = np.random.default_rng(3)
    n, k, rows = 1000, 10, 20000
    vals = _sorted_draws(rng, np.full(rows, k), n, None).reshape(rows, k)
    expect = sum((1 - j / n) ** k for j in range(1, n))
    sd = np.sqrt(n * n / (k * k))  # the minimum's sd is about n / k
    assert abs(vals[:, 0].mean() - expect) < 5 * sd / np.sqrt(rows)


def test_sorted_draws_in_uint32_are_the_int64_values():
    """The narrow dtype the rules use changes no value (the drawn connectivity stays)."""
    counts = np.array([0, 5, 300, 1, 0, 77])
    excl = np.array([-1, 3, -1, 0, 2, 36])
    for ex in (None, excl):
        wide = _sorted_draws(np.random.default_rng(8), counts, 37, ex)
        narrow = _sorted_draws(np.random.default_rng(8), counts, 37, ex, np.uint32)
        assert wide.dtype == np.int64 and narrow.dtype == np.uint32
        assert np.array_equal(wide, narrow)


def test_sorted_draws_refuse_an_empty_candidate_set():
    rng = np.random.default_rng(0)
    with pytest.raises(BuildError, match="empty population"):
        _sorted_draws(rng, np.array([2]), 1, np.array([0]))
    assert len(_sorted_draws(rng, np.array([0, 0]), 1, np.array([0, -1]))) == 0


# ------------------------------------------------------------------ the source index
@pytest.mark.parametrize("index_budget", [5, 1 << 20])
def test_source_index_from_memory_equals_from_file(tmp_path, index_budget):
    rng = np.random.default_rng(9)
    n_src, n_trg, n = 23, 31, 2000
    trg = np.sort(rng.integers(0, n_trg, n))
    src = rng.integers(0, n_src, n)
    order = np.lexsort((src, trg))
    src, trg = src[order], trg[order]
    w = rng.normal(size=n)
    types = [{"edge_type_id": 1, "model_template": "static_synapse"}]
    for name, in_memory in (("mem", 1 << 30), ("file", 0)):
        with EdgeStreamWriter(
            tmp_path / f"{name}.h5",
            tmp_path / f"{name}.csv",
            "e",
            "s",
            "t",
            n_edges=n,
            n_source_nodes=n_src,
            n_target_nodes=n_trg,
            edge_types=types,
            columns={"syn_weight": "f8"},
            chunk_edges=64,
            index_budget=index_budget,
            runs_in_memory=in_memory,
        ) as wr:
            for a in range(0, n, 333):  # appends that split targets and source runs
                wr.append(src[a : a + 333], trg[a : a + 333], 1, {"syn_weight": w[a : a + 333]})
    assert (tmp_path / "mem.h5").read_bytes() == (tmp_path / "file.h5").read_bytes()
    pop = libsonata.EdgeStorage(str(tmp_path / "mem.h5")).open_population("e")
    for s in range(n_src):
        assert sorted(pop.efferent_edges([s]).flatten()) == list(np.flatnonzero(src == s))


# ------------------------------------------------------------------ whole builds
@pytest.fixture(scope="module")
def small_microcircuit(tmp_path_factory):
    """The microcircuit at scale 0.02 (about 120 k edges), blocks of at most 4096 edges
    (several per projection) so that drawing ahead has something to overlap."""
    mp = pytest.MonkeyPatch()
    mp.setattr(rules, "EDGE_BUDGET", 4096)
    spec = load_spec(MICROCIRCUIT, overrides={"scale": 0.02})
    out = tmp_path_factory.mktemp("mc")
    NetworkBuilder(spec, chunk_edges=1 << 22).build(out / "ref")
    yield spec, out, mp
    mp.undo()


@pytest.mark.parametrize("chunk,ahead", [(1000, 0), (77, 2), (1 << 22, 5)])
def test_chunks_and_threads_do_not_change_a_byte(small_microcircuit, monkeypatch, chunk, ahead):
    spec, out, _ = small_microcircuit
    assert rules.EDGE_BUDGET == 4096
    monkeypatch.setattr(spec_build, "EDGE_PREFETCH_BLOCKS", ahead)
    dest = out / f"c{chunk}_a{ahead}"
    NetworkBuilder(spec, chunk_edges=chunk).build(dest)
    ref = _digests(out / "ref")
    assert ref == _digests(dest)
    assert sum(k.endswith("_edges.h5") for k in ref) == len(spec.connections)


@pytest.mark.parametrize(
    "threads,budget,fork",
    [(1, 3e7, True), (2, 3e7, True), (3, 3e7, True), (2, 3e7, False), (3, 1e4, True), (4, 0, True)],
)
def test_parallel_projections_do_not_change_a_byte(
    small_microcircuit, monkeypatch, threads, budget, fork
):
    # budget 3e7: the whole build fits, so with fork the projections go to processes;
    # 1e4: too big for processes, only small projections share the thread pool;
    # 0: every projection runs alone
    spec, out, _ = small_microcircuit
    monkeypatch.setattr(spec_build, "PARALLEL_EDGE_BUDGET", budget)
    monkeypatch.setattr(spec_build, "FORK_PROJECTIONS", fork)
    dest = out / f"t{threads}_b{budget:g}_f{int(fork)}"
    res = NetworkBuilder(spec, threads=threads).build(dest)
    assert _digests(out / "ref") == _digests(dest)
    assert list(res.counts) == [k for k in res.counts if k.startswith("nodes.")] + [
        f"edges.{c}" for c in spec.connections
    ]


def _pids_of_writers(monkeypatch, log: Path) -> None:
    """Make every projection append the id of the process that writes it to ``log``."""
    real = spec_build.NetworkBuilder._write_projection

    def logged(self, cname, type_id, root):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()} {cname}\n")
        return real(self, cname, type_id, root)

    monkeypatch.setattr(spec_build.NetworkBuilder, "_write_projection", logged)


def test_a_small_build_shares_its_projections_between_processes(
    small_microcircuit, monkeypatch, tmp_path
):
    spec, out, _ = small_microcircuit
    _pids_of_writers(monkeypatch, tmp_path / "pids")
    NetworkBuilder(spec, threads=2).build(out / "forked")
    rows = [ln.split() for ln in (tmp_path / "pids").read_text().splitlines()]
    assert sorted(c for _, c in rows) == sorted(spec.connections)  # each written once
    pids = {p for p, _ in rows}
    assert len(pids) == 2 and str(os.getpid()) in pids  # this process and one worker
    assert _digests(out / "ref") == _digests(out / "forked")
    # one thread, or a build above the budget: no worker process
    (tmp_path / "pids").unlink()
    monkeypatch.setattr(spec_build, "PARALLEL_EDGE_BUDGET", 1e4)
    NetworkBuilder(spec, threads=2).build(out / "threaded")
    assert {ln.split()[0] for ln in (tmp_path / "pids").read_text().splitlines()} == {
        str(os.getpid())
    }


def test_an_error_in_a_worker_process_is_raised_here_and_writes_nothing(
    small_microcircuit, monkeypatch
):
    spec, out, _ = small_microcircuit
    real = spec_build.NetworkBuilder._write_projection
    here = os.getpid()

    def failing(self, cname, type_id, root):
        if os.getpid() != here:  # in the worker only: its first projection fails
            raise BuildError(f"{cname} failed in a worker")
        return real(self, cname, type_id, root)

    monkeypatch.setattr(spec_build.NetworkBuilder, "_write_projection", failing)
    with pytest.raises(BuildError, match=r"^\w+ failed in a worker$"):
        NetworkBuilder(spec, threads=2).build(out / "failed_worker")
    assert not (out / "failed_worker").exists()

    def dying(self, cname, type_id, root):
        if os.getpid() != here:
            os._exit(3)  # a worker killed without a word
        return real(self, cname, type_id, root)

    monkeypatch.setattr(spec_build.NetworkBuilder, "_write_projection", dying)
    with pytest.raises(BuildError, match="worker process ended without a result"):
        NetworkBuilder(spec, threads=2).build(out / "dead_worker")
    assert not (out / "dead_worker").exists()

    class Unpicklable(Exception):  # a local class: pickle cannot name it
        pass

    def odd(self, cname, type_id, root):
        if os.getpid() != here:
            raise Unpicklable("disk on fire")
        return real(self, cname, type_id, root)

    monkeypatch.setattr(spec_build.NetworkBuilder, "_write_projection", odd)
    with pytest.raises(BuildError, match="^Unpicklable: disk on fire$"):
        NetworkBuilder(spec, threads=2).build(out / "odd_worker")
    assert not (out / "odd_worker").exists()


@pytest.mark.parametrize("fork", [True, False])
def test_an_error_in_a_parallel_projection_is_reported_once_and_writes_nothing(
    small_microcircuit, monkeypatch, fork
):
    spec, out, _ = small_microcircuit
    monkeypatch.setattr(spec_build, "FORK_PROJECTIONS", fork)
    real = spec_build.NetworkBuilder._write_projection
    started = []

    def failing(self, cname, type_id, root):
        started.append(cname)
        if cname == "L4E_to_L4I":
            raise BuildError("L4E_to_L4I failed")
        return real(self, cname, type_id, root)

    monkeypatch.setattr(spec_build.NetworkBuilder, "_write_projection", failing)
    with pytest.raises(BuildError, match="^L4E_to_L4I failed$"):
        NetworkBuilder(spec, threads=2).build(out / f"failed_par{int(fork)}")
    assert not (out / f"failed_par{int(fork)}").exists()
    # threads: nothing submitted after the failure; processes: the worker's share is not
    # seen here, and this process stops at its next projection or is not the one that failed
    assert len(started) < len(spec.connections)


def test_small_microcircuit_is_valid_sonata_with_sorted_edges(small_microcircuit):
    spec, out, _ = small_microcircuit
    name = "L4E_to_L23E"
    path = out / "ref" / "network" / f"{name}_edges.h5"
    pop = libsonata.EdgeStorage(str(path)).open_population(name)
    with h5py.File(path) as h5:
        g = h5["edges"][name]
        s = g["source_node_id"][()].astype(np.int64)
        t = g["target_node_id"][()].astype(np.int64)
        w = g["0"]["syn_weight"][()]
    assert len(s) == pop.size > 1000
    assert np.all((np.diff(t) > 0) | ((np.diff(t) == 0) & (np.diff(s) >= 0)))
    assert np.all(w > 0)  # keep_sign
    for node in (0, 7, int(s[len(s) // 2])):
        assert sorted(pop.efferent_edges([node]).flatten()) == list(np.flatnonzero(s == node))
        assert sorted(pop.afferent_edges([node]).flatten()) == list(np.flatnonzero(t == node))


def test_an_error_in_a_block_drawn_ahead_reaches_the_caller(small_microcircuit, monkeypatch):
    spec, out, _ = small_microcircuit
    monkeypatch.setattr(spec_build, "EDGE_PREFETCH_BLOCKS", 2)
    real = rules.Projection.generate

    def failing(self, b):
        if b == 2:
            raise BuildError("block 2 failed")
        return real(self, b)

    monkeypatch.setattr(rules.Projection, "generate", failing)
    with pytest.raises(BuildError, match="block 2 failed"):
        NetworkBuilder(spec).build(out / "failed")
    assert not (out / "failed").exists()


def test_files_in_the_staging_directory_are_written_in_place(small_microcircuit, monkeypatch):
    # the staging directory is renamed into place whole: its files need no rename of their own
    spec, out, _ = small_microcircuit
    renames = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((a, b)), real(a, b))[1])
    NetworkBuilder(spec).build(out / "in_place")
    assert [Path(b).name for _, b in renames] == [".l5net-manifest.json"]
    assert _digests(out / "in_place") == _digests(out / "ref")


def test_a_writer_that_fails_in_staging_leaves_no_file(tmp_path):
    from builder.core.output import Staging, in_staging

    with Staging(tmp_path / "out") as st:
        target = st.dir / "e.h5"
        assert in_staging(target) and not in_staging(tmp_path / "e.h5")
        with pytest.raises(ValueError, match="declared"):
            with EdgeStreamWriter(
                target,
                st.dir / "e.csv",
                "e",
                "s",
                "t",
                n_edges=3,
                n_source_nodes=2,
                n_target_nodes=2,
                edge_types=[{"edge_type_id": 1}],
            ) as w:
                w.append(np.array([0]), np.array([0]), 1)
        assert not target.exists() and not list(st.dir.iterdir())
    assert not in_staging(target)


def test_no_file_of_a_build_is_made_empty_first_and_truncated(small_microcircuit, monkeypatch):
    # ext4 starts the writeback of a file truncated to 0 when it is closed (auto_da_alloc):
    # inside the staging directory every writer creates its file itself
    import builtins

    spec, out, _ = small_microcircuit
    truncated = []
    real_open, real_os_open = builtins.open, os.open

    def os_open(path, flags, *a, **kw):
        if flags & os.O_TRUNC and os.path.exists(path):
            truncated.append(str(path))
        return real_os_open(path, flags, *a, **kw)

    def py_open(file, mode="r", *a, **kw):
        if isinstance(file, (str, Path)) and "w" in mode and os.path.exists(file):
            truncated.append(str(file))
        return real_open(file, mode, *a, **kw)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", py_open)
    NetworkBuilder(spec, threads=1).build(out / "no_trunc")
    assert truncated == []
    assert _digests(out / "no_trunc") == _digests(out / "ref")


def test_build_network_runs_openblas_on_one_thread_unless_told(tmp_path):
    import subprocess
    import sys

    code = (
        "import os, sys; from builder.commands.cli import main; "
        "rc = main([sys.argv[1], '--check', '--set', 'scale=0.01']); "
        "print(os.environ.get('OPENBLAS_NUM_THREADS')); sys.exit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = str(REPO)
    for given, expected in ((None, "1"), ("2", "2")):
        if given is not None:
            env["OPENBLAS_NUM_THREADS"] = given
        res = subprocess.run(
            [sys.executable, "-c", code, str(MICROCIRCUIT)],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines()[-1] == expected


@pytest.mark.parametrize("threads", [1, 2])
def test_a_config_that_fails_while_the_workers_write_edges_writes_nothing(
    small_microcircuit, monkeypatch, tmp_path, threads
):
    # the configs and the resolved spec are written alongside the edge files (here, while a
    # forked worker writes its share): their error is raised, the worker is stopped and reaped
    spec, out, _ = small_microcircuit
    _pids_of_writers(monkeypatch, tmp_path / "pids")

    def failing(*args, **kw):
        raise BuildError("configs failed")

    monkeypatch.setattr(spec_build, "write_configs", failing)
    with pytest.raises(BuildError, match="^configs failed$"):
        NetworkBuilder(spec, threads=threads).build(out / f"failed_cfg{threads}")
    assert not (out / f"failed_cfg{threads}").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".l5net-staging")]
    log = tmp_path / "pids"
    pids = {ln.split()[0] for ln in log.read_text().splitlines()} if log.exists() else set()
    # the configs come before this process's own edge files (a worker may have started its)
    assert str(os.getpid()) not in pids and len(pids) <= threads - 1
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no worker left behind


def test_the_alongside_files_are_the_same_whatever_the_processes(small_microcircuit):
    spec, out, _ = small_microcircuit
    NetworkBuilder(spec, threads=1).build(out / "one")
    NetworkBuilder(spec, threads=2).build(out / "two")
    ref = _digests(out / "ref")
    assert _digests(out / "one") == ref == _digests(out / "two")
    assert {"spec.json", "circuit_config.json", "simulation_config.json"} <= set(ref)


def test_a_build_without_spike_files_never_imports_h5py(tmp_path):
    """Node and edge files are written by builder.core.h5write: a build-network process that
    writes no spike file does not pay for h5py's import (~20 ms of every run of a sweep)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from builder.commands.cli import main\n"
        f"rc = main([{str(MICROCIRCUIT)!r}, '-o', {str(tmp_path / 'net')!r}, '-q',"
        " '--set', 'scale=0.01'])\n"
        "assert rc == 0\n"
        "print(sorted(m for m in sys.modules if m == 'h5py' or m.startswith('h5py.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    with h5py.File(tmp_path / "net" / "network" / "L23E_to_L23E_edges.h5") as h5:
        assert h5["edges/L23E_to_L23E/source_node_id"].shape[0] > 0


@pytest.mark.parametrize("threads", [1, 2])
def test_projections_share_the_source_index_workspaces(small_microcircuit, monkeypatch, threads):
    """Every projection of a build writes its source index in a workspace of the build's
    (one per projection in flight, not one per projection); the files stay the same."""
    spec, out, _ = small_microcircuit
    seen: list[object] = []
    real = spec_build.EdgeStreamWriter

    def recording(*a, **kw):
        seen.append(kw["workspace"])
        return real(*a, **kw)

    monkeypatch.setattr(spec_build, "EdgeStreamWriter", recording)
    monkeypatch.setattr(spec_build, "FORK_PROJECTIONS", False)  # threads: seen here
    builder = NetworkBuilder(spec, threads=threads)
    dest = out / f"shared_ws{threads}"
    builder.build(dest)
    assert len(seen) == len(spec.connections) and all(ws is not None for ws in seen)
    assert 1 <= len({id(ws) for ws in seen}) <= threads
    assert builder._index_spaces is None  # the buffers go when the build ends
    assert _digests(out / "ref") == _digests(dest)
