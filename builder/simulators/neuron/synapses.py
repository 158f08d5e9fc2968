"""The project's synapse models in NEURON, as BMTK BioNet synapse functions.

Two point processes, written for this project in NMODL
(``biophys_components/mechanisms/modfiles/``; SPEC section 9):

``pyr2pyr``
    excitatory input onto the pyramidal cell: AMPA + NMDA with Mg block, each either a dual
    exponential (``tau_r_*`` / ``tau_d_*``, the default, used by ``PN2PN.json``) or the
    two-state kinetic receptor of Destexhe, Mainen & Sejnowski (1994) driven by a transmitter
    pulse (``AlphaTmax_*``, ``Beta_*``, ``Cdur_*``: legacy PN2PN files);
``int2pyr``
    GABA_A (the two-state kinetic receptor), used by ``PV2PN.json`` and ``SOM2PN.json``.

Both have short-term depression/facilitation and stochastic release (probability ``P_0``,
gating every conductance of the synapse) per connection, with the state in the NetCon's weight
vector, so several NetCons may share one point process (linear kinetics: the summed
conductance is exact).

JSON keys
---------
The JSON is read by :mod:`builder.core.synmodels` (no NEURON): its key tables
(:data:`PARAMETER_KEYS`, legacy names, unmodelled legacy keys), the legacy meanings and the
validation live there; this module applies the resulting plan. Every parameter key is set on
the point process (a key left out keeps the mechanism's default, which is the SPEC value).
The weight keys:

``initW``
    the synapse's weight factor (scales all its conductances), used when neither of the two
    next keys decides it;
``initW_soma`` / ``initW_dend``
    the weight on somatic sections / on any other section (decided from the section's name:
    its last component, without index, is ``soma``) -- PV2PN: 0.06 on the soma, 0.1 on
    dendrites (and every legacy-style int2pyr file without them);
``weight_distribution``
    ``{"type": "lognormal", "mean": m, "sd": s, "min": lo, "max": hi}``: each synapse's weight
    factor is drawn, replacing ``initW``, as ``clip(X, lo, hi)`` with X lognormal whose own
    mean and standard deviation are ``m`` and ``s`` (the legacy code's parametrisation:
    ``sigma**2 = log(1 + s**2/m**2)``, ``mu = log(m) - sigma**2/2``). The legacy code drew it
    (0.45, 0.345, clipped to [0, 5]) whenever ``initW`` was present (its ``initW`` of 5 acted
    only as that switch): a legacy-style pyr2pyr file with ``initW`` gets that draw, and our
    PN2PN.json writes it out and keeps ``initW`` as documentation, unused. The draw for edge
    ``e`` of population ``p`` is a pure function of (seed, p, e) (:func:`edge_normals`), so it
    does not depend on the number of MPI ranks or on the order of creation.

A bad key or value is an error (:class:`builder.core.errors.ParamsError`) naming the model and the
key, raised when the first synapse of that JSON is created; :func:`check_model_file` does the
same check up front with the file's name (and warns once about legacy readings; creating
synapses does not warn).

Wiring in the runner
--------------------
BMTK calls the synapse function with ``(dynamics_params, sec_x, section)`` only: it does not
know the edge, so two things happen after BMTK has built the cell.

1. Compile the modfiles together with the cell's channels, load the library, then call
   ``models = register(seed)`` *before* BMTK builds the network.
2. One point process per edge (BMTK's own path, the reference mode): for every connection
   ``c`` of the cell (``BioCell._connections``; ``c._syn`` is the point process,
   ``c._edge_prop`` the edge), call ``models.bind(c._syn, c._edge_prop["dynamics_params"],
   population, edge_id)``, where ``population`` is the edge population's name and
   ``edge_id`` the edge's index in it. This sets the Random123 ids (seed, crc32(population),
   edge_id) on the point process and, for a JSON with ``weight_distribution``, draws the
   weight. Until then a synapse with ``0 < P_0 < 1`` or a pending weight draw refuses to
   initialise (``finitialize`` raises naming :func:`set_release_stream` / :func:`bind_edge`).
3. Merged mode (one point process per segment and JSON): create the shared point process with
   ``make_synapse(model, params, x, section, per_connection_weight=True)`` (weight factor 1),
   and for each edge ``nc = NetCon(source, pp)``,
   ``nc.weight[0] = syn_weight * connection_weight(params, section, seed, population, edge_id)``
   and ``set_release_stream(nc, seed, population, edge_id)``. Both modes then draw the same
   release sequence and weights for every edge, so they agree.
"""

from __future__ import annotations

import copy
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.synmodels import (
    MODELS,
    PARAMETER_KEYS,
    PENDING_WEIGHT,
    SynapsePlan,
    build_plan,
    check_model_file,
    check_model_params,
)

