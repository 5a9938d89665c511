"""Mutation check: does the test suite catch small, deliberate bugs?

Each mutation below is a textual patch to one source line (a flipped gradient term, a rounding
change in the Loihi 2 emulator, a summary that reports the wrong epoch ...) together with the
targeted pytest selection that should catch it. For every mutation this script

1. copies the working tree (not .git or .venv) into a temporary directory, once per invocation,
   and runs everything there, with the copy's sources first on PYTHONPATH -- the working tree
   itself is never modified, so a Ctrl-C or a crash cannot leave a bug behind;
2. runs each distinct selection once unmutated (it must pass, else the check is meaningless and
   the script stops with exit 2);
3. applies the mutation in the copy, runs its selection (stopping at the first failure),
   and restores the line in a ``finally``;
4. prints a table mutation -> caught / missed.

A mutation counts as caught only when pytest reports failing tests (exit 1); a collection error,
no collected tests or a timeout count as missed, as does a patch whose line is no longer in the
source (the table says which). Exit status: 0 when every mutation was caught, 1 otherwise.

Usage (from the repository root, in the environment the tests run in)::

    python tests/mutations.py --list            # the mutations and their selections
    python tests/mutations.py                   # all of them (about 15 min on a 2-core VM)
    python tests/mutations.py decay_mask_low_bit summary_reports_last

Not collected by pytest (no ``test_`` prefix) and not part of the default run: it is slow, since
a mutated numba kernel is compiled afresh.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("eventkit_tonic", "eventkit_loihi2", "eventkit_wandb")
KERNELS = "eventkit/engine/backends/_cpu_kernels.py"
EMULATOR = "plugins/eventkit_loihi2/eventkit_loihi2/emulator.py"
LOIHI_TESTS = "plugins/eventkit_loihi2/tests/test_loihi2.py"
PER_NEURON_TESTS = "tests/test_engine_tau_per_neuron.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    old: str  # one source line's text (stripped), which must occur exactly once
    new: str
    tests: tuple[str, ...]  # pytest arguments of the selection that should catch it
    why: str
    missed_before: bool = False  # missed by the suite before the tests named in `tests` were added


MUTATIONS = [
    # ---- caught before
    Mutation(
        "gradient_term_flipped",
        KERNELS,
        "g_phi = lam_v[j] * d_restart * cur",
        "g_phi = -lam_v[j] * d_restart * cur",
        ("tests/test_engine_gradients.py", "-k", "finite_differences"),
        "the restart's term of the spike-time adjoint with the wrong sign",
    ),
    Mutation(
        "described_reset_rate_dropped",
        "eventkit/engine/backends/_linear_kernels.py",
        "g_phi += lam[s, j] * (t1[s] - t2[s])",
        "g_phi -= lam[s, j] * t2[s]",
        ("tests/test_engine_described.py", "-k", "reproduce and lif"),
        "the spike time's derivative of its own step loses the reset's term E(1-phi) R A E(phi) x",
    ),
    Mutation(
        "described_crossing_sensitivity_untransposed",
        "eventkit/engine/backends/described.py",
        'c_rate=np.ascontiguousarray(np.einsum("pba,pb->pa", prop, c) - c),',
        'c_rate=np.ascontiguousarray(np.einsum("pab,pb->pa", prop, c) - c),',
        ("tests/test_engine_described.py", "-k", "reproduce and lif"),
        "dphi/dx uses prop c instead of prop^T c (c_rate)",
    ),
    Mutation(
        "described_delivery_rate_wrong_side",
        "eventkit/engine/backends/_linear_kernels.py",
        "_matvec(a_step, q, e, de, False)",
        "_matvec(a_step, q, e, de, True)",
        ("tests/test_engine_described.py", "-k", "exact_gradients"),
        "a delivery's rate uses A^T E u instead of A E u (wrong only for a non-symmetric A)",
    ),
    Mutation(
        "described_late_arrival_decay",
        "eventkit/engine/backends/_linear_kernels.py",
        "return n + 2 + d_row[idx], 2.0 - phi - f",
        "return n + 2 + d_row[idx], 1.0 - phi - f",
        ("tests/test_engine_described.py", "-k", "reproduce and delays"),
        "a delayed arrival that lands one grid time late decays one step too little",
    ),
    Mutation(
        "described_input_arrival_decays_over_its_sub_step_part",
        "eventkit/engine/backends/described.py",
        "r = np.where(f > 0.0, 1.0 - f, 0.0)",
        "r = np.where(f > 0.0, f, 0.0)",
        ("tests/test_engine_described.py", "-k", "reproduce and delays"),
        "an input synapse's precomputed arrival decays over f instead of the 1 - f left to its grid time",
    ),
    Mutation(
        "described_input_arrival_reads_stale_adjoint",
        "eventkit/engine/backends/_linear_kernels.py",
        "_copy_states(lam, hist[n % n_ring])",
        "pass",
        ("tests/test_engine_described.py", "-k", "reproduce and delays"),
        "an input arrival with no whole step of delay reads the ring's stale adjoint, not lam at n h",
    ),
    Mutation(
        "described_input_delay_gradient_sign",
        "eventkit/engine/backends/_linear_kernels.py",
        "gd[idx] -= w[idx] * _pair(lam_g, q0 + t, in_rate[idx])",
        "gd[idx] += w[idx] * _pair(lam_g, q0 + t, in_rate[idx])",
        ("tests/test_engine_described.py", "-k", "reproduce and delays"),
        "an input synapse's delay gradient with the wrong sign (later arrival = less decay left)",
    ),
    Mutation(
        "decay_floor_not_truncation",
        EMULATOR,
        "return (y + ((y >> 63) & 4095)) >> 12",
        "return y >> 12",
        (LOIHI_TESTS, "-k", "decay or emulator_equals"),
        "emulator decay rounds negative values down instead of toward zero",
    ),
    Mutation(
        "regulariser_sign_flipped",
        KERNELS,
        "jump_v[j] += tau_mem[p] * g_counts[b, j]",
        "jump_v[j] -= tau_mem[p] * g_counts[b, j]",
        ("tests/test_engine_gradients.py", "-k", "regulariser"),
        "the spike-count regulariser pushes activity the wrong way",
    ),
    Mutation(
        "resume_without_optimizer_state",
        "eventkit/training/loop.py",
        'optimizer_from_flat(optimizer, {k: v for k, v in tensors.items() if k.startswith("optim.")}, '
        'meta["optimizer"])',
        '(lambda *args: None)(optimizer, {k: v for k, v in tensors.items() if k.startswith("optim.")}, '
        'meta["optimizer"])',
        ("tests/test_app.py", "-k", "resume_after_kill"),
        "a resumed run starts with a fresh optimizer (Adam moments lost)",
    ),
    # ---- missed before
    Mutation(
        "decay_mask_low_bit",
        EMULATOR,
        "return (y + ((y >> 63) & 4095)) >> 12",
        "return (y + ((y >> 63) & 4094)) >> 12",
        (LOIHI_TESTS, "-k", "decay or emulator_equals"),
        "decay mask off by one bit: wrong only where |y| = 4095 mod 4096",
        True,
    ),
    Mutation(
        "regulariser_kick_x0.1",
        KERNELS,
        "jump_v[j] += tau_mem[p] * g_counts[b, j]",
        "jump_v[j] += 0.1 * tau_mem[p] * g_counts[b, j]",
        ("tests/test_engine_gradients.py", "-k", "regulariser"),
        "the regulariser's kick a tenth of its definition (direction unchanged)",
        True,
    ),
    Mutation(
        "summary_reports_last",
        "eventkit/running/pipeline.py",
        '"test_accuracy": best["accuracy"],',
        '"test_accuracy": last["accuracy"],',
        ("tests/test_app.py", "-k", "best_epoch or contract"),
        "summary.json reports the last epoch's test accuracy as the best checkpoint's",
        True,
    ),
    # ---- bugs the strengthened assertions are there for
    Mutation(
        "decay_mask_one_bit_short",
        EMULATOR,
        "return (y + ((y >> 63) & 4095)) >> 12",
        "return (y + ((y >> 63) & 2047)) >> 12",
        (LOIHI_TESTS, "-k", "decay or emulator_equals"),
        "decay mask with 11 bits",
    ),
    Mutation(
        "netx_clip_one_short",
        EMULATOR,
        "x = np.clip(x, -256 * mixed, 255)",
        "x = np.clip(x, -256 * mixed, 254)",
        (LOIHI_TESTS, "-k", "netx or emulator_equals"),
        "the emulated Lava synapse clips weights at 254 instead of 255",
    ),
    Mutation(
        "chip_readout_ignores_training",
        "plugins/eventkit_loihi2/eventkit_loihi2/target.py",
        'readout = READOUT_ON_CHIP.get(str(fnet.readout.get("name")), "exp_sum")',
        'readout = "exp_sum"',
        (LOIHI_TESTS, "-k", "chip_readout"),
        "the chip always classifies by the exp-weighted sum",
    ),
    Mutation(
        "jitter_clamps_instead_of_dropping",
        "eventkit/components/augment.py",
        "if clip:",
        "if True:",
        ("tests/test_augment.py", "-k", "jitter"),
        "jitter without clip keeps out-of-range spikes (clamped to the edges)",
    ),
    Mutation(
        "evaluate_weights_last_batch_wrongly",
        "eventkit/training/loop.py",
        "float(loss_fn(out.readout, labels)) * len(idx),",
        "float(loss_fn(out.readout, labels)) * batch_size,",
        ("tests/test_train.py", "-k", "fit_writes"),
        "evaluate's loss weights a short last batch as a full one",
    ),
    Mutation(
        "validation_split_overlaps",
        "eventkit/training/loop.py",
        "return train.subset(np.sort(perm[n_val:])), train.subset(np.sort(perm[:n_val]))",
        "return train.subset(np.sort(perm[n_val:])), train.subset(np.sort(perm[1:n_val + 1]))",
        ("tests/test_train.py", "-k", "disjoint"),
        "one validation sample is also a training sample (sizes unchanged)",
    ),
    Mutation(
        "distributed_groups_summed_in_rank_order_reversed",
        "eventkit/training/parallel.py",
        "stacked = torch.cat(self.dp.gather_rows(both, counts, tuple(both.shape[1:]), both.dtype, both.device))",
        "stacked = torch.cat(self.dp.gather_rows(both, counts, tuple(both.shape[1:]), both.dtype, both.device)[::-1])",
        ("tests/test_distributed.py", "-k", "two_processes_train"),
        "the processes' group gradients added in another order than one process adds them (1-ulp "
        "differences that grow over the run)",
    ),
    Mutation(
        "tau_kappa_sensitivity_without_its_source",
        KERNELS,
        "r_k[t] += lam_v[t]",
        "r_k[t] += 0.0 * lam_v[t]",
        ("tests/test_engine_time_constants.py", "-k", "finite_differences"),
        "the propagator's kappa term of the time-constant gradient dropped (kappa depends on both taus)",
    ),
    Mutation(
        "tau_input_arrival_gain_term_dropped",
        KERNELS,
        "g_coef[q, B0] += _dot(w[a0 : a0 + n_post], lam)",
        "g_coef[q, B0] += 0.0 * _dot(w[a0 : a0 + n_post], lam)",
        ("plugins/eventkit_loihi2/tests/test_loihi_cuba_neuron.py", "-k", "unrounded"),
        "an input spike's b0 term of the time-constant gradient dropped (loihi_cuba's b0 = dv / beta)",
    ),
    Mutation(
        "tau_delayed_arrivals_unpaired",
        KERNELS,
        "_pair_delayed(g_coef, q, coef_sums, b0 * bs, b0c * (bs - am))",
        "_pair_delayed(g_coef, q, coef_sums, 0.0 * bs, 0.0 * am)",
        ("tests/test_engine_time_constants.py", "-k", "delays_match and round"),
        "a delayed hidden spike's arrivals left out of the propagator term of the time-constant gradient",
    ),
    Mutation(
        "tau_delayed_input_arrivals_unpaired",
        KERNELS,
        "_pair_delayed(g_coef, q, coef_sums, coef[q, B0], 0.0)",
        "_pair_delayed(g_coef, q, coef_sums, 0.0, 0.0)",
        ("tests/test_engine_time_constants.py", "-k", "delays_match and round"),
        "a delayed input spike's arrivals left out of the propagator term of the time-constant gradient",
    ),
    Mutation(
        "tau_delayed_sensitivities_read_a_step_late",
        KERNELS,
        "_store_rho_row(rhist, rho, p_out)",
        "_store_rho_row(rhist, rho, _row(n, first, stride))",
        ("tests/test_engine_time_constants.py", "-k", "delays_match and round"),
        "the sensitivities kept at the wrong grid time for delayed arrivals",
    ),
    Mutation(
        "late_arrival_adjoint_without_its_extra_step",
        KERNELS,
        "scal[4] = b0 * bs * coef[q, BETA]",
        "scal[4] = b0 * bs",
        ("tests/test_engine_delays.py", "-k", "finite_differences and ce"),
        "the backward of a fractional-delay arrival that falls into the following step misses that step's decay",
    ),
    Mutation(
        "late_arrival_voltage_without_its_extra_step",
        KERNELS,
        "scal[7] = b0c * am * coef[q, ALPHA]",
        "scal[7] = b0c * am",
        ("tests/test_engine_delays.py", "-k", "finite_differences and ce"),
        "the voltage part of a fractional-delay arrival in the following step decays one step too little",
    ),
    Mutation(
        "sorted_rows_gradients_left_in_kernel_order",
        "eventkit/engine/backends/cpu.py",
        "flat[inputs.order] = flat.copy()",
        "flat[:] = flat.copy()",
        ("tests/test_engine_delays.py", "-k", "finite_differences and ce"),
        "the gradients of rows sorted by sub-step part handed back in the kernels' order, not the weights'",
    ),
    Mutation(
        "fractional_rows_left_unsorted",
        "eventkit/engine/backends/cpu.py",
        'rows = np.argsort(d_frac[sl].reshape(n_pre, n_post), axis=1, kind="stable")',
        "rows = np.tile(np.arange(n_post), (n_pre, 1))",
        ("tests/test_engine_delays.py", "-k", "sorted_by_sub_step"),
        "a row of sub-step delays left in target order: the kernels' split sends arrivals to the wrong step",
    ),
    Mutation(
        "arrival_membrane_decay_term_uses_current_decay",
        "eventkit/engine/backends/_neuron_math.py",
        "r * b0 * c * y * s_v,",
        "r * b0 * c * x * s_v,",
        ("tests/test_engine_time_constants.py", "-k", "gradients_match_finite_differences and not delays"),
        "an arrival's tau_mem term (shared by the per-layer and per-neuron paths) decays with tau_syn",
    ),
    Mutation(
        "tau_fractional_arrivals_decay_term_dropped",
        KERNELS,
        "g_coef[q, HS] -= b0 * (sums[2] + c * sums[3])",
        "g_coef[q, HS] -= 0.0 * (sums[2] + c * sums[3])",
        ("tests/test_engine_time_constants.py", "-k", "delays_match and exact"),
        "a fractional-delay arrival's decay over the rest of its step left out of the tau_syn gradient",
    ),
    Mutation(
        "tau_fractional_arrival_time_ignores_late_arrivals",
        KERNELS,
        "r = (1.0 - phi) - f + (1.0 if late else 0.0)",
        "r = (1.0 - phi) - f",
        ("tests/test_engine_time_constants.py", "-k", "delays_match and exact"),
        "an arrival that falls into the following step decays over one step less in the gradient",
    ),
    Mutation(
        "tau_fractional_arrivals_current_unpaired",
        KERNELS,
        "sums[6 + m] += wx * rhist[kr + m + 1]",
        "sums[6 + m] += 0.0 * rhist[kr + m + 1]",
        ("tests/test_engine_time_constants.py", "-k", "delays_match and exact"),
        "fractional-delay arrivals left out of the propagator term (their current against rho)",
    ),
    Mutation(
        "tau_threshold_crossing_term_sign_flipped",
        KERNELS,
        "g_coef[cr, ALPHA] -= g_phi * gap * v * inv_d2",
        "g_coef[cr, ALPHA] += g_phi * gap * v * inv_d2",
        ("tests/test_engine_time_constants.py", "-k", "finite_differences"),
        "the spike time's dependence on alpha (through the interpolated crossing) with the wrong sign",
    ),
    Mutation(
        "alif_jump_not_decayed_over_the_rest_of_its_step",
        KERNELS,
        "a_state[j] += delta_a * np.exp(-(1.0 - rec_phi[r]) * h_a)",
        "a_state[j] += delta_a",
        ("tests/test_engine_alif.py", "-k", "weight_gradients"),
        "the threshold's jump lands at the end of the step, while the backward pass differentiates "
        "a jump at the spike time",
    ),
    Mutation(
        "alif_adjoint_jump_without_the_crossing_term",
        KERNELS,
        "jump_a[j] = g_phi * (d - gap * (1.0 - rho_a)) * inv_d2 + rho_a * lam_a[j]",
        "jump_a[j] = rho_a * lam_a[j]",
        ("tests/test_engine_alif.py", "-k", "weight_gradients"),
        "the spike time's dependence on the adaptation a dropped from a's adjoint",
    ),
    # ---- missed before: bug classes a planted-bug review found passing the whole fast suite
    Mutation(
        "app_optimizer_without_parameter_groups",
        "eventkit/running/pipeline.py",
        'optimizer = registry.build("optimizer", plain(cfg.optimizer), '
        "net.param_groups(network.delay_lr, network.tau_lr))",
        'optimizer = registry.build("optimizer", plain(cfg.optimizer), net.parameters())',
        ("tests/test_app.py", "-k", "delays_reports"),
        "the app's optimizer trains delays with the weights' lr and schedule (network.delay_lr ignored)",
        True,
    ),
    Mutation(
        "emulator_exponent_path_ignores_delays",
        EMULATOR,
        "ring_l[(t + 1 + dd) % (dl + 1), j] += _shift(tmp[dd, j], exp)",
        "ring_l[(t + 1) % (dl + 1), j] += _shift(tmp[dd, j], exp)",
        (LOIHI_TESTS, "-k", "emulator_equals"),
        "the emulator delivers delayed spikes at once where the layer keeps a weight exponent",
        True,
    ),
    Mutation(
        "chip_check_refuses_62_steps",
        "plugins/eventkit_loihi2/eventkit_loihi2/target.py",
        "if conn.delay.steps(data.dt) > MAX_DELAY:",
        "if conn.delay.steps(data.dt) >= MAX_DELAY:",
        ("plugins/eventkit_loihi2/tests/test_loihi2_delays.py", "-k", "longest_delay"),
        "the target refuses a network whose max delay is the chip's longest, 62 steps",
        True,
    ),
    Mutation(
        "export_refuses_62_steps",
        "plugins/eventkit_loihi2/eventkit_loihi2/quantize.py",
        "if not np.all(np.isfinite(d)) or np.any(d != np.round(d)) or d.min() < 0 or d.max() > MAX_DELAY:",
        "if not np.all(np.isfinite(d)) or np.any(d != np.round(d)) or d.min() < 0 or d.max() >= MAX_DELAY:",
        ("plugins/eventkit_loihi2/tests/test_loihi2_delays.py", "-k", "longest_delay"),
        "the export refuses a delay of 62 steps",
        True,
    ),
    Mutation(
        "resume_checks_only_plain_keys",
        "eventkit/running/resume.py",
        "if _may_change(key):",
        'if _may_change(key) or "." not in key:',
        ("tests/test_resume.py", "-k", "group_or_experiment"),
        "trainer.resume accepts a changed config group (optimizer=sgd) or +experiment= silently",
        True,
    ),
    Mutation(
        "resume_ignores_experiments",
        "eventkit/running/resume.py",
        "keys = sorted({*rec, *cur})",
        "keys = []",
        ("tests/test_resume.py", "-k", "group_or_experiment"),
        "trainer.resume accepts +experiment= (an override that is no key of the config) silently",
        True,
    ),
    Mutation(
        "yinyang_val_from_the_test_stream",
        "eventkit/data/yinyang.py",
        "val = split(n_val, streams[1]) if n_val else None",
        "val = split(n_val, streams[2]) if n_val else None",
        ("tests/test_datasets.py", "-k", "share_no_sample"),
        "Yin-Yang's validation split repeats the test split (model selection on the test set)",
        True,
    ),
    Mutation(
        "delay_gradient_times_dt",
        "eventkit/engine/backends/cpu.py",
        "grads_d[conn.name] = finish(flat_d[sl].reshape(n_pre, n_post).T / self.dt)",
        "grads_d[conn.name] = finish(flat_d[sl].reshape(n_pre, n_post).T * self.dt)",
        ("tests/test_engine_delays.py", "-k", "other_than_one_ms"),
        "the delay gradient scaled by dt instead of divided by it (equal at dt = 1 ms)",
        True,
    ),
    Mutation(
        "whole_step_delay_gradient_sign",
        KERNELS,
        "term = wt * (li * dp_i + lv * dp_v)",
        "term = wt * (li * dp_i - lv * dp_v)",
        ("tests/test_engine_delays.py", "-k", "whole_step"),
        "the lean whole-step delay path's voltage term of dL/d(delay) with the wrong sign",
    ),
    Mutation(
        "chip_cost_cores_not_parallel",
        "plugins/eventkit_loihi2/eventkit_loihi2/chip_cost.py",
        'synaptic_ops=c["synop_ns"] * 1e-3 * a.synops / steps / max(a.cores, 1),',
        'synaptic_ops=c["synop_ns"] * 1e-3 * a.synops / steps,',
        ("plugins/eventkit_loihi2/tests/test_loihi2_cost.py", "-k", "by_hand"),
        "the Loihi 2 time model puts every synaptic op on one core",
    ),
    Mutation(
        "chip_readout_window_ignores_offset",
        EMULATOR,
        "v = v[:, int(offset) :]",
        "v = v[:, :window]",
        ("plugins/eventkit_loihi2/tests/test_loihi2_cost.py", "-k", "voltages"),
        "a chip run's voltages are classified from step 0, not from the readout offset",
    ),
    Mutation(
        "hardware_dynamic_energy_is_total",
        "plugins/eventkit_loihi2/eventkit_loihi2/run.py",
        "dynamic=(total_w - static_w) * sample_s * 1e3,",
        "dynamic=total_w * sample_s * 1e3,",
        ("plugins/eventkit_loihi2/tests/test_loihi2_cost.py", "-k", "hardware_record"),
        "hardware.json's dynamic energy counts the static power too",
    ),
    Mutation(
        "report_uses_any_hardware_json",
        "plugins/eventkit_loihi2/eventkit_loihi2/report.py",
        'if record.get("fingerprint") == samples_fingerprint(Path(out_dir) / "samples.npz"):',
        "if True:",
        ("plugins/eventkit_loihi2/tests/test_loihi2_cost.py", "-k", "report_uses"),
        "the deploy report uses a hardware.json measured for another network",
    ),
    Mutation(
        "strict_host_needs_either_flag",
        "eventkit/base/reproducible.py",
        'return {"machine": machine, "fma_avx2": None if flags is None else {"fma", "avx2"} <= flags}',
        'return {"machine": machine, "fma_avx2": None if flags is None else bool({"fma", "avx2"} & flags)}',
        ("tests/test_reproducible.py", "-k", "host_lies_outside"),
        "strict mode takes a CPU with FMA but not AVX2 (or the reverse) for one glibc runs its FMA exp on",
    ),
    Mutation(
        "strict_host_notice_dropped",
        "eventkit/running/pipeline.py",
        "notices = [*notices, host] if host else notices",
        "notices = notices",
        ("tests/test_reproducible.py", "-k", "off_the_covered_hosts"),
        "a strict run off the covered hosts does not say so",
    ),
    Mutation(
        "per_neuron_arrival_without_decay",
        KERNELS,
        "i[t] += w[t] * (b0 * x)",
        "i[t] += w[t] * b0",
        (PER_NEURON_TESTS, "-k", "finite_differences and not delays and not alif"),
        "an undelayed arrival in a layer with per-neuron time constants skips its current's remaining decay",
    ),
    Mutation(
        "per_neuron_terms_to_the_population_row",
        KERNELS,
        "g_coef[crow[j], HS] += g_cols[2, j]",
        "g_coef[pop_of[j], HS] += g_cols[2, j]",
        (PER_NEURON_TESTS, "-k", "finite_differences and not delays and not alif"),
        "a target's arrival terms in hs go to its population's row instead of its own",
    ),
    Mutation(
        "per_neuron_late_arrival_one_row_early",
        KERNELS,
        "return r, p0 + off + (stride if late else _ZERO)",
        "return r, p0 + off",
        (PER_NEURON_TESTS, "-k", "special_case and exact"),
        "a fractional delayed arrival in a per-neuron layer that falls into the next step lands a step early",
    ),
    Mutation(
        "per_neuron_restart_with_population_row",
        KERNELS,
        "return nm.restart(coef[cr, C], coef[cr, BETA], coef[cr, HM], coef[cr, HS], phi)[0]",
        "return nm.restart(coef[0, C], coef[0, BETA], coef[0, HM], coef[0, HS], phi)[0]",
        (PER_NEURON_TESTS, "-k", "finite_differences and not delays and not alif"),
        "a spiking neuron with its own time constants restarts with the first population's row",
    ),
    Mutation(
        "cuda_threshold_without_adaptation",
        "eventkit/engine/backends/_cuda_kernels.py",
        "a_adv = F(coef[p, RHO_A] * a_j)  # the threshold is theta + a",
        "a_adv = F(0)  # the threshold is theta + a",
        ("tests/test_engine_cuda.py", "-k", "matches_cpu"),
        "the CUDA kernels test the plain threshold of an adaptive neuron (as before ALIF ran there)",
    ),
    Mutation(
        "cuda_adaptation_jump_dropped",
        "eventkit/engine/backends/_cuda_kernels.py",
        "g_phi += lam_a[j] * coef[p, DELTA_A] * coef[p, HA] * e_a",
        "g_phi += 0.0 * e_a",
        ("tests/test_engine_cuda.py", "-k", "matches_cpu"),
        "the CUDA backward pass loses the spike time's term through the threshold's jump",
    ),
    Mutation(
        "gamma_init_scale_not_divided_by_shape",
        "eventkit/engine/network.py",
        "draw = np.random.default_rng(seed).gamma(gamma_shape, value / gamma_shape, n)",
        "draw = np.random.default_rng(seed).gamma(gamma_shape, value, n)",
        (PER_NEURON_TESTS, "-k", "distribution"),
        "the gamma initialisation's mean is shape x value instead of value",
    ),
    Mutation(
        "described_learning_r_forgets_the_decay",
        "eventkit/engine/backends/_linear_kernels.py",
        "r[t] = m[t] + g * r[t]",
        "r[t] = m[t] + r[t]",
        ("tests/test_engine_described.py", "-k", "learn"),
        "a learning model's R, stepped back, does not decay with exp(lam): every propagator step's sum is wrong",
    ),
    Mutation(
        "described_learning_r_not_restarted_at_a_spike",
        "eventkit/engine/backends/_linear_kernels.py",
        "rmat[a, k, j] = 0.0",
        "pass",
        ("tests/test_engine_described.py", "-k", "learn"),
        "a spike does not start a new segment: steps before it are paired with the state after it",
    ),
    Mutation(
        "described_learning_segment_not_closed_at_a_spike",
        "eventkit/engine/backends/_linear_kernels.py",
        "_add_arrival_rows_one(gm[p, 0], rmat, j, nu)",
        "pass",
        ("tests/test_engine_described.py", "-k", "learn"),
        "the steps after a spike lose their pairing with the state the spike leaves",
    ),
    Mutation(
        "described_learning_crossing_phase_sign",
        "eventkit/engine/backends/_linear_kernels.py",
        "_add_frechet(gm[p, 1], -scale * gap, mu, nu2, lam_c, p, g_step[p], 1.0)",
        "_add_frechet(gm[p, 1], scale * gap, mu, nu2, lam_c, p, g_step[p], 1.0)",
        ("tests/test_engine_described.py", "-k", "learn"),
        "the crossing phase's dependence on exp(A h) enters with the wrong sign",
    ),
    Mutation(
        "described_learning_input_u_dropped",
        "eventkit/engine/backends/_linear_kernels.py",
        "gu_q[s] += _dot_rows(ws, lam[s, j0:j1])",
        "pass",
        ("tests/test_engine_described.py", "-k", "learn"),
        "an input spike's arrival w u loses its term in dL/du",
    ),
    Mutation(
        "described_learning_delivery_u_dropped",
        "eventkit/engine/backends/_linear_kernels.py",
        "gu[q, s] += su[s]",
        "pass",
        ("tests/test_engine_described.py", "-k", "learn"),
        "a hidden spike's delivery w E_q(1 - phi) u_q loses its term in dL/du",
    ),
    Mutation(
        "described_learning_delayed_arrival_reads_stale_r",
        "eventkit/engine/backends/_linear_kernels.py",
        "_copy_r(rmat, rhist[n % n_ring])",
        "pass",
        ("tests/test_engine_described.py", "-k", "learn and delays"),
        "a delayed arrival of a learning model is paired with the R of another grid time",
    ),
    Mutation(
        "described_learning_input_sums_not_applied",
        "eventkit/engine/backends/_linear_kernels.py",
        "input_sums_to_grads(gm[g], gu[g], net, model, scratch, wk)",
        "pass",
        ("tests/test_engine_described.py", "-k", "learn and delays"),
        "input arrivals into a learning population lose their u and E_q(r) terms (summed per synapse, never applied)",
    ),
    Mutation(
        "described_learning_input_sums_not_cleared",
        "eventkit/engine/backends/_linear_kernels.py",
        "scratch.lsum[wk][:] = 0.0",
        "pass",
        ("tests/test_engine_described.py", "-k", "learn and delays"),
        "a worker's per-synapse input sums carry over from the previous call (or hold whatever memory held)",
    ),
    Mutation(
        "described_learning_input_pairing_without_its_decay",
        "eventkit/engine/backends/_linear_kernels.py",
        "nu[s] = w[idx] * gi[s] * nu2[s]",
        "nu[s] = w[idx] * nu2[s]",
        ("tests/test_engine_described.py", "-k", "learn and delays"),
        "an input arrival with a sub-step part is paired with its target's R as u_q, not E_q(r) u_q",
    ),
    Mutation(
        "described_learning_reset_offset_dropped",
        "eventkit/engine/backends/_linear_kernels.py",
        "gu[p, S + s] += t2[s]",
        "pass",
        ("tests/test_engine_described.py", "-k", "learn"),
        "a spike's reset values and jumps (r) get no gradient: ALIF's adapt_step, a model's reset value",
    ),
    Mutation(
        "described_learning_threshold_sign",
        "eventkit/engine/backends/_linear_kernels.py",
        "gu[p, 2 * S] += g_phi / d",
        "gu[p, 2 * S] -= g_phi / d",
        ("tests/test_engine_described.py", "-k", "learn"),
        "dL/dtheta enters with the wrong sign",
    ),
    Mutation(
        "described_learned_threshold_not_simulated",
        "eventkit/engine/backends/cpu.py",
        "thresholds = {**{p: float(m.dynamics().theta) for p, m in models.items()}, **thresholds}",
        "thresholds = dict(thresholds)",
        ("tests/test_engine_described.py", "-k", "learn"),
        "a learned theta reaches the gradient's chain but not the simulation (the plan's theta is simulated)",
    ),
    Mutation(
        "described_learning_steps_without_frechet_weights",
        "eventkit/engine/backends/described.py",
        "g_w = frechet_weights(model.lam[p], 1.0) * gm[p, 0] + gm[p, 1]",
        "g_w = gm[p, 0] + gm[p, 1]",
        ("tests/test_engine_described.py", "-k", "learn"),
        "the propagator steps' sum is not weighted by Phi(1), the derivative of exp in the eigenbasis",
    ),
    Mutation(
        "specialised_copies_share_a_cache_file",
        "eventkit/engine/backends/_specialise.py",
        'copy.__qualname__ = f"{py.__qualname__}__{tag}" if tag else py.__qualname__',
        "copy.__qualname__ = py.__qualname__",
        ("tests/test_specialise.py",),
        "two specialisations of a kernel (two numbers of states) share numba's cache file and run each other's code",
    ),
]


def copy_tree(dest: Path) -> Path:
    """The working tree (sources, tests, configs, numba's on-disk caches) without .git/.venv."""
    skip = shutil.ignore_patterns(".git", ".venv", "*.egg-info", ".pytest_cache", "outputs", "multirun")
    shutil.copytree(ROOT, dest, ignore=skip, symlinks=True)
    return dest


def environment(tree: Path) -> dict:
    roots = [str(tree)] + [str(tree / "plugins" / p) for p in PLUGINS]
    old = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(roots + ([old] if old else []))}


