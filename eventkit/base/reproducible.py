"""``trainer.reproducible``: how a process computes, chosen once, before its libraries start.

``strict``: a config and seed give bit-identical metrics, checkpoints and summary
on any x86-64 Linux machine with AVX2 and FMA that runs the same versions of eventkit, Python, numpy,
torch, numba and glibc -- whatever its CPU vendor or vector width (AVX2 to AVX-512), thread count
or number of data-parallel processes (glibc's ``exp`` has an FMA variant and others that round
126 of 200001 float64 results differently). It pins every place where a library picks code by
the host CPU:

- the engine's numba kernels compile without fast-math flags (no reassociation, contraction
  into FMA, approximate functions or reciprocals) for numba's ``generic`` x86-64 target
  (``NUMBA_CPU_NAME=generic``: SSE2, the same machine code on every x86-64 CPU); their ``exp``
  calls glibc's ``exp``;
- torch's CPU kernels run their ``default`` (non-vectorised) variants
  (``ATEN_CPU_CAPABILITY=default``), torch uses its deterministic algorithms and one intra-op
  thread (a reduction split over threads adds in another order; torch's share of the work is the
  loss and the optimizer step);
- numpy runs its baseline code (x86-64-v2) and none of its CPU-dispatched variants
  (``NPY_DISABLE_CPU_FEATURES``: e.g. its AVX-512 ``exp`` differs from glibc's in the last bit),
  for the data path (generated datasets, preprocessing, augmentation) and the engine's inputs;
- the BLAS libraries run one code path on every CPU: torch's MKL in its conditional numerical
  reproducibility mode (``MKL_CBWR=COMPATIBLE``; MKL otherwise picks its kernels by CPU vendor
  and vector width: a readout's ``matmul`` gave other float32 sums on an AVX2 AMD EPYC than on an
  AVX-512 Intel machine), numpy's OpenBLAS one fixed kernel set (``OPENBLAS_CORETYPE``);
- what a run computes in torch calls no MKL function (its vector math behind ``exp`` and ``sqrt``
  follows the CPU even under ``MKL_CBWR``): Adam runs fused, readouts and coefficients take
  ``eventkit.engine.portable.exp``, readouts use no ``matmul``;
- data-parallel gradients are added in one order of sample groups whatever the number of
  processes (:mod:`eventkit.training.parallel`; that holds in both modes).

``fast`` (the default: strict mode costs 1.6-1.75x CPU time per train step on the undelayed
benchmarks on an AVX-512 Intel Xeon, 1.1-1.3x on a Rocket Lake VM, more than the 1.2x
this project accepts for a default): the kernels compile for the host CPU with fast-math flags
and the libraries dispatch freely. Runs repeat themselves on the same machine and thread count; another CPU may round
differently and, spiking networks being what they are, end at a different accuracy.

Numba fixes its compile flags and CPU name per process when a kernel first compiles, and numpy
reads its dispatch setting when it is imported, so the mode is a property of the process: the
entry points (``python -m eventkit``, ``python -m eventkit.bench``, the test suite's conftest)
call :func:`prepare_process` before anything else is imported, taking the mode from a typed
``trainer.reproducible=...`` override, else from ``$EVENTKIT_REPRODUCIBLE``, else ``fast``;
the environment they set is inherited by every process they start (torchrun, submitit, spawned
workers). The config's ``trainer.reproducible`` defaults to the process's mode
(``${oc.env:EVENTKIT_REPRODUCIBLE,fast}``); a config that asks for the other mode is refused in
one line (:func:`check`). The two modes keep separate numba caches (the CPU name is part of numba's
cache key). This module imports nothing heavy.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Sequence

MODES = ("strict", "fast")
DEFAULT = "fast"  # strict costs 1.1-1.75x CPU time per train step (python -m eventkit.bench.modes)
ENV = "EVENTKIT_REPRODUCIBLE"
KEY = "trainer.reproducible"
#: fast mode's numba fast-math flags
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
#: numpy's CPU-dispatched targets above its x86-64-v2 baseline (numpy 2.x group names, and the
#: feature names of earlier releases; names a numpy does not know are ignored)
NUMPY_DISPATCH = (
    "X86_V3,X86_V4,AVX,F16C,FMA3,AVX2,AVX512F,AVX512CD,AVX512_KNL,AVX512_KNM,AVX512_SKX,"
    "AVX512_CLX,AVX512_CNL,AVX512_ICL,AVX512_SPR"
)
#: what strict mode sets in the environment before the libraries start
STRICT_ENV = {
    "NUMBA_CPU_NAME": "generic",
    "NUMBA_CPU_FEATURES": "",
    "ATEN_CPU_CAPABILITY": "default",
    "NPY_DISABLE_CPU_FEATURES": NUMPY_DISPATCH,
    "MKL_CBWR": "COMPATIBLE",
    "OPENBLAS_CORETYPE": "Prescott",
}


def _valid(mode: str, where: str) -> str:
    if mode not in MODES:
        raise ValueError(
            f"{where}: {mode!r} is not a reproducibility mode. Fix: {KEY}=strict (bit-identical on any x86-64 "
            f"machine) or {KEY}=fast"
        )
    return mode


def mode() -> str:
    """This process's mode: ``$EVENTKIT_REPRODUCIBLE``, else fast."""
    return _valid(os.environ.get(ENV) or DEFAULT, f"${ENV}")


def requested(argv: Sequence[str]) -> str | None:
    """The mode a command line types (its last ``trainer.reproducible=...``), or None."""
    found = None
    for arg in argv:
        key, sep, value = str(arg).lstrip("+~").partition("=")
        if sep and key == KEY:
            found = value
    return found


