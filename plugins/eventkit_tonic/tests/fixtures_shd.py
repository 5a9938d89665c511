"""Tiny HDF5 files in the exact layout of the published SHD / SSC files, placed where tonic looks.

Layout (Cramer et al. 2020, as read by tonic.datasets.SHD/SSC): ``spikes/times`` (one
variable-length float16 array per sample, seconds), ``spikes/units`` (variable-length uint16,
channel 0..699), ``labels`` (uint16), ``extra/keys`` (class names), ``extra/speaker`` (uint16),
``extra/meta_info/...``. tonic keeps ``<root>/SHD/shd_train.h5`` next to the downloaded
``shd_train.h5.zip``; we write both (the zip holding the .h5), so tonic's own
``SHD(save_to=root)`` opens them without downloading.

The fixtures reach every test module of this directory through its conftest.py.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

N_SENSOR = 700


def write_hsd_file(path: Path, labels: np.ndarray, speakers: np.ndarray, n_classes: int,
                   rng: np.random.Generator, *, max_time: float = 1.2,
                   events: tuple[int, int] = (30, 400)) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Write one file; returns each sample's (times float16 seconds, units) as stored.

    Events are sorted in time (as in the published files) except that sample 1, when present,
    is stored out of order to exercise the unsorted path. Times run past 1 s so cropping matters,
    and a few events repeat a (time, channel) pair so the count threshold matters."""
    samples = []
    for k, label in enumerate(labels):
        n = int(rng.integers(*events))
        t = np.sort(rng.uniform(0.0, max_time, n))
        centre = 30 + 30 * label
        u = np.clip(np.rint(rng.normal(centre, 40, n)), 0, N_SENSOR - 1)
        t[: n // 10] = t[n // 10 : 2 * (n // 10)]  # duplicate some times ...
        u[: n // 10] = u[n // 10 : 2 * (n // 10)]  # ... on the same channels
        order = np.argsort(t, kind="stable")
        t, u = t[order], u[order]
        if k == 1:
            perm = rng.permutation(n)
            t, u = t[perm], u[perm]
        samples.append((t.astype(np.float16), u.astype(np.uint16)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(labels),), dtype=h5py.vlen_dtype(np.float16))
        units = f.create_dataset("spikes/units", (len(labels),), dtype=h5py.vlen_dtype(np.uint16))
        for k, (t, u) in enumerate(samples):
            times[k] = t
            units[k] = u
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        f.create_dataset("extra/keys", data=np.array([f"word-{c}".encode() for c in range(n_classes)]))
        f.create_dataset("extra/speaker", data=np.asarray(speakers, dtype=np.uint16))
        f.create_dataset("extra/meta_info/gender", data=np.array([b"female", b"male"]))
        f.create_dataset("extra/meta_info/age", data=np.array([30, 40], dtype=np.uint16))
    return samples


def zip_next_to(h5_path: Path) -> Path:
    zpath = h5_path.with_name(h5_path.name + ".zip")
    with zipfile.ZipFile(zpath, "w") as z:
        z.write(h5_path, arcname=h5_path.name)
    return zpath


def make_root(root: Path, dataset: str, sizes: dict[str, int], n_classes: int, *, n_speakers: int = 5,
              with_zip: bool = True, seed: int = 0) -> dict[str, dict]:  # fmt: skip
    """Write ``<root>/<DATASET>/<dataset>_<split>.h5`` (+ .zip) for each split; returns the
    labels, speakers and stored events per split."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in sizes.items():
        labels = np.arange(n) % n_classes
        rng.shuffle(labels)
        speakers = rng.integers(0, n_speakers, n)
        speakers[:n_speakers] = np.arange(min(n, n_speakers))  # every speaker present
        path = root / dataset.upper() / f"{dataset}_{split}.h5"
        samples = write_hsd_file(path, labels, speakers, n_classes, rng)
        if with_zip:
            zip_next_to(path)
        written[split] = {"labels": labels, "speakers": speakers, "samples": samples, "path": path}
    return written


@pytest.fixture
def shd_root(tmp_path):
    """(root, written): a tiny SHD (60 train / 20 test samples, 20 classes, 5 speakers)."""
    root = tmp_path / "data"
    return root, make_root(root, "shd", {"train": 60, "test": 20}, 20)


@pytest.fixture
def ssc_root(tmp_path):
    """(root, written): a tiny SSC (70 train / 35 valid / 35 test samples, 35 classes)."""
    root = tmp_path / "data"
    return root, make_root(root, "ssc", {"train": 70, "valid": 35, "test": 35}, 35)