__all__ = [
    "LINEAR_MODELS",
    "MODELS",
    "PARAMETER_KEYS",
    "SynapseModels",
    "bind_edge",
    "check_model_file",
    "check_model_params",
    "connection_weight",
    "draw_weights",
    "int2pyr",
    "is_our_model_file",
    "make_linear_synapse",
    "make_synapse",
    "pyr2pyr",
    "register",
    "set_release_stream",
    "stream_ids",
]

_UINT32 = 2**32

# (model, id(params)) -> (params object, snapshot, plan); BMTK passes one cached dict per JSON
_PLANS: dict[tuple[str, int], tuple[Mapping, dict, SynapsePlan]] = {}


def _model_of(params: Mapping, model: str | None) -> str:
    """The model a JSON is for: ``model`` if given, else its ``level_of_detail``."""
    if model is None:
        model = params.get("level_of_detail") if isinstance(params, Mapping) else None
        if model not in MODELS:
            raise ValueError(
                f"cannot tell the synapse model: level_of_detail is {model!r}; pass model= "
                f"(one of {', '.join(MODELS)})"
            )
    return model


def _plan(params: Mapping, model: str) -> SynapsePlan:
    """The plan for ``params``, validated once per JSON object (BMTK reuses one dict).

    Silent: legacy readings are reported per file by the build and the runner
    (:func:`builder.core.synmodels.check_model_file` / ``load_model_file``), not per synapse.
    """
    key = (model, id(params))
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is params and hit[1] == params:
        return hit[2]
    plan = build_plan(params, model, None)
    _PLANS[key] = (params, copy.deepcopy(dict(params)), plan)
    return plan


# ----------------------------------------------------------------------------- weights
def draw_weights(
    syn_params: Mapping,
    seed: int,
    population: str,
    edge_ids: np.ndarray | list[int],
    *,
    model: str | None = None,
) -> np.ndarray:
    """Draw the per-synapse weight factors of a JSON whose synapses draw their weights.

    That is a JSON with ``weight_distribution``, or a legacy-style pyr2pyr file with
    ``initW`` (the legacy lognormal, :data:`builder.core.synmodels.LEGACY_PYR2PYR_WEIGHT`).

    Parameters
    ----------
    syn_params : mapping
        The synaptic-model JSON (its ``level_of_detail`` names the model).
    seed : int
        The run's seed.
    population : str
        The edge population.
    edge_ids : array of int
        Edge indices in that population.
    model : str, optional
        The synapse model; default: the JSON's ``level_of_detail``.

    Returns
    -------
    numpy.ndarray of float
        One weight factor per edge; edge ``e``'s comes from :func:`edge_normals` keyed by
        (seed, population, e), so it is the same whatever other edges are drawn, in whatever
        order, on whatever rank.

    Raises
    ------
    ValueError
        The JSON's synapses do not draw their weights.
    """
    plan = _plan(syn_params, _model_of(syn_params, model))
    if plan.distribution is None:
        raise ValueError("the synapses of this synaptic model do not draw their weights")
    ids = np.asarray(edge_ids, dtype=np.int64).ravel()
    return plan.distribution.from_normals(edge_normals(seed, population, ids))


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (a bijective avalanche mix of 64-bit words), vectorised."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def edge_normals(seed: int, population: str, edge_ids: np.ndarray) -> np.ndarray:
    """One standard-normal deviate per edge, a pure function of (seed, population, edge id).

    Counter-based: each value depends on its own key only, so it is the same whatever other
    edges are drawn, in whatever order, on whatever MPI rank -- and a whole population is
    drawn in one vectorised call. Two 53-bit uniforms from hashed keys go through Box-Muller.
    """
    ids = np.asarray(edge_ids, dtype=np.uint64).ravel()
    key = _mix64(np.array([(int(seed) << 32) ^ zlib.crc32(population.encode())], np.uint64))
    with np.errstate(over="ignore"):
        base = _mix64(key ^ (ids * np.uint64(2)))
        h1 = _mix64(base)
        h2 = _mix64(base ^ np.uint64(0xD1B54A32D192ED03))
    scale = 1.0 / float(1 << 53)
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 0.5) * scale  # in (0, 1)
    u2 = (h2 >> np.uint64(11)).astype(np.float64) * scale
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def has_weight_distribution(syn_params: Mapping, model: str | None = None) -> bool:
    """Whether each synapse of this JSON draws its own weight factor (see :func:`draw_weights`)."""
    return _plan(syn_params, _model_of(syn_params, model)).distribution is not None


