"""The discrete engine's gradient converges to the continuous-time Eventprop gradient as dt -> 0."""

import numpy as np
import torch
import torch.nn.functional as F

from continuous_reference import ContinuousNet
from engine_cases import CHANNELS, DURATION, LABEL, TIMES, reference_case
from eventkit.data import from_samples
from eventkit.engine import EventpropNet, MeanV


def weights():
    rng = np.random.default_rng(4)
    return dict(ff0=rng.normal(1.0, 0.4, (5, 4)), rec0=rng.normal(0.0, 0.3, (5, 5)), out=rng.normal(0.0, 1.0, (2, 5)))


def continuous_loss(w):
    net = ContinuousNet(w["ff0"], w["rec0"], w["out"], duration=DURATION)
    mean_v, spikes = net.run(TIMES, CHANNELS)
    loss = F.cross_entropy(torch.tensor(mean_v)[None], torch.tensor([LABEL])).item()
    return loss, [len(s) for s in spikes]


def continuous_gradient(w, eps=1e-6):
    _, base_counts = continuous_loss(w)
    grads = {}
    for name, arr in w.items():
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            vals = []
            for sign in (1, -1):
                pert = {k: v.copy() for k, v in w.items()}
                pert[name][idx] += sign * eps
                loss, counts = continuous_loss(pert)
                assert counts == base_counts, "perturbation changed the spike count"
                vals.append(loss)
            g[idx] = (vals[0] - vals[1]) / (2 * eps)
        grads[name] = g
    return grads, base_counts


def engine_gradient(w, dt):
    net, data = reference_case(dt, w)
    out = net(data)
    F.cross_entropy(out.readout, torch.tensor([LABEL])).backward()
    counts = out.counts.reshape(-1).tolist()
    return {n: getattr(net, n).grad.numpy().copy() for n in w}, counts


def flat(g):
    return np.concatenate([g[k].ravel() for k in sorted(g)])


def test_gradient_error_shrinks_as_dt_goes_to_zero():
    w = weights()
    reference, counts = continuous_gradient(w)
    assert sum(counts) >= 8, counts  # the hidden layer spikes, several times per neuron
    ref = flat(reference)
    errors = {}
    for dt in (1.0, 0.1, 0.01):
        g, engine_counts = engine_gradient(w, dt)
        errors[dt] = np.linalg.norm(flat(g) - ref) / np.linalg.norm(ref)
        if dt < 1:
            assert engine_counts == counts, (dt, engine_counts, counts)
    print("relative gradient error vs continuous time:", errors)
    assert errors[0.1] < errors[1.0]
    assert errors[0.01] < errors[0.1]
    assert errors[0.01] < 0.02


def test_delay_gradients_converge_to_continuous_time_as_dt_goes_to_zero():
    """Exact-mode delays: the engine's weight AND delay gradients (ff, rec and out connections)
    approach the continuous-time adjoint of tests/continuous_reference_delays.py."""
    from continuous_reference_delays import DelayedContinuousNet, adjoint_gradients, cross_entropy, delayed_params
    from eventkit.engine import Delay

    p = delayed_params()  # the reference's own test network: 15 hidden spikes, no ties
    ref_net = DelayedContinuousNet(**p, duration=DURATION)
    mean_v, spikes, _ = ref_net.run(TIMES, CHANNELS)
    _, dl = cross_entropy(mean_v, LABEL)
    ref = adjoint_gradients(ref_net, TIMES, CHANNELS, dl)
    counts = [len(s) for s in spikes]
    assert sum(counts) >= 10
    names = dict(ff0="w_ff", rec0="w_rec", out="w_out", ff0_delay="d_ff", rec0_delay="d_rec", out_delay="d_out")
    errors = {}
    for dt in (1.0, 0.1, 0.01):
        n_steps = int(round(DURATION / dt))
        steps = np.round(TIMES / dt).astype(int)
        data = from_samples([(steps, CHANNELS)], [LABEL], n_channels=4, n_steps=n_steps, dt=dt, n_classes=2)
        net = EventpropNet(
            4,
            2,
            hidden=5,
            recurrent=True,
            readout=MeanV(),
            dt=dt,
            n_steps=n_steps,
            dtype=torch.float64,
            delays={k: Delay(max=6.0) for k in ("ff", "rec", "out")},
        )
        with torch.no_grad():
            for name, key in names.items():
                getattr(net, name).copy_(torch.tensor(p[key]))
        out = net(data)
        F.cross_entropy(out.readout, torch.tensor([LABEL])).backward()
        if dt < 1:
            assert out.counts.reshape(-1).tolist() == counts, dt
        errors[dt] = {}
        for name, key in names.items():
            g = getattr(net, name).grad.numpy()
            errors[dt][name] = np.linalg.norm(g - ref[key]) / np.linalg.norm(ref[key])
    print("\nrelative gradient error vs continuous time, with delays:")
    print(f"{'dt ms':>6} " + " ".join(f"{n:>10}" for n in names))
    for dt, row in errors.items():
        print(f"{dt:>6} " + " ".join(f"{row[n]:>10.2e}" for n in names))
    for name in names:
        assert errors[0.01][name] < errors[1.0][name], name
        assert errors[0.01][name] < 0.03, (name, errors[0.01][name])
