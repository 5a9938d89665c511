"""Data-pipeline benchmark (same as ``python -m eventkit.datasets.bench``): SSC-sized preprocessing,
cache write/load, per-epoch augmentation and batching, against the engine's epoch time.

    python benchmarks/bench_data.py [--quick] [--json PATH]
"""

from eventkit.datasets.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
