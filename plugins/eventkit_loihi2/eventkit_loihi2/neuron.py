"""The Loihi 2 CUBA neuron as an engine neuron model (registered as ``loihi_cuba``).

It is an ordinary :class:`eventkit.engine.NeuronModel`: a set of propagator coefficients the
engine's kernels read, nothing more; the engine knows nothing about Loihi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from eventkit.plugin import Coefficients, NeuronModel, check_positive
from eventkit_loihi2.quantize import DECAY_UNITY, cuba_decays


@dataclass(frozen=True)
class LoihiCUBA(NeuronModel):
    """Intel Loihi 2's current-based LIF ("CUBA") in float, per step::

        u <- u (1 - du) + g a      du = iDecay / 4096,  iDecay = round(4096 (1 - exp(-dt/tau_syn)))
        v <- v (1 - dv) + u        dv = vDecay / 4096,  vDecay = round(4096 (1 - exp(-dt/tau_mem)))
        spike if v > threshold; then v <- 0 (u is kept)

    where ``a`` is the sum of the weights of the spikes of the previous step (the one-step delay of
    Loihi's dense synapses) and ``g = dv`` (the input gain): with it a float weight drives ``v`` as
    strongly as the same weight drives the ``lif`` model (both settle at about w x rate x tau_syn),
    so initialisations and learning rates carry over between the two. The chip has no gain: the
    quantiser folds ``g`` into the integer weights (``exported neuron["gain"]``). The decays are the
    chip's integers, so after 8-bit weight quantisation the float model and the chip differ only by
    rounding.

    ``timing="grid"`` (default) runs exactly these dynamics; the spike-time sensitivity the
    backward pass needs is taken from the sub-step relaxation below (a straight-through estimate,
    since grid spike times have no derivative). So the loss is piecewise constant in the weights
    that feed a hidden layer (their finite differences are 0) while the engine returns a nonzero
    gradient for them; the output weights' gradient stays exact (tests/test_exactness_claims_loihi.py;
    eventkit's docs/engine.md, "What is exact"). ``timing="substep"`` runs the relaxation itself:
    between steps the neuron is the continuous linear system whose whole-step propagator is the
    chip's (see :mod:`eventkit.engine.neurons`), so a spike at the interpolated fraction ``phi`` of
    its step acts on its targets as the same spike shifted in time and restarts ``v`` at that time;
    it equals the chip when every spike has ``phi = 1`` and its gradient is exact (tested against
    finite differences).
    ``spiking=False`` gives the chip's non-spiking readout compartment.

    ``tau_mem`` and ``tau_syn`` may be learned (``network.learn_tau``): the forward pass always runs
    the chip's integer decays of the current values, and the gradient passes the rounding to
    4096ths straight through (quantisation-aware, like the weights under ``target.qat``), so the
    trained time constants deploy as the layers' iDecay / vDecay.
    """

    tau_mem: float = 20.0
    tau_syn: float = 5.0
    threshold: float = 1.0
    timing: str = "grid"
    spiking: bool = True

    name = "loihi_cuba"

    def __post_init__(self):
        check_positive("loihi_cuba", tau_mem=self.tau_mem, tau_syn=self.tau_syn, threshold=self.threshold)
        if self.timing not in ("grid", "substep"):
            raise ValueError(f"loihi_cuba: timing must be 'grid' or 'substep', got {self.timing!r}")

    def decays(self, dt: float) -> tuple[int, int]:
        """(iDecay, vDecay) as the chip stores them."""
        i_decay, v_decay = cuba_decays(self.tau_syn, self.tau_mem, dt)
        for key, value, tau in (("tau_syn", i_decay, self.tau_syn), ("tau_mem", v_decay, self.tau_mem)):
            if not 1 <= value <= DECAY_UNITY - 1:
                raise ValueError(
                    f"loihi_cuba: {key}={tau} ms at dt={dt} ms gives a chip decay of {value}/4096, "
                    "outside 1..4095; choose a time constant between about 0.15 dt and 4000 dt"
                )
        if i_decay == v_decay:
            raise ValueError("loihi_cuba: tau_mem and tau_syn round to the same chip decay; make them differ")
        return i_decay, v_decay

    learnable = ("tau_mem", "tau_syn")

    def differentiable_coefficients(self, dt: float, **values) -> dict:
        """:meth:`coefficients` as torch expressions of the time constants: each decay is the
        chip's integer over 4096 in value and ``1 - exp(-dt / tau)`` in its derivative."""
        import torch

        taus = {"tau_mem": self.tau_mem, "tau_syn": self.tau_syn, **values}
        values = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in taus.items()}
        i_decay, v_decay = replace(self, **values).decays(dt)
        du, dv = (
            _straight_through(torch.as_tensor(taus[key], dtype=torch.float64), dt, chip)
            for key, chip in (("tau_syn", i_decay), ("tau_mem", v_decay))
        )
        beta, alpha = 1.0 - du, 1.0 - dv
        return dict(
            alpha=alpha,
            beta=beta,
            kappa=beta,
            b0=dv / beta,
            c=beta / (beta - alpha),
            hm=-torch.log(alpha),
            hs=-torch.log(beta),
            theta=self.threshold if self.spiking else math.inf,
            rho_a=0.0,
            ha=0.0,
            delta_a=0.0,
        )

    def gain(self, dt: float) -> float:
        """g = vDecay / 4096: float input gain (see the class docstring)."""
        return self.decays(dt)[1] / DECAY_UNITY

    def coefficients(self, dt: float) -> Coefficients:
        i_decay, v_decay = self.decays(dt)
        beta = 1.0 - i_decay / DECAY_UNITY
        alpha = 1.0 - v_decay / DECAY_UNITY
        g = self.gain(dt)
        # state i(n) = u(n-1) + g a(n)/beta, so beta * i = u(n) and v(n) = alpha v + beta i:
        # kappa = beta, b0 = g / beta.
        return Coefficients(
            alpha,
            beta,
            beta,
            g / beta,
            self.threshold if self.spiking else math.inf,
            self.tau_mem,
            self.spiking,
            grid=self.timing == "grid",
        )


def _straight_through(tau, dt: float, chip: int):
    """``chip / 4096`` in value, ``d(1 - exp(-dt / tau))/dtau`` in gradient (``tau``: a torch
    scalar)."""
    import torch

    smooth = 1.0 - torch.exp(-dt / tau)
    return smooth + (chip / DECAY_UNITY - smooth).detach()
