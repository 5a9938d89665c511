"""A SYNTHETIC dataset whose classes differ only in the relative timing of channel groups.

Why: it isolates one ability, recognising lags of tens of milliseconds between inputs, which is
what learned synaptic delays provide. Every class uses the same channels at the same expected
rate, so the time-summed channel histogram carries no class information; a class is defined only
by how much later one group of channels fires than another. A neuron with learned delays can
shift the earlier group onto the later one and detect the coincidence. A feed-forward network
without delays has to bridge the lag with its membrane and synaptic memory (tau_mem 20 ms,
tau_syn 5 ms by default), so the bursts of one sample are kept at least ``min_gap`` apart: at
50 ms (2.5 membrane time constants) the trace of the first burst has decayed to ~8 % when the
next arrives, and such a network sees a sequence of nearly unrelated bursts. With a small
``min_gap`` (bursts that nearly coincide in some classes) networks without delays do well; that
is a different, easier task, and gaps of 40 ms still leave them some lag information. The data
are generated, not recorded; accuracies on them say nothing about any real task.

The generative model:

* The ``n_channels`` inputs form ``n_groups`` contiguous groups of (nearly) equal size.
* The class lag table ``lags[class, group]`` (ms) depends only on ``seed`` and the table's own
  arguments. Lags are multiples of ``lag_step`` in ``[0, max_lag]``, the earliest group of each
  class at 0, any two groups of a class at least ``min_gap`` apart; the table's rows are distinct
  draws from these patterns. Only relative lags define a class (a common shift does not), and
  because rows are distinct points of the ``lag_step`` grid, any two classes a, b have groups
  g, h with ``|(lags[a, g] - lags[a, h]) - (lags[b, g] - lags[b, h])| >= lag_step``. With the
  defaults (2 groups) a class is one signed lag, +-50, +-60, ... or +-100 ms; 10 of these 12.
* A sample of class c has an onset ``t0`` uniform in ``[onset_min, onset_max]`` (a range wider
  than ``max_lag``, so absolute time says little about the class). Group g bursts at
  ``t0 + lags[c, g] + jitter * N(0, 1)`` (one gaussian jitter per sample and group): each of its
  channels fires Poisson(``burst_spikes``) spikes, each uniform in ``[0, burst_width)`` ms after
  the burst time. The expected spike count per channel is therefore the same for every class.
* Background noise: uniform spikes over all channels and the whole duration, Poisson-many, so
  that on average ``noise_fraction`` of all spikes are noise.
* Labels are balanced (each class ``n // n_classes`` or one more times) and shuffled. Spike
  times are floored onto the ``dt`` grid; the rare jittered spike that falls outside
  ``[0, duration)`` is clipped onto its first or last step.

Readouts that weight time carry information a network without delays can use as a clock: with
``exp_mean_v`` the contributions of the two bursts are weighted by ``exp(-t / duration)``, whose
ratio depends on the lag, and ``sum_v`` truncates the response to a burst near the end of a
sample. For a baseline without delays prefer ``max_v`` (or ``sum_v`` with a tail after
``onset_max + max_lag`` of a few membrane time constants).

Generation is vectorised numpy: the default 3000 + 1000 samples take about 0.1 s. Each split is
drawn from its own random stream, so split sizes can change without changing the other splits
or the classes. ``meta`` carries the lag table (``meta["lags"]``, ms) and the channel groups
(``meta["groups"]``, group of each channel).
"""

from __future__ import annotations

import numpy as np

from eventkit.data.spikes import DatasetSplits, SpikeData

_DRAWS = 20_000  # random lag patterns drawn to pick the table's distinct rows from