def check_imports_from(tree: Path, env: dict) -> None:
    code = (
        "import eventkit, eventkit_loihi2, eventkit_tonic; "
        "print(eventkit.__file__); print(eventkit_loihi2.__file__); print(eventkit_tonic.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True)
    files = out.stdout.split()
    if out.returncode != 0 or len(files) != 3 or not all(Path(f).is_relative_to(tree) for f in files):
        sys.exit(
            f"mutations: the copy's packages are not the ones imported ({out.stdout or out.stderr}); "
            "run this script in the tests' environment with the packages installed editable"
        )


def pytest(tree: Path, env: dict, args: tuple[str, ...], timeout: float) -> tuple[int | None, float, str]:
    """(pytest's exit status or None on timeout, seconds, last lines of output)."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0, ""
    tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-3:])
    return out.returncode, time.perf_counter() - t0, tail


def patch(file: Path, old: str, new: str) -> str:
    """Replace the one line whose stripped text is ``old`` (indentation kept); return the file's
    original text. Raises LookupError unless exactly one line matches."""
    text = file.read_text()
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.strip() == old]
    if len(hits) != 1:
        raise LookupError(f"{len(hits)} lines of {file.name} read {old!r}")
    line = lines[hits[0]]
    lines[hits[0]] = line[: len(line) - len(line.lstrip())] + new + ("\n" if line.endswith("\n") else "")
    file.write_text("".join(lines))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per pytest run")
    args = parser.parse_args(argv)
    by_name = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            flag = " (missed before)" if m.missed_before else ""
            print(
                f"{m.name}{flag}\n    {m.path}: {m.old}\n    -> {m.new}\n    {m.why}\n"
                f"    pytest {' '.join(m.tests)}"
            )
        return 0
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(unknown)}; --list shows the names")
    chosen = [by_name[n] for n in args.names] if args.names else MUTATIONS

    with tempfile.TemporaryDirectory(prefix="eventkit-mutations-") as tmp:
        tree = copy_tree(Path(tmp) / "tree")
        env = environment(tree)
        check_imports_from(tree, env)
        for selection in dict.fromkeys(m.tests for m in chosen):
            rc, secs, tail = pytest(tree, env, selection, args.timeout)
            print(f"baseline ({secs:.0f} s): pytest {' '.join(selection)} -> exit {rc}", flush=True)
            if rc != 0:
                print(f"mutations: the unmutated selection fails, so no mutation can be judged:\n{tail}")
                return 2
        rows = []
        for m in chosen:
            file = tree / m.path
            try:
                original = patch(file, m.old, m.new)
            except LookupError as exc:
                rows.append((m, "missed (stale patch)", 0.0, str(exc)))
                continue
            try:
                rc, secs, tail = pytest(tree, env, m.tests, args.timeout)
            finally:
                file.write_text(original)
            verdict = {1: "caught"}.get(
                rc, "missed" if rc == 0 else "missed (timeout)" if rc is None else f"missed (pytest exit {rc})"
            )
            rows.append((m, verdict, secs, tail.splitlines()[-1] if tail else ""))
            print(f"{m.name}: {verdict} ({secs:.0f} s)", flush=True)

    width = max(len(m.name) for m, *_ in rows)
    print(f"\n{'mutation':<{width}}  {'result':<10}  seconds  selection")
    for m, verdict, secs, _ in rows:
        flag = "  [missed before]" if m.missed_before else ""
        print(f"{m.name:<{width}}  {verdict:<10}  {secs:7.0f}  {' '.join(m.tests)}{flag}")
    missed = [m.name for m, verdict, *_ in rows if not verdict.startswith("caught")]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} caught" + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
