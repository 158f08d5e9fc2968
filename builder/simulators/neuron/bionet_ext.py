"""What BMTK BioNet needs to run our outputs: one implementation for run-network and stock BMTK.

Our simulation configs are read by libsonata (``SimulationConfig``) and by BMTK 1.2. The two
disagree on a few values, and BMTK lacks two things we use; this module bridges them:

* **spike inputs** are written with ``"module": "synapse_replay"`` (libsonata's name, with
  ``spike_file``); BMTK 1.2 knows that input as ``"sonata"`` with ``input_file``.
  :func:`bmtk_view` gives BMTK its spelling.
* **current clamp from a waveform file** (``"module": "FileIClamp"``, HDF5 ``amplitudes`` in
  nA and ``dts`` in ms): neither reader has it. BMTK gets the config without it, and
  :func:`add_modules` adds our :class:`FileCurrentClamp` module. (libsonata rejects a config
  with this input: its current-clamp modules are analytic waveforms only.)
* **membrane reports away from the soma**: BMTK's report module locates segments through a
  morphology file, which a template that builds its own morphology (the default cell) does not
  have. Such reports are left out of BMTK's view and recorded by :class:`SectionReport`, which
  resolves the section group from the cell itself (:mod:`builder.simulators.neuron.sections`) and
  writes the SONATA report layout (one column per segment, ``element_ids`` the section index in
  ``all``).
* **our synapse models** ``pyr2pyr`` / ``int2pyr`` are registered with BMTK and every
  connection is bound to its edge's random streams
  (:func:`builder.simulators.neuron.synapses.register`).
* **a warning that does not apply**: BMTK warns on import that NEURON 9 "is missing
  ptr_update_callback" (NEURON 9 keeps pointers valid itself); :func:`quiet_known_warnings`
  drops exactly that record for NEURON >= 9.

:func:`run_bionet` is BMTK's standard flow with these additions; every built output directory
carries a ``run_bionet.py`` that calls it (``python run_bionet.py`` inside the directory).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.simconfig import expand_config_path

__all__ = [
    "CLAMP_MODULE",
    "SPIKES_MODULE",
    "BionetView",
    "bmtk_view",
    "quiet_known_warnings",
    "add_modules",
    "module_classes",
    "load_config",
    "build_simulation",
    "run_bionet",
]

#: The spike-input module our configs name (libsonata's); BMTK's own name is "sonata".
SPIKES_MODULE = "synapse_replay"
#: Our current clamp playing an HDF5 waveform.
CLAMP_MODULE = "FileIClamp"
_BMTK_SPIKE_MODULES = ("sonata", "h5", "nwb", "csv")
_BMTK_LOGGERS = ("NEURONIOUtils", "IOUtils")


# ------------------------------------------------------------------ warnings
class _PtrUpdateFilter(logging.Filter):
    """Drops BMTK's 'missing ptr_update_callback' warning, which NEURON >= 9 does not need."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "ptr_update_callback" not in record.getMessage()


def _neuron_major() -> int:
    try:
        from importlib.metadata import version

        return int(version("neuron").split(".")[0])
    except Exception:  # noqa: BLE001 -- not installed under that name: keep the warning
        return 0


def quiet_known_warnings() -> None:
    """Silence BMTK's ptr_update_callback warning on NEURON >= 9 (call before importing BioNet).

    NEURON 9 replaced raw pointers by data handles that follow memory reordering, so the
    callback BMTK looks for is not needed; BMTK 1.2 predates that and warns on every import.
    Other BMTK warnings are untouched.
    """
    if _neuron_major() < 9:
        return
    for name in _BMTK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _PtrUpdateFilter) for f in logger.filters):
            logger.addFilter(_PtrUpdateFilter())


# ------------------------------------------------------------------ the config BMTK sees
@dataclass
class BionetView:
    """A simulation config as BMTK reads it, plus the parts we run ourselves."""

    config: dict[str, Any]
    clamps: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)


