"""Bit-accurate emulation of the exported network as Lava runs it (``Loihi2SimCfg``, fixed_pt).

Every integer operation below is the one Lava's bit-accurate models perform on the file that
:mod:`eventkit_loihi2.netx` writes, so the readout voltages agree step for step (checked against
a real Lava run by :mod:`eventkit_loihi2.lava_check`).

What NetX does to a dense layer when it loads the file (:func:`netx_synapses`): feed-forward and
recurrent weights are concatenated and re-scaled to fill the synapse (``w' = w << s``, weight
exponent ``-s``, ``num_weight_bits`` from the common trailing zero bits); each Dense synapse then
clips ``w'`` to the 8-bit range of its sign mode and truncates the low bits it cannot hold.

One time step of Lava (all processes step together; a message sent in a step is received in it):

* Dense synapse: sends the buffer it accumulated in the previous step, then accumulates this
  step's presynaptic spikes ``acc = sum_i w'_ji s_i`` and stores ``acc >> s`` (arithmetic shift,
  ``<< e`` for a positive exponent).  So a spike of step t reaches the neuron at step t + 1
  (DelayDense with delay d: at step t + 1 + d; the shift is applied per delay slot).
* CUBA LIF (``PyLifModelBitAcc``), with int32 state::

      u = sign(x) (|x| >> 12),  x = u (4096 - iDecay)     (rounding toward zero)
      u = u + (a << 6)        (a = sum of the synapse buffers; int32)
      u = u - 2**24 if u > 2**23;  u = u + 2**24 if u <= -2**23         (24-bit wrap, once)
      v = sign(y) (|y| >> 12) + u,  y = v (4096 - vDecay);  v = clip(v, -(2**23 - 1), 2**23 - 1)
      spike if v > vThMant << 6;  v = 0 where spiked  (u is not reset)

The input raster drives the first Dense synapse directly (NetX's input layer has no neuron), so
input spikes of step t reach hidden layer 0 at t + 1, its spikes reach the next layer at t + 2.
Readout voltages are recorded after the update of each step (after reset, as a Lava monitor
sees them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from .quantize import DECAY_UNITY, ChipLayer, ChipNetwork, FloatNetwork

U_MAX = 2**23  # 24-bit state


# ---------------------------------------------------------------- NetX + Lava weight handling
def _netx_optimize(w: np.ndarray) -> tuple[np.ndarray, int, int]:
    """NetX's loader rescaling of an integer weight matrix: (w', num_weight_bits, weight_exp)."""
    w = np.asarray(w).astype(np.int64)
    mx, mn = int(w.max()), int(w.min())
    if (mx > 254 and mn < 0) or (mn < -256 and mx > 0):
        w = np.clip(w, -256, 254)
        mx, mn = int(w.max()), int(w.min())
    if mx < 0:
        scale, signed = -256 / mn, 0
    elif mn >= 0:
        if mx == 0:
            raise ValueError(
                "an all-zero weight matrix cannot be loaded by NetX (log2 of an "
                "infinite scale); remove or retrain the layer"
            )
        scale, signed = 255 / mx, 0
    else:
        pos = 127 / mx if mx > 0 else math.inf
        neg = -128 / mn
        scale, signed = min(pos, neg), 1
    scale_bits = int(math.floor(math.log2(scale))) + signed
    n = 8
    while n > 0 and np.sum(np.abs(w / 2.0**n - np.round(w / 2.0**n))) != 0:
        n -= 1
    n -= signed
    if scale_bits < 0:
        raise ValueError(f"weights {mn}..{mx} exceed what NetX can hold in 8 bits")
    return w << scale_bits, 8 - scale_bits - n, -scale_bits


def _lava_dense_weights(w: np.ndarray, num_weight_bits: int) -> np.ndarray:
    """Lava Dense (bit-accurate) weight init: clip to the sign mode's 8-bit range, drop low bits."""
    w = np.asarray(w, dtype=np.int64)
    if w.min() >= 0:
        mode = "exc"
    elif w.max() <= 0:
        mode = "inh"
    else:
        mode = "mixed"
    mixed = int(mode == "mixed")
    k = 8 - num_weight_bits + mixed
    if k < 0:
        raise ValueError(f"weights need {num_weight_bits} bits: more than a Loihi synapse holds")
    # clip_weights and truncate_weights both work on the magnitudes of inhibitory weights
    x = -w if mode == "inh" else w
    x = np.clip(x, -256 * mixed, 255)
    x = (x >> k) << k
    x = -x if mode == "inh" else x
    return x.astype(np.int64)


