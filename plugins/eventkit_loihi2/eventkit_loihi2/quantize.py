"""Float network (``net.export()``) -> the integer network Loihi 2 runs.

Loihi 2's CUBA neuron (Lava's fixed-point LIF, see :mod:`eventkit_loihi2.emulator`) per step::

    u <- u (4096 - iDecay) / 4096 + (a << 6)        a = sum of 8-bit weights of last step's spikes
    v <- v (4096 - vDecay) / 4096 + u
    spike if v > vThMant << 6;  v <- 0 on spike (u is kept)

Quantisation, per layer (recurrent and feed-forward weights share one scale, because both feed
the same current ``u``)::

    S = 2**e,  e = floor(log2(min(qmax / P+, -qmin / P-)))   P+/P- = percentile of the positive /
                                                             negative weights' magnitudes
    q = clip(round(w S), qmin, qmax)      qmin, qmax = -2**(bits-1), 2**(bits-1) - 1
    iDecay = round(4096 (1 - exp(-dt / tau_syn))),  vDecay = round(4096 (1 - exp(-dt / tau_mem)))
    vThMant = round(theta S / g)

``g`` is how much of the float current reaches the float voltage per step:

* ``loihi_cuba`` (the chip's own dynamics in float: u <- u (1 - du) + g a, v <- v (1 - dv) + u with
  du = iDecay / 4096, dv = vDecay / 4096 and input gain g = dv, see :mod:`eventkit_loihi2.neuron`):
  chip state = 64 S / g x float state, so the chip equals the float model up to weight rounding
  and the truncating shifts. :func:`loihi_cuba_float_params` gives the exact du, dv.
* ``lif`` (exact exponential integration: I <- beta I + sum w, V <- alpha V + c (beta - alpha) I,
  c = tau_syn / (tau_syn - tau_mem)): the chip current ``u`` plays I (1 - du = beta) and the chip
  voltage gets the whole ``u`` each step while the float voltage gets ``g = c (beta - alpha)`` of
  I; so chip v = 64 S / g x float V and the threshold scales by 1 / g. Both models see a spike of
  step t in the voltage at step t + 1, so their timing matches.

The readout (LI, non-spiking) gets vThMant = 2**16 (so ``v`` never reaches ``2**22`` and it never
fires; 2**16 is what worked on the chip, 2**17 does not fit the 17-bit field). Its voltage is
read every step; its scale does not matter for classification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DECAY_UNITY = 4096  # Loihi's decays are integers in units of 1/4096 per step
MAX_VTH_MANT = 2**17 - 1  # vth is a 17-bit unsigned field
READOUT_VTH_MANT = 2**16
MAX_DELAY = 62
SUPPORTED_NEURONS = ("lif", "loihi_cuba")
SUPPORTED_OUTPUTS = ("li", "loihi_li", "loihi_cuba", "lif")


@dataclass
class ChipLayer:
    """One population on the chip with the synapses that feed it (all integers)."""

    name: str
    w_ff: np.ndarray  # int32 (n, n_pre), values in [qmin, qmax]
    w_rec: np.ndarray | None  # int32 (n, n) or None
    delay: np.ndarray | None  # int32 (n, n_pre) axon->synapse delay in steps, or None
    weight_exp: int  # float weight = q / 2**weight_exp
    i_decay: int
    v_decay: int
    v_th_mant: int
    spiking: bool

    @property
    def n(self) -> int:
        return int(self.w_ff.shape[0])


@dataclass
class ChipNetwork:
    dt: float
    n_steps: int
    n_in: int
    n_out: int
    layers: list[ChipLayer]  # hidden layers in order, then the readout layer
    readout: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)  # float-side info: neuron names, gains

    @property
    def hidden(self) -> list[ChipLayer]:
        return self.layers[:-1]

    @property
    def output(self) -> ChipLayer:
        return self.layers[-1]


@dataclass
class QuantReport:
    """Per-layer quantisation error (float units) and the data for the histogram plot."""

    layers: list[dict]
    float_weights: dict  # name -> float weights times S (what would be stored without rounding)
    chip_weights: dict  # name -> integer weights


def decay(tau: float, dt: float, what: str = "tau") -> int:
    """round(4096 (1 - exp(-dt / tau))): the chip's 12-bit decay for time constant ``tau`` (ms)."""
    if not tau > 0:
        raise ValueError(f"{what} must be > 0 ms, got {tau}")
    return int(round(DECAY_UNITY * (1.0 - math.exp(-dt / tau))))


