"""Per-epoch augmentations of spike lists, seeded by a numpy Generator.

Each augmentation is a small callable object, ``aug(data, rng) -> SpikeData``, built by a factory
from its config keys (``shift(max_shift=40)``); the registry names are ``shift``, ``blend``,
``delay_line`` and ``jitter``. They work on the compact CSR spike lists with compiled kernels
that run parallel over samples and touch each spike a constant number of times, so augmenting
an SSC-sized epoch costs seconds at most, small next to training on it.

Randomness: the Generator passed in supplies the per-sample choices and one 64-bit key per
call; per-spike coin flips and jitter come from a counter-based hash of (key, sample, spike),
so results do not depend on how samples are split over threads. Same Generator state, same
result.

``train_only`` on an augmentation says whether it is a random perturbation for training
(True) or a deterministic change of the input representation that evaluation data must see
too (False: ``delay_line`` adds input channels, so the test set needs the same copies).

Every result keeps spikes sorted by step within each sample: where spikes move in time or
several lists meet (blend's parts, delay_line's copies, jitter), each sample is rebuilt with a
stable counting sort over its steps -- linear in spikes plus steps, no comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numba
import numpy as np

from eventkit.data import SpikeData
from eventkit.base.hookspecs import hookimpl

Augmentation = Callable[[SpikeData, np.random.Generator], SpikeData]


# ----------------------------------------------------------------------------- helpers


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _offsets(counts: np.ndarray, start: int = 0) -> np.ndarray:
    offsets = np.empty(counts.size + 1, dtype=np.int64)
    offsets[0] = start
    np.cumsum(counts, out=offsets[1:])
    offsets[1:] += start
    return offsets


def _key(rng: np.random.Generator) -> np.uint64:
    return np.uint64(rng.integers(0, 2**63, dtype=np.int64))


@numba.njit(inline="always")
def _hash_uniform(key, a, b):
    """Uniform in [0, 1) from (key, a, b) via splitmix64 finalisation (counter-based, no state)."""
    x = key ^ (np.uint64(a) * np.uint64(0x9E3779B97F4A7C15)) ^ (np.uint64(b) * np.uint64(0xC2B2AE3D27D4EB4F))
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return np.float64(x >> np.uint64(11)) * (1.0 / 9007199254740992.0)


# ----------------------------------------------------------------------------- shift


@dataclass(frozen=True)
class Shift:
    """Move every spike of a sample by one random integer number of channels.

    The shift is drawn per sample, uniformly from ``[-max_shift, max_shift]``; spikes pushed
    outside ``[0, n_channels)`` are dropped (not wrapped), as in the published SHD recipe.
    """

    max_shift: int = 40
    train_only = True

    def __post_init__(self):
        _check_int("shift: max_shift", self.max_shift, 0)

    def __call__(self, data: SpikeData, rng: np.random.Generator) -> SpikeData:
        delta = rng.integers(-self.max_shift, self.max_shift + 1, size=len(data)).astype(np.int32)
        counts = np.empty(len(data), dtype=np.int64)
        _shift_count(data.offsets, data.channels, delta, data.n_channels, counts)
        offsets = _offsets(counts)
        steps = np.empty(offsets[-1], dtype=np.int32)
        channels = np.empty(offsets[-1], dtype=np.int32)
        _shift_write(data.offsets, data.steps, data.channels, delta, data.n_channels, offsets, steps, channels)
        return replace(data, offsets=offsets, steps=steps, channels=channels)


@numba.njit(parallel=True, cache=True, nogil=True)
def _shift_count(offsets, channels, delta, n_channels, counts):
    for k in numba.prange(offsets.size - 1):
        n = 0
        d = delta[k]
        for j in range(offsets[k], offsets[k + 1]):
            c = channels[j] + d
            if 0 <= c < n_channels:
                n += 1
        counts[k] = n


@numba.njit(parallel=True, cache=True, nogil=True)
def _shift_write(offsets, steps, channels, delta, n_channels, out_offsets, out_steps, out_channels):
    for k in numba.prange(offsets.size - 1):
        w = out_offsets[k]
        d = delta[k]
        for j in range(offsets[k], offsets[k + 1]):
            c = channels[j] + d
            if 0 <= c < n_channels:
                out_steps[w] = steps[j]
                out_channels[w] = c
                w += 1


# ----------------------------------------------------------------------------- blend


@dataclass(frozen=True)
class Blend:
    """Append ``n_extra`` same-class mixtures of ``n_mix`` samples each.

    For each extra sample a random sample and ``n_mix - 1`` random partners of the same class
    (other than the sample itself, unless it is alone in its class) are drawn; each part is
    moved (in time and channel) so that its centre of mass lands on the mean of the parts'
    centres of mass, and each of its spikes is kept with probability
    ``p_keep``. ``n_extra`` defaults to the size of the data (the epoch doubles). The original
    samples come first, unchanged; the mixtures follow.
    """

    n_extra: int | None = None
    p_keep: float = 0.5
    n_mix: int = 2
    train_only = True

    def __post_init__(self):
        if self.n_extra is not None:
            _check_int("blend: n_extra", self.n_extra, 0)
        if _check_int("blend: n_mix", self.n_mix, 1) > 64:
            raise ValueError(f"blend: n_mix must be <= 64, got {self.n_mix}")
        if not 0.0 < self.p_keep <= 1.0:
            raise ValueError(f"blend: p_keep must lie in (0, 1], got {self.p_keep!r}")

    def __call__(self, data: SpikeData, rng: np.random.Generator) -> SpikeData:
        n_extra = len(data) if self.n_extra is None else self.n_extra
        if n_extra == 0 or len(data) == 0:
            return data
        # parts: an anchor, then partners drawn uniformly within the anchor's class
        by_class = np.argsort(data.labels, kind="stable")
        class_start = np.searchsorted(data.labels[by_class], np.arange(data.n_classes))
        class_size = np.bincount(data.labels, minlength=data.n_classes)
        rank = np.empty(len(data), dtype=np.int64)  # position of each sample within its class
        rank[by_class] = np.arange(len(data)) - class_start[data.labels[by_class]]
        anchor = rng.integers(0, len(data), size=n_extra)
        cls = data.labels[anchor]
        size = class_size[cls]
        partners = []
        for _ in range(self.n_mix - 1):
            # uniform over the class without the anchor (the anchor itself if it is alone)
            r = rng.integers(0, np.maximum(size - 1, 1))
            r = np.where((size > 1) & (r >= rank[anchor]), r + 1, r)
            partners.append(by_class[class_start[cls] + r])
        parts = np.stack([anchor] + partners).astype(np.int64)  # (n_mix, n_extra)
        com_t, com_c = centres_of_mass(data)
        shift_t = np.rint(com_t[parts].mean(axis=0) - com_t[parts]).astype(np.int32)
        shift_c = np.rint(com_c[parts].mean(axis=0) - com_c[parts]).astype(np.int32)
        key = _key(rng)
        lengths = np.diff(data.offsets)
        flag_offsets = _offsets(lengths[parts].sum(axis=0))
        flags = np.empty(flag_offsets[-1], dtype=np.bool_)
        counts = np.empty(n_extra, dtype=np.int64)
        _blend_count(data.offsets, data.steps, data.channels, parts, shift_t, shift_c, data.n_steps,
                     data.n_channels, float(self.p_keep), key, flag_offsets, flags, counts)  # fmt: skip
        n0 = data.n_spikes
        extra_offsets = _offsets(counts, start=n0)
        steps = np.empty(extra_offsets[-1], dtype=np.int32)
        channels = np.empty(extra_offsets[-1], dtype=np.int32)
        steps[:n0] = data.steps
        channels[:n0] = data.channels
        _blend_write(data.offsets, data.steps, data.channels, parts, shift_t, shift_c, data.n_steps,
                     flag_offsets, flags, extra_offsets, steps, channels)  # fmt: skip
        return replace(
            data,
            offsets=np.concatenate([data.offsets, extra_offsets[1:]]),
            steps=steps,
            channels=channels,
            labels=np.concatenate([data.labels, cls]),
        )


@numba.njit(parallel=True, cache=True, nogil=True)
def _blend_count(offsets, steps, channels, parts, shift_t, shift_c, n_steps, n_channels, p_keep, key,
                 flag_offsets, flags, counts):  # fmt: skip
    """Decide which spike of each part survives (in range and a hashed coin below p_keep);
    flags[flag_offsets[e] + i] is the decision for the i-th spike of extra sample e's parts."""
    n_mix = parts.shape[0]
    for e in numba.prange(parts.shape[1]):
        n = 0
        f = flag_offsets[e]
        for q in range(n_mix):
            src = parts[q, e]
            a = offsets[src]
            dt = shift_t[q, e]
            dc = shift_c[q, e]
            for j in range(a, offsets[src + 1]):
                st = steps[j] + dt
                ch = channels[j] + dc
                keep = (
                    st >= 0 and st < n_steps and ch >= 0 and ch < n_channels
                    and _hash_uniform(key, e * 64 + q, j - a) < p_keep
                )  # fmt: skip
                flags[f] = keep
                f += 1
                n += keep
        counts[e] = n


