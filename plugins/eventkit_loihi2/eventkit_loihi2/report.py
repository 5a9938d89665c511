"""deploy/loihi2/report.md and the fields of summary.json["deploy"]["loihi2"].

Latency and energy per sample come from ``hardware.json`` where a Loihi 2 run measured them
(``python -m eventkit_loihi2.run``), else from the model of :mod:`eventkit_loihi2.chip_cost`
(coefficients, ranges and sources: docs/loihi2.md section 7). Beside them: the same network's
inference time measured on this CPU with the float engine, and the published Jetson Orin Nano
figure for the same topology where one exists. Every number says where it comes from.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from eventkit.plugin import json_default, write_json, write_text
from eventkit.plugin import pct

from . import chip_cost

HARDWARE_JSON = "hardware.json"


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


def cost_estimate(ops: dict, n_steps: int, n_layers: int, cores: int, overrides: dict, out_dir: Path) -> dict:
    """Latency and energy per sample: the model's (always) and a measured ``hardware.json``'s
    (when the deployment has one); ``primary`` is the measured one where it exists."""
    steps = n_steps + n_layers
    activity = chip_cost.Activity(
        steps=steps, cores=int(cores), synops=float(ops["synaptic_ops"]), input_spikes=float(ops["input_spikes"])
    )
    est = dict(latency_steps=steps, model=chip_cost.estimate(activity, overrides), measured=None)
    hw = Path(out_dir) / HARDWARE_JSON
    if hw.exists():
        record = json.loads(hw.read_text())
        try:
            measured = chip_cost.from_hardware(record, steps)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{hw}: not a hardware record of eventkit_loihi2.run ({exc!r}); delete it or re-run "
                "`python -m eventkit_loihi2.run` on a Loihi 2"
            ) from None
        if record.get("fingerprint") == samples_fingerprint(Path(out_dir) / "samples.npz"):
            est["measured"] = measured
        else:
            est["measured_stale"] = (
                f"{HARDWARE_JSON} was measured for another network or other samples than this deployment's; "
                "re-run `python -m eventkit_loihi2.run` on a Loihi 2"
            )
    est["primary"] = "measured" if est["measured"] else "model"
    return est


def samples_fingerprint(path: Path) -> str | None:
    """What ties a hardware measurement to a deployment: a hash of ``samples.npz``'s inputs and
    emulator readout voltages (a different network or other samples change them)."""
    import hashlib

    if not Path(path).exists():
        return None
    h = hashlib.sha256()
    with np.load(path) as z:
        for key in ("inputs", "v_out"):
            a = np.ascontiguousarray(z[key])
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def float_inference_times(net, data, batch: int = 256, rounds: int = 3) -> dict | None:
    """The float network's inference time per sample on this CPU (wall clock, minimum over
    ``rounds``): one sample at a time (up to 8 samples) and in one batch (up to ``batch``)."""
    if not hasattr(net, "predictions") or len(data) == 0:
        return None
    one = data.subset(np.arange(min(8, len(data))))
    many = data.subset(np.arange(min(batch, len(data))))
    best1 = bestb = float("inf")
    with net.simulating(readout_in_the_loop=None):  # the float network alone
        net.predictions(one, 1)  # compile and warm up
        for _ in range(rounds):
            t0 = time.perf_counter()
            net.predictions(one, 1)
            best1 = min(best1, (time.perf_counter() - t0) / len(one))
            t0 = time.perf_counter()
            net.predictions(many, len(many))
            bestb = min(bestb, (time.perf_counter() - t0) / len(many))
    return dict(
        source=f"measured here: wall clock, minimum of {rounds} rounds",
        batch_1_ms=best1 * 1e3,
        batched_ms=bestb * 1e3,
        batch=len(many),
    )


def _topology(chip) -> dict:
    return dict(
        n_in=chip.n_in,
        hidden=[layer.n for layer in chip.hidden],
        n_out=chip.n_out,
        recurrent=any(layer.w_rec is not None for layer in chip.hidden),
        delays=any(layer.delay is not None and np.any(layer.delay) for layer in chip.layers),
    )


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
    cpu_times: dict | None = None,
) -> dict:
    labels = np.asarray(test.labels)
    chip_acc, float_acc, agree, drop = _accuracies(labels, emu.predictions, float_pred)
    ops = synaptic_ops(chip, emu, test)
    est = cost_estimate(ops, test.n_steps, len(chip.layers), cores["total"], energy, out_dir)
    est["readout_window"] = f"steps {emu.offset}..{emu.offset + test.n_steps - 1}"
    est["cpu"] = cpu_times
    est["jetson_orin_nano"] = chip_cost.matching_jetson(_topology(chip))
    speed = len(test) / emu.seconds if emu.seconds > 0 else None
    lava_out = _lava_fields(lava)
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


def _accuracies(labels: np.ndarray, chip_pred: np.ndarray, float_pred) -> tuple:
    """(chip accuracy, float accuracy, prediction agreement, float - chip in points); None where
    there is nothing to compare."""
    chip_acc = float(np.mean(chip_pred == labels)) if len(labels) else None
    float_acc = agree = drop = None
    if float_pred is not None and len(labels):
        float_acc = float(np.mean(float_pred == labels))
        agree = float(np.mean(float_pred == chip_pred))
        drop = 100.0 * (float_acc - chip_acc)
    return chip_acc, float_acc, agree, drop


def _lava_fields(lava: dict) -> dict:
    """deploy.json's ``lava`` entry: the check's outcome, or why it did not run."""
    out = dict(status=lava.get("status"))
    if lava.get("status") == "checked":
        out.update(
            samples_checked=lava["samples"],
            steps=lava["steps"],
            bit_exact=lava["bit_exact"],
            mismatches=lava["mismatches"],
            first_mismatch=lava["first_mismatch"],
            backend=lava["backend"],
            lava_seconds=lava.get("info", {}).get("seconds"),
        )
    else:
        out["reason"] = lava.get("reason")
    return out


def _rng(pair, fmt: str) -> str:
    return f"{pair[0]:{fmt}} .. {pair[1]:{fmt}}"


def _cost_lines(e: dict) -> list[str]:
    """The report's latency / energy section: every number with its source."""
    m = e["model"]
    en, er = m["energy_mj"], m["energy_mj_range"]
    terms = ", ".join(f"{k} {v:.3g}" for k, v in m["time_terms_us"].items())
    lines = []
    if e.get("measured_stale"):
        lines.append(f"- not used: {e['measured_stale']}")
    hw = e.get("measured")
    if hw:
        he = hw["energy_mj"]
        lines += [
            f"- **measured** ({hw['source']}): latency {hw['latency_ms']:.3f} ms "
            f"({e['latency_steps']} steps x {hw['time_per_step_us']:.3g} us); energy {he['total']:.4f} mJ = "
            f"{he['static']:.4f} static + {he['dynamic']:.4f} dynamic; dominant: {hw['dominant_energy']}",
        ]
    lines += [
        f"- latency{' (model)' if hw else ''}: **{m['latency_ms']:.3g} ms** "
        f"(range {_rng(m['latency_ms_range'], '.3g')}) "
        f"= {e['latency_steps']} chip steps x {m['time_per_step_us']:.3g} us/step (us per step: {terms}); "
        f"dominant: {m['dominant_time'].replace('_', ' ')}; modelled"
        + (
            "; host spike I/O not included (no public figure)"
            if m["coefficients"]["input_us_per_spike"]["value"] == 0
            else ""
        ),
        f"- energy{' (model)' if hw else ''}: **{en['total']:.3g} mJ** (range {_rng(er['total'], '.2g')}) = "
        f"static {en['static']:.3g} mJ ({_rng(er['static'], '.2g')}: static power over the latency) + "
        f"dynamic {en['dynamic']:.3g} mJ ({_rng(er['dynamic'], '.2g')}: synaptic ops); "
        f"dominant: **{m['dominant_energy']}**; modelled",
        "- model coefficients (`target.energy.*`, overwrite with measured values): "
        + ", ".join(f"{k} {v['value']:.3g} {v['unit']}" for k, v in m["coefficients"].items())
        + "; sources and the fit to published Loihi 2 measurements: eventkit's docs/loihi2.md section 7",
    ]
    cpu = e.get("cpu")
    if cpu:
        lines.append(
            f"- this CPU, float engine ({cpu['source']}): {cpu['batch_1_ms']:.3g} ms/sample at batch 1, "
            f"{cpu['batched_ms']:.3g} ms/sample at batch {cpu['batch']}"
        )
    else:
        lines.append("- this CPU: not measured (deploy was given a FloatNetwork of parameters, not the float network)")
    jet = e.get("jetson_orin_nano")
    if jet:
        b1, bb = jet["batch_1"], jet["batch_128"]
        lines.append(
            f"- Jetson Orin Nano, same topology ({jet['source']}): {b1['ms']:.3g} ms and {b1['mj']:.3g} mJ per "
            f"sample at batch 1, {bb['ms']:.3g} ms and {bb['mj']:.3g} mJ at batch 128"
        )
    else:
        lines.append("- Jetson Orin Nano: no published figure for this topology")
    return lines


