"""Forward and Eventprop backward kernels for CUDA (numba-cuda): one thread block per sample,
the block's threads over neurons (or over a connection's targets).

The maths, the state layout and the order of every per-neuron update are those of the CPU
kernels (:mod:`._cpu_kernels`, whose docstring is the reference for the notation). Every formula
of a neuron or synapse is a function of :mod:`._neuron_math`, which both backends compile inline,
with the same roundings to the weights' precision (``F``) at the same places. The same
flat ``pop_off`` / ``coef`` / ``blk`` / pre-major weight arrays, the same delay window of
arrivals and of adjoints (2 ``n_slots`` grid times, slid every ``n_slots`` steps, read and written
through the precomputed offsets ``d_off``). What differs is only who does the work:

* thread ``tid`` of a block of ``nt`` threads owns the neurons ``j = tid, tid + nt, ...`` while
  they advance (forward) or propagate their adjoint (backward), and target ``t = tid, tid + nt,
  ...`` of a connection while a spike is delivered to it or its adjoint is read; the phases are
  separated by ``syncthreads``, so no two threads ever write the same entry in one phase;
* the spikes of a step are recorded in ascending neuron order (as on the CPU) by a block-wide
  prefix sum over the "crossed threshold" flags of each chunk of ``nt`` neurons;
* a spike's ``dL/dphi`` (a sum over its targets) is a tree reduction in shared memory, in float64;
* ALIF's threshold adaptation ``a`` lives per neuron beside ``v, i``; the backward pass replays it
  per thread over its own neurons (the CPU's ``_replay_adaptation``, the same operations in the
  same order) before the adjoint pass;
* every sample accumulates its own dL/dw, dL/d(delay) (``gw[b]``, ``gd[b]``); ``sum_samples``
  adds them in sample order. No float atomics are used anywhere, so results do not depend on
  thread scheduling and repeat bit for bit.

Kernels are built per float type (:func:`kernels`): ``F`` is the weights' precision, scalars that
the CPU kernels keep in float64 (spike phases, decays) are float64 here too.

Scratch state lives in global memory, one row per sample (``v_state[b]``, ``ring[b]`` ...).
``MAX_THREADS`` bounds the block size (the shared scan/reduction arrays have this length).
"""

from __future__ import annotations

from functools import lru_cache

import math

from numba import cuda
from numba.cuda import float32, float64, int32

from . import _neuron_math as M
from ._cpu_kernels import (
    ALPHA,
    B0,
    BETA,
    C,
    DELAYED,
    DELTA_A,
    HA,
    HM,
    HS,
    KAPPA,
    LEARN_D,
    N_POST,
    POST,
    RHO_A,
    SUBSTEP,
    THETA,
    W_OFF,
)

MAX_THREADS = 1024

# the shared neuron and synapse math (_neuron_math, as the CPU kernels compile it), inline
nm = M.compiled(cuda.jit(device=True, inline="always"))


@cuda.jit(device=True)
def _block_scan(scan, flag, tid, nt):
    """Inclusive prefix sum of ``flag`` over the block's threads (Hillis-Steele in shared
    memory); every thread gets its own inclusive sum."""
    scan[tid] = flag
    cuda.syncthreads()
    off = 1
    while off < nt:
        x = 0
        if tid >= off:
            x = scan[tid - off]
        cuda.syncthreads()
        scan[tid] += x
        cuda.syncthreads()
        off *= 2
    incl = scan[tid]
    cuda.syncthreads()
    return incl


@cuda.jit(device=True)
def _block_sum(red, x, tid, nt):
    """Sum of ``x`` over the block's threads (``nt`` a power of two), a fixed tree in shared
    memory; every thread gets the total."""
    red[tid] = x
    cuda.syncthreads()
    s = nt // 2
    while s > 0:
        if tid < s:
            red[tid] += red[tid + s]
        cuda.syncthreads()
        s //= 2
    total = red[0]
    cuda.syncthreads()
    return total