@numba.njit(parallel=True, cache=True, nogil=True)
def _blend_write(offsets, steps, channels, parts, shift_t, shift_c, n_steps, flag_offsets, flags,
                 out_offsets, out_steps, out_channels):  # fmt: skip
    """Per extra sample: gather the kept spikes of its parts (branch-free compaction: the coin
    flips are random, so a branch per spike would be mispredicted half the time), then place
    them in step order with a counting sort (stable: part 0 first within a step)."""
    n_mix = parts.shape[0]
    for e in numba.prange(parts.shape[1]):
        n_in = flag_offsets[e + 1] - flag_offsets[e]
        local_s = np.empty(n_in, np.int64)
        local_c = np.empty(n_in, np.int32)
        n = 0
        f = flag_offsets[e]
        for q in range(n_mix):
            src = parts[q, e]
            dt = shift_t[q, e]
            dc = shift_c[q, e]
            for j in range(offsets[src], offsets[src + 1]):
                local_s[n] = steps[j] + dt
                local_c[n] = channels[j] + dc
                n += flags[f]
                f += 1
        first = np.zeros(n_steps + 1, np.int64)
        for i in range(n):
            first[local_s[i] + 1] += 1
        for t in range(n_steps):
            first[t + 1] += first[t]  # first[t] = slot of the first spike at step t
        base = out_offsets[e]
        for i in range(n):
            st = local_s[i]
            w = base + first[st]
            out_steps[w] = st
            out_channels[w] = local_c[i]
            first[st] += 1