def netx_synapses(layer: ChipLayer) -> dict:
    """Weights and exponents Lava will actually use for this layer after NetX loads the file."""
    if layer.w_rec is not None:
        both, bits, exp = _netx_optimize(np.hstack([layer.w_ff, layer.w_rec]))
        n_pre = layer.w_ff.shape[1]
        w_ff = _lava_dense_weights(both[:, :n_pre], bits)
        w_rec = _lava_dense_weights(both[:, n_pre:], bits)
        return dict(w_ff=w_ff, exp_ff=exp, w_rec=w_rec, exp_rec=exp)
    w, bits, exp = _netx_optimize(layer.w_ff)
    return dict(w_ff=_lava_dense_weights(w, bits), exp_ff=exp, w_rec=None, exp_rec=0)


def _pre_shift(w: np.ndarray, exp: int) -> tuple[np.ndarray, int]:
    """If every weight is a multiple of 2**-exp, shifting each weight equals shifting the sum:
    return the shifted weights and exponent 0 (exact); otherwise keep (w, exp)."""
    if exp < 0 and np.all(w % (1 << -exp) == 0):
        return w >> -exp, 0
    if exp > 0:
        return w << exp, 0
    return w, exp


# ---------------------------------------------------------------- packed network for numba
@dataclass
class PackedNetwork:
    n: np.ndarray
    n_pre: np.ndarray
    ff_off: np.ndarray
    rec_off: np.ndarray  # -1: no recurrence
    w_ff_t: np.ndarray  # int64 flat, per layer (n_pre, n) row-major
    w_rec_t: np.ndarray
    d_ff_t: np.ndarray  # int64 delays, same layout as w_ff_t
    max_delay: np.ndarray
    exp_ff: np.ndarray
    exp_rec: np.ndarray
    du_mult: np.ndarray  # 4096 - iDecay
    dv_mult: np.ndarray  # 4096 - vDecay
    vth: np.ndarray  # vThMant << 6
    count_off: np.ndarray  # offsets of each layer in the spike-count vector


def pack(chip: ChipNetwork) -> PackedNetwork:
    n, n_pre, ff_off, rec_off, max_delay = [], [], [], [], []
    exp_ff, exp_rec, du, dv, vth, count_off = [], [], [], [], [], [0]
    w_ff_parts, w_rec_parts, d_parts = [], [], []
    pos_ff = pos_rec = 0
    pre = chip.n_in
    for layer in chip.layers:
        syn = netx_synapses(layer)
        wf, ef = _pre_shift(syn["w_ff"], syn["exp_ff"])
        d = layer.delay if layer.delay is not None else np.zeros_like(layer.w_ff)
        n.append(layer.n)
        n_pre.append(pre)
        ff_off.append(pos_ff)
        w_ff_parts.append(np.ascontiguousarray(wf.T).ravel())
        d_parts.append(np.ascontiguousarray(np.asarray(d, np.int64).T).ravel())
        pos_ff += wf.size
        max_delay.append(int(d.max()) if d.size else 0)
        exp_ff.append(ef)
        if syn["w_rec"] is not None:
            wr, er = _pre_shift(syn["w_rec"], syn["exp_rec"])
            rec_off.append(pos_rec)
            w_rec_parts.append(np.ascontiguousarray(wr.T).ravel())
            pos_rec += wr.size
            exp_rec.append(er)
        else:
            rec_off.append(-1)
            exp_rec.append(0)
        du.append(DECAY_UNITY - layer.i_decay)
        dv.append(DECAY_UNITY - layer.v_decay)
        vth.append(layer.v_th_mant << 6)
        count_off.append(count_off[-1] + layer.n)
        pre = layer.n

    def cat(parts):
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(1, np.int64)

    i64 = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
    return PackedNetwork(
        i64(n),
        i64(n_pre),
        i64(ff_off),
        i64(rec_off),
        cat(w_ff_parts),
        cat(w_rec_parts),
        cat(d_parts),
        i64(max_delay),
        i64(exp_ff),
        i64(exp_rec),
        i64(du),
        i64(dv),
        i64(vth),
        i64(count_off),
    )


