"""Read a Heidelberg spiking dataset file in bulk and preprocess it (once) to SpikeData.

tonic's own ``dataset[i]`` opens the HDF5 file for every sample, which is fine for a data loader
but slow for a one-off conversion of 75k samples. We read the same arrays in chunks of samples
(``spikes/times`` in seconds, ``spikes/units``, ``labels``, ``extra/speaker``), convert times to
integer microseconds exactly as tonic does (float64 seconds x 1e6, truncated to int), and hand
each chunk to :func:`eventkit.data.events_to_spikes`. Results are cached keyed by the
preprocessing config and the file's identity.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from eventkit.plugin import SpikeData, concat
from eventkit.plugin import cached
from eventkit.plugin import PreprocessConfig, events_to_spikes
from eventkit_tonic.files import DatasetCorruptError, SourceFile, obtain, resolve_root, validate

N_SENSOR = 700
CHUNK = 4096  # samples read and preprocessed at once


def read_events(path: Path, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Events of samples ``[start, stop)``: (times_us int64, units, lengths, labels)."""
    with h5py.File(path, "r") as h5:
        times = h5["spikes/times"][start:stop]
        units = h5["spikes/units"][start:stop]
        labels = np.asarray(h5["labels"][start:stop], dtype=np.int64)
    lengths = np.fromiter((len(t) for t in times), dtype=np.int64, count=len(times))
    if np.any(lengths != np.fromiter((len(u) for u in units), dtype=np.int64, count=len(units))):
        raise DatasetCorruptError(f"{path}: spikes/times and spikes/units differ in length for some samples")
    flat_t = np.concatenate([np.asarray(t) for t in times]) if len(times) else np.zeros(0)
    flat_u = np.concatenate([np.asarray(u) for u in units]) if len(units) else np.zeros(0)
    times_us = (flat_t.astype(np.float64) * 1e6).astype(np.int64)  # tonic's conversion
    return times_us, flat_u.astype(np.int32), lengths, labels


def corrupt_message(dataset: str, f: SourceFile, path: Path, why: str) -> str:
    """One line: which file is damaged and what to do about it."""
    why = " ".join(why.split())
    return (
        f"{dataset}: {path} is corrupt (reading it failed: {why}). Fix: delete it (and "
        f"{f.zip_name} next to it) and download it again from {f.url}"
    )


def preprocess_file(path: Path, config: PreprocessConfig, *, n_classes: int, meta: dict) -> SpikeData:
    with h5py.File(path, "r") as h5:
        n = len(h5["labels"])
    parts = []
    for start in range(0, n, CHUNK):
        times_us, units, lengths, labels = read_events(path, start, min(n, start + CHUNK))
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise DatasetCorruptError(
                f"{path}: labels must lie in [0, {n_classes}), found [{labels.min()}, {labels.max()}]"
            )
        parts.append(
            events_to_spikes(
                times_us, units, lengths, labels, n_sensor=N_SENSOR, n_classes=n_classes, config=config, meta=meta
            )  # fmt: skip
        )
    if not parts:
        raise DatasetCorruptError(f"{path}: the file holds no samples")
    return concat(parts)


def read_speakers(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as h5:
        if "extra/speaker" not in h5:
            return np.full(len(h5["labels"]), -1, dtype=np.int64)
        return np.asarray(h5["extra/speaker"][()], dtype=np.int64)


def load_splits(
    dataset: str,
    files: dict[str, SourceFile],
    *,
    n_classes: int,
    root,
    config: PreprocessConfig,
    download: bool,
    verify: bool,
    cache: bool,
    cache_dir,
) -> dict[str, tuple[SpikeData, np.ndarray]]:
    """Each split's SpikeData and per-sample speaker ids, from cache or freshly preprocessed."""
    root = resolve_root(root)
    paths = dict(zip(files, obtain(dataset, list(files.values()), root, download=download, verify=verify)))
    cache_root = Path(cache_dir).expanduser() if cache_dir else root / "preprocessed"
    out = {}
    for split, f in files.items():
        path = paths[split]
        meta = {"dataset": dataset, "split": split, "source": f.h5_name}

        def build(f=f, path=path, meta=meta):
            validate(dataset, f, root, verify=verify)  # its errors carry their own fix
            try:
                data = preprocess_file(path, config, n_classes=n_classes, meta=meta)
                return data, {"speaker": read_speakers(path)}
            except DatasetCorruptError as err:  # damaged content found by our own checks
                raise DatasetCorruptError(corrupt_message(dataset, f, path, str(err))) from None
            except (OSError, KeyError, RuntimeError, ValueError) as err:  # h5py on damaged bytes
                raise DatasetCorruptError(corrupt_message(dataset, f, path, f"{type(err).__name__}: {err}")) from err

        if cache:
            key_config = {"dataset": dataset, "split": split, "n_sensor": N_SENSOR, **config.as_dict()}
            data, extra, _ = cached(cache_root, key_config, [path], build, label=f"{dataset}-{split}")
        else:
            data, extra = build()
        out[split] = (data, extra["speaker"])
    return out
