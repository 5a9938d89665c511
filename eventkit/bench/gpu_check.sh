#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU (about 10 minutes on one GPU):
#   1. installs eventkit with numba-cuda matching torch's CUDA major (the cuda extra for cu12), into
#      the active environment when its torch sees the GPU, else into ./.venv-gpu (needs PyPI);
#   2. runs the cuda backend's CPU-parity cases on the real device (no simulator);
#   3. runs the engine benchmark on the GPU (eventkit cuda backend + snnTorch on cuda), headline
#      configuration, with the description-driven kernels and learned time constants per layer,
#      and the delay workload, writing JSON into $OUT (default ./gpu-check).
# Usage: bash eventkit/bench/gpu_check.sh [--full]   (--full: every configuration of the table)
# Each step's log is kept beside its JSON; the script stops at the first failing step.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
unset NUMBA_ENABLE_CUDASIM
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"

# an environment whose torch sees the GPU: the active one if it does, else ./.venv-gpu
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  [ -x .venv-gpu/bin/python ] || "$PY" -m venv .venv-gpu
  PY=.venv-gpu/bin/python
fi
echo "== install eventkit[test,bench] + numba-cuda for torch's CUDA major ($("$PY" --version))"
"$PY" -m pip install -q -e ".[test,bench]" 2>&1 | tail -3
major=$("$PY" -c "import torch; print((torch.version.cuda or '12').split('.')[0])")
if [ "$major" = 12 ]; then
  "$PY" -m pip install -q -e ".[cuda]" 2>&1 | tail -3          # numba-cuda[cu12], pinned in pyproject
else
  "$PY" -m pip install -q "numba-cuda[cu$major]==0.30.4" 2>&1 | tail -3
fi
python() { "$PY" "$@"; }
python - <<'EOF' | tee "$OUT/device.txt"
import torch
from numba import cuda
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("numba-cuda sees", cuda.is_available() and cuda.get_current_device().name)
assert torch.cuda.is_available() and cuda.is_available(), "no usable GPU: see the lines above"
EOF

echo "== cuda backend vs CPU backend on the device"
EVENTKIT_CUDA_TESTS=device python -m pytest tests/test_engine_cuda.py -q -p no:cacheprovider 2>&1 \
  | tee "$OUT/tests.log"

echo "== engine benchmark on the GPU"
quick=(--quick)
[ "${1:-}" = "--full" ] && quick=()
timeout 480 "$PY" -m eventkit.bench --device cuda "${quick[@]}" --repeats 5 --described --learn-tau \
  --json "$OUT/bench_cuda.json" 2>&1 \
  | tee "$OUT/bench_cuda.log"

echo "== delay workload on the GPU"
timeout 300 "$PY" -m eventkit.bench --delays --device cuda --max-delays 64 --repeats 3 \
  --json "$OUT/bench_delays_cuda.json" 2>&1 | tee "$OUT/bench_delays_cuda.log"
echo "== done: $OUT"
