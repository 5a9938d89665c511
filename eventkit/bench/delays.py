"""Delay-learning benchmark: ``python -m eventkit.bench --delays [--json PATH] [--batch B] [--steps T]
[--repeats R] [--max-delays 64,512] [--mode round|exact|round,exact] [--no-dcls]``.

The workload is the one of :mod:`eventkit.bench.engine` (random SHD-shaped input: 700 channels, about 8
input spikes per ms per sample, dt 1 ms, 20 classes, exp-weighted readout, cross-entropy, Adam), on
a feed-forward network with two hidden LIF layers (tau_mem 20 ms, tau_syn 5 ms) and a learnable
delay on every feed-forward synapse (``--mode``: ``round``, whole steps, as DCLS and the chip; or
``exact``, sub-step arrivals; ``round,exact``: both). For every maximum delay it runs, each in its
own process:

* eventkit with learnable delays (Eventprop, event-driven kernels), in every mode asked for;
* eventkit without delays (the same network; run once, it does not depend on the maximum delay);
* the published peer, DCLS-Delays (Hammouamri, Khalfaoui-Hassani & Masquelier, "Learning delays in
  spiking neural networks using dilated convolutions with learnable spacings", ICLR 2024): every
  layer is a ``Dcls1d`` convolution over time whose single kernel element per synapse has a
  learnable position (the delay), Gaussian interpolation, trained by BPTT with a surrogate
  gradient.

It reports the median seconds per train step, the peak memory growth, the speed-up and memory
ratio (DCLS / eventkit), the cost of the delays (eventkit with / without), exact / round where
both modes ran, and the projected seconds per epoch of SHD (8156 training samples) and SSC (75466).

The DCLS network follows the authors' public code (``snn_delays.py`` and
``best_config_SHD.py``) with these differences, all so that it solves the same problem as eventkit:
dt 1 ms and 700 input channels (they bin SHD to 10 ms and 140 channels); LIF neurons with an
exponential current synapse (tau_mem 20 ms, tau_syn 5 ms; they use spikingjelly's LIFNode without
a synapse, tau 10.05 ms) written in plain torch with their surrogate (ATan, alpha 5), threshold 1,
hard reset to 0 with the reset detached, as theirs; no batch norm and no dropout (they use both);
the exp-weighted mean of the readout voltage as the logits (they sum the per-step softmax); one
Adam with two parameter groups (weights lr 1e-3, positions lr 0.1 = 100 x lr_w; they use two Adam
optimizers with the same settings, which is the same update). What is theirs: ``Dcls1d`` with
kernel_count 1, version 'gauss', no bias, kaiming-uniform weights, positions uniform over the whole
kernel, the Gaussian width fixed (not trained) at its initial value kernel_size // 2 (their
schedule shrinks it to 0.23 over the first quarter of training; the cost does not depend on it),
left padding kernel_size - 1 and right padding (kernel_size - 1) // 2 before every layer (so the
simulated time grows by half a kernel per layer and the readout spans it all), positions clamped
after every optimizer step. Their kernel size is odd; a maximum delay of D steps uses the odd
kernel size D + 1 (D even) or D + 2 (D odd), i.e. delays 0..D (0..D+1). Its hidden layers fire at
the rate their kaiming-uniform init gives (~96 spikes per neuron per second on this workload,
recorded as ``hidden_rate_hz``; eventkit's are calibrated to ~14): a dense BPTT step costs the same
at any rate, so it is not calibrated.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from .common import (
    cpu_step_seconds,
    device_info,
    device_problem,
    in_process,
    keep_parameters,
    measure,
    peak_rss_bytes,
    placed,
    rss_bytes,
    warm,
    workload,
    write_json,
)

SHD_TRAIN_SAMPLES = 8156
SSC_TRAIN_SAMPLES = 75466
N_IN, N_OUT = 700, 20
TAU_MEM, TAU_SYN = 20.0, 5.0
TARGET_RATE = 14.0  # spikes per neuron per second in hidden layer 1
LR_W, LR_POS = 1e-3, 0.1
ATAN_ALPHA = 5.0


# --------------------------------------------------------------------------------------- DCLS peer
def dcls_kernel_size(max_delay: int) -> int:
    """The (odd, as in the authors' configs) Dcls1d kernel size that holds delays 0..max_delay."""
    k = int(max_delay) + 1
    return k if k % 2 else k + 1


def _dcls_lengths(n_steps: int, kernel: int, n_layers: int = 3) -> list[int]:
    """Time length of the input of every Dcls1d layer and of the readout: each layer pads
    kernel - 1 steps on the left and (kernel - 1) // 2 on the right, so it adds (kernel - 1) // 2."""
    return [n_steps + k * ((kernel - 1) // 2) for k in range(n_layers + 1)]


def _build_dcls(hidden: int, max_delay: int, seed: int = 0):
    """The DCLS-Delays network: 700 -> Dcls1d -> LIF(hidden) -> Dcls1d -> LIF(hidden) -> Dcls1d -> LI(20)."""
    import torch
    import torch.nn.functional as F
    from DCLS.construct.modules import Dcls1d

    kernel = dcls_kernel_size(max_delay)
    left, right = kernel - 1, (kernel - 1) // 2
    alpha, beta = math.exp(-1.0 / TAU_SYN), math.exp(-1.0 / TAU_MEM)

    class ATanSpike(torch.autograd.Function):
        """Heaviside forward, spikingjelly's ATan surrogate backward (alpha/2 / (1 + (pi/2 alpha x)^2))."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).to(x.dtype)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (ATAN_ALPHA / 2) / (1 + (math.pi / 2 * ATAN_ALPHA * x) ** 2)

    def neurons(current, spiking):
        """current [L, B, n] -> spikes [L, B, n] (LIF) or voltage [L, B, n] (LI). The time steps are
        taken by one unbind: indexing current[t] would give each step a backward that writes a
        full-size gradient, quadratic in L."""
        syn = torch.zeros_like(current[0])
        mem = torch.zeros_like(current[0])
        out = []
        for cur in current.unbind(0):
            syn = alpha * syn + cur
            mem = beta * mem + syn
            if spiking:
                spk = ATanSpike.apply(mem - 1.0)
                mem = mem * (1.0 - spk.detach())  # hard reset to 0, reset detached (their detach_reset=True)
                out.append(spk)
            else:
                out.append(mem)
        return torch.stack(out)

    class DclsDelays(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            sizes = [(N_IN, hidden), (hidden, hidden), (hidden, N_OUT)]
            self.convs = torch.nn.ModuleList(
                Dcls1d(n_in, n_out, kernel_count=1, groups=1, dilated_kernel_size=kernel, bias=False, version="gauss")
                for n_in, n_out in sizes
            )
            with torch.no_grad():
                for conv in self.convs:
                    torch.nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")
                    torch.nn.init.uniform_(conv.P, a=-kernel // 2, b=kernel // 2)
                    conv.clamp_parameters()
                    torch.nn.init.constant_(conv.SIG, kernel // 2)
                    conv.SIG.requires_grad = False
            self.positions = [c.P for c in self.convs]
            self.weights = [c.weight for c in self.convs]
            self.hidden_spikes = 0

        def clamp_parameters(self):
            for conv in self.convs:
                conv.clamp_parameters()

        def forward(self, x):
            """x [T, B, 700] -> readout voltage [T + 3 (kernel - 1) // 2, B, 20]."""
            spikes = 0
            for k, conv in enumerate(self.convs):
                x = F.pad(x.permute(1, 2, 0), (left, right))  # (B, C, time), padded for the delays
                x = conv(x).permute(2, 0, 1).contiguous()  # (time, B, C)
                x = neurons(x, spiking=k < len(self.convs) - 1)
                if k < len(self.convs) - 1:
                    spikes += int(x.detach().sum())
            self.hidden_spikes = spikes
            return x

    model = DclsDelays()
    model.neurons = neurons
    return model


class _ClampAfterStep:
    """The optimizer as measure drives it, with a clamp of the delays (DCLS: positions) after
    every step, as both methods train them."""

    def __init__(self, opt, clamp):
        self.opt, self.clamp = opt, clamp

    def zero_grad(self):
        self.opt.zero_grad()

    def step(self):
        self.opt.step()
        self.clamp()


def _dense_input(data, n_steps, batch):
    import numpy as np
    import torch

    dense = np.zeros((n_steps, batch, N_IN), dtype=np.float32)
    sample = np.repeat(np.arange(batch), np.diff(data.offsets))
    np.add.at(dense, (data.steps, sample, data.channels), 1.0)
    return torch.from_numpy(dense)


def _exp_weighted_mean(v):
    """v [L, B, n] -> [B, n]: mean over time of v weighted by exp(-t / L), t = 1..L."""
    import torch

    n = v.shape[0]
    weight = torch.exp(-torch.arange(1, n + 1, dtype=v.dtype) / n) / n
    return torch.einsum("tbn,t->bn", v, weight)


def _dcls_setup(hidden, n_steps, batch, max_delay, seed=1):
    import torch
    import torch.nn.functional as F

    data = workload(n_steps, batch, seed=seed)
    x = _dense_input(data, n_steps, batch)
    labels = torch.as_tensor(data.labels)
    model = _build_dcls(hidden, max_delay)
    opt = torch.optim.Adam(
        [{"params": model.weights, "lr": LR_W}, {"params": model.positions, "lr": LR_POS}], betas=(0.9, 0.999)
    )
    opt = _ClampAfterStep(opt, model.clamp_parameters)

    def loss_fn():
        return F.cross_entropy(_exp_weighted_mean(model(x)), labels)

    return model, opt, loss_fn


def dcls_job(hidden, n_steps, batch, max_delay, repeats, queue):
    """DCLS-Delays BPTT train steps on the benchmark workload; puts the timings on ``queue``."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.set_flush_denormal(True)
    base = rss_bytes()
    model, opt, loss_fn = _dcls_setup(hidden, n_steps, batch, max_delay)
    times, peak_mb = measure(loss_fn, opt, model.parameters(), repeats)
    kernel = dcls_kernel_size(max_delay)
    lengths = _dcls_lengths(n_steps, kernel)
    rate = model.hidden_spikes / (batch * 2 * hidden) * 1000.0 / lengths[1]
    queue.put(
        dict(
            times,
            peak_mem_mb=peak_mb,
            peak_total_mb=(peak_rss_bytes() - base) / 2**20,
            kernel_size=kernel,
            simulated_steps=lengths[1:],
            hidden_rate_hz=rate,
            hidden_spikes_per_sample=model.hidden_spikes // batch,
        )
    )


def _dcls_probe_job(hidden, n_steps, batch, max_delay, queue):
    """Cost pieces of one DCLS train step, measured on small problems (forward + backward each):
    the seconds per multiply-accumulate of every layer's convolution at the real kernel size
    (batch 1, 32 output steps; CPU convolution libraries take slower paths for some large kernels),
    how much faster a convolution runs at a larger batch and length (kernel size capped at 65), the
    kernel construction (kernel size capped at 65, per tap) and one LIF time step (real batch, width)."""
    import time

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    torch.set_flush_denormal(True)
    kernel = dcls_kernel_size(max_delay)
    sizes = [(N_IN, hidden), (hidden, hidden), (hidden, N_OUT)]

    def timed(fn, reps=1, warm=True):
        if warm:
            fn()
        best = math.inf
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    def conv_s_per_mac(n_in, n_out, k, b, length, input_grad, warm=True):
        w = (torch.randn(n_out, n_in, k) * 0.05).requires_grad_(True)
        x = (torch.rand(b, n_in, length + k - 1) < 0.05).float().requires_grad_(input_grad)
        return timed(lambda: F.conv1d(x, w).sum().backward(), warm=warm) / (b * n_in * n_out * k * length)

    # at the real kernel size: no warm-up (one run can take tens of seconds on a slow path)
    layer_s_per_mac = [conv_s_per_mac(a, b, kernel, 1, 32, k > 0, warm=False) for k, (a, b) in enumerate(sizes)]
    small_k = min(kernel, 65)
    small = conv_s_per_mac(N_IN, hidden, small_k, 1, 32, False)
    large = conv_s_per_mac(N_IN, hidden, small_k, min(batch, 8), 256, False)
    model = _build_dcls(hidden, small_k - 1)

    def construct():
        sum(c.DCK(c.weight, c.P, c.SIG).sum() for c in model.convs).backward()

    s_per_tap = timed(construct) / (small_k * sum(a * b for a, b in sizes))
    n_probe = 100
    cur = (torch.rand(n_probe, batch, hidden) * 0.3).requires_grad_(True)
    t_lif = timed(lambda: model.neurons(cur, spiking=True).sum().backward()) / n_probe
    queue.put(
        dict(layer_s_per_mac=layer_s_per_mac, scale_gain=min(1.0, large / small), s_per_tap=s_per_tap, lif_step_s=t_lif)
    )


def dcls_estimate(hidden, n_steps, batch, max_delay, probe=None) -> dict:
    """Predicted peak memory growth (bytes) and, given a probe, seconds per train step of the DCLS peer."""
    kernel = dcls_kernel_size(max_delay)
    lengths = _dcls_lengths(n_steps, kernel)
    sizes = [(N_IN, hidden), (hidden, hidden), (hidden, N_OUT)]
    f32 = 4
    taps = kernel * sum(a * b for a, b in sizes)
    # kernel construction: about 8 tensors of kernel x n_out x n_in per layer live until backward
    mem = 8 * taps * f32
    for k, (n_in, n_out) in enumerate(sizes):
        mem += 2 * batch * n_in * (lengths[k] + kernel - 1 + (kernel - 1) // 2) * f32  # padded input, its grad
        mem += 12 * batch * n_out * lengths[k + 1] * f32  # neuron states kept for BPTT
    macs = [batch * a * b * kernel * lengths[k + 1] for k, (a, b) in enumerate(sizes)]
    est = dict(mem_bytes=int(mem), macs=sum(macs), kernel_size=kernel)
    if probe is not None:
        conv = probe["scale_gain"] * sum(m * s for m, s in zip(macs, probe["layer_s_per_mac"]))
        est["step_s"] = conv + taps * probe["s_per_tap"] + sum(lengths[1:]) * probe["lif_step_s"]
    return est


# ------------------------------------------------------------------------------- eventkit side
def _delay_config(with_delays, max_delay, mode="round"):
    if not with_delays:
        return None
    return {"ff": dict(learn=True, max=float(max_delay), init=dict(uniform=[0.0, float(max_delay)]), mode=mode)}


def _layer_rates(net, data, n_steps, hidden):
    import torch

    with torch.no_grad():
        counts = net(data).counts
    scale = 1000.0 / n_steps
    return (counts[:, :hidden].mean().item() * scale, counts[:, hidden : 2 * hidden].mean().item() * scale)


def _calibrated_delay_net(hidden, n_steps, max_delay, with_delays, data, target_rate, device="cpu", mode="round"):
    """The two-layer EventpropNet with hidden layer 1 firing ``target_rate`` spikes per neuron per
    second (bisection on the mean input weight of the first layer, as eventkit.bench does), then
    layer 2 brought to the same rate by the same bisection on the mean of ff1."""
    import torch

    from eventkit.engine import EventpropNet

    def build(mean):
        return placed(
            EventpropNet(
                N_IN,
                N_OUT,
                hidden=[hidden, hidden],
                recurrent=False,
                n_steps=n_steps,
                init=dict(ff_mean=mean, ff_std=0.01, out_std=0.03),
                delays=_delay_config(with_delays, max_delay, mode),
                generator=torch.Generator().manual_seed(0),
                backend=device,
            ),
            device,
        )

    lo, hi = 0.0, 0.2
    for _ in range(14):
        mean = 0.5 * (lo + hi)
        net = build(mean)
        rate1, rate2 = _layer_rates(net, data, n_steps, hidden)
        if abs(rate1 - target_rate) < 0.5:
            break
        lo, hi = (mean, hi) if rate1 < target_rate else (lo, mean)
    w_in_mean = mean
    noise = (torch.randn(net.ff1.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.01).to(
        net.ff1.device
    )
    lo, hi = 0.0, 0.4
    for _ in range(14):
        if abs(rate2 - target_rate) < 0.5:
            break
        mean = 0.5 * (lo + hi)
        with torch.no_grad():
            net.ff1.copy_((noise + mean).to(net.ff1.dtype))
        rate1, rate2 = _layer_rates(net, data, n_steps, hidden)
        lo, hi = (mean, hi) if rate2 < target_rate else (lo, mean)
    return net, rate1, rate2, w_in_mean


def eventkit_delay_job(hidden, n_steps, batch, max_delay, repeats, with_delays, device, mode, queue):
    """eventkit train steps on the benchmark workload, with or without learnable delays."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)  # the engine runs on numba threads
    torch.set_flush_denormal(True)
    data = workload(n_steps, batch, seed=1)
    net, rate1, rate2, w_in_mean = _calibrated_delay_net(
        hidden, n_steps, max_delay, with_delays, data, TARGET_RATE, device, mode
    )
    labels = torch.as_tensor(data.labels).to(device)
    if with_delays:
        opt = torch.optim.Adam(net.param_groups(delay_lr=LR_POS), lr=LR_W)
        opt = _ClampAfterStep(opt, net.clamp_delays)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=LR_W)

    def loss_fn():
        return F.cross_entropy(net(data).readout, labels)

    warm(net, data)
    times, peak_mb = measure(loss_fn, opt, net.parameters(), repeats, device)
    with torch.no_grad():
        hidden_spikes = int(net(data).counts.sum().item()) // batch
    queue.put(
        dict(
            times,
            peak_mem_mb=peak_mb,
            rate_hz=rate1,
            rate2_hz=rate2,
            hidden_spikes_per_sample=hidden_spikes,
            w_in_mean=w_in_mean,
        )
    )


def synapse_event_cost(n_pre=700, n_post=256, max_delay=64, n_spikes=8000, rounds=15, seed=0) -> dict:
    """Nanoseconds per synapse event of the engine's own kernels on one thread (CPU-time minimum
    over ``rounds`` interleaved rounds, each running every kernel once over the same ``n_spikes``
    spikes of random presynaptic neurons, a new window row every 8 spikes), for an input spike
    (its targets' current) and a hidden spike (current and voltage), forward and backward:
    undelayed, the row update the network without delays runs (vectorised); round, the delay
    window with whole-step delays (one scattered update through a precomputed offset per
    synapse); exact, fractional delays (sub-step arrivals: a hidden spike's row, sorted by sub-step
    part as the engine stores it, splits by one search into the synapses that arrive within the
    step and those that arrive in the next, and reads one more value per synapse forward, two
    backward; an input spike adds its synapses' arrivals, fixed per call, to current and
    voltage). The backward of an input spike only sums the adjoints at its arrivals (round and
    exact alike). The passes over the input synapses (their arrivals before the forward, their
    factors after the backward), once per call or group of samples in the engine, run here once
    per round and are counted in."""
    import time

    import numpy as np
    from numba import njit

    from eventkit.engine.backends import _cpu_kernels as K

    n_tot = 2 * n_post + 20  # the window row of the workload: two hidden layers and the outputs
    stride = 2 * n_tot
    n_slots = max_delay + 2
    f32 = np.float32

    @njit(cache=False, nogil=True)
    def fwd_plain(w, pre, amp, i_state, v_state, current_only):
        for s in range(pre.shape[0]):
            row = w[pre[s] * n_post : (pre[s] + 1) * n_post]
            if current_only:
                K._axpy(i_state, row, amp[s])
            else:
                K._axpy2(i_state, v_state, row, amp[s], amp[s] * f32(0.5))

    @njit(cache=False, nogil=True)
    def fwd_round(w, d_off, pre, amp, win, current_only):
        for s in range(pre.shape[0]):
            p0 = np.uint64((s // 8 % n_slots) * stride)
            if current_only:
                K._deliver_whole_current(win, p0, amp[s], w, d_off, pre[s] * n_post, n_post)
            else:  # hidden spikes: the arrival in the weights' precision, as the engine passes it
                K._deliver_whole(win, p0, amp[s], amp[s] * f32(0.5), w, d_off, pre[s] * n_post, n_post)

    @njit(cache=False, nogil=True)
    def fwd_exact(w, d_off, d_frac, d_bm, d_am, pre, amp, win, current_only, net, arr):
        # the synapses' fixed parts of their arrivals: once per call in the engine, here once per run
        K._call_arrivals(arr, net)
        for s in range(pre.shape[0]):
            p0 = np.uint64((s // 8 % n_slots) * stride)
            a = amp[s]  # the spike's factors in the weights' precision, as the engine passes them
            if current_only:
                K._deliver_input(win, p0, arr, d_off, pre[s] * n_post, n_post)
            else:
                edge = f32(1.0) - f32((s % 7) / 7.0)
                K._deliver_spike(
                    win,
                    p0,
                    np.uint32(stride),
                    edge,
                    a,
                    a * f32(0.5),
                    a * f32(0.45),
                    a * f32(0.8),
                    a * f32(0.4),
                    a * f32(0.43),
                    arr,
                    d_off,
                    d_frac,
                    pre[s] * n_post,
                    n_post,
                )

    @njit(cache=False, nogil=True)
    def bwd_plain(w, gw, pre, amp, lam_i, lam_v, current_only):
        acc = 0.0
        for s in range(pre.shape[0]):
            base = pre[s] * n_post
            if current_only:
                K._axpy(gw[base : base + n_post], lam_i, amp[s])
            else:
                a = amp[s]
                acc += K._jump_and_grad(
                    lam_i,
                    lam_v,
                    w[base : base + n_post],
                    gw[base : base + n_post],
                    a,
                    a * f32(0.5),
                    a * f32(0.2),
                    a * f32(0.1),
                )
        return acc

    @njit(cache=False, nogil=True)
    def bwd_round(w, gw, gd, d_off, pre, amp, hist, current_only):
        acc = 0.0
        for s in range(pre.shape[0]):
            p0 = np.uint64((s // 8 % n_slots) * stride)
            a = amp[s]
            if current_only:  # input spikes: the adjoints at the arrivals; their factors once after
                K._gather_adjoint(hist, p0, gw, gd, d_off, pre[s] * n_post, n_post)
            else:  # hidden spikes: the factors in the weights' precision, as the engine passes them
                acc += K._adjoint_whole(
                    hist, p0, a, a * f32(0.5), a * f32(0.2), a * f32(0.1), w, gw, gd, d_off, pre[s] * n_post, n_post
                )
        if current_only:  # the engine does this once per group of samples, here once per run
            K._input_grads(gw, gd, w, gw, gd, 0, gw.shape[0], f32(0.8), f32(0.4), f32(0.2), f32(0.05), 0)
        return acc

    @njit(cache=False, nogil=True)
    def bwd_exact(w, gw, gd, d_off, d_frac, d_bm, d_am, pre, amp, hist, current_only):
        acc = 0.0
        for s in range(pre.shape[0]):
            p0 = np.uint64((s // 8 % n_slots) * stride)
            a = amp[s]
            if current_only:
                K._gather_adjoint(hist, p0, gw, gd, d_off, pre[s] * n_post, n_post)
            else:
                acc += K._adjoint_spike(
                    hist,
                    p0,
                    np.uint32(stride),
                    f32(1.0) - f32((s % 7) / 7.0),
                    a,
                    a * f32(0.5),
                    a * f32(0.45),
                    a * f32(0.8),
                    a * f32(0.4),
                    a * f32(0.43),
                    f32(0.2),
                    f32(0.05),
                    w,
                    gw,
                    gd,
                    d_off,
                    d_frac,
                    d_bm,
                    d_am,
                    pre[s] * n_post,
                    n_post,
                )
        if current_only:
            K._input_grads(gw, gd, w, d_bm, d_am, 0, gw.shape[0], f32(0.8), f32(0.4), f32(0.2), f32(0.05), 1)
        return acc

    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n_pre * n_post).astype(f32)
    d_steps = rng.integers(0, max_delay + 1, n_pre * n_post)
    d_off = (d_steps * stride + np.tile(2 * np.arange(n_post), n_pre)).astype(np.uint32)
    # each presynaptic row sorted by sub-step part, as the engine stores rows with sub-step delays
    d_frac = np.sort(rng.random((n_pre, n_post)), axis=1).reshape(-1).astype(f32)
    d_bm = np.exp(0.2 * d_frac).astype(f32)
    d_am = np.exp(0.05 * d_frac).astype(f32)
    pre = rng.integers(0, n_pre, n_spikes).astype(np.int64)
    amp = rng.random(n_spikes).astype(f32)
    lam_i, lam_v = (rng.standard_normal(n_post).astype(f32) * f32(1e-3) for _ in range(2))
    i_state, v_state = np.zeros(n_post, f32), np.zeros(n_post, f32)
    win = np.zeros(2 * n_slots * stride, f32)
    hist = (rng.standard_normal(2 * n_slots * stride) * 1e-3).astype(f32)
    gw, gd = np.zeros(n_pre * n_post, f32), np.zeros(n_pre * n_post, f32)
    # one delayed block with sub-step arrivals (b0 0.8, c 0.5), from the input (PRE -1) or from a
    # hidden layer (PRE 0), for the pass over the synapses' fixed parts of their arrivals
    coef = np.zeros((1, K.N_COEF), f32)
    coef[0, K.B0], coef[0, K.C] = 0.8, 0.5
    in_blk = np.zeros(1, dtype=np.int64)
    arr = np.empty(2 * n_pre * n_post, f32)
    i64 = np.zeros(1, dtype=np.int64)
    nets = {}
    for current_only, pre_pop in ((True, -1), (False, 0)):
        blk = np.array([[pre_pop, 0, 0, n_post, 1, 1, 1]], dtype=np.int64)
        structure = (i64, np.zeros(1, np.int32), coef, np.zeros(1, np.int8), np.zeros(1, f32), blk, i64, i64, in_blk)
        rows = (i64, np.zeros(1, np.int8))  # its one population's coefficient row for every neuron
        nets[current_only] = K.Net(*structure, w, d_off, d_frac, d_bm, d_am, n_slots, *rows)
    runs = {}
    for current_only, spike in ((True, "input"), (False, "hidden")):
        runs[("forward", spike, "undelayed")] = lambda c=current_only: fwd_plain(w, pre, amp, i_state, v_state, c)
        runs[("forward", spike, "round")] = lambda c=current_only: fwd_round(w, d_off, pre, amp, win, c)
        runs[("forward", spike, "exact")] = lambda c=current_only: fwd_exact(
            w, d_off, d_frac, d_bm, d_am, pre, amp, win, c, nets[c], arr
        )
        runs[("backward", spike, "undelayed")] = lambda c=current_only: bwd_plain(w, gw, pre, amp, lam_i, lam_v, c)
        runs[("backward", spike, "round")] = lambda c=current_only: bwd_round(w, gw, gd, d_off, pre, amp, hist, c)
        runs[("backward", spike, "exact")] = lambda c=current_only: bwd_exact(
            w, gw, gd, d_off, d_frac, d_bm, d_am, pre, amp, hist, c
        )
    for fn in runs.values():
        fn()  # compile and warm up
    best = dict.fromkeys(runs, math.inf)
    for _ in range(rounds):
        for key, fn in runs.items():
            t0 = time.thread_time()
            fn()
            best[key] = min(best[key], time.thread_time() - t0)
    table = []
    for pass_ in ("forward", "backward"):
        for spike in ("input", "hidden"):
            ns = {
                kind: best[(pass_, spike, kind)] / (n_spikes * n_post) * 1e9 for kind in ("undelayed", "round", "exact")
            }
            table.append(dict(pass_=pass_, spike=spike, **{f"{k}_ns": v for k, v in ns.items()}))
    hidden_fwd = table[1]
    return dict(
        undelayed_ns=hidden_fwd["undelayed_ns"],
        delayed_ns=hidden_fwd["round_ns"],
        ratio=hidden_fwd["round_ns"] / hidden_fwd["undelayed_ns"],
        table=table,
        n_pre=n_pre,
        n_post=n_post,
        max_delay=max_delay,
        rounds=rounds,
    )


# ------------------------------------------------------------------------------------------ main
def _in_process_limited(target, *args, timeout: float):
    """Like eventkit.bench._in_process, but gives up after ``timeout`` seconds and notices a child
    that died (killed for memory): returns (result, None) or (None, why)."""
    import multiprocessing as mp
    import queue as queue_mod
    import time

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, results))
    proc.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = results.get(timeout=1.0)
            proc.join()
            return result, None
        except queue_mod.Empty:
            pass
        if not proc.is_alive():
            try:  # it may have put its result just before exiting
                return results.get(timeout=1.0), None
            except queue_mod.Empty:
                return None, f"the process exited with code {proc.exitcode} without a result"
        if time.monotonic() > deadline:
            proc.kill()
            proc.join()
            return None, f"stopped after {timeout:.0f} s"


def _have_dcls() -> str | None:
    """None when DCLS is importable, else why not."""
    try:
        from DCLS.construct.modules import Dcls1d  # noqa: F401
    except ImportError as exc:
        return f"DCLS is not installed (pip install eventkit[bench]): {exc}"
    return None


def _mem_total_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _fmt(value, spec, width):
    return f"{value:{width}{spec}}" if value is not None else f"{'-':>{width}}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eventkit.bench --delays", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1000, help="time steps T (dt 1 ms)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="timed train steps per eventkit configuration")
    parser.add_argument("--dcls-repeats", type=int, default=2)
    parser.add_argument("--max-delays", default="64,512", help="comma-separated maximum delays in steps")
    parser.add_argument(
        "--mode",
        default="round",
        help="eventkit's delay mode, or both comma-separated (round,exact: each maximum delay runs both in "
        "the same sitting and the table gives exact / round); DCLS runs whole steps, beside the round mode",
    )
    parser.add_argument("--no-dcls", action="store_true", help="skip the DCLS-Delays comparison")
    parser.add_argument(
        "--cpu-rounds",
        type=int,
        default=0,
        help="also time the networks by CPU time, one thread, interleaved in one process: the minimum "
        "over this many rounds per maximum delay (0: not)",
    )
    parser.add_argument(
        "--dcls-max-step-s",
        type=float,
        default=180.0,
        help="skip DCLS where one train step is predicted to take longer",
    )
    parser.add_argument(
        "--eventkit-timeout-s", type=float, default=3600.0, help="give up on an eventkit configuration after this long"
    )
    parser.add_argument(
        "--mem-limit-gb",
        type=float,
        default=None,
        help="skip DCLS where it is predicted to need more (default: the machine's memory)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where eventkit trains (cuda backend); DCLS-Delays is compared on the CPU only",
    )
    return parser


def _parse(argv) -> tuple[argparse.Namespace, list[int]]:
    """The command line, checked: (args, the maximum delays to run); ``args.modes`` lists the delay
    modes."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cpu_rounds < 0:
        parser.error(f"--cpu-rounds must be >= 0, got {args.cpu_rounds}")
    if args.cpu_rounds and args.device != "cpu":
        parser.error("--cpu-rounds times the CPU backend; drop it with --device cuda")
    if min(args.repeats, args.dcls_repeats, args.batch, args.steps, args.hidden) < 1:
        parser.error("--repeats, --dcls-repeats, --batch, --steps and --hidden must be >= 1")
    try:
        max_delays = [int(d) for d in args.max_delays.split(",") if d.strip()]
    except ValueError:
        parser.error(f"--max-delays: expected comma-separated integers, got {args.max_delays!r}")
    if not max_delays or min(max_delays) < 1:
        parser.error("--max-delays: give at least one maximum delay >= 1")
    args.modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    if not args.modes or set(args.modes) - {"round", "exact"} or len(set(args.modes)) < len(args.modes):
        parser.error(f"--mode: expected round, exact or round,exact, got {args.mode!r}")
    return args, max_delays


def _why_no_dcls(args) -> str | None:
    """Why DCLS-Delays is not compared in this run (printed once), or None."""
    why = "--no-dcls given" if args.no_dcls else _have_dcls()
    if args.device != "cpu" and why is None:
        why = f"the DCLS-Delays comparison runs on the CPU only, eventkit runs on {args.device}"
    if why and not args.no_dcls:
        print(f"skipping DCLS-Delays: {why}")
    return why


def _run_eventkit(args, max_delay: int, with_delays: bool, mode: str = "round") -> dict:
    """One eventkit configuration in its own process (SystemExit with the reason if it fails)."""
    result, why = _in_process_limited(
        eventkit_delay_job,
        args.hidden,
        args.steps,
        args.batch,
        max_delay,
        args.repeats,
        with_delays,
        args.device,
        mode,
        timeout=args.eventkit_timeout_s,
    )
    if result is None:
        raise SystemExit(f"eventkit ({'max delay ' + str(max_delay) if with_delays else 'no delays'}) failed: {why}")
    return result


def _add_dcls(row: dict, args, max_delay: int, mem_limit: float) -> None:
    """DCLS-Delays at ``max_delay`` into ``row``: its predicted cost, and its measured step where the
    prediction fits the limits (else the reason it was skipped)."""
    hidden, n_steps, batch = args.hidden, args.steps, args.batch
    ek = row["eventkit"]
    shd_batches = -(-SHD_TRAIN_SAMPLES // batch)
    ssc_batches = -(-SSC_TRAIN_SAMPLES // batch)
    est = dcls_estimate(hidden, n_steps, batch, max_delay)
    skip = None
    if est["mem_bytes"] > mem_limit:
        skip = f"predicted {est['mem_bytes'] / 2**30:.1f} GiB > {mem_limit / 2**30:.1f} GiB of memory"
    else:
        print(f"probing the DCLS-Delays cost at max delay {max_delay} ...", flush=True)
        probe, why = _in_process_limited(
            _dcls_probe_job, hidden, n_steps, batch, max_delay, timeout=max(120.0, args.dcls_max_step_s)
        )
        if probe is None:
            skip = f"the cost probe failed ({why})"
        else:
            est = dcls_estimate(hidden, n_steps, batch, max_delay, probe)
            est["probe"] = probe
            if est["step_s"] > args.dcls_max_step_s:
                skip = f"predicted {est['step_s']:.0f} s per train step > {args.dcls_max_step_s:.0f} s"
    row["dcls_estimate"] = est
    if skip:
        print(f"skipping DCLS-Delays at max delay {max_delay}: {skip}", flush=True)
        row["dcls_skipped"] = skip
    else:
        print(
            f"running DCLS-Delays, max delay {max_delay} (predicted {est['step_s']:.0f} s per step, "
            f"{est['mem_bytes'] / 2**30:.1f} GiB) ...",
            flush=True,
        )
        limit = 300.0 + 3.0 * (args.dcls_repeats + 1) * max(est["step_s"], args.dcls_max_step_s)
        dc, why = _in_process_limited(dcls_job, hidden, n_steps, batch, max_delay, args.dcls_repeats, timeout=limit)
        if dc is None:
            print(f"DCLS-Delays at max delay {max_delay} failed: {why}", flush=True)
            row["dcls_skipped"] = f"failed: {why}"
        else:
            row.update(
                dcls=dc,
                speedup=dc["train_step"] / ek["train_step"],
                mem_ratio=dc["peak_mem_mb"] / max(ek["peak_mem_mb"], 1.0),
                dcls_epoch_s=dict(shd=dc["train_step"] * shd_batches, ssc=dc["train_step"] * ssc_batches),
            )


def _print_table(rows: list[dict], args, plain: dict) -> None:
    hidden, n_steps, batch = args.hidden, args.steps, args.batch
    shd_batches = -(-SHD_TRAIN_SAMPLES // batch)
    ssc_batches = -(-SSC_TRAIN_SAMPLES // batch)
    header = (
        f"{'max delay':>9} {'mode':>5} | {'ek s/step':>9} {'ek MB':>7} | {'no-delay s/step':>15} | "
        f"{'DCLS s/step':>11} {'DCLS MB':>8} | {'speed-up':>8} {'mem ratio':>9} {'delay cost':>10} | "
        f"{'ek SHD s/ep':>11} {'ek SSC s/ep':>11} {'DCLS SHD s/ep':>13} {'DCLS SSC s/ep':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        e, d = r["eventkit"], r.get("dcls")
        print(
            f"{r['max_delay']:>9} {r['mode']:>5} | {e['train_step']:>9.3f} {e['peak_mem_mb']:>7.1f} | "
            f"{r['eventkit_no_delays']['train_step']:>15.3f} | "
            f"{_fmt(d and d['train_step'], '.2f', 11)} {_fmt(d and d['peak_mem_mb'], '.1f', 8)} | "
            f"{_fmt(r.get('speedup'), '.1f', 7)}{'x' if d else ' '} {_fmt(r.get('mem_ratio'), '.1f', 8)}"
            f"{'x' if d else ' '} {r['delay_cost']:>9.2f}x | "
            f"{r['eventkit_epoch_s']['shd']:>11.1f} {r['eventkit_epoch_s']['ssc']:>11.1f} "
            f"{_fmt(d and r['dcls_epoch_s']['shd'], '.0f', 13)} {_fmt(d and r['dcls_epoch_s']['ssc'], '.0f', 13)}"
        )
        if "dcls_skipped" in r:
            print(f"{'':>15}   DCLS skipped: {r['dcls_skipped']}")
    mem = "eventkit: peak GPU memory allocated (torch) growth" if args.device == "cuda" else "peak RSS growth"
    print(
        f"(device {args.device}; {' and '.join(args.modes)} delays; hidden {hidden} x 2, T {n_steps}, batch {batch}; "
        f"median of {args.repeats} eventkit / {args.dcls_repeats} DCLS train steps; "
        f"speed-up = DCLS / eventkit s per step; mem = {mem} "
        f"while training; delay cost = eventkit with / without delays; epoch = {shd_batches} "
        f"(SHD, {SHD_TRAIN_SAMPLES} samples) or {ssc_batches} (SSC, {SSC_TRAIN_SAMPLES}) batches; "
        f"eventkit hidden layer 1 at {plain['rate_hz']:.1f} spikes/neuron/s without delays)"
    )
    for r in rows:
        if "exact_vs_round" in r:
            print(
                f"exact / round at max delay {r['max_delay']} (this run): {r['exact_vs_round']:.2f}x on the "
                f"medians, {r['exact_vs_round_min']:.2f}x on the fastest steps"
            )


def cpu_time_job(hidden, n_steps, batch, max_delay, modes, rounds, queue):
    """CPU time of train steps of the undelayed network and the delayed ones in ``modes``, one
    numba thread, interleaved in this process (each round steps every network once, from its
    calibrated parameters; round 0 warms up): minima over the other rounds, in seconds. On a
    shared machine the CPU time of interleaved steps separates the networks more reliably than
    wall clock in separate processes. ``silent_s``: the same steps on the batch without its input
    spikes, where no synapse event happens (what remains is the per-step neuron work and, with
    delays, the window's row operations and the per-call work), so ``step_s - silent_s`` is what
    the synapse events cost."""
    import numba
    import numpy as np
    import torch

    from eventkit.data import SpikeData

    numba.set_num_threads(1)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    data = workload(n_steps, batch, seed=1)
    none = np.zeros(0, dtype=np.int64)
    silent = SpikeData(np.zeros(batch + 1, dtype=np.int64), none, none, data.labels, N_IN, n_steps, 1.0, N_OUT)
    labels = torch.as_tensor(data.labels)
    nets = {}
    for name, with_delays, mode in (("none", False, "round"), *((m, True, m) for m in modes)):
        net, *_ = _calibrated_delay_net(hidden, n_steps, max_delay, with_delays, data, TARGET_RATE, "cpu", mode)
        params = net.param_groups(delay_lr=LR_POS) if with_delays else net.parameters()
        nets[name] = (net, torch.optim.Adam(params, lr=LR_W), keep_parameters(net.parameters()))
    best = {which: {name: float("inf") for name in nets} for which in ("step_s", "silent_s")}
    for r in range(rounds + 1):
        for name, (net, opt, restore) in nets.items():
            for which, batch_data in (("step_s", data), ("silent_s", silent)):
                spent = cpu_step_seconds(net, opt, batch_data, labels, restore)
                if r > 0:
                    best[which][name] = min(best[which][name], spent)
    queue.put(dict(max_delay=max_delay, rounds=rounds, **best))


def _print_cpu_table(cpu: list[dict]) -> None:
    rounds = cpu[0]["rounds"]
    print(
        f"CPU time per train step (1 numba thread, interleaved in one process, minimum of {rounds} rounds; "
        "silent: the same batch without input spikes, so without synapse events):"
    )
    names = list(cpu[0]["step_s"])
    modes = [m for m in names if m != "none"]
    ratios = " ".join(f"{m + ' / none':>13}" for m in modes) + (" exact / round" if len(modes) == 2 else "")
    silent = " ".join(f"{m + ' silent':>13}" for m in names)
    print(f"{'max delay':>9} | " + " ".join(f"{m + ' ms':>9}" for m in names) + f" | {ratios} | {silent}")
    for row in cpu:
        t, q = row["step_s"], row["silent_s"]
        line = f"{row['max_delay']:>9} | " + " ".join(f"{1e3 * t[m]:>9.0f}" for m in names) + " | "
        line += " ".join(f"{t[m] / t['none']:>12.2f}x" for m in modes)
        if len(modes) == 2:
            line += f" {t['exact'] / t['round']:>12.2f}x"
        line += " | " + " ".join(f"{1e3 * q[m]:>10.0f} ms" for m in names)
        print(line)


def _print_event_table(event: dict, hidden: int, max_delay: int) -> None:
    print(
        f"ns per synapse event (engine kernels, 1 thread, {hidden} targets, delays 0..{max_delay}, "
        f"CPU-time minimum of {event['rounds']} interleaved rounds):"
    )
    print(
        f"{'pass':>8} {'spike':>6} | {'undelayed':>9} {'round':>7} {'exact':>7} | "
        f"{'round/undel':>11} {'exact/round':>11}"
    )
    for e in event["table"]:
        print(
            f"{e['pass_']:>8} {e['spike']:>6} | {e['undelayed_ns']:>9.2f} {e['round_ns']:>7.2f} "
            f"{e['exact_ns']:>7.2f} | "
            f"{e['round_ns'] / e['undelayed_ns']:>10.1f}x {e['exact_ns'] / e['round_ns']:>10.2f}x"
        )


def main(argv=None) -> int:
    args, max_delays = _parse(argv)
    problem = device_problem(args.device)
    if problem:
        print(f"python -m eventkit.bench --delays: error: --device cuda: {problem}", file=sys.stderr)
        return 2
    mem_limit = args.mem_limit_gb * 2**30 if args.mem_limit_gb else _mem_total_bytes()
    why_no_dcls = _why_no_dcls(args)
    hidden, n_steps, batch = args.hidden, args.steps, args.batch
    shd_batches = -(-SHD_TRAIN_SAMPLES // batch)
    ssc_batches = -(-SSC_TRAIN_SAMPLES // batch)
    print(f"running eventkit without delays (hidden={hidden}, T={n_steps}, batch={batch}) ...", flush=True)
    plain = _run_eventkit(args, 0, False)
    rows = []
    dcls_mode = "round" if "round" in args.modes else args.modes[0]  # DCLS runs whole steps
    for max_delay in max_delays:
        by_mode = {}
        for mode in args.modes:
            print(f"running eventkit with {mode} delays, max delay {max_delay} ...", flush=True)
            ek = _run_eventkit(args, max_delay, True, mode)
            row = by_mode[mode] = dict(
                max_delay=max_delay,
                hidden=hidden,
                n_steps=n_steps,
                batch=batch,
                device=args.device,
                mode=mode,
                eventkit=ek,
                eventkit_no_delays=plain,
                delay_cost=ek["train_step"] / plain["train_step"],
                eventkit_epoch_s=dict(shd=ek["train_step"] * shd_batches, ssc=ek["train_step"] * ssc_batches),
            )
            if why_no_dcls is None and mode == dcls_mode:  # DCLS once per maximum delay
                _add_dcls(row, args, max_delay, mem_limit)
            rows.append(row)
        if len(by_mode) == 2:
            exact, round_ = by_mode["exact"]["eventkit"], by_mode["round"]["eventkit"]
            by_mode["exact"]["exact_vs_round"] = exact["train_step"] / round_["train_step"]
            by_mode["exact"]["exact_vs_round_min"] = exact["train_step_min"] / round_["train_step_min"]
    _print_table(rows, args, plain)
    cpu = [
        in_process(cpu_time_job, hidden, n_steps, batch, max_delay, args.modes, args.cpu_rounds)
        for max_delay in (max_delays if args.cpu_rounds else ())
    ]
    if cpu:
        _print_cpu_table(cpu)
    event = None
    if args.device == "cpu":
        event = synapse_event_cost(n_post=hidden, max_delay=max_delays[0])
        _print_event_table(event, hidden, max_delays[0])
    if args.json:
        extra = dict(mem_total_bytes=_mem_total_bytes(), synapse_event=event, **device_info(args.device))
        if cpu:
            extra["cpu_time"] = cpu
        if why_no_dcls is None:
            from importlib.metadata import version

            extra["dcls"] = version("dcls")
        else:
            extra["dcls_skipped"] = why_no_dcls
        write_json(args.json, rows, **extra)
    return 0
