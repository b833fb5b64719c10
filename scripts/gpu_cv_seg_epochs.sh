#!/bin/bash
# GPU study for #3: does training 20 epochs beat the shipped 16 (both 256 px, bf16 autocast, weight average 0.998)
# on held-out folds of the official train split? One process per (setting, fold), all in parallel on one GPU;
# training stops at DEADLINE seconds, then the study is reported over the folds both settings completed (run it
# again to resume what was stopped: cross_validate.py resumes each fold from its last.pt).
#
# Produced models/eval/segmentation_cv_ep20.json (reported by the --no-train command at the end, with the note
# in that file). On a machine without this project's venv (a lent GPU box), the train split, its masks, labels and
# metadata were copied into the git-ignored .devdata/isic2017 and the [train] packages it lacked carried as wheels:
#   pip install --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src
#   DEADLINE=440 OUT=$OUT bash scripts/gpu_cv_seg_epochs.sh
# Local smoke test (CPU, a minute):
#   PY=.venv/bin/python MELANOMA_DATA=../shared/data/isic2017 STUDY=/tmp/smoke OUT=/tmp/smokeout FOLDS=0 LATE= \
#     EXTRA="data.image_size=64 optim.epochs=1 data.limit_train=64 data.limit_val=16" bash scripts/gpu_cv_seg_epochs.sh
set -u
PY=${PY:-python3}
OUT=${OUT:-/tmp/out}
STUDY=${STUDY:-runs/cvg-ep20}
FOLDS=${FOLDS:-"0 1 2 3"}
LATE=${LATE-4}    # a further fold (LATE= for none), started only if a run finishes within 40% of DEADLINE
DEADLINE=${DEADLINE:-430}
EXTRA=${EXTRA:-}   # appended overrides, for a local smoke test only
export MELANOMA_DATA=${MELANOMA_DATA:-.devdata/isic2017}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$STUDY" "$OUT"
declare -A SET=(
  [ep16]="amp=bf16 optim.ema_decay=0.998 data.num_workers=1 optim.epochs=16 $EXTRA"
  [ep20]="amp=bf16 optim.ema_decay=0.998 data.num_workers=1 optim.epochs=20 $EXTRA"
)
CV=(benchmarks/cross_validate.py --config configs/segmentation.yaml --folds 5 --out "$STUDY")
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
$PY -c "import torch, timm, segmentation_models_pytorch, albumentations; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'timm', timm.__version__, 'smp', segmentation_models_pytorch.__version__)" || exit 1

launch() {
  for s in ep16 ep20; do
    $PY "${CV[@]}" --setting "$s: ${SET[$s]}" --only-folds "$1" >"$STUDY/log_${s}_fold$1.txt" 2>&1 &
  done
}
start=$(date +%s)
for k in $FOLDS; do launch "$k"; done
while pgrep -f "cross_validate.py" >/dev/null; do
  sleep 20
  now=$(($(date +%s) - start))
  rows=""
  for k in $FOLDS; do for s in ep16 ep20; do
    f="$STUDY/$s/fold$k/metrics.csv"
    rows="$rows $s/$k:$( [ -f "$f" ] && echo $(($(wc -l <"$f") - 1)) || echo 0)"
  done; done
  if [ -n "$LATE" ] && [ "$(jobs -rp | wc -l)" -lt $((2 * $(echo $FOLDS | wc -w))) ]; then
    if [ "$now" -le $((DEADLINE * 2 / 5)) ]; then
      echo "t=${now}s: a run finished early, starting fold $LATE"; launch "$LATE"; FOLDS="$FOLDS $LATE"
    fi
    LATE=""
  fi
  echo "t=${now}s$rows $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
  if [ "$now" -ge "$DEADLINE" ]; then
    echo "deadline: stopping the runs still training"
    pkill -f "cross_validate.py"; sleep 5; pkill -9 -f "cross_validate.py"; sleep 2
    break
  fi
done
echo "training phase: $(($(date +%s) - start)) s"
grep -h "Traceback\|Error" "$STUDY"/log_*.txt | sort | uniq -c | head
# A cache cut short by the stop would be read as complete: keep only whole ones (400 images + header).
for f in "$STUDY"/*/fold*/oof_jaccard.csv; do
  [ -f "$f" ] && [ "$(wc -l <"$f")" -ne 401 ] && [ -z "$EXTRA" ] && rm -f "$f"
done

NOTE="Trained by the same command without --no-train and --note on one NVIDIA H100 lent to this project for 15 minutes: one process per setting and fold (--setting NAME --only-folds K), all in parallel, stopped after ${DEADLINE} s; data.num_workers=1 for the GPU (it does not change what is trained). The validation images here are 400 of the official train images per fold, never the official validation set."
$PY "${CV[@]}" --no-train --setting "ep16: ${SET[ep16]}" --setting "ep20: ${SET[ep20]}" --note "$NOTE" \
  --json "$OUT/segmentation_cv_ep20.json" >"$STUDY/report.txt" 2>&1
echo "report rc=$?"
tail -c 2500 "$STUDY/report.txt"
tar czf "$OUT/study.tgz" --exclude='*.pt' "$STUDY"
echo "total: $(($(date +%s) - start)) s"
