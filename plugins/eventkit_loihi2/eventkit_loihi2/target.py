"""The ``loihi2`` target: chip constraints before training, the deployment pipeline after it.

deploy: quantise -> emulate the whole test set bit-accurately -> NetX export + samples ->
Lava check (``lava: auto|required|off``) -> report.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from omegaconf import OmegaConf

from eventkit.plugin import ConfigError, ConnectionDelay, Target

from .chip_cost import coefficients
from .quantize import MAX_DELAY, SUPPORTED_NEURONS, SUPPORTED_OUTPUTS, ChipNetwork, FloatNetwork, quantize

N_CORES = 128
NEURONS_PER_CORE = 8192
CORE_MEMORY_BYTES = 192 * 1024  # ~192 KB flexible memory per neuron core (docs/loihi2.md section 7)
VOLTAGE_READOUTS = ("sum_v", "mean_v", "exp_mean_v", "max_v", "per_step")
LAVA_MODES = ("auto", "required", "off")
MAX_OUTPUT_SHIFT = 12
CHIP_READOUTS = ("auto", "exp_sum", "sum", "max")
# the chip classification matching each training readout (computed by the host from v)
READOUT_ON_CHIP = dict(exp_mean_v="exp_sum", sum_v="sum", mean_v="sum", max_v="max", per_step="exp_sum")
READOUT_IN_LOOP = ("exp_mean_v", "sum_v", "mean_v", "max_v")  # one value per output neuron


#: the float neuron models that have a counterpart on the chip (``adapt`` trains the counterpart)
CHIP_COUNTERPART = {"lif": "loihi_cuba", "li": "loihi_li"}
#: the settings a counterpart keeps (the float model's other settings have none on the chip)
CHIP_KEYS = ("tau_mem", "tau_syn", "threshold")
PER_NEURON_DECAYS = (
    "network.tau_per_neuron: Loihi 2 through Lava holds one current and one voltage decay per layer (NetX "
    "maps iDecay / vDecay to the LIF process's du / dv, Var(shape=(1,)) in lava-nc 0.10.0). Fix: "
    "network.tau_per_neuron=false (learn one time constant per layer)"
)


DELAY_SLOT_BYTES = 4  # one int32 accumulator per target neuron and delay slot (Lava's DelayDense)


def estimate_cores(sizes: list[int], fan_in: list[int], bits: int = 8, delay_slots: list[int] | None = None) -> dict:
    """Neuron cores per population: enough for its neurons (8192 per core) and for its dense
    synapses (fan-in x n weights of ``bits`` bits, plus a 6-bit delay per synapse and n x slots
    delay-buffer accumulators where the layer has delays, in ~192 KB per core). A rough
    estimate: the real mapping (Lava's compiler / NxSDK) also spends memory on axons and state."""
    per, buffers = [], 0
    slots = delay_slots or [0] * len(sizes)
    for n, f, s in zip(sizes, fan_in, slots):
        syn_bytes = n * f * (bits + (6 if s else 0)) / 8 + n * s * DELAY_SLOT_BYTES
        buffers += n * s * DELAY_SLOT_BYTES
        per.append(max(math.ceil(n / NEURONS_PER_CORE), math.ceil(syn_bytes / CORE_MEMORY_BYTES), 1))
    return dict(
        per_layer=per,
        total=int(sum(per)),
        delay_buffer_bytes=int(buffers),
        synapses=int(sum(n * f for n, f in zip(sizes, fan_in))),
    )


def _fit_delay(spec, delay, at: str, dt: float, typed: list[str], problems: list[str]) -> list[str]:
    """One ``network.delays`` entry (``spec``, the config node to change; ``delay``, its typed
    value) made to fit the chip: round mode, max and init range within ``max_ms``. A setting the
    user typed is refused (in ``problems``), not changed. Returns the notices."""
    max_ms = MAX_DELAY * dt

    def user_set(field: str) -> bool:
        full = f"{at}.{field}"
        return any(t == full or full.startswith(t + ".") or t.startswith(full + ".") for t in typed)

    notices = []
    if delay.mode != "round":
        if user_set("mode"):
            problems.append(f"{at}.mode={delay.mode}: the chip holds whole-step delays. Fix: {at}.mode=round")
        else:
            spec["mode"] = "round"
            notices.append(f"{at}.mode: {delay.mode} -> round (the chip delays by whole steps)")
    lo, hi = delay.init
    init_key = f"{at}.init.uniform" if isinstance(spec.get("init"), Mapping) else f"{at}.init"
    init_fix = f" {init_key}=[{min(lo, max_ms):g},{max_ms:g}]" if hi > max_ms + 1e-9 else ""
    if delay.max > max_ms + 1e-9:
        if user_set("max"):
            problems.append(
                f"{at}.max={delay.max:g} ms: Loihi 2 delays are 0..{MAX_DELAY} steps "
                f"({max_ms:g} ms at dt={dt:g}). Fix: {at}.max={max_ms:g}{init_fix}"
            )
            return notices
        spec["max"] = max_ms
        notices.append(f"{at}.max: {delay.max:g} -> {max_ms:g} ms ({MAX_DELAY} steps, the chip's longest delay)")
    if init_fix:
        if user_set("init"):
            problems.append(f"{at}.init reaches {hi:g} ms, beyond the chip's {max_ms:g} ms. Fix:{init_fix}")
            return notices
        spec["init"] = {"uniform": [min(lo, max_ms), max_ms]}
        notices.append(f"{at}.init: [{lo:g}, {hi:g}] -> [{min(lo, max_ms):g}, {max_ms:g}] ms")
    return notices


class LoihiTarget(Target):
    """Loihi 2 via Lava: see the package docs and ``conf/target/loihi2.yaml``."""

    name = "loihi2"

    def __init__(
        self,
        quantization: dict | None = None,
        readout: str = "auto",
        lava: str = "auto",
        lava_python: str | None = None,
        lava_backend: str = "sim",
        lava_timeout: float = 3600.0,
        samples: int = 32,
        energy: dict | None = None,
        readout_offset: int = 1,
        qat: bool = False,
        in_the_loop: bool = False,
    ):
        q = dict(quantization or {})
        unknown = set(q) - {"percentile", "bits", "readout_vth"}
        if unknown:
            raise ValueError(
                f"target.quantization: unknown keys {sorted(unknown)} " "(known: percentile, bits, readout_vth)"
            )
        self.percentile = float(q.get("percentile", 99.0))
        self.bits = int(q.get("bits", 8))
        self.readout_vth = int(q.get("readout_vth", 2**16))
        if readout not in CHIP_READOUTS:
            raise ValueError(f"target.readout must be one of {CHIP_READOUTS}, got {readout!r}")
        if lava not in LAVA_MODES:
            raise ValueError(f"target.lava must be one of {LAVA_MODES}, got {lava!r}")
        if lava_backend not in ("sim", "hw"):
            raise ValueError(f"target.lava_backend must be 'sim' or 'hw', got {lava_backend!r}")
        if int(samples) < 1:
            raise ValueError(f"target.samples must be >= 1, got {samples}")
        self.readout = readout
        self.lava = lava
        self.lava_python = lava_python
        self.lava_backend = lava_backend
        self.lava_timeout = float(lava_timeout)
        self.samples = int(samples)
        if int(readout_offset) < 0:
            raise ValueError(f"target.readout_offset must be >= 0 steps, got {readout_offset}")
        self.readout_offset = int(readout_offset)
        self.energy = dict(energy or {})
        coefficients(self.energy)  # a bad target.energy.* fails here, before training
        if not isinstance(qat, bool):
            raise ValueError(f"target.qat must be true or false, got {qat!r}")
        self.qat = qat
        if not isinstance(in_the_loop, bool):
            raise ValueError(f"target.in_the_loop must be true or false, got {in_the_loop!r}")
        if in_the_loop and not qat:
            raise ValueError(
                "target.in_the_loop=true trains on the emulated chip's readout and "
                "needs the chip's weights in the forward pass too: set target.qat=true"
            )
        self.in_the_loop = in_the_loop

    # ------------------------------------------------------------------ before training
    def adapt(self, cfg, explicit: list[str], delays: Mapping[str, ConnectionDelay]) -> list[str]:
        """Make a config train what the chip runs, loudly; refuse what the user typed and the chip
        cannot hold. Every problem is reported at once (one ConfigError holding them all).

        - Neurons: a float model with a chip counterpart (:data:`CHIP_COUNTERPART`: ``lif`` ->
          ``loihi_cuba``, ``li`` -> ``loihi_li``) is replaced by it, keeping its time constants and
          threshold, so that a recipe (an experiment, which names ``neuron: lif``) trains the
          chip's own neuron. A neuron the user typed (``neuron=lif``) is kept, with a notice that
          the float-to-chip conversion then carries the mismatch.
        - Delays as the chip holds them: whole steps (``mode: round``, straight-through
          gradients) of at most 62 steps. A recipe's longer max delay or init range is lowered
          to 62 steps and its exact mode switched to round, each with a notice; the same
          settings typed on the command line are refused. Recurrent delays are refused: NetX's
          recurrent layer reuses the feed-forward delays for its recurrent synapse and drops its
          weight exponent, so they would not run as trained.

        Which connections a ``network.delays`` entry reaches, their kind and whether they feed a
        recurrent layer are read from ``delays`` (typed, per connection), not from the entry's
        name."""
        typed = [o.split("=", 1)[0].lstrip("+~") for o in explicit]
        problems: list[str] = []
        if OmegaConf.select(cfg, "network.tau_per_neuron"):
            problems.append(PER_NEURON_DECAYS)
        notices = self._adapt_neurons(cfg, typed, problems)
        notices += self._adapt_delays(cfg, delays, typed, problems)
        if problems:
            raise ConfigError(*problems)
        return notices

    @staticmethod
    def _adapt_neurons(cfg, typed: list[str], problems: list[str]) -> list[str]:
        notices = []
        for key, group in (("neuron", "neuron"), ("network.output", "network/output")):
            node = OmegaConf.select(cfg, key)
            name = node.get("name") if node is not None else None
            chip = CHIP_COUNTERPART.get(name)
            if chip is None:
                continue
            chosen = any(t in (group, key, f"{key}.name") for t in typed)
            if chosen:
                notices.append(
                    f"{key}: {name} kept as typed; the chip runs {chip}, so the float-to-chip conversion "
                    f"carries the mismatch between them (drop {key}={name} to train {chip})"
                )
                continue
            values = {k: v for k, v in node.items() if k != "name"}
            unknown = sorted(set(values) - set(CHIP_KEYS))
            if unknown:
                problems.append(
                    f"{key}.{unknown[0]}: {name}'s setting has no counterpart in the chip's {chip} neuron, "
                    f"so the recipe cannot be moved to the chip. Fix: {key}={chip}"
                )
                continue
            node["name"] = chip
            kept = ", ".join(f"{k}={v}" for k, v in values.items())
            notices.append(f"{key}: {name} -> {chip} (the chip's neuron{'; ' + kept if kept else ''})")
        return notices

    @staticmethod
    def _adapt_delays(cfg, delays: Mapping[str, ConnectionDelay], typed: list[str], problems: list[str]) -> list[str]:
        by_key: dict[str, list] = {}
        for conn in delays.values():
            by_key.setdefault(conn.key, []).append(conn)
        if not by_key:
            return []
        dt = float(cfg.dataset.dt)
        notices = []
        for key, conns in by_key.items():  # one network.delays entry, the connections it reaches
            at = f"network.delays.{key}"
            if any(c.kind == "rec" for c in conns):
                problems.append(
                    f"{at}: Loihi 2 cannot run a recurrent connection's delays (NetX reuses the "
                    "feed-forward delays for the recurrent synapse and drops its weight exponent). "
                    f"Fix: {at}=null network.recurrent=false"
                )
                continue
            into = [c.post for c in conns if c.kind == "ff" and c.into_recurrent]
            if into:
                problems.append(
                    f"{at}: delays into the recurrent hidden layer {into[0]} cannot run on Loihi 2 "
                    "(NetX's recurrent layer applies its feed-forward delays to the recurrent "
                    "synapse too). Fix: network.recurrent=false network.delays.rec=null"
                )
                continue
            notices += _fit_delay(cfg.network.delays[key], conns[0].delay, at, dt, typed, problems)
        return notices

    def check(self, net: Any, data) -> None:
        """The built network and the training data against what the chip runs (after ``adapt``
        changed what it could): CUBA neurons, a voltage readout, whole-step feed-forward delays of
        at most 62 steps, and a size that fits the chip's cores."""
        topology = net.topology
        if getattr(net, "tau_per_neuron", False):
            raise ValueError(PER_NEURON_DECAYS)
        for pop in topology.hidden:
            if pop.model.name not in SUPPORTED_NEURONS:
                raise ValueError(
                    f"neuron={pop.model.name}: Loihi 2 runs CUBA neurons; use neuron=loihi_cuba "
                    f"(or lif, mapped approximately). Supported: {SUPPORTED_NEURONS}"
                )
        if topology.output.model.name not in SUPPORTED_OUTPUTS:
            raise ValueError(
                f"network.output.name={topology.output.model.name}: the chip readout must be one of "
                f"{SUPPORTED_OUTPUTS}"
            )
        if net.readout.name not in VOLTAGE_READOUTS:
            raise ValueError(
                f"readout={net.readout.name}: the chip classifies from the readout voltage; "
                f"use one of {VOLTAGE_READOUTS}"
            )
        for conn in topology.delayed:
            at = f"network.delays.{conn.name}"
            if conn.kind == "rec":
                raise ValueError(f"{at}: Loihi 2 cannot run recurrent delays. Fix: network.delays.rec=null")
            if conn.delay.mode != "round":
                raise ValueError(f"{at}.mode: the chip holds whole-step delays. Fix: {at}.mode=round")
            if conn.delay.steps(data.dt) > MAX_DELAY:
                raise ValueError(
                    f"{at}.max: Loihi 2 delays are 0..{MAX_DELAY} steps. " f"Fix: {at}.max={MAX_DELAY * data.dt:g}"
                )
        sizes = [pop.size for pop in topology.hidden]
        fan_in = [sum(c.pre.size for c in topology.connections if c.post is pop) for pop in topology.hidden]
        self.check_size(sizes, fan_in)
        self._check_lava_available()

    def _check_lava_available(self) -> None:
        """``lava: required`` needs a Lava interpreter: look for it before training, not after."""
        if self.lava != "required":
            return
        from .lava_env import env_dir, resolve_lava_python

        if resolve_lava_python(self.lava_python) is None:
            given = self.lava_python or os.environ.get("EVENTKIT_LAVA_PYTHON")
            looked = f"{given} cannot import lava, and " if given else ""
            raise ValueError(
                f"lava=required but no Lava environment was found ({looked}{env_dir()} holds no built "
                "environment). Fix: build one with `python -m eventkit_loihi2.lava_env build`, point "
                "target.lava_python at an interpreter that has Lava, or set target.lava=auto"
            )

    def prepare(self, net) -> None:
        """Before training: the network sees its input as the chip does (a repeated (step,
        channel) spike is one event on the chip's input). With ``target.qat=true`` every forward
        pass also uses the weights and thresholds the chip will use (8-bit, per-layer
        power-of-two scale recomputed from the current weights), and gradients update the float
        weights straight through."""
        from eventkit.plugin import FakeQuant, Simulation

        if not self.qat:
            net.simulation = Simulation(binary_input=True)
            return

        from .quantize import chip_parameters, fake_quantize

        # each connection feeds one population; ff/rec into hidden layer k share its scale
        feeds = {conn.name: conn.post.index for conn in net.topology.connections}

        def chip_forward(weights: dict) -> FakeQuant:
            params = chip_parameters(FloatNetwork.of(net), self.percentile, self.bits)
            quantised, thresholds = {}, {}
            for name, pop in feeds.items():
                quantised[name] = fake_quantize(weights[name], params[pop]["weight_exp"], self.bits)
                if params[pop]["threshold_chip"] is not None:
                    thresholds[pop] = params[pop]["threshold_chip"]
            return FakeQuant(quantised, thresholds)

        net.simulation = Simulation(
            binary_input=True,
            fake_quantization=chip_forward,
            readout_in_the_loop=self._emulated_readout_fn(net) if self.in_the_loop else None,
        )

    def _emulated_readout_fn(self, net):
        """``data -> readout`` of the bit-exact emulated chip, in the float readout's units (for
        :class:`eventkit.engine.Simulation`)."""
        from .emulator import readout_in_float_units

        name = str(net.readout.describe().get("name"))
        if name not in READOUT_IN_LOOP:
            raise ValueError(
                f"target.in_the_loop: readout={name} has no chip counterpart to train "
                f"on; use one of {sorted(READOUT_IN_LOOP)}"
            )

        def emulated(data):
            fnet = FloatNetwork.of(net)
            chip, _, emu, _ = self.silent_readout_chip(fnet, data, READOUT_ON_CHIP[name])
            return readout_in_float_units(emu, chip, fnet, name)

        return emulated

    def silent_readout_chip(self, fnet: FloatNetwork, data, readout: str, n_record: int = 0):
        """Quantise ``fnet`` and emulate ``data``. The readout must never fire (a spike resets
        its voltage); its weight scale does not change the classification, so it is lowered
        until no sample of ``data`` reaches the threshold. Returns (chip, report, emulation,
        shift)."""
        from .emulator import emulate

        shift = 0
        while True:
            chip, qrep = quantize(fnet, self.percentile, self.bits, self.readout_vth, shift)
            emu = emulate(chip, data, n_record=n_record, readout=readout, offset=self.readout_offset)
            if emu.output_spikes == 0:
                return chip, qrep, emu, shift
            if np.abs(chip.output.w_ff).max() < 2 ** (self.bits - 4) or shift <= -MAX_OUTPUT_SHIFT:
                print(
                    f"loihi2: WARNING the readout still reaches its threshold on "
                    f"{emu.output_spikes} steps and its weights cannot be scaled down further; "
                    "raise target.quantization.readout_vth",
                    flush=True,
                )
                return chip, qrep, emu, shift
            shift -= 1

    def check_size(self, sizes: list[int], fan_in: list[int], delay_slots: list[int] | None = None) -> dict:
        cores = estimate_cores(sizes, fan_in, self.bits, delay_slots)
        if sum(sizes) > N_CORES * NEURONS_PER_CORE:
            raise ValueError(
                f"network: {sum(sizes)} neurons exceed one Loihi 2 chip "
                f"({N_CORES} x {NEURONS_PER_CORE}); reduce network.hidden"
            )
        if cores["total"] > N_CORES:
            raise ValueError(
                f"network: needs about {cores['total']} neuron cores "
                f"(per layer {cores['per_layer']}), a Loihi 2 chip has {N_CORES}; "
                "reduce network.hidden"
            )
        return cores

    def chip_cores(self, chip: ChipNetwork) -> dict:
        sizes = [layer.n for layer in chip.layers]
        fan_in = [layer.w_ff.shape[1] + (layer.n if layer.w_rec is not None else 0) for layer in chip.layers]
        slots = [
            int(layer.delay.max()) + 1 if layer.delay is not None and np.any(layer.delay) else 0
            for layer in chip.layers
        ]
        return self.check_size(sizes, fan_in, slots)

    # ------------------------------------------------------------------ after training
    def deploy(self, net: Any, splits, run_dir) -> dict:
        from .netx import write_netx, write_samples
        from .quantize import plot_histograms
        from .report import build_report, float_inference_times, plot_delays

        run_dir = Path(run_dir)
        out = run_dir / "deploy" / self.name
        out.mkdir(parents=True, exist_ok=True)
        test = splits.test
        timings: dict = {}
        t0 = time.perf_counter()
        fnet = net if isinstance(net, FloatNetwork) else FloatNetwork.of(net)
        n_keep = min(self.samples, len(test))
        readout = self.readout
        if readout == "auto":
            readout = READOUT_ON_CHIP.get(str(fnet.readout.get("name")), "exp_sum")
        chip, qrep, emu, shift = self.silent_readout_chip(fnet, test, readout, n_keep)
        if shift:
            print(
                f"loihi2: the readout reached its threshold on the test set; its weight scale "
                f"was lowered by 2**{-shift}",
                flush=True,
            )
        cores = self.chip_cores(chip)
        timings["quantize_emulate_s"] = time.perf_counter() - t0
        timings["emulate_s"] = emu.seconds
        hist = plot_histograms(qrep, run_dir / "plots" / "loihi2_weights.png")
        delay_plot = plot_delays(chip, run_dir / "plots" / "loihi2_delays.png")
        float_pred = _float_predictions(net, test)
        cpu_times = float_inference_times(net, test)
        write_netx(chip, out / "model.net")
        write_samples(test, emu, n_keep, out / "samples.npz", readout=readout)
        lava = self._lava(out, n_keep)
        fields = build_report(
            chip=chip,
            qrep=qrep,
            emu=emu,
            test=test,
            float_pred=float_pred,
            lava=lava,
            cores=cores,
            out_dir=out,
            hist_path=hist,
            timings=timings,
            energy=self.energy,
            readout=readout,
            readout_shift=shift,
            delay_plot=delay_plot,
            cpu_times=cpu_times,
        )
        return fields

    def _lava(self, out: Path, n: int) -> dict:
        from .lava_check import HardwareUnavailable, check
        from .lava_env import resolve_lava_python

        if self.lava == "off":
            return dict(status="off", reason="target.lava=off")
        py = resolve_lava_python(self.lava_python)
        if py is None:
            msg = (
                "no Lava environment found; build one with "
                "`python -m eventkit_loihi2.lava_env build` (or set target.lava_python)"
            )
            if self.lava == "required":
                raise RuntimeError(f"target.lava=required: {msg}")
            print(f"loihi2: Lava check skipped: {msg}")
            return dict(status="skipped", reason=msg)
        print(f"loihi2: running {n} samples in Lava ({self.lava_backend}) with {py} ...", flush=True)
        try:
            res = check(
                py,
                out / "model.net",
                out / "samples.npz",
                out / "lava_voltages.npz",
                self.lava_backend,
                self.lava_timeout,
            )
        except HardwareUnavailable as exc:  # target.lava_backend=hw without lava-loihi
            if self.lava == "required":
                raise RuntimeError(f"target.lava=required: {exc}") from None
            print(f"loihi2: Lava check skipped: {exc}")
            return dict(status="skipped", reason=str(exc))
        print(f"loihi2: {res.message()}")
        if not res.bit_exact and self.lava == "required":
            raise RuntimeError(f"target.lava=required: {res.message()}")
        return dict(
            status="checked",
            samples=res.samples,
            steps=res.steps,
            bit_exact=res.bit_exact,
            mismatches=res.mismatches,
            first_mismatch=res.first,
            backend=self.lava_backend,
            python=py,
            info=res.info,
        )


def _float_predictions(net: Any, test, batch: int = 512) -> np.ndarray | None:
    """The float network's test predictions (None when ``net`` is only a :class:`FloatNetwork`)."""
    if isinstance(net, FloatNetwork):
        return None
    # the float network's own readout, also when the chip is in the training loop
    with net.simulating(readout_in_the_loop=None):
        return net.predictions(test, batch)
