COMMENT
Im: muscarine-sensitive (M-type) potassium current of the Hay et al. (2011) L5b pyramidal cell
(l5net project, written for it from the published kinetics).

Kinetics: Adams, Brown & Constanti (1982) J Physiol 330:537, as used by Hay et al. (2011) PLoS
Comput Biol 7:e1002107. One gate m (rates in 1/ms):
    alpha_m = 0.0033 exp(0.1 (v + 35)),    beta_m = 0.0033 exp(-0.1 (v + 35))
rates measured at 21 degC, multiplied by tadj = q10^((celsius - 21)/10), q10 = 2.3
(set at finitialize).  g = gImbar m, ik = g (v - ek).  Hay's parameter names.
ENDCOMMENT

NEURON {
    SUFFIX Im
    USEION k READ ek WRITE ik
    RANGE gImbar, gIm, tadj
    RANGE m_inf, m_k
    GLOBAL q10, tbase
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gImbar = 0.00001 (S/cm2)
    q10 = 2.3
    tbase = 21 (degC)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    gIm (S/cm2)
    celsius (degC)
    tadj
    m_inf
    m_k
}

STATE { m }

BREAKPOINT {
    SOLVE kin
    gIm = gImbar * m
    ik = gIm * (v - ek)
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE gIm USEION k
}

UNITSOFF : the rate expressions below are in mV and ms

INITIAL {
    tadj = q10^((celsius - tbase) / 10 (degC))
    m = minf(v)
}

PROCEDURE kin() {
    rates(v)
    m = m + m_k * (m_inf - m)
}

: alpha + beta = 0.0033 (e + 1/e) with e = exp(0.1 (v + 35)); alpha / (alpha + beta) = minf
FUNCTION mrate(v (mV)) (/ms) {
    LOCAL e
    TABLE FROM -150 TO 100 WITH 10000
    e = exp(0.1 * (v + 35))
    mrate = 0.0033 * (e + 1 / e)
}

FUNCTION minf(v (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    minf = 1 / (1 + exp(-0.2 * (v + 35)))
}

: speed: each step's exact-exponential (cnexp) update with the decay factor k = 1 - exp(-dt/tau)
: and the steady state tabulated together over v (one lookup, no exp per instance and step)
PROCEDURE rates(v (mV)) {
    LOCAL q
    TABLE m_inf, m_k DEPEND dt, celsius, q10, tbase FROM -150 TO 100 WITH 10000
    q = q10^((celsius - tbase) / 10 (degC))
    m_inf = minf(v)
    m_k = 1 - exp(-dt * q * mrate(v))
}
UNITSON
