"""Raw events (integer microseconds, channel) -> SpikeData on the dt grid.

Audio datasets such as SHD and SSC arrive as lists of events, each a time in integer
microseconds (tonic's convention) and a sensor channel. The engine wants spike lists on a
fixed grid of ``n_steps`` steps of ``dt`` ms. This module does that conversion once per
dataset (the result is cached, see :mod:`eventkit.data.cache`):

1. crop: events at ``t >= duration`` ms (or ``t < 0``) are dropped;
2. bin: event ``t`` falls in step ``floor(t / dt)``;
3. optional channel down-sampling: sensor channel ``x`` of ``n_sensor`` maps to
   ``x * n_channels // n_sensor`` (700 -> 350 merges neighbouring pairs);
4. count threshold: with ``count_threshold = k >= 1`` every (step, channel) bin that holds at
   least ``k`` events emits exactly one spike (the authors' "histogram threshold"; ``k = 1``
   binarises). With ``count_threshold = None`` every event is kept as one spike, so a bin may
   hold several.

The per-sample loop is a compiled kernel parallel over samples: the work is linear in the
number of events (no sort when a sample's events are already in time order, as they are in
SHD/SSC), so preprocessing all of SSC takes seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numba
import numpy as np

from eventkit.data.spikes import SpikeData


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that decides the preprocessed result (and therefore the cache key)."""

    dt: float = 1.0  # ms per step
    duration: float = 1000.0  # ms; events at or after this are cropped
    count_threshold: int | None = 1  # events per (step, channel) bin for one spike; None: keep all
    n_channels: int | None = None  # output channels; None keeps the sensor's channels

    def __post_init__(self):
        if not (isinstance(self.dt, (int, float)) and self.dt > 0):
            raise ValueError(f"dt must be a positive number of ms, got {self.dt!r}")
        if not (isinstance(self.duration, (int, float)) and self.duration > 0):
            raise ValueError(f"duration must be a positive number of ms, got {self.duration!r}")
        steps = self.duration / self.dt
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise ValueError(
                f"duration ({self.duration} ms) must be a whole number of dt ({self.dt} ms) steps; "
                f"choose e.g. duration={round(steps) * self.dt}"
            )
        if self.count_threshold is not None and (
            not isinstance(self.count_threshold, (int, np.integer)) or self.count_threshold < 1
        ):
            raise ValueError(
                f"count_threshold must be an integer >= 1 (or null to keep every event), "
                f"got {self.count_threshold!r}"
            )
        if self.n_channels is not None and (not isinstance(self.n_channels, (int, np.integer)) or self.n_channels < 1):
            raise ValueError(f"n_channels must be a positive integer or null, got {self.n_channels!r}")

    @property
    def n_steps(self) -> int:
        return int(round(self.duration / self.dt))

    def as_dict(self) -> dict:
        """Plain values for the cache key (dt=1 and dt=1.0 are the same config)."""
        d = asdict(self)
        d["dt"], d["duration"] = float(self.dt), float(self.duration)
        return {k: (int(v) if isinstance(v, np.integer) else v) for k, v in d.items()}


