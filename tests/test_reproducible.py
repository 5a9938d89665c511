"""trainer.reproducible: strict runs reproduce their golden records bit for bit, whatever the
thread count, the number of processes and the CPU dispatch the environment asks for; the mode is
recorded; a config in another mode than its process is one line.

What one machine can force: thread counts (1, 2), 1/2/3 gloo processes (test_distributed.py and
the 2-process record here), torch's and numpy's dispatch levels and numba's CPU name as the
environment sets them before the process starts (strict mode replaces them with its pins, so the
records must not move), and numba kernels compiled without fast-math for this host's own CPU name
instead of the generic one (equal gradients: without reassociation or contraction, vector width
does not change a result). What it cannot: another vendor's CPU; the records are the check there.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eventkit.base import reproducible
from eventkit.running.pipeline import run
from eventkit.running.config import ConfigError, compose

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import golden_records  # noqa: E402

pytestmark = pytest.mark.skipif(reproducible.mode() != "strict", reason="the records are strict mode's")
#: the golden records were written on an x86-64 CPU with AVX2 and FMA; elsewhere a strict run says so
#: (host_notice) and the records are not the check
OFF_HOST = reproducible.host_notice("strict")
on_records_host = pytest.mark.skipif(OFF_HOST is not None, reason=OFF_HOST or "")


def _assert_matches(run_dir: Path, name: str) -> None:
    want = golden_records.load(name)
    got = golden_records.record(run_dir, want["overrides"])
    assert got["metrics"] == want["metrics"]
    assert got["summary"] == want["summary"]
    assert got["last_checkpoint_sha256"] == want["last_checkpoint_sha256"]
    assert got["best_checkpoint_sha256"] == want["best_checkpoint_sha256"]


def _cli(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eventkit", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


#: every golden record; the per-neuron one runs with the slow tests (CI runs them after the fast
#: part), to keep the default run short
RECORD_NAMES = [
    pytest.param(name, marks=pytest.mark.slow) if name == "timing_delays_tau_per_neuron" else name
    for name in sorted(golden_records.RECORDS)
]


@on_records_host
@pytest.mark.parametrize("name", RECORD_NAMES)
def test_a_strict_run_reproduces_its_golden_record(name, tmp_path):
    run(compose(golden_records.RECORDS[name]), tmp_path / "run")
    _assert_matches(tmp_path / "run", name)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    pinned = manifest["reproducible"]
    assert pinned["mode"] == "strict" and pinned["numba_fastmath"] == []
    assert pinned["numba_target"] == {"cpu_name": "generic", "features": ""}
    assert pinned["numpy_dispatch"] == [] and pinned["torch_cpu_capability"].lower() == "default"


@on_records_host
def test_one_thread_reproduces_the_record(tmp_path):
    """The record was written with the machine's 2 cores (2 engine threads)."""
    run(compose([*golden_records.RECORDS["default"], "trainer.threads=1"]), tmp_path / "run")
    _assert_matches(tmp_path / "run", "default")


@on_records_host
def test_two_gloo_processes_reproduce_the_record(tmp_path):
    import torch.multiprocessing as mp

    import distributed_worker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = tmp_path / "report"
    report.mkdir()
    mp.start_processes(
        distributed_worker.main,
        args=(2, port, str(tmp_path), str(report), golden_records.RECORDS["default"], ["straight"]),
        nprocs=2,
        start_method="spawn",
        join=True,
    )
    _assert_matches(tmp_path / "straight", "default")


@on_records_host
def test_the_environment_cannot_unpin_a_strict_run(tmp_path):
    """A process started with torch's AVX-512 kernels, numpy's full dispatch, numba's host CPU,
    MKL's CPU-specific kernels and another OpenBLAS kernel set asked for in its environment:
    strict mode sets its own pins before the libraries start."""
    import llvmlite.binding as ll

    env = {
        **os.environ,
        "ATEN_CPU_CAPABILITY": "avx512",
        "NPY_DISABLE_CPU_FEATURES": "",
        "NUMBA_CPU_NAME": ll.get_host_cpu_name(),
        "MKL_CBWR": "AUTO",
        "OPENBLAS_CORETYPE": "Haswell",
    }
    env.pop("EVENTKIT_REPRODUCIBLE")
    args = [*golden_records.RECORDS["default"], "trainer.reproducible=strict", f"hydra.run.dir={tmp_path / 'run'}"]
    out = _cli(args, tmp_path, env)
    assert out.returncode == 0, out.stderr[-3000:]
    _assert_matches(tmp_path / "run", "default")


