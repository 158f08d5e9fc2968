COMMENT
K_Tst: fast-inactivating ("transient") potassium current of the Hay et al. (2011) L5b
pyramidal cell (l5net project, written for it from the published kinetics).

Kinetics: Korngreen & Sakmann (2000) J Physiol 525:621, as used by Hay et al. (2011) PLoS
Comput Biol 7:e1002107: curves shifted by vshift = -10 mV (junction potential), evaluated at
u = v - vshift; time constants measured at 21 degC divided by tadj = q10^((celsius - 21)/10),
q10 = 2.3 (set at finitialize). Gates m^4 h:
    m_inf = 1 / (1 + exp(-u/19)),          tau_m = 0.34 + 0.92 exp(-((u + 71)/59)^2)   (ms)
    h_inf = 1 / (1 + exp((u + 66)/10)),    tau_h = 8 + 49 exp(-((u + 73)/23)^2)        (ms)
g = gK_Tstbar m^4 h, ik = g (v - ek).  Hay's parameter names.
ENDCOMMENT

NEURON {
    SUFFIX K_Tst
    USEION k READ ek WRITE ik
    RANGE gK_Tstbar, gK_Tst, tadj
    GLOBAL q10, tbase, vshift
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gK_Tstbar = 0.00001 (S/cm2)
    q10 = 2.3
    tbase = 21 (degC)
    vshift = -10 (mV)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    gK_Tst (S/cm2)
    celsius (degC)
    tadj
}

STATE { m h }

BREAKPOINT {
    SOLVE kin METHOD cnexp
    gK_Tst = gK_Tstbar * m * m * m * m * h
    ik = gK_Tst * (v - ek)
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE gK_Tst USEION k
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
    taum = 0.34 + 0.92 * exp(-((u + 71) / 59)^2)
}

FUNCTION tauh(u (mV)) (ms) {
    TABLE FROM -150 TO 100 WITH 10000
    tauh = 8 + 49 * exp(-((u + 73) / 23)^2)
}

FUNCTION minf(u (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    minf = 1 / (1 + exp(-u / 19))
}

FUNCTION hinf(u (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    hinf = 1 / (1 + exp((u + 66) / 10))
}
UNITSON
