#!/usr/bin/env bash
# Rebuild the shipped concept-reading models from the data (docs/models.md):
#   bash scripts/concept_recipe.sh            # RUNS=runs CACHE=cache by default
# 1. the feature cache, 2. the concept detectors (Flickr8k train + COCO dev's even-id half),
# 3. each shipped first-generation model warm-started to read concepts beside COCO's caption
# text, with attention supervision, 4. export.
set -euxo pipefail
D=${D:-../shared/data/flickr8k/dataset_flickr8k.json}
COCO_DEV=${COCO_DEV:-../shared/data/coco_dev/dataset_coco_dev.json}
TEXT=${TEXT:-../shared/data/coco_text/captions.jsonl}
RUNS=${RUNS:-runs}
CACHE=${CACHE:-cache}
EPOCHS=${EPOCHS:-4}
mkdir -p "$RUNS"
python -m training.cache --data "$D" --cache-dir "$CACHE"
# The words the grown vocabulary will hold, so ImageNet concepts cover them.
python - "$TEXT" "$RUNS/extra_words.txt" <<'PY'
import sys
from captioner import load_checkpoint
from captioner.inference import default_checkpoint
from training.text_concepts import load_caption_text, new_words
known = set(load_checkpoint(default_checkpoint("soft")).vocab.stoi)
open(sys.argv[2], "w").write("\n".join(new_words(load_caption_text(sys.argv[1]), known, 5)))
PY
python -m training.concepts --data "$D" --cache-dir "$CACHE" --coco-dev "$COCO_DEV" \
    --extra-words-file "$RUNS/extra_words.txt" --out "$RUNS/concepts.pt"
COMMON=(--data "$D" --cache-dir "$CACHE" --concept-file "$RUNS/concepts.pt"
        --caption-text "$TEXT" --text-groups 5000 --text-min-count 5 --epochs "$EPOCHS"
        --val-images 500 --attention-supervision 1 --resume)
python -m training.train "${COMMON[@]}" --init "${SOFT_INIT:-captioner/weights/soft_flickr8k.pt}" \
    --lr 2e-4 --out "$RUNS/soft_concepts_sup"
python -m training.train "${COMMON[@]}" --init "${HARD_INIT:-captioner/weights/hard_flickr8k.pt}" \
    --lr 1e-4 --out "$RUNS/hard_concepts_sup"
python -m training.export --checkpoint "$RUNS/soft_concepts_sup/best.pt" --out "$RUNS/soft_flickr8k.pt"
python -m training.export --checkpoint "$RUNS/hard_concepts_sup/best.pt" --out "$RUNS/hard_flickr8k.pt"
