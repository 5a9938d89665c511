"""The SYNTHETIC timing_lags dataset: classes differ only in between-group lags, not in rates."""

import time

import numpy as np
import pytest

from eventkit.data import SpikeData
from eventkit.data.timing_lags import channel_groups, relative_lag_distance, timing_lags
from eventkit.base.registry import get_registry

SMALL = dict(n_train=200, n_test=50, n_val=20)


def _burst_starts(d: SpikeData, width: int = 4) -> np.ndarray:
    """[N, n_groups] estimated burst time (ms) of each group: the start of the ``width``-step
    window holding most of the group's spikes (robust to uniform background spikes)."""
    group = np.asarray(d.meta["groups"])
    n_groups = group.max() + 1
    k = np.repeat(np.arange(len(d)), np.diff(d.offsets))
    x = np.zeros((len(d), n_groups, d.n_steps + width))
    np.add.at(x, (k, group[d.channels], d.steps), 1)
    c = np.cumsum(x, axis=-1)
    window = c[..., width:] - c[..., :-width]  # spikes in [t + 1, t + width]
    return (np.argmax(window, axis=-1) + 1) * d.dt


def _timing_features(d: SpikeData) -> np.ndarray:
    t = _burst_starts(d)
    return t[:, 1:] - t[:, :1]  # burst time of each group relative to group 0


def _count_features(d: SpikeData) -> np.ndarray:
    k = np.repeat(np.arange(len(d)), np.diff(d.offsets))
    x = np.zeros((len(d), d.n_channels))
    np.add.at(x, (k, d.channels), 1)
    return x


def _ridge_accuracy(xtr, ytr, xte, yte, n_classes, l2=10.0) -> float:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    xtr, xte = np.c_[xtr, np.ones(len(xtr))], np.c_[xte, np.ones(len(xte))]
    w = np.linalg.solve(xtr.T @ xtr + l2 * np.eye(xtr.shape[1]), xtr.T @ np.eye(n_classes)[ytr])
    return float((np.argmax(xte @ w, 1) == yte).mean())


