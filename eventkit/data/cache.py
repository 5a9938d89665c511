"""On-disk cache of preprocessed SpikeData.

Preprocessing a large dataset is done once; later runs load the result. An entry is a folder of
raw ``.npy`` arrays (loaded memory-mapped, so reading SSC's training set costs a few hundred
milliseconds) plus ``info.json``. Its name is a hash of

* the preprocessing config (dt, crop, threshold, channels, ...), and
* the identity of every source file (name, size, modification time and a digest of its first and
  last MiB),

so changing dt or the crop, or replacing a data file, can never reuse a stale entry. Entries
are written to a temporary folder and renamed into place: a crash leaves no half-written entry
that a later run would trust. An unreadable entry is rebuilt, not trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from eventkit.data.spikes import SpikeData
from eventkit.base.files import json_default

FORMAT_VERSION = 1
_EDGE_BYTES = 1 << 20
_MAPPED = ("steps", "channels")


def source_identity(path: str | os.PathLike) -> dict:
    """What identifies a source file's content cheaply (no full hash of gigabytes)."""
    path = Path(path)
    st = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(_EDGE_BYTES))
        if st.st_size > 2 * _EDGE_BYTES:
            f.seek(st.st_size - _EDGE_BYTES)
            digest.update(f.read(_EDGE_BYTES))
    return {
        "name": path.name,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "edges_sha256": digest.hexdigest(),
    }


def cache_key(config: Mapping, sources: Sequence[str | os.PathLike] = ()) -> str:
    """Hex key for a preprocessing ``config`` applied to ``sources`` (files)."""
    payload = {
        "format": FORMAT_VERSION,
        "config": dict(config),
        "sources": [source_identity(s) for s in sources],
    }
    text = json.dumps(payload, sort_keys=True, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def save(directory: str | os.PathLike, data: SpikeData, extra: Mapping[str, np.ndarray] | None = None,
         info: Mapping | None = None) -> Path:  # fmt: skip
    """Write ``data`` (and per-sample ``extra`` arrays) atomically as the folder ``directory``."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        np.save(tmp / "offsets.npy", data.offsets)
        np.save(tmp / "steps.npy", data.steps.astype(_compact_dtype(data.n_steps)))
        np.save(tmp / "channels.npy", data.channels.astype(_compact_dtype(data.n_channels)))
        np.save(tmp / "labels.npy", data.labels)
        names = []
        for name, arr in (extra or {}).items():
            if not name.isidentifier():
                raise ValueError(f"cache extra array name must be an identifier, got {name!r}")
            np.save(tmp / f"extra_{name}.npy", np.asarray(arr))
            names.append(name)
        meta = {
            "format": FORMAT_VERSION,
            "n_channels": data.n_channels,
            "n_steps": data.n_steps,
            "dt": data.dt,
            "n_classes": data.n_classes,
            "meta": data.meta,
            "extra": names,
            "info": dict(info or {}),
        }
        (tmp / "info.json").write_text(json.dumps(meta, sort_keys=True, default=json_default))
        try:
            os.replace(tmp, directory)  # atomic for an absent or empty target
        except OSError:
            if (directory / "info.json").exists():  # another process won the race: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load(directory: str | os.PathLike) -> tuple[SpikeData, dict[str, np.ndarray]]:
    """Read an entry written by :func:`save`. Raises ValueError if it is incomplete or damaged."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / "info.json").read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {meta.get('format')} != {FORMAT_VERSION}")
        # the spike arrays are memory-mapped (they are widened to int32 on construction, or
        # stay read-only maps when already int32); offsets and labels are small
        arrays = {
            name: np.load(directory / f"{name}.npy", mmap_mode="r" if name in _MAPPED else None)
            for name in ("offsets", "steps", "channels", "labels")
        }
        extra = {name: np.load(directory / f"extra_{name}.npy") for name in meta["extra"]}
        data = SpikeData(
            arrays["offsets"],
            arrays["steps"],
            arrays["channels"],
            arrays["labels"],
            int(meta["n_channels"]),
            int(meta["n_steps"]),
            float(meta["dt"]),
            int(meta["n_classes"]),
            dict(meta["meta"]),
        )
        if data.offsets.shape != (len(data) + 1,) or data.steps.size != data.offsets[-1]:
            raise ValueError("array sizes disagree")
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"cache entry {directory} is damaged ({err}); delete it to rebuild") from err
    return data, extra


def cached(
    cache_dir: str | os.PathLike,
    config: Mapping,
    sources: Sequence[str | os.PathLike],
    build: Callable[[], tuple[SpikeData, Mapping[str, np.ndarray]]],
    *,
    label: str = "data",
) -> tuple[SpikeData, dict[str, np.ndarray], bool]:
    """Load the entry for (``config``, ``sources``) or ``build()`` and store it.

    Returns ``(data, extra, hit)``; ``hit`` says whether the cache was used.
    """
    key = cache_key(config, sources)
    directory = Path(cache_dir) / f"{label}-{key}"
    if (directory / "info.json").exists():
        try:
            data, extra = load(directory)
            return data, extra, True
        except ValueError as err:
            warnings.warn(f"{err}; rebuilding it", RuntimeWarning, stacklevel=2)
            shutil.rmtree(directory, ignore_errors=True)
    data, extra = build()
    save(directory, data, extra, info={"config": dict(config), "sources": [str(s) for s in sources]})
    return data, dict(extra), False


def _compact_dtype(limit: int) -> np.dtype:
    return np.dtype(np.uint16) if limit <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)
