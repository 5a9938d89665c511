"""Learnable synaptic delays: exact gradients (finite differences of the same simulator, float64),
round mode, zero delays, timing, invariances and bad input."""

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eventkit.data import from_samples
from eventkit.engine import LIF, Delay, EventpropNet, ExpWeightedMeanV, FirstSpike, MaxV, MeanV, PerStepV, SumV
from eventkit.plugin.testing import random_data, run_with_threads, spike_pattern
from test_engine_gradients import loss_for

READOUTS = [SumV(), MeanV(), ExpWeightedMeanV(), MaxV(), FirstSpike(tau0=2.0), PerStepV()]
ALL = {
    "ff": Delay(max=6.0, init=(0.0, 6.0)),
    "rec": Delay(max=6.0, init=(0.0, 6.0)),
    "out": Delay(max=6.0, init=(0.0, 6.0)),
}


def make_net(readout=ExpWeightedMeanV(), delays=ALL, seed=0, n_steps=80, **kw):
    return EventpropNet(
        n_in=10,
        n_out=3,
        hidden=[12, 9],
        recurrent=True,
        output=LIF(threshold=0.3) if readout.needs_output_spikes else EventpropNet.__init__.__kwdefaults__["output"],
        readout=readout,
        n_steps=n_steps,
        dtype=torch.float64,
        delays=delays,
        init=dict(
            ff_mean=0.5,
            ff_std=0.15,
            rec_mean=0.0,
            rec_std=0.1,
            out_std=0.3,
            out_mean=0.8 if readout.needs_output_spikes else 0.1,
        ),  # output spikes needed
        generator=torch.Generator().manual_seed(seed),
        **kw,
    )


def fd_by_parameter(net, data, loss_fn, rng, per_param=5, eps=1e-6):
    """{parameter name: (engine, finite difference)} on entries whose perturbation changes no spike."""
    net.zero_grad()
    loss_fn(net(data)).backward()
    base = spike_pattern(net, data)
    result = {}
    for name, p in net.named_parameters():
        engine, fd = [], []
        nonzero = torch.nonzero(p.grad).tolist()  # half the picks where the gradient is not 0
        for k in range(per_param * 6):
            if len(engine) == per_param:
                break
            if k % 2 and nonzero:
                idx = tuple(nonzero[int(rng.integers(0, len(nonzero)))])
            else:
                idx = tuple(int(rng.integers(0, s)) for s in p.shape)
            values, same = [], True
            for sign in (1, -1):
                with torch.no_grad():
                    p[idx] += sign * eps
                    same &= spike_pattern(net, data) == base
                    values.append(loss_fn(net(data)).item())
                    p[idx] -= sign * eps
            if same:
                engine.append(p.grad[idx].item())
                fd.append((values[0] - values[1]) / (2 * eps))
        result[name] = (np.array(engine), np.array(fd))
    return result


@pytest.mark.parametrize("readout", READOUTS, ids=lambda r: r.name)
@pytest.mark.parametrize("loss_kind", ["ce", "mse"])
def test_delay_and_weight_gradients_match_finite_differences(readout, loss_kind):
    rng = np.random.default_rng(zlib.crc32(f"delays-{readout.name}-{loss_kind}".encode()))
    net = make_net(readout, seed=int(rng.integers(1 << 30)))
    data = random_data(rng, 3, 10, 80, rate=(40, 80))
    out = net(data)
    assert out.counts[:, :12].sum() > 20 and out.counts[:, 12:].sum() > 10, "both layers must spike"
    if readout.needs_output_spikes:
        assert (out.t_first < net.n_steps * net.dt).any(), "output neurons must spike"
    labels = torch.as_tensor(data.labels)
    scale = 2.0 / max(out.readout.detach().abs().max().item(), 1e-3)
    checked = fd_by_parameter(net, data, loss_for(loss_kind, labels, 3, scale), rng)
    delay_names = {c.delay_name for c in net.topology.delayed}
    assert delay_names == {"ff0_delay", "ff1_delay", "rec0_delay", "rec1_delay", "out_delay"}
    engine = np.concatenate([e for e, _ in checked.values()])
    fd = np.concatenate([f for _, f in checked.values()])
    assert sum(len(checked[n][0]) for n in delay_names) >= 15
    assert max(np.abs(checked[n][1]).max() for n in delay_names if len(checked[n][1])) > 0
    for name, (e, f) in checked.items():  # every parameter, delays included, on its own scale
        if len(f):
            np.testing.assert_allclose(e, f, rtol=1e-3, atol=1e-6 * np.abs(fd).max(), err_msg=name)
    assert np.linalg.norm(engine - fd) / np.linalg.norm(fd) <= 1e-3


