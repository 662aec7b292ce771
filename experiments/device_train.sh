#!/usr/bin/env bash
# Train on a lent GPU machine inside ONE device call, then bring the parameters back.
#
# Here, once:   python -m experiments.device_prepare          (writes .device_carry/, git-ignored)
# Device call:  run(command="bash experiments/device_train.sh", carry=[".device_carry"], timeout_s=600)
# Dry run here: OUT=/tmp/dev_out MINUTES=0.5 SIZE=32 BATCH=2 N=... bash experiments/device_train.sh
#
# It trains from $INIT (the shipped model, which is the current snapshot) at the paper's settings (320 px, Adam 2e-5) with the
# recipe's data options, for $MINUTES of wall time (the run stops itself and saves), exports the
# last parameters in bfloat16, and leaves in $OUT at most 8 files of at most 15 MiB each:
# params.tar.part-* (cat them, then tar -x), metrics.jsonl, the last sample image and the log.
# Afterwards, here:  cat params.tar.part-* | tar -x -C runs/   →  runs/device_export/
set -euo pipefail
: "${OUT:?OUT must name the folder whose files come back}"
CARRY=${CARRY:-.device_carry}
INIT=${INIT:-flexsolver/models/mix256}
MINUTES=${MINUTES:-8}
SIZE=${SIZE:-320}
BATCH=${BATCH:-8}
LR=${LR:-2e-5}
EVAL_EVERY=${EVAL_EVERY:-500}
STYLE_DATA=${STYLE_DATA-folder:$CARRY/data/styles}
PYTHON=${PYTHON:-python3}
WORK=${WORK:-$(mktemp -d)/run}
EXTRA=${EXTRA:-}  # more experiments.train flags, e.g. EXTRA="--pair-loss-cap 3"

export FLEXSOLVER_VGG=$CARRY/vgg19.npz FLEXSOLVER_CACHE_DIR=off PYTHONUNBUFFERED=1
[ -f "$FLEXSOLVER_VGG" ] || { echo "error: $FLEXSOLVER_VGG missing; run python -m experiments.device_prepare here and carry $CARRY" >&2; exit 2; }
"$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())"

# The architecture (n, l) comes from the snapshot's config.
read -r N L < <("$PYTHON" -c "
from flexsolver.checkpoint import load_checkpoint
_, c = load_checkpoint('$INIT'); print(c['n'], c['l'])" 2>/dev/null | tail -1)

set +e
"$PYTHON" -m experiments.train --n "$N" --l "$L" --size "$SIZE" --batch "$BATCH" --lr "$LR" \
  --data "folder:$CARRY/data/train" ${STYLE_DATA:+--style-data "$STYLE_DATA"} --crop-min 0.5 \
  --steps 1000000 --save-every 1000000 --eval-every "$EVAL_EVERY" --log-every "${LOG_EVERY:-20}" \
  --init-from "$INIT" --workdir "$WORK" --minutes "$MINUTES" --no-progress $EXTRA 2>&1 | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || { echo "error: training exited with $status (see train.log)" >&2; }

if [ -d "$WORK/checkpoints" ]; then
  "$PYTHON" -m experiments.export "$WORK" "$WORK/../device_export" --dtype bfloat16
  tar -C "$WORK/.." -cf - device_export | split -b 15M -d - "$OUT/params.tar.part-"
  [ -f "$WORK/metrics.jsonl" ] && cp "$WORK/metrics.jsonl" "$OUT/metrics.jsonl"
  last=$(ls "$WORK"/samples/*.png 2>/dev/null | tail -1 || true)
  [ -n "$last" ] && cp "$last" "$OUT/last_sample.png"
fi
ls -la "$OUT"
exit "$status"
