#!/usr/bin/env bash
# The README's ablation runs: each changes one thing from the default soft model and trains
# 2 epochs (equal budget; the reference is epoch 2 of the shipped soft run), then reads val
# BLEU-4 (beam 3, 1,000 val images) from the run's log.jsonl.
# Usage: bash scripts/ablation.sh [FLICKR8K_JSON] [CACHE_DIR] [RUNS_DIR]
set -euo pipefail
data=${1:-../shared/data/flickr8k/dataset_flickr8k.json}
cache=${2:-cache}
runs=${3:-runs/ablation}
common=(--data "$data" --cache-dir "$cache" --batch-size 128 --epochs 2 --threads 2)
run() {  # name, flags...
    local name=$1; shift
    [ -f "$runs/$name/best.pt" ] || python -m training.train "${common[@]}" --out "$runs/$name" "$@"
    python - "$runs/$name/log.jsonl" "$name" <<'PY'
import json, sys
vals = [json.loads(l) for l in open(sys.argv[1]) if '"val"' in l]
print(f"{sys.argv[2]}: val BLEU-4 by epoch " + ", ".join(f"{100 * v['bleu4']:.1f}" for v in vals))
PY
}
run no-doubly-stochastic --doubly-stochastic 0
run dropout-0.3 --dropout 0.3
run lite1-256 --encoder efficientnet_lite1 --image-size 256  # builds its own 8x8 cache first
run default  # the reference row, rerun with the current code