def bmtk_view(raw: dict[str, Any]) -> BionetView:
    """Translate our simulation config into what BMTK 1.2 accepts (``raw`` is not changed)."""
    cfg = copy.deepcopy(raw)
    view = BionetView(cfg)
    inputs = {}
    for name, inp in (cfg.get("inputs") or {}).items():
        if not isinstance(inp, dict):
            inputs[name] = inp
            continue
        if inp.get("module") == CLAMP_MODULE:
            view.clamps.append(inp)
            continue
        if inp.get("input_type") == "spikes" and inp.get("module") == SPIKES_MODULE:
            inp["module"] = "sonata"
            inp.setdefault("input_file", inp.get("spike_file"))
        inputs[name] = inp
    cfg["inputs"] = inputs
    reports = {}
    for name, rep in (cfg.get("reports") or {}).items():
        if (
            isinstance(rep, dict)
            and rep.get("module") == "membrane_report"
            and rep.get("sections", "soma") != "soma"
            and rep.get("enabled", True)
        ):
            view.reports[name] = rep
            continue
        reports[name] = rep
    cfg["reports"] = reports
    return view


# ------------------------------------------------------------------ our simulator modules
def module_classes() -> tuple[type, type]:
    """Our BMTK simulator modules (defined lazily: importing them imports NEURON and BMTK)."""
    import h5py
    import numpy as np
    from bmtk.simulator.bionet.modules.sim_module import SimulatorMod
    from neuron import h

    from ...core.clamp import read_clamp
    from .sections import section_groups

    class FileCurrentClamp(SimulatorMod):
        """An IClamp at ``soma[0](0.5)`` of every cell of a node set, playing a waveform file.

        Sample ``k`` of ``amplitudes`` (nA) holds from ``t_k = sum(dts[:k])`` (ms) to
        ``t_k+1``; after the last sample the current is 0.
        """

        chunked_role = "clamp"  # engine.CHUNKED_ROLE: plays Vectors, no per-step call

        def __init__(self, input_file: str, node_set: str):
            self.input_file = input_file
            self.node_set = node_set
            self._keep: list[Any] = []

        def initialize(self, sim: Any) -> None:
            from ...core.errors import RunError

            try:
                times, amps = read_clamp(self.input_file)
            except ValueError as exc:
                raise RunError(str(exc)) from None
            gids = set(sim.net.get_node_set(self.node_set).gids()) & set(sim.local_gids)
            for gid in sorted(gids):
                cell = sim.net.get_cell_gid(gid)
                soma = cell.hobj.soma
                seg = (soma[0] if hasattr(soma, "__getitem__") else soma)(0.5)
                clamp = h.IClamp(seg)
                clamp.delay, clamp.dur = 0.0, 1e9
                va, vt = h.Vector(amps), h.Vector(times)
                va.play(clamp._ref_amp, vt, 0)  # step-wise: each value holds until the next
                self._keep += [clamp, va, vt]

    class SectionReport(SimulatorMod):
        """A membrane report of one variable at every segment of a section group.

        Samples as BMTK's reports do (after time step ``k`` for ``k`` in
        ``[start_time, end_time) / dt``, every ``dt / sim.dt`` steps); each block is written to
        ``file_name`` in the SONATA layout (float32 ``data`` [time x segment], ``element_ids``
        = section index in ``all``, ``element_pos`` = segment centre x).
        """

        def __init__(self, name: str, spec: dict[str, Any], output_dir: Path):
            self.name = name
            self.variable = str(spec.get("variable_name", "v"))
            self.group = str(spec.get("sections", "all"))
            self.cells = spec.get("cells", "biophysical_nodes")
            file_name = str(spec.get("file_name", f"{name}.h5"))
            self.path = Path(file_name) if os.path.isabs(file_name) else output_dir / file_name
            self.start = float(spec.get("start_time", 0.0))
            self.end = spec.get("end_time")
            self.dt = spec.get("dt")
            self._rows: list[Any] = []
            self._row = 0

        def initialize(self, sim: Any) -> None:
            from ...core.errors import RunError

            self.pc = h.ParallelContext()
            dt = float(self.dt) if self.dt is not None else float(sim.dt)
            self.every = max(1, int(round(dt / float(sim.dt))))
            end = float(self.end) if self.end is not None else float(sim.tstop)
            self.first = int(round(self.start / float(sim.dt)))
            self.last = int(round(end / float(sim.dt)))
            self.n_rows = len(range(self.first, self.last, self.every))
            self.dt_rec = self.every * float(sim.dt)
            gids = sorted(set(sim.net.get_node_set(self.cells).gids()) & set(sim.local_gids))
            refs, elements, pos, counts = [], [], [], []
            for gid in gids:
                cell = sim.net.get_cell_gid(gid)
                groups = section_groups(cell.hobj)
                if self.group not in groups:
                    raise RunError(
                        f"reports.{self.name}: node {gid} has no section group {self.group!r} "
                        f"(it has: {', '.join(sorted(groups))})"
                    )
                n = 0
                for index, sec in groups[self.group]:
                    for seg in sec:
                        try:
                            refs.append(getattr(seg, f"_ref_{self.variable}"))
                        except (AttributeError, NameError):
                            raise RunError(
                                f"reports.{self.name}: {sec.name()}({seg.x:g}) has no variable "
                                f"{self.variable!r}"
                            ) from None
                        elements.append(index)
                        pos.append(seg.x)
                        n += 1
                counts.append(n)
            self.local_gids = gids
            self.local_counts = counts
            self.pv = h.PtrVector(max(len(refs), 1))
            for i, ref in enumerate(refs):
                self.pv.pset(i, ref)
            self.n_local = len(refs)
            self.buf = h.Vector(max(len(refs), 1))
            mapping = (gids, counts, elements, pos)
            everything = self.pc.py_gather(mapping, 0)
            if int(self.pc.id()) != 0:
                return
            order = []
            for rank, (g, c, e, p) in enumerate(everything):
                start = 0
                for gid, n in zip(g, c, strict=True):
                    order.append((gid, rank, start, n, e[start : start + n], p[start : start + n]))
                    start += n
            order.sort()
            self.layout = [(rank, start, n) for _, rank, start, n, _, _ in order]
            ptrs = np.r_[0, np.cumsum([n for *_, n in self.layout])].astype(np.uint64)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = h5py.File(self.path, "w")
            grp = self.file.create_group(f"report/{_population(sim, order)}")
            m = grp.create_group("mapping")
            ids = m.create_dataset("node_ids", data=np.array([o[0] for o in order], np.uint64))
            ids.attrs["sorted"] = np.uint8(1)
            m.create_dataset("index_pointers", data=ptrs)
            m.create_dataset(
                "element_ids", data=np.concatenate([o[4] for o in order] or [[]]).astype(np.uint32)
            )
            m.create_dataset(
                "element_pos", data=np.concatenate([o[5] for o in order] or [[]]).astype(np.float32)
            )
            t = m.create_dataset(
                "time",
                data=np.array([self.first * float(sim.dt), self.last * float(sim.dt), self.dt_rec]),
            )
            t.attrs["units"] = "ms"
            self.data = grp.create_dataset("data", shape=(self.n_rows, int(ptrs[-1])), dtype="f4")
            self.data.attrs["units"] = _units(self.variable)
            self.data.attrs["variable"] = self.variable

        def step(self, sim: Any, tstep: int) -> None:
            if self.first <= tstep < self.last and (tstep - self.first) % self.every == 0:
                if self.n_local:
                    self.pv.gather(self.buf)
                    self._rows.append(self.buf.as_numpy()[: self.n_local].astype(np.float32))
                else:
                    self._rows.append(np.zeros(0, np.float32))

        def block(self, sim: Any, block_interval: Any) -> None:
            self._flush()

        def _flush(self) -> None:
            rows = np.array(self._rows, dtype=np.float32).reshape(len(self._rows), self.n_local)
            self._rows = []
            parts = self.pc.py_gather(rows, 0)
            if int(self.pc.id()) != 0 or not len(parts[0]):
                return
            n = parts[0].shape[0]
            cols = [parts[rank][:, start : start + k] for rank, start, k in self.layout]
            self.data[self._row : self._row + n] = np.concatenate(cols, axis=1)
            self._row += n

        def finalize(self, sim: Any) -> None:
            self._flush()
            if int(self.pc.id()) == 0:
                self.file.close()

    return FileCurrentClamp, SectionReport