def prepare_process(argv: Sequence[str] = ()) -> str:
    """Fix this process's mode (the typed override in ``argv``, else ``$EVENTKIT_REPRODUCIBLE``,
    else fast) and, in strict mode, set the environment that pins the libraries' CPU
    dispatch. Call it before numpy, torch or numba are imported; returns the mode."""
    chosen = requested(argv)
    chosen = _valid(chosen, KEY) if chosen is not None else mode()
    os.environ[ENV] = chosen
    if chosen == "strict":
        os.environ.update(STRICT_ENV)
    return chosen


def kernel_fastmath() -> set[str]:
    """The numba ``fastmath`` flags of the engine's CPU kernels in this process's mode."""
    return set(FASTMATH) if mode() == "fast" else set()


def apply_torch() -> None:
    """Strict mode's torch settings for this process (call where training starts)."""
    if mode() != "strict":
        return
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)  # CPU ops are; a CUDA op without one warns
    torch.set_num_threads(1)


def _numpy_dispatch() -> list[str]:
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


def _numba_target() -> dict:
    from numba.core.registry import cpu_target

    codegen = cpu_target.target_context.codegen()
    return {"cpu_name": codegen._get_host_cpu_name(), "features": codegen._tm_features}


def problems() -> list[str]:
    """Where this process does not compute as strict mode requires (empty in fast mode): a
    library that started before :func:`prepare_process` set its environment."""
    if mode() != "strict":
        return []
    found = []
    dispatched = _numpy_dispatch()
    if dispatched:
        found.append(f"numpy dispatches to {', '.join(dispatched)} (it was imported before NPY_DISABLE_CPU_FEATURES)")
    target = _numba_target()
    if target["cpu_name"] != "generic" or target["features"]:
        found.append(f"numba compiles for {target['cpu_name']} (it compiled before NUMBA_CPU_NAME=generic)")
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if capability.lower() != "default":
        found.append(f"torch dispatches to {capability} (its first operation ran before ATEN_CPU_CAPABILITY)")
    return found


def check(requested_mode: str) -> None:
    """ValueError (one line, with the fix) unless this process computes in ``requested_mode``."""
    _valid(requested_mode, KEY)
    active = mode()
    how = "python -m eventkit" if requested_mode == "strict" else f"{ENV}=fast python ..."
    if requested_mode != active:
        raise ValueError(
            f"{KEY}={requested_mode}: this process was started in {active} mode (its kernels and libraries "
            f"are set up once, before they start). Fix: start a new process in {requested_mode} mode "
            f"({how} {KEY}={requested_mode}, or {ENV}={requested_mode} in the environment)"
        )
    found = problems()
    if found:
        raise ValueError(
            f"{KEY}=strict: {found[0]}. Fix: start the process through python -m eventkit, or call "
            f"eventkit.base.reproducible.prepare_process() before importing numpy, torch or numba"
        )


X86_64 = ("x86_64", "amd64")


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags as Linux reports them (the ``flags`` line of ``/proc/cpuinfo``),
    None where unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return set(value.split())
    return None


def host() -> dict:
    """What strict mode cannot pin: the architecture and, on x86-64, whether the CPU has FMA and
    AVX2 (glibc's ``exp`` runs its FMA code on such CPUs and other code elsewhere; None where the
    flags cannot be read)."""
    machine = platform.machine().lower()
    if machine not in X86_64:
        return {"machine": machine, "fma_avx2": None}
    flags = _cpu_flags()
    return {"machine": machine, "fma_avx2": None if flags is None else {"fma", "avx2"} <= flags}


def host_notice(requested_mode: str | None = None) -> str | None:
    """One line when a strict run's host lies outside what strict mode's bit-identity covers
    (x86-64 with AVX2 and FMA); None on such a host or in fast mode. ``requested_mode``: the
    run's mode (default: this process's)."""
    if (requested_mode or mode()) != "strict":
        return None
    found = host()
    where = "docs/reproducibility.md, 'Beyond x86-64 Linux'"
    if found["machine"] not in X86_64:
        return (
            f"strict mode on {found['machine']}: runs repeat bit for bit on {found['machine']} machines with the "
            f"same versions, not against x86-64 runs or the golden records ({where})"
        )
    if found["fma_avx2"] is None:
        return (
            "strict mode could not read this CPU's features (/proc/cpuinfo): its bit-identity with other "
            f"machines holds on x86-64 CPUs with AVX2 and FMA ({where})"
        )
    if not found["fma_avx2"]:
        return (
            "strict mode on an x86-64 CPU without AVX2 and FMA: glibc's exp runs other code here than on the "
            "CPUs strict mode covers, so results repeat across such CPUs but may differ in the last bits from "
            f"an AVX2 and FMA machine's ({where})"
        )
    return None


def record() -> dict:
    """What this process's mode pinned, for manifest.json."""
    import torch

    out = {
        "mode": mode(),
        "numba_fastmath": sorted(kernel_fastmath()),
        "numba_target": _numba_target(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # applied where training starts (apply_torch)
        "torch_deterministic_algorithms": mode() == "strict",
        "torch_intra_op_threads": 1 if mode() == "strict" else None,
        "numpy_dispatch": _numpy_dispatch(),
        "environment": {k: os.environ.get(k) for k in STRICT_ENV},
        "host": host(),
    }
    return out


__all__ = ["DEFAULT", "MODES", "check", "host", "host_notice", "kernel_fastmath", "mode", "prepare_process", "record"]
