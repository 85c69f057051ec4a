#!/bin/bash
# The lever runs of the README on one GPU machine, in parallel, under JAX, within a fixed time.
#
# Here:  bash tools/prepare_gpu_round.sh, which does these three steps:
#        git show 1134d5e:assets/model/fracture_cnn.keras > runs/gpu/box_supervised.keras
#        python tools/pack_for_gpu.py --data ../shared/datasets/fracatlas --out runs/gpu/fracatlas.tar
#        wheels the GPU machine lacks (keras, namex, optree, pydicom for Python 3.12) into runs/gpu/whl/
# There (repository root, runs/gpu beside it, OUT a folder whose files come back):
#        bash tools/gpu_lever_runs.sh
# Each run: python -m fracture_model.train --init-from the box-supervised model --epochs $EPOCHS (8)
# --learning-rate 2e-4 --levers L, for L in $LEVERS (default: none, each lever alone, scale+rotation, all four);
# or, with RUNS=FILE, the runs that file lists, one per line: a name, then the training's arguments after --data/--out
# (tools/gpu_runs_seeds.txt: the round that measured the overlays lever across training seeds).
# A STOP file goes into every run's folder at STOP_AT seconds (the run ends after that epoch, keeping its best
# epoch) and any run still going at KILL_AT seconds is ended. The three runs best by the training's own epoch
# criterion (mean of validation and shifted-validation ROC AUC) come back as NAME.keras and NAME.tgz (card,
# history, split, out-of-distribution statistics, log), with summary.txt holding every run's log. Then, on a
# machine with TensorFlow: python -m fracture_model.lite --model-dir DIR (the LiteRT copy), the views command
# and the benchmark built from validation (README).
tar xf runs/gpu/fracatlas.tar -C runs/gpu || exit 4
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
[ -n "$SKIP_PIP" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site runs/gpu/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=2
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -n "$BACKEND" ] || { BACKEND=jax  # else torch, if JAX cannot train here
KERAS_BACKEND=jax timeout 120 python3 -c "
import jax, keras, numpy as np
print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__, 'numpy', np.__version__)
m = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation='sigmoid')])
m.compile('adam', 'binary_crossentropy'); m.fit(np.zeros((8, 32, 32, 1)), np.zeros(8), verbose=0); print('jax smoke ok')
" || BACKEND=torch; }
echo "backend $BACKEND at $(el) s"
rm -rf /tmp/runs /tmp/stopped; mkdir -p /tmp/runs  # a warm machine keeps /tmp from the call before
declare -A PIDS
start() {  # start NAME ARGS...: one training run in the background, its log beside its folder
  local name=$1; shift
  KERAS_BACKEND=$BACKEND OMP_NUM_THREADS=2 nohup python3 -m fracture_model.train --data runs/gpu/fracatlas \
    --out /tmp/runs/$name "$@" < /dev/null > /tmp/runs/$name.log 2>&1 &
  PIDS[$name]=$!
}
if [ -n "$RUNS" ]; then  # a file of runs, one per line: NAME then the training's arguments
  while read -r name args; do
    [ -n "$name" ] && [ "${name:0:1}" != "#" ] && start $name $args
  done < "$RUNS"
else
  for levers in ${LEVERS:-"" scale rotation appearance overlays scale,rotation scale,rotation,appearance,overlays}; do
    name="levers_${levers:-none}${SUFFIX}"; name=${name//,/_}
    [ "$levers" = scale,rotation,appearance,overlays ] && name=levers_all${SUFFIX}
    start $name --init-from runs/gpu/box_supervised.keras --epochs ${EPOCHS:-8} --learning-rate 2e-4 --levers "$levers" $EXTRA
  done
fi
STOP_AT=${STOP_AT:-400}; KILL_AT=${KILL_AT:-490}
while [ $(el) -lt $KILL_AT ]; do
  alive=0; for n in "${!PIDS[@]}"; do kill -0 ${PIDS[$n]} 2>/dev/null && alive=$((alive+1)); done
  [ $alive -eq 0 ] && break
  if [ $(el) -ge $STOP_AT ] && [ ! -e /tmp/stopped ]; then
    for n in "${!PIDS[@]}"; do touch /tmp/runs/$n/STOP; done; touch /tmp/stopped; echo "STOP files at $(el) s"; fi
  sleep 5
done
for n in "${!PIDS[@]}"; do kill -0 ${PIDS[$n]} 2>/dev/null && { echo "killed $n at $(el) s"; kill ${PIDS[$n]}; }; done
sleep 2
python3 - <<'PY' > $OUT/summary.txt 2>&1
import json, os, shutil, tarfile
from pathlib import Path
runs = Path("/tmp/runs"); out = Path(os.environ["OUT"]); ranked = []
for log in sorted(runs.glob("*.log")):
    name = log.stem; card = runs / name / "model_card.json"
    print(f"===== {name}"); print(log.read_text()[-6000:])
    if (runs / name / "history.csv").exists(): print((runs / name / "history.csv").read_text())
    if card.exists():
        v = json.loads(card.read_text())["validation"]
        ranked.append(((v["roc_auc"] + v["shifted_mix_roc_auc"]) / 2, name, v))
ranked.sort(reverse=True)
print("===== ranking (mean of validation and shifted validation ROC AUC)")
for score, name, v in ranked: print(f"{score:.4f} {name} {v}")
for score, name, v in ranked[:3]:
    shutil.copy(runs / name / "fracture_cnn.keras", out / f"{name}.keras")
    with tarfile.open(out / f"{name}.tgz", "w:gz") as tar:
        for f in sorted((runs / name).iterdir()):
            if f.name not in ("fracture_cnn.keras", "fracture_cnn.tflite", "best_epoch_uncalibrated.keras", "STOP"): tar.add(f, arcname=f.name)
        tar.add(runs / f"{name}.log", arcname="train.log")
if not ranked:  # nothing finished: bring the best checkpoints back instead
    for ckpt in sorted(runs.glob("*/best_epoch_uncalibrated.keras"))[:3]: shutil.copy(ckpt, out / f"{ckpt.parent.name}.ckpt.keras")
PY
tail -12 $OUT/summary.txt; ls -la $OUT; echo "done at $(el) s"
