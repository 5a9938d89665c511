"""A SYNTHETIC keyword-spotting dataset shaped like SHD (not recorded speech).

Use it where the real Spiking Heidelberg Digits are absent (tests, benchmarks, first steps): it
has SHD's shape -- 700 input channels, 1000 steps of 1 ms, about 8 input spikes per ms per
sample, 20 classes, 8156 / 2264 train / test samples -- but its spikes are drawn from a simple
generative model, so accuracies on it say nothing about accuracy on SHD.

The generative model, loosely after spoken words seen through a cochlea model:

* A pool of ``n_syllables`` "syllables"; each is ``n_formants`` bands of activity whose centre
  channel glides linearly from a start to an end channel while the syllable lasts.
* A class ("word") is an ordered sequence of ``syllables_per_word`` syllables. Classes come in
  pairs that use the SAME syllables in a different order: their time-summed channel histograms
  match, so a rate-only classifier confuses them and a network must use spike timing.
* Each sample varies the word: onset time, overall speed (``time_warp``), syllable durations,
  a per-sample channel shift (``speaker_shift``, like a speaker's pitch), band width,
  loudness, and uniform background spikes (``noise_fraction`` of all spikes).

Generation is vectorised over all spikes of a chunk of samples and needs no sort: spike times
are drawn as sorted uniforms (normalised cumulative sums of exponentials) pushed through the
inverse cumulative intensity, so they come out in time order. 8156 samples take a few seconds.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from eventkit.data.spikes import DatasetSplits, SpikeData, concat

_CHUNK = 1024  # samples generated at once (bounds memory to ~ chunk x spikes per sample)


def make_vocabulary(
    rng: np.random.Generator,
    *,
    n_classes: int,
    n_syllables: int,
    syllables_per_word: int,
    n_formants: int,
    n_channels: int,
) -> dict:
    """Syllable pool (formant glides) and each class's syllable sequence."""
    if syllables_per_word < 2:
        raise ValueError("syllables_per_word must be >= 2 so paired classes can differ in order")
    if n_syllables < syllables_per_word:
        raise ValueError(f"n_syllables ({n_syllables}) must be >= syllables_per_word ({syllables_per_word})")
    # formant f of every syllable lives in its own band of the channel axis
    lo, hi = 0.08 * n_channels, 0.92 * n_channels
    edges = np.linspace(lo, hi, n_formants + 1)
    start = rng.uniform(edges[:-1], edges[1:], size=(n_syllables, n_formants))
    glide = rng.uniform(-1.0, 1.0, size=(n_syllables, n_formants)) * 0.12 * n_channels
    end = np.clip(start + glide, lo, hi)
    weight = rng.dirichlet(np.full(n_formants, 4.0), size=n_syllables)
    words: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    attempts = 0
    while len(words) < n_classes:
        attempts += 1
        if attempts > 10_000:
            raise ValueError(
                f"cannot form {n_classes} distinct words from {n_syllables} syllables; " f"raise n_syllables"
            )
        base = tuple(int(s) for s in rng.choice(n_syllables, size=syllables_per_word, replace=False))
        partner = base[1:] + base[:1]  # same syllables, rotated order
        group = [base, partner] if len(words) + 1 < n_classes else [base]
        if any(w in seen for w in group):
            continue
        words.extend(group)
        seen.update(group)
    return {
        "start": start,
        "end": end,
        "weight": weight,
        "words": np.array(words, dtype=np.int64),
    }


def generate(
    n: int,
    rng: np.random.Generator,
    vocab: dict,
    *,
    n_channels: int = 700,
    dt: float = 1.0,
    duration: float = 1000.0,
    rate: float = 8.0,
    noise_fraction: float = 0.3,
    word_length: float = 600.0,
    time_warp: float = 0.2,
    speaker_shift: float = 20.0,
    formant_width: float = 6.0,
) -> SpikeData:
    """``n`` samples with labels drawn uniformly over the vocabulary's classes."""
    parts = [
        _generate_chunk(min(_CHUNK, n - a), rng, vocab, n_channels, dt, duration, rate,
                        noise_fraction, word_length, time_warp, speaker_shift, formant_width)
        for a in range(0, n, _CHUNK)
    ]  # fmt: skip
    return concat(parts)


