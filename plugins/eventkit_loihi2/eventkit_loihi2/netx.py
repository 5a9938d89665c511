"""Write the chip network as a NetX HDF5 file (``model.net``) and sample inputs (``samples.npz``).

The file is what lava-dl's ``netx.hdf5.Network(net_config="model.net")`` loads unchanged, so a
Loihi 2 user runs it in their own Lava (with lava-loihi for the chip)::

    /layer/0      type b'input', shape [n_in]                (no neuron: spikes enter the first
                                                              dense synapse directly)
    /layer/1..L   type b'dense' or b'dense_rec', shape [n],
                  weight (n, n_pre) integers, weight_rec (n, n) for dense_rec,
                  delay (n, n_pre) in steps (only when a layer has non-zero delays),
                  neuron/ {type b'CUBA', iDecay, vDecay, vThMant, refDelay, gradedSpike}

The last dense layer is the readout (vThMant so high it never fires; read its voltage ``v``).
NetX maps CUBA to Lava's LIF with du = iDecay - 1, dv = vDecay, vth = vThMant, bias_exp 6 and
rescales the integer weights into the synapse itself (see :func:`emulator.netx_synapses`).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .emulator import EmulatorResult
from .quantize import ChipNetwork, chip_delays


def _text(group: h5py.Group, key: str, value: str) -> None:
    group.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def write_netx(chip: ChipNetwork, path: str | Path) -> Path:
    """Write ``chip`` to ``path`` in the NetX layout (written to a temp name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    try:
        _write(chip, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return path


def _write(chip: ChipNetwork, tmp: Path) -> None:
    with h5py.File(tmp, "w") as f:
        f.attrs["producer"] = "eventkit_loihi2"
        f.attrs["dt_ms"] = chip.dt
        f.attrs["n_steps"] = chip.n_steps
        layers = f.create_group("layer")
        inp = layers.create_group("0")
        _text(inp, "type", "input")
        inp.create_dataset("shape", data=np.array([chip.n_in], dtype=np.int64))
        for k, layer in enumerate(chip.layers, start=1):
            g = layers.create_group(str(k))
            if layer.delay is not None and np.any(layer.delay) and layer.w_rec is not None:
                raise ValueError(
                    f"{layer.name}: delays on a recurrent layer cannot be exported " "to NetX (see quantize.quantize)"
                )
            _text(g, "type", "dense_rec" if layer.w_rec is not None else "dense")
            g.create_dataset("shape", data=np.array([layer.n], dtype=np.int64))
            g.create_dataset("weight", data=layer.w_ff.astype(np.int32))
            if layer.w_rec is not None:
                g.create_dataset("weight_rec", data=layer.w_rec.astype(np.int32))
            if layer.delay is not None and np.any(layer.delay):
                g.create_dataset("delay", data=layer.delay.astype(np.int32))
            nrn = g.create_group("neuron")
            _text(nrn, "type", "CUBA")
            nrn.create_dataset("iDecay", data=np.int64(layer.i_decay))
            nrn.create_dataset("vDecay", data=np.int64(layer.v_decay))
            nrn.create_dataset("vThMant", data=np.int64(layer.v_th_mant))
            nrn.create_dataset("refDelay", data=np.int64(1))
            nrn.create_dataset("gradedSpike", data=np.bool_(False))
            g.attrs["name"] = layer.name
            g.attrs["weight_exp"] = layer.weight_exp


def write_samples(
    data, result: EmulatorResult, n: int, path: str | Path, n_steps: int | None = None, readout: str | None = None
) -> Path:
    """The first ``n`` samples: inputs, emulator voltages and spike counts, labels, predictions;
    with ``readout`` also the chip classification (``readout``) and its first step
    (``readout_offset``), so a chip run's voltages can be classified as the emulator did."""
    n = int(min(n, len(data), result.v_out.shape[0]))
    # the chip may run longer than the data (see emulator.emulate's offset): zero input there
    n_steps = int(n_steps or result.v_out.shape[1])
    raster = np.zeros((n, n_steps, data.n_channels), dtype=np.uint8)
    for k in range(n):
        s, c = data.sample(k)
        keep = s < n_steps
        raster[k, s[keep], c[keep]] = 1  # binary: a Loihi input spike carries no count
    arrays = dict(
        inputs=raster,
        v_out=result.v_out[:n, :n_steps].astype(np.int32),
        labels=np.asarray(data.labels[:n], dtype=np.int64),
        predictions=result.predictions[:n].astype(np.int64),
        dt=np.float64(data.dt),
    )
    if readout is not None:
        arrays.update(readout=np.str_(readout), readout_offset=np.int64(result.offset))
    for i, counts in enumerate(result.hidden_counts()):
        arrays[f"hidden_counts_{i}"] = counts[:n].astype(np.int32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def read_netx(path: str | Path, dt: float = 1.0, n_steps: int = 0) -> ChipNetwork:
    """Read a NetX file of the layout written here back into a ChipNetwork (for benchmarks and
    round-trip checks; dense / dense_rec layers with CUBA neurons only)."""
    from .quantize import ChipLayer

    layers = []
    with h5py.File(path, "r") as f:
        dt = float(f.attrs.get("dt_ms", dt))
        n_steps = int(f.attrs.get("n_steps", n_steps))
        groups = f["layer"]
        keys = sorted(groups.keys(), key=int)
        if not keys or groups[keys[0]]["type"][0] != b"input":
            raise ValueError(f"{path}: layer/0 must be the input layer")
        n_in = int(np.prod(groups[keys[0]]["shape"][()]))
        for key in keys[1:]:
            g = groups[key]
            kind = g["type"][0].decode()
            if kind not in ("dense", "dense_rec"):
                raise ValueError(f"{path}: layer/{key} has type {kind!r}; only dense and " "dense_rec are supported")
            nrn = g["neuron"]
            if nrn["type"][0] != b"CUBA":
                raise ValueError(f"{path}: layer/{key} neuron must be CUBA")
            w_rec = g["weight_rec"][()].astype(np.int32) if kind == "dense_rec" else None
            delay = (
                chip_delays(
                    g["delay"][()], g["weight"].shape, f"{path}: layer/{key}/delay", "Loihi 2 cannot hold such delays"
                )
                if "delay" in g
                else None
            )
            if delay is not None and np.any(delay) and w_rec is not None:
                raise ValueError(
                    f"{path}: layer/{key} is dense_rec with delays, which NetX applies "
                    "to the recurrent synapse too; such a file does not run as trained"
                )
            layers.append(
                ChipLayer(
                    str(g.attrs.get("name", f"layer{key}")),
                    g["weight"][()].astype(np.int32),
                    w_rec,
                    delay,
                    int(g.attrs.get("weight_exp", 0)),
                    int(nrn["iDecay"][()]),
                    int(nrn["vDecay"][()]),
                    int(nrn["vThMant"][()]),
                    key != keys[-1],
                )
            )
    return ChipNetwork(dt, n_steps, n_in, layers[-1].n, layers)
