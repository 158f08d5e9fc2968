"""BMTK BioNet configuration files: simulation_config.json, circuit_config.json, node_sets.json.

Every path is relative to the output directory through the manifest (``$BASE_DIR`` is "."),
so an output directory can be moved or copied as a whole. BMTK resolves "." against the
working directory, so the runner changes into the config's directory before loading it;
libsonata resolves it against the config file itself. The layout also satisfies libsonata's
``SimulationConfig`` and ``CircuitConfig`` (``run.random_seed``, report ``type``...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RunSettings",
    "Report",
    "SpikeInput",
    "ClampInput",
    "simulation_config",
    "circuit_config",
    "node_sets",
    "rate_window_ms",
    "expand_config_path",
    "RUN_BIONET_SCRIPT",
    "SPIKES_MODULE",
    "CLAMP_MODULE",
]

#: Spike-input module written into the config: libsonata's name (BMTK 1.2 calls it "sonata";
#: :mod:`builder.simulators.neuron.bionet_ext` translates).
SPIKES_MODULE = "synapse_replay"
#: Our current clamp from a waveform file (neither BMTK nor libsonata has one).
CLAMP_MODULE = "FileIClamp"

#: ``run_bionet.py`` written into every output directory: BMTK's standard flow.
RUN_BIONET_SCRIPT = """\
\"\"\"Run this network with BMTK BioNet's standard flow (one point process per synapse).

    python run_bionet.py [simulation_config.json]

