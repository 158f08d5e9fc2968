COMMENT
pyr2pyr: excitatory synapse onto a pyramidal cell (l5net project, written for it).

AMPA and NMDA conductances driven by the same presynaptic events, each receptor with its own
reversal potential, NMDA times the Mg2+ block
  B(v) = 1 / (1 + exp(-0.08 v) mg / 3.57)   (v in mV, mg in mM)
  i = g_AMPA (v - e_AMPA) + g_NMDA (v - e_NMDA)

Two receptor models, chosen by the PARAMETER kinetic (the same for both receptors; set it
before finitialize):

kinetic = 0 (default): dual exponentials.
  AMPA rise tau_r_AMPA, decay tau_d_AMPA; NMDA rise tau_r_NMDA, decay tau_d_NMDA. Each is the
  difference of two decaying states (decay minus rise), scaled so that one event of
  amplitude 1 peaks at exactly 1; g_X = gbar_X (decay - rise).

kinetic = 1 (any nonzero value): the two-state (closed <-> open) kinetic receptor of
  Destexhe, Mainen & Sejnowski (1994). After each release a square transmitter pulse lasts
  Cdur_X ms; during it the open fraction obeys dr/dt = AlphaTmax_X (1 - r) - Beta_X r,
  afterwards dr/dt = -Beta_X r; g_X = gbar_X r. While the pulse is on, r relaxes to
  Rinf = AlphaTmax / (AlphaTmax + Beta) with time constant Rtau = 1 / (AlphaTmax + Beta).
  Both equations are linear, so each connection's contribution can be followed exactly on
  its own: a release of amplitude a makes that connection's contribution relax to a Rinf
  while its pulse lasts, then decay with rate Beta. The point process keeps, per receptor,
  two sums: Ron (contributions of connections whose pulse is on; relaxes to on_X Rinf, on_X
  = the summed amplitudes of those connections) and Roff (the others; decays with Beta).
  Each connection keeps, per receptor, its own contribution r0 at its last switch time t0,
  its pulse amplitude and whether its pulse is on; at a switch its contribution moves
  between Ron and Roff. A release during the connection's own pulse of a receptor extends
  that pulse by Cdur_X (transmitter saturates; the pulse keeps the amplitude it started
  with). The receptors have different Cdur, so each has its own pulse and its own
  end-of-pulse self-event: net_send flag 2 n (AMPA) or 2 n + 1 (NMDA), n = the connection's
  release count; an event whose n is no longer the current count belongs to a pulse that a
  later release extended, and is ignored.

Both models use the same two states per receptor, named by their time constants:
  fast_X' = (on_X Rinf_X - fast_X) / tfast_X,   slow_X' = -slow_X / tslow_X
  dual exponential: fast = rise (tfast = tau_r), slow = decay (tslow = tau_d), on_X = 0,
                    g_X = gbar_X (slow_X - fast_X)
  kinetic scheme:   fast = Ron (tfast = Rtau), slow = Roff (tslow = 1 / Beta),
                    g_X = gbar_X (slow_X + fast_X)

