#!/usr/bin/env python
"""The incumbent way of building the L5 input network, re-implemented for benchmarking only.

Usage::

    python benchmarks/legacy_build.py PARAMS.json SEED SEGMENTS.csv OUTDIR

This is *not* part of the product. It does the same work as the legacy research pipeline that
``../shared/SPEC.md`` (sections 3, 5-7) describes, in the same style, so that
``benchmarks/bench_build.py`` can time it next to our builder: BMTK's ``NetworkBuilder`` with one
``add_nodes`` per functional group, one ``add_edges`` per group with an ``all_to_one``
connection rule written in Python and a per-synapse ``add_properties`` rule for
``sec_id``/``sec_x``; groups and clusters drawn with pandas ``.sample()`` and Euclidean distances
on the segment DataFrame; inhibitory edges whose segment BMTK chooses at run time
(``distance_range``/``target_sections``); and input rasters generated cell by cell with scipy
(pink noise by ``lfilter``, Lévy-stable rates, one Poisson draw per 1 ms bin).

The per-element Python loops are the point here: they are what the incumbent did. Deliberate
differences from the legacy code, so that both builds have the same size and are comparable:
the divergence bounds and ``inh_shift`` come from the params (legacy hard-coded 2..8 and 4 ms),
group remainders are spread instead of dropped, and a group centre with fewer segments around
it than clusters is redrawn (legacy crashed). Randomness comes from one numpy Generator
seeded with SEED; the global ``np.random`` is seeded once only because BMTK's ``NetworkBuilder``
may draw from it internally.

Writes ``OUTDIR/network/*`` (BMTK's SONATA writer),
``OUTDIR/{exc,prox_inh,dist_inh}_stim_spikes.h5`` and ``OUTDIR/FunctionalGroups.csv``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import scipy.signal
import scipy.stats
from bmtk.builder import NetworkBuilder

COORDS = ["Coord X", "Coord Y", "Coord Z"]
PINK_B = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
PINK_A = [1.0, -2.494956002, 2.017265875, -0.522189400]
PINK_WARMUP = 2000
LEVY = {"alpha": 1.37, "beta": -1.00, "loc": 1.84, "scale": 0.44}
INH_MAX_HZ = 100.0
SYN_DELAY_MS = 0.1
MAX_CENTRE_DRAWS = 100
SORTING = h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2}, basetype="u1")


def none_if_sentinel(value: Any) -> Any:
    """Legacy files write JSON null as the string ``"None"``."""
    return None if value in (None, "None") else value


def derived_counts(p: dict[str, Any]) -> dict[str, int]:
    """Input-cell counts (SPEC section 3, legacy formulas)."""
    div, lengths, dens = p["divergence"], p["lengths"], p["syn_density"]
    avg_exc_div = (div["exc"]["min"] + div["exc"]["max"]) / 2
    return {
        "n_dend_exc": int(lengths["basal_dist"] * dens["exc"] / avg_exc_div),
        "n_apic_exc": int(lengths["apic"] * dens["exc"] / avg_exc_div),
        "n_dend_inh": int(lengths["basal_dist"] * dens["inh"] / div["basal_inh"]["m"]),
        "n_apic_inh": int(lengths["apic"] * dens["inh"] / div["apic_inh"]["m"]),
        "n_prox_dend_inh": int(lengths["basal_prox"] * dens["inh"] / div["peri_inh"]["m"]),
        "n_soma_inh": int(p["n_soma_syns"] / div["peri_inh"]["m"]),
        "clust_per_group": int(
            (p["groups"]["cells_per_group"] * avg_exc_div) // (dens["exc"] * 10)
        ),
    }


def euclidean_um(segs: pd.DataFrame, centre: pd.Series) -> pd.Series:
    """Distance of every segment midpoint of ``segs`` to ``centre``'s midpoint."""
    return np.sqrt(((segs[COORDS] - centre[COORDS].to_numpy(dtype=float)) ** 2).sum(axis=1))