def connection_weight(
    syn_params: Mapping,
    section: Any,
    seed: int,
    population: str,
    edge_id: int,
    *,
    model: str | None = None,
) -> float:
    """The weight factor (``initW``) of one edge: drawn, section-dependent or fixed.

    Parameters
    ----------
    syn_params : mapping
        The synaptic-model JSON.
    section : nrn.Section
        The edge's target section (decides ``initW_soma`` / ``initW_dend``).
    seed, population, edge_id
        As for :func:`draw_weights` (used only with ``weight_distribution``).
    model : str, optional
        The synapse model; default: the JSON's ``level_of_detail``.

    Returns
    -------
    float
        The factor to put on the point process (one per edge) or, in merged mode, into the
        NetCon's ``weight[0]`` (times the edge's ``syn_weight``).
    """
    model = _model_of(syn_params, model)
    w = _plan(syn_params, model).weight_for(section)
    if w == PENDING_WEIGHT:
        return float(draw_weights(syn_params, seed, population, [edge_id], model=model)[0])
    if w is None:
        return 1.0  # the mechanisms' default initW
    return w


# ----------------------------------------------------------------------------- streams
def stream_ids(seed: int, population: str | int, edge_id: int) -> tuple[int, int, int]:
    """The three Random123 ids of an edge's release stream.

    Parameters
    ----------
    seed : int
        The run's seed, in [0, 2**32).
    population : str or int
        The edge population: a name (hashed with CRC-32) or an integer id in [0, 2**32).
    edge_id : int
        The edge's index in its population, in [0, 2**32).

    Returns
    -------
    tuple of int
        ``(seed, population id, edge_id)``.
    """
    pop = zlib.crc32(population.encode("utf-8")) if isinstance(population, str) else population
    ids = (seed, pop, edge_id)
    for name, value in zip(("seed", "population", "edge_id"), ids, strict=True):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if not 0 <= value < _UINT32:
            raise ValueError(f"{name} must be in [0, 2**32), got {value}")
    return int(ids[0]), int(ids[1]), int(ids[2])


def _hoc_kind(obj: Any) -> str:
    try:
        return obj.hname().split("[", 1)[0]
    except AttributeError:
        raise TypeError(f"expected a NEURON point process or NetCon, got {obj!r}") from None


def set_release_stream(target: Any, seed: int, pop_id: str | int, edge_id: int) -> None:
    """Give a synapse (or one NetCon onto a shared one) its own release stream.

    Parameters
    ----------
    target : pyr2pyr / int2pyr point process, or a NetCon onto one
        A point process: its single connection draws from this stream. A NetCon: this
        connection draws from it (required when several NetCons share a point process).
    seed, pop_id, edge_id
        The ids, see :func:`stream_ids`.

    Raises
    ------
    TypeError
        ``target`` is neither one of our point processes nor a NetCon onto one.
    """
    id1, id2, id3 = stream_ids(seed, pop_id, edge_id)
    kind = _hoc_kind(target)
    if kind == "NetCon":
        syn = target.syn()
        if syn is None or _hoc_kind(syn) not in MODELS:
            raise TypeError(f"the NetCon does not target a {' or '.join(MODELS)} synapse")
        target.weight[1] = id1
        target.weight[2] = id2
        target.weight[3] = id3
        target.weight[4] = 1
    elif kind in MODELS:
        target.rng_id1 = id1
        target.rng_id2 = id2
        target.rng_id3 = id3
        target.rng_set = 1
    else:
        raise TypeError(f"{target.hname()} is not a {' or '.join(MODELS)} synapse or a NetCon")


def bind_edge(syn: Any, syn_params: Mapping, seed: int, population: str, edge_id: int) -> None:
    """Tie a one-edge synapse to its edge: release stream and, if drawn, its weight.

    Parameters
    ----------
    syn : pyr2pyr / int2pyr point process
        Created by :func:`make_synapse` (or BMTK through :func:`register`) for this edge only.
    syn_params : mapping
        Its synaptic-model JSON.
    seed : int
        The run's seed.
    population : str
        The edge population.
    edge_id : int
        The edge's index in it.
    """
    set_release_stream(syn, seed, population, edge_id)
    model = _hoc_kind(syn)
    if _plan(syn_params, model).distribution is not None:
        syn.initW = float(draw_weights(syn_params, seed, population, [edge_id], model=model)[0])


# ----------------------------------------------------------------------------- BMTK's linear models
#: BMTK's built-in synapse models whose conductance is linear in the events (no plasticity, no
#: release noise): synapses of one model and JSON on one segment share a point process, each
#: connection's weight sits in its NetCon, which is exact. Their JSON keys are BMTK's
#: (``tau1``, ``tau2``, ``erev``).
LINEAR_MODELS: tuple[str, ...] = ("exp2syn", "Exp2Syn")

