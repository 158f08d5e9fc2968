"""A point-neuron project made the way BMTK's own examples make one runs in ``run-network``.

The project is built by BMTK's ``NetworkBuilder`` (random 0/1 ``nsyns`` per pair, a virtual
input population, type-level weights and delays, ``nest:`` model templates), its input spikes
by BMTK's ``PoissonSpikeGenerator``, and its configs are written as BMTK's examples write them:
a top-level ``config.json`` naming a circuit file and a simulation file, manifests built on
``${configdir}``, a ``multimeter_report``. Our runner must read all of it and give the spike
count BMTK PointNet gives on the same folder (the network is deterministic; the two loaders
differ only in how off-grid input times are delivered, a shift of at most one time step).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from builder.core.checks import PathResolver, merge_simulation_child

ROOT = Path(__file__).resolve().parents[1]

BUILD = """
import sys
import numpy as np
from bmtk.builder import NetworkBuilder
from bmtk.utils.reports.spike_trains import PoissonSpikeGenerator

np.random.seed(3)

def pairs(source, target, p=0.1):
    if source["node_id"] == target["node_id"]:
        return None
    return np.random.binomial(1, p)

cx = NetworkBuilder("cortex")
for name, ei, n in (("LIF_exc", "e", 80), ("LIF_inh", "i", 40)):
    cx.add_nodes(N=n, ei=ei, pop_name=name, model_type="point_neuron",
                 model_template="nest:iaf_psc_delta", dynamics_params=f"{name}.json")
cx.add_edges(source={"ei": "e"}, connection_rule=pairs, syn_weight=2.0, delay=1.5,
             dynamics_params="ExcToAll.json", model_template="static_synapse")
cx.add_edges(source={"ei": "i"}, connection_rule=pairs, syn_weight=-1.5, delay=1.5,
             dynamics_params="InhToAll.json", model_template="static_synapse")
cx.build()
cx.save(output_dir="network")
th = NetworkBuilder("thalamus")
th.add_nodes(N=100, pop_name="input", model_type="virtual")
th.add_edges(target=cx.nodes(), connection_rule=pairs, syn_weight=4.2, delay=1.5,
             dynamics_params="ExcToAll.json", model_template="static_synapse")
