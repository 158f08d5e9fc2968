"""`SimulationBuilder`: params file -> SONATA network, input rasters and BioNet configs.

This module wires the layers together for the L5 recipe: params validation
(:mod:`builder.recipes.l5_params`), cell components (:mod:`builder.core.components`), the
segment table (:mod:`builder.core.segments`, derived by
:mod:`builder.simulators.neuron.celltable` when not cached, which is why this module sits in the
command layer), the recipe (:mod:`builder.recipes.l5`), the writers (:mod:`builder.core.sonata`,
:mod:`builder.core.simconfig`) and safe output (:mod:`builder.core.output`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import simconfig
from ..core.components import CellSpec, resolve_cell, synaptic_model_path
from ..core.errors import ComponentError, ParamsError
from ..core.mechanisms import included_files
from ..core.network import Network, write_network
from ..core.output import Staging
from ..core.overrides import apply_overrides
from ..core.segments import SegmentTable
from ..core.synmodels import load_model_file
from ..recipes.l5 import (
    BIO_NODE_SET,
    BIO_POP,
    SYNAPSE_FILES,
    L5Build,
    L5Model,
    build_l5_network,
    l5_model,
    l5_reports,
    l5_run_settings,
)
from ..recipes.l5_params import load_params, resolve_relative, validate_params

__all__ = ["SimulationBuilder", "BuildResult", "DEFAULT_SEED", "LENGTH_MISMATCH_TOLERANCE"]

log = logging.getLogger("builder")

DEFAULT_SEED = 123
#: Relative difference between the params' lengths and the cell's above which we warn.
LENGTH_MISMATCH_TOLERANCE = 0.10
NETWORK_DIR = "network"
COMPONENTS_DIR = "components"
SEGMENTS_FILE = "segments.csv"
#: BMTK's standard flow for this output (see :mod:`builder.simulators.neuron.bionet_ext`).
RUN_BIONET = "run_bionet.py"


@dataclass
class BuildResult:
    """What a build wrote and measured."""

    outdir: Path
    seed: int
    files: list[str]
    counts: dict[str, Any]
    n_edges: dict[str, int]
    n_spikes: dict[str, int]
    lengths_um: dict[str, float]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        c = self.counts
        lines = [
            f"built {self.outdir} (seed {self.seed}) in {self.seconds:.2f} s",
            f"  excitatory inputs: {c['n_dend_exc']} basal + {c['n_apic_exc']} apical cells in "
            f"{c['n_groups_dend']} + {c['n_groups_apic']} functional groups "
            f"({c['clust_per_group']} clusters each)",
            f"  inhibitory inputs: {c['n_soma_inh']} soma + {c['n_prox_dend_inh']} proximal basal, "
            f"{c['n_dend_inh']} distal basal + {c['n_apic_inh']} apical cells",
            "  synapses: " + ", ".join(f"{k} {v}" for k, v in self.n_edges.items()),
            "  input spikes: " + ", ".join(f"{k} {v}" for k, v in self.n_spikes.items()),
        ]
        return "\n".join(lines)


class SimulationBuilder:
    """Build the L5 input network described by a params file.

    Parameters
    ----------
    params : str, path or dict
        A params JSON file (validated against the shipped schema) or an already loaded dict.
    seed : int, optional
        Build seed; defaults to the params' ``seed`` key, else 123.
    cwd : path, optional
        Directory against which legacy relative paths are resolved (default: the current one).
    overrides : dict, optional
        Dotted-key replacements applied before validation, e.g. ``{"time.stop": 2}``.

    Examples
    --------
    >>> b = SimulationBuilder("params/L5NetParams.json", seed=7)  # doctest: +SKIP
    >>> result = b.build("/tmp/run7")                             # doctest: +SKIP
    """

    def __init__(
        self,
        params: str | os.PathLike | dict[str, Any],
        seed: int | None = None,
        *,
        cwd: str | os.PathLike | None = None,
        overrides: dict[str, Any] | None = None,
    ):
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        if isinstance(params, dict):
            source = str(params.get("_source", "<params>"))
            data = {k: v for k, v in params.items() if k != "_source"}
            if overrides:
                data = apply_overrides(data, overrides, source)
            self.params = validate_params(data, source, cwd=self.cwd)
            self.params["_source"] = source
        else:
            self.params = load_params(params, cwd=self.cwd, overrides=overrides)
        if seed is None:
            seed = self.params.get("seed")
        self.seed = DEFAULT_SEED if seed is None else int(seed)
        if self.seed < 0:
            raise ParamsError(self.params["_source"], [f"seed: {self.seed} is negative; use >= 0"])
        self.warnings: list[str] = []
        self._cell: CellSpec | None = None
        self._table: SegmentTable | None = None
        self._lengths: dict[str, float] | None = None

    # ---------------------------------------------------------------- preparation
    @property
    def cell(self) -> CellSpec:
        if self._cell is None:
            self._cell = resolve_cell(self.params, cwd=self.cwd)
            for note in self._cell.notes:
                self.warnings.append(note)
                log.warning(note)
        return self._cell

    @property
    def segment_table(self) -> SegmentTable:
        """The cell's segment table: the params' CSV, or derived from the cell (cached)."""
        if self._table is None:
            seg_file = self.params["cell"].get("segments_file")
            if seg_file is not None:
                path = resolve_relative(self.params, seg_file, cwd=self.cwd)
                if path is None:
                    raise ComponentError(f"cell.segments_file: {seg_file!r} not found")
                self._table = SegmentTable.from_csv(path)
            else:
                from ..simulators.neuron.celltable import segment_table

                self._table = segment_table(self.cell, float(self.params["dL"]), cwd=self.cwd)
        return self._table

    def lengths_um(self) -> dict[str, float]:
        """Dendritic lengths for the counts: the params' ``lengths`` or the cell's own."""
        if self._lengths is None:
            self._lengths = self._lengths_um()
        return dict(self._lengths)

    def _lengths_um(self) -> dict[str, float]:
        given = self.params.get("lengths")
        table = self.segment_table
        measured = table.dendritic_lengths() if table.has_lengths else None
        if given is None:
            if measured is None:
                raise ComponentError(
                    "lengths: not given in the params and the segment table has no Length column "
                    "to compute them from"
                )
            return measured
        if measured is not None:
            for key in ("basal_dist", "basal_prox", "apic"):
                g, m = float(given[key]), measured[key]
                if m > 0 and abs(g - m) / m > LENGTH_MISMATCH_TOLERANCE:
                    msg = (
                        f"lengths.{key}: params say {g:g} um but the cell has {m:.0f} um "
                        f"({100 * (g - m) / m:+.0f} %); counts use the params' value"
                    )
                    self.warnings.append(msg)
                    log.warning(msg)
        return {k: float(given[k]) for k in ("basal_dist", "basal_prox", "apic")}

    def synapse_models(self) -> dict[str, str]:
        """Synaptic-model JSON name -> the model_template (``level_of_detail``) it names.

        Each file is checked in full (:func:`builder.core.synmodels.load_model_file`: a bad key or
        value is a :class:`ParamsError` naming the file); what a legacy-style file means is
        logged as one warning per file.
        """
        out = {}
        for name in SYNAPSE_FILES:
            path = synaptic_model_path(self.params, name, cwd=self.cwd)
            model, plan = load_model_file(path)
            note = plan.warning(str(path))
            if note is not None and note not in self.warnings:
                self.warnings.append(note)
                log.warning(note)
            out[name] = model
        return out

    def cell_node_type(self) -> dict[str, Any]:
        cell = self.cell
        return {
            "model_template": self.params["cell"]["model_template"],
            "model_processing": cell.model_processing,
            "morphology": cell.morphology.name if cell.morphology else None,
            "dynamics_params": cell.dynamics_params.name if cell.dynamics_params else None,
        }

    def model(self) -> L5Model:
        """The params translated into the L5 model (:func:`builder.recipes.l5.l5_model`)."""
        return l5_model(self.params, self.lengths_um())

    def network(self) -> L5Build:
        """Build the network in memory (no files written)."""
        return build_l5_network(
            self.model(),
            self.segment_table,
            self.seed,
            self.synapse_models(),
            self.cell_node_type(),
        )

    def check(self) -> dict[str, Any]:
        """Validate everything a build needs without drawing rasters or writing files."""
        model = self.model()
        counts: dict[str, Any] = model.counts.as_dict()
        counts.update({f"nodes.{k}": v for k, v in model.population_sizes().items()})
        counts.update(
            {f"expected_synapses.{k}": round(v) for k, v in model.expected_synapses().items()}
        )
        self.synapse_models()
        self.check_recording()
        return counts

    def check_recording(self) -> None:
        """Check ``record_cellvars`` against the cell: every group exists, every variable too.

        The groups and the range variables of each come from the cell itself
        (:func:`builder.simulators.neuron.celltable.cell_variables`, derived with the segment table
        and cached with it). ``v`` at the soma needs no look-up.

        Raises
        ------
        ParamsError
            Naming ``record_cellvars.vars[i]`` / ``locs[i]``, the value and the valid ones.
        """
        rc = self.params["record_cellvars"]
        pairs = list(zip(rc["vars"], rc["locs"], strict=True))
        if all(pair == ("v", "soma") for pair in pairs):
            return
        from ..simulators.neuron.celltable import cell_variables

        groups = cell_variables(self.cell, float(self.params["dL"]), cwd=self.cwd)
        problems = []
        for i, (var, loc) in enumerate(pairs):
            if loc not in groups:
                problems.append(
                    f"record_cellvars.locs[{i}]: {loc!r} is not a section group of the cell "
                    f"{self.params['cell']['model_template']} (it has: {', '.join(groups)})"
                )
                continue
            valid = groups[loc]["variables"]
            if var not in valid:
                problems.append(
                    f"record_cellvars.vars[{i}]: {var!r} is not a range variable of every "
                    f"section of {loc!r} ({groups[loc]['n_sections']} sections); valid: "
                    f"{', '.join(valid)}"
                )
        if problems:
            raise ParamsError(self.params["_source"], problems)

    # ---------------------------------------------------------------- building
    def build(self, outdir: str | os.PathLike = ".", *, force: bool = False) -> BuildResult:
        """Build and write everything into ``outdir`` (see :mod:`builder.core.output`)."""
        t0 = time.perf_counter()
        self.synapse_models()  # a bad synaptic-model file fails before anything is staged
        self.check_recording()
        staging = Staging(outdir, force=force)
        with staging:
            built = self.network()
            files = self._write(staging, built.network)
            staging.commit()
        counts = built.counts.as_dict()
        counts.update({f"n_groups_{k}": v for k, v in built.n_groups.items()})
        return BuildResult(
            outdir=staging.outdir,
            seed=self.seed,
            files=files,
            counts=counts,
            n_edges={e.source: e.size for e in built.network.edges},
            n_spikes={k: s.size for k, s in built.network.spikes.items()},
            lengths_um=self.lengths_um(),
            seconds=time.perf_counter() - t0,
            warnings=list(self.warnings),
        )

    def _write(self, staging: Staging, net: Network) -> list[str]:
        written = write_network(net, staging.path, NETWORK_DIR)
        circuit, spike_inputs = written.circuit, written.spike_inputs
        # the cell's segment table (SPEC section 4), for analysis and plots of synapse locations
        self.segment_table.to_csv(staging.path(SEGMENTS_FILE))

        components = self._copy_components(staging)
        clamp = self._copy_clamp(staging)
        run = l5_run_settings(self.params, self.seed)
        reports = l5_reports(self.params)
        configs = {
            "simulation_config.json": simconfig.simulation_config(
                run, spike_inputs, reports, clamp
            ),
            "circuit_config.json": simconfig.circuit_config(circuit, components),
            "node_sets.json": simconfig.node_sets(list(net.nodes), BIO_POP),
        }
        for name, obj in configs.items():
            staging.path(name).write_text(json.dumps(obj, indent=2) + "\n")
        staging.path(RUN_BIONET).write_text(simconfig.RUN_BIONET_SCRIPT)
        return staging.staged_files()

    def _copy_components(self, staging: Staging) -> dict[str, str]:
        """Copy the components this network uses into ``components/`` (self-contained output)."""
        cell = self.cell
        keys = {
            "templates": "templates_dir",
            "morphologies": "morphologies_dir",
            "biophysical_neuron_models": "biophysical_neuron_models_dir",
            "synaptic_models": "synaptic_models_dir",
            "mechanisms": "mechanisms_dir",
        }
        used: dict[str, str] = {}

        def put(kind: str, src: Path, sub: str = "") -> None:
            dest = f"{COMPONENTS_DIR}/{kind}/{sub}{src.name}"
            shutil.copyfile(src, staging.path(dest))
            used[keys[kind]] = kind

        if cell.template_file is not None:
            # BMTK loads every .hoc file of the templates folder (a legacy template calls procs
            # or templates defined in its siblings, e.g. Hay's L5PCbiophys3.hoc)
            for hoc in sorted(Path(cell.template_file).parent.glob("*.hoc")):
                put("templates", hoc)
        if cell.morphology is not None:
            put("morphologies", cell.morphology)
        if cell.dynamics_params is not None:
            put("biophysical_neuron_models", cell.dynamics_params)
        for name in SYNAPSE_FILES:
            put("synaptic_models", synaptic_model_path(self.params, name, cwd=self.cwd))
        for mod in cell.mod_files:
            put("mechanisms", mod, "modfiles/")
            for included in included_files(mod):
                put("mechanisms", included, "modfiles/")
        return dict(sorted(used.items()))

    def _copy_clamp(self, staging: Staging) -> simconfig.ClampInput | None:
        fcc = self.params.get("file_current_clamp") or {}
        value = fcc.get("input_file")
        if value is None:
            return None
        src = resolve_relative(self.params, value, cwd=self.cwd)
        if src is None:
            raise ComponentError(f"file_current_clamp.input_file: {value!r} not found")
        rel = f"inputs/{Path(value).name}"
        shutil.copyfile(src, staging.path(rel))
        return simconfig.ClampInput(rel, BIO_NODE_SET)
