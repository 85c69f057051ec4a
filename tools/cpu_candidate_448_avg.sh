#!/bin/bash
# Rebuild on this CPU the candidate the rule picked on 2 December, evening (README, "What was tried", the row
# "one appearance epoch from that three-way average"), should runs/ be lost (it is ignored, so a fresh checkout
# lacks it). About 2.5 hours on 2 cores: two 12-epoch 448 px runs (the first seed's folder is reused if present),
# their average with the shipped network, one appearance epoch from it, the half-and-half average, the LiteRT
# copy and the shipped views. CPU training is not bit-exact, so the version will differ from b350a2c75a82 and the
# candidate must be judged again on the benchmark built from validation before its test split is read.
#   bash tools/cpu_candidate_448_avg.sh [FRACATLAS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-../shared/datasets/fracatlas}
PY=${PY:-.venv/bin/python}
R=runs/cpu38
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONHASHSEED=0 PYTHONPATH=.
mkdir -p runs/cpu runs/cpu37 $R
# the network the candidate averaged: the model shipped until then (0a48d4d296c6), from git
OLD=$R/m0a48d4d296c6
[ -e $OLD/fracture_cnn.keras ] || { mkdir -p $OLD && git archive 350c793 assets/model | tar -x --strip-components=2 -C $OLD; }
[ -e runs/cpu/box_supervised.keras ] || git show 1134d5e:assets/model/fracture_cnn.keras > runs/cpu/box_supervised.keras
E12="--init-from runs/cpu/box_supervised.keras --image-size 448 --epochs 12 --learning-rate 2e-4 --levers scale,rotation,overlays"
[ -e runs/cpu37/s448_e12/fracture_cnn.keras ] || "$PY" -m fracture_model.train --data "$D" --out runs/cpu37/s448_e12 $E12
[ -e $R/e12_s2/fracture_cnn.keras ] || "$PY" -m fracture_model.train --data "$D" --out $R/e12_s2 $E12 --training-seed 2
"$PY" -m fracture_model.soup --data "$D" --out $R/soup_a $OLD runs/cpu37/s448_e12 $R/e12_s2
"$PY" -m fracture_model.train --data "$D" --out $R/app1 --init-from $R/soup_a/fracture_cnn.keras --image-size 448 \
  --frozen-epochs 0 --epochs 1 --learning-rate 2e-5 --levers scale,rotation,overlays,appearance
"$PY" -m fracture_model.soup --data "$D" --out $R/soup_c $R/soup_a $R/app1
"$PY" -m fracture_model.lite --model-dir $R/soup_c
"$PY" -m fracture_model.views --model-dir $R/soup_c --data "$D" --zoom 0.7 0.5 --flip vertical
echo "next: $PY bench/bench_robustness.py --model-dir $R/soup_c --split validation --normal-images 250 --json $R/val_c.json"