@lru_cache(maxsize=None)
def kernels(double: bool):
    """(forward, backward, sum_samples) compiled lazily for float64 (``double``) or float32."""
    F = float64 if double else float32

    @cuda.jit
    def forward(spikes, net, scratch, out, rec):
        """Simulate sample ``blockIdx.x``; outputs as the CPU kernel's ``forward``."""
        in_off, in_step, in_ch, n_steps = spikes
        pop_off, pop_of, coef, spiking, _, blk, out_start, out_blk, in_blk = net[:9]
        w, d_off, d_frac, d_bm, d_am, n_slots = net[9:15]
        v_all, i_all, ring_all, a_all = scratch
        trace, t_first, counts = out
        rec_step, rec_nrn, rec_phi, rec_v, rec_i, n_rec, overflow = rec
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        scan = cuda.shared.array(MAX_THREADS, int32)
        n_pop = pop_off.shape[0] - 1
        n_tot = pop_off[n_pop]
        o0 = pop_off[n_pop - 1]
        cap = rec_step.shape[1]
        v_state = v_all[b]
        i_state = i_all[b]
        a_state = a_all[b]  # threshold adaptation (0 without)
        win = ring_all[b]
        delayed = n_slots > 0
        stride = 2 * n_tot  # one grid time of the window: (i, v) per neuron
        half = n_slots * stride
        for j in range(tid, n_tot, nt):
            v_state[j] = 0
            i_state[j] = 0
            a_state[j] = 0
        if delayed:
            for e in range(tid, 2 * half, nt):
                win[e] = 0
        for k in range(tid, t_first.shape[1], nt):
            t_first[b, k] = n_steps
        for j in range(tid, counts.shape[1], nt):
            counts[b, j] = 0
        cuda.syncthreads()
        nr = 0
        ip = in_off[b]
        i_end = in_off[b + 1]
        first = 0  # grid time of the window's row 0
        for n in range(n_steps):
            if delayed and n - first == n_slots:  # slide the upper half down
                for e in range(tid, half, nt):
                    win[e] = win[half + e]
                    win[half + e] = 0
                cuda.syncthreads()
                first += n_slots
            p_in = (n - first) * stride
            # 1. input spikes of step n (threads over the targets; rows summed four at a time)
            i0 = ip
            while ip < i_end and in_step[ip] == n:
                ip += 1
            in_delayed = False
            for kk in range(in_blk.shape[0]):
                k = in_blk[kk]
                q = blk[k, POST]
                n_post = blk[k, N_POST]
                w0 = blk[k, W_OFF]
                q0 = pop_off[q]
                b0 = coef[q, B0]
                if blk[k, DELAYED]:
                    b0c = coef[q, B0] * coef[q, C]
                    for t in range(tid, n_post, nt):
                        for s in range(i0, ip):
                            idx = w0 + in_ch[s] * n_post + t
                            e = p_in + d_off[idx]
                            x = d_bm[idx]
                            win[e] += F(w[idx] * b0 * x)  # the arrival in the weights' precision
                            win[e + 1] += F(w[idx] * b0c * (x - d_am[idx]))
                    in_delayed = True
                    continue
                for t in range(tid, n_post, nt):
                    acc = i_state[q0 + t]
                    s = i0
                    while s + 4 <= ip:
                        a0 = w0 + in_ch[s] * n_post + t
                        a1 = w0 + in_ch[s + 1] * n_post + t
                        a2 = w0 + in_ch[s + 2] * n_post + t
                        a3 = w0 + in_ch[s + 3] * n_post + t
                        acc += b0 * ((w[a0] + w[a1]) + (w[a2] + w[a3]))
                        s += 4
                    while s < ip:
                        acc += b0 * w[w0 + in_ch[s] * n_post + t]
                        s += 1
                    i_state[q0 + t] = acc
            cuda.syncthreads()
            if in_delayed:  # delayed input arrivals due now (at n h)
                for j in range(tid, n_tot, nt):
                    i_state[j] += win[p_in + 2 * j]
                    v_state[j] += win[p_in + 2 * j + 1]
                    win[p_in + 2 * j] = 0
                    win[p_in + 2 * j + 1] = 0
            # 2. advance one step, threshold, restart; spikes recorded in neuron order
            step_start = nr
            for jc in range(0, n_tot, nt):
                j = jc + tid
                flag = 0
                p = 0
                v = F(0)
                cur = F(0)
                v_adv = F(0)  # in the state's precision, as the CPU kernels keep it
                a_j = F(0)
                a_adv = F(0)
                phi_rec = float64(0)  # the recorded (interpolated) phase of a spike
                theta = float64(0)
                if j < n_tot:
                    p = pop_of[j]
                    v = v_state[j]
                    cur = i_state[j]
                    v_adv = F(nm.advance(v, cur, coef[p, ALPHA], coef[p, KAPPA]))
                    a_j = a_state[j]
                    a_adv = F(coef[p, RHO_A] * a_j)  # the threshold is theta + a
                    theta = coef[p, THETA]
                    if spiking[p] != 0 and v_adv - a_adv > theta:
                        flag = 1
                total = cuda.syncthreads_count(flag)
                if total > 0:
                    if nr + total > cap:
                        if tid == 0:
                            overflow[b] = 1
                            n_rec[b] = nr
                        return
                    pos = nr + _block_scan(scan, flag, tid, nt) - flag
                    if flag:
                        phi = float64(nm.crossing_phase(v - a_j, float64(v_adv - a_adv), theta))
                        phi_rec = float64(F(phi))
                        rec_step[b, pos] = n
                        rec_nrn[b, pos] = j
                        rec_phi[b, pos] = phi
                        rec_v[b, pos] = v
                        rec_i[b, pos] = cur
                        if spiking[p] == 2:
                            phi = 1.0
                        r_gain = nm.restart(coef[p, C], coef[p, BETA], coef[p, HM], coef[p, HS], phi)[0]
                        v_adv = F(r_gain * cur)
                        if j >= o0:
                            if t_first[b, j - o0] >= n_steps:
                                t_first[b, j - o0] = n + phi
                        else:
                            counts[b, j] += 1
                    nr += total
                if j < n_tot:
                    v_state[j] = v_adv
                    i_state[j] = coef[p, BETA] * cur
                    if coef[p, DELTA_A] != 0.0:  # a decays; a spike adds delta_a decayed over the rest of its step
                        a_j = a_adv
                        if flag:
                            a_j = F(a_j + coef[p, DELTA_A] * math.exp(-(1.0 - phi_rec) * coef[p, HA]))
                        a_state[j] = a_j
            cuda.syncthreads()
            # 3. deliver the spikes of step n at (n+1) h (threads over each spike's targets)
            p_out = p_in + stride
            for r in range(step_start, nr):
                j = rec_nrn[b, r]
                p = pop_of[j]
                phi = float64(rec_phi[b, r])
                if spiking[p] == 2:
                    phi = 1.0
                row = j - pop_off[p]
                for kk in range(out_start[p], out_start[p + 1]):
                    k = out_blk[kk]
                    q = blk[k, POST]
                    n_post = blk[k, N_POST]
                    q0 = pop_off[q]
                    base = blk[k, W_OFF] + row * n_post
                    bs, am = nm.remaining_decays(phi, coef[q, HS], coef[q, HM])
                    b0 = coef[q, B0]
                    b0c = coef[q, B0] * coef[q, C]
                    s0, s1 = nm.arrival(b0, b0c, bs, am)
                    s0 = F(s0)  # the arrival in the weights' precision (delayed or not)
                    s1 = F(s1)
                    if blk[k, DELAYED] and blk[k, SUBSTEP] == 0:  # whole steps: the spike's own decays
                        for t in range(tid, n_post, nt):
                            idx = base + t
                            e = p_out + d_off[idx]
                            win[e] += w[idx] * s0
                            win[e + 1] += w[idx] * s1
                        continue
                    if blk[k, DELAYED]:  # fractional delays: the CPU's _deliver_spike, per target
                        edge = F(1.0 - phi)  # a sub-step part above it arrives one step later
                        s_v = F(b0c * bs)
                        s_a = F(b0c * am)
                        l_i = F(b0 * bs * coef[q, BETA])  # ... with one step's decay more
                        l_v = F(b0c * bs * coef[q, BETA])
                        l_a = F(b0c * am * coef[q, ALPHA])
                        for t in range(tid, n_post, nt):
                            idx = base + t
                            e = p_out + d_off[idx]
                            x = F(w[idx] * d_bm[idx])
                            y = F(w[idx] * d_am[idx])
                            if d_frac[idx] > edge:
                                win[e + stride] += l_i * x
                                win[e + stride + 1] += l_v * x - l_a * y
                            else:
                                win[e] += s0 * x
                                win[e + 1] += s_v * x - s_a * y
                        continue
                    for t in range(tid, n_post, nt):
                        wt = w[base + t]
                        i_state[q0 + t] += s0 * wt
                        v_state[q0 + t] += s1 * wt
            cuda.syncthreads()
            if delayed:  # delayed arrivals due at (n+1) h
                for j in range(tid, n_tot, nt):
                    i_state[j] += win[p_out + 2 * j]
                    v_state[j] += win[p_out + 2 * j + 1]
                    win[p_out + 2 * j] = 0
                    win[p_out + 2 * j + 1] = 0
                cuda.syncthreads()  # the trace below reads neurons other threads updated
            # 4. output voltage at (n+1) h
            for k in range(tid, n_tot - o0, nt):
                trace[b, n, k] = v_state[o0 + k]
            cuda.syncthreads()
        if tid == 0:
            n_rec[b] = nr

    @cuda.jit
    def backward(spikes, net, rec, g_out, scratch, gw, gd):
        """Adjoint pass of sample ``blockIdx.x``: its dL/dw into ``gw[b]`` and dL/d(delay) (per
        step) into ``gd[b]`` (previous content ignored; ``gd`` may have one column)."""
        in_off, in_step, in_ch, n_steps = spikes
        pop_off, pop_of, coef, spiking, tau_mem, blk, out_start, out_blk, in_blk = net[:9]
        w, d_off, d_frac, d_bm, d_am, n_slots = net[9:15]
        rec_step, rec_nrn, rec_phi, rec_v, rec_i, n_rec, _ = rec
        g_trace, g_tfirst, g_counts = g_out
        lam_v_all, lam_i_all, jump_v_all, jump_i_all, hist_all, first_all, adapt_all, rec_a_all = scratch
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        red = cuda.shared.array(MAX_THREADS, float64)
        n_pop = pop_off.shape[0] - 1
        n_tot = pop_off[n_pop]
        o0 = pop_off[n_pop - 1]
        n_out = n_tot - o0
        lam_v = lam_v_all[b]
        lam_i = lam_i_all[b]
        jump_v = jump_v_all[b]
        jump_i = jump_i_all[b]
        hist = hist_all[b]
        first_rec = first_all[b]
        lam_a = adapt_all[b, 0]  # threshold adaptation: its adjoint, jumps, and a replayed
        jump_a = adapt_all[b, 1]
        a_tmp = adapt_all[b, 2]
        rec_a = rec_a_all[b]  # a at the start of each record's step
        gwb = gw[b]
        gdb = gd[b]
        delayed = n_slots > 0
        stride = 2 * n_tot
        half = n_slots * stride
        for j in range(tid, n_tot, nt):
            lam_v[j] = 0
            lam_i[j] = 0
            jump_v[j] = 0
            jump_i[j] = 0
            lam_a[j] = 0
            jump_a[j] = 0
            a_tmp[j] = 0
        if delayed:  # grid times after the last step read 0; every other row is written first
            for e in range(half + stride + tid, 2 * half, nt):
                hist[e] = 0
        for t in range(tid, gwb.shape[0], nt):
            gwb[t] = 0
        for t in range(tid, gdb.shape[0], nt):
            gdb[t] = 0
        nrec = n_rec[b]
        for k in range(tid, n_out, nt):  # the first spike of each output neuron
            first_rec[k] = -1
            for r in range(nrec):
                if rec_nrn[b, r] == o0 + k:
                    first_rec[k] = r
                    break
        # replay a(n) as the forward pass computed it, each thread its own neurons (the CPU's
        # _replay_adaptation, the same operations in the same order)
        r0 = 0
        for n in range(n_steps):
            r1 = r0
            while r1 < nrec and rec_step[b, r1] == n:
                j = rec_nrn[b, r1]
                if j % nt == tid:
                    rec_a[r1] = a_tmp[j]
                r1 += 1
            for j in range(tid, n_tot, nt):
                p = pop_of[j]
                if coef[p, DELTA_A] != 0.0:
                    a_tmp[j] = coef[p, RHO_A] * a_tmp[j]
            for rr in range(r0, r1):
                j = rec_nrn[b, rr]
                p = pop_of[j]
                if j % nt == tid and coef[p, DELTA_A] != 0.0:
                    a_tmp[j] += coef[p, DELTA_A] * math.exp(-(1.0 - float64(rec_phi[b, rr])) * coef[p, HA])
            r0 = r1
        cuda.syncthreads()
        r = nrec - 1
        ip = in_off[b + 1] - 1
        first = n_steps - n_slots  # grid time of the window's row 0
        for n in range(n_steps - 1, -1, -1):
            if delayed and n < first:  # slide the lower half up
                for e in range(tid, half, nt):
                    hist[half + e] = hist[e]
                first -= n_slots
            p_in = (n - first) * stride
            p_out = p_in + stride
            for k in range(tid, n_out, nt):
                lam_v[o0 + k] += g_trace[b, n, k]
            cuda.syncthreads()
            if delayed:
                for j in range(tid, n_tot, nt):
                    hist[p_out + 2 * j] = lam_i[j]
                    hist[p_out + 2 * j + 1] = lam_v[j]
                cuda.syncthreads()
            r_hi = r
            while r >= 0 and rec_step[b, r] == n:
                r -= 1
            # jumps at the spikes of step n (read only adjoints at (n+1) h)
            for s in range(r + 1, r_hi + 1):
                j = rec_nrn[b, s]
                p = pop_of[j]
                row = j - pop_off[p]
                phi = float64(rec_phi[b, s])
                phi_act = phi
                if spiking[p] == 2:
                    phi_act = 1.0
                part = float64(0.0)
                for kk in range(out_start[p], out_start[p + 1]):
                    k = out_blk[kk]
                    q = blk[k, POST]
                    n_post = blk[k, N_POST]
                    q0 = pop_off[q]
                    base = blk[k, W_OFF] + row * n_post
                    hs_q = coef[q, HS]
                    hm_q = coef[q, HM]
                    bs, am = nm.remaining_decays(phi_act, hs_q, hm_q)
                    b0 = coef[q, B0]
                    b0c = coef[q, B0] * coef[q, C]
                    pi, pv = nm.arrival(b0, b0c, bs, am)
                    dpi, dpv = nm.arrival_rate(b0, b0c, bs, am, hs_q, hm_q)
                    pi = F(pi)  # the factors in the weights' precision (delayed or not)
                    pv = F(pv)
                    dpi = F(dpi)
                    dpv = F(dpv)
                    if blk[k, DELAYED] and blk[k, SUBSTEP] == 0:  # whole steps: the spike's own decays
                        for t in range(tid, n_post, nt):
                            idx = base + t
                            e = p_out + d_off[idx]
                            li = hist[e]
                            lv = hist[e + 1]
                            wt = w[idx]
                            g = wt * (li * dpi + lv * dpv)
                            part += g
                            gwb[idx] += li * pi + lv * pv
                            gdb[idx] += g
                        continue
                    if blk[k, DELAYED]:  # fractional delays: the CPU's _adjoint_spike, per target
                        edge = F(1.0 - phi_act)
                        e_i = F(b0 * bs)
                        e_v = F(b0c * bs)
                        e_a = F(b0c * am)
                        l_i = F(b0 * bs * coef[q, BETA])
                        l_v = F(b0c * bs * coef[q, BETA])
                        l_a = F(b0c * am * coef[q, ALPHA])
                        for t in range(tid, n_post, nt):
                            idx = base + t
                            e = p_out + d_off[idx]
                            s_i = e_i
                            s_v = e_v
                            s_a = e_a
                            if d_frac[idx] > edge:
                                e += stride
                                s_i = l_i
                                s_v = l_v
                                s_a = l_a
                            lv = hist[e + 1]
                            a = d_bm[idx] * (s_i * hist[e] + s_v * lv)
                            a_v = d_am[idx] * (s_a * lv)
                            term = hs_q * a - hm_q * a_v
                            wt = w[idx]
                            part += wt * term
                            gwb[idx] += a - a_v
                            gdb[idx] += wt * term
                        continue
                    learn_d = blk[k, LEARN_D] != 0
                    for t in range(tid, n_post, nt):
                        li = lam_i[q0 + t]
                        lv = lam_v[q0 + t]
                        wt = w[base + t]
                        g = wt * (li * dpi + lv * dpv)
                        part += g
                        gwb[base + t] += li * pi + lv * pv
                        if learn_d:
                            gdb[base + t] += g
                g_sum = _block_sum(red, part, tid, nt)
                if tid == 0:
                    v = rec_v[b, s]
                    cur = rec_i[b, s]
                    alpha = coef[p, ALPHA]
                    beta = coef[p, BETA]
                    kappa = coef[p, KAPPA]
                    c = coef[p, C]
                    theta = coef[p, THETA]
                    r_gain, d_restart, _ = nm.restart(c, beta, coef[p, HM], coef[p, HS], phi_act)
                    g_phi = lam_v[j] * d_restart * cur + g_sum
                    if j >= o0:
                        if first_rec[j - o0] == s:
                            g_phi += g_tfirst[b, j - o0]
                    rho_a = coef[p, RHO_A]
                    adaptive = coef[p, DELTA_A] != 0.0
                    a_j = F(0)
                    if adaptive:  # the jump delta_a rho_a^(1-phi) of a(n+1)
                        a_j = rec_a[s]
                        e_a = math.exp(-(1.0 - phi_act) * coef[p, HA])
                        g_phi += lam_a[j] * coef[p, DELTA_A] * coef[p, HA] * e_a
                    if phi > 0.0:
                        sens = nm.crossing_sensitivities(v, cur, a_j, alpha, kappa, rho_a, theta)
                        jump_v[j] = g_phi * sens[3]
                        jump_i[j] = g_phi * sens[4] + r_gain * lam_v[j] + beta * lam_i[j]
                        if adaptive:
                            jump_a[j] = g_phi * (sens[1] - sens[0] * (1.0 - rho_a)) * sens[2] + rho_a * lam_a[j]
                    else:
                        jump_v[j] = 0
                        jump_i[j] = r_gain * lam_v[j] + beta * lam_i[j]
                        if adaptive:
                            jump_a[j] = rho_a * lam_a[j]
                    if j < o0:  # spike-count regulariser: a kick to lam_v at each spike
                        jump_v[j] += tau_mem[p] * g_counts[b, j]
            cuda.syncthreads()
            # propagate every neuron's adjoint one step back
            for j in range(tid, n_tot, nt):
                p = pop_of[j]
                lam_v[j], lam_i[j] = nm.adjoint_back(lam_v[j], lam_i[j], coef[p, ALPHA], coef[p, BETA], coef[p, KAPPA])
                if coef[p, DELTA_A] != 0.0:  # a(n+1) = rho_a a(n) (+ the jumps)
                    lam_a[j] = coef[p, RHO_A] * lam_a[j]
            cuda.syncthreads()
            for s in range(r + 1 + tid, r_hi + 1, nt):
                j = rec_nrn[b, s]
                lam_v[j] = jump_v[j]
                lam_i[j] = jump_i[j]
                lam_a[j] = jump_a[j]
            cuda.syncthreads()
            # input spikes of step n were added to i at n h
            i1 = ip
            while ip >= in_off[b] and in_step[ip] == n:
                ip -= 1
            stored = False
            for kk in range(in_blk.shape[0]):
                k = in_blk[kk]
                q = blk[k, POST]
                n_post = blk[k, N_POST]
                w0 = blk[k, W_OFF]
                q0 = pop_off[q]
                b0 = coef[q, B0]
                if blk[k, DELAYED]:
                    if not stored:  # the adjoint at n h
                        for j in range(tid, n_tot, nt):
                            hist[p_in + 2 * j] = lam_i[j]
                            hist[p_in + 2 * j + 1] = lam_v[j]
                        cuda.syncthreads()
                        stored = True
                    for t in range(tid, n_post, nt):  # sums of the adjoints; factors after the pass
                        for s in range(ip + 1, i1 + 1):
                            idx = w0 + in_ch[s] * n_post + t
                            e = p_in + d_off[idx]
                            gwb[idx] += hist[e]
                            gdb[idx] += hist[e + 1]
                    continue
                learn_d = blk[k, LEARN_D] != 0
                sc0, sc1 = nm.arrival_rate(b0, b0 * coef[q, C], 1.0, 1.0, coef[q, HS], coef[q, HM])
                sc0 = F(sc0)
                sc1 = F(sc1)
                for t in range(tid, n_post, nt):
                    li = lam_i[q0 + t]
                    lv = lam_v[q0 + t]
                    for s in range(ip + 1, i1 + 1):
                        a0 = w0 + in_ch[s] * n_post + t
                        gwb[a0] += b0 * li
                        if learn_d:
                            gdb[a0] += w[a0] * (li * sc0 + lv * sc1)
            cuda.syncthreads()
        # a delayed input synapse's factors are fixed: applied once to its sums of lam_i (gw), lam_v (gd)
        for kk in range(in_blk.shape[0]):
            k = in_blk[kk]
            if blk[k, DELAYED]:
                q = blk[k, POST]
                b0 = coef[q, B0]
                b0c = coef[q, B0] * coef[q, C]
                hs = coef[q, HS]
                hm = coef[q, HM]
                hi = blk[k + 1, W_OFF] if k + 1 < blk.shape[0] else w.shape[0]
                if blk[k, SUBSTEP] == 0:
                    dpi, dpv = nm.arrival_rate(b0, b0c, 1.0, 1.0, hs, hm)
                    for idx in range(blk[k, W_OFF] + tid, hi, nt):
                        li = gwb[idx]
                        lv = gdb[idx]
                        gwb[idx] = li * b0
                        gdb[idx] = w[idx] * (li * dpi + lv * dpv)
                    continue
                for idx in range(blk[k, W_OFF] + tid, hi, nt):
                    li = gwb[idx]
                    lv = gdb[idx]
                    x_i, x_v = nm.arrival(b0, b0c, d_bm[idx], d_am[idx])
                    r_i, r_v = nm.arrival_rate(b0, b0c, d_bm[idx], d_am[idx], hs, hm)
                    gwb[idx] = li * x_i + lv * x_v
                    gdb[idx] = w[idx] * (li * r_i + lv * r_v)

    @cuda.jit
    def sum_samples(parts, out):
        """out = parts.sum(axis=0), sample 0 first (one thread per entry: a fixed order)."""
        t = cuda.grid(1)
        if t < out.shape[0]:
            acc = parts[0, t]
            for g in range(1, parts.shape[0]):
                acc += parts[g, t]
            out[t] = acc

    return forward, backward, sum_samples
