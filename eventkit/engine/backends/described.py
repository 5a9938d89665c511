"""The CPU backend's path for networks with a model given only by its description
(:class:`~eventkit.engine.dynamics.LinearDynamics`): the plan's model arrays and the calls into
:mod:`._linear_kernels`. :class:`~eventkit.engine.backends.cpu.CpuBackend` routes here when a
population's model has no closed-form coefficients."""

from __future__ import annotations

from typing import Collection, Mapping

import numba
import numpy as np

from ..topology import Topology
from . import _cpu_kernels as K
from . import _linear_kernels as L

Model = L.Model


def model_arrays(topology: Topology, dt: float, models: Mapping | None = None, learn: Collection = ()) -> L.Model:
    """Every population's description on the grid, padded to the most states any has (a padded
    state has no dynamics, input, threshold or reset: it stays 0). ``models``: population index ->
    the model it has this call (learned constants); ``learn``: the populations whose backward pass
    gives dL/d(a_step) and dL/du (:func:`model_gradients`)."""
    discrete = []
    for pop in topology.populations:
        model = (models or {}).get(pop.index, pop.model)
        dyn = model.dynamics()
        if dyn.spiking != bool(model.spiking):
            raise ValueError(
                f"neuron {model.name!r}: its description {'has' if dyn.spiking else 'has no'} threshold "
                f"but the model says spiking={model.spiking}; make them agree"
            )
        discrete.append(dyn.discretise(dt))
    n_pop, S = len(discrete), max(d.prop.shape[0] for d in discrete)

    def stack(key: str, shape: tuple, dtype, pad_identity: bool = False) -> np.ndarray:
        out = np.zeros((n_pop, *shape), dtype=dtype)
        for p, d in enumerate(discrete):
            value = getattr(d, key)
            k = value.shape[0]
            if pad_identity:
                out[p] = np.eye(S)
            out[p][tuple(slice(0, k) for _ in shape)] = value
        return out

    vec = stack("vec", (S, S), np.complex128, pad_identity=True)
    vinv = stack("vinv", (S, S), np.complex128, pad_identity=True)
    lam = stack("lam", (S,), np.complex128)
    real = np.array([not np.iscomplex(d.lam).any() and not np.iscomplex(d.vec).any() for d in discrete], dtype=np.int8)
    prop = stack("prop", (S, S), np.float64, pad_identity=True)
    c = stack("c", (S,), np.float64)
    return L.Model(
        prop=prop,
        a_step=stack("a_step", (S, S), np.float64),
        vec=vec,
        vinv=vinv,
        lam=lam,
        real=real,
        vec_re=np.ascontiguousarray(vec.real),
        vinv_re=np.ascontiguousarray(vinv.real),
        vec_t=np.ascontiguousarray(vinv.transpose(0, 2, 1)),
        vinv_t=np.ascontiguousarray(vec.transpose(0, 2, 1)),
        vec_re_t=np.ascontiguousarray(vinv.real.transpose(0, 2, 1)),
        vinv_re_t=np.ascontiguousarray(vec.real.transpose(0, 2, 1)),
        lam_re=np.ascontiguousarray(lam.real),
        u=stack("u", (S,), np.float64),
        c=c,
        c_rate=np.ascontiguousarray(np.einsum("pba,pb->pa", prop, c) - c),
        theta=np.array([d.theta for d in discrete], dtype=np.float64),
        reset=stack("reset", (S, S), np.float64, pad_identity=True),
        r=stack("r", (S,), np.float64),
        membrane=np.array([d.membrane for d in discrete], dtype=np.int64),
        count_scale=np.array([d.count_scale for d in discrete], dtype=np.float64),
        spiking=np.array([1 if d.c.any() else 0 for d in discrete], dtype=np.int8),
        learn=np.array([1 if p in learn else 0 for p in range(n_pop)], dtype=np.int8),
        g_step=np.exp(lam),
        n_states=np.array([d.prop.shape[0] for d in discrete], dtype=np.int64),
    )


def frechet_weights(lam: np.ndarray, s: float) -> np.ndarray:
    """``Phi(s)``: ``Phi_ij = (exp(lam_i s) - exp(lam_j s)) / (lam_i - lam_j)``, ``s exp(lam_i s)``
    where they are equal (the kernels' ``_add_frechet``)."""
    g = np.exp(lam * s)
    dl = lam[:, None] - lam[None, :]
    same = np.abs(dl) <= 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (g[:, None] - g[None, :]) / np.where(same, 1.0, dl)
    return np.where(same, s * g[:, None] * np.ones_like(dl), out)


