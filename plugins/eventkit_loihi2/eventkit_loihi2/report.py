"""deploy/loihi2/report.md and the fields of summary.json["deploy"]["loihi2"].

Energy and latency are ESTIMATES from public figures (docs/loihi2.md section 7); no official Loihi 2
per-operation energy is published:

* high: 23.6 pJ per synaptic operation (reported for Loihi 1);
* low: 1 / (15 TOPS/W) = 0.067 pJ per 8-bit operation (Intel's Hala Point system claim).

Latency is counted in chip time steps: T input steps plus one step per synapse layer (each dense
connection delays by one step). A wall-clock latency needs the time per step, which depends on the
network's mapping and is not public; give ``target.energy.step_time_us`` to convert.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eventkit.files import json_default, write_json, write_text
from eventkit.report import pct

DEFAULT_ENERGY = dict(pj_per_synop_high=23.6, tops_per_watt_low=15.0, step_time_us=None)


def synaptic_ops(chip, emu, test) -> dict:
    """Mean synaptic operations (spike x non-zero outgoing synapse) and neuron updates per sample."""
    n = max(len(test), 1)
    inputs = test.binary()  # input spikes are binary per (step, channel) on the chip
    nnz_in = np.count_nonzero(chip.layers[0].w_ff, axis=0)
    ops_in = float(nnz_in[inputs.channels].sum()) / n
    ops_hidden = 0.0
    counts = emu.hidden_counts()
    for l, layer in enumerate(chip.hidden):
        fan = np.count_nonzero(chip.layers[l + 1].w_ff, axis=0).astype(np.float64)
        if layer.w_rec is not None:
            fan += np.count_nonzero(layer.w_rec, axis=0)
        ops_hidden += float((counts[l] * fan).sum()) / n
    neurons = sum(layer.n for layer in chip.layers)
    return dict(
        synaptic_ops=ops_in + ops_hidden,
        synaptic_ops_input=ops_in,
        synaptic_ops_hidden=ops_hidden,
        neuron_updates=float(neurons * (emu.n_steps or test.n_steps)),
        input_spikes=float(inputs.n_spikes) / n,
        hidden_spikes=float(sum(c.sum() for c in counts)) / n,
    )


def energy_estimate(ops: dict, n_steps: int, n_layers: int, coef: dict) -> dict:
    c = dict(DEFAULT_ENERGY, **(coef or {}))
    syn = ops["synaptic_ops"]
    steps = n_steps + n_layers
    est = dict(
        label="ESTIMATE from public figures, not a measurement",
        energy_uj_low=syn / (float(c["tops_per_watt_low"]) * 1e12) * 1e6,
        energy_uj_high=syn * float(c["pj_per_synop_high"]) * 1e-12 * 1e6,
        latency_steps=steps,
        coefficients=dict(
            pj_per_synop_high=c["pj_per_synop_high"],
            tops_per_watt_low=c["tops_per_watt_low"],
            step_time_us=c["step_time_us"],
        ),
        sources=(
            "23.6 pJ/synaptic op: Loihi 1 (Davies et al. 2018); 15 TOPS/W at 8 bit: Intel "
            "Hala Point (1152 Loihi 2 chips); see eventkit's docs/loihi2.md section 7"
        ),
    )
    if c["step_time_us"]:
        est["latency_ms"] = steps * float(c["step_time_us"]) / 1000.0
    return est


def delay_summary(chip) -> list[dict]:
    """Per layer with delays: the delays' range, mean and how many synapses wait how long."""
    rows = []
    for layer in chip.layers:
        if layer.delay is None or not np.any(layer.delay):
            continue
        d = np.asarray(layer.delay)
        rows.append(
            dict(
                layer=layer.name,
                max_steps=int(d.max()),
                mean_steps=float(d.mean()),
                zero_fraction=float(np.mean(d == 0)),
                buffer_slots=int(d.max()) + 1,
            )
        )
    return rows