def events_to_spikes(
    times_us: np.ndarray,
    units: np.ndarray,
    lengths: np.ndarray,
    labels: np.ndarray,
    *,
    n_sensor: int,
    n_classes: int,
    config: PreprocessConfig,
    meta: dict | None = None,
) -> SpikeData:
    """Convert the concatenated events of many samples to SpikeData.

    ``times_us`` (integer microseconds) and ``units`` (sensor channel in ``[0, n_sensor)``) hold
    the events of all samples one after another; sample ``k`` owns ``lengths[k]`` of them.
    """
    times_us = np.ascontiguousarray(times_us, dtype=np.int64)
    units = np.ascontiguousarray(units, dtype=np.int32)
    lengths = np.asarray(lengths, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if times_us.shape != units.shape or times_us.ndim != 1:
        raise ValueError("times_us and units must be 1-D arrays of the same length")
    if lengths.ndim != 1 or np.any(lengths < 0) or int(lengths.sum()) != times_us.size:
        raise ValueError(f"lengths must be non-negative and sum to the number of events ({times_us.size})")
    if labels.shape != lengths.shape:
        raise ValueError(f"labels must have one entry per sample ({lengths.size}), got {labels.size}")
    if units.size and (units.min() < 0 or units.max() >= n_sensor):
        raise ValueError(
            f"event channels must lie in [0, n_sensor={n_sensor}); found "
            f"[{units.min()}, {units.max()}] -- is n_sensor right for this dataset?"
        )
    n_out = n_sensor if config.n_channels is None else int(config.n_channels)
    if n_out > n_sensor:
        raise ValueError(f"n_channels ({n_out}) cannot exceed the sensor's {n_sensor} channels (down-sampling only)")
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # sample k writes its counts[k] spikes at the start of its own input range; then compact
    buf_steps = np.empty(times_us.size, dtype=np.int32)
    buf_channels = np.empty(times_us.size, dtype=np.int32)
    counts = np.zeros(lengths.size, dtype=np.int64)
    threshold = 0 if config.count_threshold is None else int(config.count_threshold)
    channel_of = (np.arange(n_sensor, dtype=np.int64) * n_out // n_sensor).astype(np.int32)
    _bin_kernel(offsets, times_us, units, float(config.dt) * 1000.0, config.n_steps, channel_of, n_out,
                threshold, buf_steps, buf_channels, counts)  # fmt: skip
    new_offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    out_steps = np.empty(new_offsets[-1], dtype=np.int32)
    out_channels = np.empty(new_offsets[-1], dtype=np.int32)
    _compact_kernel(offsets, new_offsets, buf_steps, buf_channels, out_steps, out_channels)
    return SpikeData(
        new_offsets,
        out_steps,
        out_channels,
        labels,
        n_out,
        config.n_steps,
        float(config.dt),
        int(n_classes),
        dict(meta or {}),
    )


@numba.njit(parallel=True, cache=True, nogil=True)
def _compact_kernel(offsets, new_offsets, buf_steps, buf_channels, out_steps, out_channels):
    for k in numba.prange(offsets.size - 1):
        a = offsets[k]
        w = new_offsets[k]
        for i in range(new_offsets[k + 1] - w):
            out_steps[w + i] = buf_steps[a + i]
            out_channels[w + i] = buf_channels[a + i]


@numba.njit(inline="always")
def _step_of(t, dt_us, inv_dt):
    """floor(t / dt_us) without a division per event (corrected at bin edges, so exact)."""
    s = np.int64(t * inv_dt)
    if (s + 1) * dt_us <= t:
        s += 1
    elif s * dt_us > t:
        s -= 1
    return s


@numba.njit(parallel=True, cache=True, nogil=True)
def _bin_kernel(offsets, times_us, units, dt_us, n_steps, channel_of, n_out, threshold, out_steps, out_channels,
                counts):  # fmt: skip
    """Per sample: walk events in time order, emit (step, channel) spikes in place.

    With ``threshold >= 1`` a bin emits one spike at the event that brings its count to
    ``threshold``; counts are kept for the current step only and cleared when the step changes,
    so the scratch space is one int per output channel. Samples already in time order (the
    published files) are walked directly; others through a stable argsort of their times.
    """
    inv_dt = 1.0 / dt_us
    n_samples = offsets.size - 1
    for k in numba.prange(n_samples):
        a = offsets[k]
        b = offsets[k + 1]
        n = b - a
        in_order = True
        for j in range(a + 1, b):
            if times_us[j] < times_us[j - 1]:
                in_order = False
                break
        if in_order:
            order = np.empty(0, np.int64)
        else:
            order = a + np.argsort(times_us[a:b], kind="mergesort")
        scratch = np.zeros(n_out, np.int32)
        w = a
        current = -1
        bin_start = 0  # position in time order where the current step's events begin
        for p in range(n):
            j = a + p if in_order else order[p]
            t = times_us[j]
            if t < 0:
                bin_start = p + 1
                continue
            step = _step_of(t, dt_us, inv_dt)
            if step >= n_steps:
                break  # events are visited in time order: everything after is cropped too
            ch = channel_of[units[j]]
            if threshold <= 0:
                out_steps[w] = step
                out_channels[w] = ch
                w += 1
                continue
            if step != current:
                for q in range(bin_start, p):
                    scratch[channel_of[units[a + q if in_order else order[q]]]] = 0
                current = step
                bin_start = p
            scratch[ch] += 1
            if scratch[ch] == threshold:
                out_steps[w] = step
                out_channels[w] = ch
                w += 1
        counts[k] = w - a
