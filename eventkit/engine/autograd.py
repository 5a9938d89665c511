"""The one torch.autograd.Function of the engine: the whole network's simulation as one node.

It sees a backend, that backend's plan and the per-call kernel inputs, never the nn.Module:

    trace, t_first, counts = EventpropFunction.apply(backend, plan, inputs, data, names, reduction, *params)

``params`` are the parameters the gradients go to, in the order of ``names`` (``(kind,
connection)`` pairs, kind ``"w"`` or ``"d"``); what the kernels simulate with is ``inputs``
(built from those parameters, possibly fake-quantised), so gradients pass straight through any
quantisation. ``reduction`` (None, or a :class:`~eventkit.engine.backends.GroupReduction`) is
handed to the backend's backward: how the sample groups of a batch split over processes are summed.
"""

from __future__ import annotations

import torch

from ..data.spikes import SpikeData


class EventpropFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, backend, plan, inputs, data: SpikeData, names, reduction, *params):
        res = backend.forward(plan, inputs, data)
        ctx.backend, ctx.plan, ctx.inputs, ctx.data, ctx.names, ctx.res = (backend, plan, inputs, data, names, res)
        ctx.reduction = reduction
        ctx.targets = [(p.dtype, p.device) for p in params]
        dtype, device = params[0].dtype, params[0].device

        def out(x):  # results follow the parameters' device and precision
            return backend.to_torch(x).to(device=device, dtype=dtype)

        return out(res["trace"]), out(res["t_first"]) * plan.dt, out(res["counts"])

    @staticmethod
    def backward(ctx, g_trace, g_tfirst, g_counts):
        plan, data, inputs, backend = ctx.plan, ctx.data, ctx.inputs, ctx.backend
        n_batch = len(data)

        def as_kernel(g, shape):
            if g is None:
                g = torch.zeros(shape, dtype=torch.float64)
            return backend.from_torch(g, inputs)

        g_trace_k = as_kernel(g_trace, (n_batch, plan.n_steps, plan.n_out))
        # t_first is returned in ms = (n + phi) * dt: the kernels' g is per unit of phi
        g_tfirst_k = as_kernel(g_tfirst, (n_batch, plan.n_out)) * plan.dt
        g_counts_k = as_kernel(g_counts, (n_batch, plan.n_hidden))
        grads = backend.backward(plan, inputs, data, ctx.res, g_trace_k, g_tfirst_k, g_counts_k, ctx.reduction)
        ctx.res = None
        return (None, None, None, None, None, None, *parameter_gradients(backend, ctx.names, ctx.targets, grads))


def parameter_gradients(backend, names, targets, grads: tuple[dict, dict, dict]) -> list[torch.Tensor]:
    """The backend's ``(grads_w, grads_d, grads_c)`` as one tensor per ``(kind, key)`` of
    ``names`` (kind ``"w"``, ``"d"``: a connection's weights or delays; ``"c"``: a population's
    coefficient row), on each target's ``(dtype, device)``."""
    by_kind = dict(zip("wdc", grads))
    out = []
    for (kind, name), (dtype, device) in zip(names, targets):
        g = by_kind[kind][name]
        out.append(backend.to_torch(g).to(device=device, dtype=dtype))
    return out
