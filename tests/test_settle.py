"""The runner's start from the resting steady state, and its fallback for cells without one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.neuron

PROBE = textwrap.dedent(
    """
    import json, os
    os.environ["NEURON_MODULE_OPTIONS"] = "-nogui"
    from neuron import h
    from builder.simulators.neuron.runner import _steady_state_init
    h.load_file("stdrun.hoc")
    _steady_state_init(h)
    out = {}
    for name, g in (("stable", 1e-4), ("unstable", -1e-4)):
        s = h.Section(name=name)
        s.insert("pas")
        s.g_pas, s.e_pas = g, -70.0
        # a fixed inward current: the stable cell rests at e_pas + I/g, not at v_init
        ic = h.IClamp(s(0.5)); ic.delay, ic.dur, ic.amp = -1e9, 2e9, 0.001
        h.v_init = -65.0
        h.dt = 0.1
        h.stdinit()
        out[name] = {"t": h.t, "v": s(0.5).v, "ok": h.settle_ok_l5net}
        h.tstop = 5.0
        h.continuerun(5.0)
        out[name]["v_after"] = s(0.5).v
        del ic, s
    print("RESULT " + json.dumps(out))
    """
)


def test_settle_reaches_rest_and_falls_back_when_there_is_none():
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and line, r.stderr[-2000:]
    res = json.loads(line[0][len("RESULT ") :])
    stable, unstable = res["stable"], res["unstable"]
    assert stable["ok"] == 1 and stable["t"] == 0.0
    assert stable["v"] != pytest.approx(-65.0, abs=1e-3)  # not left at v_init
    assert stable["v_after"] == pytest.approx(stable["v"], abs=1e-6)  # already at rest
    # negative leak: no stable rest, the settle diverges -> plain finitialize(v_init)
    assert unstable["ok"] == 0 and unstable["t"] == 0.0
    assert unstable["v"] == pytest.approx(-65.0)
