#!/bin/bash
# Prepare runs/gpu for tools/gpu_lever_runs.sh on this machine, in one command (a fresh checkout lacks it:
# runs/ is ignored). Writes the box-supervised model every GPU recipe starts from, the packed training and
# validation images, and the wheels the GPU machine's Python 3.12 lacks, then prints the size to carry
# (the device takes at most 64 MiB with the working tree).
#   bash tools/prepare_gpu_round.sh [FRACATLAS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/datasets/fracatlas}
PY=${PY:-.venv/bin/python}
mkdir -p runs/gpu/whl
git show 1134d5e:assets/model/fracture_cnn.keras > runs/gpu/box_supervised.keras
[ -e runs/gpu/fracatlas.tar ] || PYTHONPATH=. "$PY" tools/pack_for_gpu.py --data "$DATA" --out runs/gpu/fracatlas.tar --quality 82
KERAS=$("$PY" -c "import keras; print(keras.__version__)"); PYDICOM=$("$PY" -c "import pydicom; print(pydicom.__version__)")
"$PY" -m pip download -q --only-binary=:all: --no-deps --python-version 3.12 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform any -d runs/gpu/whl "keras==$KERAS" namex optree "pydicom==$PYDICOM"
du -sh runs/gpu; ls runs/gpu/whl