_LINEAR_KEYS = {"tau1": "tau1", "tau2": "tau2", "erev": "e"}


def make_linear_synapse(model: str, syn_params: Mapping, sec_x: float, section: Any) -> Any:
    """An ``Exp2Syn`` at ``section(sec_x)`` with the JSON's ``tau1``, ``tau2`` and ``erev``.

    Raises :class:`builder.core.errors.ParamsError` naming the missing key.
    """
    from neuron import h

    from ...core.errors import ParamsError

    if model not in LINEAR_MODELS:
        raise ValueError(f"{model!r} is not one of {', '.join(LINEAR_MODELS)}")
    missing = [k for k in _LINEAR_KEYS if k not in syn_params]
    if missing:
        raise ParamsError(
            f"synapse model {model}", [f"{k}: required key is missing" for k in missing]
        )
    syn = h.Exp2Syn(section(sec_x))
    for key, attr in _LINEAR_KEYS.items():
        setattr(syn, attr, float(syn_params[key]))
    return syn


def is_our_model_file(path: Any) -> bool:
    """Whether a synaptic-model JSON names one of our models (unreadable files count as ours,
    so that reading them reports the problem)."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return True
    return not (isinstance(data, Mapping) and data.get("level_of_detail") not in MODELS)


# ----------------------------------------------------------------------------- creation
def make_synapse(
    model: str,
    syn_params: Mapping,
    sec_x: float,
    section: Any,
    *,
    per_connection_weight: bool = False,
) -> Any:
    """Create a ``model`` point process at ``section(sec_x)`` and apply its JSON.

    Parameters
    ----------
    model : {"pyr2pyr", "int2pyr"}
        The mechanism.
    syn_params : mapping
        The synaptic-model JSON (validated once per object; every key applied).
    sec_x : float
        Position along the section, 0-1.
    section : nrn.Section
        The target section.
    per_connection_weight : bool
        Merged mode: set ``initW`` to 1, the caller puts each edge's weight factor
        (:func:`connection_weight`) into its NetCon's ``weight[0]``.

    Returns
    -------
    hoc object
        The point process. With ``0 < P_0 < 1`` it needs :func:`bind_edge` or
        :func:`set_release_stream` before ``finitialize``; with ``weight_distribution`` (and
        not ``per_connection_weight``) it needs :func:`bind_edge`.

    Raises
    ------
    builder.core.errors.ParamsError
        The JSON has an unknown key or a bad value.
    """
    from neuron import h

    plan = _plan(syn_params, model)  # validates before anything is created
    syn = getattr(h, model)(section(sec_x))
    for attr, value in plan.settings:
        setattr(syn, attr, value)
    w = 1.0 if per_connection_weight else plan.weight_for(section)
    if w is not None:
        syn.initW = w
    return syn


def pyr2pyr(syn_params: Mapping, sec_x: float, section: Any) -> Any:
    """BMTK synapse function for ``model_template: pyr2pyr`` (see :func:`make_synapse`)."""
    return make_synapse("pyr2pyr", syn_params, sec_x, section)


def int2pyr(syn_params: Mapping, sec_x: float, section: Any) -> Any:
    """BMTK synapse function for ``model_template: int2pyr`` (see :func:`make_synapse`)."""
    return make_synapse("int2pyr", syn_params, sec_x, section)


@dataclass(frozen=True)
class SynapseModels:
    """What :func:`register` returns: the run's seed and the per-edge binding step."""

    seed: int

    def bind(self, syn: Any, syn_params: Mapping, population: str, edge_id: int) -> None:
        """:func:`bind_edge` with this run's seed."""
        bind_edge(syn, syn_params, self.seed, population, edge_id)


def register(seed: int, *, overwrite: bool = False) -> SynapseModels:
    """Register ``pyr2pyr`` and ``int2pyr`` with BMTK BioNet.

    Parameters
    ----------
    seed : int
        The run's seed in [0, 2**32), used when binding synapses to their edges.
    overwrite : bool
        Replace a synapse function already registered under these names (default: keep it,
        with a warning, as BMTK's ``overwrite=False`` does).

    Returns
    -------
    SynapseModels
        Call its ``bind`` for every connection after BMTK has built the cell.
    """
    from bmtk.simulator.bionet.pyfunction_cache import add_synapse_model, py_modules

    stream_ids(seed, 0, 0)  # range check
    for name, func in (("pyr2pyr", pyr2pyr), ("int2pyr", int2pyr)):
        add_synapse_model(func, name, overwrite=overwrite)
        if py_modules.synapse_model(name) is not func:
            warnings.warn(
                f"BMTK already has a synapse function {name!r}; keeping it (ours not used)",
                stacklevel=2,
            )
    return SynapseModels(seed)
