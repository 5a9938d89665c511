"""One process of :func:`test_distributed.test_a_described_model_learns_its_constants_alike_in_two_processes`:
an engine-level data-parallel step (no app) of a model given by its description that learns its
constants, with learnable fractional delays. Not collected by pytest (no ``test_`` prefix)."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from engine_cases import Oscillator
from eventkit.engine import Delay, EventpropNet, ExpWeightedMeanV, LI
from eventkit.plugin.testing import random_data
from eventkit.training.parallel import DataParallel

N_SAMPLES = 7  # 4 groups of 2, 2, 2, 1 samples: 2 + 2 groups on two processes


def make():
    """The network and the batch every process builds alike."""
    net = EventpropNet(
        10,
        3,
        hidden=[7, 5],
        neuron=Oscillator(),
        output=LI(),
        readout=ExpWeightedMeanV(),
        n_steps=40,
        dtype=torch.float64,
        n_groups=4,
        init=dict(ff_mean=1.2, ff_std=0.4, rec_std=0.2, out_std=0.3),
        delays={kind: Delay(max=3.0, init=(0.0, 3.0)) for kind in ("ff", "rec", "out")},
        learn_tau={"omega": [0.1, 0.4], "tau": [8.0, 30.0], "gain": [0.5, 2.0]},
        generator=torch.Generator().manual_seed(3),
    )
    data = random_data(np.random.default_rng(11), N_SAMPLES, 10, 40, rate=(25, 40))
    return net, data


def loss_of(out, labels):
    """A sum over samples: each process's share adds its own samples' terms."""
    return F.cross_entropy(out.readout, labels, reduction="sum") + 0.1 * (out.trace**2).sum()


def gradients(net, data, dp: DataParallel) -> dict:
    """This process's step on its share of the batch; the whole batch's gradient by name."""
    reduction, _ = dp.share(net.group_offsets(N_SAMPLES))
    offsets = net.group_offsets(N_SAMPLES)
    first, end = reduction.groups[dp.rank]
    share = data.subset(np.arange(offsets[first], offsets[end]))
    with net.reducing_gradients(reduction):
        out = net(share)
    loss_of(out, torch.as_tensor(share.labels)).backward()
    return {name: p.grad.numpy().copy() for name, p in net.named_parameters()}


def main(rank: int, world: int, port: int, out: str) -> None:
    """torch.multiprocessing's entry point (the process index comes first: it is the rank)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        net, data = make()
        np.savez(os.path.join(out, f"rank{rank}.npz"), **gradients(net, data, DataParallel(rank, world)))
    finally:
        torch.distributed.destroy_process_group()