def cuba_decays(tau_syn: float, tau_mem: float, dt: float) -> tuple[int, int]:
    """(iDecay, vDecay) for a neuron with these time constants on a ``dt`` grid."""
    return decay(tau_syn, dt, "tau_syn"), decay(tau_mem, dt, "tau_mem")


def loihi_cuba_float_params(tau_syn: float, tau_mem: float, dt: float) -> dict:
    """Exact float parameters of the ``loihi_cuba`` neuron that make it the chip's neuron.

    du = iDecay / 4096 and dv = vDecay / 4096 with the integer decays the chip will use; a float
    net with these (and weights w, threshold theta) runs on the chip as q = round(w 2**e),
    vThMant = round(theta 2**e): only weight/threshold rounding and the truncating shifts differ.
    """
    i_decay, v_decay = cuba_decays(tau_syn, tau_mem, dt)
    return dict(du=i_decay / DECAY_UNITY, dv=v_decay / DECAY_UNITY, i_decay=i_decay, v_decay=v_decay)


def voltage_gain(neuron: dict, dt: float) -> float:
    """g: float voltage gained per step per unit of float current (see module docstring)."""
    name = neuron.get("name", "lif")
    if name == "loihi_cuba":
        # the float model scales its input by g = vDecay / 4096 (eventkit_loihi2.neuron.LoihiCUBA)
        if "gain" in neuron:
            return float(neuron["gain"])
        return neuron_decays(neuron, dt, "loihi_cuba")[1] / DECAY_UNITY
    tau_mem, tau_syn = float(neuron["tau_mem"]), float(neuron["tau_syn"])
    alpha, beta = math.exp(-dt / tau_mem), math.exp(-dt / tau_syn)
    if abs(tau_syn - tau_mem) < 1e-9 * tau_mem:
        return dt / tau_mem * alpha
    return tau_syn / (tau_syn - tau_mem) * (beta - alpha)


def neuron_decays(neuron: dict, dt: float, where: str) -> tuple[int, int]:
    """Chip decays of an exported neuron dict: i_decay / v_decay (integers), else du / dv
    (fractions per step, times 4096), else from tau_syn / tau_mem."""
    try:
        if "i_decay" in neuron and "v_decay" in neuron:
            i_decay, v_decay = int(neuron["i_decay"]), int(neuron["v_decay"])
        elif "du" in neuron and "dv" in neuron:  # decays as fractions per step
            i_decay = int(round(float(neuron["du"]) * DECAY_UNITY))
            v_decay = int(round(float(neuron["dv"]) * DECAY_UNITY))
        else:
            i_decay, v_decay = cuba_decays(float(neuron["tau_syn"]), float(neuron["tau_mem"]), dt)
    except KeyError as err:
        raise ValueError(
            f"{where}: neuron needs tau_syn and tau_mem (or i_decay and v_decay); " f"missing {err}"
        ) from None
    for label, value in (("iDecay", i_decay), ("vDecay", v_decay)):
        if not 0 <= value <= DECAY_UNITY:
            raise ValueError(f"{where}: {label}={value} outside [0, 4096]")
    if i_decay < 1:
        raise ValueError(
            f"{where}: iDecay rounds to 0 (tau_syn too long for dt={dt} ms); NetX stores "
            "du = iDecay - 1, so iDecay must be >= 1: shorten tau_syn"
        )
    return i_decay, v_decay


def weight_exponent(weights: list[np.ndarray], percentile: float, bits: int) -> tuple[int, dict]:
    """Largest e with the ``percentile`` of positive and of negative |w| inside the ``bits`` range."""
    qmax, qmin = 2 ** (bits - 1) - 1, -(2 ** (bits - 1))
    flat = np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in weights])
    pos, neg = flat[flat > 0], -flat[flat < 0]
    p_pos = float(np.percentile(pos, percentile)) if pos.size else 0.0
    p_neg = float(np.percentile(neg, percentile)) if neg.size else 0.0
    scales = []
    if p_pos > 0:
        scales.append(qmax / p_pos)
    if p_neg > 0:
        scales.append(-qmin / p_neg)
    if not scales:
        raise ValueError(
            "all weights of a layer are zero: nothing to quantise (a zero layer "
            "cannot be exported to NetX either); check the trained network"
        )
    e = int(math.floor(math.log2(min(scales))))
    return e, dict(p_pos=p_pos, p_neg=p_neg)


