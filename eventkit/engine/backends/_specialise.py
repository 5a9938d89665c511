"""Compile a kernel module's functions again with model constants fixed at compile time.

numba freezes a function's global variables as constants when it compiles it. So a kernel module
written against a global (``NS``, the number of states of :mod:`._linear_kernels`) is a template:
:func:`specialise` copies every compiled function of the module into a new namespace in which the
global has a value, and compiles the copies there. Loops over ``range(NS)`` then have a constant
trip count, which LLVM unrolls, and a model's small state vectors stay in registers. This is
numba's form of what GeNN does by generating C++ per model. The same copying gives the CUDA
backend its device functions from the CPU source (:mod:`._linear_cuda`).

A copy cached on disk (numba ``cache=True``) must not be confused with another specialisation of
the same function: numba names a cache file after the function's qualified name and keys its
entries by argument types and bytecode, not by the values of globals. Each copy's qualified name
therefore carries a ``tag`` that names the constants and the source of the helpers it inlines.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable, Iterable
from pathlib import Path

from numba.core.registry import CPUDispatcher


def specialise(
    module: types.ModuleType,
    constants: dict,
    compile_copy: Callable[[CPUDispatcher, types.FunctionType], object],
    *,
    select: Callable[[str, CPUDispatcher], bool] = lambda name, obj: True,
    tag: str = "",
) -> dict:
    """A copy of ``module``'s namespace with ``constants`` set, in which every numba-compiled
    function visible in it that ``select(name, function)`` accepts is replaced by ``compile_copy(original, copy)``:
    ``copy`` is the original's Python function with this namespace as its globals (so the copies
    call each other) and, with a ``tag``, the qualified name ``<name>__<tag>``."""
    namespace = dict(vars(module))
    namespace.update(constants)
    for name, obj in vars(module).items():
        if isinstance(obj, CPUDispatcher) and select(name, obj):
            py = obj.py_func
            copy = types.FunctionType(py.__code__, namespace, py.__name__, py.__defaults__, py.__closure__)
            copy.__qualname__ = f"{py.__qualname__}__{tag}" if tag else py.__qualname__
            namespace[name] = compile_copy(obj, copy)
    return namespace


def source_digest(files: Iterable[str | Path]) -> str:
    """A short hash of the source ``files`` (the helpers a specialisation inlines): part of a
    cached copy's tag, so that an edit of any of them compiles the copies afresh."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:12]


__all__ = ["source_digest", "specialise"]