def _generate_chunk(n, rng, vocab, n_channels, dt, duration, rate, noise_fraction, word_length,
                    time_warp, speaker_shift, formant_width) -> SpikeData:  # fmt: skip
    words = vocab["words"]
    n_classes, n_syl = words.shape
    labels = rng.integers(0, n_classes, size=n)

    # per-sample variation
    length = np.minimum(word_length * rng.uniform(1 - time_warp, 1 + time_warp, n), 0.9 * duration)
    onset = rng.uniform(0.03 * duration, duration - length)
    gain = rng.uniform(0.8, 1.2, n)
    shift = rng.normal(0.0, speaker_shift, n)
    width = formant_width * rng.uniform(0.8, 1.25, n)
    bounds = np.cumsum(rng.dirichlet(np.full(n_syl, 12.0), size=n), axis=1)  # syllable ends in [0,1]
    bounds[:, -1] = 1.0
    total = rate * duration * gain
    counts = rng.poisson(total)
    in_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=in_offsets[1:])
    m = int(in_offsets[-1])

    # per-spike randomness, drawn in bulk (the kernel below is deterministic)
    gaps = rng.standard_exponential(m + n, dtype=np.float32)  # counts[k] + 1 gaps per sample
    coin = rng.random(m, dtype=np.float32)
    normal = rng.standard_normal(m, dtype=np.float32)

    steps = np.empty(m, dtype=np.int32)
    channels = np.empty(m, dtype=np.int32)
    valid = np.empty(m, dtype=np.bool_)
    n_steps = int(round(duration / dt))
    _place_spikes(
        in_offsets, gaps, coin, normal, labels, words, vocab["start"], vocab["end"],
        np.cumsum(vocab["weight"], axis=1), onset, length, bounds, shift, width,
        noise_fraction * total / duration, (1.0 - noise_fraction) * total / length,
        float(duration), float(dt), n_steps, n_channels, steps, channels, valid,
    )  # fmt: skip
    sample = np.repeat(np.arange(n), counts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sample[valid], minlength=n), out=offsets[1:])
    return SpikeData(
        offsets, steps[valid], channels[valid], labels, n_channels, n_steps, float(dt), n_classes,
        {"dataset": "synthetic_kws", "synthetic": True},
    )  # fmt: skip


@numba.njit(parallel=True, cache=True, nogil=True)
def _place_spikes(in_offsets, gaps, coin, normal, labels, words, f_start, f_end, f_cum_weight,
                  onset, length, bounds, shift, width, a, b, duration, dt, n_steps, n_channels,
                  steps, channels, valid):  # fmt: skip
    """Turn per-spike random numbers into (step, channel) in time order, one sample per task.

    Times: sorted uniforms u (normalised cumulative sums of exponential gaps) mapped through the
    inverse of the cumulative intensity  L(t) = a t + b clip(t - onset, 0, length)  (noise at
    rate a everywhere, the word at rate b within it). A spike inside the word is a word spike
    with probability b / (a + b); word spikes sit on a formant of the current syllable.
    """
    n_syl = words.shape[1]
    n_formants = f_start.shape[1]
    for k in numba.prange(in_offsets.size - 1):
        lo = in_offsets[k]
        hi = in_offsets[k + 1]
        g0 = lo + k  # this sample's gaps start here (one extra gap per sample)
        span = 0.0
        for j in range(g0, g0 + (hi - lo) + 1):
            span += gaps[j]
        ak = a[k]
        bk = b[k]
        on = onset[k]
        ln = length[k]
        v_total = ak * duration + bk * ln
        v_on = ak * on
        v_off = v_on + (ak + bk) * ln
        p_word = bk / (ak + bk)
        word = words[labels[k]]
        acc = 0.0
        for i in range(hi - lo):
            acc += gaps[g0 + i]
            v = acc / span * v_total
            j = lo + i
            c = coin[j]
            if v < v_on:
                t = v / ak
                is_word = False
            elif v < v_off:
                t = on + (v - v_on) / (ak + bk)
                is_word = c < p_word
            else:
                t = on + ln + (v - v_off) / ak
                is_word = False
            if is_word:
                pos = (t - on) / ln
                seg = 0
                while seg < n_syl - 1 and pos >= bounds[k, seg]:
                    seg += 1
                seg_lo = bounds[k, seg - 1] if seg > 0 else 0.0
                r = (pos - seg_lo) / max(bounds[k, seg] - seg_lo, 1e-9)
                r = min(max(r, 0.0), 1.0)
                syl = word[seg]
                pick = c / p_word  # reuse the coin: uniform in [0, 1) given is_word
                f = 0
                while f < n_formants - 1 and pick >= f_cum_weight[syl, f]:
                    f += 1
                centre = f_start[syl, f] + (f_end[syl, f] - f_start[syl, f]) * r
                ch = math.floor(centre + shift[k] + width[k] * normal[j])
            else:
                # noise: the coin is uniform on [p_word, 1) inside the word, [0, 1) outside
                u = (c - p_word) / (1.0 - p_word) if v_on <= v < v_off else c
                ch = math.floor(u * n_channels)
            st = math.floor(t / dt)
            steps[j] = min(st, n_steps - 1)
            channels[j] = ch
            valid[j] = 0 <= ch < n_channels


