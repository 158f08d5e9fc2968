COMMENT
Ca_HVA: high-voltage-activated calcium current of the Hay et al. (2011) L5b pyramidal cell
(l5net project, written for it from the published kinetics).

Kinetics: Reuveni et al. (1993) J Neurosci 13:4609, as used by Hay et al. (2011) PLoS Comput
Biol 7:e1002107. Gates m^2 h (rates in 1/ms):
    alpha_m = 0.055 (-27 - v) / (exp((-27 - v)/3.8) - 1),   beta_m = 0.94 exp((-75 - v)/17)
    alpha_h = 0.000457 exp((-13 - v)/50),                   beta_h = 0.0065 / (exp((-15 - v)/28) + 1)
Hay used these rates as they are at 34 degC; here they scale with tadj = q10^((celsius - 34)/10),
q10 = 2.3 (1 at 34 degC; set at finitialize).  g = gCa_HVAbar m^2 h, ica = g (v - eca).
Hay's parameter names.
ENDCOMMENT

NEURON {
    SUFFIX Ca_HVA
    USEION ca READ eca WRITE ica
    RANGE gCa_HVAbar, gCa_HVA, tadj
    RANGE m_inf, m_k, h_inf, h_k
    GLOBAL q10, tbase
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gCa_HVAbar = 0.00001 (S/cm2)
    q10 = 2.3
    tbase = 34 (degC)
}

ASSIGNED {
    v (mV)
    eca (mV)
    ica (mA/cm2)
    gCa_HVA (S/cm2)
    celsius (degC)
    tadj
    m_inf
    m_k
    h_inf
    h_k
}

STATE { m h }

BREAKPOINT {
    SOLVE kin
    gCa_HVA = gCa_HVAbar * m * m * h
    ica = gCa_HVA * (v - eca)
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE gCa_HVA USEION ca
}

UNITSOFF : the rate expressions below are in mV and ms

INITIAL {
    tadj = q10^((celsius - tbase) / 10 (degC))
    m = am(v) / (am(v) + bm(v))
    h = ah(v) / (ah(v) + bh(v))
}

PROCEDURE kin() {
    rates(v)
    m = m + m_k * (m_inf - m)
    h = h + h_k * (h_inf - h)
}

: 0.055 (-27 - v) / (exp((-27 - v)/3.8) - 1), continuous through v = -27 mV
FUNCTION am(v (mV)) (/ms) {
    LOCAL x
    TABLE FROM -150 TO 100 WITH 10000
    x = -27 - v
    if (fabs(x / 3.8) < 1e-6) {
        am = 0.055 * 3.8 * (1 - x / 3.8 / 2)
    } else {
        am = 0.055 * x / (exp(x / 3.8) - 1)
    }
}

FUNCTION bm(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    bm = 0.94 * exp((-75 - v) / 17)
}

FUNCTION ah(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    ah = 0.000457 * exp((-13 - v) / 50)
}

FUNCTION bh(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    bh = 0.0065 / (exp((-15 - v) / 28) + 1)
}

: speed: each step's exact-exponential (cnexp) update with the decay factor k = 1 - exp(-dt/tau)
: and the steady state tabulated together over v (one lookup, no exp per instance and step)
PROCEDURE rates(v (mV)) {
    LOCAL q, a, b
    TABLE m_inf, m_k, h_inf, h_k DEPEND dt, celsius, q10, tbase FROM -150 TO 100 WITH 10000
    q = q10^((celsius - tbase) / 10 (degC))
    a = am(v)
    b = bm(v)
    m_inf = a / (a + b)
    m_k = 1 - exp(-dt * q * (a + b))
    a = ah(v)
    b = bh(v)
    h_inf = a / (a + b)
    h_k = 1 - exp(-dt * q * (a + b))
}
UNITSON