def _units(variable: str) -> str:
    """NEURON's units of the usual range variables ('' when we cannot tell)."""
    if variable in ("v", "vext") or variable.startswith("e"):
        return "mV"
    if variable.startswith("i") or variable == "i_membrane":
        return "mA/cm2"
    if variable.endswith(("i", "o")) and len(variable) <= 4:  # cai, nao, ki
        return "mM"
    if variable.startswith("g"):
        return "S/cm2"
    return {"cm": "uF/cm2", "diam": "um"}.get(variable, "")


def _population(sim: Any, order: list[Any]) -> str:
    if order:
        try:
            return str(sim.net.get_node_id(order[0][0]).population_name)
        except Exception:  # noqa: BLE001 -- BMTK versions differ; fall back to the usual name
            pass
    return "biophysical"


def add_modules(sim: Any, view: BionetView, base: Path, output_dir: Path) -> list[Any]:
    """Add our clamp and report modules to a BMTK simulator; returns them."""
    FileCurrentClamp, SectionReport = module_classes()
    manifest = dict(view.config.get("manifest") or {})
    manifest.setdefault("$BASE_DIR", ".")
    manifest["$BASE_DIR"] = str(base)
    mods: list[Any] = []
    for inp in view.clamps:
        mods.append(
            FileCurrentClamp(
                str(expand_config_path(str(inp["input_file"]), manifest, base)),
                inp.get("node_set", "biophysical_nodes"),
            )
        )
    for name, rep in view.reports.items():
        mods.append(SectionReport(name, rep, output_dir))
    for mod in mods:
        sim.add_mod(mod)
    return mods


