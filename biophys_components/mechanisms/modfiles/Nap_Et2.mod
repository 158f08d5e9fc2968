COMMENT
Nap_Et2: persistent sodium current of the Hay et al. (2011) L5b pyramidal cell
(l5net project, written for it from the published kinetics).

Kinetics: steady states from Magistretti & Alonso (1999) J Gen Physiol 114:491, as used by
Hay et al. (2011) PLoS Comput Biol 7:e1002107. Gates m^3 h:
    m_inf = 1 / (1 + exp(-(v + 52.6)/4.6))
    tau_m = 6 / (alpha + beta) with NaTa_t's activation rates (x = v + 38 mV)
            alpha = 0.182 x / (1 - exp(-x/6)),  beta = -0.124 x / (1 - exp(x/6))
    h_inf = 1 / (1 + exp((v + 48.8)/10))
    tau_h = 1 / (alpha_h + beta_h),
            alpha_h = -2.88e-6 (v + 17) / (1 - exp((v + 17)/4.63))
            beta_h  =  6.94e-6 (v + 64.4) / (1 - exp(-(v + 64.4)/2.63))        (1/ms)
Time constants measured at 21 degC, divided by tadj = q10^((celsius - 21)/10), q10 = 2.3,
set at finitialize.  g = gNap_Et2bar m^3 h, ina = g (v - ena).  Hay's parameter names.
ENDCOMMENT

NEURON {
    SUFFIX Nap_Et2
    USEION na READ ena WRITE ina
    RANGE gNap_Et2bar, gNap_Et2, tadj
    GLOBAL q10, tbase
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gNap_Et2bar = 0.00001 (S/cm2)
    q10 = 2.3
    tbase = 21 (degC)
}

ASSIGNED {
    v (mV)
    ena (mV)
    ina (mA/cm2)
    gNap_Et2 (S/cm2)
    celsius (degC)
    tadj
}

STATE { m h }

BREAKPOINT {
    SOLVE kin METHOD cnexp
    gNap_Et2 = gNap_Et2bar * m * m * m * h
    ina = gNap_Et2 * (v - ena)
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE gNap_Et2 USEION na
}

UNITSOFF : the rate expressions below are in mV and ms

INITIAL {
    tadj = q10^((celsius - tbase) / 10 (degC))
    m = minf(v)
    h = hinf(v)
}

DERIVATIVE kin {
    : each rate looked up once per step (cnexp repeats a function call for every occurrence)
    LOCAL mr, mi, hr, hi
    mr = mrate(v)
    mi = minf(v)
    hr = hrate(v)
    hi = hinf(v)
    m' = tadj * mr * (mi - m)
    h' = tadj * hr * (hi - h)
}

: 1 / tau_m at tbase (1/ms): (alpha_m + beta_m) / 6
FUNCTION mrate(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    mrate = (0.182 * linoid(v + 38, 6) + 0.124 * linoid(-(v + 38), 6)) / 6
}

: 1 / tau_h at tbase (1/ms): alpha_h + beta_h
FUNCTION hrate(v (mV)) (/ms) {
    TABLE FROM -150 TO 100 WITH 10000
    hrate = 2.88e-6 * linoid(-(v + 17), 4.63) + 6.94e-6 * linoid(v + 64.4, 2.63)
}

: x / (1 - exp(-x/k)), continuous through x = 0 (where it equals k)
FUNCTION linoid(x, k) {
    if (fabs(x / k) < 1e-6) {
        linoid = k * (1 + x / k / 2)
    } else {
        linoid = x / (1 - exp(-x / k))
    }
}

FUNCTION minf(v (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    minf = 1 / (1 + exp(-(v + 52.6) / 4.6))
}

FUNCTION hinf(v (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    hinf = 1 / (1 + exp((v + 48.8) / 10))
}
UNITSON
