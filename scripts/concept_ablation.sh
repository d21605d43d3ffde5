#!/usr/bin/env bash
# The concept models' ablation rows (docs/concepts.md): each run's best checkpoint on Flickr8k
# val and COCO dev, the decoder alone and with the constrained search (grounding) on top.
#   RUNS=runs OUT=results/concepts bash scripts/concept_ablation.sh soft_concepts soft_concepts_sup
set -euxo pipefail
D=${D:-../shared/data/flickr8k/dataset_flickr8k.json}
COCO_DEV=${COCO_DEV:-../shared/data/coco_dev/dataset_coco_dev.json}
RUNS=${RUNS:-runs}
OUT=${OUT:-results/concepts}
CACHE=${CACHE:-cache}
mkdir -p "$OUT"
for run in "$@"; do
  ckpt="$RUNS/$run/best.pt"
  python -m training.evaluate --checkpoint "$ckpt" --data "$D" --split val --cache-dir "$CACHE" \
      --no-grounding --fusion-weight 0 --out "$OUT/${run}_val.json"
  python -m training.evaluate --checkpoint "$ckpt" --data "$COCO_DEV" --split test \
      --no-grounding --fusion-weight 0 --out "$OUT/${run}_coco_dev.json"
  python -m training.evaluate --checkpoint "$ckpt" --data "$COCO_DEV" --split test \
      --grounding --fusion-weight 0 --out "$OUT/${run}_coco_dev_grounded.json"
done