def _quantise(w: np.ndarray, e: int, bits: int) -> np.ndarray:
    qmax, qmin = 2 ** (bits - 1) - 1, -(2 ** (bits - 1))
    return np.clip(np.round(np.asarray(w, np.float64) * 2.0**e), qmin, qmax).astype(np.int32)


def _layer_error(name: str, floats: list[np.ndarray], chips: list[np.ndarray], e: int, bits: int) -> dict:
    w = np.concatenate([np.asarray(f, np.float64).ravel() for f in floats])
    q = np.concatenate([c.ravel() for c in chips]).astype(np.float64)
    back = q / 2.0**e
    err = back - w
    qmax, qmin = 2 ** (bits - 1) - 1, -(2 ** (bits - 1))
    clipped = np.mean((np.round(w * 2.0**e) > qmax) | (np.round(w * 2.0**e) < qmin))
    norm = float(np.linalg.norm(w))
    return dict(
        layer=name,
        weight_exp=e,
        n_weights=int(w.size),
        rel_rms_error=float(np.linalg.norm(err) / norm) if norm > 0 else 0.0,
        max_abs_error=float(np.max(np.abs(err))) if err.size else 0.0,
        clipped_fraction=float(clipped),
        zero_fraction=float(np.mean(q == 0)) if q.size else 0.0,
    )


def _as2d(x, shape, where) -> np.ndarray:
    a = np.asarray(x)
    if a.shape != shape:
        raise ValueError(f"{where}: expected shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{where}: contains NaN or inf; the network cannot be quantised")
    return a


def _delay(layer: dict, shape, where, dt: float, ms_key: str) -> np.ndarray | None:
    """A connection's delays in whole steps: ``delay`` (steps), else the float network's
    ``ms_key`` (ms, rounded to steps as the round delay mode simulates them)."""
    d = layer.get("delay")
    if d is None and layer.get(ms_key) is not None:
        ms = np.asarray(layer[ms_key], dtype=np.float64)
        if not np.all(np.isfinite(ms)):
            raise ValueError(f"{where}.{ms_key}: delays contain NaN or inf")
        d = np.rint(ms / dt)
    if d is None:
        return None
    return chip_delays(d, shape, where, f"train with target=loihi2 (round mode, max {MAX_DELAY} " "steps) or clip them")


def chip_delays(d, shape, where: str, fix: str) -> np.ndarray:
    """``d`` broadcast to the synapses' ``shape`` (a scalar or 1-D array is broadcast, as
    lava-dl does) and checked against what the chip holds: integers in 0..MAX_DELAY steps."""
    raw = np.asarray(d)
    try:
        d = np.broadcast_to(raw, shape)
    except ValueError:
        raise ValueError(f"{where}: delays of shape {raw.shape} do not fit the weights {shape}") from None
    if not np.all(np.isfinite(d)) or np.any(d != np.round(d)) or d.min() < 0 or d.max() > MAX_DELAY:
        raise ValueError(
            f"{where}: delays must be integers in 0..{MAX_DELAY} steps " f"(found {d.min():g}..{d.max():g}); {fix}"
        )
    return np.ascontiguousarray(d, dtype=np.int32)


