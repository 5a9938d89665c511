"""Augmentations on spike lists: each checked against its definition on small data, for seeding,
for order within samples, and for speed on an SHD-sized epoch."""

from __future__ import annotations

import collections
import time

import numpy as np
import pytest

from eventkit.components import augment
from eventkit.data import SpikeData, from_samples
from eventkit.data.synthetic_kws import synthetic_kws
from eventkit.base.registry import create

REGISTRY = create(entry_points=False)


def build(name: str, **cfg) -> augment.Augmentation:
    """An augmentation as a run builds it: by its registered name, from its config keys."""
    return REGISTRY.build("augmentation", {"name": name, **cfg})


def toy(seed=0, n=30, n_channels=50, n_steps=80, n_classes=3) -> SpikeData:
    rng = np.random.default_rng(seed)
    samples = []
    for k in range(n):
        m = int(rng.integers(0, 60)) if k != 2 else 0  # sample 2 is empty
        samples.append((rng.integers(0, n_steps, m), rng.integers(0, n_channels, m)))
    labels = np.arange(n) % n_classes
    return from_samples(samples, labels, n_channels=n_channels, n_steps=n_steps, dt=1.0, n_classes=n_classes).validate()


def multiset(steps, channels) -> list:
    return sorted(zip(np.asarray(steps).tolist(), np.asarray(channels).tolist()))


ALL = [
    ("shift", {"max_shift": 5}),
    ("blend", {}),
    ("delay_line", {"n_copies": 3, "delay": 7.0}),
    ("jitter", {"sigma": 2.0}),
]


