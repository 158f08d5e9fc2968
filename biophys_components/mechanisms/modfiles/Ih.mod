COMMENT
Ih: hyperpolarisation-activated cation (HCN) current of the Hay et al. (2011) L5b pyramidal
cell (l5net project, written for it from the published kinetics).

Kinetics: Kole, Hallermann & Stuart (2006) J Neurosci 26:1677, as used by Hay et al. (2011)
PLoS Comput Biol 7:e1002107. One gate m (rates in 1/ms), x = v + 154.9 mV:
    alpha_m = 0.00643 x / (exp(x/11.9) - 1),    beta_m = 0.193 exp(v/33.1)
Kole et al. recorded at 33-34 degC and Hay used the rates as they are at 34 degC; here they
scale with tadj = q10^((celsius - 34)/10), q10 = 2.3 (1 at 34 degC; set at finitialize).
Non-specific current ihcn = gIhbar m (v - ehcn), ehcn = -45 mV.  Hay's parameter names.
ENDCOMMENT

NEURON {
    SUFFIX Ih
    NONSPECIFIC_CURRENT ihcn
    RANGE gIhbar, gIh, ehcn, tadj
    RANGE m_inf, m_k
    GLOBAL q10, tbase
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gIhbar = 0.00001 (S/cm2)
    ehcn = -45 (mV)
    q10 = 2.3
    tbase = 34 (degC)
}

ASSIGNED {
    v (mV)
    ihcn (mA/cm2)
    gIh (S/cm2)
    celsius (degC)
    tadj
    m_inf
    m_k
}

STATE { m }

BREAKPOINT {
    SOLVE kin
    gIh = gIhbar * m
    ihcn = gIh * (v - ehcn)
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE gIh
}

UNITSOFF : the rate expressions below are in mV and ms

INITIAL {
    tadj = q10^((celsius - tbase) / 10 (degC))
    m = am(v) / (am(v) + bm(v))
}

PROCEDURE kin() {
    rates(v)
    m = m + m_k * (m_inf - m)
}

: 0.00643 x / (exp(x/11.9) - 1), continuous through x = 0
FUNCTION am(v (mV)) (/ms) {
    LOCAL x
    TABLE FROM -150 TO 100 WITH 10000
    x = v + 154.9
    if (fabs(x / 11.9) < 1e-6) {
        am = 0.00643 * 11.9 * (1 - x / 11.9 / 2)
    } else {
        am = 0.00643 * x / (exp(x / 11.9) - 1)
    }
}

FUNCTION bm(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    bm = 0.193 * exp(v / 33.1)
}

: speed: each step's exact-exponential (cnexp) update with the decay factor k = 1 - exp(-dt/tau)
: and the steady state tabulated together over v (one lookup, no exp per instance and step)
PROCEDURE rates(v (mV)) {
    LOCAL q, a, b
    TABLE m_inf, m_k DEPEND dt, celsius, q10, tbase FROM -150 TO 100 WITH 10000
    q = q10^((celsius - tbase) / 10 (degC))
    a = am(v)
    b = bm(v)
    m_inf = a / (a + b)
    m_k = 1 - exp(-dt * q * (a + b))
}
UNITSON
