"""SHD / SSC through the tonic plugin, on tiny files in the published layout (tests/fixtures_shd.py):
finding files where tonic puts them, agreement with tonic's own reader, validation splits, the
cache, and every failure a user can meet (offline, checksum, truncated file)."""

from __future__ import annotations

import shutil
import urllib.error

import numpy as np
import pytest
import tonic
from fixtures_shd import make_root

from eventkit.plugin import SpikeData
from eventkit.plugin import get_registry
from eventkit_tonic import DatasetCorruptError, DatasetUnavailableError, shd, ssc
from eventkit_tonic import loader as loader_mod


def reference_bins(t_us: np.ndarray, x: np.ndarray, dt: float, duration: float, threshold, n_out: int):
    """Sorted (step, channel) spikes of one sample by the plain definition (np.unique on bins)."""
    keep = (t_us >= 0) & (t_us < duration * 1000)
    step = np.floor(t_us[keep] / (dt * 1000)).astype(np.int64)
    ch = x[keep].astype(np.int64) * n_out // 700
    if threshold is None:
        pairs = np.stack([step, ch], 1)
    else:
        pairs, counts = np.unique(np.stack([step, ch], 1), axis=0, return_counts=True)
        pairs = pairs[counts >= threshold]
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order]


def sorted_pairs(data: SpikeData, k: int) -> np.ndarray:
    s, c = data.sample(k)
    pairs = np.stack([s, c], 1).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def test_shd_matches_tonics_own_reader(shd_root):
    root, written = shd_root
    splits = shd(root=str(root), verify=False, val_fraction=0.0, cache=False)
    train = splits.train.validate()
    assert (len(train), len(splits.test)) == (60, 20)
    assert (train.n_channels, train.n_steps, train.dt, train.n_classes) == (700, 1000, 1.0, 20)
    assert splits.val is None
    ds = tonic.datasets.SHD(save_to=str(root), train=True)  # finds the files, no download
    assert len(ds) == 60
    for k in range(len(ds)):
        events, label = ds[k]
        assert train.labels[k] == label
        expected = reference_bins(events["t"], events["x"], 1.0, 1000.0, 1, 700)
        np.testing.assert_array_equal(sorted_pairs(train, k), expected)
    # sample 1 is stored out of time order: still sorted by step after preprocessing
    assert np.all(np.diff(train.sample(1)[0]) >= 0)


@pytest.mark.parametrize("dt, duration, threshold, n_channels", [(2.0, 800.0, 2, 350), (0.5, 1200.0, None, 700)])
def test_shd_preprocessing_options(shd_root, dt, duration, threshold, n_channels):
    root, _ = shd_root
    test = shd(
        root=str(root),
        verify=False,
        val_fraction=0.0,
        cache=False,
        dt=dt,
        duration=duration,
        count_threshold=threshold,
        n_channels=n_channels,
    ).test.validate()
    assert test.n_steps == int(duration / dt) and test.n_channels == n_channels and test.dt == dt
    ds = tonic.datasets.SHD(save_to=str(root), train=False)
    for k in range(len(ds)):
        events, _ = ds[k]
        expected = reference_bins(events["t"], events["x"], dt, duration, threshold, n_channels)
        np.testing.assert_array_equal(sorted_pairs(test, k), expected)


def test_shd_validation_split_by_speaker_and_random(shd_root):
    root, written = shd_root
    speakers = written["train"]["speakers"]
    s = shd(root=str(root), verify=False, val_fraction=0.2, val_split="speaker", seed=3)
    assert len(s.train) + len(s.val) == 60 and len(s.val) >= 0.2 * 60
    # the held-out samples are exactly those of some whole speakers
    full = shd(root=str(root), verify=False, val_fraction=0.0).train
    val_rows = {tuple(sorted_pairs(s.val, k).ravel()) for k in range(len(s.val))}
    held = np.array([tuple(sorted_pairs(full, k).ravel()) in val_rows for k in range(len(full))])
    held_speakers = set(speakers[held])
    assert held_speakers and held_speakers.isdisjoint(set(speakers[~held]))
    again = shd(root=str(root), verify=False, val_fraction=0.2, val_split="speaker", seed=3)
    np.testing.assert_array_equal(again.val.steps, s.val.steps)  # seeded
    r = shd(root=str(root), verify=False, val_fraction=0.25, val_split="random", seed=1)
    assert len(r.val) == 15 and len(r.train) == 45
    with pytest.raises(ValueError, match="val_split"):
        shd(root=str(root), verify=False, val_split="gender")
    with pytest.raises(ValueError, match="val_fraction"):
        shd(root=str(root), verify=False, val_fraction=1.5)


