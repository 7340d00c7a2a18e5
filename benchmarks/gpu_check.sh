#!/usr/bin/env bash
# The GPU check of issue 39 in one command, for a machine with a CUDA GPU (python -m benchmarks gpu):
#
#   bash benchmarks/gpu_check.sh [its options]        e.g. bash benchmarks/gpu_check.sh --results "$OUT"
#
# Prints the machine (nvidia-smi, CPU cores, torch, CUDA, cuDNN), runs the CUDA tests, then times every
# preset on 512x512 and 2048x2048 synthetic slices and a 32-slice stack on the GPU against the CPU at the
# same seed; writes benchmarks/results/gpu.json and gpu.log (--results DIR elsewhere). `--help` lists
# the options; `--device cpu --smoke --threads 1` is a CPU smoke run of seconds.
#
# Assumes:
# * bash and a copy of this repository (this file in its benchmarks/ folder); run from anywhere;
# * offline, nothing installed: a Python >= 3.10 that imports torch and numpy is here ($PYTHON if set,
#   else the first of .venv/bin/python, python3, python that does). The package is then run from src/
#   through PYTHONPATH, not installed, so no network and no build tools are needed. The check needs no
#   zarr, dask or napari; the CUDA tests need pytest, tifffile, filelock and tqdm (without pytest the
#   tests are reported as not run and the timings still run);
# * otherwise it runs `pip install -q torch==2.13.0 -e . pytest` with $PYTHON (default python3): that
#   needs the network, or a pip configured to find those wheels locally; without either it stops there;
# * time: under 8 minutes on one H100: the check keeps within --budget (420 s by default, the tests
#   included; an install is not counted). Exit status: the check's (0 when it ran to its end, whatever
#   the figures and the tests' outcome, which gpu.json and gpu.log hold).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
NEEDS="import torch, numpy, napari_scoredvi.engine.api, napari_scoredvi.pipeline.slices"

pick_python() {
  local py
  for py in "${PYTHON:-}" .venv/bin/python python3 python; do
    if [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 && "$py" -c "$NEEDS" >/dev/null 2>&1; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

if ! PY=$(pick_python); then
  PY=${PYTHON:-python3}
  echo "gpu_check.sh: no python here imports torch and numpy; trying: $PY -m pip install -q torch==2.13.0 -e . pytest" >&2
  "$PY" -m pip install -q torch==2.13.0 -e . pytest
fi
echo "gpu_check.sh: $(command -v "$PY"), $("$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__)')"
exec "$PY" -m benchmarks gpu "$@"