class FunctionalGroup:
    """One functional group: its segments, its clusters, and the synapse locations of its cells.

    The connection rule draws each cell's number of synapses and its distinct clusters; the
    per-synapse property rule (BMTK calls it once per synapse) then picks a segment in the
    cell's next cluster.
    """

    def __init__(
        self,
        name: str,
        eligible: pd.DataFrame,
        n_cells: int,
        p: dict[str, Any],
        n_clusters: int,
        rng: np.random.Generator,
    ):
        grp = p["groups"]
        self.name = name
        self.n_cells = n_cells
        self.rng = rng
        self.div_min = int(p["divergence"]["exc"]["min"])
        self.div_max = int(p["divergence"]["exc"]["max"])
        # Legacy crashed when the centre had too few neighbours; redraw it so that every seed
        # gives a benchmark run (a rare event: a few isolated dendritic tips).
        for _ in range(MAX_CENTRE_DRAWS):
            centre = eligible.sample(1, random_state=rng).iloc[0]
            self.segs = eligible[euclidean_um(eligible, centre) <= grp["group_radius"]]
            if len(self.segs) >= n_clusters:
                break
        else:
            raise SystemExit(
                f"group {name}: no centre with {n_clusters} segments within "
                f"{grp['group_radius']} um in {MAX_CENTRE_DRAWS} draws"
            )
        centres = self.segs.sample(n_clusters, random_state=rng)
        self.clusters = [
            self.segs[euclidean_um(self.segs, c) <= grp["cluster_radius"]]
            for _, c in centres.iterrows()
        ]
        self.clusters_of: dict[int, list[int]] = {}

    def n_syns(self, sources: list, target: Any) -> list[int]:
        """``all_to_one`` connection rule: synapses of every source cell onto the one target.

        Also draws each cell's distinct clusters, consumed by :meth:`syn_location`.
        """
        out = []
        for src in sources:
            n = int(self.rng.integers(self.div_min, self.div_max + 1))
            self.clusters_of[src.node_id] = list(
                self.rng.choice(len(self.clusters), size=n, replace=False)
            )
            out.append(n)
        return out

    def syn_location(self, source: Any, target: Any) -> tuple[int, float]:
        """Per-synapse property rule: a segment of the cell's next cluster, drawn uniformly."""
        cluster = self.clusters[self.clusters_of[source.node_id].pop()]
        row = cluster.sample(1, random_state=self.rng).iloc[0]
        return int(row["BMTK ID"]), float(row["X"])