th.build()
th.save(output_dir="network")
psg = PoissonSpikeGenerator(population="thalamus", seed=1)
psg.add(node_ids=range(100), firing_rate=15.0, times=(0.001, 1.0))
psg.to_sonata("inputs/thalamus_spikes.h5")
"""

POINTNET = """
import os, sys
from bmtk.simulator import pointnet
os.chdir(sys.argv[1])
conf = pointnet.Config.from_json(sys.argv[2])
conf.build_env()
net = pointnet.PointNetwork.from_config(conf)
sim = pointnet.PointSimulator.from_config(conf, net)
sim.run()
"""

LIF = {"I_e": 0.0, "tau_m": 44.9, "C_m": 239.0, "t_ref": 3.0, "E_L": -78.0, "V_th": -43.0}


def _networks(populations: tuple[str, str], target: str) -> dict[str, list[dict[str, str]]]:
    """``networks`` as BMTK's NetworkBuilder names the files: nodes per population, edges
    from each population onto ``target``."""
    net = "$NETWORK_DIR"
    return {
        "nodes": [
            {"nodes_file": f"{net}/{p}_nodes.h5", "node_types_file": f"{net}/{p}_node_types.csv"}
            for p in populations
        ],
        "edges": [
            {
                "edges_file": f"{net}/{p}_{target}_edges.h5",
                "edge_types_file": f"{net}/{p}_{target}_edge_types.csv",
            }
            for p in populations
        ],
    }


def _bmtk_project(folder: Path, output: str) -> Path:
    """Write the project into ``folder``; returns its top-level config."""
    (folder / "inputs").mkdir(parents=True)
    models = folder / "components"
    (models / "cell_models").mkdir(parents=True)
    (models / "synaptic_models").mkdir()
    for name, reset in (("LIF_exc", -55.0), ("LIF_inh", -60.0)):
        (models / "cell_models" / f"{name}.json").write_text(json.dumps(LIF | {"V_reset": reset}))
    for name in ("ExcToAll", "InhToAll"):
        (models / "synaptic_models" / f"{name}.json").write_text("{}")
    proc = subprocess.run(
        [sys.executable, "-c", BUILD], cwd=folder, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    circuit = {
        "manifest": {"$BASE_DIR": "${configdir}", "$NETWORK_DIR": "$BASE_DIR/network"},
        "components": {
            "point_neuron_models_dir": "$BASE_DIR/components/cell_models",
            "synaptic_models_dir": "$BASE_DIR/components/synaptic_models",
        },
        "networks": _networks(("cortex", "thalamus"), "cortex"),
    }
    simulation = {
        "manifest": {"$BASE_DIR": "${configdir}", "$OUTPUT_DIR": f"$BASE_DIR/{output}"},
        "run": {"tstop": 1000.0, "dt": 0.1},
        "inputs": {
            "thalamus_spikes": {
                "input_type": "spikes",
                "module": "sonata",
                "input_file": "$BASE_DIR/inputs/thalamus_spikes.h5",
                "node_set": "thalamus",
            }
        },
        "reports": {
            "membrane_potential": {
                "cells": {"population": "cortex", "node_id": [0, 20, 100]},
                "variable_name": "V_m",
                "module": "multimeter_report",
                "sections": "soma",
            }
        },
        "output": {"log_file": "log.txt", "spikes_file": "spikes.h5", "output_dir": "$OUTPUT_DIR"},
        "target_simulator": "NEST",
    }
    (folder / "circuit_config.json").write_text(json.dumps(circuit, indent=2))
    sim_name = f"simulation_{output}.json"
    (folder / sim_name).write_text(json.dumps(simulation, indent=2))
    top = folder / f"config_{output}.json"
    top.write_text(
        json.dumps(
            {
                "manifest": {"$BASE_DIR": "${configdir}"},
                "network": "$BASE_DIR/circuit_config.json",
                "simulation": f"$BASE_DIR/{sim_name}",
            }
        )
    )
    return top


def test_bmtk_builtin_variables_and_a_manifest_override(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    res = PathResolver({"$A": "${configdir}/a", "$workingdir": "/elsewhere"}, tmp_path, cfg)
    assert res("$A/x.h5") == tmp_path / "a" / "x.h5"
    assert res("${configfname}") == cfg
    assert res("$workingdir/y") == Path("/elsewhere/y")  # the manifest's own entry wins
    assert PathResolver(None, tmp_path)("${workingdir}/z") == Path(os.getcwd()) / "z"


def test_a_simulation_child_file_overrides_the_top_level(tmp_path: Path) -> None:
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "s.json").write_text(
        json.dumps(
            {
                "manifest": {"$OUT": "${configdir}/out"},
                "run": {"tstop": 5.0},
                "output": {"output_dir": "$OUT"},
            }
        )
    )
    top = {"run": {"tstop": 1.0}, "simulation": "sim/s.json", "network": "c.json"}
    problems: list[str] = []
    merged = merge_simulation_child(top, tmp_path / "config.json", problems)
    assert problems == []
    assert merged["run"] == {"tstop": 5.0} and merged["network"] == "c.json"
    assert merged["output"]["output_dir"] == f"{tmp_path / 'sim'}/out"
    missing = merge_simulation_child({"simulation": "nope.json"}, tmp_path / "c.json", problems)
    assert "simulation" in missing and problems == [
        f"{tmp_path / 'nope.json'}: simulation config file is missing"
    ]


@pytest.mark.nest
@pytest.mark.bmtk
def test_a_bmtk_pointnet_project_runs_as_it_is(tmp_path: Path) -> None:
    pytest.importorskip("nest", reason="nest-simulator is not installed (pip install .[nest])")
    pytest.importorskip("bmtk")
    project = tmp_path / "point_120cells"
    ours = _bmtk_project(project, "output")
    theirs = project / "config_output_pn.json"
    # the same project with PointNet's output elsewhere
    sim = json.loads((project / "simulation_output.json").read_text())
    sim["manifest"]["$OUTPUT_DIR"] = "$BASE_DIR/output_pn"
    sim["reports"] = {}
    (project / "simulation_output_pn.json").write_text(json.dumps(sim))
    top = json.loads(ours.read_text()) | {"simulation": "$BASE_DIR/simulation_output_pn.json"}
    theirs.write_text(json.dumps(top))

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = [sys.executable, "-m", "builder.commands.run_cli", str(ours), "-q", "--no-progress"]
    proc = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run(
        [sys.executable, "-c", POINTNET, str(project), theirs.name],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    import libsonata

    ours_spikes = libsonata.SpikeReader(str(project / "output" / "spikes.h5"))["cortex"].get()
    with h5py.File(project / "output_pn" / "spikes.h5") as f:  # gzipped: libsonata cannot
        counts = {"output": len(ours_spikes), "output_pn": f["spikes/cortex/node_ids"].size}
    assert counts["output"] > 1000  # the inputs drive the network (about 18 Hz per cell)
    assert abs(counts["output"] - counts["output_pn"]) <= 0.02 * counts["output_pn"], counts
    with h5py.File(project / "output" / "membrane_potential.h5") as f:
        assert sorted(f["report/cortex/mapping/node_ids"][:].tolist()) == [0, 20, 100]
        v = f["report/cortex/data"][:]
    assert v.shape == (10000, 3) and -80 < v.min() and v.max() < -40
    rates = (project / "output" / "rates.csv").read_text()
    assert "LIF_exc" in rates and "LIF_inh" in rates


BIONET_BUILD = """
import numpy as np
from bmtk.builder import NetworkBuilder
from bmtk.utils.reports.spike_trains import PoissonSpikeGenerator

