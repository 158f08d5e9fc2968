COMMENT
CaDynamics_E2: submembrane calcium pool of the Hay et al. (2011) L5b pyramidal cell
(l5net project, written for it from the published equation).

A shell of depth `depth` under the membrane takes the calcium current; a fraction `gamma` of
it stays free (the rest is buffered), and the free concentration relaxes to minCai with time
constant `decay` (after Destexhe et al. 1994; Hay et al. 2011 PLoS Comput Biol 7:e1002107):
    dcai/dt = -(1e4 um/cm) gamma ica / (2 F depth) - (cai - minCai) / decay
cai starts from the ion's initial value (cai0_ca_ion).  Hay's parameter names.
ENDCOMMENT

NEURON {
    SUFFIX CaDynamics_E2
    USEION ca READ ica WRITE cai
    RANGE decay, gamma, minCai, depth
    RANGE cai_k, dt_k
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    FARADAY = (faraday) (coulombs)
    (molar) = (1/liter)
    (mM) = (millimolar)
    (um) = (micron)
}

PARAMETER {
    gamma = 0.05        : free fraction of the calcium entering the shell
    decay = 80 (ms)     : removal time constant
    depth = 0.1 (um)    : shell depth
    minCai = 1e-4 (mM)  : resting free calcium
}

ASSIGNED {
    ica (mA/cm2)
    cai_k
    dt_k (ms)
}

STATE { cai (mM) }

BREAKPOINT { SOLVE pool }

INITIAL { dt_k = -1 }

: speed: the exact-exponential (cnexp) update of
:     cai' = -(10000) ica gamma / (2 FARADAY depth) - (cai - minCai) / decay
: with ica held over the step, its decay factor cai_k = 1 - exp(-dt / decay) computed once per dt
PROCEDURE pool() {
    if (dt != dt_k) {
        cai_k = 1 - exp(-dt / decay)
        dt_k = dt
    }
    cai = cai + cai_k * (minCai - (10000) * ica * gamma * decay / (2 * FARADAY * depth) - cai)
}