# ------------------------------------------------------------------ BMTK's standard flow
def load_config(
    config_file: str | os.PathLike = "simulation_config.json",
    mechanisms_dir: str | os.PathLike | None = None,
) -> tuple[Any, BionetView]:
    """BMTK's ``Config`` of an output directory (validated), its environment built.

    Changes into the config's directory (BMTK resolves "." against the working directory),
    compiles the output's NMODL into the cache unless ``mechanisms_dir`` names compiled ones,
    and translates the config (:func:`bmtk_view`).
    """
    from ...core import mechanisms
    from ...core.components import provided_mod_files, select_mechanisms

    config = Path(config_file).resolve()
    base = config.parent
    os.chdir(base)
    raw = json.loads(config.read_text())
    if mechanisms_dir is None:
        mods = sorted((base / "components" / "mechanisms" / "modfiles").glob("*.mod"))
        chosen = select_mechanisms(mods, provided_mod_files())
        compiled = mechanisms.compiled_mechanisms(list(chosen.mod_files))
    else:
        compiled = Path(mechanisms_dir).resolve()
    quiet_known_warnings()
    from bmtk.simulator import bionet

    view = bmtk_view(raw)
    view.config["config_path"] = str(config)
    view.config["config_dir"] = str(base)
    conf = bionet.Config.from_dict(view.config, validate=True)
    conf.mechanisms_dir = str(compiled)
    conf.components["mechanisms_dir"] = str(compiled)
    conf.build_env()
    return conf, view


def build_simulation(conf: Any, view: BionetView) -> tuple[Any, Any, int, int]:
    """BMTK's network and simulator for ``conf``, with our synapses bound and modules added.

    Returns
    -------
    (BioNetwork, BioSimulator, number of synapses, number of point processes)
    """
    from bmtk.simulator import bionet

    from .synapses import MODELS, register

    seed = int(conf.run.get("random_seed", 0))
    models = register(seed, overwrite=True)
    net = bionet.BioNetwork.from_config(conf)
    sim = bionet.BioSimulator.from_config(conf, network=net)
    n_syn, pps = 0, set()
    for cell in net.get_local_cells().values():
        for c in getattr(cell, "_connections", []):
            edge = c._edge_prop
            if edge["model_template"] in MODELS:
                pop = f"{edge.source_population}_to_{edge.target_population}"
                models.bind(c._syn, edge["dynamics_params"], pop, int(edge["syn_id"]))
                n_syn += 1
                pps.add(c._syn.hname())
    base = Path(view.config["config_dir"])
    add_modules(sim, view, base, Path(conf.output["output_dir"]))
    return net, sim, n_syn, len(pps)


def run_bionet(config_file: str | os.PathLike = "simulation_config.json") -> Any:
    """Run an output directory with BMTK BioNet's standard flow; returns the simulator.

    ``Config`` -> ``build_env`` -> ``BioNetwork.from_config`` -> ``BioSimulator.from_config``
    -> ``run``, with the additions of this module (:func:`load_config`,
    :func:`build_simulation`). One point process per synapse, BMTK's own input construction
    and BMTK's initialisation (``finitialize(v_init)``, no settling): the reference that
    ``run-network --no-merge --bmtk-inputs --no-settle`` reproduces spike for spike. Outputs
    go where the config says (``output/``), as BMTK writes them.
    """
    conf, view = load_config(config_file)
    _, sim, _, _ = build_simulation(conf, view)
    sim.run()
    return sim