def quantize(
    export: dict,
    percentile: float = 99.0,
    bits: int = 8,
    readout_vth: int = READOUT_VTH_MANT,
    output_exp_shift: int = 0,
) -> tuple[ChipNetwork, QuantReport]:
    """Quantise ``net.export()`` for Loihi 2. Returns the chip network and the error report.

    ``output_exp_shift`` (<= 0) lowers the readout's weight scale by that many powers of two, to
    keep a large readout voltage below its threshold (the readout's scale does not change the
    classification, see :func:`eventkit_loihi2.target.LoihiTarget.deploy`)."""
    if not 0 < percentile <= 100:
        raise ValueError(f"quantization.percentile must be in (0, 100], got {percentile}")
    if not 2 <= int(bits) <= 8:
        raise ValueError(f"quantization.bits must be in 2..8 (Loihi 2 weights are 8-bit), got {bits}")
    if not 0 < readout_vth <= MAX_VTH_MANT:
        raise ValueError(f"quantization.readout_vth must be in 1..{MAX_VTH_MANT}, got {readout_vth}")
    bits = int(bits)
    for key in ("dt", "n_steps", "n_in", "n_out", "layers", "output"):
        if key not in export:
            raise ValueError(f"network export misses key {key!r} (expected net.export())")
    dt = float(export["dt"])
    n_pre = int(export["n_in"])
    layers: list[ChipLayer] = []
    errors: list[dict] = []
    floats: dict = {}
    chips: dict = {}
    gains = []
    for k, layer in enumerate(export["layers"]):
        where = f"layers[{k}]"
        neuron = dict(layer.get("neuron") or {})
        name = neuron.get("name", "lif")
        if name not in SUPPORTED_NEURONS:
            raise ValueError(f"{where}.neuron.name={name!r}: Loihi 2 export supports " f"{SUPPORTED_NEURONS}")
        w_ff = np.asarray(layer["w_ff"])
        n = w_ff.shape[0]
        w_ff = _as2d(w_ff, (n, n_pre), f"{where}.w_ff")
        w_rec = layer.get("w_rec")
        if w_rec is not None:
            w_rec = _as2d(w_rec, (n, n), f"{where}.w_rec")
        group = [w_ff] + ([w_rec] if w_rec is not None else [])
        e, _ = weight_exponent(group, percentile, bits)
        g = voltage_gain(neuron, dt)
        theta = float(neuron.get("threshold", 1.0))
        if theta <= 0:
            raise ValueError(f"{where}.neuron.threshold must be > 0, got {theta}")
        # lower the scale until the threshold fits the 17-bit field
        while round(theta * 2.0**e / g) > MAX_VTH_MANT:
            e -= 1
        vth = int(round(theta * 2.0**e / g))
        if vth < 1:
            raise ValueError(f"{where}: threshold {theta} rounds to vThMant=0 at weight scale 2**{e}")
        i_decay, v_decay = neuron_decays(neuron, dt, where)
        q_ff = _quantise(w_ff, e, bits)
        q_rec = _quantise(w_rec, e, bits) if w_rec is not None else None
        lname = f"hidden{k}"
        delay = _delay(layer, (n, n_pre), where, dt, "d_ff")
        if layer.get("d_rec") is not None and np.any(np.asarray(layer["d_rec"])):
            raise ValueError(
                f"{where}.d_rec: a recurrent connection's delays cannot be exported: NetX reuses "
                "the feed-forward delays for the recurrent synapse and drops its weight exponent. "
                "Train with network.delays.rec=null"
            )
        if delay is not None and np.any(delay) and q_rec is not None:
            raise ValueError(
                f"{where}: delays on a recurrent layer cannot be exported: NetX builds a dense_rec "
                "layer's delayed synapses without the weight exponent and reuses the feed-forward "
                "delays for the recurrent synapse. Use delays only on feed-forward layers."
            )
        layers.append(ChipLayer(lname, q_ff, q_rec, delay, e, i_decay, v_decay, vth, True))
        rep = _layer_error(lname, group, [q_ff] + ([q_rec] if q_rec is not None else []), e, bits)
        rep.update(
            v_th_mant=vth,
            i_decay=i_decay,
            v_decay=v_decay,
            threshold_rel_error=abs(vth * g / 2.0**e - theta) / theta,
            gain=g,
        )
        errors.append(rep)
        floats[lname] = np.concatenate([x.ravel() for x in group]) * 2.0**e
        chips[lname] = np.concatenate([x.ravel() for x in ([q_ff] + ([q_rec] if q_rec is not None else []))])
        gains.append(dict(layer=lname, neuron=name, gain=g))
        n_pre = n
    out = export["output"]
    oname = dict(out.get("neuron") or {}).get("name", "li")
    if oname not in SUPPORTED_OUTPUTS:
        raise ValueError(f"output.neuron.name={oname!r}: Loihi 2 export supports {SUPPORTED_OUTPUTS}")
    w_out = _as2d(out["w"], (int(export["n_out"]), n_pre), "output.w")
    e, _ = weight_exponent([w_out], percentile, bits)
    e += int(output_exp_shift)
    i_decay, v_decay = neuron_decays(dict(out.get("neuron") or {}), dt, "output")
    q_out = _quantise(w_out, e, bits)
    layers.append(
        ChipLayer(
            "output",
            q_out,
            None,
            _delay(out, w_out.shape, "output", dt, "d"),
            e,
            i_decay,
            v_decay,
            int(readout_vth),
            False,
        )
    )
    rep = _layer_error("output", [w_out], [q_out], e, bits)
    rep.update(v_th_mant=int(readout_vth), i_decay=i_decay, v_decay=v_decay)
    errors.append(rep)
    floats["output"] = w_out.ravel() * 2.0**e
    chips["output"] = q_out.ravel()
    chip = ChipNetwork(
        dt,
        int(export["n_steps"]),
        int(export["n_in"]),
        int(export["n_out"]),
        layers,
        dict(export.get("readout") or {}),
        dict(gains=gains, output_neuron=oname, percentile=percentile, bits=bits),
    )
    return chip, QuantReport(errors, floats, chips)


