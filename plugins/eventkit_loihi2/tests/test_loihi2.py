"""Loihi 2 target: quantiser, emulator (against a slow pure-Python reference of Lava's fixed-point
semantics), NetX file layout, target checks and the deploy pipeline."""

from __future__ import annotations

import contextlib
import math
from types import SimpleNamespace
from dataclasses import dataclass, replace

import h5py
import numpy as np
import torch
import pytest
from omegaconf import OmegaConf

from eventkit.plugin import LI, LIF, DatasetSplits, from_samples
from eventkit_loihi2.emulator import _decay, _lava_dense_weights, _netx_optimize, emulate, netx_synapses, pack
from eventkit_loihi2.lava_check import compare
from eventkit_loihi2.netx import write_netx, write_samples
from eventkit_loihi2.quantize import (
    ChipLayer,
    ChipNetwork,
    FloatNetwork,
    cuba_decays,
    loihi_cuba_float_params,
    quantize,
    voltage_gain,
)
from eventkit_loihi2.neuron import LoihiCUBA
from eventkit_loihi2.target import LoihiTarget, estimate_cores


# ----------------------------------------------------------------------------- helpers
def make_export(rng, n_in=12, hidden=(10,), rec=(True,), n_out=3, T=60, delays=False, neuron="loihi_cuba", ff_mean=0.3):
    """A float network of random weights (:class:`FloatNetwork`); ``delays``: integer delays of
    0..5 steps on ``ff0``."""
    weights, delay_ms, pre, models = {}, {}, n_in, []
    for k, (h, r) in enumerate(zip(hidden, rec)):
        weights[f"ff{k}"] = rng.normal(ff_mean, 0.3, (h, pre))
        if r:
            weights[f"rec{k}"] = rng.normal(0.0, 0.3, (h, h))
        models.append(_model(neuron, tau_mem=20.0, tau_syn=5.0, threshold=1.0))
        if delays and k == 0:
            delay_ms["ff0"] = rng.integers(0, 6, (h, pre)).astype(float)
        pre = h
    weights["out"] = rng.normal(0.0, 0.3, (n_out, pre))
    return FloatNetwork.layered(
        weights, models, LI(tau_mem=20.0, tau_syn=5.0), n_steps=T, delays=delay_ms, readout=dict(name="exp_mean_v")
    )


@dataclass(frozen=True)
class Izhikevich(LIF):
    """A neuron model the chip does not run (only its name matters here)."""

    name = "izhikevich"


def _model(name, **kw):
    return {"loihi_cuba": LoihiCUBA, "lif": LIF, "izhikevich": Izhikevich}[name](**kw)


def with_model(fnet, index, model):
    """``fnet`` with hidden layer ``index`` (or the output, ``index=None``) running ``model``."""
    topo = fnet.topology
    hidden = [p.model for p in topo.hidden]
    output = topo.output.model
    if index is None:
        output = model
    else:
        hidden[index] = model
    return FloatNetwork.layered(fnet.weights, hidden, output, fnet.n_steps, fnet.dt, fnet.delays, fnet.readout)


def make_data(rng, n, n_in, T, n_classes=3, rate=(60, 300)):
    samples = []
    for _ in range(n):
        m = int(rng.integers(*rate))
        samples.append((rng.integers(0, T, m), rng.integers(0, n_in, m)))
    return from_samples(samples, rng.integers(0, n_classes, n), n_channels=n_in, n_steps=T, dt=1.0, n_classes=n_classes)


def lava_decay(x: int, mult: int) -> int:
    """Lava's bit-accurate CUBA decay (``PyLifModelBitAcc``): ``sign(y) * (|y| >> 12)`` with
    ``y = x * mult`` (``mult = 4096 - iDecay`` for u, ``4096 - vDecay`` for v): rounds toward 0."""
    y = int(x) * int(mult)
    return (abs(y) >> 12) * (1 if y >= 0 else -1)


def lava_weights(w, n_pre: int | None = None) -> tuple[list, list | None, int]:
    """What Lava multiplies with after NetX loads a layer, written out from Lava-DL's
    ``netx.utils.optimize_weight_bits`` and Lava's bit-accurate Dense init (``clip_weights``,
    ``truncate_weights``), independently of :mod:`eventkit_loihi2.emulator`.

    ``w``: the layer's integer weights as written to the file (feed-forward and recurrent side by
    side when ``n_pre`` is given; NetX optimises them together). Returns (feed-forward rows,
    recurrent rows or None, weight exponent)."""
    rows = [[int(x) for x in row] for row in np.asarray(w)]
    flat = [x for row in rows for x in row]
    hi, lo = max(flat), min(flat)
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):  # NetX warns and clips
        rows = [[min(max(x, -256), 254) for x in row] for row in rows]
        flat = [x for row in rows for x in row]
        hi, lo = max(flat), min(flat)
    if hi < 0:
        scale, signed = -256 / lo, 0
    elif lo >= 0:
        scale, signed = 255 / hi, 0
    else:
        scale, signed = min(127 / hi if hi else math.inf, -128 / lo), 1  # numpy: 127 / 0 = inf
    scale_bits = math.floor(math.log2(scale)) + signed
    n = 8  # the largest n <= 8 with every weight a multiple of 2**n
    while n > 0 and any(x % 2**n for x in flat):
        n -= 1
    n -= signed
    num_weight_bits = 8 - scale_bits - n
    rows = [[x * 2**scale_bits for x in row] for row in rows]
    parts = [rows] if n_pre is None else [[r[:n_pre] for r in rows], [r[n_pre:] for r in rows]]

    def dense_init(m):  # per Dense process: its own sign mode, clip to 8 bits, drop low bits
        vals = [x for r in m for x in r]
        if min(vals) >= 0:
            sign, lo_clip, mixed = 1, 0, 0
        elif max(vals) <= 0:
            sign, lo_clip, mixed = -1, 0, 0  # inhibitory: magnitudes are clipped and truncated
        else:
            sign, lo_clip, mixed = 1, -256, 1
        k = 8 - num_weight_bits + mixed
        return [[sign * ((min(max(sign * x, lo_clip), 255) >> k) << k) for x in r] for r in m]

    loaded = [dense_init(m) for m in parts]
    return loaded[0], (loaded[1] if n_pre is not None else None), -scale_bits