# ---------------------------------------------------------------- the kernel
@nb.njit(cache=True, inline="always")
def _shift(x, exp):
    if exp < 0:
        return x >> (-exp)
    return x << exp


@nb.njit(cache=True, inline="always")
def _wrap32(x):
    return ((x + 2147483648) & 4294967295) - 2147483648


@nb.njit(cache=True, inline="always")
def _decay(x, mult):
    """sign(y) (|y| >> 12), y = x mult, without a branch: adding 4095 to a negative y before
    the arithmetic shift rounds toward zero."""
    y = x * mult
    return (y + ((y >> 63) & 4095)) >> 12


@nb.njit(cache=True, inline="always")
def _update_population(arriving, rec_l, u_l, v_l, du, dv, th, nl, spk_l, counts_k, count_off):
    """One step of a population: integrate what arrives (ring slot + recurrent buffer; the slot is
    cleared), decay, saturate, threshold and reset. The spiking neurons go to ``spk_l``; their
    number is returned."""
    for j in range(nl):  # branch-free, so the compiler vectorises it
        a = _wrap32(arriving[j] + rec_l[j])
        arriving[j] = 0
        uu = _wrap32(_decay(u_l[j], du) + _wrap32(a << 6))
        uu = uu - 2 * U_MAX * (uu > U_MAX) + 2 * U_MAX * (uu <= -U_MAX)
        u_l[j] = uu
        v_l[j] = min(max(_decay(v_l[j], dv) + uu, -(U_MAX - 1)), U_MAX - 1)
    cnt = 0
    for j in range(nl):
        if v_l[j] > th:
            v_l[j] = 0
            spk_l[cnt] = j
            cnt += 1
            counts_k[count_off + j] += 1
    return cnt


@nb.njit(cache=True, inline="always")
def _read_out(v_out, t, t_start, step_weight, scores_k, vmax_k):
    """Accumulate the readout of the output voltages ``v_out`` at step ``t``."""
    if t >= t_start:
        for j in range(v_out.shape[0]):
            scores_k[j] += step_weight[t - t_start] * v_out[j]
            if t == t_start or v_out[j] > vmax_k[j]:
                vmax_k[j] = v_out[j]


@nb.njit(cache=True, inline="always")
def _deliver_ff(ring_l, tmp, pre, m, w_ff_t, d_ff_t, base, nl, dl, exp, t):
    """The ``m`` presynaptic spikes ``pre[:m]`` of step ``t`` into the ring of their targets, for
    step t + 1 + delay. With a weight exponent the per-delay sums are shifted once, as the chip's
    Dense/Delay blocks do."""
    direct = exp == 0
    if direct and dl == 0:  # plain Dense, exact per-weight shift: add rows
        acc = ring_l[0]
        for s in range(m):
            row = base + pre[s] * nl
            for j in range(nl):
                acc[j] += w_ff_t[row + j]
        return
    if not direct:
        for dd in range(dl + 1):
            for j in range(nl):
                tmp[dd, j] = 0
    for s in range(m):
        row = base + pre[s] * nl
        for j in range(nl):
            dd = d_ff_t[row + j]
            if direct:
                ring_l[(t + 1 + dd) % (dl + 1), j] += w_ff_t[row + j]
            else:
                tmp[dd, j] += w_ff_t[row + j]
    if not direct:
        for dd in range(dl + 1):
            for j in range(nl):
                ring_l[(t + 1 + dd) % (dl + 1), j] += _shift(tmp[dd, j], exp)


@nb.njit(cache=True, inline="always")
def _deliver_rec(rbuf, spk_l, m, w_rec_t, rb, nl, exp):
    """This step's ``m`` spikes of a recurrent population into its buffer for the next step."""
    for j in range(nl):
        rbuf[j] = 0
    for s in range(m):
        row = rb + spk_l[s] * nl
        for j in range(nl):
            rbuf[j] += w_rec_t[row + j]
    if exp != 0:
        for j in range(nl):
            rbuf[j] = _shift(rbuf[j], exp)