Per connection (one NetCon), kept in the NetCon's weight vector so that any number of NetCons
may share one point process:
  - short-term plasticity: facilitation F (F -> F + f at every presynaptic spike, relaxes to 1
    with tauF) and two depression factors D1, D2 (multiplied by d1, d2 at every *release*,
    recover to 1 with tauD1, tauD2);
  - stochastic release: at each presynaptic spike the connection releases with probability P_0;
    a release of amplitude weight * initW * F * D1 * D2 drives BOTH the AMPA and the NMDA
    conductance, a failure neither;
  - its Random123 stream: the uniform number of the n-th draw of a connection is
    philox4x32(counter = {n, id3, id1, id2}, key = {NEURON global index}), word 0,
    mapped to (0, 1), drawn through the NMODL RANDOM variable release_rng (re-keyed to the
    connection's ids before each draw), so NEURON and CoreNEURON draw the same. The ids are either the NetCon's own (weight vector slots 1-3, used when
    slot 4 is 1) or the point process's rng_id1..3 (when rng_set is 1). Both are set from
    Python (builder.simulators.neuron.synapses.set_release_stream). With 0 < P_0 < 1, a connection without
    a stream, or several connections falling back to the same point-process stream, is an
    error at finitialize;
  - the kinetic scheme's pulse state (above).

Because every per-connection quantity lives in the NetCon and the conductance kinetics are
linear, N NetCons on one point process give exactly the summed conductance of N point
processes with one NetCon each.

NetCon weight vector: weight[0] synaptic weight (scales the event), [1..3] stream ids,
[4] 1 = use the NetCon's stream ids, [5..9] state (draw counter, F, D1, D2, last spike time),
[10] release count, [11..14] AMPA pulse (on, r0, t0, amplitude), [15..18] NMDA pulse.

Units: ms, mV, uS, nA, mM; AlphaTmax_X and Beta_X in 1/ms.
ENDCOMMENT

NEURON {
    THREADSAFE
    POINT_PROCESS pyr2pyr
    NONSPECIFIC_CURRENT i
    RANGE kinetic
    RANGE tau_r_AMPA, tau_d_AMPA, tau_r_NMDA, tau_d_NMDA
    RANGE AlphaTmax_AMPA, Beta_AMPA, Cdur_AMPA, AlphaTmax_NMDA, Beta_NMDA, Cdur_NMDA
    RANGE gbar_AMPA, gbar_NMDA, e_AMPA, e_NMDA, mg, initW
    RANGE tauD1, d1, tauD2, d2, tauF, f, P_0
    RANGE rng_id1, rng_id2, rng_id3, rng_set
    RANDOM release_rng
    RANGE g_AMPA, g_NMDA, i_AMPA, i_NMDA, mgblock, g_syn
    RANGE n_spike, n_release
}

UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
    (mM) = (milli/liter)
}

PARAMETER {
    kinetic = 0 (1)
    tau_r_AMPA = 0.2 (ms)
    tau_d_AMPA = 1.7 (ms)
    tau_r_NMDA = 0.29 (ms)
    tau_d_NMDA = 43 (ms)
    AlphaTmax_AMPA = 5 (/ms)
    Beta_AMPA = 0.5882 (/ms)
    Cdur_AMPA = 0.2 (ms)
    AlphaTmax_NMDA = 3.4483 (/ms)
    Beta_NMDA = 0.0233 (/ms)
    Cdur_NMDA = 0.29 (ms)
    gbar_AMPA = 0.001 (uS)
    gbar_NMDA = 0.0005 (uS)
    e_AMPA = 0 (mV)
    e_NMDA = 0 (mV)
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
    sgn (1)
    peak_AMPA (1)
    peak_NMDA (1)
    tfast_AMPA (ms)
    tslow_AMPA (ms)
    tfast_NMDA (ms)
    tslow_NMDA (ms)
    Rinf_AMPA (1)
    Rinf_NMDA (1)
    on_AMPA (1)
    on_NMDA (1)
    n_spike
    n_release
    n_pp_stream_users
    dt_decay (ms)
    target_AMPA (1)
    target_NMDA (1)
    g_syn (uS)
    kfast_AMPA (1)
    kslow_AMPA (1)
    kfast_NMDA (1)
    kslow_NMDA (1)
}

STATE {
    fast_AMPA (1)
    slow_AMPA (1)
    fast_NMDA (1)
    slow_NMDA (1)
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
    if (kinetic != 0) {
        sgn = 1
        Rinf_AMPA = AlphaTmax_AMPA / (AlphaTmax_AMPA + Beta_AMPA)
        tfast_AMPA = 1 / (AlphaTmax_AMPA + Beta_AMPA)
        tslow_AMPA = 1 / Beta_AMPA
        Rinf_NMDA = AlphaTmax_NMDA / (AlphaTmax_NMDA + Beta_NMDA)
        tfast_NMDA = 1 / (AlphaTmax_NMDA + Beta_NMDA)
        tslow_NMDA = 1 / Beta_NMDA
    } else {
        sgn = -1
        peak_AMPA = unit_peak(tau_r_AMPA, tau_d_AMPA)
        peak_NMDA = unit_peak(tau_r_NMDA, tau_d_NMDA)
        Rinf_AMPA = 0
        tfast_AMPA = tau_r_AMPA
        tslow_AMPA = tau_d_AMPA
        Rinf_NMDA = 0
        tfast_NMDA = tau_r_NMDA
        tslow_NMDA = tau_d_NMDA
    }
    on_AMPA = 0
    on_NMDA = 0
    fast_AMPA = 0
    slow_AMPA = 0
    fast_NMDA = 0
    slow_NMDA = 0
    n_spike = 0
    n_release = 0
    n_pp_stream_users = 0
    dt_decay = -1
    targets()
}