def model_gradients(model: L.Model, gm: np.ndarray, gu: np.ndarray) -> dict[int, np.ndarray]:
    """Each learning population's dL/d(a_step) (row-major), dL/du, dL/dr and dL/dtheta, as one
    float64 vector of its own ``S_p^2 + 2 S_p + 1`` entries (the order of
    :func:`~eventkit.engine.dynamics.description_vector`), from the backward pass's sums over
    groups ``gm`` ``[n_pop, 2, S, S]``, ``gu`` ``[n_pop, 2 S + 1]``
    (:class:`~._linear_kernels.ModelGrads`): ``G_W = Phi(1) o gm[p, 0] + gm[p, 1]`` is dL/dW with
    ``W = V^-1 d(a_step) V``, so dL/d(a_step) = ``V^-T G_W V^T``."""
    out = {}
    S = model.u.shape[1]
    for p in np.flatnonzero(model.learn):
        g_w = frechet_weights(model.lam[p], 1.0) * gm[p, 0] + gm[p, 1]
        g_a = (model.vinv[p].T @ g_w @ model.vec[p].T).real
        n = int(model.n_states[p])
        out[int(p)] = np.concatenate([g_a[:n, :n].reshape(-1), gu[p, :n], gu[p, S : S + n], gu[p, 2 * S :]])
    return out