@nb.njit(cache=True, parallel=True)
def _emulate(
    offsets,
    steps,
    channels,
    n_steps,
    n,
    n_pre,
    ff_off,
    rec_off,
    w_ff_t,
    w_rec_t,
    d_ff_t,
    max_delay,
    exp_ff,
    exp_rec,
    du_mult,
    dv_mult,
    vth,
    count_off,
    step_weight,
    t_start,
    n_record,
    scores,
    vmax,
    counts,
    v_record,
):
    n_samples = offsets.shape[0] - 1
    n_layers = n.shape[0]
    n_max = 1
    n_pre_max = 1
    d_max = 0
    for l in range(n_layers):
        n_max = max(n_max, n[l])
        n_pre_max = max(n_pre_max, n_pre[l])
        d_max = max(d_max, max_delay[l])
    out = n_layers - 1
    for k in nb.prange(n_samples):
        u = np.zeros((n_layers, n_max), np.int64)
        v = np.zeros((n_layers, n_max), np.int64)
        # ring[l, slot, j]: synaptic input arriving at step (slot mod) from feed-forward synapses
        ring = np.zeros((n_layers, d_max + 1, n_max), np.int64)
        rec_buf = np.zeros((n_layers, n_max), np.int64)
        tmp = np.zeros((d_max + 1, n_max), np.int64)
        spk = np.zeros((n_layers, n_max), np.int64)  # indices of this step's spikes
        n_spk = np.zeros(n_layers, np.int64)
        inp = np.zeros(n_pre_max, np.int64)  # this step's input channels (binary input)
        p = offsets[k]
        end = offsets[k + 1]
        for t in range(n_steps):
            # 1) every population updates with what arrives at step t
            for l in range(n_layers):
                n_spk[l] = _update_population(
                    ring[l, t % (max_delay[l] + 1)], rec_buf[l], u[l], v[l], du_mult[l], dv_mult[l], vth[l],
                    n[l], spk[l], counts[k], count_off[l],
                )  # fmt: skip
            v_out = v[out, : n[out]]
            if k < n_record:
                v_record[k, t, :] = v_out
            _read_out(v_out, t, t_start, step_weight, scores[k], vmax[k])
            # 2) synapses accumulate this step's spikes for step t + 1 (+ delay)
            n_in_spk = 0
            while p < end and steps[p] == t:
                inp[n_in_spk] = channels[p]
                n_in_spk += 1
                p += 1
            for l in range(n_layers):
                pre = inp if l == 0 else spk[l - 1]
                m = n_in_spk if l == 0 else n_spk[l - 1]
                _deliver_ff(ring[l], tmp, pre, m, w_ff_t, d_ff_t, ff_off[l], n[l], max_delay[l], exp_ff[l], t)
                if rec_off[l] >= 0:
                    _deliver_rec(rec_buf[l], spk[l], n_spk[l], w_rec_t, rec_off[l], n[l], exp_rec[l])


@dataclass
class EmulatorResult:
    scores: np.ndarray  # float64 [N, n_out]: readout voltage summed with the step weights
    vmax: np.ndarray  # int64 [N, n_out]
    counts: np.ndarray  # int64 [N, total neurons]: spikes per neuron (hidden layers, then output)
    v_out: np.ndarray  # int32 [n_record, T, n_out]: readout voltage of the first samples
    predictions: np.ndarray  # int64 [N]
    layer_sizes: list
    seconds: float
    n_steps: int = 0  # chip steps run per sample
    offset: int = 0  # first step of the classification window

    def hidden_counts(self) -> list[np.ndarray]:
        """Spike counts per hidden layer, each [N, n_l]."""
        out, pos = [], 0
        for size in self.layer_sizes[:-1]:
            out.append(self.counts[:, pos : pos + size])
            pos += size
        return out

    @property
    def output_spikes(self) -> int:
        return int(self.counts[:, -self.layer_sizes[-1] :].sum())


def step_weights(n_steps: int, readout: str = "exp_sum") -> np.ndarray:
    """Per-step weights of the chip's classification: exp(-t/T) (``exp_sum``) or 1 (``sum``)."""
    t = np.arange(n_steps, dtype=np.float64)
    if readout == "exp_sum":
        return np.exp(-t / n_steps)
    if readout in ("sum", "max"):
        return np.ones(n_steps)
    raise ValueError(f"chip readout must be one of exp_sum, sum, max; got {readout!r}")


