"""Latency and energy per sample on Loihi 2: a model of the chip's time per step and power, its
coefficients with their sources, and the published measurements it is checked against
(docs/loihi2.md section 7 prints :func:`fit_table` and :func:`coefficient_table`).

Model, per sample of ``steps`` chip steps (T input steps + one per synapse layer):

    time per step   t = sync + synop_time * S / cores + input_time * I
    latency         steps * t
    energy          static_power * latency  +  synop_energy * S_total

``S``: synaptic operations per step (input and hidden spikes x their non-zero outgoing synapses,
counted from the emulated spikes), spread over ``cores`` neuron cores that work in parallel; ``I``:
input spikes per step; ``S_total``: synaptic operations per sample. ``sync`` is the per-step
barrier and neuron-update floor. Static power is drawn for the whole latency; dynamic energy is
paid per synaptic operation.

Each coefficient has a central value and the range that the public figures leave. A user with a
Loihi 2 overrides any of them with a measured number (``target.energy.<name>``); a measured
``hardware.json`` (``python -m eventkit_loihi2.run``) replaces the model altogether.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHOESMITH = "Shoesmith et al., arXiv:2503.04341 (2025)"
MESZAROS = "Meszaros et al., arXiv:2510.13757 (2025)"
DEVENTPROP_LOGS = "the authors' public Jetson logs (github.com/mbalazs98/deventprop)"
PILOTNET_NB = "Lava-DL PilotNet LIF benchmark (lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb)"


# Lava-DL's PilotNet LIF benchmark on Loihi 2 (the notebook's printed results; a Kapoho Point board,
# its static power divided over the board's 8 chips): 342.29 frames/s at 16 steps per frame on 74
# cores; per chip 0.826347 W total = 0.352063 W static + 0.474284 W dynamic; 2.414157 mJ per frame,
# of which 1.385611 mJ dynamic.
PILOTNET = dict(
    fps=342.29,
    steps=16,
    cores=74,
    total_w=0.826347,
    static_w=0.352063,
    dynamic_w=0.474284,
    energy_mj=2.414157,
    dynamic_mj=1.385611,
)
CORE_DYNAMIC_W = PILOTNET["dynamic_w"] / PILOTNET["cores"]  # W per busy core


@dataclass(frozen=True)
class Coefficient:
    value: float
    low: float
    high: float
    unit: str
    source: str


COEFFICIENTS: dict[str, Coefficient] = dict(
    sync_us=Coefficient(
        1.0,
        0.5,
        2.0,
        "us per step",
        "not published; its order is set by the delayed SHD network of "
        + MESZAROS
        + ", whose whole step takes at least 0.75 us on Loihi 2 (row 2 of the fit table); range a "
        "factor 2 either way",
    ),
    synop_ns=Coefficient(
        1.1,
        0.35,
        3.5,
        "ns per synaptic op on one core",
        "high: Loihi 1's synaptic op time, 3.5 ns (Davies et al., IEEE Micro 2018, Table 2); low: that / 10 "
        "(Intel's Loihi 2 brief: 'up to 10x faster' than Loihi 1); value: their geometric mean. No Loihi 2 "
        "figure is published",
    ),
    input_us_per_spike=Coefficient(
        0.0,
        0.0,
        0.0,
        "us per input spike",
        "host-to-chip spike injection (lava-loihi's embedded I/O): no public figure, so not modelled; "
        "a hardware run measures it inside its time per step (hardware.json)",
    ),
    static_w=Coefficient(
        PILOTNET["static_w"],
        PILOTNET["static_w"] / 2,
        PILOTNET["static_w"] * 2,
        "W",
        "measured: the static power per chip of PilotNet LIF on Loihi 2 (a Kapoho Point board's static "
        "power over its 8 chips; " + PILOTNET_NB + "); range a factor 2 either way (one board, one run)",
    ),
    synop_pj=Coefficient(
        CORE_DYNAMIC_W * 1.1e3,
        CORE_DYNAMIC_W * 0.35e3,
        CORE_DYNAMIC_W * 3.5e3,
        "pJ per synaptic op",
        "dynamic power of a busy core x synop_ns: PilotNet LIF's measured dynamic power, 0.474 W over its "
        "74 cores, is 6.41 mW per core (" + PILOTNET_NB + "), so value and range follow synop_ns (and are "
        "recomputed from a synop_ns override); Loihi 1 gives 6.7 mW (23.6 pJ per 3.5 ns op, Davies et al. "
        "2018). Intel's 15 TOPS/W for Hala Point (0.067 pJ per op) is far below what PilotNet draws",
    ),
)
OLD_KEYS = ("pj_per_synop_high", "tops_per_watt_low", "step_time_us")


def coefficients(overrides: dict | None = None) -> dict[str, Coefficient]:
    """The model's coefficients with ``target.energy`` overrides (a number fixes value and range)."""
    out = dict(COEFFICIENTS)
    for key, val in (overrides or {}).items():
        if key not in COEFFICIENTS:
            old = f" ({key} belongs to the earlier synaptic-op range)" if key in OLD_KEYS else ""
            raise ValueError(f"target.energy.{key}: unknown coefficient{old}; known: {sorted(COEFFICIENTS)}")
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) or val < 0:
            raise ValueError(f"target.energy.{key} must be a number >= 0 ({COEFFICIENTS[key].unit}), got {val!r}")
        c = COEFFICIENTS[key]
        out[key] = Coefficient(float(val), float(val), float(val), c.unit, f"set by target.energy.{key}")
    if "synop_ns" in (overrides or {}) and "synop_pj" not in (overrides or {}):
        v = CORE_DYNAMIC_W * out["synop_ns"].value * 1e3
        out["synop_pj"] = Coefficient(v, v, v, COEFFICIENTS["synop_pj"].unit, "CORE_DYNAMIC_W x target.energy.synop_ns")
    return out


