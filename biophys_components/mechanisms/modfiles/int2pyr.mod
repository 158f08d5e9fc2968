COMMENT
int2pyr: GABA_A synapse onto a pyramidal cell (l5net project, written for it).

Two-state kinetic receptor (closed <-> open) driven by a square transmitter pulse: for Cdur_GABA
ms after a release the open fraction r obeys dr/dt = AlphaTmax_GABA (1 - r) - Beta_GABA r,
afterwards dr/dt = -Beta_GABA r. While the pulse is on, r relaxes to Rinf = AlphaTmax /
(AlphaTmax + Beta) with time constant Rtau = 1 / (AlphaTmax + Beta); this is exact for each
connection separately, so the point process keeps only two sums: Ron (connections whose pulse
is on) and Roff (the others), and every connection keeps its own r0 (its contribution at its
last switch time t0). A release of amplitude a = weight * initW * F * D1 * D2 makes that
connection's contribution relax to a * Rinf while its pulse lasts.
  g_GABA = gbar_GABA (Ron + Roff),  i = g_GABA (v - e_GABA)

A release during a connection's own pulse extends the pulse by Cdur_GABA (transmitter
saturates; the pulse keeps the amplitude it started with).

Per connection (in the NetCon weight vector, so that any number of NetCons may share one
point process): short-term plasticity (F -> F + f at every presynaptic spike, relaxing to 1
with tauF; D1, D2 multiplied by d1, d2 at every release, recovering to 1 with tauD1, tauD2),
stochastic release with probability P_0 (Random123, exactly as in pyr2pyr.mod: the n-th draw
of a connection is philox4x32(counter = {n, id3, id1, id2}, key = {global index}), word 0,
mapped to (0, 1); the ids are the NetCon's (slots 1-3, used when slot 4 is 1) or the point
process's rng_id1..3 (when rng_set is 1); missing or shared fallback streams are an error at
finitialize when 0 < P_0 < 1), and the pulse state.

NetCon weight vector: weight[0] synaptic weight, [1..3] stream ids, [4] 1 = use the NetCon's
stream ids, [5..14] state (draw counter, F, D1, D2, last spike time, pulse on, pulse count,
r0, t0, pulse amplitude).

Units: ms, mV, uS, nA; AlphaTmax_GABA and Beta_GABA in 1/ms.
ENDCOMMENT

NEURON {
    THREADSAFE
    POINT_PROCESS int2pyr
    NONSPECIFIC_CURRENT i
    RANGE e_GABA, gbar_GABA, AlphaTmax_GABA, Beta_GABA, Cdur_GABA, initW
    RANGE tauD1, d1, tauD2, d2, tauF, f, P_0
    RANGE rng_id1, rng_id2, rng_id3, rng_set
    RANDOM release_rng
    RANGE g_GABA, i_GABA
    RANGE n_spike, n_release
}

UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
}

PARAMETER {
    e_GABA = -75 (mV)
    gbar_GABA = 0.006 (uS)
    AlphaTmax_GABA = 1.52 (/ms)
    Beta_GABA = 0.14 (/ms)
    Cdur_GABA = 0.7254 (ms)
    initW = 1 (1)
    tauD1 = 40 (ms)
    d1 = 0.7 (1)
    tauD2 = 500 (ms)
    d2 = 0.7 (1)
    tauF = 1 (ms)
    f = 0 (1)
    P_0 = 0.25 (1)
    rng_id1 = 0
    rng_id2 = 0
    rng_id3 = 0
    rng_set = 0
}

ASSIGNED {
    v (mV)
    i (nA)
    i_GABA (nA)
    g_GABA (uS)
    Rinf (1)
    Rtau (ms)
    on_sum (1)
    n_spike
    n_release
    n_pp_stream_users
    dt_decay (ms)
    ron_target (1)
    kon (1)
    koff (1)
}

STATE {
    Ron (1)
    Roff (1)
}

VERBATIM
#if defined(CORENEURON_BUILD)
/* random_setids below becomes nrnran123_setids, which the CoreNEURON of NEURON 9.0 does not
   declare: the same assignment as NEURON's (counter words 1, 2, 3 = ids 3, 1, 2; the next
   random_setseq recomputes the stream's block). Identifiers avoid this file's variable names. */
static inline void nrnran123_setids(nrnran123_State* state_l5, uint32_t first_l5,
                                    uint32_t second_l5, uint32_t third_l5) {
    auto& ctr_l5 = state_l5->c;
    ctr_l5[1] = third_l5;
    ctr_l5[2] = first_l5;
    ctr_l5[3] = second_l5;
}
#endif
ENDVERBATIM

