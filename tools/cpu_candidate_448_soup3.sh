#!/bin/bash
# Rebuild on this CPU the model shipped on the morning of 3 December (README, "What was tried", the row "that
# fine-tune with the appearance lever (T) ... and a third each ... (U)"), should runs/ be lost (it is ignored, so a
# fresh checkout lacks it). About 30 minutes on 2 cores: two 2-epoch 448 px fine-tunes at 1e-4 from the model shipped
# before it (b350a2c75a82, taken from git), one with the appearance lever; the weight average of the three, a third
# each; the LiteRT copy and the shipped views. CPU training is not bit-exact, so the version will differ from
# ec6d04d1fd92 and the candidate must be judged again on the benchmark built from validation before its test split
# is read.
#   bash tools/cpu_candidate_448_soup3.sh [FRACATLAS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-../shared/datasets/fracatlas}
PY=${PY:-.venv/bin/python}
R=runs/cpu39
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONHASHSEED=0 PYTHONPATH=.
mkdir -p $R
# the network the candidate starts from and averages: the model shipped until then (b350a2c75a82), from git
OLD=$R/m_b350
[ -e $OLD/fracture_cnn.keras ] || { mkdir -p $OLD && git archive 5860af7 assets/model | tar -x --strip-components=2 -C $OLD; }
FT="--init-from $OLD/fracture_cnn.keras --image-size 448 --frozen-epochs 0 --epochs 2 --learning-rate 1e-4"
[ -e $R/appS/fracture_cnn.keras ] || "$PY" -m fracture_model.train --data "$D" --out $R/appS $FT --levers scale,rotation,overlays
[ -e $R/appT/fracture_cnn.keras ] || "$PY" -m fracture_model.train --data "$D" --out $R/appT $FT --levers scale,rotation,overlays,appearance
"$PY" -m fracture_model.soup --data "$D" --out $R/soup_U $OLD $R/appS $R/appT
"$PY" -m fracture_model.lite --model-dir $R/soup_U
"$PY" -m fracture_model.views --model-dir $R/soup_U --data "$D" --zoom 0.7 0.5 --flip vertical
echo "next: $PY bench/bench_robustness.py --model-dir $R/soup_U --split validation --normal-images 250 --json $R/val_U.json"
