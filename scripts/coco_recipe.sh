#!/usr/bin/env bash
# The README's "Training on COCO" commands, in order. Rehearse them on a COCO-format sample:
#   python scripts/coco_sample.py --flickr8k ../shared/data/flickr8k --out data/coco_sample
#   COCO=data/coco_sample VAL_SIZE=40 TEST_SIZE=40 NPROC=2 EPOCHS=2 FT_STEPS=10 bash scripts/coco_recipe.sh
# On a GPU machine with the real download: COCO=coco NPROC=<GPUs> PRECISION=bf16 bash scripts/coco_recipe.sh
set -euxo pipefail
COCO=${COCO:-coco}
NPROC=${NPROC:-1}
PRECISION=${PRECISION:-fp32}
EPOCHS=${EPOCHS:-20}
FT_STEPS=${FT_STEPS:-0}
VAL_SIZE=${VAL_SIZE:-5000}
TEST_SIZE=${TEST_SIZE:-5000}
RUNS=${RUNS:-runs}

# 1. Karpathy-format split JSON from COCO's caption files (or pass --karpathy-split dataset_coco.json).
python -m training.convert coco --train-json "$COCO/annotations/captions_train2014.json" \
    --val-json "$COCO/annotations/captions_val2014.json" --images "$COCO" \
    --val-size "$VAL_SIZE" --test-size "$TEST_SIZE" --out "$COCO/dataset_coco.json"
# 2. Feature cache: 448 px input -> 14x14 grid, sharded float16 files, JPEGs decoded by workers.
python -m training.cache --data "$COCO/dataset_coco.json" --images "$COCO" --image-size 448 \
    --cache-dir cache --workers 4
# 3. Decoder on cached features, one process per GPU (gloo processes on a CPU machine).
torchrun --standalone --nproc_per_node="$NPROC" -m training.train --data "$COCO/dataset_coco.json" \
    --images "$COCO" --image-size 448 --cache-dir cache --out "$RUNS/coco-soft" \
    --attention soft --batch-size 128 --epochs "$EPOCHS" --device auto --precision "$PRECISION" \
    --loader-workers 2 --val-images 1000
# 4. Fine-tune the encoder's top 2 blocks with the decoder, from images.
torchrun --standalone --nproc_per_node="$NPROC" -m training.finetune --init "$RUNS/coco-soft/best.pt" \
    --data "$COCO/dataset_coco.json" --images "$COCO" --out "$RUNS/coco-soft-ft" \
    --finetune-blocks 2 --encoder-lr 1e-5 --lr 1e-4 --batch-size 32 --epochs 3 \
    --max-steps "$FT_STEPS" --device auto --precision "$PRECISION" --loader-workers 4 --val-images 1000
# 5. Test-split scores of both stages.
for run in coco-soft coco-soft-ft; do
    python -m training.evaluate --checkpoint "$RUNS/$run/best.pt" --data "$COCO/dataset_coco.json" \
        --images "$COCO" --split test --beam 3 --cache-dir cache --out "$RUNS/$run/test_beam3.json"
done
