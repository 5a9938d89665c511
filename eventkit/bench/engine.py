"""Engine benchmark: ``python -m eventkit.bench [--json PATH] [--quick] [--no-snntorch]
[--device cpu|cuda] [--learn-tau] [--described]``; ``python -m eventkit.bench --delays [...]``
runs the delay-learning workload against DCLS-Delays (:mod:`eventkit.bench.delays`).

The SHD-shaped workload: 700 inputs with about 8 input spikes per ms per sample, one recurrent
hidden LIF layer firing about 14 spikes per neuron per second, 20 LI outputs, dt 1 ms, batch 32,
exp-weighted readout, cross-entropy, Adam. The input is random (same statistics as SHD, not SHD).
For every configuration (T steps x hidden size) it reports the median seconds per batch of the
forward pass, the backward pass and the whole train step, the projected seconds per SHD epoch
(8156 training samples), and the peak memory growth of the process while training; and the same
for snnTorch BPTT on the identical network (same sizes, weights and input) when snnTorch is
installed. Each configuration runs in its own process so that memory peaks do not mix.
``--learn-tau`` also times the same network with learnable tau_mem and tau_syn, one scalar per
layer and one value per neuron (exact gradients; the per-neuron values start equal, so the
network fires as it does with fixed ones), and prints each one's cost against fixed time
constants.

``--described`` also times the same network with its hidden LIF given by its description only
(:func:`~eventkit.engine.Described`), i.e. on the description-driven kernels that run any
user-written model, and prints their cost against the specialised LIF kernels; with
``--learn-tau`` also the described network learning tau_mem and tau_syn per layer (through its
description), and its cost against the fixed described network.

``--device cuda`` runs eventkit on its cuda backend (parameters, batch and loss on the GPU) and
snnTorch on the GPU; times are then synchronised with the device and "mem" is the growth of
torch's peak GPU memory allocated while training (not host RSS).
"""

from __future__ import annotations

import argparse
import os
import sys

from .common import (
    SHD_TRAIN_SAMPLES,
    calibrated_net,
    device_info,
    device_problem,
    in_process,
    measure,
    warm,
    workload,
    write_json,
)


LEARN_TAU = {"tau_mem": [10.0, 100.0], "tau_syn": [1.0, 9.0]}


def _eventkit_job(hidden, n_steps, batch, repeats, device, variant, queue):
    """``variant``: None (fixed time constants), ``"layer"`` or ``"neuron"`` (learnable, one per
    layer or per neuron), ``"described"`` (fixed, the hidden LIF given by its description only:
    the description-driven kernels), ``"described_layer"`` (that network learning its time
    constants per layer)."""
    import torch
    import torch.nn.functional as F

    from eventkit.engine import LIF, Described, spike_count_regularizer

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # tiny gradients squared in Adam would otherwise be denormal
    data = workload(n_steps, batch, seed=1)
    learn_tau = LEARN_TAU if variant in ("layer", "neuron", "described_layer") else None
    neuron = Described(LIF()) if variant in ("described", "described_layer") else LIF()
    net, rate = calibrated_net(
        hidden, n_steps, data, 14.0, device, learn_tau, tau_per_neuron=variant == "neuron", neuron=neuron
    )
    labels = torch.as_tensor(data.labels).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    warm(net, data)

    def loss_fn():
        out = net(data)
        return F.cross_entropy(out.readout, labels) + spike_count_regularizer(out.counts, 5e-10, 14.0)

    times, peak_mb = measure(loss_fn, opt, net.parameters(), repeats, device)  # (kernels come from the disk cache)
    with torch.no_grad():
        hidden_spikes = int(net(data).counts.sum().item()) // batch
    queue.put(
        dict(
            times,
            peak_mem_mb=peak_mb,
            rate_hz=rate,
            hidden_spikes_per_sample=hidden_spikes,
            w_in_mean=float(net.ff0.detach().mean()),
        )
    )


