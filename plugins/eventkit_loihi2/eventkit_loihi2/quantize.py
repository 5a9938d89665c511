"""Float network (its typed topology and parameters, :class:`FloatNetwork`) -> the integer network
Loihi 2 runs.

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
from typing import Any, Mapping

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


@dataclass(frozen=True)
class FloatNetwork:
    """What the quantiser reads of a trained network: its typed ``topology`` (populations with
    their neuron models, connections with their kind and :class:`~eventkit.plugin.Delay`), the
    float weights by connection name ((n_post, n_pre)), the delays in ms by delayed connection
    name, the grid and the readout's description."""

    topology: Any  # eventkit.plugin.Topology
    weights: Mapping[str, np.ndarray]
    delays: Mapping[str, np.ndarray]
    dt: float
    n_steps: int
    readout: dict = field(default_factory=dict)

    @classmethod
    def of(cls, net: Any) -> "FloatNetwork":
        """The parameters of ``net`` (an :class:`~eventkit.plugin.EventpropNet`) as it holds them
        (float64): the float weights, never the fake-quantised ones it may simulate with."""

        def value(name: str) -> np.ndarray:
            return getattr(net, name).detach().cpu().numpy().astype(np.float64)

        topology = net.topology
        return cls(
            topology,
            {c.name: value(c.name) for c in topology.connections},
            {c.name: value(c.delay_name) for c in topology.delayed},
            float(net.dt),
            int(net.n_steps),
            dict(net.readout.describe()),
        )

    @classmethod
    def layered(
        cls,
        weights: Mapping[str, np.ndarray],
        neurons: list,
        output: Any,
        n_steps: int,
        dt: float = 1.0,
        delays: Mapping[str, np.ndarray] | None = None,
        readout: dict | None = None,
    ) -> "FloatNetwork":
        """A layered network from arrays (benchmarks, tests): ``weights`` by connection name
        (``ff<k>``, ``rec<k>`` for a recurrent layer k, ``out``), one neuron model per hidden
        layer, the ``output`` model, ``delays`` (ms) by connection name (round mode, at most
        62 steps)."""
        from eventkit.plugin import Delay, Topology

        hidden = [np.shape(weights[f"ff{k}"])[0] for k in range(len(neurons))]
        recurrent = [f"rec{k}" in weights for k in range(len(neurons))]
        delays = dict(delays or {})
        spec = {name: Delay(max=MAX_DELAY * dt, learn=False, mode="round") for name in delays}
        n_in, n_out = np.shape(weights["ff0"])[1], np.shape(weights["out"])[0]
        topology = Topology.build(n_in, n_out, hidden, recurrent, neurons, output, spec)
        return cls(topology, dict(weights), delays, float(dt), int(n_steps), dict(readout or {}))

    def connection(self, post: Any, kind: str) -> Any | None:
        """The connection of ``kind`` into population ``post``, or None."""
        return next((c for c in self.topology.connections if c.post.index == post.index and c.kind == kind), None)


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


def _as2d(x, n_post: int, n_pre: int, where) -> np.ndarray:
    a, shape = np.asarray(x), (int(n_post), int(n_pre))
    if a.shape != shape:
        raise ValueError(f"{where}: expected shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{where}: contains NaN or inf; the network cannot be quantised")
    return a