def plot_delays(chip, path: Path) -> Path | None:
    """Histogram of each layer's delays in steps (None without delays)."""
    layers = [layer for layer in chip.layers if layer.delay is not None and np.any(layer.delay)]
    if not layers:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 3.0), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        d = np.asarray(layer.delay).ravel()
        ax.hist(d, bins=np.arange(d.max() + 2) - 0.5, color="tab:green")
        ax.set_title(f"{layer.name}: delays (mean {d.mean():.1f} steps)", fontsize=9)
        ax.set_xlabel("delay (chip steps)")
        ax.set_ylabel("synapses")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def build_report(
    *,
    chip,
    qrep,
    emu,
    test,
    float_pred,
    lava,
    cores,
    out_dir: Path,
    hist_path,
    timings,
    energy,
    readout,
    readout_shift: int = 0,
    delay_plot=None,
) -> dict:
    labels = np.asarray(test.labels)
    chip_acc = float(np.mean(emu.predictions == labels)) if len(labels) else None
    float_acc = agree = drop = None
    if float_pred is not None and len(labels):
        float_acc = float(np.mean(float_pred == labels))
        agree = float(np.mean(float_pred == emu.predictions))
        drop = 100.0 * (float_acc - chip_acc)
    ops = synaptic_ops(chip, emu, test)
    est = energy_estimate(ops, test.n_steps, len(chip.layers), energy)
    est["readout_window"] = f"steps {emu.offset}..{emu.offset + test.n_steps - 1}"
    speed = len(test) / emu.seconds if emu.seconds > 0 else None
    lava_out = dict(status=lava.get("status"))
    if lava.get("status") == "checked":
        lava_out.update(
            samples_checked=lava["samples"],
            steps=lava["steps"],
            bit_exact=lava["bit_exact"],
            mismatches=lava["mismatches"],
            first_mismatch=lava["first_mismatch"],
            backend=lava["backend"],
            lava_seconds=lava.get("info", {}).get("seconds"),
        )
    else:
        lava_out["reason"] = lava.get("reason")
    fields = dict(
        float_test_accuracy=float_acc,
        chip_test_accuracy=chip_acc,
        accuracy_drop_points=drop,
        prediction_agreement=agree,
        test_samples=len(labels),
        chip_readout=readout,
        lava=lava_out,
        synaptic_ops_per_sample=ops["synaptic_ops"],
        neuron_updates_per_sample=ops["neuron_updates"],
        hidden_spikes_per_sample=ops["hidden_spikes"],
        readout_spikes=emu.output_spikes,
        readout_scale_shift=readout_shift,
        estimated_cores=cores["total"],
        cores_per_layer=cores["per_layer"],
        delays=delay_summary(chip),
        delay_buffer_bytes=cores.get("delay_buffer_bytes", 0),
        estimate=est,
        emulator_samples_per_s=speed,
        quantization=qrep.layers,
        files=dict(
            netx="deploy/loihi2/model.net",
            samples="deploy/loihi2/samples.npz",
            report="deploy/loihi2/report.md",
            histogram=str(Path("plots") / Path(hist_path).name),
            delay_histogram=str(Path("plots") / Path(delay_plot).name) if delay_plot else None,
        ),
    )
    write_text(out_dir / "report.md", _markdown(fields, chip, ops, timings))
    write_json(out_dir / "deploy.json", fields)
    return json.loads(json.dumps(fields, default=json_default))


