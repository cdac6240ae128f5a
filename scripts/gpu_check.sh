#!/usr/bin/env bash
# The GPU check (issue 17), one command from the repository root on the GPU machine:
#
#     bash scripts/gpu_check.sh              # everything; summary.json and summary.md into $OUT
#     bash scripts/gpu_check.sh --dry-run    # on a CPU: the same steps, CUDA parts skipped, small sizes
#
# It installs focal_ref and the carried wheels (wheels/gpu/, from scripts/fetch_gpu_wheels.py), runs every
# CUDA-parametrized test and the Keras tests on the torch and JAX backends, compares with torchvision's
# ops.sigmoid_focal_loss, prints the agreement table with its CUDA column and runs the benchmark at GPU
# sizes; see scripts/gpu_check.py. Exit status 1 on any disagreement. Without CUDA it runs as a dry run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export TF_CPP_MIN_LOG_LEVEL=3 TF_ENABLE_ONEDNN_OPTS=0 PYTHONHASHSEED=0
start=$(date +%s)
"$PYTHON" scripts/gpu_check.py "$@"
status=$?
echo "[gpu_check] wall time $(( $(date +%s) - start )) s, exit $status"
exit $status