def centres_of_mass(data: SpikeData) -> tuple[np.ndarray, np.ndarray]:
    """Mean step and mean channel of each sample (the grid centre for an empty sample)."""
    com_t = np.empty(len(data))
    com_c = np.empty(len(data))
    _com_kernel(data.offsets, data.steps, data.channels, (data.n_steps - 1) / 2, (data.n_channels - 1) / 2,
                com_t, com_c)  # fmt: skip
    return com_t, com_c


@numba.njit(parallel=True, cache=True, nogil=True)
def _com_kernel(offsets, steps, channels, empty_t, empty_c, com_t, com_c):
    for k in numba.prange(offsets.size - 1):
        a = offsets[k]
        b = offsets[k + 1]
        if b == a:
            com_t[k] = empty_t
            com_c[k] = empty_c
            continue
        st = 0
        sc = 0
        for j in range(a, b):
            st += steps[j]
            sc += channels[j]
        com_t[k] = st / (b - a)
        com_c[k] = sc / (b - a)


# ----------------------------------------------------------------------------- delay line


@dataclass(frozen=True)
class DelayLine:
    """Present the input ``n_copies`` times, copy ``k`` delayed by ``k * delay`` ms.

    Copy ``k`` of channel ``c`` becomes channel ``k * n_channels + c``, so the data gains
    channels (``n_channels * n_copies``) and the network sees a short history of its input at
    every step (the delay-line input of the loss-shaping Eventprop paper: 6 copies, 30 ms).
    Spikes delayed past the end are dropped unless ``extend`` lengthens the trial to keep them.
    Deterministic (``rng`` unused) and not ``train_only``: apply it to every split.
    """

    n_copies: int = 6
    delay: float = 30.0
    extend: bool = False
    train_only = False

    def __post_init__(self):
        _check_int("delay_line: n_copies", self.n_copies, 1)
        if not self.delay >= 0:
            raise ValueError(f"delay_line: delay must be >= 0 ms, got {self.delay!r}")

    def __call__(self, data: SpikeData, rng: np.random.Generator | None = None) -> SpikeData:
        step_delay = int(round(self.delay / data.dt))
        if abs(step_delay * data.dt - self.delay) > 1e-6 * max(1.0, self.delay):
            raise ValueError(f"delay_line: delay ({self.delay} ms) must be a whole number of dt ({data.dt} ms) steps")
        n_steps = data.n_steps + (self.n_copies - 1) * step_delay if self.extend else data.n_steps
        counts = np.empty(len(data), dtype=np.int64)
        _delay_count(data.offsets, data.steps, self.n_copies, step_delay, n_steps, counts)
        offsets = _offsets(counts)
        steps = np.empty(offsets[-1], dtype=np.int32)
        channels = np.empty(offsets[-1], dtype=np.int32)
        _delay_write(data.offsets, data.steps, data.channels, self.n_copies, step_delay, n_steps,
                     data.n_channels, offsets, steps, channels)  # fmt: skip
        return replace(data, offsets=offsets, steps=steps, channels=channels,
                       n_channels=data.n_channels * self.n_copies, n_steps=n_steps)  # fmt: skip