@dataclass(frozen=True)
class Activity:
    """A deployment's size and activity, per sample."""

    steps: int  # chip steps per sample
    cores: int  # neuron cores used
    synops: float  # synaptic operations per sample
    input_spikes: float  # input spikes per sample


def _time_terms(a: Activity, c: dict[str, float]) -> dict[str, float]:
    """Time per step (us) by term."""
    steps = max(a.steps, 1)
    return dict(
        sync=c["sync_us"],
        synaptic_ops=c["synop_ns"] * 1e-3 * a.synops / steps / max(a.cores, 1),
        input=c["input_us_per_spike"] * a.input_spikes / steps,
    )


def _evaluate(a: Activity, c: dict[str, float]) -> dict:
    terms = _time_terms(a, c)
    t_step = sum(terms.values())
    latency_s = a.steps * t_step * 1e-6
    return dict(
        time_per_step_us=t_step,
        time_terms_us=terms,
        latency_ms=latency_s * 1e3,
        static_mj=c["static_w"] * latency_s * 1e3,
        dynamic_mj=c["synop_pj"] * 1e-12 * a.synops * 1e3,
    )


def estimate(a: Activity, overrides: dict | None = None) -> dict:
    """Latency and energy per sample: central values, the range of the coefficients' ranges
    (every time and energy coefficient at its low, then at its high end), the dominant terms."""
    coef = coefficients(overrides)
    mid = _evaluate(a, {k: v.value for k, v in coef.items()})
    low = _evaluate(a, {k: v.low for k, v in coef.items()})
    high = _evaluate(a, {k: v.high for k, v in coef.items()})
    energy_terms = dict(static=mid["static_mj"], dynamic=mid["dynamic_mj"])
    return dict(
        source="modelled (eventkit_loihi2.chip_cost; coefficients and sources in docs/loihi2.md section 7)",
        time_per_step_us=mid["time_per_step_us"],
        time_per_step_us_range=(low["time_per_step_us"], high["time_per_step_us"]),
        time_terms_us=mid["time_terms_us"],
        latency_ms=mid["latency_ms"],
        latency_ms_range=(low["latency_ms"], high["latency_ms"]),
        energy_mj=dict(static=mid["static_mj"], dynamic=mid["dynamic_mj"], total=mid["static_mj"] + mid["dynamic_mj"]),
        energy_mj_range=dict(
            static=(low["static_mj"], high["static_mj"]),
            dynamic=(low["dynamic_mj"], high["dynamic_mj"]),
            total=(low["static_mj"] + low["dynamic_mj"], high["static_mj"] + high["dynamic_mj"]),
        ),
        dominant_energy=max(energy_terms, key=energy_terms.get),
        dominant_time=max(mid["time_terms_us"], key=mid["time_terms_us"].get),
        coefficients={k: dict(value=v.value, low=v.low, high=v.high, unit=v.unit) for k, v in coef.items()},
        activity=dict(steps=a.steps, cores=a.cores, synops=a.synops, input_spikes=a.input_spikes),
    )