def _delay_steps(fnet: FloatNetwork, conn: Any, shape, where: str, key: str) -> np.ndarray | None:
    """A connection's delays (ms) in whole steps, rounded as the round delay mode simulates them;
    None for a connection without delays."""
    if conn is None or conn.delay is None:
        return None
    ms = np.asarray(fnet.delays[conn.name], dtype=np.float64)
    if not np.all(np.isfinite(ms)):
        raise ValueError(f"{where}.{key}: delays contain NaN or inf")
    fix = f"train with target=loihi2 (round mode, max {MAX_DELAY} steps) or clip them"
    return chip_delays(np.rint(ms / fnet.dt), shape, where, fix)


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
    fnet: FloatNetwork,
    percentile: float = 99.0,
    bits: int = 8,
    readout_vth: int = READOUT_VTH_MANT,
    output_exp_shift: int = 0,
) -> tuple[ChipNetwork, QuantReport]:
    """Quantise ``fnet`` (:meth:`FloatNetwork.of` a trained network) for Loihi 2: each hidden
    layer (its feed-forward and recurrent weights on one scale, its threshold and decays), then the
    readout. Returns the chip network and the error report.

    ``output_exp_shift`` (<= 0) lowers the readout's weight scale by that many powers of two, to
    keep a large readout voltage below its threshold (the readout's scale does not change the
    classification, see :func:`eventkit_loihi2.target.LoihiTarget.deploy`)."""
    bits = _check_settings(percentile, bits, readout_vth)
    layers: list[ChipLayer] = []
    errors: list[dict] = []
    floats: dict = {}
    chips: dict = {}
    gains = []
    for pop in fnet.topology.hidden:
        layer, rep, group, g = _hidden_layer(fnet, pop, percentile, bits)
        layers.append(layer)
        errors.append(rep)
        floats[layer.name] = np.concatenate([x.ravel() for x in group]) * 2.0**layer.weight_exp
        chips[layer.name] = np.concatenate([x.ravel() for x in (layer.w_ff, layer.w_rec) if x is not None])
        gains.append(dict(layer=layer.name, neuron=pop.model.name, gain=g))
    out, rep, w_out = _readout_layer(fnet, percentile, bits, readout_vth, output_exp_shift)
    layers.append(out)
    errors.append(rep)
    floats["output"] = w_out.ravel() * 2.0**out.weight_exp
    chips["output"] = out.w_ff.ravel()
    topo = fnet.topology
    chip = ChipNetwork(
        fnet.dt,
        int(fnet.n_steps),
        topo.input.size,
        topo.output.size,
        layers,
        dict(fnet.readout),
        dict(gains=gains, output_neuron=topo.output.model.name, percentile=percentile, bits=bits),
    )
    return chip, QuantReport(errors, floats, chips)


def _check_settings(percentile: float, bits: int, readout_vth: int) -> int:
    """The quantisation settings checked; returns ``bits`` as an int."""
    if not 0 < percentile <= 100:
        raise ValueError(f"quantization.percentile must be in (0, 100], got {percentile}")
    if not 2 <= int(bits) <= 8:
        raise ValueError(f"quantization.bits must be in 2..8 (Loihi 2 weights are 8-bit), got {bits}")
    if not 0 < readout_vth <= MAX_VTH_MANT:
        raise ValueError(f"quantization.readout_vth must be in 1..{MAX_VTH_MANT}, got {readout_vth}")
    return int(bits)


def _hidden_layer(fnet: FloatNetwork, pop: Any, percentile: float, bits: int):
    """Hidden population ``pop`` on the chip: (ChipLayer, error report, its float weights, gain g)."""
    where = f"layers[{pop.index}]"
    neuron = dict(pop.model.describe())
    if neuron.get("name") not in SUPPORTED_NEURONS:
        raise ValueError(f"{where}.neuron.name={neuron.get('name')!r}: Loihi 2 export supports {SUPPORTED_NEURONS}")
    ff, rec = fnet.connection(pop, "ff"), fnet.connection(pop, "rec")
    w_ff = _as2d(fnet.weights[ff.name], pop.size, ff.pre.size, f"{where}.w_ff")
    w_rec = _as2d(fnet.weights[rec.name], pop.size, pop.size, f"{where}.w_rec") if rec is not None else None
    group = [w for w in (w_ff, w_rec) if w is not None]
    e, vth, theta, g = _hidden_scale(group, neuron, fnet.dt, percentile, bits, where)
    i_decay, v_decay = neuron_decays(neuron, fnet.dt, where)
    q_ff = _quantise(w_ff, e, bits)
    q_rec = _quantise(w_rec, e, bits) if w_rec is not None else None
    delay = _hidden_delays(fnet, ff, rec, where)
    name = f"hidden{pop.index}"
    layer = ChipLayer(name, q_ff, q_rec, delay, e, i_decay, v_decay, vth, True)
    rep = _layer_error(name, group, [q for q in (q_ff, q_rec) if q is not None], e, bits)
    rep.update(
        v_th_mant=vth,
        i_decay=i_decay,
        v_decay=v_decay,
        threshold_rel_error=abs(vth * g / 2.0**e - theta) / theta,
        gain=g,
    )
    return layer, rep, group, g