@numba.njit(parallel=True, cache=True, nogil=True)
def _delay_count(offsets, steps, n_copies, step_delay, n_steps, counts):
    for k in numba.prange(offsets.size - 1):
        n = 0
        for j in range(offsets[k], offsets[k + 1]):
            for c in range(n_copies):
                if steps[j] + c * step_delay < n_steps:
                    n += 1
        counts[k] = n


@numba.njit(parallel=True, cache=True, nogil=True)
def _delay_write(offsets, steps, channels, n_copies, step_delay, n_steps, n_channels,
                 out_offsets, out_steps, out_channels):  # fmt: skip
    """Per sample: all copies (copy c delayed by c * step_delay, channels offset by c *
    n_channels) in step order via a counting sort over steps; stable, lower copy first."""
    for k in numba.prange(offsets.size - 1):
        a = offsets[k]
        b = offsets[k + 1]
        first = np.zeros(n_steps + 1, np.int64)
        for c in range(n_copies):
            for j in range(a, b):
                s = steps[j] + c * step_delay
                if s >= n_steps:
                    break  # steps are sorted: the rest of this copy is past the end
                first[s + 1] += 1
        for t in range(n_steps):
            first[t + 1] += first[t]
        base = out_offsets[k]
        for c in range(n_copies):
            for j in range(a, b):
                s = steps[j] + c * step_delay
                if s >= n_steps:
                    break
                w = base + first[s]
                out_steps[w] = s
                out_channels[w] = channels[j] + c * n_channels
                first[s] += 1


# ----------------------------------------------------------------------------- jitter


@dataclass(frozen=True)
class Jitter:
    """Move each spike independently in time by a Gaussian amount (``sigma`` ms, rounded to steps).

    Spikes moved outside ``[0, n_steps)`` are dropped (``clip=False``) or clamped to the edge.
    """

    sigma: float = 1.0
    clip: bool = False
    train_only = True

    def __post_init__(self):
        if not self.sigma >= 0:
            raise ValueError(f"jitter: sigma must be >= 0 ms, got {self.sigma!r}")

    def __call__(self, data: SpikeData, rng: np.random.Generator) -> SpikeData:
        key = _key(rng)
        moved = np.empty(data.n_spikes, dtype=np.int32)
        counts = np.empty(len(data), dtype=np.int64)
        _jitter_steps(data.offsets, data.steps, float(self.sigma) / data.dt, data.n_steps, self.clip, key,
                      moved, counts)  # fmt: skip
        offsets = _offsets(counts)
        steps = np.empty(offsets[-1], dtype=np.int32)
        channels = np.empty(offsets[-1], dtype=np.int32)
        _counting_sort_write(data.offsets, moved, data.channels, data.n_steps, offsets, steps, channels)
        return replace(data, offsets=offsets, steps=steps, channels=channels)


