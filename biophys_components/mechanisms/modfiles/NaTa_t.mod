COMMENT
NaTa_t: fast-inactivating sodium current of the Hay et al. (2011) L5b pyramidal cell
(l5net project, written for it from the published kinetics).

Kinetics: Colbert & Pan (2002) Nat Neurosci 5:533, as used by Hay et al. (2011) PLoS Comput
Biol 7:e1002107. Gates m^3 h; with x = v + 38 mV and y = v + 66 mV
    alpha_m = 0.182 x / (1 - exp(-x/6)),      beta_m = -0.124 x / (1 - exp(x/6))     (1/ms)
    alpha_h = -0.015 y / (1 - exp(y/6)),      beta_h = 0.015 y / (1 - exp(-y/6))     (1/ms)
    inf = alpha / (alpha + beta),  tau = 1 / ((alpha + beta) qt)
Rates measured at 21 degC, scaled with q10 = 2.3: tadj = q10^((celsius - 21)/10), set at
finitialize (at Hay's 34 degC, tadj = 2.95).  g = gNaTa_tbar m^3 h, ina = g (v - ena).
Parameter and range names are Hay's, so his biophysics files can set them.
ENDCOMMENT

NEURON {
    SUFFIX NaTa_t
    USEION na READ ena WRITE ina
    RANGE gNaTa_tbar, gNaTa_t, tadj
    RANGE m_inf, m_k, h_inf, h_k
    GLOBAL q10, tbase
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gNaTa_tbar = 0.00001 (S/cm2)
    q10 = 2.3
    tbase = 21 (degC)   : temperature of the rate measurements
}

ASSIGNED {
    v (mV)
    ena (mV)
    ina (mA/cm2)
    gNaTa_t (S/cm2)
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
    gNaTa_t = gNaTa_tbar * m * m * m * h
    ina = gNaTa_t * (v - ena)
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE gNaTa_t USEION na
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

: x / (1 - exp(-x/k)), continuous through x = 0 (where it equals k)
FUNCTION linoid(x, k) {
    if (fabs(x / k) < 1e-6) {
        linoid = k * (1 + x / k / 2)
    } else {
        linoid = x / (1 - exp(-x / k))
    }
}

FUNCTION am(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    am = 0.182 * linoid(v + 38, 6)
}

FUNCTION bm(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    bm = 0.124 * linoid(-(v + 38), 6)
}

FUNCTION ah(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    ah = 0.015 * linoid(-(v + 66), 6)
}

FUNCTION bh(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    bh = 0.015 * linoid(v + 66, 6)
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
