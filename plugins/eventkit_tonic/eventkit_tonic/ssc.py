"""The ``ssc`` dataset: Spiking Speech Commands (35 classes; 75,466 / 9,981 / 20,382 samples in its
published train / valid / test files)."""

from __future__ import annotations

from eventkit.plugin import DatasetSplits
from eventkit.plugin import PreprocessConfig
from eventkit_tonic.files import SourceFile
from eventkit_tonic.loader import load_splits

N_CLASSES = 35


def source_files() -> dict[str, SourceFile]:
    from tonic.datasets import SSC

    return {
        "train": SourceFile(SSC, {"split": "train"}, SSC.train_zip, SSC.train_md5),
        "valid": SourceFile(SSC, {"split": "valid"}, SSC.valid_zip, SSC.valid_md5),
        "test": SourceFile(SSC, {"split": "test"}, SSC.test_zip, SSC.test_md5),
    }


def ssc(
    root: str | None = None,
    dt: float = 1.0,
    duration: float = 1000.0,
    count_threshold: int | None = 1,
    n_channels: int | None = None,
    download: bool = True,
    verify: bool = True,
    cache: bool = True,
    cache_dir: str | None = None,
) -> DatasetSplits:
    """Dataset factory (registered as ``ssc``); keys as in ``dataset/ssc.yaml``."""
    config = PreprocessConfig(dt=dt, duration=duration, count_threshold=count_threshold, n_channels=n_channels)
    loaded = load_splits("ssc", source_files(), n_classes=N_CLASSES, root=root, config=config,
                         download=download, verify=verify, cache=cache, cache_dir=cache_dir)  # fmt: skip
    return DatasetSplits(train=loaded["train"][0], test=loaded["test"][0], val=loaded["valid"][0])
