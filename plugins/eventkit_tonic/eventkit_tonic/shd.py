"""The ``shd`` dataset: Spiking Heidelberg Digits (20 classes, 8156 train / 2264 test samples).

SHD publishes no validation split. ``val_fraction`` of the training set is held out, seeded,
either by whole speakers (``val_split: speaker``, so validation measures generalisation to
unseen voices, as the test set does) or by random samples (``val_split: random``).
``val_fraction: 0`` returns no validation split (the trainer may then hold one out itself).
"""

from __future__ import annotations

import numpy as np

from eventkit.plugin import DatasetSplits
from eventkit.plugin import PreprocessConfig
from eventkit_tonic.files import SourceFile
from eventkit_tonic.loader import load_splits

N_CLASSES = 20


def source_files() -> dict[str, SourceFile]:
    from tonic.datasets import SHD

    return {
        "train": SourceFile(SHD, {"train": True}, SHD.train_zip, SHD.train_md5),
        "test": SourceFile(SHD, {"train": False}, SHD.test_zip, SHD.test_md5),
    }


def shd(
    root: str | None = None,
    dt: float = 1.0,
    duration: float = 1000.0,
    count_threshold: int | None = 1,
    n_channels: int | None = None,
    val_fraction: float = 0.1,
    val_split: str = "speaker",
    seed: int = 0,
    download: bool = True,
    verify: bool = True,
    cache: bool = True,
    cache_dir: str | None = None,
) -> DatasetSplits:
    """Dataset factory (registered as ``shd``); keys as in ``dataset/shd.yaml``."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"shd: val_fraction must lie in [0, 1), got {val_fraction!r}")
    if val_split not in ("speaker", "random"):
        raise ValueError(f"shd: val_split must be 'speaker' or 'random', got {val_split!r}")
    config = PreprocessConfig(dt=dt, duration=duration, count_threshold=count_threshold, n_channels=n_channels)
    loaded = load_splits("shd", source_files(), n_classes=N_CLASSES, root=root, config=config,
                         download=download, verify=verify, cache=cache, cache_dir=cache_dir)  # fmt: skip
    train, speakers = loaded["train"]
    test, _ = loaded["test"]
    if val_fraction == 0.0:
        return DatasetSplits(train=train, test=test, val=None)
    val_idx = validation_indices(speakers, val_fraction, val_split, np.random.default_rng(seed))
    keep = np.setdiff1d(np.arange(len(train)), val_idx)
    return DatasetSplits(train=train.subset(keep), test=test, val=train.subset(val_idx))


def validation_indices(speakers: np.ndarray, fraction: float, how: str, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of the held-out samples.

    ``speaker``: whole speakers in random order until at least ``fraction`` of the samples are
    held out (at least one speaker, never all of them). ``random``: ``round(fraction * n)``
    samples (at least one)."""
    n = speakers.size
    if how == "random" or np.unique(speakers).size < 2:
        if how == "speaker":
            raise ValueError(
                "shd: val_split=speaker needs at least two speakers in the training file "
                "(extra/speaker); use val_split=random"
            )
        k = min(n - 1, max(1, int(round(fraction * n))))
        return np.sort(rng.permutation(n)[:k])
    ids, counts = np.unique(speakers, return_counts=True)
    order = rng.permutation(ids.size)
    held, total = [], 0
    for i in order[:-1]:  # leave at least one speaker for training
        held.append(ids[i])
        total += counts[i]
        if total >= fraction * n:
            break
    return np.flatnonzero(np.isin(speakers, held))