@pytest.mark.parametrize("dt", [0.5, 2.0])
def test_delay_gradients_are_per_ms_at_a_step_other_than_one_ms(dt):
    """The kernels' delay gradient is per step of delay and the parameters are in ms, so it is
    divided by dt: at dt = 1 a gradient scaled by dt (or not converted) looks the same, at 0.5 and
    2 ms it is off by 4x."""
    rng = np.random.default_rng(zlib.crc32(f"delays-dt-{dt}".encode()))
    net = make_net(seed=int(rng.integers(1 << 30)), dt=dt)
    data = random_data(rng, 3, 10, 80, rate=(40, 80), dt=dt)
    out = net(data)
    assert out.counts[:, :12].sum() > 20 and out.counts[:, 12:].sum() > 10, "both layers must spike"
    labels = torch.as_tensor(data.labels)
    scale = 2.0 / max(out.readout.detach().abs().max().item(), 1e-3)
    checked = fd_by_parameter(net, data, loss_for("ce", labels, 3, scale), rng)
    delays = [checked[c.delay_name] for c in net.topology.delayed]
    engine = np.concatenate([e for e, _ in delays])
    fd = np.concatenate([f for _, f in delays])
    assert len(fd) >= 10 and np.abs(fd).max() > 0
    np.testing.assert_allclose(engine, fd, rtol=1e-3, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("readout", [ExpWeightedMeanV(), FirstSpike(tau0=2.0)], ids=lambda r: r.name)
def test_whole_step_path_equals_the_sub_step_path(readout, monkeypatch):
    """Delays of whole steps run the CPU kernels' lean path (every synapse of a spike lands with
    the same decays; input arrivals move only the current). On the same delays the general,
    finite-difference-checked sub-step path must give the same forward pass and gradients.
    Catches a wrong coefficient in the lean path (round mode runs nothing else)."""
    from eventkit.engine.backends import _cpu_kernels as K

    rng = np.random.default_rng(zlib.crc32(f"whole-{readout.name}".encode()))
    net = make_net(readout, seed=int(rng.integers(1 << 30)))
    with torch.no_grad():
        for c in net.topology.delayed:  # whole steps, none 0 (all 0 runs the undelayed code)
            getattr(net, c.delay_name).copy_(torch.round(getattr(net, c.delay_name)).clamp(min=1.0))
    data = random_data(rng, 3, 10, 80, rate=(40, 80))
    labels = torch.as_tensor(data.labels)
    lean_inputs = net.backend.inputs

    def paths_taken():
        blk = net._kernel_inputs().blk
        return blk[blk[:, K.DELAYED] == 1, K.SUBSTEP].tolist()

    def run():
        net.zero_grad()
        out = net(data)
        F.cross_entropy(out.readout, labels).backward()
        return out.trace.detach().clone(), {n: p.grad.clone() for n, p in net.named_parameters()}

    assert paths_taken() == [0] * 5
    trace, grads = run()
    assert all(grads[c.delay_name].abs().max() > 0 for c in net.topology.delayed)

    def general_inputs(*args, **kw):
        inputs = lean_inputs(*args, **kw)
        inputs.blk[:, K.SUBSTEP] = inputs.blk[:, K.DELAYED]
        return inputs

    monkeypatch.setattr(net.backend, "inputs", general_inputs)
    assert paths_taken() == [1] * 5
    trace_g, grads_g = run()
    torch.testing.assert_close(trace, trace_g, rtol=1e-12, atol=1e-12)
    for name in grads:
        torch.testing.assert_close(grads[name], grads_g[name], rtol=1e-9, atol=1e-12, msg=name)


def test_fractional_rows_reach_the_kernels_sorted_by_sub_step_part():
    """The CPU kernels split each presynaptic row of a hidden connection with sub-step delays into
    the synapses that arrive within the spike's step and those that arrive in the next by one
    binary search, so such rows must reach them sorted by sub-step part, every per-synapse array
    moved alike, and ``order`` must lead back to the weights' layout. Catches rows left in target
    order (arrivals sent to the wrong step) or an array left behind (a synapse's weight paired
    with another's delay)."""
    from eventkit.engine.backends import _cpu_kernels as K

    net = make_net(seed=4)
    plan = net.plan
    inputs = net._kernel_inputs()
    weights, delays, thresholds = net.effective_parameters()
    plain = net.backend.inputs(plan, weights, delays, thresholds, np.float64, sorted_rows=False)
    assert inputs.order is not None and plain.order is None
    for k, conn in enumerate(plan.topology.connections):
        n_post, n_pre = conn.shape
        sl = slice(plan.w_off[k], plan.w_off[k] + n_pre * n_post)
        frac = inputs.d_frac[sl].reshape(n_pre, n_post)
        if conn.pre.is_input or not inputs.blk[k, K.SUBSTEP]:
            np.testing.assert_array_equal(inputs.order[sl], np.arange(sl.start, sl.stop))
            continue
        assert (np.diff(frac, axis=1) >= 0).all(), conn.name
        assert (frac > 0.5).any() and (frac < 0.5).any()
        rows = (inputs.order[sl] - sl.start).reshape(n_pre, n_post)
        assert (rows // n_post == np.arange(n_pre)[:, None]).all()  # moved only within its row
        w = getattr(net, conn.name).detach().numpy().T.reshape(-1)  # pre-major, target order
        d = getattr(net, conn.delay_name).detach().numpy().T.reshape(-1) / net.dt
        np.testing.assert_array_equal(inputs.w[sl], w[inputs.order[sl] - sl.start])
        np.testing.assert_allclose(inputs.d_frac[sl], np.mod(d, 1.0)[inputs.order[sl] - sl.start], atol=1e-12)
        target = (inputs.d_off[sl] % (2 * int(plan.pop_off[-1])) // 2) - plan.pop_off[conn.post.index]
        np.testing.assert_array_equal(target, (inputs.order[sl] - sl.start) % n_post)
        for key in ("w", "d_off", "d_frac", "d_bm", "d_am"):  # the same arrays, moved
            np.testing.assert_array_equal(getattr(inputs, key)[sl], getattr(plain, key)[inputs.order[sl]], key)


def test_buffers_follow_the_delays_the_network_has_not_its_max():
    """A max of 1000 ms with delays up to 5.5 ms: the ring and history hold 7 grid times (the
    longest arrival, 6 steps, + 1), and the run equals the one with max 6 exactly. Catches an
    off-by-one in the per-call sizing (a late arrival wrapping onto the current slot)."""
    rng = np.random.default_rng(21)
    data = random_data(rng, 3, 10, 80, rate=(40, 80))
    labels = torch.as_tensor(data.labels)
    runs = []
    for mx in (1000.0, 6.0):
        net = make_net(delays={k: Delay(max=mx, init=(0.0, 5.5)) for k in ALL}, seed=3)
        assert net.ff0_delay.max() > 5.0  # a sub-step part above 5 steps: lands 6 grid times later
        net.zero_grad()
        out = net(data)
        F.cross_entropy(out.readout, labels).backward()
        runs.append((net._kernel_inputs().n_slots, out.trace.detach(), [p.grad.clone() for p in net.parameters()]))
    assert runs[0][0] == runs[1][0] == 7
    torch.testing.assert_close(runs[0][1], runs[1][1], rtol=0, atol=0)
    for g0, g1 in zip(runs[0][2], runs[1][2]):
        torch.testing.assert_close(g0, g1, rtol=0, atol=0)


def test_a_delay_at_a_max_just_above_whole_steps_arrives_in_time():
    """max = 2.1 ms at dt = 0.3 ms is 7.000000000000001 steps in floating point: a delay held at
    that max arrives just after grid time 7, one more than ceil(max / dt) - 1e-9 gives. It must
    arrive there (as 2.1 - 1e-9 ms does, a hair earlier), not wrap around the ring onto its
    spike's own step or fail."""
    data = from_samples([(np.array([5, 9]), np.array([0, 0]))], [0], n_channels=1, n_steps=60, dt=0.3, n_classes=1)
    traces = []
    for d in (2.1, 2.1 - 1e-9):
        net = EventpropNet(
            1, 1, 3, recurrent=False, dt=0.3, n_steps=60, dtype=torch.float64,
            delays={"ff": Delay(max=2.1, init=(d, d))}, init=dict(ff_mean=20.0, ff_std=0.0, out_std=0.5),
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        traces.append(net(data).trace.detach())
    assert 2.1 / 0.3 > 7 and traces[0].abs().max() > 0
    assert traces[0][0, :12].abs().max() == 0  # nothing before the first arrival (step 5 + 7)
    torch.testing.assert_close(traces[0], traces[1], rtol=1e-6, atol=1e-9)


def test_round_mode_gradient_is_the_exact_formula_at_the_rounded_delays():
    rng = np.random.default_rng(11)
    data = random_data(rng, 3, 10, 80, rate=(40, 80))
    labels = torch.as_tensor(data.labels)
    rounded = {k: Delay(max=6.0, init=(0.0, 6.0), mode="round") for k in ALL}
    r_net, e_net = make_net(delays=rounded, seed=5), make_net(delays=ALL, seed=5)
    with torch.no_grad():
        for c in e_net.topology.delayed:  # the exact-mode net holds the rounded values
            getattr(e_net, c.delay_name).copy_(torch.round(getattr(r_net, c.delay_name)))
    assert not torch.equal(r_net.ff0_delay, e_net.ff0_delay)
    grads = []
    for net in (r_net, e_net):
        net.zero_grad()
        out = net(data)
        F.cross_entropy(out.readout, labels).backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    torch.testing.assert_close(r_net(data).trace, e_net(data).trace, rtol=0, atol=0)
    for name in grads[0]:  # straight-through: dL/dd of the continuous d = dL/dd at round(d)
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=0, atol=0)


def test_integer_delay_shifts_the_response_by_whole_steps():
    """One input spike through a 3 ms delay gives the undelayed output trace 3 steps later."""
    data = from_samples([(np.array([5]), np.array([0]))], [0], n_channels=1, n_steps=60, dt=1.0, n_classes=1)
    nets = []
    for delays in (None, {"ff": Delay(max=4.0, init=(3.0, 3.0))}):
        net = EventpropNet(
            1,
            1,
            hidden=1,
            recurrent=False,
            n_steps=60,
            dtype=torch.float64,
            delays=delays,
            init=dict(ff_mean=10.0, ff_std=0.0, out_mean=1.0, out_std=0.0),
        )
        nets.append(net(data).trace[0, :, 0].detach())
    plain, delayed = nets
    assert plain.abs().sum() > 0
    torch.testing.assert_close(delayed[3:], plain[:-3], rtol=1e-12, atol=1e-15)
    assert torch.all(delayed[: 3 + 5] == 0)


def test_sub_step_delay_moves_the_arrival_continuously():
    """Exact mode: a fraction of a step moves the response smoothly (a round-mode net does not move)."""
    data = from_samples([(np.array([5]), np.array([0]))], [0], n_channels=1, n_steps=40, dt=1.0, n_classes=1)
    readouts = {}
    for mode in ("exact", "round"):
        vals = []
        for d in (1.2, 1.4, 1.6) if mode == "exact" else (1.1, 1.2, 1.4):  # within one step
            net = EventpropNet(
                1,
                1,
                hidden=1,
                recurrent=False,
                n_steps=40,
                dtype=torch.float64,
                readout=SumV(),
                delays={"ff": Delay(max=4.0, init=(d, d), mode=mode)},
                init=dict(ff_mean=10.0, ff_std=0.0, out_mean=1.0, out_std=0.0),
            )
            vals.append(net(data).readout.item())
        readouts[mode] = vals
    exact = readouts["exact"]
    assert exact[0] > exact[1] > exact[2]  # later arrival, less integrated voltage
    assert abs((exact[0] - exact[1]) - (exact[1] - exact[2])) < 0.25 * abs(exact[0] - exact[1])  # no jump
    assert readouts["round"][0] == readouts["round"][1] == readouts["round"][2]


def test_all_zero_delays_are_bit_identical_to_no_delays():
    rng = np.random.default_rng(2)
    data = random_data(rng, 4, 10, 80, rate=(40, 80))
    labels = torch.as_tensor(data.labels)
    zero = {k: Delay(max=6.0, init=(0.0, 0.0)) for k in ALL}
    results = []
    for delays in (None, zero):
        net = make_net(delays=delays, seed=3)
        out = net(data)
        F.cross_entropy(out.readout, labels).backward()
        results.append((out, {c.name: getattr(net, c.name).grad for c in net.topology.connections}, net))
    (a, ga, _), (b, gb, zero_net) = results
    assert torch.equal(a.trace, b.trace) and torch.equal(a.counts, b.counts)
    for name in ga:
        assert torch.equal(ga[name], gb[name]), name
    # the delays still learn: their gradient is that of an arrival at the spike time
    assert all(p.grad.abs().sum() > 0 for p in zero_net.delay_parameters())


def test_delays_batch_invariance_and_no_carry_over():
    rng = np.random.default_rng(8)
    data = random_data(rng, 6, 10, 80, rate=(40, 80))
    labels = torch.as_tensor(data.labels)
    net = make_net(delays={k: Delay(max=30.0, init=(0.0, 30.0)) for k in ALL}, seed=1)

    def run(batch):
        net.zero_grad()
        out = net(batch)
        F.cross_entropy(out.readout, torch.as_tensor(batch.labels), reduction="sum").backward()
        return out.trace.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}

    whole_trace, whole_grads = run(data)
    # each sample alone gives its row of the batch: nothing carries over from earlier samples
    # (delayed arrivals of a sample past its end, adjoint histories)
    singles = [run(data.subset([k])) for k in range(len(data))]
    for k, (trace, _) in enumerate(singles):
        torch.testing.assert_close(trace[0], whole_trace[k], rtol=0, atol=0)
    for name in whole_grads:
        torch.testing.assert_close(sum(g[name] for _, g in singles), whole_grads[name], rtol=1e-10, atol=1e-12)
    # reversed order: same per-sample results
    rev_trace, _ = run(data.subset(list(range(len(data)))[::-1]))
    torch.testing.assert_close(rev_trace.flip(0), whole_trace, rtol=0, atol=0)
    del labels


def test_delays_do_not_depend_on_thread_count():
    """With learnable delays everywhere, traces and gradients of a batch of 6 are bit-identical on
    1, 2 and 4 numba threads, in an interpreter where numba has 4 threads whatever the machine's
    core count, each count checked to be in use."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import numba, numpy as np, torch
import torch.nn.functional as F
from test_engine_delays import ALL, Delay, make_net
from eventkit.plugin.testing import random_data, threads_in_use
data = random_data(np.random.default_rng(8), 6, 10, 80, rate=(40, 80))
net = make_net(delays={{k: Delay(max=30.0, init=(0.0, 30.0)) for k in ALL}}, seed=1)
runs = {{}}
for n in (1, 2, 4):
    numba.set_num_threads(n)
    assert threads_in_use() == n, (n, threads_in_use())
    net.zero_grad()
    out = net(data)
    F.cross_entropy(out.readout, torch.as_tensor(data.labels), reduction="sum").backward()
    runs[n] = out.trace.detach(), {{name: p.grad.clone() for name, p in net.named_parameters()}}
t1, g1 = runs[1]
for n in (2, 4):
    t, g = runs[n]
    assert torch.equal(t, t1), n
    for name in g1:
        assert torch.equal(g[name], g1[name]), (n, name)
print("equal on", sorted(runs), "threads")
"""
    assert "equal on [1, 2, 4] threads" in run_with_threads(script)


def test_delays_learn_and_stay_within_bounds():
    rng = np.random.default_rng(4)
    data = random_data(rng, 8, 10, 80, rate=(40, 80))
    net = make_net(delays={"ff": Delay(max=6.0, init=(0.0, 6.0))}, seed=2)
    before = net.ff0_delay.detach().clone()
    opt = torch.optim.Adam(net.param_groups(delay_lr=2.0), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(net(data).readout, torch.as_tensor(data.labels)).backward()
        opt.step()
        net.clamp_delays()
    d = net.ff0_delay.detach()
    assert not torch.equal(d, before)
    assert d.min() >= 0 and d.max() <= 6.0
    assert (d == 0).any() or (d == 6.0).any()  # a step of 2 ms per update pushes some to a bound
    assert opt.param_groups[1]["fixed_lr"] and opt.param_groups[1]["lr"] == 2.0


def test_fixed_delays_get_no_gradient_step():
    net = make_net(delays={"out": Delay(max=5.0, learn=False, init=(1.0, 4.0))})
    assert not net.out_delay.requires_grad and net.delay_parameters() == []
    assert len(net.param_groups(delay_lr=None)) == 1


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"ff": {"max": -1}}, r"network.delays.ff.max=-1.0: a delay cannot be negative"),
        ({"ff": {"max": float("nan")}}, r"network.delays.ff.max must be a finite number"),
        ({"ff": {"max": 10, "init": [0, 20]}}, r"network.delays.ff.init=\[0.0, 20.0\] must lie within \[0, max=10.0\]"),
        ({"ff": {"max": 10, "init": [-1, 5]}}, r"init=\[-1.0, 5.0\] must lie within"),
        ({"ff": {"max": 10, "init": float("inf")}}, r"network.delays.ff.init must be a finite number"),
        ({"ff": {"max": 10, "mode": "nearest"}}, r"network.delays.ff.mode='nearest': must be one of"),
        ({"ff": {"init": [0, 5]}}, r"network.delays.ff.max is missing"),
        ({"ff": {"max": 5, "lr": 0.1}}, r"unknown keys \['lr'\]"),
        ({"ff3": {"max": 5}}, r"network.delays: no connection 'ff3' in this network"),
        ({"rec": {"max": 5}}, r"network.delays.rec: this network has no rec connection"),
        ({"ff": {"max": 5e6}}, r"GiB of delay buffers"),
    ],
)
def test_bad_delay_settings_fail_with_the_key_and_the_fix(spec, match):
    with pytest.raises(ValueError, match=match):
        EventpropNet(10, 3, hidden=[8], recurrent=False, n_steps=50, delays=spec)