def predictions_from_voltages(v_out: np.ndarray, readout: str, offset: int) -> np.ndarray:
    """The chip's classification of recorded readout voltages ``v_out`` [N, T + offset, n_out]
    (the emulator's, Lava's or a Loihi 2's): the step-weighted sum (``exp_sum``, ``sum``) or the
    maximum (``max``) of the voltages of steps ``offset .. T + offset - 1``, as :func:`emulate`
    classifies."""
    v = np.asarray(v_out, dtype=np.int64)
    window = v.shape[1] - int(offset)
    if window < 1:
        raise ValueError(f"{v.shape[1]} recorded steps leave no classification window after offset {offset}")
    v = v[:, int(offset) :]
    if readout == "max":
        return np.argmax(v.max(axis=1), axis=1).astype(np.int64)
    scores = np.einsum("t,ntj->nj", step_weights(window, readout), v.astype(np.float64))
    return np.argmax(scores, axis=1).astype(np.int64)


def emulate(
    chip: ChipNetwork, data, n_record: int = 0, readout: str = "exp_sum", n_steps: int | None = None, offset: int = 0
) -> EmulatorResult:
    """Run every sample of ``data`` (a SpikeData) through the chip network.

    The chip runs ``n_steps`` (default: the data's) plus ``offset`` steps and classifies from
    the readout voltages of steps ``offset .. offset + n_steps - 1``: ``offset = 1`` skips the
    step the input synapse adds on the chip, so the window lines up with a float model whose
    input spikes act in the step they arrive (see :class:`eventkit_loihi2.target.LoihiTarget`).
    ``v_out`` records all ``n_steps + offset`` steps."""
    import time

    if data.n_channels != chip.n_in:
        raise ValueError(f"data has {data.n_channels} input channels, the network {chip.n_in}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    data = data.binary()  # a repeated (step, channel) is one spike on the chip's input
    window = int(n_steps or data.n_steps)
    n_steps = window + int(offset)
    w = step_weights(window, readout)
    pk = pack(chip)
    N = len(data)
    n_out = chip.n_out
    n_record = int(min(max(n_record, 0), N))
    scores = np.zeros((N, n_out), np.float64)
    vmax = np.zeros((N, n_out), np.int64)
    counts = np.zeros((N, int(pk.count_off[-1])), np.int64)
    v_record = np.zeros((max(n_record, 1), n_steps, n_out), np.int32)
    t0 = time.perf_counter()
    _emulate(
        data.offsets,
        data.steps,
        data.channels,
        n_steps,
        pk.n,
        pk.n_pre,
        pk.ff_off,
        pk.rec_off,
        pk.w_ff_t,
        pk.w_rec_t,
        pk.d_ff_t,
        pk.max_delay,
        pk.exp_ff,
        pk.exp_rec,
        pk.du_mult,
        pk.dv_mult,
        pk.vth,
        pk.count_off,
        w,
        int(offset),
        n_record,
        scores,
        vmax,
        counts,
        v_record,
    )
    seconds = time.perf_counter() - t0
    pred = np.argmax(vmax if readout == "max" else scores, axis=1) if N else np.zeros(0, np.int64)
    return EmulatorResult(
        scores,
        vmax,
        counts,
        v_record[:n_record],
        pred.astype(np.int64),
        [int(x) for x in pk.n],
        seconds,
        n_steps,
        int(offset),
    )


def readout_in_float_units(emu: EmulatorResult, chip: ChipNetwork, fnet: FloatNetwork, readout: str) -> np.ndarray:
    """The chip's classification scores as the float network's readout ``readout`` would give
    them: chip v = 64 S / g x float V for the readout population (S = 2**weight_exp, g its voltage
    gain, see :mod:`eventkit_loihi2.quantize`), and the chip window's step t' holds the float
    trace's entry t' (the float ``exp_mean_v`` weighs it exp(-(t' + 1)/T) / T, the chip
    exp(-t'/T))."""
    from .quantize import voltage_gain

    g = voltage_gain(dict(fnet.topology.output.model.describe()), fnet.dt)
    unit = g / (64.0 * 2.0**chip.output.weight_exp)
    window = emu.n_steps - emu.offset
    if readout == "exp_mean_v":
        return emu.scores * unit * math.exp(-1.0 / window) / window
    if readout == "sum_v":
        return emu.scores * unit
    if readout == "mean_v":
        return emu.scores * unit / window
    if readout == "max_v":
        return emu.vmax * unit
    raise ValueError(f"no chip counterpart of readout {readout!r} (exp_mean_v, sum_v, mean_v, max_v)")
