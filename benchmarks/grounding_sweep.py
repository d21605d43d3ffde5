"""Choose the grounding settings: each setting's caption scores and object measures on the COCO
dev photos and the Flickr8k val split, one row per setting.

    python -m benchmarks.grounding_sweep --coco ../shared/data/coco_dev \
        --flickr ../shared/data/flickr8k/dataset_flickr8k.json --out results/grounding_sweep.json

Settings: every combination of --tag-thresholds x --max-tags x --veto-thresholds, plus a row
without grounding. Scores are on dev/val splits only: the test split is scored once, later.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from captioner.options import DEFAULT_OPTIONS
from training.data import load_karpathy
from training.evaluate import checkpoint_features, evaluate, photo_instances

from .dev_sets import (COCO_DEV_INSTANCES, COCO_DEV_JSON, add_dev_set_arguments,
                       load_captioner)

SHOWN = ("BLEU-4", "METEOR", "CIDEr")


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    add_dev_set_arguments(parser)
    parser.add_argument("--tag-thresholds", default="0.2,0.3,0.4")
    parser.add_argument("--max-tags", default="1,2")
    parser.add_argument("--veto-thresholds", default="0.8")
    parser.add_argument("--evidence-floors", default="0")
    parser.add_argument("--fusion-weights", default="0")
    parser.add_argument("--no-baseline", action="store_true", help="skip the ungrounded row")
    args = parser.parse_args()
    checkpoint, captioner = load_captioner(args)
    coco_dir = Path(args.coco)
    coco = load_karpathy(coco_dir / COCO_DEV_JSON)
    flickr = load_karpathy(args.flickr)
    sets = [("coco_dev", coco, "test", photo_instances(str(coco_dir / COCO_DEV_INSTANCES), coco)),
            ("flickr8k_val", flickr, "val", None)]
    features = {name: checkpoint_features(checkpoint, captioner, data, split, args.cache_dir)
                for name, data, split, _ in sets}
    settings = [] if args.no_baseline else [DEFAULT_OPTIONS.replace(grounding=False)]
    settings += [DEFAULT_OPTIONS.replace(tag_threshold=t, max_tags=m, veto_threshold=v,
                                         evidence_floor=f, fusion_weight=w)
                 for t, m, v, f, w in itertools.product(
                     map(float, args.tag_thresholds.split(",")),
                     map(int, args.max_tags.split(",")),
                     map(float, args.veto_thresholds.split(",")),
                     map(float, args.evidence_floors.split(",")),
                     map(float, args.fusion_weights.split(",")))]
    rows = []
    for options in settings:
        row = {"grounding": options.grounding, "tag_threshold": options.tag_threshold,
               "max_tags": options.max_tags, "veto_threshold": options.veto_threshold,
               "evidence_floor": options.evidence_floor, "fusion_weight": options.fusion_weight}
        for name, data, split, instances in sets:
            result = evaluate(captioner, data, split, features[name], options,
                              instances=instances)
            row[name] = {**{k: result["metrics"][k] for k in SHOWN},
                         **{k: result["objects"][k] for k in
                            ("main_object_named", "chair_s", "chair_i")},
                         "distinct_captions": result["diversity"]["distinct_captions"],
                         "loops": result["diversity"]["captions_repeating_a_trigram"]}
        rows.append(row)
        label = (f"tags>={options.tag_threshold:g} max {options.max_tags} "
                 f"veto>={options.veto_threshold:g} floor {options.evidence_floor:g} "
                 f"fusion {options.fusion_weight:g}"
                 if options.grounding else "no grounding")
        print(label + "".join(
            f"  | {name}: " + " ".join(f"{k} {100 * row[name][k]:.1f}" for k in
                                     (*SHOWN, "main_object_named", "chair_s"))
            for name, *_ in sets), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
