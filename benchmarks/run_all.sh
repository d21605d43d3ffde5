#!/usr/bin/env bash
# Every benchmark, one after the other (they must not share the 2 cores with anything else).
# Usage: bash benchmarks/run_all.sh [FLICKR8K_DIR] [CACHE_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/flickr8k}
cache=${2:-cache}
python3 -m benchmarks.latency
python3 -m benchmarks.memory
python3 -m benchmarks.profile_decoding
python3 -m benchmarks.train_speed
python3 -m benchmarks.train_speed --grid 14 --batch-size 64 --steps 5
python3 -m benchmarks.train_memory
python3 -m benchmarks.eval_speed --data "$data" --cache-dir "$cache"
python3 -m benchmarks.cache_speed --data "$data"
