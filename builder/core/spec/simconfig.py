"""SONATA configs of a spec network: circuit, simulation and node sets.

The circuit config lists one nodes file and one edges file per population and connection, with
the component folders (``point_neuron_models_dir`` for NEST, morphologies and model folders for
biophysical cells). The simulation config holds the run settings, the spike inputs (SONATA
``spikes`` inputs read from ``inputs/``), the current clamps that SONATA knows (``dc`` as a
``linear`` clamp), the reports (membrane, extracellular) and, under ``generators``, the
simulator-side Poisson sources that SONATA has no input type for (``poisson_generator`` at a
rate per target cell, and the rate ``pulse``): a runner creates those itself. Paths go through
the manifest, so the output directory can be moved as a whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..sonata import write_csv_table
from .model import _sel_pop

if TYPE_CHECKING:
    from .build import NetworkBuilder

__all__ = ["write_configs", "electrode_positions"]


def _base(path: str) -> str:
    return f"$BASE_DIR/{path}"


def _sonata_type(model: str) -> str:
    return {"point": "point_neuron", "biophysical": "biophysical", "virtual": "virtual"}[model]


def electrode_positions(electrodes: dict[str, Any]) -> list[list[float]]:
    """Electrode positions (um): given, or a linear probe of ``n`` contacts ``pitch_um`` apart."""
    if "positions_um" in electrodes:
        return [list(map(float, p)) for p in electrodes["positions_um"]]
    probe = electrodes["probe"]
    origin = [float(v) for v in probe.get("origin_um", [0.0, 0.0, 0.0])]
    axis = "xyz".index(probe.get("axis", "z"))
    out = []
    for i in range(int(probe["n"])):
        p = list(origin)
        p[axis] += i * float(probe["pitch_um"])
        out.append(p)
    return out


def write_configs(
    builder: NetworkBuilder, root: Path, spike_files: dict[str, str], comp: dict[str, str]
) -> None:
    """Write circuit_config.json, simulation_config.json and node_sets.json into ``root``."""
    spec = builder.spec
    data = spec.data
    run = data["run"]
    models = {name: builder.nodes[name].model for name in spec.populations}
    simulator = run.get("simulator") or ("NEURON" if "biophysical" in models.values() else "NEST")
    nodes = [
        {
            "nodes_file": _base(f"network/{name}_nodes.h5"),
            "node_types_file": _base(f"network/{name}_node_types.csv"),
            "populations": {name: _pop_props(models[name], comp)},
        }
        for name in spec.populations
    ]
    edges = [
        {
            "edges_file": _base(f"network/{cname}_edges.h5"),
            "edge_types_file": _base(f"network/{cname}_edge_types.csv"),
            "populations": {
                cname: {
                    "type": "chemical"
                    if models[_sel_pop(con["target"])] == "biophysical"
                    else "point"
                }
            },
        }
        for cname, con in spec.connections.items()
    ]
    circuit = {
        "manifest": {"$BASE_DIR": ".", "$COMPONENTS_DIR": "$BASE_DIR/components"},
        "components": {k: f"$COMPONENTS_DIR/{v}" for k, v in sorted(comp.items())},
        "networks": {"nodes": nodes, "edges": edges},
    }
    tstop = float(run["duration_ms"])
    inputs: dict[str, Any] = {}
    for iname, inp in spec.inputs.items():
        if inp["type"] == "spikes":
            inputs[iname] = {
                "input_type": "spikes",
                "module": "sonata",
                "input_file": _base(spike_files[iname]),
                "node_set": inp["population"],
                "spike_file": _base(spike_files[iname]),
                "delay": 0.0,
                "duration": tstop,
            }
        elif inp["type"] == "dc":
            start = float(inp.get("start_ms", 0.0))
            stop = float(inp.get("stop_ms", tstop))
            inputs[iname] = {
                "input_type": "current_clamp",
                "module": "linear",
                "amp_start": float(inp["amplitude_pA"]) / 1000.0,  # SONATA clamps are in nA
                "amp": float(inp["amplitude_pA"]) / 1000.0,
                "delay": start,
                "duration": stop - start,
                "node_set": _node_set_name(iname, inp),
            }
    generators = []
    for iname, inp in spec.inputs.items():
        if inp["type"] in ("poisson_generator", "pulse"):
            generators.append(
                {
                    "name": iname,
                    "type": inp["type"],
                    "node_set": _node_set_name(iname, inp),
                    **(
                        {"rate_hz": float(inp["rate_hz"])}
                        if "rate_hz" in inp
                        else {"rate_property": inp["rate_property"]}
                    ),
                    "indegree": int(inp.get("indegree", 1)),
                    "weight": float(inp["weight"]),
                    "delay_ms": float(inp.get("delay_ms", 1.0)),
                    "start_ms": float(inp.get("start_ms", 0.0)),
                    "stop_ms": float(inp.get("stop_ms", tstop)),
                    "synapse_model": "static_synapse",
                }
            )
    reports: dict[str, Any] = {}
    rep = data.get("reports", {})
    for i, m in enumerate(rep.get("membrane", [])):
        for var in m["variables"]:
            key = f"{var}_{i}"
            reports[key] = {
                "type": "compartment",
                "cells": f"report_{i}",
                "variable_name": var,
                "module": "membrane_report",
                "sections": m.get("sections", "soma"),
                "file_name": f"{key}.h5",
                "start_time": 0.0,
                "end_time": tstop,
                "dt": float(m.get("dt_ms", run["dt_ms"])),
                "enabled": True,
            }
    if "electrodes" in rep:
        pos = electrode_positions(rep["electrodes"])
        write_csv_table(
            root / "components" / "electrodes.csv",
            ["channel", "x_pos", "y_pos", "z_pos"],
            [np.arange(len(pos))] + [np.array([p[j] for p in pos]) for j in range(3)],
            sep=" ",
        )
        reports["ecp"] = {
            "type": "lfp",
            "cells": "biophysical_nodes",
            "variable_name": "v",
            "module": "extracellular",
            "electrode_positions": _base("components/electrodes.csv"),
            "sigma": float(rep["electrodes"].get("sigma_S_per_m", 0.3)),
            "method": rep["electrodes"].get("method", "line_source"),
            "file_name": "ecp.h5",
            "dipole_file": "dipole.h5" if rep["electrodes"].get("dipole", True) else None,
            "enabled": True,
        }
        if rep["electrodes"].get("contributions", False):
            reports["ecp"]["contributions_dir"] = "ecp_contributions"
    output: dict[str, Any] = {
        "output_dir": "$OUTPUT_DIR",
        "log_file": "log.txt",
        "spikes_file": "spikes.h5",
        "spikes_sort_order": "by_time",
        "overwrite_output_dir": True,
    }
    if not rep.get("spikes", True):
        output.pop("spikes_file")
    sim = {
        "manifest": {"$BASE_DIR": ".", "$OUTPUT_DIR": "$BASE_DIR/output"},
        "target_simulator": simulator,
        "run": {
            "tstart": 0.0,
            "tstop": tstop,
            "dt": float(run["dt_ms"]),
            "random_seed": int(spec.seed),
            "spike_threshold": float(run.get("spike_threshold_mV", -15.0)),
            "nsteps_block": 5000,
        },
        "conditions": {
            "celsius": float(run.get("celsius", 34.0)),
            "v_init": float(run.get("v_init_mV", -70.0)),
        },
        "threads": int(run.get("threads", 1)),
        "inputs": inputs,
        "generators": generators,
        "output": output,
        "reports": reports,
        "node_sets_file": "$BASE_DIR/node_sets.json",
        "network": "$BASE_DIR/circuit_config.json",
    }
    if "warmup_ms" in run:
        sim["run"]["warmup_ms"] = float(run["warmup_ms"])
    if simulator == "NEST":  # where NEST readers (ours, BMTK PointNet) look for threads
        sim["run"]["n_thread"] = int(run.get("threads", 1))
    sets: dict[str, Any] = {name: {"population": name} for name in spec.populations}
    bio = [n for n, m in models.items() if m == "biophysical"]
    if bio:
        sets["biophysical_nodes"] = {"population": bio[0]} if len(bio) == 1 else {"population": bio}
    for iname, inp in spec.inputs.items():
        if "target" in inp and isinstance(inp["target"], dict) and inp["target"].get("where"):
            sets[f"input_{iname}"] = {
                "population": inp["target"]["population"],
                **inp["target"]["where"],
            }
    for i, m in enumerate(rep.get("membrane", [])):
        s: dict[str, Any] = {"population": _sel_pop(m["cells"])}
        if isinstance(m["cells"], dict):
            s.update(m["cells"].get("where", {}))
        if "node_ids" in m:
            s["node_id"] = list(m["node_ids"])
        sets[f"report_{i}"] = s
    for name, obj in (
        ("circuit_config.json", circuit),
        ("simulation_config.json", sim),
        ("node_sets.json", sets),
    ):
        (root / name).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def _node_set_name(iname: str, inp: dict[str, Any]) -> str:
    tgt = inp["target"]
    if isinstance(tgt, dict) and tgt.get("where"):
        return f"input_{iname}"
    return _sel_pop(tgt)


def _pop_props(model: str, comp: dict[str, str]) -> dict[str, str]:
    props = {"type": _sonata_type(model)}
    if model == "biophysical":
        for key, default in (
            ("morphologies_dir", "morphologies"),
            ("biophysical_neuron_models_dir", "biophysical_neuron_models"),
        ):
            props[key] = f"$COMPONENTS_DIR/{comp.get(key, default)}"
    return props