BMTK alone cannot run it: the synapse models pyr2pyr / int2pyr, the spike-input module name
'synapse_replay' (libsonata's), the file current clamp and reports away from the soma are
ours. builder.simulators.neuron.bionet_ext adds them around BMTK's Config -> BioNetwork.from_config
-> BioSimulator.from_config -> run. 'run-network .' runs the same network faster.
\"\"\"

import sys

from builder.simulators.neuron.bionet_ext import run_bionet

if __name__ == "__main__":
    run_bionet(sys.argv[1] if len(sys.argv) > 1 else "simulation_config.json")
"""


@dataclass(frozen=True)
class RunSettings:
    tstop_ms: float
    dt_ms: float
    dL_um: float
    spike_threshold_mV: float
    nsteps_block: int
    random_seed: int
    celsius: float
    v_init_mV: float
    tstart_ms: float = 0.0
    #: When the inputs begin (``time.start``) and the start-up transient excluded from rates.
    input_start_ms: float = 0.0
    warmup_ms: float = 0.0


@dataclass(frozen=True)
class Report:
    variable: str
    sections: str
    cells: str


@dataclass(frozen=True)
class SpikeInput:
    population: str
    file: str  # relative to the output directory


@dataclass(frozen=True)
class ClampInput:
    file: str  # relative to the output directory
    node_set: str


@dataclass
class CircuitFiles:
    """Network files (relative paths) and their populations' SONATA types."""

    nodes: list[tuple[str, str]] = field(default_factory=list)  # (h5, csv)
    edges: list[tuple[str, str]] = field(default_factory=list)
    node_populations: list[dict[str, str]] = field(default_factory=list)  # {name: type}
    edge_populations: list[dict[str, str]] = field(default_factory=list)


def _base(path: str) -> str:
    return f"$BASE_DIR/{path}"


def simulation_config(
    run: RunSettings,
    spike_inputs: list[SpikeInput],
    reports: list[Report],
    clamp: ClampInput | None = None,
) -> dict[str, Any]:
    """The BioNet simulation config as a JSON-ready dict."""
    inputs: dict[str, Any] = {}
    for s in spike_inputs:
        inputs[f"{s.population}_spikes"] = {
            "input_type": "spikes",
            "module": SPIKES_MODULE,
            "spike_file": _base(s.file),
            "node_set": s.population,
            "delay": 0.0,
            "duration": run.tstop_ms - run.tstart_ms,
        }
    if clamp is not None:
        inputs["file_current_clamp"] = {
            "input_type": "current_clamp",
            "module": CLAMP_MODULE,
            "input_file": _base(clamp.file),
            "node_set": clamp.node_set,
            "delay": 0.0,
            "duration": run.tstop_ms - run.tstart_ms,
        }
    rep: dict[str, Any] = {}
    for r in reports:
        rep[f"{r.variable}_{r.sections}"] = {
            "type": "compartment",
            "cells": r.cells,
            "variable_name": r.variable,
            "module": "membrane_report",
            "sections": r.sections,
            "file_name": f"{r.variable}_{r.sections}.h5",
            "start_time": run.tstart_ms,
            "end_time": run.tstop_ms,
            "dt": run.dt_ms,
            "enabled": True,
        }
    return {
        "manifest": {"$BASE_DIR": ".", "$OUTPUT_DIR": "$BASE_DIR/output"},
        "target_simulator": "NEURON",
        "run": {
            "tstart": run.tstart_ms,
            "tstop": run.tstop_ms,
            "dt": run.dt_ms,
            "dL": run.dL_um,
            "spike_threshold": run.spike_threshold_mV,
            "nsteps_block": run.nsteps_block,
            "random_seed": run.random_seed,
            "input_start_ms": run.input_start_ms,
            "warmup_ms": run.warmup_ms,
        },
        "conditions": {"celsius": run.celsius, "v_init": run.v_init_mV},
        "inputs": inputs,
        "output": {
            "log_file": "log.txt",
            "output_dir": "$OUTPUT_DIR",
            "spikes_file": "spikes.h5",
            "spikes_sort_order": "by_time",
            "overwrite_output_dir": True,
        },
        "reports": rep,
        "node_sets_file": "$BASE_DIR/node_sets.json",
        "network": "$BASE_DIR/circuit_config.json",
    }


def circuit_config(files: CircuitFiles, components: dict[str, str]) -> dict[str, Any]:
    """The circuit config; ``components`` maps BMTK component keys to relative folders."""
    return {
        "manifest": {
            "$BASE_DIR": ".",
            "$NETWORK_DIR": "$BASE_DIR/network",
            "$COMPONENTS_DIR": "$BASE_DIR/components",
        },
        "components": {k: f"$COMPONENTS_DIR/{v}" for k, v in components.items()},
        "networks": {
            "nodes": [
                {
                    "nodes_file": _base(h5),
                    "node_types_file": _base(csv),
                    "populations": {
                        name: _node_pop_props(t, components) for name, t in pops.items()
                    },
                }
                for (h5, csv), pops in zip(files.nodes, files.node_populations, strict=True)
            ],
            "edges": [
                {
                    "edges_file": _base(h5),
                    "edge_types_file": _base(csv),
                    "populations": {name: {"type": t} for name, t in pops.items()},
                }
                for (h5, csv), pops in zip(files.edges, files.edge_populations, strict=True)
            ],
        },
    }


def _node_pop_props(kind: str, components: dict[str, str]) -> dict[str, str]:
    props = {"type": kind}
    if kind == "biophysical":
        # libsonata requires these two for biophysical populations
        for key, default in (
            ("morphologies_dir", "morphologies"),
            ("biophysical_neuron_models_dir", "biophysical_neuron_models"),
        ):
            props[key] = f"$COMPONENTS_DIR/{components.get(key, default)}"
    return props


def node_sets(populations: list[str], biophysical: str) -> dict[str, Any]:
    """One node set per population, plus ``biophysical_nodes``."""
    sets: dict[str, Any] = {p: {"population": p} for p in populations}
    sets["biophysical_nodes"] = {"population": biophysical}
    return sets


def rate_window_ms(config: dict[str, Any]) -> tuple[float, float]:
    """The span over which output rates are computed: [input start + warm-up, tstop] (ms).

    ``config`` is a simulation config as written by :func:`simulation_config`; configs written
    before the warm-up existed count from ``run.tstart``. The span is empty (start == stop)
    when the warm-up covers the whole run.

    Raises
    ------
    KeyError, TypeError, ValueError
        ``run.tstop`` missing or not a number.
    """
    run = config["run"]
    tstop = float(run["tstop"])
    start = float(run.get("input_start_ms", run.get("tstart", 0.0)))
    start += float(run.get("warmup_ms", 0.0))
    return min(start, tstop), tstop


def expand_config_path(value: str, manifest: dict[str, Any], base: Path) -> Path:
    """A config path with its ``$VARIABLES`` expanded (nested ones too; longest names first,
    so ``$BASE_DIR_2`` is not read as ``$BASE_DIR``), absolute against ``base``."""
    for _ in range(10):
        if "$" not in value:
            break
        for key in sorted(manifest, key=len, reverse=True):
            value = value.replace(key, str(manifest[key]))
    path = Path(value)
    return path if path.is_absolute() else base / path