np.random.seed(5)
v1 = NetworkBuilder("v1")
v1.add_nodes(N=3, pop_name="Scnn1a", x=np.arange(3) * 50.0, y=np.zeros(3), z=np.zeros(3),
             rotation_angle_yaxis=np.random.uniform(0, 2 * np.pi, 3),
             model_type="biophysical", model_template="ctdb:Biophys1.hoc",
             model_processing="aibs_perisomatic", dynamics_params="472363762_fit.json",
             morphology="Scnn1a_473845048_m.swc", ei="e")
v1.add_edges(source={"ei": "e"}, target={"ei": "e"},
             connection_rule=lambda s, t: 0 if s.node_id == t.node_id else 3,
             syn_weight=5e-5, delay=2.0, target_sections=["basal", "apical"],
             distance_range=[30.0, 150.0], dynamics_params="AMPA_ExcToExc.json",
             model_template="exp2syn")
v1.build()
v1.save(output_dir="network")
lgn = NetworkBuilder("lgn")
lgn.add_nodes(N=20, pop_name="tON", model_type="virtual", ei="e")
lgn.add_edges(source=lgn.nodes(), target=v1.nodes(), connection_rule=lambda s, t: 5,
              syn_weight=4e-4, delay=2.0, target_sections=["basal", "apical"],
              distance_range=[0.0, 150.0], dynamics_params="AMPA_ExcToExc.json",
              model_template="exp2syn")