def shared_bins(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Bin edges for the before/after histograms of one layer: one bin per chip integer, centred
    on it, covering both. The same edges for both, so a bar's height means the same in both."""
    lo = math.floor(min(before.min(), after.min())) - 1
    hi = math.ceil(max(before.max(), after.max())) + 1
    return np.arange(lo, hi + 1) - 0.5


def plot_histograms(report: QuantReport, path: str | Path) -> Path:
    """Before/after weight histograms per layer (float weights times the scale vs integers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.chip_weights)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        f, q = report.float_weights[name], report.chip_weights[name]
        bins = shared_bins(f, q)  # one set of bins: counts per bin compare directly
        ax.hist(q, bins=bins, alpha=0.45, color="tab:orange", label="8-bit (after)")
        ax.hist(f, bins=bins, histtype="step", color="tab:blue", label="float x 2^e (before)")
        err = next(r for r in report.layers if r["layer"] == name)
        ax.set_title(f"{name} (e={err['weight_exp']}, rms err {100 * err['rel_rms_error']:.1f}%)", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("weight (chip units)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- pieces for quantisation-aware training
def chip_parameters(export: dict, percentile: float = 99.0, bits: int = 8) -> list[dict]:
    """Per population (hidden layers, then the readout) the integers the chip will use and the
    float values they stand for: weight_exp e (float weight = q / 2**e), i_decay, v_decay, v_th_mant,
    du = i_decay / 4096, dv = v_decay / 4096, threshold_chip = v_th_mant * g / 2**e.

    A quantisation-aware forward pass uses these with :func:`fake_quantize` on the weights so it
    computes what the chip computes (up to the truncating shifts)."""
    chip, _ = quantize(export, percentile, bits)
    gains = [g["gain"] for g in chip.source["gains"]] + [1.0]
    out = []
    for layer, g in zip(chip.layers, gains):
        out.append(
            dict(
                layer=layer.name,
                weight_exp=layer.weight_exp,
                bits=bits,
                i_decay=layer.i_decay,
                v_decay=layer.v_decay,
                v_th_mant=layer.v_th_mant,
                du=layer.i_decay / DECAY_UNITY,
                dv=layer.v_decay / DECAY_UNITY,
                threshold_chip=layer.v_th_mant * g / 2.0**layer.weight_exp if layer.spiking else None,
            )
        )
    return out


def fake_quantize(w, weight_exp: int, bits: int = 8, straight_through: bool = True):
    """w rounded to the chip's grid: clip(round(w 2**e), qmin, qmax) / 2**e.

    Works on numpy arrays and torch tensors. For tensors with ``straight_through`` the result is
    ``w + (quantised - w).detach()``: the forward value is the chip's weight, the gradient flows to
    the float weight unchanged (straight-through estimator)."""
    qmax, qmin = 2 ** (bits - 1) - 1, -(2 ** (bits - 1))
    scale = 2.0**weight_exp
    if hasattr(w, "detach"):
        import torch

        q = torch.clamp(torch.round(w * scale), qmin, qmax) / scale
        return w + (q - w).detach() if straight_through else q
    return np.clip(np.round(np.asarray(w, np.float64) * scale), qmin, qmax) / scale
