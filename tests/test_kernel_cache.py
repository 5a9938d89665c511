"""The kernels' numba cache follows edits of the formulas they inline from ``_neuron_math``
(numba itself keys a cache to a hash of the caller's source file only)."""

import hashlib
from pathlib import Path

from eventkit.engine.backends import _neuron_math


class FakeCache:
    def __init__(self):
        self.flushed = 0

    def flush(self):
        self.flushed += 1


class FakeDispatcher:
    """What refresh_stale_cache reads of a numba dispatcher: its Python function and its cache."""

    def __init__(self, module):
        self.py_func = type("F", (), {"__module__": module})()
        self._cache = FakeCache()


def test_a_changed_formula_file_empties_the_kernel_modules_caches_once(tmp_path):
    kernel = tmp_path / "_kernels.py"
    kernel.write_text("# a kernel module\n")
    stamp = tmp_path / "__pycache__" / "_kernels.neuron_math.sha256"
    stamp.parent.mkdir()
    stamp.write_text("the hash of an older _neuron_math.py")
    own, imported = FakeDispatcher("kernels"), FakeDispatcher("elsewhere")
    namespace = {"__name__": "kernels", "own": own, "imported": imported, "constant": 3}
    _neuron_math.refresh_stale_cache(str(kernel), namespace)
    assert own._cache.flushed == 1 and imported._cache.flushed == 0  # only the module's own kernels
    assert stamp.read_text() == hashlib.sha256(Path(_neuron_math.__file__).read_bytes()).hexdigest()
    _neuron_math.refresh_stale_cache(str(kernel), namespace)  # unchanged formulas: caches kept
    assert own._cache.flushed == 1


def test_the_kernel_modules_check_their_stamp_at_import():
    """The specialised CPU kernel module that inlines the formulas stamps the current hash beside
    itself."""
    from eventkit.engine.backends import _cpu_kernels

    digest = hashlib.sha256(Path(_neuron_math.__file__).read_bytes()).hexdigest()
    path = Path(_cpu_kernels.__file__)
    assert (path.parent / "__pycache__" / f"{path.stem}.neuron_math.sha256").read_text() == digest


def test_the_described_kernels_are_cached_under_the_hash_of_what_they_inline():
    """The description-driven kernels, compiled per number of states, carry the number and the
    hash of the formulas and row helpers they inline in their cached name: an edit of either
    file compiles them afresh instead of loading machine code with the old formulas."""
    from eventkit.engine.backends import _cpu_kernels, _linear_kernels
    from eventkit.engine.backends._specialise import source_digest

    digest = source_digest([_neuron_math.__file__, _cpu_kernels.__file__])
    for n_states in (2, 3):
        kernels = _linear_kernels.kernels(n_states)
        for kernel in (kernels.forward, kernels.backward):
            assert kernel.py_func.__qualname__.endswith(f"__S{n_states}_{digest}"), kernel.py_func.__qualname__
            assert kernel._cache.__class__.__name__ == "FunctionCache"  # cached on disk at all
