"""Kernels specialised per model (eventkit.engine.backends._specialise): each specialisation computes
with its own constants, also when its machine code comes from numba's disk cache in a later
process. The bug this catches: two specialisations of one function sharing a cache file (numba
keys cache entries by argument types and bytecode, not by the values of globals), so that a later
process runs the machine code of the other constant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

TEMPLATE = textwrap.dedent(
    """
    from numba import njit

    K = None  # fixed per specialisation


    @njit(cache=True)
    def head_sum(x):
        acc = 0.0
        for k in range(K):
            acc += x[k]
        return acc


    @njit(cache=True)
    def twice_head_sum(x):
        return 2.0 * head_sum(x)
    """
)

RUN = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from numba import njit
    import template_kernels
    from eventkit.engine.backends._specialise import specialise

    x = np.arange(1.0, 9.0)
    out = {}
    for k in map(int, sys.argv[1:]):
        ns = specialise(template_kernels, {"K": k}, lambda obj, copy: njit(cache=True)(copy), tag=f"K{k}")
        f = ns["twice_head_sum"]
        out[k] = [f(x), f.stats.cache_hits.get(f.signatures[0], 0) if f.signatures else 0]
    print(json.dumps(out))
    """
)


def _run(tmp_path, *ks: int) -> dict:
    path = os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])  # eventkit as imported here
    env = dict(os.environ, PYTHONPATH=path, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), *map(str, ks)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def test_each_specialisation_keeps_its_constant_through_the_disk_cache(tmp_path):
    (tmp_path / "template_kernels.py").write_text(TEMPLATE)
    (tmp_path / "run.py").write_text(RUN)
    first = _run(tmp_path, 2, 3)  # compiled, and written to the cache
    assert first[2][0] == 2.0 * (1 + 2) and first[3][0] == 2.0 * (1 + 2 + 3)
    assert first[2][1] == 0 and first[3][1] == 0
    later = _run(tmp_path, 3, 2)  # another process, the other order: both from the cache
    assert later[3][0] == 2.0 * (1 + 2 + 3) and later[2][0] == 2.0 * (1 + 2)
    assert later[3][1] == 1 and later[2][1] == 1, "the specialisations were compiled again, not loaded"
