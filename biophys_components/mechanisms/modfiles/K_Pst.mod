COMMENT
K_Pst: slowly inactivating ("persistent") potassium current of the Hay et al. (2011) L5b
pyramidal cell (l5net project, written for it from the published kinetics).

Kinetics: Korngreen & Sakmann (2000) J Physiol 525:621, as used by Hay et al. (2011) PLoS
Comput Biol 7:e1002107: the published curves are shifted by vshift = -10 mV (liquid junction
potential), i.e. evaluated at u = v - vshift, and the time constants, measured at 21 degC,
are divided by tadj = q10^((celsius - 21)/10), q10 = 2.3 (set at finitialize). Gates m^2 h:
    m_inf = 1 / (1 + exp(-(u + 1)/12))
    tau_m = 1.25 + 175.03 exp(0.026 u)    for u < -50 mV
          = 1.25 + 13 exp(-0.026 u)       otherwise                               (ms)
    h_inf = 1 / (1 + exp((u + 54)/11))
    tau_h = 360 + (1010 + 24 (u + 55)) exp(-((u + 75)/48)^2)                     (ms)
g = gK_Pstbar m^2 h, ik = g (v - ek).  Hay's parameter names.
ENDCOMMENT

NEURON {
    SUFFIX K_Pst
    USEION k READ ek WRITE ik
    RANGE gK_Pstbar, gK_Pst, tadj
    GLOBAL q10, tbase, vshift
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gK_Pstbar = 0.00001 (S/cm2)
    q10 = 2.3
    tbase = 21 (degC)
    vshift = -10 (mV)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    gK_Pst (S/cm2)
    celsius (degC)
    tadj
}

STATE { m h }

BREAKPOINT {
    SOLVE kin METHOD cnexp
    gK_Pst = gK_Pstbar * m * m * h
    ik = gK_Pst * (v - ek)
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE gK_Pst USEION k
}

UNITSOFF : the rate expressions below are in mV and ms

INITIAL {
    tadj = q10^((celsius - tbase) / 10 (degC))
    m = minf(v - vshift)
    h = hinf(v - vshift)
}

DERIVATIVE kin {
    : each rate looked up once per step (cnexp repeats a function call for every occurrence)
    LOCAL u, mi, mt, hi, ht
    u = v - vshift
    mi = minf(u)
    mt = taum(u)
    hi = hinf(u)
    ht = tauh(u)
    m' = tadj * (mi - m) / mt
    h' = tadj * (hi - h) / ht
}

FUNCTION taum(u (mV)) (ms) {
    TABLE FROM -150 TO 100 WITH 10000
    if (u < -50) {
        taum = 1.25 + 175.03 * exp(0.026 * u)
    } else {
        taum = 1.25 + 13 * exp(-0.026 * u)
    }
}

FUNCTION tauh(u (mV)) (ms) {
    TABLE FROM -150 TO 100 WITH 10000
    tauh = 360 + (1010 + 24 * (u + 55)) * exp(-((u + 75) / 48)^2)
}

FUNCTION minf(u (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    minf = 1 / (1 + exp(-(u + 1) / 12))
}

FUNCTION hinf(u (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    hinf = 1 / (1 + exp((u + 54) / 11))
}
UNITSON
