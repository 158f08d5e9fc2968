COMMENT
pyr2pyr: excitatory synapse onto a pyramidal cell (l5net project, written for it).

Two dual-exponential conductances driven by the same presynaptic events:
  AMPA   rise tau_r_AMPA, decay tau_d_AMPA, peak gbar_AMPA per unit event amplitude
  NMDA   rise tau_r_NMDA, decay tau_d_NMDA, peak gbar_NMDA per unit event amplitude,
         times the Mg2+ block B(v) = 1 / (1 + exp(-0.08 v) mg / 3.57)   (v in mV, mg in mM)
  i = (g_AMPA + g_NMDA) (v - e)

Each dual exponential is the difference of two decaying states (decay minus rise), scaled so
that one event of amplitude 1 peaks at exactly 1.

Per connection (one NetCon), kept in the NetCon's weight vector so that any number of NetCons
may share one point process:
  - short-term plasticity: facilitation F (F -> F + f at every presynaptic spike, relaxes to 1
    with tauF) and two depression factors D1, D2 (multiplied by d1, d2 at every *release*,
    recover to 1 with tauD1, tauD2);
  - stochastic release: at each presynaptic spike the connection releases with probability P_0;
    a release adds weight * initW * F * D1 * D2 to BOTH the AMPA and the NMDA conductance, a
    failure adds nothing to either;
  - its Random123 stream: the uniform number of the n-th draw of a connection is
    philox4x32(counter = {n, id1, id2, id3}, key = {NEURON global index}), word 0,
    mapped to (0, 1). The ids are either the NetCon's own (weight vector slots 1-3, used when
    slot 4 is 1) or the point process's rng_id1..3 (when rng_set is 1). Both are set from
    Python (builder.nrn.synapses.set_release_stream). With 0 < P_0 < 1, a connection without
    a stream, or several connections falling back to the same point-process stream, is an
    error at finitialize.

Because every per-connection quantity lives in the NetCon and the conductance kinetics are
linear, N NetCons on one point process give exactly the summed conductance of N point
processes with one NetCon each.

NetCon weight vector: weight[0] synaptic weight (scales the event), [1..3] stream ids,
[4] 1 = use the NetCon's stream ids, [5..9] state (draw counter, F, D1, D2, last spike time).

Units: ms, mV, uS, nA, mM.
ENDCOMMENT

NEURON {
    THREADSAFE
    POINT_PROCESS pyr2pyr
    NONSPECIFIC_CURRENT i
    RANGE tau_r_AMPA, tau_d_AMPA, tau_r_NMDA, tau_d_NMDA
    RANGE gbar_AMPA, gbar_NMDA, e, mg, initW
    RANGE tauD1, d1, tauD2, d2, tauF, f, P_0
    RANGE rng_id1, rng_id2, rng_id3, rng_set
    RANGE g_AMPA, g_NMDA, i_AMPA, i_NMDA, mgblock
    RANGE n_spike, n_release
}

UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
    (mM) = (milli/liter)
}

PARAMETER {
    tau_r_AMPA = 0.2 (ms)
    tau_d_AMPA = 1.7 (ms)
    tau_r_NMDA = 0.29 (ms)
    tau_d_NMDA = 43 (ms)
    gbar_AMPA = 0.001 (uS)
    gbar_NMDA = 0.0005 (uS)
    e = 0 (mV)
    mg = 1 (mM)
    initW = 1 (1)
    tauD1 = 35 (ms)
    d1 = 0.95 (1)
    tauD2 = 250 (ms)
    d2 = 0.8 (1)
    tauF = 1 (ms)
    f = 1 (1)
    P_0 = 0.6 (1)
    rng_id1 = 0
    rng_id2 = 0
    rng_id3 = 0
    rng_set = 0
}

ASSIGNED {
    v (mV)
    i (nA)
    i_AMPA (nA)
    i_NMDA (nA)
    g_AMPA (uS)
    g_NMDA (uS)
    mgblock (1)
    peak_AMPA (1)
    peak_NMDA (1)
    n_spike
    n_release
    n_pp_stream_users
}

STATE {
    rise_AMPA (1)
    decay_AMPA (1)
    rise_NMDA (1)
    decay_NMDA (1)
}

VERBATIM
#include <cstring>
#include "nrnran123.h"
ENDVERBATIM

INITIAL {
    if (initW < 0) {
        fatal(3)
    }
    peak_AMPA = unit_peak(tau_r_AMPA, tau_d_AMPA)
    peak_NMDA = unit_peak(tau_r_NMDA, tau_d_NMDA)
    rise_AMPA = 0
    decay_AMPA = 0
    rise_NMDA = 0
    decay_NMDA = 0
    n_spike = 0
    n_release = 0
    n_pp_stream_users = 0
}

