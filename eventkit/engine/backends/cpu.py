"""The CPU backend: numba kernels (:mod:`._cpu_kernels`), parallel over samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

import numba
import numpy as np
import torch

from ...data.spikes import SpikeData
from ..neurons import Coefficients
from ..topology import MAX_DELAY_BUFFER_BYTES, Topology
from . import _cpu_kernels as K
from . import described as D


def coefficient_row(c: Coefficients) -> list[float]:
    """A population's coefficients in the kernels' column order (``K.ALPHA`` ...)."""
    row = [0.0] * K.N_COEF
    row[K.ALPHA], row[K.BETA], row[K.KAPPA], row[K.B0] = c.alpha, c.beta, c.kappa, c.b0
    row[K.C], row[K.HM], row[K.HS], row[K.THETA] = c.c, c.hm, c.hs, c.theta
    row[K.RHO_A], row[K.HA], row[K.DELTA_A] = c.rho_a, c.ha, c.delta_a
    return row


@dataclass
class CpuPlan:
    """Flat arrays describing populations and dense blocks (one per connection, same order)."""

    topology: Topology
    dt: float
    n_steps: int
    pop_off: np.ndarray
    pop_of: np.ndarray  # int32 [n_neurons]: each neuron's population
    coef: np.ndarray  # float64 [n_pop, N_COEF]
    spiking: np.ndarray  # int8 [n_pop]: 0 never, 1 sub-step, 2 grid
    tau_mem: np.ndarray
    blk: np.ndarray  # int64 [n_conn, N_BLK]; DELAYED / LEARN_D are set per call
    w_off: list[int]
    out_start: np.ndarray
    out_blk: np.ndarray
    in_blk: np.ndarray
    n_w: int
    n_slots: int  # the most grid times a half of the delay window may need (0: no delays)
    capacity: int  # spike records per sample (grows on overflow up to max_spikes)
    max_spikes: int
    n_groups: int
    described: D.Model | None = None  # the populations' descriptions, where a model has no coefficients
    _buffers: dict = field(default_factory=dict)

    @property
    def n_hidden(self) -> int:
        return int(self.pop_off[-2])

    @property
    def n_out(self) -> int:
        return int(self.pop_off[-1] - self.pop_off[-2])

    def grow_capacity(self) -> None:
        """After a spike-record overflow: double the records per sample, up to ``max_spikes``;
        an overflow at ``max_spikes`` is an error naming the fix."""
        if self.capacity >= self.max_spikes:
            raise RuntimeError(
                f"a sample produced more than max_spikes_per_sample={self.max_spikes} "
                "spikes; raise max_spikes_per_sample (memory grows with it) or reduce activity "
                "(weights, input rate, regulariser)"
            )
        self.capacity = min(self.max_spikes, 2 * self.capacity)

    def connection_gradients(self, flat_w, flat_d, finish, neuron_rows: tuple = ()) -> tuple[dict, dict, dict]:
        """The summed flat gradients (pre-major, the weights' layout) as dL/dw (n_post, n_pre)
        and dL/d(delay) in ms^-1 by connection name, and, where ``flat_w`` goes on past the
        weights (coefficient gradients, :attr:`CpuInputs.learn_coef`), dL/d(coefficient row)
        (``N_COEF`` values) by population index -- ``[1 + n, N_COEF]`` for a population of
        ``neuron_rows`` (:attr:`CpuInputs.neuron_rows`): its own row, then its neurons'; ``finish``
        turns each (numpy or torch) view into the backend's result array."""
        grads_w, grads_d, grads_c = {}, {}, {}
        if flat_w.shape[0] > self.n_w:
            rows = flat_w[self.n_w :].reshape(-1, K.N_COEF)
            n_pop = len(self.pop_off) - 1
            grads_c = {p: finish(rows[p]) for p in range(n_pop)}
            for p, first, n in neuron_rows:  # the population's row, then its neurons' rows
                grads_c[p] = finish(np.concatenate([rows[p : p + 1], rows[first : first + n]]))
        for k, conn in enumerate(self.topology.connections):
            n_post, n_pre = conn.shape
            sl = slice(self.w_off[k], self.w_off[k] + n_pre * n_post)
            grads_w[conn.name] = finish(flat_w[sl].reshape(n_pre, n_post).T)
            if conn.delay is not None:
                # the kernels' delay gradient is per step of delay; parameters are in ms
                grads_d[conn.name] = finish(flat_d[sl].reshape(n_pre, n_post).T / self.dt)
        return grads_w, grads_d, grads_c

    def recorded_forward(self, n_batch: int, dtype, state: Mapping[str, tuple], run) -> dict:
        """The forward pass's results for ``n_batch`` samples -- output trace, first spike times,
        hidden spike counts and the spike records, with the per-spike state records ``state``
        (key -> trailing shape) -- as ``run(res)`` fills them; after a record overflow the
        capacity grows (:meth:`grow_capacity`) and ``run`` starts again."""
        n_steps = self.n_steps
        while True:
            cap = self.capacity
            res = dict(
                trace=np.zeros((n_batch, n_steps, self.n_out), dtype=dtype),
                t_first=np.full((n_batch, self.n_out), float(n_steps), dtype=dtype),
                counts=np.zeros((n_batch, self.n_hidden), dtype=dtype),
                rec_step=np.zeros((n_batch, cap), dtype=np.int32),
                rec_nrn=np.zeros((n_batch, cap), dtype=np.int32),
                rec_phi=np.zeros((n_batch, cap), dtype=dtype),
                **{key: np.zeros((n_batch, cap, *shape), dtype=dtype) for key, shape in state.items()},
                n_rec=np.zeros(n_batch, dtype=np.int64),
                overflow=np.zeros(n_batch, dtype=np.int8),
            )
            run(res)
            if not res["overflow"].any():
                return res
            self.grow_capacity()

    def buffer(self, key: str, shape: tuple, dtype) -> np.ndarray:
        """A scratch array kept between calls (the kernels overwrite it), so that a training
        step does not fault in fresh pages each time."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf


class CpuInputs(NamedTuple):
    """Per-call kernel inputs: effective weights, coefficients and delays in the blocks' layout
    (pre-major rows, see the kernels' docstring)."""

    w: np.ndarray
    coef: np.ndarray
    blk: np.ndarray
    d_off: np.ndarray  # uint32 D * 2 n_neurons + 2 target: a synapse's place in the delay window
    # from its spike's row (D: whole steps of its delay; input rows: the grid offset)
    d_frac: np.ndarray  # sub-step part f in [0, 1)
    d_bm: np.ndarray  # beta^(-f) of the target population (input rows: beta^r of the arrival)
    d_am: np.ndarray  # alpha^(-f) (input rows: alpha^r)
    n_slots: int  # grid times per half of the delay window this call (longest delay + 1); 0: no delays
    learn_coef: bool = False  # backward also returns dL/d(coefficient row) of every population
    # where rows are sorted (CpuBackend.inputs): the weights' index of each kernel position
    order: np.ndarray | None = None
    crow: np.ndarray | None = None  # int64 [n_neurons]: each neuron's row of ``coef``
    hetero: np.ndarray | None = None  # int8 [n_pop]: 1 where each neuron has its own row
    # (population, first row, rows) of every population whose neurons have their own rows
    neuron_rows: tuple = ()
    # a network of described models: the description-driven kernels' (Net, Model) of this call,
    # built once for its forward and backward pass (described.kernel_views)
    described: tuple | None = None


def coefficient_table(plan: CpuPlan, coefficients: Mapping, thresholds: Mapping) -> tuple:
    """The call's coefficient rows ``coef`` (one per population, then one per neuron of every
    population whose neurons have their own), each neuron's row ``crow``, the populations with
    rows per neuron ``hetero`` and those rows' places ``neuron_rows`` ((population, first row, n)).
    ``coefficients`` maps a population to its :class:`Coefficients`, or to a float64 array
    ``[n, N_COEF]`` of per-neuron rows (its own row is then its first neuron's: the columns the
    kernels read per population -- b0, theta, the adaptation -- are the same for all its neurons);
    ``thresholds`` overrides theta."""
    coef = plan.coef.copy()
    crow = plan.pop_of.astype(np.int64)
    hetero = np.zeros(len(plan.pop_off) - 1, dtype=np.int8)
    extra, neuron_rows = [], []
    first = coef.shape[0]
    for pop, c in coefficients.items():
        if isinstance(c, Coefficients):
            coef[pop] = coefficient_row(c)
            continue
        rows = np.asarray(c, dtype=np.float64)
        lo, hi = int(plan.pop_off[pop]), int(plan.pop_off[pop + 1])
        if rows.shape != (hi - lo, K.N_COEF):
            raise ValueError(
                f"coefficients of population {pop}: expected shape {(hi - lo, K.N_COEF)}, got {rows.shape}"
            )
        coef[pop] = rows[0]
        hetero[pop] = 1
        crow[lo:hi] = first + np.arange(hi - lo)
        neuron_rows.append((pop, first, hi - lo))
        extra.append(rows)
        first += hi - lo
    coef = np.concatenate([coef, *extra]) if extra else coef
    for pop, theta in thresholds.items():
        coef[pop, K.THETA] = theta
        for p, lo, n in neuron_rows:
            if p == pop:
                coef[lo : lo + n, K.THETA] = theta
    return coef, crow, hetero, tuple(neuron_rows)


def spikes(data: SpikeData, n_steps: int) -> K.Spikes:
    """The kernels' view of a batch's input spikes."""
    return K.Spikes(data.offsets, data.steps, data.channels, n_steps)


STRUCTURE = ("pop_off", "pop_of", "spiking", "out_start", "out_blk", "in_blk")  # a plan's arrays the kernels read


def kernel_net(structure: Mapping, tau_mem, inputs, rows: tuple) -> K.Net:
    """The kernels' view of the network of one call: the plan's ``STRUCTURE`` arrays by name (the
    host arrays on the CPU, their device copies on CUDA), ``tau_mem`` in the weights' float type,
    the call's weights, coefficients and delay tables and ``rows``, each neuron's coefficient row
    and the populations whose neurons have their own (``crow``, ``hetero``)."""
    s = structure
    return K.Net(
        s["pop_off"],
        s["pop_of"],
        inputs.coef,
        s["spiking"],
        tau_mem,
        inputs.blk,
        s["out_start"],
        s["out_blk"],
        s["in_blk"],
        inputs.w,
        inputs.d_off,
        inputs.d_frac,
        inputs.d_bm,
        inputs.d_am,
        inputs.n_slots,
        *rows,
    )


RECORD_KEYS = ("rec_step", "rec_nrn", "rec_phi", "rec_v", "rec_i", "n_rec", "overflow")


def records(forward: dict) -> K.Records:
    """The kernels' view of the forward pass's spike records (``RECORD_KEYS`` of its dict)."""
    return K.Records(*(forward[key] for key in RECORD_KEYS))


class CpuBackend:
    name = "cpu"
    learns_closed_form_constants = True

    def plan(
        self, topology: Topology, dt: float, n_steps: int, *, max_spikes: int = 2_000_000, n_groups: int = 8
    ) -> CpuPlan:
        pops = topology.populations
        pop_off = np.zeros(len(pops) + 1, dtype=np.int64)
        np.cumsum([p.size for p in pops], out=pop_off[1:])
        pop_of = np.concatenate([np.full(p.size, k, dtype=np.int32) for k, p in enumerate(pops)])
        coefs = [p.model.coefficients(dt) for p in pops]
        described = None
        if any(c is None for c in coefs):  # a model given by its description only
            described = D.model_arrays(topology, dt)
            coef = np.zeros((len(pops), K.N_COEF))
            coef[:, K.THETA] = described.theta
            spiking, tau_mem = described.spiking, described.count_scale
        else:
            coef = np.array([coefficient_row(c) for c in coefs], dtype=np.float64)
            spiking = np.array([(2 if c.grid else 1) if c.spiking else 0 for c in coefs], dtype=np.int8)
            tau_mem = np.array([c.tau_mem for c in coefs], dtype=np.float64)
        conns = topology.connections
        blk = np.zeros((len(conns), K.N_BLK), dtype=np.int64)
        w_off, off = [], 0
        for k, conn in enumerate(conns):
            blk[k, K.PRE], blk[k, K.POST] = conn.pre.index, conn.post.index
            blk[k, K.W_OFF], blk[k, K.N_POST] = off, conn.post.size
            w_off.append(off)
            off += conn.pre.size * conn.post.size
        outgoing = [[k for k, c in enumerate(conns) if c.pre.index == p.index] for p in pops]
        out_start = np.zeros(len(pops) + 1, dtype=np.int64)
        np.cumsum([len(o) for o in outgoing], out=out_start[1:])
        out_blk = np.array([k for o in outgoing for k in o], dtype=np.int64)
        in_blk = np.array([k for k, c in enumerate(conns) if c.pre.is_input], dtype=np.int64)
        # the longest arrival, steps(dt) grid times after its spike's step, and one more: a delay
        # held at its max in float32 may exceed it by a rounding error (1.1 ms is 11.0000002 steps
        # of 0.1 ms), i.e. arrive just after that grid time. Each call uses what its delays need.
        n_slots = max((c.delay.steps(dt) + 2 for c in topology.delayed), default=0)
        state_bytes = 4 * n_slots * int(pop_off[-1]) * 8  # a window of 2 n_slots grid times x (i, v)
        if state_bytes > MAX_DELAY_BUFFER_BYTES:
            raise ValueError(
                f"network.delays: a max delay of {n_slots - 2} steps needs "
                f"{state_bytes / 2**30:.1f} GiB of delay buffers per worker thread (limit "
                f"{MAX_DELAY_BUFFER_BYTES / 2**30:.0f} GiB). Fix: lower network.delays.<kind>.max "
                "or raise dataset.dt"
            )
        n_hidden = int(pop_off[-2])
        return CpuPlan(
            topology,
            dt,
            n_steps,
            pop_off,
            pop_of,
            coef,
            spiking,
            tau_mem,
            blk,
            w_off,
            out_start,
            out_blk,
            in_blk,
            off,
            n_slots,
            capacity=min(max_spikes, max(4096, 8 * n_hidden)),
            max_spikes=max_spikes,
            n_groups=n_groups,
            described=described,
        )

    def inputs(
        self,
        plan: CpuPlan,
        weights: dict,
        delays: dict,
        thresholds: dict,
        dtype,
        coefficients: dict | None = None,
        sorted_rows: bool = True,
    ) -> CpuInputs:
        """The call's kernel inputs. ``sorted_rows``: the synapses of each presynaptic row of a
        hidden connection with sub-step delay parts are stored in ascending order of that part
        (:attr:`CpuInputs.order`; the kernels split such a row into the synapses that arrive
        within the spike's step and those that arrive in the next by one search per spike)."""
        conns = plan.topology.connections
        models = None
        if plan.described is not None:  # described models learn through their models, not rows
            models, coefficients = coefficients, None
            if models:  # a learned theta (description_vector), unless a threshold override replaces it
                thresholds = {**{p: float(m.dynamics().theta) for p, m in models.items()}, **thresholds}
        w = np.ascontiguousarray(
            np.concatenate([np.asarray(weights[c.name]).T.reshape(-1) for c in conns]), dtype=dtype
        )
        coef, crow, hetero, neuron_rows = coefficient_table(plan, coefficients or {}, thresholds)
        blk = plan.blk.copy()
        any_delay = False
        n_slots = 1  # grid times the buffers hold this call: the longest delay now, not the max
        d_off = d_frac = d_bm = d_am = None
        stride = 2 * int(plan.pop_off[-1])  # one grid time of the delay window: (i, v) per neuron
        for k, conn in enumerate(conns):
            if conn.delay is None:
                continue
            blk[k, K.LEARN_D] = 1
            d = np.asarray(delays[conn.name], dtype=np.float64)
            if not np.any(d):
                continue  # all zero: the undelayed code is exactly this connection
            if d_off is None:
                d_off = np.zeros(plan.n_w, dtype=np.uint32)
                d_frac, d_bm, d_am = (np.zeros(plan.n_w, dtype=dtype) for _ in range(3))
            any_delay = True
            blk[k, K.DELAYED] = 1
            steps = d.T.reshape(-1) / plan.dt  # pre-major like the weights
            if conn.delay.mode == "round":
                steps = np.rint(steps)
            whole = np.floor(steps)
            frac = steps - whole
            sub_step = frac > 0
            n_slots = max(n_slots, int((whole + sub_step).max()) + 1)  # arrivals land <= ceil(d) later
            # the target's decays: its population's, or each neuron's own (per synapse, pre-major)
            post_rows = crow[plan.pop_off[conn.post.index] : plan.pop_off[conn.post.index + 1]]
            hs, hm = np.tile(coef[post_rows, K.HS], conn.pre.size), np.tile(coef[post_rows, K.HM], conn.pre.size)
            sl = slice(plan.w_off[k], plan.w_off[k] + steps.size)
            target = np.tile(2 * (plan.pop_off[conn.post.index] + np.arange(conn.post.size)), conn.pre.size)
            d_frac[sl] = frac
            blk[k, K.SUBSTEP] = int(sub_step.any())
            if conn.pre.is_input:
                # an input spike of step s acts at s + delay: grid time s + D (+1 with a
                # sub-step part), with the remaining decay over r = 1 - f (0 without one)
                d_off[sl] = (whole.astype(np.int64) + sub_step) * stride + target
            else:  # hidden spikes: beta^(-f), alpha^(-f), the rest depends on the spike's phase
                d_off[sl] = whole.astype(np.int64) * stride + target
            if not blk[k, K.SUBSTEP]:  # whole steps: no decay within the arrival, exp(0) = 1
                d_bm[sl] = 1.0
                d_am[sl] = 1.0
            elif conn.pre.is_input:
                r = np.where(sub_step, 1.0 - frac, 0.0)
                d_bm[sl] = np.exp(-r * hs)
                d_am[sl] = np.exp(-r * hm)
            else:
                d_bm[sl] = np.exp(frac * hs)
                d_am[sl] = np.exp(frac * hm)
        if not any_delay:
            d_off = np.zeros(1, dtype=np.uint32)
            d_frac = d_bm = d_am = np.zeros(1, dtype=dtype)
        if any_delay and n_slots > plan.n_slots:  # delays above their max are refused before this
            raise AssertionError(f"delays need {n_slots} buffer slots, the plan holds {plan.n_slots}")
        order = None
        sorted_rows = sorted_rows and plan.described is None  # the described kernels go in target order
        for k, conn in enumerate(conns):
            if not (sorted_rows and blk[k, K.DELAYED] and blk[k, K.SUBSTEP]) or conn.pre.is_input:
                continue
            if hetero[conn.post.index]:  # targets with their own decays: the kernels go in target order
                continue
            n_post, n_pre = conn.shape
            sl = slice(plan.w_off[k], plan.w_off[k] + n_pre * n_post)
            rows = np.argsort(d_frac[sl].reshape(n_pre, n_post), axis=1, kind="stable")
            idx = (plan.w_off[k] + n_post * np.arange(n_pre)[:, None] + rows).reshape(-1)
            if order is None:
                order = np.arange(plan.n_w)
            order[sl] = idx
            for a in (w, d_off, d_frac, d_bm, d_am):
                a[sl] = a[idx]
        inputs = CpuInputs(
            w,
            coef.astype(dtype),
            blk,
            d_off,
            d_frac,
            d_bm,
            d_am,
            n_slots if any_delay else 0,
            bool(coefficients),
            order,
            crow,
            hetero,
            neuron_rows,
        )
        if plan.described is not None:
            inputs = inputs._replace(described=D.kernel_views(plan, inputs, models))
        return inputs

    @staticmethod
    def window(plan: CpuPlan, inputs: CpuInputs) -> np.ndarray:
        """The delay window of every worker thread (2 n_slots grid times x (i, v) per neuron), kept
        between calls: the forward pass clears it per sample; the backward pass writes every row
        it reads, but those after the last step, which it clears."""
        if not inputs.n_slots:  # unused, but every worker thread takes its row
            return plan.buffer("window", (numba.get_num_threads(), 1), inputs.w.dtype)
        size = 2 * inputs.n_slots * 2 * int(plan.pop_off[-1])
        return plan.buffer("window", (numba.get_num_threads(), size), inputs.w.dtype)

    def forward(self, plan: CpuPlan, inputs: CpuInputs, data: SpikeData) -> dict:
        batch = spikes(data, plan.n_steps)
        if plan.described is not None:
            return D.forward(plan, inputs, batch)
        net = kernel_net(vars(plan), plan.tau_mem.astype(inputs.w.dtype), inputs, (inputs.crow, inputs.hetero))
        window = self.window(plan, inputs)

        def run(res: dict) -> None:
            K.forward(batch, net, window, K.Outputs(res["trace"], res["t_first"], res["counts"]), records(res))

        return plan.recorded_forward(len(data), inputs.w.dtype, {"rec_v": (), "rec_i": ()}, run)

    def group_offsets(self, plan: CpuPlan, n_batch: int) -> np.ndarray:
        """``min(n_groups, n_batch)`` groups of consecutive samples, as equal as the batch allows
        (one group per prange task of the backward kernel; fixed, whatever the thread count)."""
        n_groups = min(plan.n_groups, n_batch)
        return (np.arange(n_groups + 1, dtype=np.int64) * n_batch) // max(n_groups, 1)

    def backward(
        self,
        plan: CpuPlan,
        inputs: CpuInputs,
        data: SpikeData | None,
        forward: dict | None,
        g_trace: np.ndarray | None,
        g_tfirst: np.ndarray | None,
        g_counts: np.ndarray | None,
        reduction=None,
    ) -> tuple[dict, dict, dict]:
        dtype = inputs.w.dtype
        if reduction is not None:
            group_off = np.ascontiguousarray(reduction.local_offsets(), dtype=np.int64)
        else:
            group_off = self.group_offsets(plan, len(data))
        n_groups = len(group_off) - 1
        if n_groups and (data is None or group_off[-1] != len(data)):
            raise ValueError(f"backward: sample groups {group_off.tolist()} do not cover the batch")
        with_d = bool(inputs.blk[:, K.LEARN_D].any() or inputs.blk[:, K.DELAYED].any())
        model = None
        if plan.described is not None:
            batch = spikes(data, plan.n_steps) if n_groups else None
            gw, gd, grads = D.backward(plan, inputs, batch, forward, g_trace, g_tfirst, g_counts, group_off, with_d)
            model = inputs.described[1]
            if model.learn.any():  # the models' sums ride on the weights' rows through any reduction
                gw = np.concatenate([gw, D.flatten_grads(grads)], axis=1)
        else:
            n_coef = inputs.coef.shape[0] if inputs.learn_coef else 0
            gw = plan.buffer("gw", (n_groups, plan.n_w + n_coef * K.N_COEF), dtype)
            gd = plan.buffer("gd", (n_groups, plan.n_w if with_d else 1), dtype)
            if n_groups:
                K.backward(
                    spikes(data, plan.n_steps),
                    kernel_net(vars(plan), plan.tau_mem.astype(inputs.w.dtype), inputs, (inputs.crow, inputs.hetero)),
                    self.window(plan, inputs),
                    records(forward),
                    K.Outputs(g_trace, g_tfirst, g_counts),
                    gw,
                    gd,
                    group_off,
                )
        if reduction is not None:
            gw, gd = (np.ascontiguousarray(x, dtype=y.dtype) for x, y in zip(reduction.combine(gw, gd), (gw, gd)))
        flat_w = np.zeros(gw.shape[1], dtype=gw.dtype)  # the described path sums in float64
        if len(gw):
            K.sum_groups(gw, flat_w)
        flat_d = None
        if with_d:
            flat_d = np.zeros(plan.n_w, dtype=gd.dtype)
            if len(gd):
                K.sum_groups(gd, flat_d)
            flat_d = flat_d.astype(dtype, copy=False)
        grads_m = {}
        if model is not None and model.learn.any():
            grads_m = D.model_gradients(model, *D.unflatten_grads(model, flat_w[plan.n_w :]))
            flat_w = flat_w[: plan.n_w]
        flat_w = flat_w.astype(dtype, copy=False)
        if inputs.order is not None:  # back from sorted rows to the weights' layout
            for flat in (flat_w[: plan.n_w], flat_d):
                flat[inputs.order] = flat.copy()
        grads_w, grads_d, grads_c = plan.connection_gradients(flat_w, flat_d, np.ascontiguousarray, inputs.neuron_rows)
        return grads_w, grads_d, {**grads_c, **grads_m}

    def to_torch(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x)

    def from_torch(self, g: torch.Tensor, inputs: CpuInputs) -> np.ndarray:
        return np.ascontiguousarray(g.detach().cpu().numpy(), dtype=inputs.w.dtype)


__all__ = ["CpuBackend", "CpuPlan", "CpuInputs", "coefficient_row"]