def reference(chip, data, k):
    """Slow, literal model of one Lava run (Python ints, process by process, per step).

    Each Dense synapse keeps a_buff; at a step it first sends a_buff, then receives spikes and
    stores floor(sum w / 2**s). Each LIF receives the sum of its synapses' messages. Weights are
    those :func:`lava_weights` says Lava loads from the exported layer.
    Returns (readout voltages [T][n_out], spike counts per layer, events dict); ``events`` counts
    24-bit wraps, saturations, readout spikes and decays of a negative product whose magnitude
    is 4095 mod 4096 (where rounding toward zero and floor differ by the most)."""
    T = data.n_steps
    raster = data.to_dense(k) > 0
    events = dict(wrap=0, saturate=0, readout_spikes=0, decay_boundary=0)
    syn = []
    for layer in chip.layers:
        if layer.w_rec is None:
            ff, rec, e = lava_weights(layer.w_ff)
        else:
            ff, rec, e = lava_weights(np.hstack([layer.w_ff, layer.w_rec]), layer.w_ff.shape[1])
        d = layer.delay if layer.delay is not None else np.zeros(layer.w_ff.shape, int)
        syn.append(
            dict(
                ff=ff,
                exp_ff=e,
                rec=rec,
                exp_rec=e if rec is not None else 0,
                d=[[int(x) for x in r] for r in d],
                pending={},
                rec_buf=[0] * layer.n,
            )
        )
    u = [[0] * layer.n for layer in chip.layers]
    v = [[0] * layer.n for layer in chip.layers]
    counts = [[0] * layer.n for layer in chip.layers]
    prev_spikes = [[False] * layer.n for layer in chip.layers]
    v_out = []

    def shift(x, e):
        return x // (2**-e) if e < 0 else x * 2**e

    def trunc_decay(x, mult):
        p = x * mult
        if p < 0 and -p % 4096 == 4095:
            events["decay_boundary"] += 1
        return lava_decay(x, mult)

    for t in range(T):
        spikes_now = []
        for l, layer in enumerate(chip.layers):
            sy = syn[l]
            a_in = [sy["pending"].get(t, [0] * layer.n)[j] + sy["rec_buf"][j] for j in range(layer.n)]
            sy["pending"].pop(t, None)
            out = []
            for j in range(layer.n):
                uu = trunc_decay(u[l][j], 4096 - layer.i_decay) + a_in[j] * 64
                if uu > 2**23:
                    uu -= 2**24
                    events["wrap"] += 1
                elif uu <= -(2**23):
                    uu += 2**24
                    events["wrap"] += 1
                u[l][j] = uu
                vv = trunc_decay(v[l][j], 4096 - layer.v_decay) + uu
                if abs(vv) > 2**23 - 1:
                    vv = max(-(2**23 - 1), min(2**23 - 1, vv))
                    events["saturate"] += 1
                fired = vv > layer.v_th_mant * 64
                if fired:
                    vv = 0
                    counts[l][j] += 1
                    if l == len(chip.layers) - 1:
                        events["readout_spikes"] += 1
                v[l][j] = vv
                out.append(fired)
            spikes_now.append(out)
        v_out.append(list(v[-1]))
        for l, layer in enumerate(chip.layers):
            sy = syn[l]
            pre = list(raster[t]) if l == 0 else spikes_now[l - 1]
            by_delay = {}
            for j in range(layer.n):
                for i, s in enumerate(pre):
                    if s and sy["ff"][j][i]:
                        dd = sy["d"][j][i]
                        by_delay.setdefault(dd, [0] * layer.n)[j] += sy["ff"][j][i]
            for dd, acc in by_delay.items():
                slot = sy["pending"].setdefault(t + 1 + dd, [0] * layer.n)
                for j in range(layer.n):
                    slot[j] += shift(acc[j], sy["exp_ff"])
            if sy["rec"] is not None:
                sy["rec_buf"] = [
                    shift(sum(sy["rec"][j][i] for i, s in enumerate(spikes_now[l]) if s), sy["exp_rec"])
                    for j in range(layer.n)
                ]
        prev_spikes = spikes_now
    del prev_spikes
    return np.array(v_out), counts, events