BREAKPOINT {
    SOLVE kinetics
    : the current and its conductance di/dv in one pass: g_syn is the finite difference
    : (i(v + 0.001) - i(v)) / 0.001 that NEURON and CoreNEURON take without a CONDUCTANCE
    : statement (same operations, same numbers; the current is nonlinear in v through the Mg
    : block), computed here instead of by a second call of the whole block
    mgblock = 1 / (1 + mgexp(v + 0.001 (mV)) * mg / 3.57 (mM))
    g_AMPA = gbar_AMPA * (slow_AMPA + sgn * fast_AMPA)
    g_NMDA = gbar_NMDA * (slow_NMDA + sgn * fast_NMDA) * mgblock
    g_syn = g_AMPA * (v + 0.001 (mV) - e_AMPA) + g_NMDA * (v + 0.001 (mV) - e_NMDA)
    mgblock = 1 / (1 + mgexp(v) * mg / 3.57 (mM))
    g_NMDA = gbar_NMDA * (slow_NMDA + sgn * fast_NMDA) * mgblock
    i_AMPA = g_AMPA * (v - e_AMPA)
    i_NMDA = g_NMDA * (v - e_NMDA)
    i = i_AMPA + i_NMDA
    g_syn = (g_syn - i) / 0.001 (mV)
    CONDUCTANCE g_syn
}

: exp(-0.08 v) of the Mg block, tabulated (0.025 mV steps, linear interpolation: relative
: error < 1e-6; usetable_pyr2pyr = 0 computes it); the block is evaluated twice per step
FUNCTION mgexp(v (mV)) {
    TABLE FROM -150 TO 100 WITH 10000
    mgexp = exp(-0.08 (/mV) * v)
}

PROCEDURE kinetics() {
    : One fixed step of
    :   fast_X' = (on_X Rinf_X - fast_X) / tfast_X,   slow_X' = -slow_X / tslow_X
    : with the exact exponential update X <- X + (1 - exp(-dt / tau)) (target - X), written
    : operation for operation as NEURON's cnexp writes it (same numbers); the factors
    : 1 - exp(-dt / tau) depend on dt and the time constants only, so they are computed once
    : per dt instead of four exp calls per step. (Fixed time step only, as cnexp in practice.)
    if (dt != dt_decay) {
        kfast_AMPA = 1 - exp(dt * ((-1) / tfast_AMPA))
        kslow_AMPA = 1 - exp(dt * ((-1) / tslow_AMPA))
        kfast_NMDA = 1 - exp(dt * ((-1) / tfast_NMDA))
        kslow_NMDA = 1 - exp(dt * ((-1) / tslow_NMDA))
        dt_decay = dt
    }
    fast_AMPA = fast_AMPA + kfast_AMPA * (target_AMPA - fast_AMPA)
    slow_AMPA = slow_AMPA + kslow_AMPA * (0 - slow_AMPA)
    fast_NMDA = fast_NMDA + kfast_NMDA * (target_NMDA - fast_NMDA)
    slow_NMDA = slow_NMDA + kslow_NMDA * (0 - slow_NMDA)
}

PROCEDURE targets() {
    : the fast states' targets on_X Rinf_X, written as cnexp writes them (same numbers); they
    : change only when on_X does (INITIAL, NET_RECEIVE), so they are not recomputed (three
    : divisions each) every step
    target_AMPA = -((on_AMPA * Rinf_AMPA) / tfast_AMPA) / ((-1) / tfast_AMPA)
    target_NMDA = -((on_NMDA * Rinf_NMDA) / tfast_NMDA) / ((-1) / tfast_NMDA)
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
    : draw seq of stream (id1, id2, id3): word 0 of philox4x32(counter {seq, id3, id1, id2},
    : key {global index}), mapped to (0, 1) by (word + 1/2) / 2^32
    random_setids(release_rng, id1, id2, id3)
    random_setseq(release_rng, 4 * seq)
    uniform123 = (random_ipick(release_rng) + 0.5) * 2.3283064365386962890625e-10
}