lgn.build()
lgn.save(output_dir="network")
psg = PoissonSpikeGenerator(population="lgn", seed=2)
psg.add(node_ids=range(20), firing_rate=20.0, times=(0.001, 0.5))
psg.to_sonata("inputs/lgn_spikes.h5")
"""

BIONET_RUN = """
import sys
from bmtk.simulator import bionet
conf = bionet.Config.from_json(sys.argv[1])
conf.build_env()
net = bionet.BioNetwork.from_config(conf)
sim = bionet.BioSimulator.from_config(conf, network=net)
sim.run()
"""


def _bionet_config(
    project: Path, components: Path, mechanisms: Path, output: str, nsteps_block: int = 0
) -> Path:
    """A BioNet config as BMTK users write one: one file, ``target_simulator`` BioNet
    (``nsteps_block`` 0: BMTK's default, which stock BioNet cannot run)."""
    cfg = {
        "manifest": {
            "$BASE_DIR": "${configdir}",
            "$NETWORK_DIR": "$BASE_DIR/network",
            "$COMPONENTS_DIR": str(components),
            "$OUTPUT_DIR": f"$BASE_DIR/{output}",
        },
        "target_simulator": "BioNet",
        "run": {
            "tstop": 500.0,
            "dt": 0.1,
            "dL": 20.0,
            "spike_threshold": -15,
            "nsteps_block": nsteps_block,
        },
        "conditions": {"celsius": 34.0, "v_init": -80},
        "inputs": {
            "lgn_spikes": {
                "input_type": "spikes",
                "module": "sonata",
                "input_file": "$BASE_DIR/inputs/lgn_spikes.h5",
                "node_set": "lgn",
            }
        },
        "output": {"log_file": "log.txt", "output_dir": "$OUTPUT_DIR", "spikes_file": "spikes.h5"},
        "components": {
            "morphologies_dir": "$COMPONENTS_DIR/morphologies",
            "synaptic_models_dir": "$COMPONENTS_DIR/synaptic_models",
            "mechanisms_dir": str(mechanisms),
            "biophysical_neuron_models_dir": "$COMPONENTS_DIR/biophysical_neuron_models",
            "templates_dir": "$COMPONENTS_DIR/templates",
        },
        "networks": _networks(("v1", "lgn"), "v1"),
    }
    path = project / f"config_{output}.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


@pytest.mark.neuron
@pytest.mark.bmtk
def test_a_bmtk_bionet_project_runs_as_it_is(tmp_path: Path, sim_env: dict[str, str]) -> None:
    """BMTK's own components (Allen cells, Exp2Syn inputs placed by BioNet), used from the
    installed package; ``--no-settle`` starts at v_init as BioNet does: the same spikes."""
    pytest.importorskip("neuron")
    bmtk = pytest.importorskip("bmtk")
    from builder.core.mechanisms import compiled_mechanisms

    components = Path(bmtk.__file__).parent / "utils" / "scripts" / "bionet"
    project = tmp_path / "bio_3cells"
    (project / "inputs").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-c", BIONET_BUILD],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # our runner compiles the project's NMODL itself; stock BioNet loads a compiled folder
    ours = _bionet_config(project, components, components / "mechanisms", "output")
    compiled = compiled_mechanisms(sorted((components / "mechanisms" / "modfiles").glob("*.mod")))
    stock = _bionet_config(project, components, compiled, "output_stock", nsteps_block=5000)

    env = dict(sim_env, PYTHONPATH=str(ROOT))
    run = [
        sys.executable,
        "-m",
        "builder.commands.run_cli",
        str(ours),
        "-q",
        "--no-progress",
        "--no-settle",
        "--plot",
    ]
    proc = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run(
        [sys.executable, "-c", BIONET_RUN, str(stock)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    spikes = {}
    for out in ("output", "output_stock"):
        with h5py.File(project / out / "spikes.h5") as f:
            g = f["spikes/v1"]
            order = np.lexsort((g["timestamps"][:], g["node_ids"][:]))
            spikes[out] = (g["node_ids"][:][order], g["timestamps"][:][order])
    assert spikes["output"][0].size >= 20  # every cell is driven
    assert set(spikes["output"][0].tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(spikes["output"][0], spikes["output_stock"][0])
    np.testing.assert_allclose(spikes["output"][1], spikes["output_stock"][1], atol=1e-6)
    plots = sorted(p.name for p in (project / "output" / "plots").glob("*.png"))
    assert plots == ["raster.png", "rate_histograms.png"]  # no membrane report asked
    # the same project with its config named as ours are: still drawn as a foreign network
    from builder.analysis.plots import plot_run

    (project / "simulation_config.json").write_text(ours.read_text())
    pngs = plot_run(project, tmp_path / "plots")
    assert sorted(p.name for p in pngs) == ["raster.png", "rate_histograms.png"]