def channel_groups(n_channels: int, n_groups: int) -> np.ndarray:
    """Group index of each channel: ``n_groups`` contiguous blocks of (nearly) equal size."""
    return (np.arange(n_channels) * n_groups // n_channels).astype(np.int64)


def relative_lag_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest difference in a relative lag (``lag_g - lag_h`` over group pairs) between lag
    vectors ``a`` and ``b`` (broadcast over leading axes): max(a - b) - min(a - b)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return d.max(axis=-1) - d.min(axis=-1)


def make_lag_table(
    rng: np.random.Generator,
    *,
    n_classes: int,
    n_groups: int,
    max_lag: float,
    lag_step: float,
    min_gap: float,
) -> np.ndarray:
    """``lags[class, group]`` in ms: distinct random patterns of lags on the ``lag_step`` grid in
    ``[0, max_lag]``, each shifted so its earliest group is at 0, with every two groups of a
    pattern at least ``min_gap`` apart."""
    n_grid = int(np.floor(max_lag / lag_step + 1e-9)) + 1
    k = rng.integers(0, n_grid, size=(_DRAWS, n_groups))
    k -= k.min(axis=1, keepdims=True)
    g, h = np.triu_indices(n_groups, 1)
    k = k[np.abs(k[:, g] - k[:, h]).min(axis=1) * lag_step >= min_gap - 1e-9]
    _, first = np.unique(k, axis=0, return_index=True)  # distinct patterns, in order of drawing
    table = k[np.sort(first)[:n_classes]] * float(lag_step)
    if len(table) < n_classes:
        raise ValueError(
            f"timing_lags: cannot form {n_classes} distinct lag patterns of {n_groups} groups on a "
            f"{lag_step} ms grid in [0, {max_lag}] ms with min_gap={min_gap} ms (found "
            f"{len(table)}); raise max_lag, or lower n_classes, lag_step or min_gap"
        )
    return table


def generate(
    n: int,
    rng: np.random.Generator,
    lags: np.ndarray,
    *,
    n_channels: int,
    dt: float,
    duration: float,
    onset_min: float,
    onset_max: float,
    jitter: float,
    burst_width: float,
    burst_spikes: float,
    noise_fraction: float,
) -> SpikeData:
    """``n`` samples with balanced, shuffled labels over the classes of ``lags``."""
    n_classes, n_groups = lags.shape
    n_steps = int(round(duration / dt))
    group = channel_groups(n_channels, n_groups)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % n_classes)

    # burst spikes: per (sample, channel) a Poisson count, each spike uniform in its burst
    onset = rng.uniform(onset_min, onset_max, size=n)
    burst_time = onset[:, None] + lags[labels] + jitter * rng.standard_normal((n, n_groups))
    counts = rng.poisson(burst_spikes, size=(n, n_channels)).ravel()
    cell = np.repeat(np.arange(n * n_channels), counts)  # sample * n_channels + channel
    b_sample, b_channel = np.divmod(cell, n_channels)
    b_time = burst_time[b_sample, group[b_channel]] + burst_width * rng.random(cell.size)

    # background: uniform over channels and time
    noise_mean = noise_fraction / (1.0 - noise_fraction) * burst_spikes * n_channels
    n_noise = rng.poisson(noise_mean, size=n)
    u_sample = np.repeat(np.arange(n), n_noise)
    u_channel = rng.integers(0, n_channels, size=u_sample.size)
    u_time = duration * rng.random(u_sample.size)

    sample = np.concatenate([b_sample, u_sample])
    channels = np.concatenate([b_channel, u_channel])
    steps = np.clip(np.floor(np.concatenate([b_time, u_time]) / dt), 0, n_steps - 1).astype(np.int64)
    order = np.argsort(sample * n_steps + steps, kind="stable")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sample, minlength=n), out=offsets[1:])
    return SpikeData(
        offsets, steps[order], channels[order], labels, n_channels, n_steps, float(dt), n_classes,
        {"dataset": "timing_lags", "synthetic": True, "lags": lags.tolist(),
         "groups": group.tolist()},
    )  # fmt: skip