def from_hardware(record: dict, steps: int) -> dict:
    """Latency and energy per sample from a measured ``hardware.json`` (its time per step and
    static / dynamic power) for a sample of ``steps`` chip steps."""
    latency_s = steps * float(record["time_per_step_us"]) * 1e-6
    static = float(record["static_power_w"]) * latency_s * 1e3
    dynamic = float(record["dynamic_power_w"]) * latency_s * 1e3
    where = ", ".join(str(x) for x in (record.get("host"), record.get("partition"), record.get("date")) if x)
    return dict(
        source=f"measured on a Loihi 2 chip (hardware.json: {where})",
        time_per_step_us=float(record["time_per_step_us"]),
        latency_ms=latency_s * 1e3,
        energy_mj=dict(static=static, dynamic=dynamic, total=static + dynamic),
        dominant_energy="static" if static >= dynamic else "dynamic",
    )


# ----------------------------------------------------------------------------- published figures
# The network of Meszaros et al. 2025 that the authors' public Jetson logs hold: SHD, 700 -> 512 ->
# 512 -> 20 feed-forward with learned delays of at most 62 steps, dt 1 ms. Jetson Orin Nano
# (per sample, 2264 SHD test samples): GPU kernel time and the mean board power (VDD_CPU_GPU_CV +
# VDD_SOC) over the run, from the logs' test_kernel_profile_*.json and jetson_power_*.csv.
JETSON_DELAYED_SHD = dict(
    network=dict(n_in=700, hidden=[512, 512], n_out=20, recurrent=False, delays=True),
    batch_1=dict(ms=62.367 / 2264 * 1e3, mj=62.367 * 3.36 / 2264 * 1e3),
    batch_128=dict(ms=30.836 / 2264 * 1e3, mj=30.836 * 5.59 / 2264 * 1e3),
    source=f"Jetson Orin Nano, derived from {DEVENTPROP_LOGS} for {MESZAROS}; published, not measured here",
)
RATIO_TIME, RATIO_ENERGY = 18.0, 250.0  # "up to 18x faster, 250x less energy" (Meszaros et al. 2025)


def _delayed_shd_activity() -> Activity:
    """The delayed SHD network's size and activity as the model takes it: cores from eventkit's
    core estimate; activity ASSUMED (not published per network in accessible text): 8000 input
    spikes per 1000-step sample, 14 spikes per hidden neuron (the papers' spike-count target)."""
    from .target import estimate_cores

    cores = estimate_cores([512, 512, 20], [700, 512, 512], 8, [63, 63, 0])["total"]
    hidden_spikes = 14 * 512
    synops = 8000 * 512 + hidden_spikes * 512 + hidden_spikes * 20
    return Activity(steps=1000 + 3, cores=cores, synops=float(synops), input_spikes=8000.0)


def _pilotnet_activity(coef: dict[str, float]) -> Activity:
    """PilotNet LIF: 74 cores and 16 steps per frame (the benchmark notebook's compile table and
    reset interval). Its synaptic activity is not published as numbers (the notebook plots it):
    it is the activity at which the model's time per step equals the measured one."""
    t_meas = 1e6 / PILOTNET["fps"] / PILOTNET["steps"]
    per_core_per_step = (t_meas - coef["sync_us"]) / (coef["synop_ns"] * 1e-3)
    return Activity(
        steps=PILOTNET["steps"],
        cores=PILOTNET["cores"],
        synops=per_core_per_step * PILOTNET["cores"] * PILOTNET["steps"],
        input_spikes=0.0,
    )