def input_arrivals(
    plan, model: L.Model, blk: np.ndarray, d_frac: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each input synapse's arrival ``E_q(r) u_q`` and its rate ``A_q h E_q(r) u_q`` (``[n_w, S]``,
    rows of other synapses 0; ``[1, S]`` when no input connection is delayed or learns its delays):
    an input spike arrives ``r = 1 - f`` steps before the grid time where it is applied (0 without
    a sub-step part ``f``), the same for every spike of the call, so the kernels read it instead
    of computing it per spike and synapse."""
    S = model.u.shape[1]
    blocks = [(k, c) for k, c in enumerate(plan.topology.connections) if c.pre.is_input]
    blocks = [(k, c) for k, c in blocks if blk[k, K.DELAYED] or blk[k, K.LEARN_D]]
    if not blocks:
        return np.zeros((1, S)), np.zeros((1, S)), np.zeros((1, S), np.complex128)
    arr, rate = np.zeros((plan.n_w, S)), np.zeros((plan.n_w, S))
    decays = np.ones((plan.n_w, S), np.complex128)
    for k, conn in blocks:
        q = conn.post.index
        sl = slice(plan.w_off[k], plan.w_off[k] + conn.pre.size * conn.post.size)
        f = d_frac[sl] if blk[k, K.DELAYED] else np.zeros(sl.stop - sl.start)
        r = np.where(f > 0.0, 1.0 - f, 0.0)
        modes = model.vec[q] * (model.vinv[q] @ model.u[q])[None, :]  # u as the sum of its modes
        g = np.exp(np.outer(r, model.lam[q]))
        decays[sl] = g
        e = np.einsum("sk,nk->ns", modes, g).real
        e[r == 0.0] = model.u[q]  # exactly u with no decay left
        arr[sl] = e
        rate[sl] = e @ model.a_step[q].T
    return arr, rate, decays


def kernel_views(plan, inputs, models: Mapping | None = None) -> tuple[L.Net, L.Model]:
    """The description-driven kernels' network and model arrays of one call (its weights,
    thresholds and delay tables from the CPU inputs ``inputs``). ``models``: hidden layer (=
    population index) -> its model this call, for layers that learn their model's constants."""
    model = plan.described
    if models:
        model = model_arrays(plan.topology, plan.dt, models, learn=set(models))
    model = model._replace(theta=np.ascontiguousarray(inputs.coef[:, K.THETA], dtype=np.float64))
    # the CPU inputs' delay offsets hold D * stride + 2 target (stride = 2 n_neurons): D is the row
    stride = 2 * int(plan.pop_off[-1])
    d_row = np.ascontiguousarray(inputs.d_off.astype(np.int64) // stride)
    d_frac = np.ascontiguousarray(inputs.d_frac, dtype=np.float64)
    # a hidden arrival lands at most D + 2 grid times after its spike's step, an input one D + 1
    n_ring = int(d_row.max()) + 3 if inputs.n_slots else 0
    in_arr, in_rate, in_g = input_arrivals(plan, model, inputs.blk, d_frac)
    net = L.Net(
        plan.pop_off,
        plan.pop_of,
        inputs.blk,
        plan.out_start,
        plan.out_blk,
        plan.in_blk,
        inputs.w,
        d_row,
        d_frac,
        n_ring,
        in_arr,
        in_rate,
        in_g,
    )
    return net, model


RECORD_KEYS = ("rec_step", "rec_nrn", "rec_phi", "rec_x", "n_rec", "overflow")


def scratch_shapes(net: L.Net, model: L.Model, n_workers: int, dtype) -> tuple[dict, dict]:
    """The (shape, dtype) of every working array of the forward and the backward pass
    (:class:`~._linear_kernels.ForwardScratch`, :class:`~._linear_kernels.BackwardScratch`) for
    ``n_workers`` workers; each backend allocates them its own way."""
    S, n_tot = model.u.shape[1], int(net.pop_off[-1])
    n_out = n_tot - int(net.pop_off[-2])
    slots = max(net.n_ring, 1)
    n_learn = n_tot if model.learn.any() else 1  # rows of the learning models' sums
    f64, c128 = np.dtype(np.float64), np.dtype(np.complex128)
    cvec = ((n_workers, L.N_CVEC, S), c128)
    fwd = dict(
        x=((n_workers, S, n_tot), np.dtype(dtype)),
        xa=((n_workers, S, n_tot), np.dtype(dtype)),
        u_adv=((n_workers, n_tot), np.dtype(dtype)),
        wsc=((n_workers, S + 2, S), np.dtype(dtype)),
        vec=((n_workers, L.N_VEC, S), f64),
        cvec=cvec,
        ring=((n_workers, slots, S, n_tot), np.dtype(dtype)),
    )
    bwd = dict(
        lam=((n_workers, 2, S, n_tot), f64),
        jump=((n_workers, n_tot, S), f64),
        vec=((n_workers, L.N_VEC, S), f64),
        cvec=cvec,
        first_rec=((n_workers, n_out), np.dtype(np.int64)),
        hist=((n_workers, slots, S, n_tot), f64),
        rmat=((n_workers, S, S, n_learn), c128),
        mu_row=((n_workers, n_learn), c128),
        wsum=((n_workers, n_learn), f64),
        rhist=((n_workers, slots if model.learn.any() else 1, S, S, n_learn), c128),
        # input synapses' summed adjoints: their arrivals into a learning population may be summed
        lsum=((n_workers, net.w.shape[0] if model.learn.any() and net.in_arr.shape[0] > 1 else 1, S), f64),
    )
    return fwd, bwd


def _cpu_scratch(plan, kind, shapes: dict):
    """A row per CPU thread, kept between calls (``plan.buffer``)."""
    return kind(**{key: plan.buffer(f"described_{kind.__name__}_{key}", *spec) for key, spec in shapes.items()})


def forward(plan, inputs, spikes: K.Spikes) -> dict:
    """The forward pass of a batch (:meth:`CpuPlan.recorded_forward`'s results, with each spike's
    state ``rec_x``)."""
    net, model = inputs.described
    shapes = scratch_shapes(net, model, numba.get_num_threads(), inputs.w.dtype)[0]
    scratch = _cpu_scratch(plan, L.ForwardScratch, shapes)

    def run(res: dict) -> None:
        rec = L.Records(*(res[key] for key in RECORD_KEYS))
        kernels = L.kernels(int(model.u.shape[1]))
        kernels.forward(spikes, net, model, res["trace"], res["t_first"], res["counts"], rec, scratch)

    n_batch = spikes.offsets.shape[0] - 1
    return plan.recorded_forward(n_batch, inputs.w.dtype, {"rec_x": (model.u.shape[1],)}, run)


def model_grads(model: L.Model, n_rows: int, zeros=np.zeros) -> L.ModelGrads:
    """Zeroed :class:`~._linear_kernels.ModelGrads` rows for ``n_rows`` groups (or samples);
    ``zeros(shape, dtype)``: the backend's allocator."""
    n_pop, S = model.u.shape
    return L.ModelGrads(zeros((n_rows, n_pop, 2, S, S), np.complex128), zeros((n_rows, n_pop, 2 * S + 1), np.float64))


def flatten_grads(grads: L.ModelGrads, cat=np.concatenate):
    """The model sums of each group as float64 columns ``[n_groups, ...]`` (real and imaginary
    parts of ``gm``, then ``gu``), to be summed and reduced like weight gradients; ``cat``:
    ``np.concatenate`` or ``torch.cat`` for the rows' array type."""
    gm, gu = grads
    n = gm.shape[0]
    return cat([gm.real.reshape(n, -1), gm.imag.reshape(n, -1), gu.reshape(n, -1)], 1)


def unflatten_grads(model: L.Model, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`flatten_grads`' columns, summed over groups, back as ``(gm, gu)``."""
    n_pop, S = model.u.shape
    k = n_pop * 2 * S * S
    gm = (flat[:k] + 1j * flat[k : 2 * k]).reshape(n_pop, 2, S, S)
    return gm, flat[2 * k :].reshape(n_pop, 2 * S + 1)


def backward(
    plan, inputs, spikes, forward, g_trace, g_tfirst, g_counts, group_off, with_d: bool
) -> tuple[np.ndarray, np.ndarray, L.ModelGrads]:
    """Each group's weight gradient and delay gradient per step of delay (float64 ``[n_groups,
    n_w]``; the delay gradient has one column unless ``with_d``: a connection has delays), and
    the learning models' sums (:class:`~._linear_kernels.ModelGrads`)."""
    n_groups = len(group_off) - 1
    net, model = inputs.described
    gw = np.zeros((n_groups, plan.n_w))
    gd = np.zeros((n_groups, plan.n_w if with_d else 1))
    grads = model_grads(model, n_groups)
    if n_groups:
        shapes = scratch_shapes(net, model, numba.get_num_threads(), inputs.w.dtype)[1]
        scratch = _cpu_scratch(plan, L.BackwardScratch, shapes)
        rec = L.Records(*(forward[key] for key in RECORD_KEYS))
        kernels = L.kernels(int(model.u.shape[1]))
        kernels.backward(spikes, net, model, rec, g_trace, g_tfirst, g_counts, gw, gd, grads, group_off, scratch)
    return gw, gd, grads
