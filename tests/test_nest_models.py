"""Models run through the NEST runner against references: the AdExp transfer function against
an independent integration written here, and the Potjans-Diesmann microcircuit against the
published rates."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nest_networks import ADEX_RS, write_tf_network

pytest.importorskip("nest", reason="nest-simulator is not installed (pip install .[nest])")

from builder.nest.runner import RATE_BATCHES  # noqa: E402
from builder.nest.runner import main as nest_main  # noqa: E402

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
    cmd += ["-o", str(out), "-q", "--set", "scale=0.1", "--set", "run.duration_ms=1500"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # the recording window excludes the first 0.5 s (the spec has no warm-up key yet)
    cfg = json.loads((out / "simulation_config.json").read_text())
    cfg["run"]["warmup_ms"] = 500.0
    (out / "simulation_config.json").write_text(json.dumps(cfg, indent=1))
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