# ----------------------------------------------------------------------------- quantiser
def test_decays_match_the_published_mapping():
    assert cuba_decays(5.0, 20.0, 1.0) == (742, 200)  # round(4096 (1 - exp(-dt/tau)))
    p = loihi_cuba_float_params(5.0, 20.0, 1.0)
    assert p["du"] == 742 / 4096 and p["dv"] == 200 / 4096
    from eventkit_loihi2.quantize import neuron_decays

    assert neuron_decays(dict(du=p["du"], dv=p["dv"]), 1.0, "x") == (742, 200)
    assert neuron_decays(dict(i_decay=5, v_decay=7, tau_syn=5.0, tau_mem=20.0), 1.0, "x") == (5, 7)


def test_quantize_scale_shared_by_ff_and_rec_and_within_8_bits():
    rng = np.random.default_rng(0)
    exp = make_export(rng, hidden=(16,), rec=(True,))
    exp.weights["rec0"] *= 5.0  # recurrent weights dominate the common scale
    chip, rep = quantize(exp, percentile=99.0, bits=8)
    layer = chip.layers[0]
    both = np.concatenate([exp.weights["ff0"].ravel(), exp.weights["rec0"].ravel()])
    p_pos = np.percentile(both[both > 0], 99)
    p_neg = np.percentile(-both[both < 0], 99)
    e = math.floor(math.log2(min(127 / p_pos, 128 / p_neg)))
    assert layer.weight_exp == e
    np.testing.assert_array_equal(layer.w_rec, np.clip(np.round(exp.weights["rec0"] * 2.0**e), -128, 127))
    for l in chip.layers:
        assert l.w_ff.min() >= -128 and l.w_ff.max() <= 127
    assert chip.output.v_th_mant == 2**16 and not chip.output.spiking
    errs = {r["layer"]: r for r in rep.layers}
    assert 0 < errs["hidden0"]["rel_rms_error"] < 0.05
    r = np.round(both * 2.0**e)
    assert errs["hidden0"]["clipped_fraction"] == pytest.approx(np.mean((r > 127) | (r < -128)))
    _, low = quantize(exp, percentile=50.0)  # a low percentile clips the tails
    assert low.layers[0]["clipped_fraction"] > 0.1


def test_threshold_mapping_lif_vs_loihi_cuba():
    rng = np.random.default_rng(1)
    cuba, _ = quantize(make_export(rng, neuron="loihi_cuba"))
    layer = cuba.layers[0]
    g_cuba = voltage_gain(dict(name="loihi_cuba", tau_mem=20.0, tau_syn=5.0), 1.0)
    assert g_cuba == round(4096 * (1 - math.exp(-0.05))) / 4096  # the float model's input gain dv
    assert layer.v_th_mant == round(1.0 * 2.0**layer.weight_exp / g_cuba)
    rng = np.random.default_rng(1)
    lif, _ = quantize(make_export(rng, neuron="lif"))
    g = voltage_gain(dict(name="lif", tau_mem=20.0, tau_syn=5.0), 1.0)
    assert g == pytest.approx(5 / (5 - 20) * (math.exp(-0.2) - math.exp(-0.05)))
    assert lif.layers[0].v_th_mant == round(2.0 ** lif.layers[0].weight_exp / g)


@pytest.mark.parametrize(
    "change, key",
    [
        (dict(bits=9), "bits"),
        (dict(percentile=0), "percentile"),
        (dict(readout_vth=2**17), "readout_vth"),
    ],
)
def test_quantize_rejects_bad_settings(change, key):
    exp = make_export(np.random.default_rng(0))
    with pytest.raises(ValueError, match=key):
        quantize(exp, **change)


