#!/usr/bin/env bash
# CI step: build (or reuse) the separate Lava environment so the Lava bit-exactness tests run.
# Usage: plugins/eventkit_loihi2/ci_build_lava_env.sh [PYTHON]
#   PYTHON: the eventkit interpreter (default: python). The environment goes to
#   $EVENTKIT_LAVA_ENV (default ~/.cache/eventkit/lava-env) and is reused when already built.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${1:-python}"
PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" "$py" -m eventkit_loihi2.lava_env build
PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" "$py" -m eventkit_loihi2.lava_env status
