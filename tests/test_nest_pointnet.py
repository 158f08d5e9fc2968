"""The same built network runs in BMTK PointNet and gives the same spike counts as our loader.

The network is driven by SONATA spike inputs only (PointNet knows no ``generators``) and has
no spike at t = 0 (PointNet refuses those); every other feature of the small network is used:
two node types with per-node ``V_m``, per-edge weights and delays, a type-level delay and
``nsyns`` (both loaders multiply the weight by it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nest_networks import write_point_network

pytest.importorskip("nest", reason="nest-simulator is not installed (pip install .[nest])")
pytest.importorskip("bmtk")

from builder.core.sonata_read import read_spikes  # noqa: E402
from builder.simulators.nest.runner import main as nest_main  # noqa: E402

pytestmark = [pytest.mark.nest, pytest.mark.bmtk]

ROOT = Path(__file__).resolve().parents[1]

POINTNET = """
import os, sys
from bmtk.simulator import pointnet
os.chdir(sys.argv[1])
conf = pointnet.Config.from_json("simulation_config.json")
conf.build_env()
net = pointnet.PointNetwork.from_config(conf)
sim = pointnet.PointSimulator.from_config(conf, net)
sim.run()
"""


def test_pointnet_gives_the_same_spike_counts(tmp_path: Path) -> None:
    ours = write_point_network(
        tmp_path / "ours",
        generator=False,
        n_ext=1000,
        ext_rate_hz=55.0,
        spike_at_zero=False,
        tstop_ms=1000.0,
    )
    theirs = tmp_path / "pointnet"
    shutil.copytree(ours, theirs)
    cfg = json.loads((theirs / "simulation_config.json").read_text())
    cfg["reports"] = {}
    (theirs / "simulation_config.json").write_text(json.dumps(cfg))
    assert nest_main([str(ours), "-q"]) == 0
    proc = subprocess.run(
        [sys.executable, "-c", POINTNET, str(theirs)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYNEST_QUIET": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids_a, ts_a = read_spikes(ours / "output" / "spikes.h5", "cells")
    ids_b, ts_b = read_spikes(theirs / "output" / "spikes.h5", "cells")
    assert ids_a.size > 500  # the network is active
    for sel in (slice(0, 80), slice(80, 100)):  # exc, inh
        a = np.bincount(ids_a, minlength=100)[sel].sum()
        b = np.bincount(ids_b, minlength=100)[sel].sum()
        # a deterministic network (no Poisson generators): differences come only from where
        # each loader starts V_m; allow 3 Poisson SDs of the pair
        assert abs(int(a) - int(b)) <= 3 * np.sqrt(a + b), (sel, a, b)


#: A point network as a spec: spikes from a virtual population only (PointNet knows no
#: generators), no edge dynamics_params anywhere, threads and a warm-up in the run section.
SPEC = {
    "format": "l5net-spec/1",
    "name": "pn",
    "seed": 4,
    "populations": {
        "ext": {"count": 200, "model": {"type": "virtual"}},
        "E": {
            "count": 40,
            "model": {"type": "point", "nest_model": "iaf_psc_exp", "params": {"tau_m": 10.0}},
        },
    },
    "connections": {
        "ext_to_E": {
            "source": "ext",
            "target": "E",
            "rule": {"name": "fixed_indegree", "indegree": 50},
            "weight": 300.0,
            "delay_ms": 1.5,
        },
        "E_to_E": {
            "source": "E",
            "target": "E",
            "rule": {"name": "pairwise_bernoulli", "p": 0.1},
            "weight": 20.0,
            "delay_ms": 1.0,
        },
    },
    "inputs": {
        "bg": {
            "type": "spikes",
            "population": "ext",
            "train": {"kind": "poisson", "rate_hz": 20.0},
            "start_ms": 1.0,
        }
    },
    "run": {"duration_ms": 500, "simulator": "NEST", "threads": 2, "warmup_ms": 100},
}


def test_a_spec_build_runs_in_pointnet_unchanged(tmp_path: Path) -> None:
    """Point edge types name an (empty) synapse params file, so PointNet loads the build as
    written; the run section carries PointNet's ``n_thread`` and the rates window's warm-up."""
    spec = tmp_path / "pn.json"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "pn"
    build = [sys.executable, str(ROOT / "build_network.py"), str(spec), "-o", str(out), "-q"]
    proc = subprocess.run(build, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((out / "simulation_config.json").read_text())
    assert cfg["run"]["n_thread"] == 2 and cfg["run"]["warmup_ms"] == 100.0
    assert json.loads((out / "components" / "synaptic_models" / "no_params.json").read_text()) == {}
    proc = subprocess.run(
        [sys.executable, "-c", POINTNET, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYNEST_QUIET": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids, _ = read_spikes(out / "output" / "spikes.h5", "E")
    assert ids.size > 0
    # our runner on the same build: 2 threads from the config, rates after the warm-up
    assert nest_main([str(out), "-q"]) == 0
    log = (out / "output" / "log.txt").read_text()
    assert "2 thread(s)" in log, log[:500]
    rates = (out / "output" / "rates.csv").read_text().splitlines()
    assert rates[0].split(",")[-2:] == ["window_start_ms", "window_stop_ms"]
    assert rates[1].split(",")[-2:] == ["100", "500"]
