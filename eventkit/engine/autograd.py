"""The one torch.autograd.Function of the engine: the whole network's simulation as one node.

It sees a backend, that backend's plan and the per-call kernel inputs, never the nn.Module:

    trace, t_first, counts = EventpropFunction.apply(backend, plan, inputs, data, names, *params)

``params`` are the parameters the gradients go to, in the order of ``names`` (``(kind,
connection)`` pairs, kind ``"w"`` or ``"d"``); what the kernels simulate with is ``inputs``
(built from those parameters, possibly fake-quantised), so gradients pass straight through any
quantisation.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import SpikeData


class EventpropFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, backend, plan, inputs, data: SpikeData, names, *params):
        res = backend.forward(plan, inputs, data)
        ctx.backend, ctx.plan, ctx.inputs, ctx.data, ctx.names, ctx.res = (
            backend, plan, inputs, data, names, res)
        dtype = params[0].dtype
        t_first = torch.from_numpy(res["t_first"]).to(dtype) * plan.dt
        counts = torch.from_numpy(res["counts"]).to(dtype)
        return torch.from_numpy(res["trace"]).to(dtype), t_first, counts

    @staticmethod
    def backward(ctx, g_trace, g_tfirst, g_counts):
        plan, data, inputs = ctx.plan, ctx.data, ctx.inputs
        np_dtype = inputs.w.dtype
        n_batch = len(data)

        def as_np(g, shape):
            if g is None:
                return np.zeros(shape, dtype=np_dtype)
            return np.ascontiguousarray(g.detach().cpu().numpy(), dtype=np_dtype)

        g_trace_np = as_np(g_trace, (n_batch, plan.n_steps, plan.n_out))
        # t_first is returned in ms = (n + phi) * dt: the kernels' g is per unit of phi
        g_tfirst_np = as_np(g_tfirst, (n_batch, plan.n_out)) * np_dtype.type(plan.dt)
        g_counts_np = as_np(g_counts, (n_batch, plan.n_hidden))
        grads_w, grads_d = ctx.backend.backward(plan, inputs, data, ctx.res, g_trace_np,
                                                g_tfirst_np, g_counts_np)
        ctx.res = None
        out = []
        dtype = g_trace.dtype if g_trace is not None else torch.float64
        for kind, name in ctx.names:
            g = grads_w[name] if kind == "w" else grads_d[name]
            out.append(torch.from_numpy(g).to(dtype))
        return (None, None, None, None, None, *out)