INITIAL {
    if (initW < 0) {
        fatal(3)
    }
    Rinf = AlphaTmax_GABA / (AlphaTmax_GABA + Beta_GABA)
    Rtau = 1 / (AlphaTmax_GABA + Beta_GABA)
    on_sum = 0
    Ron = 0
    Roff = 0
    n_spike = 0
    n_release = 0
    n_pp_stream_users = 0
    dt_decay = -1
    ron_target = -((on_sum * Rinf) / Rtau) / ((-1) / Rtau)
}

BREAKPOINT {
    SOLVE kinetics
    g_GABA = gbar_GABA * (Ron + Roff)
    i_GABA = g_GABA * (v - e_GABA)
    i = i_GABA
    : the current is linear in v: its conductance is di/dv exactly (one evaluation per step
    : instead of NEURON's finite difference over a second one)
    CONDUCTANCE g_GABA
}

PROCEDURE kinetics() {
    : One fixed step of Ron' = (on_sum Rinf - Ron) / Rtau, Roff' = -Beta_GABA Roff with the
    : exact exponential update, operation for operation as NEURON's cnexp writes it (same
    : numbers); the factors 1 - exp(-dt / tau) are computed once per dt, not every step, and
    : Ron's target on_sum Rinf (three divisions) only when on_sum changes (INITIAL, NET_RECEIVE).
    if (dt != dt_decay) {
        kon = 1 - exp(dt * ((-1) / Rtau))
        koff = 1 - exp(dt * ((-Beta_GABA) * 1))
        dt_decay = dt
    }
    Ron = Ron + kon * (ron_target - Ron)
    Roff = Roff + koff * (0 - Roff)
}

FUNCTION uniform123(seq, id1, id2, id3) {
    : draw seq of stream (id1, id2, id3): word 0 of philox4x32(counter {seq, id3, id1, id2},
    : key {global index}), mapped to (0, 1) by (word + 1/2) / 2^32
    random_setids(release_rng, id1, id2, id3)
    random_setseq(release_rng, 4 * seq)
    uniform123 = (random_ipick(release_rng) + 0.5) * 2.3283064365386962890625e-10
}

PROCEDURE fatal(code) {
VERBATIM
    if (_lcode == 1) {
        hoc_execerror("int2pyr: a connection has no release stream (0 < P_0 < 1): call "
                      "builder.simulators.neuron.synapses.set_release_stream on its point process or NetCon",
                      (char*) 0);
    } else if (_lcode == 2) {
        hoc_execerror("int2pyr: several NetCons use the point process's release stream: "
                      "give each NetCon its own (set_release_stream on the NetCon)",
                      (char*) 0);
    } else {
        hoc_execerror("int2pyr: initW < 0 (a per-synapse weight was never drawn: call "
                      "builder.simulators.neuron.synapses.bind_edge)", (char*) 0);
    }
ENDVERBATIM
}

NET_RECEIVE(weight, s_id1, s_id2, s_id3, s_set, ndraw, F, D1, D2, tlast (ms), on, npulse, r0, t0 (ms), amp) {
    LOCAL u, released
    INITIAL {
        ndraw = 0
        F = 1
        D1 = 1
        D2 = 1
        tlast = t
        on = 0
        npulse = 0
        r0 = 0
        t0 = t
        amp = 0
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
    if (flag == 0) {
        : a presynaptic spike
        n_spike = n_spike + 1
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
            n_release = n_release + 1
            npulse = npulse + 1
            if (on == 0) {
                : start a pulse: move this connection's contribution from Roff to Ron
                r0 = r0 * exp(-Beta_GABA * (t - t0))
                t0 = t
                on = 1
                amp = weight * initW * F * D1 * D2
                on_sum = on_sum + amp
                ron_target = -((on_sum * Rinf) / Rtau) / ((-1) / Rtau)
                Ron = Ron + r0
                Roff = Roff - r0
            }
            D1 = D1 * d1
            D2 = D2 * d2
            : end of pulse in Cdur_GABA unless another release extends it
            net_send(Cdur_GABA, npulse)
        }
        F = F + f
    } else if (flag == npulse && on == 1) {
        : end of this connection's pulse: move its contribution from Ron to Roff
        r0 = amp * Rinf + (r0 - amp * Rinf) * exp(-(t - t0) / Rtau)
        t0 = t
        on_sum = on_sum - amp
        ron_target = -((on_sum * Rinf) / Rtau) / ((-1) / Rtau)
        Ron = Ron - r0
        Roff = Roff + r0
        on = 0
    }
}