def timing_lags(
    n_train: int = 3000,
    n_val: int = 0,
    n_test: int = 1000,
    n_classes: int = 10,
    n_channels: int = 48,
    n_groups: int = 2,
    dt: float = 1.0,
    duration: float = 300.0,
    max_lag: float = 100.0,
    lag_step: float = 10.0,
    min_gap: float = 50.0,
    onset_min: float = 10.0,
    onset_max: float = 150.0,
    jitter: float = 1.5,
    burst_width: float = 4.0,
    burst_spikes: float = 3.0,
    noise_fraction: float = 0.2,
    seed: int = 0,
) -> DatasetSplits:
    """Dataset factory (registered as ``timing_lags``). SYNTHETIC data, see the module doc.

    The lag table depends only on ``seed`` (and n_classes, n_groups, max_lag, lag_step,
    min_gap);
    each split is drawn from its own stream.
    """
    for key, value in (("n_train", n_train), ("n_test", n_test), ("n_classes", n_classes),
                       ("n_channels", n_channels)):  # fmt: skip
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"timing_lags: {key} must be a positive integer, got {value!r}")
    if not isinstance(n_val, (int, np.integer)) or n_val < 0:
        raise ValueError(f"timing_lags: n_val must be a non-negative integer, got {n_val!r}")
    if n_classes < 2:
        raise ValueError(f"timing_lags: n_classes must be >= 2, got {n_classes}")
    if not isinstance(n_groups, (int, np.integer)) or not 2 <= n_groups <= n_channels:
        raise ValueError(
            f"timing_lags: n_groups must be an integer in [2, n_channels={n_channels}] (lags are "
            f"relative between groups), got {n_groups!r}"
        )
    if dt <= 0 or duration <= 0:
        raise ValueError(f"timing_lags: dt and duration must be > 0 ms, got {dt}, {duration}")
    if abs(duration / dt - round(duration / dt)) > 1e-6:
        raise ValueError(f"timing_lags: duration ({duration}) must be a multiple of dt ({dt})")
    if max_lag <= 0:
        raise ValueError(f"timing_lags: max_lag must be > 0 ms, got {max_lag}")
    if not 0 < lag_step <= max_lag:
        raise ValueError(f"timing_lags: lag_step must lie in (0, max_lag={max_lag}] ms, got {lag_step}")
    if min_gap < 0 or (n_groups - 1) * min_gap > max_lag:
        raise ValueError(
            f"timing_lags: min_gap must lie in [0, max_lag / (n_groups - 1) = "
            f"{max_lag / (n_groups - 1):g}] ms so {n_groups} groups fit in max_lag, got {min_gap}"
        )
    if jitter < 0:
        raise ValueError(f"timing_lags: jitter must be >= 0 ms, got {jitter}")
    if burst_width <= 0:
        raise ValueError(f"timing_lags: burst_width must be > 0 ms, got {burst_width}")
    if burst_spikes <= 0:
        raise ValueError(
            f"timing_lags: burst_spikes (mean spikes per channel per burst) must be > 0, " f"got {burst_spikes}"
        )
    if not 0.0 <= noise_fraction < 1.0:
        raise ValueError(f"timing_lags: noise_fraction must lie in [0, 1), got {noise_fraction}")
    if not 0.0 <= onset_min <= onset_max:
        raise ValueError(
            f"timing_lags: need 0 <= onset_min <= onset_max, got onset_min={onset_min}, " f"onset_max={onset_max}"
        )
    latest = onset_max + max_lag + burst_width + 3.0 * jitter
    if latest > duration:
        raise ValueError(
            f"timing_lags: onset_max + max_lag + burst_width + 3 * jitter = {latest:g} ms must fit "
            f"in duration={duration:g} ms; raise duration or lower onset_max or max_lag"
        )
    table_ss, train_ss, val_ss, test_ss = np.random.SeedSequence(int(seed)).spawn(4)
    lags = make_lag_table(
        np.random.default_rng(table_ss),
        n_classes=n_classes,
        n_groups=n_groups,
        max_lag=max_lag,
        lag_step=lag_step,
        min_gap=min_gap,
    )
    kw = dict(n_channels=n_channels, dt=dt, duration=duration, onset_min=onset_min,
              onset_max=onset_max, jitter=jitter, burst_width=burst_width,
              burst_spikes=burst_spikes, noise_fraction=noise_fraction)  # fmt: skip
    train = generate(n_train, np.random.default_rng(train_ss), lags, **kw)
    test = generate(n_test, np.random.default_rng(test_ss), lags, **kw)
    val = generate(n_val, np.random.default_rng(val_ss), lags, **kw) if n_val else None
    return DatasetSplits(train=train, test=test, val=val)
