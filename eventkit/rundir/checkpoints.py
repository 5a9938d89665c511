"""The checkpoint format: safetensors files (plain tensors + JSON metadata, which cannot execute
code when loaded), written atomically.

A training checkpoint holds the network's tensors under ``model.<name>``, the optimizer's tensors
under ``optim.<param id>.<name>`` and everything else (epoch, optimizer and schedule state) as
JSON in the file's ``eventkit`` metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

from eventkit.base.files import atomic_path, json_default
from eventkit.rundir.layout import CHECKPOINTS, LAST

#: prefix of the network's tensors in a checkpoint (the optimizer's are ``optim.``)
MODEL_PREFIX = "model."


def model_tensors(net: Any) -> dict[str, torch.Tensor]:
    """The network's state_dict under checkpoint names (``model.<name>``)."""
    return {f"{MODEL_PREFIX}{k}": v for k, v in net.state_dict().items()}


def model_state(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's state_dict out of a checkpoint's tensors (inverse of :func:`model_tensors`)."""
    return {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}


def save_checkpoint(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Tensors + JSON-serialisable ``meta`` in one safetensors file, written atomically."""
    from safetensors.torch import save_file

    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata={"eventkit": json.dumps(meta, default=json_default)})


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Inverse of :func:`save_checkpoint`. A missing file is an error, never a silent fresh start."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"checkpoint {path} does not exist; check trainer.resume points at a run directory "
            f"that has {CHECKPOINTS}/{LAST}"
        )
    tensors = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {}).get("eventkit", "{}"))
        for key in fh.keys():
            tensors[key] = fh.get_tensor(key)
    return tensors, meta


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON (the rest)."""
    state = optimizer.state_dict()
    tensors, meta_state = {}, {}
    for pid, pstate in state["state"].items():
        meta_state[str(pid)] = {}
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                meta_state[str(pid)][key] = value
    return tensors, {"state": meta_state, "param_groups": state["param_groups"]}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for pid, extra in meta["state"].items():
        state[int(pid)] = dict(extra)
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