def _snntorch_job(hidden, n_steps, batch, repeats, w_in_mean, device, queue):
    import math

    import numpy as np
    import snntorch as snn
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    torch.set_flush_denormal(True)
    data = workload(n_steps, batch, seed=1)
    dense = np.zeros((n_steps, batch, 700), dtype=np.float32)
    sample = np.repeat(np.arange(batch), np.diff(data.offsets))
    np.add.at(dense, (data.steps, sample, data.channels), 1.0)
    x = torch.from_numpy(dense)
    labels = torch.as_tensor(data.labels)
    g = torch.Generator().manual_seed(0)
    fc_in = torch.nn.Linear(700, hidden, bias=False)
    fc_out = torch.nn.Linear(hidden, 20, bias=False)
    with torch.no_grad():
        fc_in.weight.copy_(torch.randn(hidden, 700, generator=g) * 0.01 + w_in_mean)
        fc_out.weight.copy_(torch.randn(20, hidden, generator=g) * 0.03)
    alpha, beta = math.exp(-1 / 5.0), math.exp(-1 / 20.0)
    lif = snn.RSynaptic(
        alpha=alpha, beta=beta, threshold=1.0, linear_features=hidden, all_to_all=True, reset_mechanism="zero"
    )
    with torch.no_grad():
        lif.recurrent.weight.copy_(torch.randn(hidden, hidden, generator=g) * 0.02)
    out_cell = snn.Synaptic(alpha=alpha, beta=beta, threshold=1e9, reset_mechanism="none")
    for module in (fc_in, fc_out, lif, out_cell):
        module.to(device)
    x, labels = x.to(device), labels.to(device)
    params = list(fc_in.parameters()) + list(fc_out.parameters()) + list(lif.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    weight = (torch.exp(-torch.arange(1, n_steps + 1) / n_steps) / n_steps).to(device)

    def initial_state():
        if device == "cpu":
            return lif.init_rsynaptic(), out_cell.init_synaptic()
        zeros = [torch.zeros(batch, n, device=device) for n in (hidden, hidden, hidden, 20, 20)]
        return tuple(zeros[:3]), tuple(zeros[3:])

    def forward():
        (spk, syn, mem), (syn_o, mem_o) = initial_state()
        readout = 0
        for t in range(n_steps):
            spk, syn, mem = lif(fc_in(x[t]), spk, syn, mem)
            _, syn_o, mem_o = out_cell(fc_out(spk), syn_o, mem_o)
            readout = readout + weight[t] * mem_o
        return readout

    times, peak_mb = measure(lambda: F.cross_entropy(forward(), labels), opt, params, repeats, device)
    queue.put(dict(times, peak_mem_mb=peak_mb))


def _have_snntorch() -> bool:
    try:
        import snntorch  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m eventkit.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="only the headline configuration")
    parser.add_argument("--no-snntorch", action="store_true", help="skip the snnTorch comparison")
    parser.add_argument("--repeats", type=int, default=5, help="timed train steps per configuration")
    parser.add_argument("--snntorch-repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--learn-tau", action="store_true", help="also time learnable time constants against fixed ones"
    )
    parser.add_argument(
        "--described", action="store_true", help="also time the LIF network on the description-driven kernels"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where eventkit (cuda backend) and snnTorch train"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch < 1:
        parser.error("--repeats and --batch must be >= 1")
    problem = device_problem(args.device)
    if problem:
        print(f"python -m eventkit.bench: error: --device cuda: {problem}", file=sys.stderr)
        return 2
    configs = (
        [(256, 1000)] if args.quick else [(256, 1000), (256, 200), (256, 500), (1024, 200), (1024, 500), (1024, 1000)]
    )
    use_snn = not args.no_snntorch and _have_snntorch()
    if not args.no_snntorch and not use_snn:
        print("snnTorch is not installed (pip install eventkit[bench]); skipping the comparison")
    batches = -(-SHD_TRAIN_SAMPLES // args.batch)
    rows = []
    for hidden, n_steps in configs:
        print(f"running hidden={hidden} T={n_steps} ...", flush=True)
        ek = in_process(_eventkit_job, hidden, n_steps, args.batch, args.repeats, args.device, None)
        row = dict(
            hidden=hidden,
            n_steps=n_steps,
            batch=args.batch,
            device=args.device,
            eventkit=ek,
            eventkit_epoch_s=ek["train_step"] * batches,
        )
        if args.learn_tau:  # per neuron: the CPU backend only (cuda learns per layer, by description)
            for shape in ("layer", "neuron") if args.device == "cpu" else ("layer",):
                tau = in_process(_eventkit_job, hidden, n_steps, args.batch, args.repeats, args.device, shape)
                key = "learn_tau" if shape == "layer" else "learn_tau_per_neuron"
                row.update({f"eventkit_{key}": tau, f"{key}_cost": tau["train_step"] / ek["train_step"]})
        if args.described:
            gen = in_process(_eventkit_job, hidden, n_steps, args.batch, args.repeats, args.device, "described")
            row.update(eventkit_described=gen, described_cost=gen["train_step"] / ek["train_step"])
            if args.learn_tau:
                dl = in_process(
                    _eventkit_job, hidden, n_steps, args.batch, args.repeats, args.device, "described_layer"
                )
                row.update(
                    eventkit_described_learn_tau=dl, described_learn_tau_cost=dl["train_step"] / gen["train_step"]
                )
        if use_snn:
            sn = in_process(
                _snntorch_job, hidden, n_steps, args.batch, args.snntorch_repeats, ek["w_in_mean"], args.device
            )
            row.update(
                snntorch=sn, snntorch_epoch_s=sn["train_step"] * batches, speedup=sn["train_step"] / ek["train_step"]
            )
        rows.append(row)
    header = (
        f"{'hidden':>6} {'T':>5} {'spk/neur/s':>10} {'fwd s':>7} {'bwd s':>7} {'step s':>7} "
        f"{'epoch s':>8} {'mem MB':>7}"
    )
    if args.learn_tau:
        header += f" | {'tau step s':>10} {'tau mem MB':>10} {'tau cost':>8}"
        header += f" | {'per-nrn s':>10} {'per-nrn MB':>10} {'cost':>8}"
    if args.described:
        header += f" | {'descr. s':>10} {'descr. MB':>10} {'cost':>8}"
        if args.learn_tau:
            header += f" | {'d. tau s':>10} {'d. tau MB':>10} {'vs descr':>8}"
    if use_snn:
        header += f" | {'snn step s':>10} {'snn mem MB':>10} {'speedup':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        e = r["eventkit"]
        line = (
            f"{r['hidden']:>6} {r['n_steps']:>5} {e['rate_hz']:>10.1f} {e['forward']:>7.3f} "
            f"{e['backward']:>7.3f} {e['train_step']:>7.3f} {r['eventkit_epoch_s']:>8.1f} "
            f"{e['peak_mem_mb']:>7.1f}"
        )
        if args.learn_tau:
            for key in ("learn_tau", "learn_tau_per_neuron"):
                t = r.get(f"eventkit_{key}")
                if t is None:  # not run on this device
                    line += f" | {'n/a':>10} {'n/a':>10} {'n/a':>8}"
                    continue
                line += f" | {t['train_step']:>10.3f} {t['peak_mem_mb']:>10.1f} {r[f'{key}_cost']:>7.2f}x"
        if args.described:
            t = r["eventkit_described"]
            line += f" | {t['train_step']:>10.3f} {t['peak_mem_mb']:>10.1f} {r['described_cost']:>7.2f}x"
            if args.learn_tau:
                t = r["eventkit_described_learn_tau"]
                line += f" | {t['train_step']:>10.3f} {t['peak_mem_mb']:>10.1f} {r['described_learn_tau_cost']:>7.2f}x"
        if use_snn:
            s = r["snntorch"]
            line += f" | {s['train_step']:>10.3f} {s['peak_mem_mb']:>10.1f} {r['speedup']:>7.1f}x"
        print(line)
    mem = "peak GPU memory allocated (torch) growth" if args.device == "cuda" else "peak RSS growth"
    print(
        f"(device {args.device}; median of {args.repeats} train steps, batch {args.batch}; epoch = {batches} "
        f"batches = {SHD_TRAIN_SAMPLES} SHD training samples; mem = {mem} while training)"
    )
    if args.json:
        write_json(args.json, rows, **device_info(args.device))
    return 0