MKL_BRANCH = """
import sys
from eventkit.base import reproducible
reproducible.STRICT_ENV["MKL_CBWR"] = "AVX2"  # MKL's AVX2 kernels instead of the pinned COMPATIBLE ones
from eventkit.__main__ import console
sys.argv = ["eventkit", *sys.argv[1:]]
sys.exit(console())
"""


@on_records_host
@pytest.mark.parametrize("name", RECORD_NAMES)
def test_a_strict_run_does_not_depend_on_mkl(name, tmp_path):
    """MKL picks its code by the CPU's vendor and vector width, even for the vector math behind
    torch's ``exp`` and ``sqrt`` (with ``MKL_CBWR=COMPATIBLE`` on this machine's AVX-512 CPU,
    torch's float32 ``sqrt`` missed the correctly rounded result for 15 % of inputs): a strict run
    must not call it. A process whose MKL runs its AVX2 kernels reproduces the records. Catches
    Adam's per-tensor ``sqrt``, ``torch.exp`` in a readout or in the time constants'
    coefficients, or a readout's ``matmul`` on the strict path."""
    env = {**os.environ, "EVENTKIT_REPRODUCIBLE": "strict"}
    args = [*golden_records.RECORDS[name], f"hydra.run.dir={tmp_path / 'run'}"]
    out = subprocess.run(
        [sys.executable, "-c", MKL_BRANCH, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        json.loads((tmp_path / "run" / "manifest.json").read_text())["reproducible"]["environment"]["MKL_CBWR"]
        == "AVX2"
    )
    _assert_matches(tmp_path / "run", name)


def test_portable_exp_is_glibcs_and_differentiable():
    """eventkit.engine.portable.exp: glibc's exp (what strict mode's numpy and kernels compute),
    in the input's dtype, with torch.exp's gradient. Catches an exp through torch (MKL) or one
    rounded through float32."""
    import math

    import torch

    from eventkit.engine import portable

    x = torch.linspace(-30, 30, 20001, dtype=torch.float64, requires_grad=True)
    y = portable.exp(x)
    assert y.tolist() == [math.exp(v) for v in x.tolist()]
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())
    x32 = torch.linspace(-3, 3, 1001, dtype=torch.float32)
    y32 = portable.exp(x32)
    assert y32.dtype == torch.float32
    assert y32.tolist() == [float(np.float32(math.exp(v))) for v in x32.tolist()]
    assert portable.exp(-0.5).dtype == torch.float64


def test_a_strict_run_says_when_its_host_lies_outside_what_strict_mode_covers(monkeypatch):
    """Strict mode's bit-identity holds on x86-64 CPUs with AVX2 and FMA, where glibc's exp runs
    its FMA code; elsewhere a strict run says so in one line. Fails if the check is inverted, asks
    for either flag instead of both (glibc's FMA code needs both), takes another architecture for
    x86-64, or speaks in fast mode."""
    monkeypatch.setattr(reproducible.platform, "machine", lambda: "x86_64")
    for flags, covered in (
        ({"sse2", "avx", "fma", "avx2"}, True),
        ({"sse2", "avx", "avx2"}, False),
        ({"sse2", "avx", "fma"}, False),
        ({"sse2"}, False),
    ):
        monkeypatch.setattr(reproducible, "_cpu_flags", lambda flags=flags: flags)
        assert reproducible.host() == {"machine": "x86_64", "fma_avx2": covered}
        notice = reproducible.host_notice("strict")
        assert (notice is None) == covered, (flags, notice)
        if not covered:
            assert "without AVX2 and FMA" in notice and "docs/reproducibility.md" in notice
        assert reproducible.host_notice("fast") is None
    monkeypatch.setattr(reproducible, "_cpu_flags", lambda: None)
    assert "could not read" in reproducible.host_notice("strict")
    monkeypatch.setattr(reproducible.platform, "machine", lambda: "aarch64")
    assert reproducible.host() == {"machine": "aarch64", "fma_avx2": None}
    assert "strict mode on aarch64" in reproducible.host_notice("strict")