PROCEDURE fatal(code) {
VERBATIM
    if (_lcode == 1) {
        hoc_execerror("pyr2pyr: a connection has no release stream (0 < P_0 < 1): call "
                      "builder.simulators.neuron.synapses.set_release_stream on its point process or NetCon",
                      (char*) 0);
    } else if (_lcode == 2) {
        hoc_execerror("pyr2pyr: several NetCons use the point process's release stream: "
                      "give each NetCon its own (set_release_stream on the NetCon)",
                      (char*) 0);
    } else {
        hoc_execerror("pyr2pyr: initW < 0 (a per-synapse weight was never drawn: call "
                      "builder.simulators.neuron.synapses.bind_edge)", (char*) 0);
    }
ENDVERBATIM
}

NET_RECEIVE(weight, s_id1, s_id2, s_id3, s_set, ndraw, F, D1, D2, tlast (ms), nrel, onA, r0A, t0A (ms), ampA, onN, r0N, t0N (ms), ampN) {
    LOCAL u, amp, released
    INITIAL {
        ndraw = 0
        F = 1
        D1 = 1
        D2 = 1
        tlast = t
        nrel = 0
        onA = 0
        r0A = 0
        t0A = t
        ampA = 0
        onN = 0
        r0N = 0
        t0N = t
        ampN = 0
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
            if (kinetic != 0) {
                nrel = nrel + 1
                if (onA == 0) {
                    : start an AMPA pulse: move this connection's contribution to Ron
                    r0A = r0A * exp(-Beta_AMPA * (t - t0A))
                    t0A = t
                    onA = 1
                    ampA = amp
                    on_AMPA = on_AMPA + ampA
                    targets()
                    fast_AMPA = fast_AMPA + r0A
                    slow_AMPA = slow_AMPA - r0A
                }
                if (onN == 0) {
                    r0N = r0N * exp(-Beta_NMDA * (t - t0N))
                    t0N = t
                    onN = 1
                    ampN = amp
                    on_NMDA = on_NMDA + ampN
                    targets()
                    fast_NMDA = fast_NMDA + r0N
                    slow_NMDA = slow_NMDA - r0N
                }
                : the pulses end after Cdur unless another release extends them
                net_send(Cdur_AMPA, 2 * nrel)
                net_send(Cdur_NMDA, 2 * nrel + 1)
            } else {
                fast_AMPA = fast_AMPA + amp * peak_AMPA
                slow_AMPA = slow_AMPA + amp * peak_AMPA
                fast_NMDA = fast_NMDA + amp * peak_NMDA
                slow_NMDA = slow_NMDA + amp * peak_NMDA
            }
            D1 = D1 * d1
            D2 = D2 * d2
            n_release = n_release + 1
        }
        F = F + f
    } else if (flag == 2 * nrel && onA == 1) {
        : end of this connection's AMPA pulse: move its contribution from Ron to Roff
        r0A = ampA * Rinf_AMPA + (r0A - ampA * Rinf_AMPA) * exp(-(t - t0A) / tfast_AMPA)
        t0A = t
        on_AMPA = on_AMPA - ampA
        targets()
        fast_AMPA = fast_AMPA - r0A
        slow_AMPA = slow_AMPA + r0A
        onA = 0
    } else if (flag == 2 * nrel + 1 && onN == 1) {
        : end of this connection's NMDA pulse
        r0N = ampN * Rinf_NMDA + (r0N - ampN * Rinf_NMDA) * exp(-(t - t0N) / tfast_NMDA)
        t0N = t
        on_NMDA = on_NMDA - ampN
        targets()
        fast_NMDA = fast_NMDA - r0N
        slow_NMDA = slow_NMDA + r0N
        onN = 0
    }
}