@numba.njit(parallel=True, cache=True, nogil=True)
def _jitter_steps(offsets, steps, sigma_steps, n_steps, clip, key, moved, counts):
    """Jittered step of every spike (Box-Muller: one pair of hashed uniforms per two spikes);
    -1 marks a spike moved out of range. ``counts`` gets the spikes kept per sample."""
    for k in numba.prange(offsets.size - 1):
        a = offsets[k]
        b = offsets[k + 1]
        n = 0
        for j in range(a, b, 2):
            i = j - a
            u1 = _hash_uniform(key, k, i)
            u2 = _hash_uniform(key, k, i + 1)
            r = np.sqrt(-2.0 * np.log(1.0 - u1)) * sigma_steps
            for m in range(2):
                if j + m >= b:
                    break
                z = r * (np.cos(2.0 * np.pi * u2) if m == 0 else np.sin(2.0 * np.pi * u2))
                s = steps[j + m] + np.int64(np.rint(z))
                if clip:
                    s = min(max(s, 0), n_steps - 1)
                if 0 <= s < n_steps:
                    moved[j + m] = s
                    n += 1
                else:
                    moved[j + m] = -1
        counts[k] = n


@numba.njit(parallel=True, cache=True, nogil=True)
def _counting_sort_write(offsets, steps, channels, n_steps, out_offsets, out_steps, out_channels):
    """Per sample: spikes with step >= 0 into the output range, stably sorted by step."""
    for k in numba.prange(offsets.size - 1):
        a = offsets[k]
        b = offsets[k + 1]
        first = np.zeros(n_steps + 1, np.int64)
        for j in range(a, b):
            if steps[j] >= 0:
                first[steps[j] + 1] += 1
        for t in range(n_steps):
            first[t + 1] += first[t]
        base = out_offsets[k]
        for j in range(a, b):
            s = steps[j]
            if s >= 0:
                w = base + first[s]
                out_steps[w] = s
                out_channels[w] = channels[j]
                first[s] += 1


# ----------------------------------------------------------------------------- composition + factories


@dataclass(frozen=True)
class Compose:
    """Apply augmentations in order, all drawing from the same generator."""

    steps: tuple[Augmentation, ...]

    @property
    def train_only(self) -> bool:
        return all(getattr(s, "train_only", True) for s in self.steps)

    def __call__(self, data: SpikeData, rng: np.random.Generator) -> SpikeData:
        for aug in self.steps:
            data = aug(data, rng)
        return data


def compose(augmentations: Sequence[Augmentation]) -> Compose:
    return Compose(tuple(augmentations))


def shift(max_shift: int = 40) -> Shift:
    """Factory for ``shift``."""
    return Shift(max_shift=max_shift)


def blend(n_extra: int | None = None, p_keep: float = 0.5, n_mix: int = 2) -> Blend:
    """Factory for ``blend``."""
    return Blend(n_extra=n_extra, p_keep=p_keep, n_mix=n_mix)


def delay_line(n_copies: int = 6, delay: float = 30.0, extend: bool = False) -> DelayLine:
    """Factory for ``delay_line``."""
    return DelayLine(n_copies=n_copies, delay=delay, extend=extend)


def jitter(sigma: float = 1.0, clip: bool = False) -> Jitter:
    """Factory for ``jitter``."""
    return Jitter(sigma=sigma, clip=clip)


@hookimpl
def register_augmentations(register):
    register("shift", shift, "random per-sample channel shift in [-max_shift, max_shift], spikes out of range dropped")
    register("blend", blend, "extra same-class mixtures aligned on centres of mass, each spike kept with p_keep")
    register("delay_line", delay_line, "n_copies of the input delayed by k * delay ms on new channels (all splits)")
    register("jitter", jitter, "Gaussian time jitter of each spike (sigma ms)")