def test_quantize_rejects_bad_networks():
    rng = np.random.default_rng(0)
    exp = make_export(rng)
    exp.weights["ff0"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        quantize(exp)
    exp = with_model(make_export(rng), 0, Izhikevich())
    with pytest.raises(ValueError, match="neuron.name"):
        quantize(exp)
    exp = with_model(make_export(rng), 0, LIF(tau_syn=1e5))  # iDecay rounds to 0
    with pytest.raises(ValueError, match="iDecay"):
        quantize(exp)
    exp = make_export(rng, rec=(False,), delays=True)
    exp.delays["ff0"][0, 0] = 63
    with pytest.raises(ValueError, match="0..62"):
        quantize(exp)


# ----------------------------------------------------------------------------- NetX weight handling
def test_netx_rescaling_keeps_8_bit_mixed_weights_exact():
    q = np.array([[-128, 127, 3], [5, -7, 0]])
    w, bits, exp = _netx_optimize(q)
    assert exp == -1 and np.array_equal(w, q * 2)
    eff = _lava_dense_weights(w, bits)
    np.testing.assert_array_equal(eff >> 1, q)


def test_netx_inhibitory_edge_case_is_reproduced():
    # all-negative weights reaching -128 are rescaled to -256, which Lava's inhibitory clip
    # turns into -255 and then truncates: Lava does NOT see the exported values here
    q = np.array([[-128, -3], [-1, -5]])
    w, bits, exp = _netx_optimize(q)
    eff = _lava_dense_weights(w, bits)
    assert exp == -1
    assert eff[0, 0] == -254 and eff[0, 1] == -6


@pytest.mark.parametrize(
    "ff, rec",
    [
        ([[-128, 127, 3], [5, -7, 0]], None),  # mixed, full 8-bit range
        ([[-128, -3], [-1, -5]], None),  # inhibitory, rescaled to -256 and clipped by Lava
        ([[1, 6, 0], [2, 3, 5]], None),  # excitatory, small: a large rescale
        ([[255, 3], [1, 0]], None),  # excitatory at the top of Lava's 8-bit unsigned range
        ([[8, -16, 24], [40, -64, 0]], None),  # mixed, coarse: fewer weight bits
        ([[300, -2], [5, 7]], None),  # beyond 254 with negatives: NetX clips first
        ([[3, 7], [1, 0]], [[-5, 2], [6, -1]]),  # excitatory ff, mixed rec: one scale, two sign modes
        ([[-9, -1], [-4, -2]], [[0, 3], [1, 2]]),  # inhibitory ff, excitatory rec
    ],
)
def test_netx_weight_handling_matches_lava(ff, rec):
    ff = np.array(ff)
    rec = None if rec is None else np.array(rec)
    layer = ChipLayer("h", ff, rec, None, 0, 100, 100, 10, True)
    syn = netx_synapses(layer)
    if rec is None:
        want_ff, want_rec, e = lava_weights(ff)
    else:
        want_ff, want_rec, e = lava_weights(np.hstack([ff, rec]), ff.shape[1])
    np.testing.assert_array_equal(syn["w_ff"], want_ff)
    assert syn["exp_ff"] == e
    if rec is not None:
        np.testing.assert_array_equal(syn["w_rec"], want_rec)
        assert syn["exp_rec"] == e


# ----------------------------------------------------------------------------- emulator
@pytest.mark.parametrize("case", ["recurrent", "deep_delays", "delays_with_exponent", "stress"])
def test_emulator_equals_reference(case):
    rng = np.random.default_rng({"recurrent": 3, "deep_delays": 4, "delays_with_exponent": 6, "stress": 5}[case])
    T, n_in = 50, 12
    if case == "recurrent":
        exp = make_export(rng, hidden=(10,), rec=(True,), T=T, neuron="lif")
        kw = {}
    elif case == "delays_with_exponent":
        # delayed inhibitory readout synapses (one weight 0): the chip's -128 becomes -256, which
        # the inhibitory Dense clips to 255 (odd), so Lava keeps weight exponent -1 and shifts each
        # delay slot's sum -- the emulator's per-delay accumulate-then-shift path
        exp = make_export(rng, hidden=(10,), rec=(False,), T=T, ff_mean=0.6)
        w = -np.abs(exp.weights["out"])
        w[0, 0], w[1, 1] = 0.0, -10.0  # -10: beyond the percentile, so quantised to -128
        weights = {**exp.weights, "out": w}
        delays = {"out": rng.integers(0, 7, w.shape).astype(float)}
        exp = FloatNetwork.layered(weights, [LoihiCUBA()], exp.topology.output.model, T, delays=delays)
        kw = {}
    elif case == "deep_delays":
        exp = make_export(rng, hidden=(8, 9, 7), rec=(False, True, True), T=T, delays=True)
        exp.weights["rec1"] = -np.abs(exp.weights["rec1"])  # inhibitory synapse
        kw = {}
    else:  # slow current decay + strong input: 24-bit wrap, voltage saturation, readout firing
        T = 300
        exp = make_export(rng, hidden=(24,), rec=(True,), T=T, ff_mean=0.6)
        # threshold 400 in chip units: the float loihi_cuba input gain is g = v_decay / 4096
        # tau_syn 4096 / tau_mem 136 ms: iDecay 1, vDecay 30; the readout's decays both 1
        exp.weights["out"] = np.abs(exp.weights["out"]) + 0.3
        exp = with_model(exp, 0, LoihiCUBA(tau_mem=136.0, tau_syn=4096.0, threshold=400.0 * 30 / 4096))
        exp = with_model(exp, None, LI(tau_mem=4096.0, tau_syn=4096.0))
        assert quantize(exp)[0].layers[0].i_decay == 1 and quantize(exp)[0].layers[0].v_decay == 30
        kw = dict(readout_vth=2**17 - 1)
    rate = (2000, 3000) if case == "stress" else (150, 400)
    data = make_data(rng, 3 if case == "stress" else 5, n_in, T, rate=rate)
    chip, _ = quantize(exp, **kw)
    if case == "delays_with_exponent":
        packed = pack(chip)
        assert packed.exp_ff[-1] != 0 and packed.max_delay[-1] > 0, "the case must take the exponent path"
    res = emulate(chip, data, n_record=len(data))
    events = dict(wrap=0, saturate=0, readout_spikes=0, decay_boundary=0)
    for k in range(len(data)):
        v_ref, counts_ref, ev = reference(chip, data, k)
        np.testing.assert_array_equal(res.v_out[k], v_ref, err_msg=f"sample {k}")
        np.testing.assert_array_equal(res.counts[k], np.concatenate(counts_ref))
        for key in events:
            events[key] += ev[key]
    assert res.counts[:, : -chip.n_out].sum() > 0, "the test network must spike"
    if case == "stress":
        assert events["wrap"] > 0 and events["saturate"] > 0 and events["readout_spikes"] > 0
    w = np.exp(-np.arange(T) / T)
    np.testing.assert_allclose(res.scores, np.einsum("t,ktj->kj", w, res.v_out.astype(float)))
    np.testing.assert_array_equal(res.predictions, np.argmax(res.scores, axis=1))


def test_decay_rounds_toward_zero_at_every_mask_boundary():
    """The emulator's branch-free decay equals Lava's sign(y) (|y| >> 12) for every residue of
    |y| mod 4096 (both signs, all decay constants that occur: 4096 - iDecay or vDecay), and at the
    ends of the 24-bit state range, where a mask or shift off by one bit rounds wrongly."""
    mults = (4095, 4096 - 742, 4096 - 200, 3, 2048, 1, 4096, 0)
    xs = list(range(-8200, 8201))
    for edge in (2**23 - 1, 2**23, 2**22, 2**12 * 2047):
        xs += list(range(edge - 4100, edge + 1)) + list(range(-edge, -edge + 4101))
    negative_residues = set()
    for mult in mults:
        for x in xs:
            got = _decay(x, mult)
            want = lava_decay(x, mult)
            assert got == want, f"x={x}, mult={mult}: emulator {got}, Lava {want}"
            if x * mult < 0 and mult == 4095:
                negative_residues.add(-x * mult % 4096)
    assert negative_residues == set(range(4096))  # 0, 1, 2047, 2048, 4094, 4095 among them
    assert [lava_decay(x, 4095) for x in (-1, -4097, 1, 4097)] == [0, -4095, 0, 4095]


def test_emulator_equals_reference_where_decay_rounding_matters():
    """A readout whose current counts down to -1 and then 0 (iDecay = 1 removes one unit per step
    from a small current, so |u * 4095| reaches 4095 mod 4096, the value at which rounding toward
    zero, floor and a mask one bit short disagree) follows the reference step for step."""
    rng = np.random.default_rng(21)
    n_in, n_out, T = 6, 8, 300
    relay = ChipLayer("hidden0", np.diag(np.full(n_in, 127)), None, None, 0, 4096, 4096, 100, True)
    w_out = rng.integers(-3, 4, (n_out, n_in))
    w_out[0, :2] = (-3, 3)  # mixed signs
    out = ChipLayer("output", w_out, None, None, 0, 1, 1, 2**16, False)
    chip = ChipNetwork(dt=1.0, n_steps=T, n_in=n_in, n_out=n_out, layers=[relay, out])
    data = from_samples(
        [(rng.integers(0, 30, 3), rng.integers(0, n_in, 3)) for _ in range(6)],
        np.zeros(6, int),
        n_channels=n_in,
        n_steps=T,
        dt=1.0,
        n_classes=n_out,
    )
    res = emulate(chip, data, n_record=len(data))
    boundary = 0
    for k in range(len(data)):
        v_ref, counts_ref, ev = reference(chip, data, k)
        np.testing.assert_array_equal(res.v_out[k], v_ref, err_msg=f"sample {k}")
        np.testing.assert_array_equal(res.counts[k], np.concatenate(counts_ref))
        boundary += ev["decay_boundary"]
    assert res.counts[:, :n_in].sum() >= len(data), "the relay must pass the input on"
    assert boundary >= len(data), "the readout's decays must reach |y| = 4095 mod 4096"


def test_readout_window_offset():
    rng = np.random.default_rng(17)
    T = 30
    chip, _ = quantize(make_export(rng, T=T))
    data = make_data(rng, 4, 12, T)
    base = emulate(chip, data, n_record=4)
    late = emulate(chip, data, n_record=4, offset=1)
    assert late.v_out.shape == (4, T + 1, 3)
    np.testing.assert_array_equal(late.v_out[:, :T], base.v_out)  # same dynamics, one more step
    w = np.exp(-np.arange(T) / T)
    np.testing.assert_allclose(late.scores, np.einsum("t,ktj->kj", w, late.v_out[:, 1:].astype(float)))
    np.testing.assert_array_equal(late.vmax, late.v_out[:, 1:].max(axis=1))


def test_repeated_input_spikes_count_once():
    rng = np.random.default_rng(6)
    exp = make_export(rng, T=20)
    chip, _ = quantize(exp)
    once = from_samples([(np.array([1, 4]), np.array([2, 3]))], [0], n_channels=12, n_steps=20, dt=1.0, n_classes=3)
    twice = from_samples(
        [(np.array([1, 1, 4]), np.array([2, 2, 3]))], [0], n_channels=12, n_steps=20, dt=1.0, n_classes=3
    )
    a, b = emulate(chip, once, n_record=1), emulate(chip, twice, n_record=1)
    np.testing.assert_array_equal(a.v_out, b.v_out)


# ----------------------------------------------------------------------------- NetX file
def test_netx_file_layout(tmp_path):
    rng = np.random.default_rng(7)
    exp = make_export(rng, hidden=(10, 8), rec=(True, False), delays=True)
    with pytest.raises(ValueError, match="delays on a recurrent layer"):
        quantize(exp)
    delays = {"ff1": rng.integers(0, 6, (8, 10)).astype(float)}
    exp = FloatNetwork.layered(exp.weights, [p.model for p in exp.topology.hidden], LI(), 60, delays=delays)
    chip, _ = quantize(exp)
    path = write_netx(chip, tmp_path / "model.net")
    with h5py.File(path, "r") as f:
        layers = f["layer"]
        assert sorted(layers.keys(), key=int) == ["0", "1", "2", "3"]
        assert layers["0"]["type"][0] == b"input" and list(layers["0"]["shape"][()]) == [12]
        assert "neuron" not in layers["0"]
        l1, l2, l3 = layers["1"], layers["2"], layers["3"]
        assert l1["type"][0] == b"dense_rec" and l2["type"][0] == b"dense"
        assert l1["weight"].shape == (10, 12) and l1["weight_rec"].shape == (10, 10)
        assert l2["delay"].shape == (8, 10) and "delay" not in l1
        np.testing.assert_array_equal(l1["weight"][()], chip.layers[0].w_ff)
        assert np.issubdtype(l1["weight"].dtype, np.integer)
        nrn = l1["neuron"]
        assert nrn["type"][0] == b"CUBA"
        assert (int(nrn["iDecay"][()]), int(nrn["vDecay"][()])) == (742, 200)
        assert int(nrn["vThMant"][()]) == chip.layers[0].v_th_mant
        assert int(l3["neuron"]["vThMant"][()]) == 2**16
        assert l3["weight"].shape == (3, 8)
    assert not (tmp_path / "model.net.part").exists()


def test_samples_file(tmp_path):
    rng = np.random.default_rng(8)
    chip, _ = quantize(make_export(rng, T=30))
    data = make_data(rng, 6, 12, 30)
    res = emulate(chip, data, n_record=4)
    path = write_samples(data, res, 4, tmp_path / "samples.npz")
    with np.load(path) as z:
        assert z["inputs"].shape == (4, 30, 12) and z["inputs"].dtype == np.uint8
        assert z["inputs"].max() <= 1
        assert z["v_out"].shape == (4, 30, 3) and z["v_out"].dtype == np.int32
        assert z["hidden_counts_0"].shape == (4, 10)
        np.testing.assert_array_equal(z["labels"], data.labels[:4])
        np.testing.assert_array_equal(z["predictions"], res.predictions[:4])


def test_compare_names_first_mismatch():
    a = np.zeros((3, 5, 2), np.int32)
    b = a.copy()
    assert compare(a, b).bit_exact
    b[1, 3, 1] = 7
    b[2, 0, 0] = 1
    res = compare(a, b)
    assert not res.bit_exact and res.mismatches == 2
    assert res.first == dict(sample=1, step=3, neuron=1, emulator=0, lava=7)
    assert "sample 1, step 3, neuron 1" in res.message()


# ----------------------------------------------------------------------------- target
def _net(
    neuron="loihi_cuba",
    readout="exp_mean_v",
    output="li",
    hidden=256,
    recurrent=True,
    delays=None,
    tau_per_neuron=False,
):
    """What LoihiTarget.check reads of a built network: its topology and readout (no weights, so
    an oversized network costs nothing to describe)."""
    from types import SimpleNamespace

    from eventkit.plugin import LI
    from eventkit.plugin import READOUTS
    from eventkit.plugin import Topology, parse_delays

    model = (
        LoihiCUBA(tau_mem=20.0, tau_syn=5.0, threshold=1.0) if neuron == "loihi_cuba" else SimpleNamespace(name=neuron)
    )
    out = LI() if output == "li" else SimpleNamespace(name=output)
    topology = Topology.build(700, 20, [hidden], [recurrent], [model], out, parse_delays(delays))
    return SimpleNamespace(topology=topology, readout=READOUTS[readout](), tau_per_neuron=tau_per_neuron)


DATA = SimpleNamespace(dt=1.0, n_channels=700, n_steps=1000, n_classes=20)


def test_check_accepts_the_default_topology():
    LoihiTarget().check(_net(), DATA)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(neuron="alif"), "neuron="),
        (dict(readout="first_spike"), "readout="),
        (dict(output="adex"), "network.output.name"),
        (dict(delays={"ff": {"max": 63.0, "mode": "round"}}), r"network.delays.ff0.max: .*0..62 steps"),
        (dict(delays={"ff": {"max": 10.0, "mode": "exact"}}), r"network.delays.ff0.mode: .*whole-step"),
        (
            dict(delays={"out": {"max": 10.0, "mode": "round"}, "rec": {"max": 5.0, "mode": "round"}}),
            r"network.delays.rec0: .*recurrent",
        ),
        (dict(hidden=2_000_000), "reduce network.hidden"),
        (dict(tau_per_neuron=True), r"network.tau_per_neuron: .*one current and one voltage decay per layer"),
    ],
)
def test_check_rejects_what_the_chip_cannot_run(change, match):
    with pytest.raises(ValueError, match=match):
        LoihiTarget().check(_net(**change), DATA)


