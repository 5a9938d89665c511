"""Shared fixtures: small eventkit networks and a Yin-Yang batch."""

from __future__ import annotations

import pytest
import torch

from eventkit.plugin import yinyang
from eventkit.plugin import EventpropNet, SumV


@pytest.fixture(scope="session")
def yinyang_batch():
    """200 Yin-Yang test samples (5 latency channels, dt 0.5 ms, 120 steps)."""
    return yinyang(n_train=10, n_val=0, n_test=200, seed=3).test


def make_net(recurrent=(False,), hidden=(60,), delays=None, seed=0, **kw) -> EventpropNet:
    """A Yin-Yang-shaped network with the default Yin-Yang init (hidden neurons fire)."""
    return EventpropNet(
        5,
        3,
        list(hidden),
        recurrent=list(recurrent),
        readout=SumV(),
        dt=0.5,
        n_steps=120,
        delays=delays,
        generator=torch.Generator().manual_seed(seed),
        init=dict(ff_mean=3.0, ff_std=1.0, out_std=0.3),
        **kw,
    )
