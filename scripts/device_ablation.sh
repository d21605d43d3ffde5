#!/usr/bin/env bash
# The attention ablation on one GPU, end to end (docs/attention.md): the feature cache, every
# run of scripts/sweep.py's PLAN side by side under a time budget, then each run's best model
# captions the test split (beam 3, the shipped decoding defaults) and the runs that beat the
# soft row on val are exported (float16). Metrics are computed where the captions are made;
# METEOR needs Java, so on a machine without it rescore the JSONs afterwards:
#     python -m training.evaluate --rescore R/<run>_test_beam3.json --out R/<run>_test_beam3.json
# Usage: bash scripts/device_ablation.sh DATA_JSON WORK_DIR RESULTS_DIR [SWEEP_SECONDS] [DEVICE]
# EPOCHS (default 30: early stopping ends the runs first), WORKERS (JPEG decoders, default 14)
# and EXTRA (flags for every run) tune it; the 2026-11-27 run used the defaults on one H200.
set -uo pipefail
data=$1; work=$2; results=$3; seconds=${4:-450}; device=${5:-cuda}
mkdir -p "$work" "$results"
started=$SECONDS
python -m training.cache --data "$data" --cache-dir "$work/cache" --device "$device" \
    --batch-size 64 --workers "${WORKERS:-14}" || exit 1
echo "cache built in $((SECONDS - started)) s"
# shellcheck disable=SC2086  # EXTRA is a list of flags
python -m scripts.sweep --runs-dir "$work/runs" --deadline "$seconds" -- --data "$data" \
    --cache-dir "$work/cache" --device "$device" --threads 1 --epochs "${EPOCHS:-30}" ${EXTRA:-}
for run in "$work"/runs/*/; do
    name=$(basename "$run")
    cp "$run/log.jsonl" "$results/${name}_log.jsonl" 2>/dev/null
    cp "$run/stderr.log" "$results/${name}_stderr.log" 2>/dev/null
    [ -f "$run/best.pt" ] || continue
    python -m training.evaluate --checkpoint "$run/best.pt" --data "$data" --split test \
        --cache-dir "$work/cache" --threads 1 --out "$results/${name}_test_beam3.json" \
        > "$results/${name}_test.log" 2>&1 &
done
wait
cp "$work/runs/sweep.json" "$results/"
# Export the runs that beat the soft row on val (best first), for a look and for shipping.
python - "$work/runs" "$results" <<'PY'
import json, subprocess, sys
from pathlib import Path
runs, results = Path(sys.argv[1]), Path(sys.argv[2])
rows = {r["name"]: r for r in json.loads((runs / "sweep.json").read_text())}
soft = rows.get("soft", {}).get("val_bleu4", 0.0)
better = sorted((r for r in rows.values() if r["name"] != "soft" and r["val_bleu4"] > soft
                 and (runs / r["name"] / "best.pt").exists()), key=lambda r: -r["val_bleu4"])
for row in better[:2]:
    out = results / f"{row['name']}.pt"
    subprocess.run([sys.executable, "-m", "training.export", "--checkpoint",
                    str(runs / row["name"] / "best.pt"), "--out", str(out)], check=False)
    print(f"exported {row['name']} (val BLEU-4 {100 * row['val_bleu4']:.2f} > soft {100 * soft:.2f})")
PY
echo "done in $((SECONDS - started)) s"
