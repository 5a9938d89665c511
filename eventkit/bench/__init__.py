"""eventkit's benchmarks, each printing a table and writing JSON:

    python -m eventkit.bench [--device cpu|cuda]   engine vs snnTorch BPTT (engine.py)
    python -m eventkit.bench --delays              learned delays vs DCLS-Delays (delays.py)
    bash eventkit/bench/gpu_check.sh               on a GPU machine: cuda parity tests + GPU tables

Each built-in plugin keeps its own benchmark in its package (``python -m eventkit_tonic.bench``,
``eventkit_loihi2.bench``, ``eventkit_nir.bench``).
"""
