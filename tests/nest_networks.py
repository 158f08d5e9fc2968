"""Small point-neuron SONATA networks for the NEST tests, written with our own writers.

:func:`write_point_network` writes a directory ``run-network`` runs in NEST: a population
``cells`` of iaf_psc_exp neurons of two node types (``exc``, ``inh``; per-node initial ``V_m``),
recurrent edges (per-edge ``syn_weight`` and ``delay``), a virtual population ``ext`` driving
them through edges with ``nsyns`` (BMTK multiplies the weight by it) from a SONATA spikes input
that holds a spike at t = 0, optionally a Poisson generator, and a ``V_m`` report of 3 cells.
:func:`write_tf_network` writes the AdExp transfer-function protocol (one cell per grid point,
Poisson conductance inputs at rates read from node columns).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from builder.core.sonata import write_edges, write_nodes, write_spikes

LIF = {
    "C_m": 250.0,
    "tau_m": 10.0,
    "t_ref": 2.0,
    "E_L": -65.0,
    "V_th": -50.0,
    "V_reset": -65.0,
    "tau_syn_ex": 0.5,
    "tau_syn_in": 0.5,
}

#: The RS cell of the transfer-function protocol (aeif_cond_exp; V_peak = V_th + 5 Delta_T).
ADEX_RS = {
    "C_m": 200.0,
    "g_L": 10.0,
    "E_L": -65.0,
    "V_th": -50.0,
    "V_reset": -65.0,
    "t_ref": 5.0,
    "Delta_T": 2.0,
    "a": 4.0,
    "b": 20.0,
    "tau_w": 500.0,
    "V_peak": -40.0,
    "E_ex": 0.0,
    "E_in": -80.0,
    "tau_syn_ex": 5.0,
    "tau_syn_in": 5.0,
}


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")


def _configs(
    d: Path,
    nodes: list[str],
    edges: list[str],
    sim: dict[str, Any],
    node_sets: dict[str, Any],
) -> None:
    circuit = {
        "manifest": {"$BASE_DIR": ".", "$NETWORK_DIR": "$BASE_DIR/network"},
        "components": {
            "point_neuron_models_dir": "$BASE_DIR/components/point_neuron_models",
            "synaptic_models_dir": "$BASE_DIR/components/synaptic_models",
        },
        "networks": {
            "nodes": [
                {
                    "nodes_file": f"$NETWORK_DIR/{p}_nodes.h5",
                    "node_types_file": f"$NETWORK_DIR/{p}_node_types.csv",
                }
                for p in nodes
            ],
            "edges": [
                {
                    "edges_file": f"$NETWORK_DIR/{e}_edges.h5",
                    "edge_types_file": f"$NETWORK_DIR/{e}_edge_types.csv",
                }
                for e in edges
            ],
        },
    }
    sim = {
        "manifest": {"$BASE_DIR": ".", "$OUTPUT_DIR": "$BASE_DIR/output"},
        "target_simulator": "NEST",
        "network": "$BASE_DIR/circuit_config.json",
        "node_sets_file": "$BASE_DIR/node_sets.json",
        "output": {"output_dir": "$OUTPUT_DIR", "log_file": "log.txt", "spikes_file": "spikes.h5"},
        **sim,
    }
    _write_json(d / "circuit_config.json", circuit)
    _write_json(d / "simulation_config.json", sim)
    _write_json(d / "node_sets.json", node_sets)


def write_point_network(
    d: Path,
    *,
    n_exc: int = 80,
    n_inh: int = 20,
    n_ext: int = 40,
    tstop_ms: float = 500.0,
    seed: int = 3,
    threads: int = 1,
    p_conn: float = 0.1,
    ext_rate_hz: float = 20.0,
    generator: bool = True,
    model: str = "iaf_psc_exp",
    params: dict[str, Any] | None = None,
    inh_weight: float = -4 * 87.8,
    spike_at_zero: bool = True,
    exc_weight: float = 87.8,
    ext_weight: float = 60.0,
    bg_weight: float = 87.8,
    ports: bool = False,
) -> Path:
    """Write the small network into ``d`` (see the module docstring); returns ``d``."""
    rng = np.random.default_rng(seed)
    net = d / "network"
    net.mkdir(parents=True, exist_ok=True)
    n = n_exc + n_inh
    _write_json(d / "components" / "point_neuron_models" / "lif.json", params or LIF)
    _write_json(d / "components" / "synaptic_models" / "static.json", {})  # BMTK needs one
    write_nodes(
        net / "cells_nodes.h5",
        net / "cells_node_types.csv",
        "cells",
        np.r_[np.full(n_exc, 100), np.full(n_inh, 101)],
        [
            {
                "node_type_id": t,
                "pop_name": name,
                "model_type": "point_neuron",
                "model_template": f"nest:{model}",
                "dynamics_params": "lif.json",
            }
            for t, name in ((100, "exc"), (101, "inh"))
        ],
        {"V_m": rng.uniform(-65.0, -55.0, n)},
    )
    write_nodes(
        net / "ext_nodes.h5",
        net / "ext_node_types.csv",
        "ext",
        np.full(n_ext, 100),
        [{"node_type_id": 100, "pop_name": "ext", "model_type": "virtual"}],
    )
    pairs = rng.random((n, n)) < p_conn
    src, trg = np.nonzero(pairs)
    weight = np.where(src < n_exc, exc_weight, inh_weight) * rng.uniform(0.9, 1.1, src.size)
    delay = np.where(src < n_exc, 1.5, 0.8)
    write_edges(
        net / "cells_cells_edges.h5",
        net / "cells_cells_edge_types.csv",
        "cells_cells",
        "cells",
        "cells",
        src,
        trg,
        np.where(src < n_exc, 100, 101),
        [
            {
                "edge_type_id": t,
                "model_template": "static_synapse",
                "dynamics_params": "static.json",
                **({"receptor_type": port} if ports else {}),
            }
            for t, port in ((100, 1), (101, 2))
        ],
        {"syn_weight": weight, "delay": delay},
        n_source_nodes=n,
        n_target_nodes=n,
    )
    es = np.repeat(np.arange(n_ext), 10)
    et = rng.integers(0, n, es.size)
    write_edges(
        net / "ext_cells_edges.h5",
        net / "ext_cells_edge_types.csv",
        "ext_cells",
        "ext",
        "cells",
        es,
        et,
        np.full(es.size, 100),
        [
            {
                "edge_type_id": 100,
                "model_template": "static_synapse",
                "dynamics_params": "static.json",
                "delay": 1.0,
                **({"receptor_type": 1} if ports else {}),
            }
        ],
        {"syn_weight": np.full(es.size, ext_weight), "nsyns": np.full(es.size, 2, dtype=np.uint32)},
        n_source_nodes=n_ext,
        n_target_nodes=n,
    )
    k = rng.poisson(ext_rate_hz * tstop_ms / 1000.0, n_ext)
    ids = np.repeat(np.arange(n_ext), k)
    ts = np.round(rng.uniform(0.0, tstop_ms, ids.size), 3)
    if spike_at_zero:
        ts[0] = 0.0  # NEST cannot emit at t = 0: the runner moves it to dt, with a note
    else:
        ts = np.maximum(ts, 0.1)
    (d / "inputs").mkdir(exist_ok=True)
    write_spikes(d / "inputs" / "ext_spikes.h5", "ext", ids, ts)
    generators = []
    if generator:
        generators.append(
            {
                "name": "bg",
                "type": "poisson_generator",
                "node_set": "cells",
                "rate_hz": 8.0,
                "indegree": 1000,
                "weight": bg_weight,
                "delay_ms": 1.5,
                **({"receptor_type": 1} if ports else {}),
            }
        )
    sim = {
        "run": {
            "tstart": 0.0,
            "tstop": tstop_ms,
            "dt": 0.1,
            "random_seed": seed,
            "n_thread": threads,
        },
        "inputs": {
            "ext_spikes": {
                "input_type": "spikes",
                "module": "sonata",
                "input_file": "$BASE_DIR/inputs/ext_spikes.h5",
                "node_set": "ext",
            }
        },
        "generators": generators,
        "reports": {
            "v_report": {
                "cells": "recorded",
                "variable_name": "V_m",
                "module": "membrane_report",
                "sections": "soma",
                "file_name": "v_report.h5",
                "dt": 0.5,
            }
        },
    }
    node_sets = {
        "cells": {"population": "cells"},
        "ext": {"population": "ext"},
        "recorded": {"population": "cells", "node_id": [0, 1, n - 1]},
    }
    _configs(d, ["cells", "ext"], ["cells_cells", "ext_cells"], sim, node_sets)
    return d


def write_tf_network(
    d: Path,
    fe_hz: list[float],
    fi_hz: list[float],
    *,
    repeats: int = 1,
    tstop_ms: float = 5000.0,
    warmup_ms: float = 500.0,
    seed: int = 1,
    threads: int = 1,
    params: dict[str, Any] | None = None,
) -> Path:
    """One aeif_cond_exp cell per (fe, fi) point (``repeats`` cells each): 400 fe and 100 fi
    Poisson events/s of 1 nS / 5 nS conductance quanta."""
    fe = np.repeat(np.asarray(fe_hz, float), repeats)
    fi = np.repeat(np.asarray(fi_hz, float), repeats)
    net = d / "network"
    net.mkdir(parents=True, exist_ok=True)
    _write_json(d / "components" / "point_neuron_models" / "rs.json", params or ADEX_RS)
    (d / "components" / "synaptic_models").mkdir(parents=True, exist_ok=True)
    write_nodes(
        net / "tf_nodes.h5",
        net / "tf_node_types.csv",
        "tf",
        np.full(fe.size, 100),
        [
            {
                "node_type_id": 100,
                "pop_name": "RS",
                "model_type": "point_neuron",
                "model_template": "nest:aeif_cond_exp",
                "dynamics_params": "rs.json",
            }
        ],
        {"fe_hz": fe, "fi_hz": fi},
    )
    gen = {"type": "poisson_generator", "node_set": "tf", "delay_ms": 0.1}
    sim = {
        "run": {
            "tstart": 0.0,
            "tstop": tstop_ms,
            "dt": 0.1,
            "random_seed": seed,
            "n_thread": threads,
            "warmup_ms": warmup_ms,
        },
        "inputs": {},
        "generators": [
            {**gen, "name": "exc", "rate_property": "fe_hz", "indegree": 400, "weight": 1.0},
            {**gen, "name": "inh", "rate_property": "fi_hz", "indegree": 100, "weight": -5.0},
        ],
        "reports": {},
    }
    _configs(d, ["tf"], [], sim, {"tf": {"population": "tf"}})
    return d
