"""Spike data on the dt grid: the one format datasets, augmentations and the engine share.

A set of samples is stored as compressed rows (CSR): the spikes of sample ``k`` are
``steps[offsets[k]:offsets[k+1]]`` (time step, ``0 <= step < n_steps``) and
``channels[offsets[k]:offsets[k+1]]`` (input neuron, ``0 <= channel < n_channels``), sorted by
step within a sample. Memory is proportional to the number of spikes, never to T x channels.
A (step, channel) pair may repeat: each occurrence is one spike.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numba
import numpy as np


@dataclass(frozen=True)
class SpikeData:
    offsets: np.ndarray  # int64 [N + 1]
    steps: np.ndarray  # int32 [n_spikes]
    channels: np.ndarray  # int32 [n_spikes]
    labels: np.ndarray  # int64 [N]
    n_channels: int
    n_steps: int
    dt: float  # ms per step
    n_classes: int
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "offsets", np.ascontiguousarray(self.offsets, dtype=np.int64))
        object.__setattr__(self, "steps", np.ascontiguousarray(self.steps, dtype=np.int32))
        object.__setattr__(self, "channels", np.ascontiguousarray(self.channels, dtype=np.int32))
        object.__setattr__(self, "labels", np.ascontiguousarray(self.labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_spikes(self) -> int:
        return int(self.offsets[-1])

    def sample(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps, channels) of sample ``k``."""
        a, b = self.offsets[k], self.offsets[k + 1]
        return self.steps[a:b], self.channels[a:b]

    def subset(self, index: Sequence[int] | np.ndarray) -> "SpikeData":
        """The samples at ``index`` (in that order), as a new SpikeData."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"subset index out of range [0, {len(self)})")
        lengths = self.offsets[index + 1] - self.offsets[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = _ranges(self.offsets[index], lengths)
        return replace(
            self,
            offsets=offsets,
            steps=self.steps[gather],
            channels=self.channels[gather],
            labels=self.labels[index],
        )

    def validate(self, where: str = "spike data") -> "SpikeData":
        """Raise ValueError naming the problem if the arrays are inconsistent."""
        n = len(self.labels)
        if self.offsets.shape != (n + 1,) or self.offsets[0] != 0:
            raise ValueError(f"{where}: offsets must have shape ({n + 1},) and start at 0")
        if np.any(np.diff(self.offsets) < 0):
            raise ValueError(f"{where}: offsets must be non-decreasing")
        if self.steps.shape != self.channels.shape or self.steps.shape[0] != self.offsets[-1]:
            raise ValueError(f"{where}: steps and channels must both hold offsets[-1] = {self.offsets[-1]} spikes")
        if self.dt <= 0:
            raise ValueError(f"{where}: dt must be > 0 ms, got {self.dt}")
        if self.n_spikes:
            problem = _event_problem(self.offsets, self.steps, self.channels, self.n_steps, self.n_channels)
            if problem == _BAD_STEP:
                raise ValueError(
                    f"{where}: spike steps must lie in [0, n_steps={self.n_steps}); "
                    f"found [{self.steps.min()}, {self.steps.max()}]"
                )
            if problem == _BAD_CHANNEL:
                raise ValueError(
                    f"{where}: spike channels must lie in [0, n_channels={self.n_channels}); "
                    f"found [{self.channels.min()}, {self.channels.max()}]"
                )
            if problem == _UNSORTED:
                raise ValueError(f"{where}: spikes must be sorted by step within each sample")
        if n and (self.labels.min() < 0 or self.labels.max() >= self.n_classes):
            raise ValueError(f"{where}: labels must lie in [0, n_classes={self.n_classes})")
        return self

    def binary(self) -> "SpikeData":
        """The same samples with every repeated (step, channel) pair of a sample kept once: what a
        binary-event system (a chip's input, a 0/1 raster) receives. Returns ``self`` when there
        are no repeats."""
        keep = _first_occurrences(self.offsets, self.steps, self.channels, self.n_channels)
        if keep.all():
            return self
        kept_before = np.concatenate(([0], np.cumsum(keep)))  # spikes kept before position s
        return replace(self, offsets=kept_before[self.offsets], steps=self.steps[keep], channels=self.channels[keep])

    def to_dense(self, k: int) -> np.ndarray:
        """Sample ``k`` as a uint8 raster [n_steps, n_channels] (for plots and exports only)."""
        raster = np.zeros((self.n_steps, self.n_channels), dtype=np.uint8)
        s, c = self.sample(k)
        np.add.at(raster, (s, c), 1)
        return raster


def from_samples(
    samples: Sequence[tuple[np.ndarray, np.ndarray]],
    labels: Sequence[int],
    *,
    n_channels: int,
    n_steps: int,
    dt: float,
    n_classes: int,
    meta: dict | None = None,
) -> SpikeData:
    """Build SpikeData from per-sample (steps, channels) arrays; sorts each sample by step."""
    lengths = np.array([len(s) for s, _ in samples], dtype=np.int64)
    offsets = np.zeros(len(samples) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    steps = np.empty(offsets[-1], dtype=np.int32)
    channels = np.empty(offsets[-1], dtype=np.int32)
    for k, (s, c) in enumerate(samples):
        s = np.asarray(s)
        c = np.asarray(c)
        order = np.argsort(s, kind="stable")
        steps[offsets[k] : offsets[k + 1]] = s[order]
        channels[offsets[k] : offsets[k + 1]] = c[order]
    return SpikeData(offsets, steps, channels, np.asarray(labels), n_channels, n_steps, dt, n_classes, meta or {})


def concat(parts: Sequence[SpikeData]) -> SpikeData:
    """Samples of several SpikeData with the same grid, one after another."""
    if not parts:
        raise ValueError("concat needs at least one SpikeData")
    first = parts[0]
    for p in parts[1:]:
        if (p.n_channels, p.n_steps, p.dt) != (first.n_channels, first.n_steps, first.dt):
            raise ValueError("concat: all parts must share n_channels, n_steps and dt")
    lengths = np.concatenate([np.diff(p.offsets) for p in parts])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return replace(
        first,
        offsets=offsets,
        steps=np.concatenate([p.steps for p in parts]),
        channels=np.concatenate([p.channels for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
    )


@dataclass(frozen=True)
class DatasetSplits:
    """What a dataset factory returns. ``val`` may be None (the trainer then splits ``train``)."""

    train: SpikeData
    test: SpikeData
    val: SpikeData | None = None


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) for each (s, n), without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    idx = np.ones(total, dtype=np.int64)
    nz = lengths > 0
    first_pos = (ends - lengths)[nz]
    idx[first_pos] = starts[nz] - np.concatenate(([0], (starts + lengths)[nz][:-1] - 1))
    idx[0] = starts[nz][0]
    return np.cumsum(idx)


@numba.njit(cache=True, nogil=True)
def _first_occurrences(offsets, steps, channels, n_channels):
    """keep[s]: spike s is the first of its (step, channel) pair in its sample (steps sorted)."""
    keep = np.ones(steps.shape[0], dtype=np.bool_)
    seen = np.full(n_channels, -1, dtype=np.int64)  # last (sample, step) stamp per channel
    for k in range(offsets.shape[0] - 1):
        for s in range(offsets[k], offsets[k + 1]):
            stamp = np.int64(k) * 2**31 + steps[s]
            c = channels[s]
            if seen[c] == stamp:
                keep[s] = False
            else:
                seen[c] = stamp
    return keep


_BAD_STEP, _BAD_CHANNEL, _UNSORTED = 1, 2, 3


@numba.njit(cache=True, nogil=True)
def _event_problem(offsets, steps, channels, n_steps, n_channels):
    """One pass over the spikes: 0 if all are valid, else the first problem found (steps out of
    range are reported before channels out of range, before order)."""
    problem = 0
    for k in range(offsets.shape[0] - 1):
        prev = 0
        for s in range(offsets[k], offsets[k + 1]):
            st = steps[s]
            if st < 0 or st >= n_steps:
                return _BAD_STEP
            if channels[s] < 0 or channels[s] >= n_channels:
                problem = _BAD_CHANNEL
            elif st < prev and problem == 0:
                problem = _UNSORTED
            prev = st
    return problem
