COMMENT
SK_E2: small-conductance calcium-activated potassium current of the Hay et al. (2011) L5b
pyramidal cell (l5net project, written for it from the published kinetics).

Kinetics: Koehler et al. (1996) Science 273:1709 (Hill fit of the Ca dependence), as used by
Hay et al. (2011) PLoS Comput Biol 7:e1002107. One gate z, voltage independent:
    z_inf = 1 / (1 + (0.00043 mM / c)^4.8),   c = cai (cai + 1e-7 mM when cai < 1e-7 mM),
    tau_z = zTau = 1 ms at 34 degC, divided by tadj = q10^((celsius - 34)/10), q10 = 2.3.
g = gSK_E2bar z, ik = g (v - ek).  Hay's parameter names.
ENDCOMMENT

NEURON {
    SUFFIX SK_E2
    USEION k READ ek WRITE ik
    USEION ca READ cai
    RANGE gSK_E2bar, gSK_E2, tadj
    RANGE z_k, dt_k
    GLOBAL zTau, q10, tbase
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
    (mM) = (milli/liter)
}

PARAMETER {
    gSK_E2bar = 0.000001 (S/cm2)
    zTau = 1 (ms)
    q10 = 2.3
    tbase = 34 (degC)
}

ASSIGNED {
    v (mV)
    ek (mV)
    cai (mM)
    ik (mA/cm2)
    gSK_E2 (S/cm2)
    celsius (degC)
    tadj
    z_k
    dt_k (ms)
}

STATE { z }

BREAKPOINT {
    SOLVE kin
    gSK_E2 = gSK_E2bar * z
    ik = gSK_E2 * (v - ek)
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE gSK_E2 USEION k
}

UNITSOFF : the rate expressions below are in mV and ms

INITIAL {
    tadj = q10^((celsius - tbase) / 10 (degC))
    z = zinf(cai)
    dt_k = -1
}

: speed: the exact-exponential (cnexp) update of z' = tadj (zinf - z) / zTau with its constant
: decay factor z_k = 1 - exp(-dt tadj / zTau) computed once per dt, not every step
PROCEDURE kin() {
    if (dt != dt_k) {
        z_k = 1 - exp(-dt * tadj / zTau)
        dt_k = dt
    }
    z = z + z_k * (zinf(cai) - z)
}

FUNCTION zinf(c (mM)) {
    if (c < 1e-7) {
        c = c + 1e-7
    }
    zinf = 1 / (1 + (0.00043 / c)^4.8)
}
UNITSON
