"""The benchmark commands run and write their tables as JSON, and refuse bad arguments."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_command_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventkit.bench",
            "--quick",
            "--repeats",
            "1",
            "--no-snntorch",
            "--learn-tau",
            "--described",
        ]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "epoch s" in proc.stdout
    result = json.loads(out.read_text())["results"][0]
    assert result["hidden"] == 256 and result["n_steps"] == 1000
    ek = result["eventkit"]
    assert 10 < ek["rate_hz"] < 18  # calibrated to about 14 spikes per neuron per second
    assert ek["train_step"] >= ek["forward"] > 0 and result["eventkit_epoch_s"] > 0
    # learnable time constants, per layer and per neuron, timed on the same workload: starting at
    # the fixed values, the network fires as the fixed one does
    for key in ("learn_tau", "learn_tau_per_neuron"):
        tau = result[f"eventkit_{key}"]
        assert (
            abs(tau["hidden_spikes_per_sample"] - ek["hidden_spikes_per_sample"])
            <= 0.01 * ek["hidden_spikes_per_sample"]
        )
        assert result[f"{key}_cost"] == tau["train_step"] / ek["train_step"] > 0
    assert "per-nrn s" in proc.stdout
    # the same LIF network on the description-driven kernels: the same spikes (to float32 rounding,
    # which may move a spike across the threshold), its own cost
    gen = result["eventkit_described"]
    assert (
        abs(gen["hidden_spikes_per_sample"] - ek["hidden_spikes_per_sample"]) <= 1e-3 * ek["hidden_spikes_per_sample"]
    )
    assert result["described_cost"] == gen["train_step"] / ek["train_step"] > 0
    assert "descr. s" in proc.stdout


def test_bench_rejects_bad_arguments():
    proc = subprocess.run([sys.executable, "-m", "eventkit.bench", "--repeats", "0"], capture_output=True, text=True)
    assert proc.returncode != 0 and "--repeats" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "eventkit.bench.default_run", "--seeds", "0,x"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--seeds: expected comma-separated integers" in proc.stderr


@pytest.mark.slow
def test_delay_bench_writes_json_with_and_without_delays(tmp_path):
    out = tmp_path / "bench_delays.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventkit.bench",
            "--delays",
            "--no-dcls",
            "--steps",
            "200",
            "--batch",
            "4",
            "--hidden",
            "64",
            "--repeats",
            "1",
            "--max-delays",
            "16",
            "--mode",
            "round,exact",
            "--cpu-rounds",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    assert "delay cost" in proc.stdout
    row, exact = json.loads(out.read_text())["results"]
    # both modes in one sitting, and their ratio from the two rows' own steps
    assert exact["mode"] == "exact" and exact["max_delay"] == 16 and "exact_vs_round" not in row
    assert exact["exact_vs_round"] == pytest.approx(exact["eventkit"]["train_step"] / row["eventkit"]["train_step"])
    fastest = exact["eventkit"]["train_step_min"] / row["eventkit"]["train_step_min"]
    assert exact["exact_vs_round_min"] == pytest.approx(fastest)
    assert exact["eventkit"]["train_step_min"] <= exact["eventkit"]["train_step"]
    assert (
        f"exact / round at max delay 16 (this run): {exact['exact_vs_round']:.2f}x on the medians, "
        f"{fastest:.2f}x on the fastest steps" in proc.stdout
    )
    assert row["max_delay"] == 16 and row["mode"] == "round" and row["eventkit"]["train_step"] > 0
    assert row["eventkit_no_delays"]["train_step"] > 0 and row["delay_cost"] > 0
    assert 10 < row["eventkit"]["rate_hz"] < 18
    event = json.loads(out.read_text())["meta"]["synapse_event"]  # the per-event floor, sized like the run
    assert event["n_post"] == 64 and event["undelayed_ns"] > 0 and event["delayed_ns"] > 0
    # the per-event table: input and hidden spikes, forward and backward, every scheme timed
    rows = {(e["pass_"], e["spike"]) for e in event["table"]}
    assert rows == {(p, s) for p in ("forward", "backward") for s in ("input", "hidden")}
    assert all(e[k] > 0 for e in event["table"] for k in ("undelayed_ns", "round_ns", "exact_ns"))
    assert "per synapse event" in proc.stdout
    # CPU time of the three networks interleaved in one process, by maximum delay
    (cpu,) = json.loads(out.read_text())["meta"]["cpu_time"]
    assert cpu["max_delay"] == 16 and cpu["rounds"] == 2
    assert set(cpu["step_s"]) == {"none", "round", "exact"} and all(t > 0 for t in cpu["step_s"].values())
    t = cpu["step_s"]
    # without input spikes no synapse event happens: each network's step costs less
    assert set(cpu["silent_s"]) == set(t) and all(0 < cpu["silent_s"][m] < t[m] for m in t)
    assert f"{t['round'] / t['none']:>12.2f}x" in proc.stdout and "CPU time per train step" in proc.stdout


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--max-delays", "0"), ("--mode", "round,fast"), ("--mode", "exact,exact"), ("--cpu-rounds", "-1")],
)
def test_delay_bench_rejects_bad_arguments(flag, value):
    proc = subprocess.run(
        [sys.executable, "-m", "eventkit.bench", "--delays", flag, value], capture_output=True, text=True
    )
    assert proc.returncode != 0 and flag in proc.stderr


@pytest.mark.parametrize("delays", [[], ["--delays"]], ids=["engine", "delays"])
def test_bench_on_cuda_without_a_gpu_fails_in_one_line(delays):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = subprocess.run(
        [sys.executable, "-m", "eventkit.bench", *delays, "--device", "cuda"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device cuda" in lines[0] and "--device cpu" in lines[0], proc.stderr
    assert "running" not in proc.stdout  # failed before any measurement


def test_every_timed_step_starts_from_the_same_parameters():
    """The benchmark times train steps of a calibrated network; an event-driven step's cost follows
    its spikes, which the optimizer's updates would move while the steps are timed. Fails if
    measure lets the updates accumulate (each step would see the weight one lr further) or does
    not run the optimizer step it times."""
    import torch

    from eventkit.bench.common import measure

    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    seen = []

    def loss_fn():
        seen.append(w.detach().clone())
        return (w * torch.tensor([3.0, 5.0])).sum()

    opt = torch.optim.SGD([w], lr=0.5)
    stepped = []
    opt.register_step_post_hook(lambda *_: stepped.append(w.detach().clone()))
    times, _ = measure(loss_fn, opt, [w], repeats=3)
    assert len(seen) == 4 and all(torch.equal(s, torch.tensor([1.0, -2.0])) for s in seen)
    assert len(stepped) == 4 and all(torch.equal(s, torch.tensor([-0.5, -4.5])) for s in stepped)
    assert torch.equal(w.detach(), torch.tensor([1.0, -2.0]))
    assert times["train_step"] >= times["forward"] > 0