def _nearest_mean_accuracy(xtr, ytr, xte, yte, n_classes) -> float:
    means = np.stack([xtr[ytr == c].mean(0) for c in range(n_classes)])
    pred = np.argmin(((xte[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    return float((pred == yte).mean())


def test_shapes_labels_and_grid():
    s = timing_lags(**SMALL, seed=0)
    for split, n in (("train", 200), ("val", 20), ("test", 50)):
        d = getattr(s, split).validate(split)  # steps sorted within each sample, in range
        assert len(d) == n
        assert (d.n_channels, d.n_steps, d.dt, d.n_classes) == (48, 300, 1.0, 10)
        assert d.meta["synthetic"] is True and d.meta["dataset"] == "timing_lags"
        counts = np.bincount(d.labels, minlength=10)
        assert counts.max() - counts.min() <= 1  # balanced
    assert not np.array_equal(s.train.labels[:20], np.arange(20) % 10)  # shuffled
    # ~3 spikes per channel per burst over 48 channels, plus 20 % noise: ~180 per sample
    assert 160 < s.train.n_spikes / len(s.train) < 200
    assert timing_lags(n_train=5, n_test=5, dt=0.5, duration=280.0).test.n_steps == 560
    assert timing_lags(n_train=5, n_test=5).val is None


def test_deterministic_given_seed_and_splits_independent():
    a = timing_lags(**SMALL, seed=3)
    b = timing_lags(**SMALL, seed=3)
    for split in ("train", "val", "test"):
        x, y = getattr(a, split), getattr(b, split)
        for field in ("offsets", "steps", "channels", "labels"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
    bigger = timing_lags(n_train=300, n_test=50, seed=3)
    np.testing.assert_array_equal(bigger.test.steps, a.test.steps)  # test split ignores n_train
    assert bigger.train.meta["lags"] == a.train.meta["lags"]  # the classes do not depend on sizes
    other = timing_lags(**SMALL, seed=4)
    assert other.train.meta["lags"] != a.train.meta["lags"]
    assert not np.array_equal(other.test.steps[:300], a.test.steps[:300])
    same_size = timing_lags(n_train=50, n_test=50, seed=3)
    assert not np.array_equal(same_size.train.steps[:300], same_size.test.steps[:300])  # own streams


def test_lag_table_is_separated_and_in_range():
    tables = []
    for seed in range(5):
        lags = np.asarray(timing_lags(n_train=5, n_test=5, seed=seed).train.meta["lags"])
        assert lags.shape == (10, 2)
        assert np.all(lags >= 0) and np.all(lags <= 100.0) and np.all(lags.min(1) == 0)
        assert np.all(lags % 10.0 == 0)  # on the lag_step grid
        rel = lags[:, 1] - lags[:, 0]
        assert np.all(np.abs(rel) >= 50.0)  # min_gap: bursts of a class never nearly coincide
        dist = relative_lag_distance(lags[:, None], lags[None])
        np.fill_diagonal(dist, np.inf)
        assert dist.min() >= 10.0  # distinct classes
        tables.append(sorted(rel))
    assert any(t != tables[0] for t in tables[1:])  # the table depends on the seed
    # more groups: every pair of groups of a class at least min_gap apart
    lags = np.asarray(timing_lags(n_train=5, n_test=5, n_groups=4, max_lag=120.0, min_gap=30.0,
                                  duration=300.0, onset_max=160.0).train.meta["lags"])  # fmt: skip
    assert lags.shape == (10, 4) and np.all(lags <= 120.0)
    gaps = np.abs(lags[:, :, None] - lags[:, None, :])[:, ~np.eye(4, dtype=bool)]
    assert gaps.min() >= 30.0


def test_counts_carry_no_class_information_but_timing_does():
    """A linear classifier on per-channel spike counts is at chance; nearest class mean on the
    groups' burst times relative to group 0 is near perfect. So classes differ by timing only."""
    s = timing_lags(n_train=2000, n_test=500, seed=0)
    tr, te = s.train, s.test
    chance = 1.0 / tr.n_classes
    rate_acc = _ridge_accuracy(_count_features(tr), tr.labels, _count_features(te), te.labels, 10)
    assert rate_acc < 2 * chance, rate_acc
    time_acc = _nearest_mean_accuracy(_timing_features(tr), tr.labels, _timing_features(te),
                                      te.labels, 10)  # fmt: skip
    assert time_acc > 0.9, time_acc
    # the counts per group, summed over each class, are the same for every class
    group = channel_groups(48, 2)
    per_group = np.stack([np.bincount(group, weights=row, minlength=2)
                          for row in _count_features(tr)])  # fmt: skip
    means = np.stack([per_group[tr.labels == c].mean(0) for c in range(10)])
    assert np.abs(means / means.mean(0) - 1).max() < 0.05


def test_burst_lags_match_the_lag_table():
    s = timing_lags(n_train=1000, n_test=5, seed=1)
    d = s.train
    lags = np.asarray(d.meta["lags"])
    rel = _timing_features(d)
    want = lags[:, 1:] - lags[:, :1]
    for c in range(d.n_classes):
        got = rel[d.labels == c]
        # class mean within 1 ms of the table (jitter 1.5 ms, ~100 samples per class)
        np.testing.assert_allclose(got.mean(0), want[c], atol=1.0)
        # single samples within a few ms (per-sample std ~2.2 ms, see below: 8 ms is > 3 sigma)
        assert np.mean(np.abs(got - want[c]) < 8.0) > 0.98
    # each group has its own jitter: relative lags spread by ~ sqrt(2) x 1.5 ms per sample
    spread = (rel - want[d.labels]).std(0)
    assert np.all((spread > 1.6) & (spread < 3.0)), spread
    # in every sample the two bursts are about min_gap apart or more
    assert np.all(np.abs(rel) >= 50.0 - 8.0)
    # absolute burst times vary over the onset range, far more than the lags do
    t0 = _burst_starts(d).min(1)
    assert t0.max() - t0.min() > 120


def test_noise_fraction_and_jitter_are_honoured():
    quiet = timing_lags(n_train=300, n_test=5, noise_fraction=0.0, jitter=0.0, seed=2).train
    # no noise, no jitter: every spike of a group lies within burst_width of its burst start
    group = np.asarray(quiet.meta["groups"])
    k = np.repeat(np.arange(len(quiet)), np.diff(quiet.offsets))
    first = np.full((len(quiet), 2), 10**9)
    last = np.full((len(quiet), 2), -1)
    np.minimum.at(first, (k, group[quiet.channels]), quiet.steps)
    np.maximum.at(last, (k, group[quiet.channels]), quiet.steps)
    assert np.all(last - first <= 4) and np.mean(last - first) > 2  # bursts span burst_width
    lags = np.asarray(quiet.meta["lags"])[quiet.labels]
    spread = (first - first[:, :1]) - (lags - lags[:, :1])
    assert np.abs(spread).max() <= 4
    noisy = timing_lags(n_train=300, n_test=5, noise_fraction=0.5, seed=2).train
    assert 1.8 < noisy.n_spikes / quiet.n_spikes < 2.2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_train=0), "n_train must be a positive integer"),
        (dict(n_val=-1), "n_val must be a non-negative integer"),
        (dict(n_classes=1), "n_classes must be >= 2"),
        (dict(n_groups=1), "n_groups must be an integer in"),
        (dict(n_groups=60), "n_groups must be an integer in"),
        (dict(duration=250.5), "multiple of dt"),
        (dict(max_lag=0.0), "max_lag must be > 0"),
        (dict(lag_step=0.0), "lag_step must lie in"),
        (dict(min_gap=60.0, n_groups=3), r"min_gap must lie in \[0, max_lag / \(n_groups - 1\) = 50\]"),
        (dict(min_gap=-1.0), "min_gap must lie in"),
        (dict(jitter=-1.0), "jitter must be >= 0"),
        (dict(burst_width=0.0), "burst_width must be > 0"),
        (dict(burst_spikes=0.0), "burst_spikes"),
        (dict(noise_fraction=1.0), "noise_fraction must lie in"),
        (dict(onset_min=100.0, onset_max=50.0), "onset_min <= onset_max"),
        (dict(duration=250.0), r"= 258.5 ms must fit in duration=250 ms; raise duration"),
        (dict(n_classes=13), r"cannot form 13 distinct lag patterns .*\(found 12\); raise max_lag"),
    ],
)
def test_rejects_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        timing_lags(**{"n_train": 10, "n_test": 5, **kwargs})
    assert "\n" not in str(err.value) and str(err.value).startswith("timing_lags: ")


def test_default_size_generates_fast():
    t0 = time.perf_counter()
    s = timing_lags()
    elapsed = time.perf_counter() - t0
    assert (len(s.train), len(s.test)) == (3000, 1000)
    assert elapsed < 2.0, elapsed  # ~0.1 s on one core


def test_registered_and_builds_from_config():
    reg = get_registry()
    assert "timing_lags" in reg.names("dataset")
    s = reg.build("dataset", {"name": "timing_lags", "n_train": 20, "n_test": 10, "seed": 0})
    assert len(s.train) == 20 and s.train.meta["dataset"] == "timing_lags"