BREAKPOINT {
    SOLVE kinetics METHOD cnexp
    mgblock = 1 / (1 + exp(-0.08 (/mV) * v) * mg / 3.57 (mM))
    g_AMPA = gbar_AMPA * (decay_AMPA - rise_AMPA)
    g_NMDA = gbar_NMDA * (decay_NMDA - rise_NMDA) * mgblock
    i_AMPA = g_AMPA * (v - e)
    i_NMDA = g_NMDA * (v - e)
    i = i_AMPA + i_NMDA
}

DERIVATIVE kinetics {
    rise_AMPA' = -rise_AMPA / tau_r_AMPA
    decay_AMPA' = -decay_AMPA / tau_d_AMPA
    rise_NMDA' = -rise_NMDA / tau_r_NMDA
    decay_NMDA' = -decay_NMDA / tau_d_NMDA
}

FUNCTION unit_peak(tr (ms), td (ms)) (1) {
    : amplitude given to both states so that exp(-t/td) - exp(-t/tr) peaks at 1
    LOCAL r, tpeak
    r = tr
    if (r > 0.9999 * td) {
        r = 0.9999 * td
    }
    tpeak = r * td / (td - r) * log(td / r)
    unit_peak = 1 / (exp(-tpeak / td) - exp(-tpeak / r))
}

FUNCTION uniform123(seq, id1, id2, id3) {
VERBATIM
    nrnran123_array4x32 r123 = nrnran123_iran3((uint32_t) _lseq, (uint32_t) _lid1,
                                               (uint32_t) _lid2, (uint32_t) _lid3);
    /* word 0 of the result; read via memcpy because NEURON defines 'v' as a macro */
    uint32_t word0;
    memcpy(&word0, &r123, sizeof word0);
    _luniform123 = ((double) word0 + 0.5) * 2.3283064365386962890625e-10;
ENDVERBATIM
}

PROCEDURE fatal(code) {
VERBATIM
    if (_lcode == 1) {
        hoc_execerror("pyr2pyr: a connection has no release stream (0 < P_0 < 1): call "
                      "builder.nrn.synapses.set_release_stream on its point process or NetCon",
                      (char*) 0);
    } else if (_lcode == 2) {
        hoc_execerror("pyr2pyr: several NetCons use the point process's release stream: "
                      "give each NetCon its own (set_release_stream on the NetCon)",
                      (char*) 0);
    } else {
        hoc_execerror("pyr2pyr: initW < 0 (a per-synapse weight was never drawn: call "
                      "builder.nrn.synapses.bind_edge)", (char*) 0);
    }
ENDVERBATIM
}

NET_RECEIVE(weight, s_id1, s_id2, s_id3, s_set, ndraw, F, D1, D2, tlast (ms)) {
    LOCAL u, amp, released
    INITIAL {
        ndraw = 0
        F = 1
        D1 = 1
        D2 = 1
        tlast = t
        if (s_set != 1) {
            n_pp_stream_users = n_pp_stream_users + 1
            if (P_0 > 0 && P_0 < 1) {
                if (rng_set != 1) {
                    fatal(1)
                }
                if (n_pp_stream_users > 1) {
                    fatal(2)
                }
            }
        }
    }
    n_spike = n_spike + 1
    : recovery since the previous presynaptic spike of this connection
    F = 1 + (F - 1) * exp(-(t - tlast) / tauF)
    D1 = 1 - (1 - D1) * exp(-(t - tlast) / tauD1)
    D2 = 1 - (1 - D2) * exp(-(t - tlast) / tauD2)
    tlast = t
    released = 0
    if (P_0 >= 1) {
        released = 1
    } else if (P_0 > 0) {
        if (s_set == 1) {
            u = uniform123(ndraw, s_id1, s_id2, s_id3)
        } else {
            u = uniform123(ndraw, rng_id1, rng_id2, rng_id3)
        }
        ndraw = ndraw + 1
        if (u < P_0) {
            released = 1
        }
    }
    if (released == 1) {
        amp = weight * initW * F * D1 * D2
        rise_AMPA = rise_AMPA + amp * peak_AMPA
        decay_AMPA = decay_AMPA + amp * peak_AMPA
        rise_NMDA = rise_NMDA + amp * peak_NMDA
        decay_NMDA = decay_NMDA + amp * peak_NMDA
        D1 = D1 * d1
        D2 = D2 * d2
        n_release = n_release + 1
    }
    F = F + f
}