def test_ssc_has_its_three_published_splits(ssc_root):
    root, written = ssc_root
    s = ssc(root=str(root), verify=False)
    assert (len(s.train), len(s.val), len(s.test)) == (70, 35, 35)
    assert s.train.n_classes == 35
    np.testing.assert_array_equal(s.val.labels, written["valid"]["labels"])
    ds = tonic.datasets.SSC(save_to=str(root), split="valid")
    events, _ = ds[3]
    np.testing.assert_array_equal(sorted_pairs(s.val, 3), reference_bins(events["t"], events["x"], 1.0, 1000.0, 1, 700))


def test_cache_is_reused_and_keyed_by_config_and_file(shd_root, monkeypatch):
    root, _ = shd_root
    first = shd(root=str(root), verify=False, val_fraction=0.0)
    entries = sorted(p.name for p in (root / "preprocessed").iterdir())
    assert len(entries) == 2  # train + test

    def boom(*a, **k):
        raise AssertionError("preprocessed again although cached")

    monkeypatch.setattr(loader_mod, "preprocess_file", boom)
    again = shd(root=str(root), verify=False, val_fraction=0.0)
    np.testing.assert_array_equal(again.train.steps, first.train.steps)
    np.testing.assert_array_equal(again.train.offsets, first.train.offsets)
    # a different dt or crop must not reuse the entry
    with pytest.raises(AssertionError, match="preprocessed again"):
        shd(root=str(root), verify=False, val_fraction=0.0, dt=2.0)
    with pytest.raises(AssertionError, match="preprocessed again"):
        shd(root=str(root), verify=False, val_fraction=0.0, duration=500.0)
    monkeypatch.undo()
    # replacing a data file invalidates its entry
    make_root(root, "shd", {"train": 60}, 20, seed=99)
    changed = shd(root=str(root), verify=False, val_fraction=0.0)
    assert not np.array_equal(changed.train.steps[:200], first.train.steps[:200])
    # old train + test entries, the new train entry; the failed builds above left nothing behind
    assert len(list((root / "preprocessed").iterdir())) == 3


def test_missing_files_offline_explain_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("EVENTKIT_DATA", raising=False)
    with pytest.raises(DatasetUnavailableError) as err:
        shd(root=str(tmp_path / "nowhere"), download=False)
    msg = str(err.value)
    for needle in (
        "shd_train.h5",
        "shd_test.h5.zip",
        str(tmp_path / "nowhere" / "SHD"),
        "https://zenkelab.org/datasets/shd_train.h5.zip",
        "EVENTKIT_DATA",
        "dataset.root",
    ):
        assert needle in msg, needle
    assert isinstance(err.value, FileNotFoundError)


def test_failed_download_is_explained(tmp_path, monkeypatch):
    def offline(self):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(tonic.datasets.SSC, "download", offline)
    with pytest.raises(
        DatasetUnavailableError,
        match=r"(?s)download of https://zenkelab.org/datasets/ssc_train"
        r".h5.zip failed.*name resolution.*EVENTKIT_DATA",
    ):
        ssc(root=str(tmp_path))


def test_download_goes_through_tonic(tmp_path, monkeypatch):
    """With files absent, tonic's download is what fetches them (stubbed here: no network)."""
    source = tmp_path / "mirror"
    make_root(source, "shd", {"train": 30, "test": 10}, 20)
    calls = []

    def fake_download(self):
        calls.append(self.filename)
        shutil.copy(source / "SHD" / self.filename, self.location_on_system)
        shutil.copy(source / "SHD" / self.filename[:-4], self.location_on_system)

    monkeypatch.setattr(tonic.datasets.SHD, "download", fake_download)
    (tmp_path / "root" / "SHD").mkdir(parents=True)
    s = shd(root=str(tmp_path / "root"), verify=False, val_fraction=0.0)
    assert sorted(calls) == ["shd_test.h5.zip", "shd_train.h5.zip"]
    assert (len(s.train), len(s.test)) == (30, 10)


def test_checksum_mismatch_is_reported(shd_root):
    root, _ = shd_root
    with pytest.raises(
        DatasetCorruptError,
        match=r"(?s)checksum mismatch.*shd_train.h5.zip.*f3252aeb598ac776c1b526422d90eecb"
        r".*download it again.*verify=false",
    ):
        shd(root=str(root), verify=True)