def test_cpu_flags_come_from_the_flags_line(tmp_path):
    """/proc/cpuinfo's `flags` line, not `vmx flags` (Intel) or `bugs`. Fails if the parser reads
    another line or the whole file (a word such as `fma` in a model name would count)."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some fma avx2 CPU\nflags\t\t: fpu sse2 avx\n"
        "vmx flags\t: ept fma avx2\nbugs\t\t: spectre_v1\n"
    )
    assert reproducible._cpu_flags(cpuinfo) == {"fpu", "sse2", "avx"}
    assert reproducible._cpu_flags(tmp_path / "missing") is None
    if reproducible.platform.machine().lower() in reproducible.X86_64 and Path("/proc/cpuinfo").exists():
        assert "sse2" in reproducible._cpu_flags()  # every x86-64 CPU has SSE2


def test_a_strict_run_off_the_covered_hosts_says_so_in_its_summary_and_manifest(monkeypatch, tmp_path):
    """The notice reaches the run's output and summary, and the manifest records the host. Fails
    if the pipeline drops the notice or the manifest does not record what it was."""
    monkeypatch.setattr(reproducible, "host", lambda: {"machine": "x86_64", "fma_avx2": False})
    run(compose([*golden_records.RECORDS["default"], "trainer.smoke=true"]), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert any("without AVX2 and FMA" in n for n in summary["notices"]), summary.get("notices")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["reproducible"]["host"] == {"machine": "x86_64", "fma_avx2": False}
    assert "without AVX2 and FMA" in (tmp_path / "run" / "report.md").read_text()


def test_fast_mode_runs_in_a_process_of_its_own_and_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in reproducible.STRICT_ENV and k != reproducible.ENV}
    args = [*golden_records.RECORDS["default"][:-2], "trainer.epochs=1", "trainer.progress=false"]
    out = _cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, env)  # fast: the default
    assert out.returncode == 0, out.stderr[-3000:]
    pinned = json.loads((tmp_path / "run" / "manifest.json").read_text())["reproducible"]
    assert pinned["mode"] == "fast" and pinned["numba_fastmath"] == sorted(reproducible.FASTMATH)
    assert pinned["numba_target"]["cpu_name"] != "generic"
    assert "  reproducible: fast\n" in (tmp_path / "run" / "config_resolved.yaml").read_text()


@pytest.mark.parametrize(
    "override, needle",
    [
        ("trainer.reproducible=fast", "trainer.reproducible=fast: this process was started in strict mode"),
        ("trainer.reproducible=exact", "trainer.reproducible: 'exact' is not a reproducibility mode"),
    ],
)
def test_a_mode_the_process_does_not_run_is_one_line(override, needle, tmp_path):
    with pytest.raises(ConfigError) as err:
        run(compose([*golden_records.RECORDS["default"], override]), tmp_path / "run")
    message = str(err.value)
    assert "\n" not in message and needle in message and "Fix: " in message
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


NUMBA_GRADIENTS = """
import json, sys
import numpy as np, torch
from eventkit.engine import EventpropNet
from eventkit.plugin.testing import random_data
net = EventpropNet(10, 3, hidden=[24, 16], recurrent=True, n_steps=80,
                   init=dict(ff_mean=0.5, ff_std=0.15, rec_std=0.1, out_std=0.3),
                   delays={"ff": {"max": 6.0, "init": [0.0, 6.0]}},
                   generator=torch.Generator().manual_seed(0))
data = random_data(np.random.default_rng(0), 8, 10, 80, rate=(40, 80))
out = net(data)
torch.nn.functional.cross_entropy(out.readout, torch.as_tensor(data.labels)).backward()
print(json.dumps({k: p.grad.numpy().tobytes().hex() for k, p in net.named_parameters()}))
"""


@pytest.mark.slow  # compiles or installs afresh in a subprocess (tens of seconds)
def test_kernels_without_fast_math_compute_the_same_for_any_cpu_name(tmp_path):
    """numba compiled for this host's CPU (its widest vectors) and for the generic x86-64, both
    without fast-math: the same gradients, bit for bit. (With fast-math the reductions are
    reassociated per vector width: that is fast mode's freedom.)"""
    import llvmlite.binding as ll

    grads = {}
    for cpu in ("generic", ll.get_host_cpu_name()):
        env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CACHE_DIR": str(tmp_path / cpu)}
        out = subprocess.run(
            [sys.executable, "-c", NUMBA_GRADIENTS], env=env, capture_output=True, text=True, timeout=900
        )
        assert out.returncode == 0, out.stderr[-3000:]
        grads[cpu] = json.loads(out.stdout.strip().splitlines()[-1])
    generic, host = grads.values()
    assert generic == host


def test_strict_numpy_computes_exp_as_glibc_does():
    """numpy's CPU-dispatched exp (AVX2/AVX-512 variants) rounds differently from glibc's (on
    this machine's AVX-512 code: 9263 of these 200001 float64 results and 78537 float32 ones
    differ in the last bit); strict mode keeps numpy on its baseline code, whose exp is glibc's,
    as the kernels' is."""
    import ctypes
    import math

    x = np.linspace(-30, 30, 200001)
    assert np.array_equal(np.exp(x), np.array([math.exp(v) for v in x]))
    libm = ctypes.CDLL("libm.so.6")
    libm.expf.restype, libm.expf.argtypes = ctypes.c_float, [ctypes.c_float]
    x32 = x.astype(np.float32)
    assert np.array_equal(np.exp(x32), np.array([libm.expf(float(v)) for v in x32], dtype=np.float32))
