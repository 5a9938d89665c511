"""Built-in datasets (Yin-Yang, synthetic keyword spotting), event preprocessing and the cache."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from eventkit.data import SpikeData
from eventkit.data.cache import cached
from eventkit.data.preprocess import PreprocessConfig, events_to_spikes
from eventkit.data.synthetic_kws import synthetic_kws
from eventkit.data.yinyang import yinyang
from eventkit.data import cache as cache_mod
from eventkit.data.timing_lags import timing_lags
from eventkit.data.yinyang import yinyang_class
from eventkit.base.registry import get_registry


# ----------------------------------------------------------------------------- preprocessing
def reference(times_us, units, lengths, n_sensor, cfg: PreprocessConfig):
    """Per-sample sorted (step, channel) pairs by the plain definition (np.unique over bins)."""
    out = []
    n_out = cfg.n_channels or n_sensor
    starts = np.concatenate(([0], np.cumsum(lengths)))
    for k in range(len(lengths)):
        t = times_us[starts[k] : starts[k + 1]]
        x = units[starts[k] : starts[k + 1]]
        keep = (t >= 0) & (t < cfg.duration * 1000)
        step = np.floor(t[keep] / (cfg.dt * 1000)).astype(np.int64)
        ch = x[keep].astype(np.int64) * n_out // n_sensor
        pairs = np.stack([step, ch], 1).reshape(-1, 2)
        if cfg.count_threshold is not None:
            pairs, counts = np.unique(pairs, axis=0, return_counts=True)
            pairs = pairs.reshape(-1, 2)[counts >= cfg.count_threshold]
        out.append(pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))])
    return out


def random_events(rng, n_samples=40, n_sensor=700, max_us=1_300_000):
    lengths = rng.integers(0, 600, n_samples)
    lengths[3] = 0  # an empty sample
    times, units = [], []
    for k, n in enumerate(lengths):
        t = rng.integers(-2000, max_us, n)
        t[: n // 4] = t[n // 4 : 2 * (n // 4)]  # repeated bins
        u = rng.integers(0, n_sensor, n)
        u[: n // 4] = u[n // 4 : 2 * (n // 4)]
        if k % 3:
            order = np.argsort(t, kind="stable")
            t, u = t[order], u[order]
        times.append(t)
        units.append(u)
    return np.concatenate(times), np.concatenate(units), lengths


@pytest.mark.parametrize(
    "cfg",
    [
        PreprocessConfig(),
        PreprocessConfig(dt=2.0, duration=900.0, count_threshold=2, n_channels=350),
        PreprocessConfig(dt=0.5, duration=1300.0, count_threshold=None),
        PreprocessConfig(dt=1.0, duration=1000.0, count_threshold=1, n_channels=100),
    ],
)
def test_events_to_spikes_matches_the_definition(cfg):
    rng = np.random.default_rng(1)
    times, units, lengths = random_events(rng)
    labels = rng.integers(0, 5, lengths.size)
    data = events_to_spikes(times, units, lengths, labels, n_sensor=700, n_classes=5, config=cfg).validate()
    assert (data.n_steps, data.n_channels, data.dt) == (cfg.n_steps, cfg.n_channels or 700, cfg.dt)
    np.testing.assert_array_equal(data.labels, labels)
    for k, expected in enumerate(reference(times, units, lengths, 700, cfg)):
        s, c = data.sample(k)
        got = np.stack([s, c], 1).astype(np.int64)
        np.testing.assert_array_equal(got[np.lexsort((got[:, 1], got[:, 0]))], expected)


def test_events_to_spikes_by_hand():
    # one sample: 3 events in bin (0, ch 5), one in (0, ch 6), two in (2, ch 5), one past the crop
    t = np.array([100, 200, 900, 500, 2100, 2999, 5000])
    x = np.array([5, 5, 5, 6, 5, 5, 1])
    cfg = PreprocessConfig(dt=1.0, duration=4.0, count_threshold=2)
    d = events_to_spikes(t, x, [7], [0], n_sensor=10, n_classes=1, config=cfg)
    assert d.sample(0)[0].tolist() == [0, 2] and d.sample(0)[1].tolist() == [5, 5]
    keep_all = events_to_spikes(
        t, x, [7], [0], n_sensor=10, n_classes=1, config=PreprocessConfig(dt=1.0, duration=4.0, count_threshold=None)
    )
    assert keep_all.sample(0)[0].tolist() == [0, 0, 0, 0, 2, 2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dt=0), "dt must be a positive"),
        (dict(duration=-1), "duration must be a positive"),
        (dict(dt=3.0, duration=1000.0), "whole number of dt"),
        (dict(count_threshold=0), "count_threshold must be an integer >= 1"),
        (dict(n_channels=0), "n_channels must be a positive"),
    ],
)
def test_preprocess_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PreprocessConfig(**kwargs)


def test_events_to_spikes_rejects_bad_input():
    cfg = PreprocessConfig()
    with pytest.raises(ValueError, match=r"event channels must lie in \[0, n_sensor=700\)"):
        events_to_spikes([1, 2], [3, 700], [2], [0], n_sensor=700, n_classes=1, config=cfg)
    with pytest.raises(ValueError, match="lengths must be non-negative and sum"):
        events_to_spikes([1, 2], [3, 4], [3], [0], n_sensor=700, n_classes=1, config=cfg)
    with pytest.raises(ValueError, match="cannot exceed the sensor"):
        events_to_spikes([1], [3], [1], [0], n_sensor=700, n_classes=1, config=PreprocessConfig(n_channels=800))


# ----------------------------------------------------------------------------- cache
def small_data(seed=0) -> SpikeData:
    return synthetic_kws(n_train=12, n_test=3, n_classes=4, seed=seed).train


def test_cache_round_trip_and_keys(tmp_path):
    src = tmp_path / "source.bin"
    src.write_bytes(b"x" * 1000)
    data = small_data()
    calls = []

    def build():
        calls.append(1)
        return data, {"speaker": np.arange(len(data))}

    a, extra, hit = cached(tmp_path / "c", {"dt": 1.0}, [src], build, label="t")
    b, extra_b, hit_b = cached(tmp_path / "c", {"dt": 1.0}, [src], build, label="t")
    assert (hit, hit_b, len(calls)) == (False, True, 1)
    for name in ("offsets", "steps", "channels", "labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(b, name).dtype == getattr(data, name).dtype
    assert (b.n_channels, b.n_steps, b.dt, b.n_classes, b.meta) == (700, 1000, 1.0, 4, data.meta)
    np.testing.assert_array_equal(extra_b["speaker"], np.arange(len(data)))
    # different config or changed source: different key
    k0 = cache_mod.cache_key({"dt": 1.0}, [src])
    assert cache_mod.cache_key({"dt": 2.0}, [src]) != k0
    assert cache_mod.cache_key({"dt": 1.0, "duration": 900.0}, [src]) != k0
    src.write_bytes(b"y" * 1000)
    assert cache_mod.cache_key({"dt": 1.0}, [src]) != k0


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    data = small_data()
    real_save = np.save
    n = []

    def failing_save(path, arr, *a, **k):
        n.append(path)
        if len(n) == 3:
            raise OSError("disk full")
        return real_save(path, arr, *a, **k)

    monkeypatch.setattr(cache_mod.np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        cache_mod.save(tmp_path / "entry", data)
    assert list(tmp_path.iterdir()) == []  # neither the entry nor a temporary folder remains


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    data = small_data()
    cached(tmp_path, {"a": 1}, [], lambda: (data, {}), label="t")
    (entry,) = tmp_path.iterdir()
    (entry / "steps.npy").write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="damaged"):
        again, _, hit = cached(tmp_path, {"a": 1}, [], lambda: (data, {}), label="t")
    assert not hit
    np.testing.assert_array_equal(again.steps, data.steps)
    info = json.loads((entry / "info.json").read_text())
    assert info["n_steps"] == 1000


# ----------------------------------------------------------------------------- Yin-Yang
def test_yinyang_shapes_latencies_and_classes():
    s = yinyang(n_train=600, n_val=90, n_test=150, seed=4)
    train = s.train.validate()
    assert (len(train), len(s.val), len(s.test)) == (600, 90, 150)
    assert (train.n_channels, train.n_classes, train.dt, train.n_steps) == (5, 3, 0.5, 120)
    assert np.all(np.diff(train.offsets) == 5)  # one spike per channel
    counts = np.bincount(train.labels, minlength=3)
    assert counts.min() > 150  # classes balanced (uniform label draw)
    t_ms = train.steps * train.dt
    assert t_ms.min() >= 10.0 and t_ms.max() <= 40.0
    # decode x, y from the latencies and check the label is the yin-yang class of that point
    dense = np.zeros((len(train), 5))
    k = np.repeat(np.arange(len(train)), 5)
    dense[k, train.channels] = t_ms
    x = (dense[:, 0] - 10) / 30
    np.testing.assert_allclose(x + (dense[:, 1] - 10) / 30, 1.0, atol=2 * train.dt / 30)
    y = (dense[:, 2] - 10) / 30
    assert np.all(dense[:, 4] == 10.0)  # bias at t_min
    agree = yinyang_class(x, y) == train.labels
    assert agree.mean() > 0.97  # rounding to the 0.5 ms grid moves a few points across a border


def test_yinyang_class_geometry():
    # centre of the right dot (class 2), the upper half away from the dots (yin = 1), lower (yang = 0)
    assert yinyang_class(np.array([0.75]), np.array([0.5]))[0] == 2
    assert yinyang_class(np.array([0.25]), np.array([0.5]))[0] == 2
    assert yinyang_class(np.array([0.5]), np.array([0.95]))[0] in (0, 1)
    assert yinyang_class(np.array([0.5]), np.array([0.95]))[0] != yinyang_class(np.array([0.5]), np.array([0.05]))[0]


def test_yinyang_is_seeded_and_splits_are_independent():
    a = yinyang(n_train=100, n_val=10, n_test=50, seed=1)
    b = yinyang(n_train=100, n_val=10, n_test=50, seed=1)
    c = yinyang(n_train=300, n_val=10, n_test=50, seed=1)
    d = yinyang(n_train=100, n_val=10, n_test=50, seed=2)
    np.testing.assert_array_equal(a.train.steps, b.train.steps)
    np.testing.assert_array_equal(a.test.steps, c.test.steps)  # test set does not depend on n_train
    assert not np.array_equal(a.test.steps, d.test.steps)
    assert yinyang(n_train=10, n_val=0, n_test=10).val is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_train=0), "n_train must be a positive integer"),
        (dict(n_val=-1), "n_val must be a non-negative"),
        (dict(t_min=30.0, t_max=20.0), "t_min < t_max"),
        (dict(duration=40.0), "duration .* must exceed"),
        (dict(r_small=0.3), "r_small < r_big / 2"),
    ],
)
def test_yinyang_rejects_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        yinyang(**kwargs)


def _samples(d: SpikeData) -> list[bytes]:
    """Each sample as bytes (its spikes and label): equal bytes, the same sample."""
    return [
        d.steps[a:b].tobytes() + d.channels[a:b].tobytes() + bytes([int(d.labels[k])])
        for k, (a, b) in enumerate(zip(d.offsets[:-1], d.offsets[1:]))
    ]


@pytest.mark.parametrize(
    "generate",
    [
        # equal val and test sizes, as in the default config; a fine time grid: at 0.5 ms two
        # random points share their latencies about once in 4000
        lambda: yinyang(n_train=200, n_val=100, n_test=100, seed=3, dt=0.01),
        lambda: timing_lags(n_train=60, n_val=30, n_test=40, seed=3),
        lambda: synthetic_kws(n_train=40, n_val=20, n_test=30, seed=3),
    ],
    ids=["yinyang", "timing_lags", "synthetic_kws"],
)
def test_generated_splits_share_no_sample(generate):
    """Validation, test and training splits are drawn from separate streams: a validation split
    that repeats test samples would select the model on the test set."""
    splits = generate()
    train, val, test = (set(_samples(d)) for d in (splits.train, splits.val, splits.test))
    assert len(val) == len(splits.val) and len(test) == len(splits.test)  # no repeats within a split
    assert not val & test, "validation samples in the test split"
    assert not val & train, "validation samples in the training split"
    assert not train & test, "training samples in the test split"


# ----------------------------------------------------------------------------- synthetic KWS
def test_synthetic_kws_is_shd_shaped():
    s = synthetic_kws(n_train=300, n_test=100, n_val=50, seed=0)
    train = s.train.validate()
    assert (train.n_channels, train.n_steps, train.dt, train.n_classes) == (700, 1000, 1.0, 20)
    assert (len(train), len(s.test), len(s.val)) == (300, 100, 50)
    per_ms = train.n_spikes / len(train) / 1000
    assert 6.5 < per_ms < 9.0  # ~8 spikes per ms per sample
    assert train.meta["synthetic"] is True
    assert set(np.unique(train.labels)) == set(range(20))


def test_synthetic_kws_is_seeded():
    a = synthetic_kws(n_train=50, n_test=20, seed=5)
    b = synthetic_kws(n_train=50, n_test=20, seed=5)
    c = synthetic_kws(n_train=80, n_test=20, seed=5)
    np.testing.assert_array_equal(a.train.steps, b.train.steps)
    np.testing.assert_array_equal(a.test.channels, c.test.channels)  # independent of n_train
    assert not np.array_equal(synthetic_kws(n_train=50, n_test=20, seed=6).test.steps[:500], a.test.steps[:500])


def _features(d: SpikeData, time_bins: int, channel_bins: int = 35) -> np.ndarray:
    k = np.repeat(np.arange(len(d)), np.diff(d.offsets))
    x = np.zeros((len(d), time_bins, channel_bins))
    np.add.at(x, (k, d.steps * time_bins // d.n_steps, d.channels * channel_bins // d.n_channels), 1)
    return np.log1p(x.reshape(len(d), -1))


def _ridge_accuracy(train: SpikeData, test: SpikeData, time_bins: int) -> float:
    xtr, xte = _features(train, time_bins), _features(test, time_bins)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    w = np.linalg.solve(xtr.T @ xtr + 30 * np.eye(xtr.shape[1]), xtr.T @ np.eye(train.n_classes)[train.labels])
    return float((np.argmax(xte @ w, 1) == test.labels).mean())


def test_synthetic_kws_needs_timing_but_is_learnable():
    """Paired classes share syllables in a different order: a classifier on time-summed channel
    counts confuses them (about half right), the same classifier with coarse time bins does not."""
    s = synthetic_kws(n_train=1500, n_test=500, seed=0)
    rate_only = _ridge_accuracy(s.train, s.test, 1)
    with_time = _ridge_accuracy(s.train, s.test, 4)
    assert 0.3 < rate_only < 0.65
    assert with_time > 0.75 and with_time > rate_only + 0.2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_train=0), "n_train must be a positive integer"),
        (dict(rate=0), "rate"),
        (dict(noise_fraction=1.0), "noise_fraction"),
        (dict(word_length=1500.0), "word_length"),
        (dict(n_syllables=2), "n_syllables"),
        (dict(duration=1000.5), "multiple of dt"),
        (dict(n_classes=400, n_syllables=3), "distinct words"),
    ],
)
def test_synthetic_kws_rejects_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic_kws(**{"n_train": 10, "n_test": 5, **kwargs})


@pytest.mark.slow
def test_synthetic_kws_full_size_generates_in_seconds():
    synthetic_kws(n_train=20, n_test=5)  # compile (or load the compiled kernel)
    t0 = time.perf_counter()
    s = synthetic_kws()
    elapsed = time.perf_counter() - t0
    assert len(s.train) == 8156 and len(s.test) == 2264
    assert elapsed < 20.0, elapsed  # a few seconds on 2 cores; generous for a loaded machine


def test_builtins_are_registered_and_build_from_config():
    reg = get_registry()
    assert {"yinyang", "synthetic_kws"} <= set(reg.names("dataset"))
    assert {"shift", "blend", "delay_line", "jitter"} <= set(reg.names("augmentation"))
    s = reg.build("dataset", {"name": "yinyang", "n_train": 30, "n_val": 0, "n_test": 9, "seed": 0, "dt": 1.0})
    assert len(s.train) == 30 and s.train.dt == 1.0
    aug = reg.build("augmentation", {"name": "shift", "max_shift": 3})
    assert aug.max_shift == 3 and aug.train_only


def test_binary_keeps_each_step_channel_pair_once():
    from eventkit.data import from_samples

    data = from_samples(
        [
            (np.array([0, 0, 1, 1, 1, 3]), np.array([2, 2, 2, 3, 2, 2])),
            (np.array([], int), np.array([], int)),
            (np.array([4, 4, 5]), np.array([1, 1, 1])),
            (np.array([], int), np.array([], int)),
        ],
        [0, 1, 0, 1],
        n_channels=5,
        n_steps=6,
        dt=1.0,
        n_classes=2,
    )
    b = data.binary().validate()
    assert b.offsets.tolist() == [0, 4, 4, 6, 6]
    assert list(zip(b.steps.tolist(), b.channels.tolist())) == [(0, 2), (1, 2), (1, 3), (3, 2), (4, 1), (5, 1)]
    assert b.labels.tolist() == [0, 1, 0, 1]
    assert b.binary() is b  # nothing repeats any more
    # the same pair in two different samples is not a repeat
    two = from_samples([(np.array([2]), np.array([1]))] * 2, [0, 0], n_channels=5, n_steps=6, dt=1.0, n_classes=2)
    assert two.binary() is two