def test_core_estimate():
    cores = estimate_cores([256, 20], [700 + 256, 256])
    assert cores["per_layer"] == [2, 1] and cores["total"] == 3
    with pytest.raises(ValueError, match="neuron cores"):
        LoihiTarget().check_size([4096] * 40, [4096] * 40)


def test_target_rejects_bad_settings():
    with pytest.raises(ValueError, match="target.lava"):
        LoihiTarget(lava="sometimes")
    with pytest.raises(ValueError, match="target.quantization"):
        LoihiTarget(quantization=dict(percent=99))
    with pytest.raises(ValueError, match="target.readout"):
        LoihiTarget(readout="argmax")


class _FloatNet:
    """Stands in for a trained EventpropNet: its topology and parameters plus a float forward. Its "float" readout is
    the chip emulation itself, with the prediction of every label-0 sample shifted by one class,
    so the expected float accuracy and agreement are known exactly."""

    def __init__(self, fnet):
        self._chip, _ = quantize(fnet)
        self.topology, self.dt, self.n_steps = fnet.topology, fnet.dt, fnet.n_steps
        self.readout = SimpleNamespace(describe=lambda: dict(fnet.readout))
        for name, w in {**fnet.weights, **{f"{n}_delay": d for n, d in fnet.delays.items()}}.items():
            setattr(self, name, torch.as_tensor(w))

    def __call__(self, batch):
        class Out:
            pass

        out = Out()
        out.readout = (emulate(self._chip, batch, offset=1).predictions, batch.labels)
        return out

    def predict(self, readout):
        pred, labels = readout
        return np.where(labels == 0, (pred + 1) % 3, pred)

    def predictions(self, data, batch_size=512):
        return self.predict(self(data).readout)

    def simulating(self, **changes):
        return contextlib.nullcontext()