def test_delays_outside_their_range_are_refused_at_the_forward_pass():
    rng = np.random.default_rng(1)
    data = random_data(rng, 2, 10, 80)
    net = make_net(delays={"ff": Delay(max=6.0, init=(0.0, 6.0))})
    for bad in (-0.5, 7.0, float("nan")):
        with torch.no_grad():
            net.ff0_delay[0, 0] = bad
        with pytest.raises(ValueError, match=r"ff0_delay: delays must lie in \[0, 6.0\] ms.*clamp_delays"):
            net(data)


def test_cpu_deploy_writes_delays_beside_the_weights(tmp_path):
    import json

    from safetensors.numpy import load_file

    from eventkit.components.targets import CpuTarget

    net = make_net(delays={"ff": Delay(max=6.0, init=(0.0, 6.0)), "out": Delay(max=3.0, init=(1.0, 2.0))})
    fields = CpuTarget().deploy(net, None, tmp_path)
    tensors = load_file(str(tmp_path / "deploy" / "cpu" / "network.safetensors"))
    np.testing.assert_array_equal(tensors["layer0.d_ff"], net.ff0_delay.detach().numpy().astype(np.float32))
    np.testing.assert_array_equal(tensors["layer1.d_ff"], net.ff1_delay.detach().numpy().astype(np.float32))
    np.testing.assert_array_equal(tensors["output.d"], net.out_delay.detach().numpy().astype(np.float32))
    assert "layer0.d_rec" not in tensors  # recurrent connections here have no delays
    description = json.loads((tmp_path / "deploy" / "cpu" / "network.json").read_text())
    assert description["delays"]["ff0"] == {"max": 6.0, "mode": "exact", "learn": True}
    assert "d_ff" not in description["layers"][0]  # arrays live in the safetensors file only
    assert fields["parameters"] == sum(t.size for t in tensors.values())
