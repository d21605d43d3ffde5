#!/usr/bin/env bash
# Training throughput of this checkout against another one (e.g. a worktree of an older
# commit), one after the other in one run on an idle machine, so the ratio means something:
#   bash benchmarks/train_speed_vs.sh ../captioner-old [extra train_speed flags]
set -euo pipefail
other=$(cd "$1" && pwd); shift
here=$(cd "$(dirname "$0")/.." && pwd)
for round in 1 2; do
  echo "== round $round: $other ($(git -C "$other" rev-parse --short HEAD))"
  (cd "$other" && python -m benchmarks.train_speed "$@")
  echo "== round $round: $here ($(git -C "$here" rev-parse --short HEAD), working tree)"
  (cd "$here" && python -m benchmarks.train_speed "$@")
done