def test_deploy_end_to_end_without_lava(tmp_path):
    rng = np.random.default_rng(9)
    exp = make_export(rng, T=40)
    test = make_data(rng, 20, 12, 40)
    net = _FloatNet(exp)
    chip_pred = emulate(net._chip, test, offset=1).predictions
    float_pred = np.where(test.labels == 0, (chip_pred + 1) % 3, chip_pred)
    target = LoihiTarget(lava="off", samples=8)
    fields = target.deploy(net, DatasetSplits(train=test, test=test), tmp_path)
    out = tmp_path / "deploy" / "loihi2"
    for name in ("model.net", "samples.npz", "report.md", "deploy.json"):
        assert (out / name).exists(), name
    assert (tmp_path / "plots" / "loihi2_weights.png").stat().st_size > 1000
    chip_acc = float(np.mean(chip_pred == test.labels))
    assert fields["chip_test_accuracy"] == pytest.approx(chip_acc)
    assert fields["float_test_accuracy"] == pytest.approx(float(np.mean(float_pred == test.labels)))
    assert fields["prediction_agreement"] == pytest.approx(float(np.mean(test.labels != 0)))
    assert fields["accuracy_drop_points"] == pytest.approx(100 * (fields["float_test_accuracy"] - chip_acc))
    assert fields["lava"]["status"] == "off"
    assert fields["synaptic_ops_per_sample"] > 0 and fields["estimated_cores"] >= 2
    assert fields["neuron_updates_per_sample"] == (10 + 3) * 41  # T + 1 chip steps
    est = fields["estimate"]
    assert est["primary"] == "model" and est["measured"] is None and est["jetson_orin_nano"] is None
    assert est["model"]["latency_ms"] > 0 and est["model"]["dominant_energy"] in ("static", "dynamic")
    assert est["cpu"]["batch_1_ms"] > 0 and est["cpu"]["batch"] == 20
    text = (out / "report.md").read_text()
    assert "emulated chip test accuracy" in text and "not run (off" in text
    with np.load(out / "samples.npz") as z:  # the chip runs one step longer than the data
        assert z["v_out"].shape == (8, 41, 3) and z["inputs"].shape == (8, 41, 12)
        assert z["inputs"][:, 40].sum() == 0


