"""What a person reads after a run: report.md and the plots it shows (plots/*.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eventkit.base.files import atomic_path, write_text
from eventkit.rundir.layout import DelayMetricKeys, RunDir


def pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals ("93.40 %"); "n/a" for None."""
    return "n/a" if x is None else f"{100 * x:.2f} %"


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(metrics: list[dict], path: Path) -> None:
    """Loss, accuracy and learning rate per epoch."""
    _savefig(curves_figure(metrics), path)


def curves_figure(metrics: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m["epoch"] for m in metrics]
    # constrained layout leaves room for every tick label (a log axis's labels are wide)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        if any(key in m for m in metrics):
            axes[0].plot(epochs, [m.get(key, np.nan) for m in metrics], style, label=key)
    for key, style in (("train_accuracy", "-"), ("val_accuracy", "--")):
        if any(key in m for m in metrics):
            axes[1].plot(epochs, [m.get(key, np.nan) for m in metrics], style, label=key)
    lr = [m["lr"] for m in metrics]
    axes[2].plot(epochs, lr)
    if all(x > 0 for x in lr):
        axes[2].set_yscale("log")  # its labels (2x10^-3) are wide: the constrained layout makes room
    for ax, title in zip(axes, ("loss", "accuracy", "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return fig


def plot_raster(net: Any, data: Any, k: int, path: Path) -> None:
    """Input spikes, hidden spikes and output voltages of test sample ``k``."""
    _savefig(raster_figure(net, data, k), path)


def raster_figure(net: Any, data: Any, k: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one = data.subset([k])
    record = net.record(one)
    n_hidden = len(record.hidden)
    fig, axes = plt.subplots(2 + n_hidden, 1, figsize=(9, 2.2 * (2 + n_hidden)), sharex=True, layout="constrained")
    steps, channels = one.sample(0)
    axes[0].scatter(steps * one.dt, channels, s=2, c="k")
    axes[0].set_ylabel("input")
    if len(steps) == 0:
        _say_empty(axes[0], "no input spikes")
    for layer, spikes in enumerate(record.hidden):
        axes[1 + layer].scatter(spikes[:, 1] * one.dt, spikes[:, 2], s=1, c="tab:blue")
        axes[1 + layer].set_ylabel(f"hidden {layer}")
        if len(spikes) == 0:
            _say_empty(axes[1 + layer], f"no spikes in hidden layer {layer} for this sample")
    v = np.asarray(record.v_out)[0]
    t = np.arange(v.shape[0]) * one.dt
    for c in range(v.shape[1]):
        axes[-1].plot(
            t,
            v[:, c],
            lw=1.5 if c == one.labels[0] else 0.6,
            label=f"class {c} (label)" if c == one.labels[0] else None,
        )
    axes[-1].set_ylabel("output V")
    axes[-1].set_xlabel("time (ms)")
    axes[-1].legend(loc="upper right")
    axes[0].set_title(f"test sample {k}, label {one.labels[0]}")
    axes[0].set_xlim(0, one.n_steps * one.dt)
    return fig


def _say_empty(ax, text: str) -> None:
    """An empty panel says why it is empty, rather than looking like a plotting failure."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def delay_table(net: Any) -> list[str]:
    """Markdown rows describing each delayed connection's delays (ms) as the network holds them."""
    rows = [
        "| connection | learned | max | mean | std | min | largest | at 0 | at max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    delays = net.delays_ms()
    for conn in net.topology.delayed:
        d = delays[conn.name]
        rows.append(
            f"| {conn.name} | {'yes' if conn.delay.learn else 'no'} | {conn.delay.max:g} | {d.mean():.2f} | "
            f"{d.std():.2f} | {d.min():.2f} | {d.max():.2f} | {pct(float(np.mean(d <= 0.0)))} | "
            f"{pct(float(np.mean(d >= conn.delay.max)))} |"
        )
    return rows


def constants_table(net: Any) -> list[str]:
    """Markdown rows of every learned neuron constant (``network.learn_tau``), per hidden layer:
    the configured value and the reported network's (one value per layer, or per neuron:
    their mean, min and max)."""
    rows = ["| layer | constant | configured | learned (mean) | min | max |", "|---|---|---|---|---|---|"]
    for k, layer in enumerate(net.time_constants()):
        for key in sorted(net.learn_tau):
            v = layer[key]
            configured = float(getattr(net._models[k], key))
            rows.append(f"| {k} | {key} | {configured:.4g} | {v.mean():.4g} | {v.min():.4g} | {v.max():.4g} |")
    return rows


def plot_delays(net: Any, metrics: list[dict], path: Path) -> None:
    """Histogram of each delayed connection's delays, and their mean +- std per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    epochs = [m["epoch"] for m in metrics]
    delays = net.delays_ms()
    for conn in net.topology.delayed:
        d = delays[conn.name].ravel()
        axes[0].hist(d, bins=50, range=(0.0, conn.delay.max), histtype="step", label=conn.name)
        keys = DelayMetricKeys.of(conn)
        mean = np.array([m.get(keys.mean, np.nan) for m in metrics])
        std = np.array([m.get(keys.std, np.nan) for m in metrics])
        (line,) = axes[1].plot(epochs, mean, label=conn.name)
        axes[1].fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    axes[0].set_title("delays (ms)")
    axes[0].set_ylabel("synapses")
    axes[1].set_title("mean +- std per epoch (ms)")
    axes[1].set_xlabel("epoch")
    for ax in axes:
        ax.legend()
    _savefig(fig, path)


def write_plots_and_report(rd: RunDir, net: Any, test: Any, summary: dict, cfg: Any) -> None:
    """plots/*.png and report.md (a human-readable page linking everything the run produced)."""
    plots = rd.path / "plots"
    plot_curves(rd.metrics, plots / "training_curves.png")
    plot_raster(net, test, 0, plots / "spike_raster.png")
    if net.topology.delayed:
        plot_delays(net, rd.metrics, plots / "delays.png")

    lines = _summary_lines(summary, cfg)
    lines += [
        "## Training curves",
        "",
        "![training curves](plots/training_curves.png)",
        "",
        "## Spike raster (test sample 0)",
        "",
        "![spike raster](plots/spike_raster.png)",
        "",
    ]
    if getattr(net, "learn_tau", None):
        lines += ["## Learned neuron constants (the reported network)", "", *constants_table(net), ""]
    if net.topology.delayed:
        lines += ["## Synaptic delays (ms, the reported network)", "", *delay_table(net), ""]
        lines += ["![delays](plots/delays.png)", ""]
    lines += ["## Deployment", ""]
    for name, fields in (summary.get("deploy") or {}).items():
        lines.append(f"### {name}")
        lines.append("")
        for key, value in fields.items():
            lines.append(f"- {key}: {value}")
        sub = rd.path / "deploy" / name / "report.md"
        if sub.exists():
            lines.append(f"- full report: [deploy/{name}/report.md](deploy/{name}/report.md)")
        lines.append("")
    lines += [
        "## Files",
        "",
        "`config_resolved.yaml` (every value used), `manifest.json` (versions, machine, timings), "
        "`metrics.jsonl` (one line per epoch), `summary.json`, `checkpoints/` (safetensors), `plots/`.",
        "",
    ]
    write_text(rd.path / "report.md", "\n".join(lines))


def _summary_lines(summary: dict, cfg: Any) -> list[str]:
    """report.md's head: the results table, the components, the notices."""
    lines = [
        f"# eventkit run: {cfg.dataset.name}",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| test accuracy (best-val checkpoint) | {pct(summary['test_accuracy'])} |",
        f"| test accuracy (last epoch) | {pct(summary['last_test_accuracy'])} |",
        f"| best validation accuracy | {pct(summary['best_val_accuracy'])} (epoch {summary['best_epoch']}) |",
        f"| epochs | {summary['epochs']} |",
        f"| hidden spikes per test sample | {summary['test_spikes_per_sample']:.1f} |",
        f"| seed | {summary['seed']} |",
        "",
        f"Components: dataset `{cfg.dataset.name}`, neuron `{cfg.neuron.name}`, hidden {cfg.network.hidden} x "
        f"{cfg.network.layers} (recurrent: {cfg.network.recurrent}), readout `{cfg.readout.name}`, "
        f"loss `{cfg.loss.name}`, optimizer `{cfg.optimizer.name}`, schedule `{cfg.scheduler.name}`, "
        f"target `{cfg.target.name}`.",
        "",
    ]
    if summary.get("notices"):
        lines += [
            "## Notices",
            "",
            "These settings were changed before training, by the target or `trainer.smoke` "
            "(`config_resolved.yaml` holds the values that ran):",
            "",
        ]
        lines += [f"- {n}" for n in summary["notices"]] + [""]
    return lines