def _markdown(f: dict, chip, ops: dict, timings: dict) -> str:
    lava = f["lava"]
    if lava["status"] == "checked":
        if lava["bit_exact"]:
            lava_line = (
                f"**bit-exact** on {lava['samples_checked']} samples x {lava['steps']} "
                f"steps (Lava {lava['backend']}, {lava['lava_seconds']:.1f} s)"
            )
        else:
            m = lava["first_mismatch"]
            lava_line = (
                f"**MISMATCH** in {lava['mismatches']} values; first at sample "
                f"{m['sample']}, step {m['step']}, neuron {m['neuron']} (emulator "
                f"{m['emulator']}, Lava {m['lava']})"
            )
    else:
        lava_line = f"not run ({lava['status']}: {lava.get('reason')})"
    e = f["estimate"]
    drop = "n/a" if f["accuracy_drop_points"] is None else f"{f['accuracy_drop_points']:+.2f} points"
    lines = [
        "# Loihi 2 deployment",
        "",
        "| | |",
        "|---|---|",
        f"| float test accuracy | {pct(f['float_test_accuracy'])} |",
        f"| emulated chip test accuracy ({f['test_samples']} samples, readout {f['chip_readout']}) "
        f"| {pct(f['chip_test_accuracy'])} |",
        f"| float - chip | {drop} |",
        f"| same prediction float vs chip | {pct(f['prediction_agreement'])} |",
        f"| Lava agreement | {lava_line} |",
        f"| synaptic ops / sample | {f['synaptic_ops_per_sample']:.0f} (input "
        f"{ops['synaptic_ops_input']:.0f}, hidden {ops['synaptic_ops_hidden']:.0f}) |",
        f"| neuron updates / sample | {f['neuron_updates_per_sample']:.0f} |",
        f"| hidden spikes / sample | {f['hidden_spikes_per_sample']:.1f} |",
        f"| readout spikes (should be 0) | {f['readout_spikes']}"
        + (
            f" (readout weights scaled down by 2^{-f['readout_scale_shift']} to stay below " "threshold)"
            if f["readout_scale_shift"]
            else ""
        )
        + " |",
        f"| estimated neuron cores | {f['estimated_cores']} (per layer {f['cores_per_layer']}"
        + (f"; delay buffers {f['delay_buffer_bytes'] / 1024:.0f} KiB" if f["delay_buffer_bytes"] else "")
        + ") |",
        f"| emulator speed | {f['emulator_samples_per_s'] or 0:.0f} samples/s |",
        "",
        "## Energy / latency per sample (ESTIMATE)",
        "",
        f"- energy: {e['energy_uj_low']:.4f} - {e['energy_uj_high']:.3f} uJ "
        f"(synaptic ops x [1/({e['coefficients']['tops_per_watt_low']} TOPS/W), "
        f"{e['coefficients']['pj_per_synop_high']} pJ/op]); sources: {e['sources']}",
        f"- latency: {e['latency_steps']} chip time steps"
        + (
            f" = {e['latency_ms']:.2f} ms at {e['coefficients']['step_time_us']} us/step"
            if "latency_ms" in e
            else " (set target.energy.step_time_us to convert to ms)"
        ),
        "",
        "## Quantisation",
        "",
        "| layer | weight exp | rel. RMS error | max abs error | clipped | zero | iDecay | vDecay | vThMant |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in f["quantization"]:
        lines.append(
            f"| {r['layer']} | {r['weight_exp']} | {100 * r['rel_rms_error']:.2f} % | "
            f"{r['max_abs_error']:.3g} | {100 * r['clipped_fraction']:.2f} % | "
            f"{100 * r['zero_fraction']:.1f} % | {r['i_decay']} | {r['v_decay']} | "
            f"{r['v_th_mant']} |"
        )
    lines += ["", f"![weights](../../{f['files']['histogram']})", ""]
    if f["delays"]:
        lines += [
            "## Delays",
            "",
            "Each delayed synapse group keeps a buffer of (max delay + 1) slots per target "
            "neuron (Lava's DelayDense); a delayed arrival is one synaptic op like any other.",
            "",
            "| layer | max (steps) | mean (steps) | zero delays | buffer slots |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['layer']} | {r['max_steps']} | {r['mean_steps']:.1f} | "
            f"{100 * r['zero_fraction']:.1f} % | {r['buffer_slots']} |"
            for r in f["delays"]
        ]
        lines += ["", f"![delays](../../{f['files']['delay_histogram']})", ""]
    lines += [
        "## Files",
        "",
        "- `model.net`: NetX HDF5, load with `lava.lib.dl.netx.hdf5.Network(net_config='model.net')`",
        "- `samples.npz`: inputs [N, T, n_in] uint8, emulator readout voltages v_out [N, T, n_out] "
        "int32, hidden spike counts, labels, predictions",
        "- re-run the Lava check: `python -m eventkit_loihi2.lava_check <this directory>`",
        "",
        "Timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()),
        "",
    ]
    return "\n".join(lines)
