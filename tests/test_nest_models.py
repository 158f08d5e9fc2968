"""Models run through the NEST runner against references: the AdExp transfer function against
an independent integration written here, and the Potjans-Diesmann microcircuit against the
published rates."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nest_networks import ADEX_RS, write_tf_network

pytest.importorskip("nest", reason="nest-simulator is not installed (pip install .[nest])")

from builder.simulators.nest.runner import RATE_BATCHES  # noqa: E402
from builder.simulators.nest.runner import main as nest_main  # noqa: E402

pytestmark = pytest.mark.nest

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ AdExp transfer function
def euler_adex(
    fe_hz: np.ndarray,
    fi_hz: np.ndarray,
    p: dict[str, float],
    tstop_ms: float,
    warmup_ms: float,
    seed: int,
    dt: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Forward-Euler AdExp with shot-noise conductances, one neuron per (fe, fi).

    400 fe excitatory and 100 fi inhibitory Poisson events per second; each adds 1 nS / 5 nS
    to a conductance that decays with tau_syn. Spike at V_peak: V -> V_reset, clamped there for
    t_ref, w += b. Returns per-neuron rates (Hz) and their standard errors from
    RATE_BATCHES batch means over [warmup, tstop).
    """
    rng = np.random.default_rng(seed)
    n = fe_hz.size
    v = np.full(n, p["E_L"])
    w = np.zeros(n)
    ge = np.zeros(n)
    gi = np.zeros(n)
    refr = np.zeros(n)
    lam_e = 400 * fe_hz * dt / 1000.0
    lam_i = 100 * fi_hz * dt / 1000.0
    de, di = np.exp(-dt / p["tau_syn_ex"]), np.exp(-dt / p["tau_syn_in"])
    steps = int(round(tstop_ms / dt))
    batch = (tstop_ms - warmup_ms) / RATE_BATCHES
    counts = np.zeros((RATE_BATCHES, n))
    for k in range(steps):
        t = k * dt
        ge = ge * de + 1.0 * rng.poisson(lam_e)
        gi = gi * di + 5.0 * rng.poisson(lam_i)
        expo = (
            p["g_L"]
            * p["Delta_T"]
            * np.exp((np.minimum(v, p["V_peak"]) - p["V_th"]) / p["Delta_T"])
        )
        dv = (
            -p["g_L"] * (v - p["E_L"]) + expo - ge * (v - p["E_ex"]) - gi * (v - p["E_in"]) - w
        ) / p["C_m"]
        dw = (p["a"] * (v - p["E_L"]) - w) / p["tau_w"]
        free = refr <= 0
        v = np.where(free, v + dt * dv, p["V_reset"])
        w = w + dt * dw
        refr -= dt
        spk = v >= p["V_peak"]
        if spk.any():
            v[spk] = p["V_reset"]
            w[spk] += p["b"]
            refr[spk] = p["t_ref"]
            if t >= warmup_ms:
                b = min(int((t - warmup_ms) // batch), RATE_BATCHES - 1)
                counts[b, spk] += 1
    per_batch = counts / (batch / 1000.0)
    return per_batch.mean(0), per_batch.std(0, ddof=1) / np.sqrt(RATE_BATCHES)


def _tf_rows(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [
            {k: float(v) for k, v in r.items() if k not in ("population", "pop_name")}
            for r in csv.DictReader(f)
        ]


def test_adexp_transfer_function_matches_an_independent_integration(tmp_path: Path) -> None:
    points = [(4.0, 5.0), (8.0, 10.0), (10.0, 5.0), (20.0, 20.0)]
    reps, tstop, warm = 4, 5000.0, 500.0
    fe = [a for a, _ in points]
    fi = [b for _, b in points]
    d = write_tf_network(tmp_path / "tf", fe, fi, repeats=reps, tstop_ms=tstop, warmup_ms=warm)
    assert nest_main([str(d), "-q"]) == 0
    rows = _tf_rows(d / "output" / "transfer_function.csv")
    assert len(rows) == len(points) * reps
    assert list(rows[0]) == [
        "node_id", "fe_hz", "fi_hz", "rate_hz", "rate_se_hz", "v_mean_mV", "v_sd_mV",
    ]  # fmt: skip
    ref_rate, ref_se = euler_adex(
        np.repeat(fe, reps), np.repeat(fi, reps), ADEX_RS, tstop, warm, seed=7
    )
    for j, (a, b) in enumerate(points):
        mine = [r for r in rows if r["fe_hz"] == a and r["fi_hz"] == b]
        assert len(mine) == reps
        r_nest = np.mean([r["rate_hz"] for r in mine])
        se_nest = np.sqrt(np.sum([r["rate_se_hz"] ** 2 for r in mine])) / reps
        sl = slice(j * reps, (j + 1) * reps)
        r_ref = ref_rate[sl].mean()
        se_ref = np.sqrt(np.sum(ref_se[sl] ** 2)) / reps
        tol = 4.0 * np.hypot(se_nest, se_ref) + 0.5  # 0.5 Hz: rates of a few spikes in 4.5 s
        assert abs(r_nest - r_ref) <= tol, (a, b, r_nest, se_nest, r_ref, se_ref)
        # the membrane stays between the inhibitory reversal and the spike cut
        assert all(-80.0 < r["v_mean_mV"] < -40.0 and r["v_sd_mV"] > 0 for r in mine)
    # more excitation, more output; more inhibition, less
    rate = {(a, b): np.mean([r["rate_hz"] for r in rows if (r["fe_hz"], r["fi_hz"]) == (a, b)])
            for a, b in points}  # fmt: skip
    assert rate[(10.0, 5.0)] > rate[(4.0, 5.0)]
    assert rate[(10.0, 5.0)] > rate[(8.0, 10.0)]


# ------------------------------------------------------------------ Potjans-Diesmann 2014
#: NEST 3.10, the published PyNEST microcircuit at scale 0.1, seed 55, window 500-1500 ms (Hz).
PD14_REFERENCE = {
    "L23E": 0.52,
    "L23I": 2.12,
    "L4E": 3.96,
    "L4I": 5.01,
    "L5E": 6.48,
    "L5I": 7.82,
    "L6E": 0.84,
    "L6I": 7.01,
}


def _build_microcircuit(out: Path, *sets: str, spec_file: Path | None = None) -> Path:
    spec_file = spec_file or ROOT / "examples" / "microcircuit.json"
    cmd = [sys.executable, str(ROOT / "build_network.py"), str(spec_file)]
    cmd += ["-o", str(out), "-q", "--set", "scale=0.1"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # the example's run: 1.5 s, rates over 500-1500 ms (run.warmup_ms)
    cfg = json.loads((out / "simulation_config.json").read_text())
    assert (cfg["run"]["tstop"], cfg["run"]["warmup_ms"]) == (1500.0, 500.0)
    return out


def _rates(out: Path) -> dict[str, float]:
    with open(out / "output" / "rates.csv", newline="") as f:
        return {r["population"]: float(r["rate_hz"]) for r in csv.DictReader(f)}


#: The published model's own seed-to-seed range at scale 0.1 (Hz), where the issue gives it.
PD14_SEED_RANGE = {"L23E": (0.46, 0.52), "L5E": (6.33, 6.82)}


@pytest.mark.slow
def test_microcircuit_scale_01_reproduces_the_reference_rates(tmp_path: Path) -> None:
    """Three seeds (network and background): each keeps the reference's ordering; their mean
    is within 15 % + 0.1 Hz of the published rates, and within the seeds' spread (3 SD) plus
    the published model's own seed range of them."""
    runs = []
    for seed in (55, 56, 57):
        out = _build_microcircuit(tmp_path / f"pd14_{seed}", f"seed={seed}")
        assert nest_main([str(out), "-q"]) == 0
        rates = _rates(out)
        low = sorted(rates, key=rates.get)
        assert set(low[:2]) == {"L23E", "L6E"}, (seed, rates)
        assert max(rates, key=rates.get) == "L5I", (seed, rates)
        runs.append(rates)
    for pop, ref in PD14_REFERENCE.items():
        ours = np.array([r[pop] for r in runs])
        assert abs(ours.mean() - ref) <= 0.15 * ref + 0.1, (pop, ours, ref)
        lo, hi = PD14_SEED_RANGE.get(pop, (ref, ref))
        spread = 3.0 * ours.std(ddof=1) * np.sqrt(1 + 1 / ours.size) + (hi - lo)
        assert abs(ours.mean() - ref) <= spread + 0.05, (pop, ours, ref)


def _build(spec_file: Path, out: Path, *sets: str) -> Path:
    cmd = [sys.executable, str(ROOT / "build_network.py"), str(spec_file), "-o", str(out), "-q"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


#: A quick grid of the example: 3 points of each cell type, 3 s each (1 s warm-up).
QUICK_FE, QUICK_FI = [5.0, 10.0, 20.0], [5.0, 5.0, 10.0]


def _quick_tf_sets() -> list[str]:
    sets = ["run.duration_ms=3000"]
    for p in ("RS", "FS"):
        sets += [
            f"populations.{p}.count={len(QUICK_FE)}",
            f"populations.{p}.properties.fe_hz={json.dumps(QUICK_FE)}",
            f"populations.{p}.properties.fi_hz={json.dumps(QUICK_FI)}",
        ]
    return sets


def test_adexp_tf_example_gives_both_cell_types_table_and_figure(tmp_path: Path) -> None:
    """The example as the issue sets it (RS spike cut at V_th + 5 Delta_T, FS as a second
    cell type, a 1 s warm-up), on a quick grid: one table row per cell, the figure."""
    spec = json.loads((ROOT / "examples" / "adexp_tf.json").read_text())
    rs = spec["populations"]["RS"]["model"]["params"]
    fs = spec["populations"]["FS"]["model"]["params"]
    assert rs["V_peak"] == rs["V_th"] + 5 * rs["Delta_T"] == -40.0
    assert (fs["Delta_T"], fs["a"], fs["b"], fs["V_peak"]) == (0.5, 0.0, 0.0, -47.5)
    assert spec["populations"]["RS"]["count"] == 99 and spec["run"]["duration_ms"] == 10000.0
    assert {k: v for k, v in rs.items() if k in ADEX_RS} == ADEX_RS
    out = _build(ROOT / "examples" / "adexp_tf.json", tmp_path / "tf", *_quick_tf_sets())
    assert nest_main([str(out), "-q", "--plot"]) == 0
    rows = list(csv.DictReader(open(out / "output" / "transfer_function.csv", newline="")))
    assert [(r["population"], float(r["fe_hz"]), float(r["fi_hz"])) for r in rows] == [
        (p, a, b) for p in ("RS", "FS") for a, b in zip(QUICK_FE, QUICK_FI, strict=True)
    ]
    rate = {(r["population"], float(r["fe_hz"])): float(r["rate_hz"]) for r in rows}
    # no adaptation and a sharper spike onset: FS fires more than RS at the same input
    assert rate[("FS", 10.0)] > rate[("RS", 10.0)] > 0
    assert (out / "output" / "plots" / "transfer_function.png").stat().st_size > 10_000


def test_adexp_tf_sweep_and_collect_give_the_same_table(tmp_path: Path) -> None:
    """The grid as a sweep (one run per point, zip): ``run-network collect`` writes the table
    of the all-at-once run, with a run_id column, rows in grid order."""
    n = len(QUICK_FE)
    sweep = {
        "base": str(ROOT / "examples" / "adexp_tf.json"),
        "overrides": {"run.duration_ms": [3000.0] * n},
        "seeds": [1],
        "combine": "zip",
    }
    for p in ("RS", "FS"):
        sweep["overrides"][f"populations.{p}.count"] = [1] * n
        sweep["overrides"][f"populations.{p}.properties.fe_hz"] = QUICK_FE
        sweep["overrides"][f"populations.{p}.properties.fi_hz"] = QUICK_FI
    sfile = tmp_path / "sweep.json"
    sfile.write_text(json.dumps(sweep))
    d = tmp_path / "sw"
    cmd = [sys.executable, str(ROOT / "build_network.py"), "sweep", str(sfile), "-o", str(d), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for step in ([str(d), "-q"], ["collect", str(d), "-q"]):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "run_network.py"), *step],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(d / "transfer_function.csv", newline="")))
    one = tmp_path / "one"
    _build(ROOT / "examples" / "adexp_tf.json", one, *_quick_tf_sets())
    assert nest_main([str(one), "-q"]) == 0
    ref = list(csv.DictReader(open(one / "output" / "transfer_function.csv", newline="")))
    assert list(rows[0]) == ["run_id", *ref[0]]
    key = [(r["population"], r["fe_hz"], r["fi_hz"]) for r in rows]
    assert sorted(key) == sorted((r["population"], r["fe_hz"], r["fi_hz"]) for r in ref)
    assert len({r["run_id"] for r in rows}) == n
    # the same statistics within their errors (independent Poisson streams)
    by_key = {(r["population"], r["fe_hz"], r["fi_hz"]): r for r in ref}
    for r in rows:
        o = by_key[(r["population"], r["fe_hz"], r["fi_hz"])]
        se = np.hypot(float(r["rate_se_hz"]), float(o["rate_se_hz"]))
        assert abs(float(r["rate_hz"]) - float(o["rate_hz"])) <= 5 * se + 1.0, (r, o)


# ------------------------------------------------------------------ PD14 with DC background
POPS = list(PD14_REFERENCE)
AS_DC = [f"inputs.bg_{p}.as_dc=true" for p in POPS]


def test_dc_background_is_the_published_models_formula() -> None:
    """``as_dc``: the DC of the published package (bg_rate x K_ext x w_ext x tau_syn / 1000,
    full-scale K_ext and w_ext, not scaled), and the scaling compensation in I_e counts only
    the recurrent input (the Poisson part belongs to a Poisson background)."""
    import math

    from builder.core.spec.model import load_spec

    full = load_spec(ROOT / "examples" / "microcircuit.json")
    over = {k: True for k in (s.split("=")[0] for s in AS_DC)}
    dc = load_spec(ROOT / "examples" / "microcircuit.json", overrides={**over, "scale": 0.1})
    pois = load_spec(ROOT / "examples" / "microcircuit.json", overrides={"scale": 0.1})
    k = 1.0 - math.sqrt(0.1)
    for p in POPS:
        bg = full.inputs[f"bg_{p}"]
        amp = 8.0 * bg["indegree"] * 87.8 * 0.5 / 1000.0
        got = dict(dc.inputs[f"bg_{p}"])
        assert got.pop("amplitude_pA") == pytest.approx(amp, rel=1e-12)
        assert got == {"type": "dc", "target": p}
        i_dc = dc.populations[p]["model"]["params"]["I_e"]
        i_pois = pois.populations[p]["model"]["params"]["I_e"]
        # the Poisson background's share of the compensation: 0.5 ms x (1 - sqrt s) x its mean
        assert i_pois - i_dc == pytest.approx(0.001 * 0.5 * k * 8.0 * bg["indegree"] * 87.8)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="the published DC background is bistable at scale 0.1: with the compensation "
    "current for the scaled-down recurrent input the silent state is stable and the network "
    "falls into it (NEST's own Connect with the published formula: all populations 0 Hz but "
    "L6I 3.4 Hz, also with the published 'optimized' initial V_m or a 300 ms Poisson start); "
    "at scale 0.2 it is active and within the reference for seeds 55-57 (test below)",
)
def test_microcircuit_scale_01_with_dc_background(tmp_path: Path) -> None:
    out = _build_microcircuit(tmp_path / "pd14_dc01", *AS_DC)
    assert nest_main([str(out), "-q"]) == 0
    rates = _rates(out)
    for pop, ref in PD14_REFERENCE.items():
        assert abs(rates[pop] - ref) <= 0.15 * ref + 0.1, (pop, rates)


#: Seeds of the DC-background test (network draws and initial V_m; DC has no other noise).
DC_SEEDS = (55, 56, 57)


@pytest.mark.slow
def test_microcircuit_with_dc_background_reproduces_the_reference_rates(tmp_path: Path) -> None:
    """DC background (the published formula) at scale 0.2, where the active state is the
    stable one, over three seeds: each keeps the reference's ordering (L23E and L6E the
    lowest, L5I the highest) and their mean is within 15 % + 0.1 Hz of the published
    scale-0.1 rates. Measured (Hz, L23E ... L6I): seed 55 0.59 2.18 3.78 4.87 7.05 7.60 0.85
    6.69; seed 56 0.60 2.19 3.77 4.85 6.96 7.55 0.79 6.71; seed 57 0.54 2.19 3.77 4.87 7.43
    7.52 0.88 6.78. Each seed builds and runs in about 30 s of CPU at 1.2 GB peak (scale 0.25
    took 40 s and 1.6 GB per seed)."""
    runs = []
    for seed in DC_SEEDS:
        out = _build_microcircuit(tmp_path / f"pd14_dc_{seed}", "scale=0.2", f"seed={seed}", *AS_DC)
        assert nest_main([str(out), "-q"]) == 0
        rates = _rates(out)
        shutil.rmtree(out / "network")  # 12 M edges each: keep the disk use of one seed
        low = sorted(rates, key=rates.get)
        assert set(low[:2]) == {"L23E", "L6E"}, (seed, rates)
        assert max(rates, key=rates.get) == "L5I", (seed, rates)
        runs.append(rates)
    for pop, ref in PD14_REFERENCE.items():
        ours = np.array([r[pop] for r in runs])
        assert abs(ours.mean() - ref) <= 0.15 * ref + 0.1, (pop, ours, ref)