def _markdown(f: dict, chip, ops: dict, timings: dict) -> str:
    lava_line = _lava_line(f["lava"])
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
        "## Latency and energy per sample on Loihi 2",
        "",
        *_cost_lines(e),
        "",
        "## Quantisation",
        "",
        "| layer | weight exp | rel. RMS error | max abs error | clipped | zero | iDecay | vDecay | vThMant |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['layer']} | {r['weight_exp']} | {100 * r['rel_rms_error']:.2f} % | "
        f"{r['max_abs_error']:.3g} | {100 * r['clipped_fraction']:.2f} % | "
        f"{100 * r['zero_fraction']:.1f} % | {r['i_decay']} | {r['v_decay']} | "
        f"{r['v_th_mant']} |"
        for r in f["quantization"]
    ]
    lines += ["", f"![weights](../../{f['files']['histogram']})", ""]
    lines += _delay_lines(f)
    lines += [
        "## Files",
        "",
        "- `model.net`: NetX HDF5, load with `lava.lib.dl.netx.hdf5.Network(net_config='model.net')`",
        "- `samples.npz`: inputs [N, T, n_in] uint8, emulator readout voltages v_out [N, T, n_out] "
        "int32, hidden spike counts, labels, predictions",
        "- re-run the Lava check: `python -m eventkit_loihi2.lava_check <this directory>`",
        "- run on a Loihi 2 (Lava's simulated chip first, then the hardware with its profiler; "
        "writes `hardware.json`, which this report then uses): `python -m eventkit_loihi2.run <this directory>`",
        "",
        "Timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()),
        "",
    ]
    return "\n".join(lines)


def _lava_line(lava: dict) -> str:
    """The report's Lava row: bit-exact, the first mismatch, or why the check did not run."""
    if lava["status"] != "checked":
        return f"not run ({lava['status']}: {lava.get('reason')})"
    if lava["bit_exact"]:
        return (
            f"**bit-exact** on {lava['samples_checked']} samples x {lava['steps']} "
            f"steps (Lava {lava['backend']}, {lava['lava_seconds']:.1f} s)"
        )
    m = lava["first_mismatch"]
    return (
        f"**MISMATCH** in {lava['mismatches']} values; first at sample "
        f"{m['sample']}, step {m['step']}, neuron {m['neuron']} (emulator "
        f"{m['emulator']}, Lava {m['lava']})"
    )


def _delay_lines(f: dict) -> list[str]:
    """The report's delay section (none without delays)."""
    if not f["delays"]:
        return []
    lines = [
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
    return lines + ["", f"![delays](../../{f['files']['delay_histogram']})", ""]