def _hidden_scale(group: list[np.ndarray], neuron: dict, dt: float, percentile: float, bits: int, where: str):
    """(weight exponent e, vThMant, threshold, voltage gain g): the percentile scale, lowered
    until the threshold fits the 17-bit field."""
    e, _ = weight_exponent(group, percentile, bits)
    g = voltage_gain(neuron, dt)
    theta = float(neuron.get("threshold", 1.0))
    if theta <= 0:
        raise ValueError(f"{where}.neuron.threshold must be > 0, got {theta}")
    while round(theta * 2.0**e / g) > MAX_VTH_MANT:
        e -= 1
    vth = int(round(theta * 2.0**e / g))
    if vth < 1:
        raise ValueError(f"{where}: threshold {theta} rounds to vThMant=0 at weight scale 2**{e}")
    return e, vth, theta, g


def _hidden_delays(fnet: FloatNetwork, ff: Any, rec: Any, where: str) -> np.ndarray | None:
    """The feed-forward delays in steps; recurrent delays, and delays into a recurrent layer, are
    refused (NetX cannot hold them)."""
    delay = _delay_steps(fnet, ff, ff.shape, where, "d_ff")
    if rec is not None and rec.delay is not None and np.any(np.asarray(fnet.delays[rec.name])):
        raise ValueError(
            f"{where}.d_rec: a recurrent connection's delays cannot be exported: NetX reuses "
            "the feed-forward delays for the recurrent synapse and drops its weight exponent. "
            "Train with network.delays.rec=null"
        )
    if delay is not None and np.any(delay) and rec is not None:
        raise ValueError(
            f"{where}: delays on a recurrent layer cannot be exported: NetX builds a dense_rec "
            "layer's delayed synapses without the weight exponent and reuses the feed-forward "
            "delays for the recurrent synapse. Use delays only on feed-forward layers."
        )
    return delay


def _readout_layer(fnet: FloatNetwork, percentile: float, bits: int, readout_vth: int, exp_shift: int):
    """The readout population on the chip (never fires): (ChipLayer, error report, float weights)."""
    pop = fnet.topology.output
    neuron = dict(pop.model.describe())
    if neuron.get("name") not in SUPPORTED_OUTPUTS:
        raise ValueError(f"output.neuron.name={neuron.get('name')!r}: Loihi 2 export supports {SUPPORTED_OUTPUTS}")
    conn = fnet.connection(pop, "out")
    w_out = _as2d(fnet.weights[conn.name], pop.size, conn.pre.size, "output.w")
    e, _ = weight_exponent([w_out], percentile, bits)
    e += int(exp_shift)
    i_decay, v_decay = neuron_decays(neuron, fnet.dt, "output")
    q_out = _quantise(w_out, e, bits)
    delay = _delay_steps(fnet, conn, w_out.shape, "output", "d")
    layer = ChipLayer("output", q_out, None, delay, e, i_decay, v_decay, int(readout_vth), False)
    rep = _layer_error("output", [w_out], [q_out], e, bits)
    rep.update(v_th_mant=int(readout_vth), i_decay=i_decay, v_decay=v_decay)
    return layer, rep, w_out


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
def chip_parameters(fnet: FloatNetwork, percentile: float = 99.0, bits: int = 8) -> list[dict]:
    """Per population (hidden layers, then the readout) the integers the chip will use and the
    float values they stand for: weight_exp e (float weight = q / 2**e), i_decay, v_decay, v_th_mant,
    du = i_decay / 4096, dv = v_decay / 4096, threshold_chip = v_th_mant * g / 2**e.

    A quantisation-aware forward pass uses these with :func:`fake_quantize` on the weights so it
    computes what the chip computes (up to the truncating shifts)."""
    chip, _ = quantize(fnet, percentile, bits)
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