def synthetic_kws(
    n_train: int = 8156,
    n_val: int = 0,
    n_test: int = 2264,
    n_classes: int = 20,
    n_channels: int = 700,
    dt: float = 1.0,
    duration: float = 1000.0,
    rate: float = 8.0,
    noise_fraction: float = 0.3,
    n_syllables: int = 12,
    syllables_per_word: int = 3,
    n_formants: int = 3,
    word_length: float = 600.0,
    time_warp: float = 0.2,
    speaker_shift: float = 20.0,
    formant_width: float = 6.0,
    seed: int = 0,
) -> DatasetSplits:
    """Dataset factory (registered as ``synthetic_kws``). SYNTHETIC data, see the module doc.

    The vocabulary (what each class sounds like) depends only on ``seed``; each split is drawn
    from its own stream, so sizes can change without changing the classes.
    """
    for key, value in (("n_train", n_train), ("n_test", n_test), ("n_classes", n_classes),
                       ("n_channels", n_channels), ("n_syllables", n_syllables),
                       ("n_formants", n_formants)):  # fmt: skip
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"synthetic_kws: {key} must be a positive integer, got {value!r}")
    if not isinstance(n_val, (int, np.integer)) or n_val < 0:
        raise ValueError(f"synthetic_kws: n_val must be a non-negative integer, got {n_val!r}")
    if dt <= 0 or duration <= 0:
        raise ValueError(f"synthetic_kws: dt and duration must be > 0 ms, got {dt}, {duration}")
    if abs(duration / dt - round(duration / dt)) > 1e-6:
        raise ValueError(f"synthetic_kws: duration ({duration}) must be a multiple of dt ({dt})")
    if rate <= 0:
        raise ValueError(f"synthetic_kws: rate (spikes per ms per sample) must be > 0, got {rate}")
    if not 0.0 < noise_fraction < 1.0:
        raise ValueError(f"synthetic_kws: noise_fraction must lie in (0, 1), got {noise_fraction}")
    if not 0.0 < word_length < duration:
        raise ValueError(f"synthetic_kws: word_length ({word_length} ms) must lie in (0, duration={duration})")
    if not 0.0 <= time_warp < 0.5:
        raise ValueError(f"synthetic_kws: time_warp must lie in [0, 0.5), got {time_warp}")
    if speaker_shift < 0 or formant_width <= 0:
        raise ValueError("synthetic_kws: speaker_shift must be >= 0 and formant_width > 0")
    vocab_ss, train_ss, val_ss, test_ss = np.random.SeedSequence(int(seed)).spawn(4)
    vocab = make_vocabulary(
        np.random.default_rng(vocab_ss),
        n_classes=n_classes,
        n_syllables=n_syllables,
        syllables_per_word=syllables_per_word,
        n_formants=n_formants,
        n_channels=n_channels,
    )
    kw = dict(n_channels=n_channels, dt=dt, duration=duration, rate=rate,
              noise_fraction=noise_fraction, word_length=word_length, time_warp=time_warp,
              speaker_shift=speaker_shift, formant_width=formant_width)  # fmt: skip
    train = generate(n_train, np.random.default_rng(train_ss), vocab, **kw)
    test = generate(n_test, np.random.default_rng(test_ss), vocab, **kw)
    val = generate(n_val, np.random.default_rng(val_ss), vocab, **kw) if n_val else None
    return DatasetSplits(train=train, test=test, val=val)