def build_network(
    p: dict[str, Any],
    segs: pd.DataFrame,
    counts: dict[str, int],
    rng: np.random.Generator,
    outdir: Path,
) -> dict[str, list[int]]:
    """Build and save the four BMTK networks; return the node ids of each functional group."""
    cell = p["cell"]
    bio = NetworkBuilder("biophysical")
    props = {"model_template": cell["model_template"]}
    for key, name in (
        ("morphology", "morphology"),
        ("dynamic_params", "dynamics_params"),
        ("model_processing", "model_processing"),
    ):
        if none_if_sentinel(cell.get(key)) is not None:
            props[name] = cell[key]
    bio.add_nodes(N=1, pop_name="Pyrc", potential="exc", model_type="biophysical", **props)

    exc = NetworkBuilder("exc_stim")
    cpg = int(p["groups"]["cells_per_group"])
    eligible = {
        "dend": segs[(segs["Type"] == "dend") & (segs["Distance"] >= 50)],
        "apic": segs[segs["Type"] == "apic"],
    }
    groups: dict[str, list[int]] = {}
    fgs: list[FunctionalGroup] = []
    next_id = 0
    for region, n_cells in (("dend", counts["n_dend_exc"]), ("apic", counts["n_apic_exc"])):
        n_groups = max(n_cells // cpg, 1)
        base, extra = divmod(n_cells, n_groups)
        for g in range(n_groups):
            size = base + (1 if g < extra else 0)
            name = f"{region}{g}"
            fgs.append(
                FunctionalGroup(name, eligible[region], size, p, counts["clust_per_group"], rng)
            )
            exc.add_nodes(N=size, pop_name=name, potential="exc", model_type="virtual")
            groups[name] = list(range(next_id, next_id + size))
            next_id += size
    # All nodes first: NetworkBuilder.nodes() builds the node sets, add_nodes() clears them.
    for fg in fgs:
        conn = exc.add_edges(
            source=exc.nodes(pop_name=fg.name),
            target=bio.nodes(),
            connection_rule=fg.n_syns,
            iterator="all_to_one",
            syn_weight=1,
            delay=SYN_DELAY_MS,
            dynamics_params="PN2PN.json",
            model_template="pyr2pyr",
        )
        conn.add_properties(["sec_id", "sec_x"], rule=fg.syn_location, dtypes=[int, float])

    div = p["divergence"]

    def clipped_normal_rule(key: str):
        d = div[key]

        def rule(source: Any, target: Any) -> int:
            return int(np.clip(rng.normal(d["m"], d["s"]), d["min"], d["max"]))

        return rule

    prox = NetworkBuilder("prox_inh_stim")
    dist = NetworkBuilder("dist_inh_stim")
    inh = [  # network, pop_name, count, sections, distance range, divergence, synapse file
        (
            prox,
            "on_soma",
            counts["n_soma_inh"],
            ["somatic"],
            [-2000.0, 2000.0],
            "peri_inh",
            "PV2PN.json",
        ),
        (
            prox,
            "on_dend",
            counts["n_prox_dend_inh"],
            ["basal"],
            [0.0, 50.0],
            "peri_inh",
            "PV2PN.json",
        ),
        (dist, "dend", counts["n_dend_inh"], ["basal"], [50.0, 2000.0], "basal_inh", "SOM2PN.json"),
        (dist, "apic", counts["n_apic_inh"], ["apical"], [50.0, 2000.0], "apic_inh", "SOM2PN.json"),
    ]
    for net, name, n, *_ in inh:
        net.add_nodes(N=n, pop_name=name, potential="inh", model_type="virtual")
    for net, name, _, sections, drange, key, syn in inh:
        net.add_edges(
            source=net.nodes(pop_name=name),
            target=bio.nodes(),
            connection_rule=clipped_normal_rule(key),
            syn_weight=1,
            delay=SYN_DELAY_MS,
            dynamics_params=syn,
            model_template="int2pyr",
            target_sections=sections,
            distance_range=drange,
        )

    netdir = outdir / "network"
    for net in (bio, exc, prox, dist):
        net.build()
        net.save_nodes(output_dir=str(netdir))
        if net is not bio:
            net.save_edges(output_dir=str(netdir))
    return groups


def pink_noise(n_ms: int, rng: np.random.Generator) -> np.ndarray:
    """One group's 1/f noise trace, one sample per ms, scaled to [0.5, 1.5]."""
    white = rng.normal(1.0, 0.5, n_ms + PINK_WARMUP)
    pink = scipy.signal.lfilter(PINK_B, PINK_A, white)[PINK_WARMUP:]
    pink = (pink - pink.min()) / (pink.max() - pink.min())
    return pink + 0.5


def poisson_train(rate_hz: np.ndarray, start_ms: float, rng: np.random.Generator) -> np.ndarray:
    """Spike times (ms) of one cell: a Poisson draw per 1 ms bin, one spike per non-empty bin."""
    counts = scipy.stats.poisson.rvs(rate_hz / 1000.0, random_state=rng)
    return np.where(counts > 0)[0].astype(float) + start_ms


def write_spikes(
    path: Path, pop: str, node_ids: list[np.ndarray], times_ms: list[np.ndarray]
) -> int:
    """Write one SONATA spikes file with h5py; return the number of spikes."""
    ids = np.concatenate(node_ids).astype(np.uint64) if node_ids else np.zeros(0, np.uint64)
    ts = np.concatenate(times_ms) if times_ms else np.zeros(0)
    with h5py.File(path, "w") as f:
        g = f.create_group(f"spikes/{pop}")
        g.attrs.create("sorting", 1, dtype=SORTING)
        d = g.create_dataset("timestamps", data=ts.astype(np.float64))
        d.attrs["units"] = "ms"
        g.create_dataset("node_ids", data=ids)
    return int(ts.size)


def make_rasters(
    p: dict[str, Any],
    counts: dict[str, int],
    groups: dict[str, list[int]],
    rng: np.random.Generator,
    outdir: Path,
) -> dict[str, int]:
    """Excitatory trains cell by cell, then inhibitory trains from the excitatory average."""
    start_ms = float(p["time"]["start"]) * 1000.0
    n_ms = int(round((float(p["time"]["stop"]) - float(p["time"]["start"])) * 1000.0))

    exc_ids, exc_times = [], []
    for members in groups.values():
        noise = pink_noise(n_ms, rng)
        for node_id in members:
            rate_hz = np.exp(scipy.stats.levy_stable.rvs(random_state=rng, **LEVY))
            spikes = poisson_train(rate_hz * noise, start_ms, rng)
            exc_times.append(spikes)
            exc_ids.append(np.full(spikes.size, node_id))
    n_spikes = {
        "exc_stim": write_spikes(outdir / "exc_stim_spikes.h5", "exc_stim", exc_ids, exc_times)
    }

    # Population-average excitatory rate in 1 ms bins, delayed, scaled to [0.5, 1.5].
    n_exc = counts["n_dend_exc"] + counts["n_apic_exc"]
    hist, _ = np.histogram(
        np.concatenate(exc_times), bins=np.arange(n_ms + 1, dtype=float) + start_ms
    )
    avg_hz = np.roll(hist / n_exc * 1000.0, int(round(float(p["inh_shift"]))))
    profile = (avg_hz - avg_hz.min()) / (avg_hz.max() - avg_hz.min()) + 0.5
    t_s = np.arange(n_ms) / 1000.0

    pops = {
        "prox_inh_stim": (counts["n_soma_inh"] + counts["n_prox_dend_inh"], "proximal"),
        "dist_inh_stim": (counts["n_dend_inh"] + counts["n_apic_inh"], "distal"),
    }
    for pop, (n_cells, which) in pops.items():
        frs = p["inh_frs"][which]
        m, s = float(frs["m"]), float(frs["s"])
        rhythm = frs.get("rhythmicity") or {}
        f_hz, mod = none_if_sentinel(rhythm.get("f")), none_if_sentinel(rhythm.get("mod"))
        dist = scipy.stats.truncnorm((0.0 - m) / s, (INH_MAX_HZ - m) / s, loc=m, scale=s)
        ids, times = [], []
        for node_id in range(n_cells):
            r_hz = float(dist.rvs(random_state=rng))
            if f_hz is not None and mod is not None:
                amp = r_hz / ((1.0 / float(mod)) - 1.0)
                rate_hz = np.clip(amp * np.sin(2 * np.pi * float(f_hz) * t_s) + r_hz, 0, None)
            else:
                rate_hz = r_hz * profile
            spikes = poisson_train(rate_hz, start_ms, rng)
            times.append(spikes)
            ids.append(np.full(spikes.size, node_id))
        n_spikes[pop] = write_spikes(outdir / f"{pop}_spikes.h5", pop, ids, times)
    return n_spikes


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: legacy_build.py PARAMS.json SEED SEGMENTS.csv OUTDIR", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    params_path, seed, segments_csv, outdir = Path(argv[0]), int(argv[1]), argv[2], Path(argv[3])
    p = json.loads(params_path.read_text())
    np.random.seed(seed)  # noqa: NPY002 -- BMTK's NetworkBuilder internals only; we use `rng`
    rng = np.random.default_rng(seed)
    outdir.mkdir(parents=True, exist_ok=True)

    segs = pd.read_csv(segments_csv)
    counts = derived_counts(p)
    groups = build_network(p, segs, counts, rng, outdir)
    fg = pd.DataFrame(
        [(nid, i) for i, members in enumerate(groups.values()) for nid in members],
        columns=["Node ID", "Functional Group"],
    )
    fg.to_csv(outdir / "FunctionalGroups.csv", index=False)
    n_spikes = make_rasters(p, counts, groups, rng, outdir)
    print(
        json.dumps(
            {"counts": counts, "n_spikes": n_spikes, "seconds": round(time.perf_counter() - t0, 3)}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