def test_truncated_file_gives_a_clear_error(shd_root):
    root, written = shd_root
    path = written["train"]["path"]
    path.with_name(path.name + ".zip").unlink()
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DatasetCorruptError, match=r"(?s)cannot read .*shd_train.h5.*truncated or corrupt"):
        shd(root=str(root), verify=True)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_file_corrupted_in_the_middle_gives_one_line(shd_root, where):
    """Bytes overwritten (not truncated): h5py's own error (OSError, KeyError) becomes one line
    naming the file and what to do."""
    root, written = shd_root
    path = written["train"]["path"]
    path.with_name(path.name + ".zip").unlink()
    raw = bytearray(path.read_bytes())
    at = int(len(raw) * where)
    raw[at : at + 4096] = b"\xa5" * 4096
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetCorruptError) as info:
        shd(root=str(root), verify=True, cache=False)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "corrupt" in message
    assert "delete it" in message and "download it again from https://" in message


def test_wrong_hdf5_content_is_reported(shd_root):
    root, written = shd_root
    import h5py

    with h5py.File(written["test"]["path"], "a") as f:
        del f["spikes/units"]
    with pytest.raises(DatasetCorruptError, match="lacks spikes/units"):
        shd(root=str(root), verify=False)


def test_zip_only_is_extracted(shd_root):
    root, written = shd_root
    written["train"]["path"].unlink()
    s = shd(root=str(root), verify=False, val_fraction=0.0, cache=False)
    assert len(s.train) == 60 and written["train"]["path"].is_file()


def test_corrupt_zip_is_reported(shd_root):
    root, written = shd_root
    path = written["train"]["path"]
    path.unlink()
    z = path.with_name(path.name + ".zip")
    z.write_bytes(z.read_bytes()[:100])
    with pytest.raises(DatasetCorruptError, match="cannot extract"):
        shd(root=str(root), verify=False)


def test_root_defaults_to_environment_variable(shd_root, monkeypatch):
    root, _ = shd_root
    monkeypatch.setenv("EVENTKIT_DATA", str(root))
    assert len(shd(verify=False, val_fraction=0.0).train) == 60


def test_registered_and_buildable_from_config(shd_root):
    root, _ = shd_root
    reg = get_registry()
    assert {"shd", "ssc"} <= set(reg.names("dataset"))
    splits = reg.build("dataset", {"name": "shd", "root": str(root), "verify": False, "seed": 0})
    assert len(splits.train) + len(splits.val) == 60


def test_experiment_configs_compose_with_the_authors_settings():
    from eventkit.plugin import compose, validate

    cfg = validate(compose(["+experiment=shd_fast"]), get_registry())
    assert cfg.dataset.name == "shd" and cfg.network.hidden == 128
    assert [a.name for a in cfg.dataset.augment] == ["shift", "blend"]
    synth = validate(compose(["+experiment=shd_fast", "dataset=synthetic_kws"]), get_registry())
    assert synth.dataset.name == "synthetic_kws" and synth.dataset.augment[0].max_shift == 40


def test_plugin_experiment_files_carry_the_authors_settings():
    from pathlib import Path

    from omegaconf import OmegaConf

    import eventkit_tonic

    conf = Path(eventkit_tonic.__file__).parent / "conf" / "experiment"
    expected = {
        "shd": ("shd", {256: "2.5e-10", 512: "5e-10", 1024: "5e-11"}, ["shift", "blend"], 50),
        "ssc": ("ssc", {256: "2.5e-9", 512: "5e-10", 1024: "2.5e-10"}, ["shift"], 100),
    }
    for name, (dataset, table, augs, epochs) in expected.items():
        text = (conf / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_")
        node = OmegaConf.load(conf / f"{name}.yaml")
        assert {"override /dataset": dataset} in node.defaults
        assert {"override /readout": "exp_mean_v"} in node.defaults
        assert {"override /scheduler": "warmup_ema_halving"} in node.defaults
        assert [a.name for a in node.dataset.augment] == augs
        assert node.dataset.augment[0].max_shift == 40
        assert node.trainer.epochs == epochs and node.trainer.batch_size == 32 and node.optimizer.lr == 1e-3
        assert node.network.recurrent is True and node.network.regularizer.nu == 14.0
        assert dict(node.network.init) == dict(
            ff_mean=0.03, ff_std=0.01, rec_mean=0.0, rec_std=0.02, out_mean=0.0, out_std=0.03
        )
        strength = OmegaConf.to_container(node.network.regularizer, resolve=False)["strength"]
        for size, value in table.items():
            assert f"{size}: {value}" in strength
    assert (conf / "shd_fast.yaml").read_text().startswith("# @package _global_")


@pytest.mark.parametrize("size, strength", [(256, 2.5e-9), (512, 5e-10), (1024, 2.5e-10)])
def test_ssc_size_switch_picks_the_regulariser(size, strength):
    from eventkit.plugin import compose, validate

    cfg = validate(compose(["+experiment=ssc", f"network.hidden={size}"]))
    assert cfg.network.regularizer.strength == strength and cfg.dataset.name == "ssc"
