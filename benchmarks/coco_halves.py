"""A COCO dev result file's scores on each half of its photos by COCO id: "tune" (even ids:
settings are chosen there) and "check" (odd ids: they are checked there).

    python -m benchmarks.coco_halves results/concepts/*_coco_dev*.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.metrics import score_captions
from training.objects import object_measures

HALVES = {"tune": 0, "check": 1}


def half_scores(result: dict, half: str) -> dict:
    rows = [c for c in result["captions"] if int(Path(c["image"]).stem) % 2 == HALVES[half]]
    predictions = {c["image"]: c["caption"] for c in rows}
    references = {c["image"]: c["references"] for c in rows}
    metrics = score_captions(predictions, references).as_dict()
    objects = object_measures(predictions, references).as_dict()
    return {"photos": len(rows), **{k: metrics[k] for k in ("BLEU-4", "METEOR", "CIDEr")},
            **{k: objects[k] for k in ("main_object_named", "chair_s", "people_invented",
                                       "anything_invented", "people_named_where_present")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    table = {}
    print(f"{'result':<44} {'half':<6} {'B-4':>5} {'MET':>5} {'CIDEr':>6} {'main':>5} "
          f"{'CHAIRs':>6} {'ppl inv':>7} {'any inv':>7} {'ppl named':>9}")
    for path in args.results:
        result = json.loads(Path(path).read_text())
        for half in HALVES:
            s = table.setdefault(Path(path).name, {})[half] = half_scores(result, half)
            print(f"{Path(path).name:<44} {half:<6} {100 * s['BLEU-4']:>5.1f} "
                  f"{100 * s['METEOR']:>5.1f} {100 * s['CIDEr']:>6.1f} "
                  f"{s['main_object_named']:>5.0%} {s['chair_s']:>6.0%} "
                  f"{s['people_invented']:>7.0%} {s['anything_invented']:>7.0%} "
                  f"{s['people_named_where_present']:>9.0%}")
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
