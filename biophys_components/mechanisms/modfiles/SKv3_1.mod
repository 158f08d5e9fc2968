COMMENT
SKv3_1: fast, high-threshold Kv3.1 potassium current of the Hay et al. (2011) L5b pyramidal
cell (l5net project, written for it from the published kinetics).

Kinetics: Rettig et al. (1992) EMBO J 11:2473, as used by Hay et al. (2011) PLoS Comput Biol
7:e1002107. One gate m:
    m_inf = 1 / (1 + exp(-(v - 18.7)/9.7)),   tau_m = 4 / (1 + exp(-(v + 46.56)/44.14))  (ms)
Hay used these rates as they are at 34 degC; here they scale with tadj = q10^((celsius - 34)/10),
q10 = 2.3 (1 at 34 degC; set at finitialize).  g = gSKv3_1bar m, ik = g (v - ek).
Hay's parameter names.
ENDCOMMENT

NEURON {
    SUFFIX SKv3_1
    USEION k READ ek WRITE ik
    RANGE gSKv3_1bar, gSKv3_1, tadj
    RANGE m_inf, m_k
    GLOBAL q10, tbase
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gSKv3_1bar = 0.00001 (S/cm2)
    q10 = 2.3
    tbase = 34 (degC)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    gSKv3_1 (S/cm2)
    celsius (degC)
    tadj
    m_inf
    m_k
}

STATE { m }

BREAKPOINT {
    SOLVE kin
    gSKv3_1 = gSKv3_1bar * m
    ik = gSKv3_1 * (v - ek)
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE gSKv3_1 USEION k
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

: 1 / tau_m (1/ms), tau_m = 4 / (1 + exp(-(v + 46.56)/44.14))
FUNCTION mrate(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    mrate = 0.25 * (1 + exp(-(v + 46.56) / 44.14))
}

FUNCTION minf(v (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    minf = 1 / (1 + exp(-(v - 18.7) / 9.7))
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
