COMMENT
Ca_LVAst: low-voltage-activated (T-type) calcium current of the Hay et al. (2011) L5b
pyramidal cell (l5net project, written for it from the published kinetics).

Kinetics: steady states from Avery & Johnston (1996) J Neurosci 16:5567, time constants
approximated from Randall & Tsien (1997) Neuropharmacology 36:879, as used by Hay et al. (2011)
PLoS Comput Biol 7:e1002107: curves shifted by vshift = -10 mV (junction potential), evaluated
at u = v - vshift; time constants measured at 21 degC divided by
tadj = q10^((celsius - 21)/10), q10 = 2.3 (set at finitialize). Gates m^2 h:
    m_inf = 1 / (1 + exp(-(u + 30)/6)),     tau_m = 5 + 20 / (1 + exp((u + 25)/5))    (ms)
    h_inf = 1 / (1 + exp((u + 80)/6.4)),    tau_h = 20 + 50 / (1 + exp((u + 40)/7))   (ms)
g = gCa_LVAstbar m^2 h, ica = g (v - eca).  Hay's parameter names.
ENDCOMMENT

NEURON {
    SUFFIX Ca_LVAst
    USEION ca READ eca WRITE ica
    RANGE gCa_LVAstbar, gCa_LVAst, tadj
    RANGE m_inf, m_k, h_inf, h_k
    GLOBAL q10, tbase, vshift
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gCa_LVAstbar = 0.00001 (S/cm2)
    q10 = 2.3
    tbase = 21 (degC)
    vshift = -10 (mV)
}

ASSIGNED {
    v (mV)
    eca (mV)
    ica (mA/cm2)
    gCa_LVAst (S/cm2)
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
    gCa_LVAst = gCa_LVAstbar * m * m * h
    ica = gCa_LVAst * (v - eca)
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE gCa_LVAst USEION ca
}

UNITSOFF : the rate expressions below are in mV and ms

INITIAL {
    tadj = q10^((celsius - tbase) / 10 (degC))
    m = minf(v - vshift)
    h = hinf(v - vshift)
}

PROCEDURE kin() {
    rates(v)
    m = m + m_k * (m_inf - m)
    h = h + h_k * (h_inf - h)
}

FUNCTION taum(u (mV)) (ms) {
    TABLE FROM -150 TO 100 WITH 10000
    taum = 5 + 20 / (1 + exp((u + 25) / 5))
}

FUNCTION tauh(u (mV)) (ms) {
    TABLE FROM -150 TO 100 WITH 10000
    tauh = 20 + 50 / (1 + exp((u + 40) / 7))
}

FUNCTION minf(u (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    minf = 1 / (1 + exp(-(u + 30) / 6))
}

FUNCTION hinf(u (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    hinf = 1 / (1 + exp((u + 80) / 6.4))
}

: speed: each step's exact-exponential (cnexp) update with the decay factor k = 1 - exp(-dt/tau)
: and the steady state tabulated together over v (one lookup, no exp per instance and step)
PROCEDURE rates(v (mV)) {
    LOCAL q, u
    TABLE m_inf, m_k, h_inf, h_k DEPEND dt, celsius, q10, tbase, vshift FROM -150 TO 100 WITH 10000
    q = q10^((celsius - tbase) / 10 (degC))
    u = v - vshift
    m_inf = minf(u)
    m_k = 1 - exp(-dt * q / taum(u))
    h_inf = hinf(u)
    h_k = 1 - exp(-dt * q / tauh(u))
}
UNITSON
