COMMENT
VecStim for both engines (l5net project, written for it): an artificial cell that emits one
event at each time of a hoc Vector, in order (times before the current time are sent at once).

  vs = h.VecStim(); vs.play(vector)     (play() without an argument: no events)

The engine "coreneuron" of run-network compiles this file in place of BMTK's vecevent.mod,
whose hoc-only VERBATIM code CoreNEURON cannot build. The times travel to CoreNEURON with the
model (bbcore_write in NEURON: the count as one int, the times as doubles; bbcore_read in
CoreNEURON: a new vector with those times), the read position (index) and the next time
(etime) as ordinary variables.
ENDCOMMENT

NEURON {
    THREADSAFE
    ARTIFICIAL_CELL VecStim
    BBCOREPOINTER ptr
}

ASSIGNED {
    index
    etime (ms)
    ptr
}

INITIAL {
    index = 0
    element()
    if (index > 0) {
        net_send(etime - t, 1)
    }
}

NET_RECEIVE (w) {
    if (flag == 1) {
        net_event(t)
        element()
        if (index > 0) {
            net_send(etime - t, 1)
        }
    }
}

PROCEDURE element() {
VERBATIM
    {
        void* times_l5 = _p_ptr;
        int at_l5 = (int) index;
        if (at_l5 >= 0 && times_l5 && at_l5 < vector_capacity(times_l5)) {
            etime = vector_vec(times_l5)[at_l5];
            index += 1.;
        } else {
            index = -1.;
        }
    }
ENDVERBATIM
}

PROCEDURE play() {
VERBATIM
#if !defined(CORENEURON_BUILD)
    {
        void** slot_l5 = (void**) (&_p_ptr);
        *slot_l5 = ifarg(1) ? vector_arg(1) : nullptr;
    }
#endif
ENDVERBATIM
}

VERBATIM
static void bbcore_write(double* dbl_l5, int* int_l5, int* dbl_at_l5, int* int_at_l5,
                         _threadargsproto_) {
    void* times_l5 = _p_ptr;
    int n_l5 = times_l5 ? vector_capacity(times_l5) : 0;
    if (int_l5) {
        int_l5[*int_at_l5] = n_l5;
    }
    if (dbl_l5 && n_l5) {
        double* src_l5 = vector_vec(times_l5);
        for (int k_l5 = 0; k_l5 < n_l5; ++k_l5) {
            dbl_l5[*dbl_at_l5 + k_l5] = src_l5[k_l5];
        }
    }
    *int_at_l5 += 1;
    *dbl_at_l5 += n_l5;
}

static void bbcore_read(double* dbl_l5, int* int_l5, int* dbl_at_l5, int* int_at_l5,
                        _threadargsproto_) {
    int n_l5 = int_l5[*int_at_l5];
#if defined(CORENEURON_BUILD)
    void** slot_l5 = (void**) (&_p_ptr);
    if (n_l5) {
        IvocVect* vec_l5 = vector_new1(n_l5);
        double* dst_l5 = vector_vec(vec_l5);
        for (int k_l5 = 0; k_l5 < n_l5; ++k_l5) {
            dst_l5[k_l5] = dbl_l5[*dbl_at_l5 + k_l5];
        }
        *slot_l5 = vec_l5;
    } else {
        *slot_l5 = nullptr;
    }
#endif
    *int_at_l5 += 1;
    *dbl_at_l5 += n_l5;
}
ENDVERBATIM