def test_netx_round_trip(tmp_path):
    from eventkit_loihi2.netx import read_netx

    rng = np.random.default_rng(10)
    exp = make_export(rng, hidden=(10, 8), rec=(False, True), delays=True, T=40)
    chip, _ = quantize(exp)
    back = read_netx(write_netx(chip, tmp_path / "model.net"))
    data = make_data(rng, 3, 12, 40)
    np.testing.assert_array_equal(emulate(chip, data, 3).v_out, emulate(back, data, 3).v_out)


def test_chip_readout_follows_training_readout(tmp_path):
    """The chip classifies with the readout matching the training one: on test data labelled with
    the max-voltage readout's predictions (several classes; the exp-weighted sum disagrees on
    some samples), a max_v-trained network scores 1 on the chip and an exp_mean_v-trained one
    the exp-weighted sum's accuracy."""
    rng = np.random.default_rng(18)
    exp = make_export(rng, T=30)
    data = make_data(rng, 12, 12, 30)
    chip, _ = quantize(exp)
    by_max = emulate(chip, data, readout="max", offset=1)
    by_sum = emulate(chip, data, readout="exp_sum", offset=1)
    assert by_max.output_spikes == 0  # no readout spike: deploy keeps the weight scale
    assert len(set(by_max.predictions.tolist())) > 1
    assert 0 < np.sum(by_max.predictions != by_sum.predictions) < len(data)
    data = replace(data, labels=by_max.predictions)
    expected = {"max_v": ("max", 1.0), "exp_mean_v": ("exp_sum", float(np.mean(by_sum.predictions == data.labels)))}
    for name, (chip_readout, accuracy) in expected.items():
        exp = replace(exp, readout=dict(name=name))
        fields = LoihiTarget(lava="off", samples=2).deploy(exp, DatasetSplits(data, data), tmp_path / name)
        assert fields["chip_readout"] == chip_readout
        assert fields["chip_test_accuracy"] == pytest.approx(accuracy)


