"""Run-directory writer: atomic files, safe checkpoints, the section-6 contract."""

import json

import pytest
import torch

from eventkit.base.files import atomic_path, json_default, write_json
from eventkit.rundir.checkpoints import load_checkpoint, optimizer_from_flat, optimizer_to_flat, save_checkpoint
from eventkit.rundir.layout import RunDir, read_metrics


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "summary.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"a": 2, "trunc')
            raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"a": 1}  # the old complete file survives
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left behind


def test_one_json_encoder_for_numbers_arrays_tensors_and_paths(tmp_path):
    import numpy as np

    obj = {
        "n": np.int64(3),
        "x": np.float32(0.5),
        "ok": np.bool_(True),
        "a": np.arange(3),
        "t": torch.tensor([1.5, 2.0]),
        "p": tmp_path / "f",
    }
    assert json.loads(json.dumps(obj, default=json_default)) == {
        "n": 3,
        "x": 0.5,
        "ok": True,
        "a": [0, 1, 2],
        "t": [1.5, 2.0],
        "p": str(tmp_path / "f"),
    }
    with pytest.raises(TypeError, match="not JSON-serialisable: object"):
        json.dumps({"o": object()}, default=json_default)  # never written as a meaningless string


def test_checkpoint_round_trip_is_safetensors_without_pickle(tmp_path):
    tensors = {"model.ff0": torch.randn(3, 4), "model.out": torch.randn(2, 3)}
    save_checkpoint(tmp_path / "c.safetensors", tensors, {"epoch": 3, "best": 0.5})
    raw = (tmp_path / "c.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])  # safetensors: a JSON header, then raw tensor bytes
    assert set(header) == {"model.ff0", "model.out", "__metadata__"}
    assert b"\x80\x04" not in raw[:2] and not raw.startswith(b"PK")  # not a pickle, not a torch zip
    loaded, meta = load_checkpoint(tmp_path / "c.safetensors")
    assert meta == {"epoch": 3, "best": 0.5}
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)


def test_missing_checkpoint_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_optimizer_state_round_trip():
    p = torch.nn.Parameter(torch.ones(4))
    opt = torch.optim.Adam([p], lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        (p**2).sum().backward()
        opt.step()
    tensors, meta = optimizer_to_flat(opt)
    tensors = {k: v.clone() for k, v in tensors.items()}  # as read back from disk
    meta = json.loads(json.dumps(meta))  # the non-tensor part is plain JSON
    q = torch.nn.Parameter(p.detach().clone())
    opt2 = torch.optim.Adam([q], lr=1.0)
    optimizer_from_flat(opt2, tensors, meta)
    for o in (opt, opt2):
        o.zero_grad()
    (p**2).sum().backward()
    (q**2).sum().backward()
    opt.step()
    opt2.step()
    assert torch.equal(p, q)


def test_metrics_file_is_whole_lines_and_stages_are_timed(tmp_path):
    rd = RunDir(tmp_path)
    rd.start_manifest(seed=5, plugins=[])
    with rd.stage("train"):
        rd.append_metrics({"epoch": 1, "train_loss": 0.5})
        rd.append_metrics({"epoch": 2, "train_loss": 0.25})
    rd.finish_manifest()
    assert read_metrics(tmp_path) == [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.25}]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["seed"] == 5 and "train" in manifest["stages_s"] and manifest["end_time"]
    assert manifest["dependencies"]["torch"] and manifest["python"]