def fit_rows() -> list[dict]:
    """Each published Loihi 2 measurement against the model's prediction (central coefficients)."""
    central = {k: v.value for k, v in COEFFICIENTS.items()}
    rows = []
    a = _pilotnet_activity(central)
    m = _evaluate(a, central)
    rows.append(
        dict(
            workload=f"PilotNet LIF (Lava-DL), {PILOTNET['cores']} cores, {PILOTNET['steps']} steps/frame",
            source=PILOTNET_NB,
            kind="measured; calibrates static_w, the synop_pj / synop_ns ratio and its own activity",
            time_ms=PILOTNET["steps"] / PILOTNET["fps"] / PILOTNET["steps"] * 1e3,
            model_time_ms=m["latency_ms"],
            energy_mj=PILOTNET["energy_mj"],
            model_energy_mj=m["static_mj"] + m["dynamic_mj"],
            dynamic_mj=PILOTNET["dynamic_mj"],
            model_dynamic_mj=m["dynamic_mj"],
        )
    )
    a = _delayed_shd_activity()
    m = _evaluate(a, central)
    j = JETSON_DELAYED_SHD
    rows.append(
        dict(
            workload=f"SHD 700-512-512-20 feed-forward, delays <= 62 ({MESZAROS}), {a.cores} cores (estimated)",
            source=f"lower bound: fastest / most frugal Jetson figure of {DEVENTPROP_LOGS} divided by the "
            f"paper's 'up to {RATIO_TIME:g}x faster, {RATIO_ENERGY:g}x less energy'",
            kind="derived lower bound",
            time_ms=min(j["batch_1"]["ms"], j["batch_128"]["ms"]) / RATIO_TIME,
            model_time_ms=m["latency_ms"],
            energy_mj=min(j["batch_1"]["mj"], j["batch_128"]["mj"]) / RATIO_ENERGY,
            model_energy_mj=m["static_mj"] + m["dynamic_mj"],
            dynamic_mj=None,
            model_dynamic_mj=m["dynamic_mj"],
        )
    )
    return rows


def fit_table() -> str:
    """The fit table of docs/loihi2.md (markdown), computed."""
    lines = [
        "| workload | kind | time / sample: published | model | energy / sample: published | model "
        "| ratio model / published (time, energy) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in fit_rows():
        lines.append(
            f"| {r['workload']} | {r['kind']} | {r['time_ms']:.3g} ms | {r['model_time_ms']:.3g} ms | "
            f"{r['energy_mj']:.3g} mJ | {r['model_energy_mj']:.3g} mJ | "
            f"{r['model_time_ms'] / r['time_ms']:.2f}, {r['model_energy_mj'] / r['energy_mj']:.2f} |"
        )
    return "\n".join(lines)


def coefficient_table() -> str:
    """The coefficient table of docs/loihi2.md (markdown), computed."""
    lines = ["| `target.energy.` | value | range | unit | source |", "|---|---|---|---|---|"]
    for k, c in COEFFICIENTS.items():
        lines.append(f"| `{k}` | {c.value:.3g} | {c.low:.3g} .. {c.high:.3g} | {c.unit} | {c.source} |")
    return "\n".join(lines)


def matching_jetson(export_like: dict) -> dict | None:
    """The published Jetson Orin Nano figure for a network of the same topology, if one exists."""
    net = JETSON_DELAYED_SHD["network"]
    same = (
        export_like.get("n_in") == net["n_in"]
        and list(export_like.get("hidden", [])) == net["hidden"]
        and export_like.get("n_out") == net["n_out"]
        and bool(export_like.get("recurrent")) == net["recurrent"]
        and bool(export_like.get("delays")) == net["delays"]
    )
    return JETSON_DELAYED_SHD if same else None