@pytest.mark.parametrize("name, cfg", ALL)
def test_every_augmentation_is_valid_sorted_and_seeded(name, cfg):
    data = toy()
    aug = build(name, **cfg)
    a = aug(data, np.random.default_rng(7)).validate(name)  # validate() checks order within samples
    b = aug(data, np.random.default_rng(7))
    for field in ("offsets", "steps", "channels", "labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    if name != "delay_line":  # the only deterministic one
        c = aug(data, np.random.default_rng(8))
        assert not (np.array_equal(a.offsets, c.offsets) and np.array_equal(a.channels, c.channels))
    assert data.n_spikes == toy().n_spikes  # the input is left untouched
    np.testing.assert_array_equal(data.steps, toy().steps)


def test_shift_moves_each_sample_by_one_offset_and_drops_overflow():
    data = toy()
    out = build("shift", max_shift=5)(data, np.random.default_rng(0))
    assert len(out) == len(data)
    seen = set()
    for k in range(len(data)):
        s, c = data.sample(k)
        so, co = out.sample(k)
        if len(c) == 0:
            assert len(co) == 0
            continue
        # find the shift that maps the kept spikes; it must explain every spike of the sample
        candidates = [
            d
            for d in range(-5, 6)
            if multiset(so, co) == multiset(s[(c + d >= 0) & (c + d < 50)], (c + d)[(c + d >= 0) & (c + d < 50)])
        ]
        assert candidates, k
        seen.update(candidates)
    assert len(seen) > 3  # shifts vary over samples
    zero = build("shift", max_shift=0)(data, np.random.default_rng(0))
    np.testing.assert_array_equal(zero.channels, data.channels)


def test_blend_appends_same_class_mixtures():
    data = toy(n=30)
    out = build("blend", n_extra=12)(data, np.random.default_rng(1))
    assert len(out) == 42
    for field in ("steps", "channels"):
        np.testing.assert_array_equal(getattr(out.subset(np.arange(30)), field), getattr(data, field))
    np.testing.assert_array_equal(out.labels[:30], data.labels)
    # with one member per class, both parts are the anchor itself: p_keep=1 gives every spike twice
    single = toy(n=3, n_classes=3)
    twice = build("blend", n_extra=6, p_keep=1.0)(single, np.random.default_rng(2))
    for e in range(3, 9):
        label = twice.labels[e]
        s, c = single.sample(int(label))
        so, co = twice.sample(e)
        assert multiset(so, co) == multiset(np.repeat(s, 2), np.repeat(c, 2))


def test_blend_aligns_centres_of_mass_and_keeps_half():
    # two samples of one class: a block early/low and a block late/high; p_keep=1 mixture must
    # sit at the mean of their centres of mass
    a = (np.repeat(np.arange(10, 20), 4), np.tile(np.arange(5, 9), 10))
    b = (np.repeat(np.arange(50, 60), 4), np.tile(np.arange(30, 34), 10))
    data = from_samples([a, b], [0, 0], n_channels=50, n_steps=80, dt=1.0, n_classes=1)
    out = build("blend", n_extra=10, p_keep=1.0)(data, np.random.default_rng(3))
    com_t, com_c = augment.centres_of_mass(out)
    np.testing.assert_allclose(com_t[2:], (14.5 + 54.5) / 2, atol=0.51)
    np.testing.assert_allclose(com_c[2:], (6.5 + 31.5) / 2, atol=0.51)
    big = synthetic_kws(n_train=200, n_test=2, n_classes=4, seed=1).train
    half = build("blend", p_keep=0.5)(big, np.random.default_rng(4))
    extra_spikes = half.n_spikes - big.n_spikes
    assert len(half) == 400
    assert abs(extra_spikes / big.n_spikes - 1.0) < 0.1  # two parts x p 0.5 ~ one sample's worth


def test_delay_line_matches_its_definition():
    data = toy()
    out = build("delay_line", n_copies=3, delay=7.0)(data)
    assert (out.n_channels, out.n_steps) == (150, 80)
    for k in range(len(data)):
        s, c = data.sample(k)
        expected = []
        for copy in range(3):
            keep = s + 7 * copy < 80
            expected += multiset(s[keep] + 7 * copy, c[keep] + 50 * copy)
        assert multiset(*out.sample(k)) == sorted(expected)
    longer = build("delay_line", n_copies=3, delay=7.0, extend=True)(data)
    assert longer.n_steps == 94 and longer.n_spikes == 3 * data.n_spikes
    assert not build("delay_line").train_only  # applied to every split by the app
    with pytest.raises(ValueError, match="whole number of dt"):
        build("delay_line", delay=2.5)(data)


def test_jitter_moves_spikes_by_about_sigma():
    data = synthetic_kws(n_train=40, n_test=2, seed=0).train
    same = build("jitter", sigma=0.0)(data, np.random.default_rng(0))
    for k in range(len(data)):
        assert multiset(*same.sample(k)) == multiset(*data.sample(k))
    moved = build("jitter", sigma=3.0, clip=True)(data, np.random.default_rng(0))
    assert moved.n_spikes == data.n_spikes
    # channels are untouched; per sample, the mean step stays put and the spread grows by sigma^2
    for k in range(5):
        np.testing.assert_array_equal(np.sort(moved.sample(k)[1]), np.sort(data.sample(k)[1]))
    var_in = np.var(data.steps.astype(float))
    var_out = np.var(moved.steps.astype(float))
    assert abs((var_out - var_in) - 9.0) < 3.0
    # without clip, the same draws drop exactly the spikes that clip moved onto an edge from
    # beyond it: per sample, the clipped spikes are the dropped run's plus some at step 0 or T - 1
    dropped = build("jitter", sigma=3.0)(data, np.random.default_rng(0))
    assert 0 < dropped.n_spikes < data.n_spikes
    edges = (0, data.n_steps - 1)
    for k in range(len(data)):
        kept = collections.Counter(zip(*dropped.sample(k)))
        clipped = collections.Counter(zip(*moved.sample(k)))
        assert not kept - clipped, k  # every kept spike sits where the clipped run put it
        assert all(step in edges for step, _ in clipped - kept), k


@pytest.mark.parametrize(
    "name, cfg, match",
    [
        ("shift", {"max_shift": -1}, "max_shift must be an integer >= 0"),
        ("blend", {"p_keep": 0.0}, "p_keep must lie in"),
        ("blend", {"n_mix": 0}, "n_mix must be an integer >= 1"),
        ("delay_line", {"n_copies": 0}, "n_copies must be an integer >= 1"),
        ("jitter", {"sigma": -1.0}, "sigma must be >= 0"),
        ("shift", {"bogus": 1}, "does not accept key.*'bogus'"),
        ("nope", {}, "unknown augmentation 'nope'"),
    ],
)
def test_bad_augmentation_config(name, cfg, match):
    with pytest.raises(ValueError, match=match):
        build(name, **cfg)


def test_compose_applies_in_order():
    data = toy()
    both = augment.compose([augment.shift(3), augment.blend(n_extra=5)])
    out = both(data, np.random.default_rng(0)).validate()
    assert len(out) == len(data) + 5 and both.train_only


@pytest.mark.slow
def test_shd_sized_epoch_augments_in_seconds():
    """shift + blend (the SHD recipe) on an SHD-sized training set: well under the engine's
    epoch time. Bounds are generous for a shared 2-core machine; bench_data.py reports numbers."""
    data = synthetic_kws(n_train=8156, n_test=2, seed=0).train
    aug = augment.compose([augment.shift(40), augment.blend(p_keep=0.5)])
    aug(data.subset(np.arange(50)), np.random.default_rng(0))  # compile or load the kernels
    t0 = time.perf_counter()
    out = aug(data, np.random.default_rng(1))
    elapsed = time.perf_counter() - t0
    assert len(out) == 2 * 8156
    assert elapsed < 15.0, elapsed
