"""Finding, fetching and checking the Heidelberg spiking dataset files, the way tonic lays them out.

tonic keeps ``<save_to>/<ClassName>/<name>.h5.zip`` (the download, with a known MD5) next to the
extracted ``<name>.h5``. We accept any of: both files (the zip's checksum is verified), the
``.h5`` alone (an extracted copy; its HDF5 structure is checked), or the zip alone (verified,
then extracted). Only when the ``.h5`` cannot be obtained locally do we ask tonic to download,
and every failure -- offline, checksum, truncated HDF5 -- ends in an error that says which file,
where it was expected, where to get it and how to point eventkit at an existing copy.
"""

from __future__ import annotations

import os
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py

ROOT_ENV = "EVENTKIT_DATA"
DOWNLOAD_TIMEOUT_S = 60.0
REQUIRED_KEYS = ("spikes/times", "spikes/units", "labels")


class DatasetUnavailableError(FileNotFoundError):
    """The data files are missing and could not be downloaded."""


class DatasetCorruptError(ValueError):
    """A data file is present but damaged (checksum mismatch, truncated or wrong HDF5)."""


def default_root() -> Path:
    """``$EVENTKIT_DATA`` if set, else ``~/.cache/eventkit/data``."""
    env = os.environ.get(ROOT_ENV)
    return Path(env).expanduser() if env else Path("~/.cache/eventkit/data").expanduser()


def resolve_root(root: str | os.PathLike | None) -> Path:
    return Path(root).expanduser() if root not in (None, "") else default_root()


@dataclass(frozen=True)
class SourceFile:
    """One published file of a tonic dataset class."""

    tonic_class: type  # tonic.datasets.SHD or SSC
    tonic_kwargs: dict  # how to ask tonic for this split, e.g. {"train": True}
    zip_name: str  # e.g. shd_train.h5.zip
    md5: str  # tonic's record of the zip's MD5

    @property
    def h5_name(self) -> str:
        return self.zip_name[: -len(".zip")]

    @property
    def url(self) -> str:
        return self.tonic_class.base_url + self.zip_name

    def folder(self, root: Path) -> Path:
        return root / self.tonic_class.__name__

    def h5_path(self, root: Path) -> Path:
        return self.folder(root) / self.h5_name

    def zip_path(self, root: Path) -> Path:
        return self.folder(root) / self.zip_name


def missing_message(dataset: str, files: list[SourceFile], root: Path, reason: str) -> str:
    folder = files[0].folder(root)
    lines = [f"{dataset}: data files not found ({reason}).", f"Expected in {folder}:"]
    lines += [f"  {f.h5_name}  (or {f.zip_name})" for f in files]
    lines += ["Get them from the dataset authors (Cramer et al., Heidelberg spiking data sets):"]
    lines += [f"  {f.url}" for f in files]
    lines += [
        f"then either put them (zip or extracted .h5) in {folder}, or point eventkit at the folder",
        f"that CONTAINS {folder.name}/: set {ROOT_ENV}=/path/to/data or pass dataset.root=/path/to/data.",
        "With network access, dataset.download=true (the default) fetches them automatically.",
    ]
    return "\n".join(lines)


def obtain(dataset: str, files: list[SourceFile], root: Path, *, download: bool, verify: bool) -> list[Path]:
    """The ``.h5`` path of each file, downloading (through tonic) or extracting where it is missing.
    Raises DatasetUnavailableError or DatasetCorruptError with instructions. Cheap when the
    ``.h5`` files exist: nothing is read."""
    absent = [f for f in files if not f.h5_path(root).is_file() and not f.zip_path(root).is_file()]
    if absent:
        if not download:
            raise DatasetUnavailableError(
                missing_message(dataset, absent, root, "downloads are off: dataset.download=false")
            )
        for f in absent:
            _download(dataset, f, root, files)
    for f in files:
        if not f.h5_path(root).is_file():
            if verify:
                verify_md5(dataset, f, f.zip_path(root))
            _extract(dataset, f, f.zip_path(root))
    return [f.h5_path(root) for f in files]


def validate(dataset: str, f: SourceFile, root: Path, *, verify: bool) -> None:
    """Before reading a file: the zip's checksum (when the zip is there and ``verify``) and the
    HDF5 structure. Done once per preprocessing, not on cache hits."""
    if verify and f.zip_path(root).is_file():
        verify_md5(dataset, f, f.zip_path(root))
    check_hdf5(dataset, f, f.h5_path(root))


def _download(dataset: str, f: SourceFile, root: Path, files: list[SourceFile]) -> None:
    """Let tonic fetch (and checksum, and extract) the file; explain any failure."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # urllib would otherwise wait forever offline
    try:
        f.tonic_class(save_to=str(root), **f.tonic_kwargs)
    except Exception as err:  # URLError, OSError, tonic's "File not found or corrupted." ...
        raise DatasetUnavailableError(
            missing_message(dataset, files, root, f"download of {f.url} failed: {type(err).__name__}: {err}")
        ) from err
    finally:
        socket.setdefaulttimeout(previous)
    if not f.h5_path(root).is_file():
        raise DatasetUnavailableError(
            missing_message(dataset, files, root, f"tonic finished but {f.h5_path(root)} does not exist")
        )


def verify_md5(dataset: str, f: SourceFile, path: Path) -> None:
    from tonic.download_utils import calculate_md5

    actual = calculate_md5(str(path))
    if actual != f.md5:
        raise DatasetCorruptError(
            f"{dataset}: checksum mismatch for {path}: MD5 {actual}, expected {f.md5} (tonic's record of "
            f"{f.url}): the file is truncated or corrupt. Fix: delete it (and {f.h5_name} next to it) and "
            f"download it again from {f.url}, or, to use a copy you trust as it is, set dataset.verify=false"
        )


def _extract(dataset: str, f: SourceFile, zp: Path) -> None:
    try:
        with zipfile.ZipFile(zp) as archive:
            if f.h5_name not in archive.namelist():
                raise DatasetCorruptError(
                    f"{dataset}: {zp} does not contain {f.h5_name}; download it again from {f.url}"
                )
            tmp = zp.parent / f".{f.h5_name}.partial"
            with archive.open(f.h5_name) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)
            os.replace(tmp, f.h5_path(zp.parent.parent))
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise DatasetCorruptError(
            f"{dataset}: cannot extract {zp} ({type(err).__name__}: {err}); the archive is truncated or "
            f"corrupt: delete it and download it again from {f.url}"
        ) from err


def check_hdf5(dataset: str, f: SourceFile, path: Path) -> None:
    """Open the file and check the datasets we read exist with matching lengths."""
    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in REQUIRED_KEYS if k not in h5]
            if missing:
                raise DatasetCorruptError(
                    f"{dataset}: {path} lacks {', '.join(missing)}; it is not a Heidelberg spiking "
                    f"dataset file. Replace it with {f.url} (extracted)."
                )
            n = len(h5["labels"])
            if len(h5["spikes/times"]) != n or len(h5["spikes/units"]) != n:
                raise DatasetCorruptError(
                    f"{dataset}: {path} is inconsistent (spikes/times, spikes/units and labels differ in "
                    f"length); replace it with {f.url} (extracted)."
                )
    except (OSError, KeyError, RuntimeError) as err:  # h5py on damaged bytes
        raise DatasetCorruptError(
            f"{dataset}: cannot read {path} as HDF5 ({' '.join(str(err).split())}); the file is truncated "
            f"or corrupt: delete it "
            f"and download it again from {f.url}"
        ) from err
