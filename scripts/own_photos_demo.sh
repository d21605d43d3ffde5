#!/usr/bin/env bash
# The walkthrough of docs/own_photos.md: fine-tune the shipped soft model on 100 of the 154
# COCO dev photos (90 train + 10 val) and score it on the other 54, from COCO's own captions
# file (ROUTE=coco) or from a CSV made of it (ROUTE=csv, after coco: the same split via
# --split-from).
# A demonstration only: the model it writes under runs/ is never shipped or scored elsewhere.
#   scripts/own_photos_demo.sh [coco|csv]     (STEPS=300 THREADS=1 by default)
set -euo pipefail
ROUTE=${1:-coco}
COCO=${COCO:-../shared/data/coco_dev}
W=${W:-runs/own_photos}
STEPS=${STEPS:-300}
THREADS=${THREADS:-1}
SHIPPED=captioner/weights/soft_flickr8k.pt
D=$W/$ROUTE
mkdir -p "$D"
if [ "$ROUTE" = coco ]; then
  # COCO's layout: val2014/<file_name> beside the JSON; this set keeps its photos in one folder.
  ln -sfn "$(realpath "$COCO/images")" "$D/val2014"
  python -m training.convert coco --val-json "$COCO/captions_dev.json" \
      --val-size 10 --test-size 54 --seed 123 --images "$D" --out "$D/dataset.json"
else
  ln -sfn "$(realpath "$COCO/images")" "$D/images"
  python scripts/coco_captions_csv.py "$COCO/captions_dev.json" > "$D/captions.csv"
  python -m training.convert photos --format csv --images "$D/images" \
      --captions "$D/captions.csv" --split-from "$W/coco/dataset.json" --name coco_dev_csv \
      --out "$D/dataset.json"
fi
python -m training.cache --data "$D/dataset.json" --cache-dir "$W/cache" --threads "$THREADS" \
    --workers 1
python -m training.evaluate --checkpoint $SHIPPED --data "$D/dataset.json" --split test \
    --cache-dir "$W/cache" --threads "$THREADS" --no-grounding --fusion-weight 0 \
    --out "$D/before.json"
python -m training.train --init $SHIPPED --data "$D/dataset.json" --cache-dir "$W/cache" \
    --out "$D/run" --min-word-count 3 --lr 1e-4 --batch-size 32 --epochs 100 \
    --max-steps "$STEPS" --early-stop-patience 100 --log-every 10 --threads "$THREADS"
python -m training.evaluate --checkpoint "$D/run/best.pt" --data "$D/dataset.json" \
    --split test --cache-dir "$W/cache" --threads "$THREADS" --no-grounding --fusion-weight 0 \
    --out "$D/after.json"
mkdir -p "$W/models"
cp "$D/run/best.pt" "$W/models/coco_dev_$ROUTE.pt"  # the folder for CAPTIONER_MODEL_DIR