# ----------------------------------------------------------------------------- config + env
def test_target_config_file_builds_the_target():
    from pathlib import Path

    import eventkit_loihi2

    path = Path(eventkit_loihi2.__file__).parent / "conf" / "target" / "loihi2.yaml"
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    assert cfg.pop("defaults") == [
        {"/network_output@_global_.network.output": "loihi_li"},
        {"override /neuron@_global_.neuron": "loihi_cuba"},
    ]
    assert cfg.pop("name") == "loihi2"
    target = LoihiTarget(**cfg)
    assert target.lava == "auto" and target.samples == 32 and target.bits == 8 and not target.qat


def test_lava_env_interpreter_search(monkeypatch, tmp_path):
    from eventkit_loihi2 import lava_env

    monkeypatch.setenv("EVENTKIT_LAVA_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(ValueError, match="EVENTKIT_LAVA_PYTHON"):
        lava_env.find_base_python()
    monkeypatch.setenv("EVENTKIT_LAVA_ENV", str(tmp_path / "env"))
    assert lava_env.env_dir() == tmp_path / "env"
    assert lava_env.env_python() == tmp_path / "env" / "bin" / "python"


def test_var_model_patch_for_newer_pythons(tmp_path):
    from eventkit_loihi2.lava_env import patch_var_model

    target = tmp_path / "lava" / "magma" / "compiler" / "var_model.py"
    target.parent.mkdir(parents=True)
    target.write_text(
        "from dataclasses import dataclass, InitVar\n\n\nclass ByteEncoder:\n"
        "    pass\n\n\n@dataclass\nclass Pair:\n    x: ByteEncoder = ByteEncoder()\n"
        "    y: ByteEncoder = ByteEncoder()\n"
    )
    assert patch_var_model(tmp_path)
    ns: dict = {}
    exec(compile(target.read_text(), str(target), "exec"), ns)  # a plain dataclass default fails on 3.11+
    a, b = ns["Pair"](), ns["Pair"]()
    assert a.x is not b.x
    assert not patch_var_model(tmp_path)  # idempotent


def test_pieces_for_quantisation_aware_training():
    import torch

    from eventkit_loihi2.quantize import chip_parameters, fake_quantize

    rng = np.random.default_rng(15)
    exp = make_export(rng, hidden=(10,), rec=(True,), neuron="loihi_cuba")
    chip, _ = quantize(exp)
    params = chip_parameters(exp)
    assert [p["layer"] for p in params] == ["hidden0", "output"]
    p = params[0]
    assert (p["i_decay"], p["v_decay"], p["du"]) == (742, 200, 742 / 4096)
    assert p["threshold_chip"] == pytest.approx(1.0, abs=2.0 ** -p["weight_exp"])
    w = torch.tensor(exp.weights["ff0"], requires_grad=True)
    fq = fake_quantize(w, p["weight_exp"])
    np.testing.assert_array_equal((fq.detach().numpy() * 2.0 ** p["weight_exp"]).round(), chip.layers[0].w_ff)
    fq.sum().backward()
    assert torch.all(w.grad == 1)  # straight-through
    np.testing.assert_allclose(fake_quantize(exp.weights["ff0"], p["weight_exp"]), fq.detach().numpy())


def test_deploy_lowers_the_readout_scale_until_it_never_fires(tmp_path):
    rng = np.random.default_rng(16)
    exp = make_export(rng, T=60)
    exp.weights["out"] = np.abs(exp.weights["out"]) + 1.0  # strong, all-positive readout
    data = make_data(rng, 6, 12, 60, rate=(300, 500))
    chip, _ = quantize(exp, readout_vth=2**17 - 1)
    vth = int(np.abs(emulate(chip, data, n_record=6).v_out).max() // 64 // 3)
    chip, _ = quantize(exp, readout_vth=vth)
    assert emulate(chip, data).output_spikes > 0  # at the percentile scale it would fire
    fields = LoihiTarget(lava="off", samples=2, quantization=dict(readout_vth=vth)).deploy(
        exp, DatasetSplits(data, data), tmp_path
    )
    assert fields["readout_spikes"] == 0 and fields["readout_scale_shift"] < 0


def test_target_loihi2_composes_and_the_user_neuron_wins():
    from eventkit.plugin import compose

    cfg = compose(["target=loihi2", "neuron=lif"])
    assert cfg.target.name == "loihi2" and cfg.neuron.name == "lif"
    assert cfg.target.quantization.bits == 8 and cfg.target.lava == "auto"


def test_target_loihi2_selects_the_chip_neuron():
    from eventkit.plugin import compose

    cfg = compose(["target=loihi2"])
    assert cfg.neuron.name == "loihi_cuba"
